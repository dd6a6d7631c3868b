//! The server stack as one layer inside an axum server of the application's own.

use std::sync::Arc;
use std::time::Duration;

use mesh::core::config::ServerConfig;
use mesh::core::ratelimit::TokenBucketConfig;
use mesh::tower::ServerLayer;
use tokio::net::TcpListener;

use crate::support::{Gate, app, get};

#[tokio::test(start_paused = true)]
async fn the_stack_composes_into_an_axum_server() {
    let config = ServerConfig {
        rate_limit: Some(TokenBucketConfig::new(2, 1, Duration::from_secs(60))),
        ..ServerConfig::default()
    };
    let router = app(Arc::new(Gate::default()))
        .layer(ServerLayer::new("tester", &config).expect("a stack without policies"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let answer = get(addr, "/deadline", &[("x-mesh-timeout-ms", "750")]).await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "750"));
    let answer = get(addr, "/deadline", &[("x-mesh-timeout-ms", "later")]).await;
    assert_eq!(answer.status, 400);
    // Answered before the limits: no token taken. Every route shares the one bucket.
    assert_eq!(get(addr, "/", &[]).await.status, 200);
    let answer = get(addr, "/", &[]).await;
    assert_eq!(
        (answer.status.as_u16(), answer.body.as_str()),
        (429, "local_rate_limited")
    );
}
