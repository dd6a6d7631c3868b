//! Helpers for tests and examples: HTTP backends on loopback that count what they serve,
//! answer as told, and can be killed mid-run, plus the DNS server of `mesh-dns`.
//!
//! Enabled by the `testing` feature.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
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
}

/// An HTTP/1.1 and HTTP/2 (h2c) server on loopback.
#[derive(Debug)]
pub struct Backend {
    name: Arc<str>,
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    hits: AtomicUsize,
    behavior: Mutex<Behavior>,
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
        let mut last_error = None;
        for _ in 0..50 {
            let Some(first_ip) = ips.first() else {
                return Ok((0, Vec::new()));
            };
            let first =
                Backend::start(&format!("{prefix}-0"), SocketAddr::new(*first_ip, 0)).await?;
            let port = first.addr.port();
            let mut all = vec![first];
            for (i, ip) in ips.iter().enumerate().skip(1) {
                match Backend::start(&format!("{prefix}-{i}"), SocketAddr::new(*ip, port)).await {
                    Ok(b) => all.push(b),
                    Err(e) => {
                        last_error = Some(e);
                        break;
                    }
                }
            }
            if all.len() == ips.len() {
                return Ok((port, all));
            }
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
    // Connections live in this set: aborting the task drops the set, which aborts them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let (name, state) = (name.clone(), state.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        answer(req, name.clone(), state.clone())
                    });
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
    state.hits.fetch_add(1, Ordering::Relaxed);
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
