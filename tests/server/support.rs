//! Shared pieces of the server tests: an axum application whose slow route waits on a gate
//! the test opens, a MeshServer running it on loopback, and bare hyper clients (HTTP/1.1 and
//! h2c) that see every header and connection event.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh::core::config::{ServerConfig, ShutdownConfig};
use mesh::tower::MeshServer;
use mesh::tower::context::RequestContext;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// `127.0.<net>.<host>`.
pub(crate) fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, net, host))
}

/// A gate slow requests wait at until the test opens it, counting those that arrived.
pub(crate) struct Gate {
    entered: AtomicUsize,
    arrived: Notify,
    open: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            entered: AtomicUsize::new(0),
            arrived: Notify::new(),
            open: Semaphore::new(0),
        }
    }
}

impl Gate {
    /// Waits (for ever, unless opened).
    async fn pass(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_waiters();
        if let Ok(permit) = self.open.acquire().await {
            permit.forget();
        }
    }

    /// Requests that reached the gate.
    pub(crate) fn entered(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }

    /// Waits until `count` requests have reached the gate.
    pub(crate) async fn wait_entered(&self, count: usize) {
        loop {
            let arrived = self.arrived.notified();
            if self.entered() >= count {
                return;
            }
            arrived.await;
        }
    }

    /// Lets `count` waiting requests through.
    pub(crate) fn open(&self, count: usize) {
        self.open.add_permits(count);
    }
}

/// The application: `/` answers `ok`, `/slow` waits at the gate first, `/deadline` answers
/// the milliseconds left of the request's deadline (or `none`), `/name` answers `name`
/// after `pause`.
pub(crate) fn app(gate: Arc<Gate>) -> Router {
    Router::new()
        .route("/", routing::get(|| async { "ok" }))
        .route(
            "/slow",
            routing::get(|State(gate): State<Arc<Gate>>| async move {
                gate.pass().await;
                "slow"
            }),
        )
        .route(
            "/deadline",
            routing::get(|| async {
                match RequestContext::current_deadline() {
                    Some(at) => at
                        .saturating_duration_since(Instant::now())
                        .as_millis()
                        .to_string(),
                    None => "none".to_owned(),
                }
            }),
        )
        .with_state(gate)
}

/// An application answering any method on `/` with `name` after `pause` (tokio time).
pub(crate) fn named(name: &str, pause: Duration) -> Router {
    let name: Arc<str> = name.into();
    Router::new().route(
        "/",
        routing::any(move || async move {
            tokio::time::sleep(pause).await;
            name.to_string()
        }),
    )
}

/// A server configuration with these limits and shutdown periods.
pub(crate) fn config(drain: Duration, grace: Duration) -> ServerConfig {
    ServerConfig {
        shutdown: ShutdownConfig { drain, grace },
        ..ServerConfig::default()
    }
}

/// A MeshServer running in a task.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Serves `app` with `config` on `addr` (port 0 picks one).
    pub(crate) async fn start(addr: SocketAddr, config: ServerConfig, app: Router) -> Running {
        let listener = TcpListener::bind(addr).await.expect("bind");
        Running::on(listener, config, app)
    }

    /// Serves `app` with `config` on `listener`.
    pub(crate) fn on(listener: TcpListener, config: ServerConfig, app: Router) -> Running {
        let addr = listener.local_addr().expect("bound");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = MeshServer::new(config).name("tester");
        let task = tokio::spawn(async move {
            server
                .serve(listener, app, async {
                    let _ = stopped.await;
                })
                .await
                .expect("the test server starts");
        });
        Running {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Starts shutting down.
    pub(crate) fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Whether `serve` has returned.
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until `serve` returns.
    pub(crate) async fn stopped(self) {
        self.task.await.expect("serve panicked");
    }
}

/// An HTTP/1.1 connection to `addr`, and its task (which ends when the connection closes).
pub(crate) async fn h1(addr: SocketAddr) -> (http1::SendRequest<Empty<Bytes>>, JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    (
        sender,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

/// An h2c connection (HTTP/2 with prior knowledge) to `addr`, and its task.
pub(crate) async fn h2(addr: SocketAddr) -> (http2::SendRequest<Empty<Bytes>>, JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("handshake");
    (
        sender,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

/// A whole answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    /// A header's value as text; `""` when absent.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A GET of `path` with `headers`.
pub(crate) fn request(path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut req = Request::get(format!("http://tester{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Empty::new()).expect("valid request")
}

/// Reads a response whole.
pub(crate) async fn read(res: http::Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// One GET on an HTTP/1.1 connection.
pub(crate) async fn get1(
    sender: &mut http1::SendRequest<Empty<Bytes>>,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    sender.ready().await.expect("connection ready");
    read(
        sender
            .send_request(request(path, headers))
            .await
            .expect("answer"),
    )
    .await
}

/// One GET on an HTTP/2 connection.
pub(crate) async fn get2(
    sender: &http2::SendRequest<Empty<Bytes>>,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut sender = sender.clone();
    read(
        sender
            .send_request(request(path, headers))
            .await
            .expect("answer"),
    )
    .await
}

/// One GET on a new HTTP/1.1 connection.
pub(crate) async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let (mut sender, _conn) = h1(addr).await;
    get1(&mut sender, path, headers).await
}

pub(crate) use mesh::tower::testing::eventually;
