//! The server's peer-authentication modes, end to end: STRICT serves mutual TLS only,
//! PERMISSIVE serves plaintext and mutual TLS on one port, DISABLE plaintext only.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use mesh::core::config::MtlsMode;
use mesh::tower::MeshServer;
use mesh::tower::tls::{DevCa, Identity};
use metrics_util::debugging::DebuggingRecorder;
use tokio::net::TcpStream;

use crate::support::{Mesh, Metrics, Server, TD, get, id, ip, seen, uri};

/// A server for `reviews` in `mode` on `127.0.91.<host>`, with `identity` when given, named
/// in `mesh`'s DNS.
async fn reviews(mesh: &Mesh, mode: MtlsMode, identity: Option<Identity>, host: u8) -> Server {
    let config = mesh.config("reviews").mtls(mode).build().expect("config");
    let mut server = MeshServer::new(config.inbound()).name("reviews");
    if let Some(identity) = identity {
        server = server.identity(identity);
    }
    let server = Server::start(ip(91, host), server).await;
    mesh.name("reviews", server.addr.ip());
    server
}

/// One plaintext HTTP/1.1 GET of `/` with a bare hyper client: the status, or the error.
async fn bare_get(addr: SocketAddr) -> Result<u16, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get("/")
        .header("host", "reviews")
        .body(Empty::new())
        .expect("request");
    let result = sender
        .send_request(req)
        .await
        .map(|res| res.status().as_u16())
        .map_err(|e| e.to_string());
    conn.abort();
    result
}

#[tokio::test(start_paused = true)]
async fn strict_refuses_plaintext_callers() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let server = reviews(
        &mesh,
        MtlsMode::Strict,
        Some(ca.identity(&id("reviews")).expect("identity")),
        11,
    )
    .await;

    // A mesh client without an identity speaks plaintext.
    let plaintext = mesh.client(mesh.config("productpage"), None);
    let answer = get(&plaintext, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 503, "{}", answer.body);

    // So does a bare hyper client.
    let bare = bare_get(server.addr).await;
    assert!(bare.is_err(), "{bare:?}");

    assert_eq!(server.calls(), 0);
    assert!(metrics.handshake_failures("server", "not_tls") >= 2);

    // A caller with an identity is served.
    let productpage = ca.identity(&id("productpage")).expect("identity");
    let mtls = mesh.client(mesh.config("productpage"), Some(&productpage));
    let answer = get(&mtls, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(server.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn permissive_serves_plaintext_and_mutual_tls_on_one_port() {
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let server = reviews(
        &mesh,
        MtlsMode::Permissive,
        Some(ca.identity(&id("reviews")).expect("identity")),
        12,
    )
    .await;

    let plaintext = mesh.client(mesh.config("productpage"), None);
    let answer = get(&plaintext, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, seen(None, "none", false, "HTTP/1.1"));

    assert_eq!(bare_get(server.addr).await, Ok(200));

    let productpage = ca.identity(&id("productpage")).expect("identity");
    let mtls = mesh.client(mesh.config("productpage"), Some(&productpage));
    let answer = get(&mtls, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        seen(Some(&id("productpage")), "mutual_tls", true, "HTTP/1.1")
    );
    assert_eq!(server.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn disable_serves_plaintext_only() {
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    // The server has an identity, and DISABLE does not use it.
    let server = reviews(
        &mesh,
        MtlsMode::Disable,
        Some(ca.identity(&id("reviews")).expect("identity")),
        13,
    )
    .await;

    let plaintext = mesh.client(mesh.config("productpage"), None);
    let answer = get(&plaintext, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, seen(None, "none", false, "HTTP/1.1"));
    assert_eq!(bare_get(server.addr).await, Ok(200));

    // A client with an identity opens TLS (automatic mTLS), and finds no TLS server.
    let productpage = ca.identity(&id("productpage")).expect("identity");
    let mtls = mesh.client(mesh.config("productpage"), Some(&productpage));
    let answer = get(&mtls, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.flag(), "UF", "{}", answer.body);
    assert_eq!(server.calls(), 2);
}
