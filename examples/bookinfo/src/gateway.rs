//! The ingress gateway: Istio's Bookinfo gateway paths routed to productpage.
//!
//! Istio's `bookinfo-gateway` VirtualService sends exact `/productpage`, prefix `/static`,
//! exact `/login`, exact `/logout` and prefix `/api/v1/products` to productpage; anything
//! else has no route and Envoy answers 404. Serve [`router`] with a `MeshServer` so that
//! every request gets the server's metrics, span and `x-request-id`.

mod tls;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderName};
use http::{HeaderValue, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mesh::tower::server::Peer;
use mesh::{MeshClient, MeshServer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::{Layer, ServiceExt};

pub use tls::GatewayTls;

use crate::books::Upstreams;

/// The gateway's routes: exact `/productpage`, prefix `/static`, exact `/login`, exact
/// `/logout`, prefix `/api/v1/products`, sent to productpage through `client`; anything
/// else 404.
pub fn router(client: MeshClient, upstreams: Upstreams) -> Router {
    let state = Gateway {
        client,
        productpage: upstreams.productpage.trim_end_matches('/').to_owned(),
    };
    Router::new().fallback(forward).with_state(state)
}

/// Whether Istio's Bookinfo gateway routes `path` (without the query) to productpage.
/// Prefixes are string prefixes, as Istio's `prefix` match is: `/staticfoo` matches.
pub fn routes_to_productpage(path: &str) -> bool {
    matches!(path, "/productpage" | "/login" | "/logout")
        || path.starts_with("/static")
        || path.starts_with("/api/v1/products")
}

#[derive(Clone)]
struct Gateway {
    client: MeshClient,
    /// `http://productpage:9080`, without a trailing slash.
    productpage: String,
}

/// Headers of one hop only (RFC 9110, 7.6.1), never forwarded; `host` is set by the
/// client from the upstream's authority.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::HOST,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
];

async fn forward(State(gateway): State<Gateway>, req: Request) -> Response {
    if !routes_to_productpage(req.uri().path()) {
        return (StatusCode::NOT_FOUND, "").into_response();
    }
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let uri = match format!("{}{path_and_query}", gateway.productpage).parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad request target").into_response(),
    };
    let tls = req.extensions().get::<Peer>().is_some_and(|p| p.tls);
    let client_ip = req.extensions().get::<Peer>().map(|p| p.addr.ip());
    let (mut parts, body) = req.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    if let Some(ip) = client_ip {
        let value = match parts
            .headers
            .get("x-forwarded-for")
            .map(HeaderValue::to_str)
        {
            Some(Ok(list)) => format!("{list}, {ip}"),
            _ => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            parts.headers.insert("x-forwarded-for", value);
        }
    }
    parts.headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let upstream = http::Request::from_parts(parts, body);
    let Ok(answer) = gateway.client.request(upstream).await;
    let (mut parts, body) = answer.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body))
}

/// Removes [`HOP_BY_HOP`] and the headers `Connection` names.
fn remove_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// Why the gateway could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The server stack could not be built from its config.
    #[error("server: {0}")]
    Server(#[from] mesh::tower::server::ServerBuildError),
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// A TLS file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadTls {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// How long a browser may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connections may finish their requests once shutdown starts (TLS only; the
/// plaintext gateway follows the server config's shutdown settings).
const TLS_GRACE: Duration = Duration::from_secs(5);

/// Serves the gateway's `app` (its [`router`]) on `listener` until `shutdown`: with
/// `server`'s stack (telemetry, server span, `x-request-id`), plaintext, or terminating TLS
/// for browsers when `tls` is given.
///
/// `MeshServer` itself speaks only plaintext or mesh mTLS, so TLS for browsers is served
/// here: tokio-rustls over each connection, hyper-util's HTTP/1.1 and HTTP/2 connection
/// builder, and `server`'s stack as a layer.
pub async fn serve(
    server: MeshServer,
    listener: TcpListener,
    app: Router,
    tls: Option<GatewayTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let Some(tls) = tls else {
        return Ok(server.serve(listener, app, shutdown).await?);
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config()?);
    let stack = server.layer()?.layer(app);
    let local = listener.local_addr().map_err(|source| {
        GatewayError::Server(mesh::tower::server::ServerBuildError::Listener(source))
    })?;
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, addr)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let (acceptor, builder, stack) = (acceptor.clone(), builder.clone(), stack.clone());
                let mut stopped = stopped.clone();
                connections.spawn(async move {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let peer = Peer { addr, local, identity: None, tls: true };
                    let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(peer.clone());
                        stack.clone().oneshot(req)
                    });
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let mut connection = std::pin::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        () = async { let _ = stopped.wait_for(|stop| *stop).await; } => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(TLS_GRACE, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.shutdown().await;
    }
    Ok(())
}

/// Where [`serve`] is told to listen, for messages.
pub fn describe(addr: SocketAddr, tls: bool) -> String {
    format!(
        "{}://{addr}/productpage",
        if tls { "https" } else { "http" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use mesh::{MeshConfig, Telemetry};
    use mesh_tower::testing::Backend;

    fn gateway_to(backend: &Backend) -> Router {
        let config = MeshConfig::builder().service("gateway").build().unwrap();
        let client = MeshClient::builder()
            .config(config)
            .telemetry(Telemetry::disabled())
            .build()
            .unwrap();
        let upstreams = Upstreams {
            productpage: format!("http://{}/", backend.addr()),
            ..Upstreams::default()
        };
        router(client, upstreams)
    }

    #[tokio::test]
    async fn forwards_method_target_headers_and_body_and_streams_the_answer_back() {
        let backend = Backend::start("productpage-v1", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let app = gateway_to(&backend);
        let req = http::Request::post("/api/v1/products/0/reviews?x=1&y=2")
            .header("end-user", "jason")
            .header("connection", "keep-alive, x-secret")
            .header("x-secret", "hop")
            .header("x-forwarded-for", "10.0.0.1")
            .body(Body::from("hello"))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-body-len"], "5");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Bytes::from("productpage-v1"));
        let seen = backend.last_request().unwrap();
        assert_eq!(seen.method, http::Method::POST);
        assert_eq!(
            seen.uri.path_and_query().map(|pq| pq.as_str()),
            Some("/api/v1/products/0/reviews?x=1&y=2")
        );
        assert_eq!(seen.headers["end-user"], "jason");
        assert_eq!(seen.headers["x-forwarded-proto"], "http");
        assert!(seen.headers.get("x-secret").is_none());
        assert_eq!(seen.host, backend.addr().to_string());

        // No route: 404 from the gateway, nothing sent.
        let req = http::Request::get("/reviews/0")
            .body(Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(backend.hits(), 1);
    }

    #[test]
    fn bookinfo_gateway_paths() {
        for path in [
            "/productpage",
            "/login",
            "/logout",
            "/static",
            "/static/bootstrap/css/bootstrap.min.css",
            "/staticfoo",
            "/api/v1/products",
            "/api/v1/products/0/reviews",
        ] {
            assert!(routes_to_productpage(path), "{path}");
        }
        for path in [
            "/",
            "/nope",
            "/productpage/",
            "/login/x",
            "/api/v1",
            "/Productpage",
        ] {
            assert!(!routes_to_productpage(path), "{path}");
        }
    }
}
