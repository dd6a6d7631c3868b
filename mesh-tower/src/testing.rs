//! Helpers for tests and examples: HTTP backends on loopback that count what they serve,
//! record what they were sent, answer as told, and can be killed mid-run, plus the DNS server
//! of `mesh-dns`.
//!
//! Enabled by the `testing` feature.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use mesh_dns::server::DnsServer;

/// How a [`Backend`] answers. Every answer carries `x-body-len` (the request body's size),
/// `x-host` (the `Host` or `:authority` it was sent to) and `x-version` (the HTTP version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// 200 with the backend's name as the body.
    Ok,
    /// This status, with the backend's name as the body.
    Status(u16),
    /// 200 after this pause (tokio time, so paused tests advance it).
    Delay(Duration),
    /// `status` for every `every`-th request this backend receives, 200 otherwise: a steady
    /// failure rate with no long runs of failures.
    FailEvery {
        /// One request in this many fails (0 counts as 1).
        every: usize,
        /// The failing status.
        status: u16,
    },
}

/// An HTTP/1.1 and HTTP/2 (h2c) server on loopback.
#[derive(Debug)]
pub struct Backend {
    name: Arc<str>,
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

/// How many requests a [`Backend`] keeps in its log ([`Backend::requests`]): the most recent.
pub const REQUEST_LOG_LEN: usize = 1024;

/// One request a [`Backend`] received, as it arrived (the body is only counted).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SeenRequest {
    /// The method.
    pub method: Method,
    /// The request target: path and query for HTTP/1.1, the absolute URI for HTTP/2.
    pub uri: Uri,
    /// The `Host` or `:authority` it was sent to.
    pub host: String,
    /// The headers.
    pub headers: HeaderMap,
}

#[derive(Debug)]
struct State {
    hits: AtomicUsize,
    behavior: Mutex<Behavior>,
    seen: Mutex<Seen>,
}

/// What a backend has been sent: every host counted, the latest requests whole.
#[derive(Debug, Default)]
struct Seen {
    hosts: BTreeMap<String, usize>,
    log: VecDeque<SeenRequest>,
}

impl Backend {
    /// Serves on `addr` (port 0 picks a free port) and answers with `name`.
    pub async fn start(name: &str, addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let name: Arc<str> = name.into();
        let state = Arc::new(State {
            hits: AtomicUsize::new(0),
            behavior: Mutex::new(Behavior::Ok),
            seen: Mutex::default(),
        });
        let task = tokio::spawn(serve(listener, name.clone(), state.clone()));
        Ok(Self {
            name,
            addr,
            state,
            task,
        })
    }

    /// Starts one backend per address in `ips`, all on one port (as pods of one service are),
    /// named `{prefix}-{index}`. Returns the port and the backends.
    pub async fn start_many(prefix: &str, ips: &[IpAddr]) -> io::Result<(u16, Vec<Backend>)> {
        let (port, mut groups) = Backend::start_groups(&[(prefix, ips)]).await?;
        Ok((port, groups.pop().unwrap_or_default()))
    }

    /// Starts several groups of backends, all on one port: for each `(prefix, ips)` one
    /// backend per address, named `{prefix}-{index}` (as the versions of one service, such as
    /// `reviews-v1` and `reviews-v2`, share the service's port). Returns the port and the
    /// groups in the order given.
    pub async fn start_groups(
        groups: &[(&str, &[IpAddr])],
    ) -> io::Result<(u16, Vec<Vec<Backend>>)> {
        let mut last_error = None;
        'attempt: for _ in 0..50 {
            // The first backend picks a free port; the others must get the same one, or the
            // whole attempt starts over.
            let mut port = 0;
            let mut started = Vec::with_capacity(groups.len());
            for (prefix, ips) in groups {
                let mut group = Vec::with_capacity(ips.len());
                for (i, ip) in ips.iter().enumerate() {
                    let name = format!("{prefix}-{i}");
                    match Backend::start(&name, SocketAddr::new(*ip, port)).await {
                        Ok(backend) => {
                            port = backend.addr.port();
                            group.push(backend);
                        }
                        Err(e) if port != 0 => {
                            last_error = Some(e);
                            continue 'attempt;
                        }
                        Err(e) => return Err(e),
                    }
                }
                started.push(group);
            }
            return Ok((port, started));
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no common free port")))
    }

    /// The backend's name (the body it answers with).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests it has received.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::Relaxed)
    }

    /// Requests received by the `Host` (or `:authority`) they were sent to, such as
    /// `reviews:9080`, or `reviews-shadow:9080` for mirrored copies.
    pub fn hosts(&self) -> BTreeMap<String, usize> {
        self.seen().hosts.clone()
    }

    /// The most recent requests received (at most [`REQUEST_LOG_LEN`]), oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen().log.iter().cloned().collect()
    }

    /// The last request received, if any.
    pub fn last_request(&self) -> Option<SeenRequest> {
        self.seen().log.back().cloned()
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.state.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes how it answers from the next request on.
    pub fn set_behavior(&self, behavior: Behavior) {
        *self
            .state
            .behavior
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = behavior;
    }

    /// Stops it at once: the listener closes and every open connection is dropped, as when a
    /// pod is killed.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, name: Arc<str>, state: Arc<State>) {
    serve_connections(listener, move || {
        let (name, state) = (name.clone(), state.clone());
        hyper::service::service_fn(move |req| answer(req, name.clone(), state.clone()))
    })
    .await;
}

/// Serves HTTP/1.1 and h2c on every connection `listener` accepts, each with the service
/// `service_for` makes for it, until this future is dropped, which drops every connection:
/// the accept loop of [`Backend`], for test servers that answer in their own way.
pub async fn serve_connections<F, S, B>(listener: TcpListener, mut service_for: F)
where
    F: FnMut() -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<crate::BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::BoxError>,
{
    // Connections live in this set: dropping it aborts them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let service = service_for();
                connections.spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    name: Arc<str>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let hit = state.hits.fetch_add(1, Ordering::Relaxed) + 1;
    let behavior = state
        .behavior
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    // The host the request was addressed to: `Host` (HTTP/1.1) or `:authority` (HTTP/2).
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    {
        let mut seen = state.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen.hosts.entry(host.clone()).or_default() += 1;
        if seen.log.len() == REQUEST_LOG_LEN {
            seen.log.pop_front();
        }
        seen.log.push_back(SeenRequest {
            method: req.method().clone(),
            uri: req.uri().clone(),
            host: host.clone(),
            headers: req.headers().clone(),
        });
    }
    let version = format!("{:?}", req.version());
    // Read the whole request body: the connection stays reusable and its size is reported.
    let body_len = match req.into_body().collect().await {
        Ok(body) => body.to_bytes().len(),
        Err(_) => 0,
    };
    let status = match behavior {
        Behavior::Ok => StatusCode::OK,
        Behavior::Status(code) => {
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Behavior::Delay(pause) => {
            tokio::time::sleep(pause).await;
            StatusCode::OK
        }
        Behavior::FailEvery { every, status } if hit.is_multiple_of(every.max(1)) => {
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Behavior::FailEvery { .. } => StatusCode::OK,
    };
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(name.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-body-len", body_len.into());
    if let Ok(host) = http::HeaderValue::from_str(&host) {
        headers.insert("x-host", host);
    }
    if let Ok(version) = http::HeaderValue::from_str(&version) {
        headers.insert("x-version", version);
    }
    Ok(response)
}

/// Polls `check` every 10 ms of tokio time until it holds, for at most `limit`; whether it
/// held. Under paused time the wait costs no real time.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
