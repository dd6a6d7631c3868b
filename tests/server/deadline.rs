//! The inbound deadline: read from the caller's headers, handed to the handler as its
//! request context, rejected when malformed or passed.

use std::sync::Arc;

use mesh::core::config::ServerConfig;

use crate::support::{Gate, Running, app, get, get2, h2};

async fn server() -> Running {
    Running::start(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default(),
        app(Arc::new(Gate::default())),
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn the_deadline_reaches_the_handler_with_the_time_left() {
    let server = server().await;
    let answer = get(server.addr, "/deadline", &[("x-mesh-timeout-ms", "1500")]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "1500");

    let grpc = [
        ("content-type", "application/grpc"),
        ("grpc-timeout", "250m"),
        ("x-mesh-timeout-ms", "900"),
    ];
    let (sender, _conn) = h2(server.addr).await;
    assert_eq!(get2(&sender, "/deadline", &grpc).await.body, "250");

    let answer = get(server.addr, "/deadline", &[]).await;
    assert_eq!(answer.body, "none");
}

#[tokio::test(start_paused = true)]
async fn malformed_deadline_headers_are_400s_naming_the_header() {
    let server = server().await;
    for bad in ["soon", "-1", "1.5", "10ms"] {
        let answer = get(server.addr, "/deadline", &[("x-mesh-timeout-ms", bad)]).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(answer.body.contains("x-mesh-timeout-ms"), "{}", answer.body);
        assert!(answer.body.contains(bad), "{}", answer.body);
    }
    let grpc = [
        ("content-type", "application/grpc"),
        ("grpc-timeout", "5 S"),
    ];
    let answer = get(server.addr, "/deadline", &grpc).await;
    // A gRPC caller gets a gRPC answer: INTERNAL, as Envoy maps 400.
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("grpc-status"), "13");
    assert!(answer.header("grpc-message").contains("grpc-timeout"));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_passed_on_arrival_is_a_504_that_spares_the_app() {
    let gate = Arc::new(Gate::default());
    let server = Running::start(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default(),
        app(gate.clone()),
    )
    .await;
    let answer = get(server.addr, "/slow", &[("x-mesh-timeout-ms", "0")]).await;
    assert_eq!(answer.status, 504);
    assert!(answer.body.contains("deadline exceeded"), "{}", answer.body);
    assert_eq!(gate.entered(), 0);

    // Without propagation the header is the application's own business.
    let config = ServerConfig {
        propagate_deadline: false,
        ..ServerConfig::default()
    };
    let server = Running::start("127.0.0.1:0".parse().unwrap(), config, app(gate)).await;
    let answer = get(server.addr, "/deadline", &[("x-mesh-timeout-ms", "soon")]).await;
    assert_eq!(
        (answer.status.as_u16(), answer.body.as_str()),
        (200, "none")
    );
}
