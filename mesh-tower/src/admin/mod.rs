//! The admin server: a small HTTP/1.1 server on its own port, as Envoy's and Istio's admin
//! and health ports, for operators and the kubelet.
//!
//! | route | answer |
//! |---|---|
//! | `GET /stats/prometheus` | the Prometheus exposition (`text/plain; version=0.0.4`) of the handle given to [`AdminServer::metrics`], followed by the gauge `mesh_endpoints{destination, state}` of the client's destinations ([`ENDPOINTS_METRIC`]); 404 without a handle |
//! | `GET /healthz/ready` | 200 `LIVE` when [ready](AdminServer::readiness), 503 saying what is not ready otherwise |
//! | `GET /config_dump` | the effective config as JSON ([`config_dump()`]: a summary, not a lossless dump) |
//! | `GET /clusters` | each destination the client has created, with its endpoints and their health ([`MeshClient::clusters`]); JSON, or Envoy's `name::addr::key::value` lines with `?format=text` |
//!
//! Anything else is 404 (405 for a method other than GET or HEAD on a known route).
//!
//! ```no_run
//! use mesh_tower::MeshClient;
//! use mesh_tower::admin::AdminServer;
//!
//! # async fn run(client: MeshClient) -> std::io::Result<()> {
//! let admin = AdminServer::new().client(client);
//! let ready = admin.ready_flag();
//! ready.set(false); // until the application has warmed up
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:15000").await?;
//! tokio::spawn(admin.serve(listener, std::future::pending::<()>()));
//! // ... warm up ...
//! ready.set(true);
//! # Ok(()) }
//! ```

mod config_dump;
mod status;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mesh_core::MeshConfig;
use serde_json::json;
use tokio::net::TcpListener;

pub use config_dump::config_dump;
/// The Prometheus recorder's builder and handle, re-exported so that serving
/// `/stats/prometheus` needs no other dependency.
pub use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
pub use status::{ClusterStatus, DiscoveryState, EndpointStatus};

use crate::MeshClient;
use crate::tls::Identity;

/// The content type of Prometheus' text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// How long connections still open at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The application's part of readiness: a flag shared with the admin server, ready (true)
/// unless the application says otherwise. Cheap to clone; clones share the flag.
#[derive(Clone, Debug)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl Default for ReadyFlag {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl ReadyFlag {
    /// Marks the application ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Whether the application is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The admin server: Prometheus metrics, readiness, the effective config and each
/// destination's endpoints, on a port of its own. Build it with [`AdminServer::new`] and the
/// setters, then [`AdminServer::serve`] it. Cheap to clone; it is also a
/// `tower::Service` answering one request, for tests or a server of your own.
#[derive(Clone, Default)]
pub struct AdminServer {
    metrics: Option<PrometheusHandle>,
    client: Option<MeshClient>,
    config: Option<Arc<MeshConfig>>,
    identity: Option<Identity>,
    ready: ReadyFlag,
}

impl fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminServer")
            .field("metrics", &self.metrics.is_some())
            .field("client", &self.client.is_some())
            .field("config", &self.config.is_some())
            .field("identity", &self.identity.as_ref().map(Identity::id))
            .field("ready", &self.ready.get())
            .finish()
    }
}

impl AdminServer {
    /// An admin server with nothing to report yet: ready, no metrics, the default config.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `/stats/prometheus` from `handle` (of the recorder the process installed,
    /// such as `PrometheusBuilder::new().install_recorder()`).
    pub fn metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Reports `client`'s destinations in `/clusters`, waits for their first discovery
    /// answer in `/healthz/ready`, and dumps its config unless [`AdminServer::config`] gives
    /// another.
    pub fn client(mut self, client: MeshClient) -> Self {
        self.client = Some(client);
        self
    }

    /// The config `/config_dump` shows (the client's, when a client is given and this is
    /// not; the default config otherwise).
    pub fn config(mut self, config: MeshConfig) -> Self {
        self.config = Some(Arc::new(config));
        self
    }

    /// The workload identity: readiness requires its certificates loaded (as they are once
    /// an [`Identity`] exists), and `/config_dump` names it.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Uses `flag` as the application's part of readiness.
    pub fn ready(mut self, flag: ReadyFlag) -> Self {
        self.ready = flag;
        self
    }

    /// A handle on the application's part of readiness (ready unless set otherwise).
    pub fn ready_flag(&self) -> ReadyFlag {
        self.ready.clone()
    }

    /// Marks the application ready or not; the same as `ready_flag().set(ready)`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(ready);
    }

    /// Whether the workload is ready: every destination the client has created has had a
    /// first answer from discovery (resolved or not), the workload certificates are loaded
    /// when the config names them (`security.certificates`: an [`Identity`] given, or a
    /// client built from that config), and the application's flag is set. The error says
    /// what is not ready.
    pub fn readiness(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !self.ready.get() {
            problems.push("the application is not ready".to_owned());
        }
        if let Some(client) = &self.client {
            for cluster in client.clusters() {
                if !cluster.state.has_answered() {
                    problems.push(format!("discovery has not answered for {}", cluster.name));
                }
            }
        }
        // An `Identity` holds loaded certificates from its construction on (reloads keep
        // the last good ones), and a client whose config names certificates loaded them when
        // it was built; a config that names certificates with neither is not ready.
        let client_config = self.client.as_ref().map(MeshClient::config);
        let wants_identity = self
            .config
            .as_deref()
            .or(client_config.as_deref())
            .is_some_and(|c| c.security.certificates.is_some());
        let loaded = self.identity.is_some()
            || client_config
                .as_deref()
                .is_some_and(|c| c.security.certificates.is_some());
        if wants_identity && !loaded {
            problems.push(
                "the workload certificates (security.certificates) are not loaded".to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Answers one admin request.
    pub fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        let known = matches!(
            path,
            "/stats/prometheus" | "/healthz/ready" | "/config_dump" | "/clusters"
        );
        if !known {
            return text(StatusCode::NOT_FOUND, format!("no admin route {path}\n"));
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut res = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed on {path}\n", req.method()),
            );
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        let mut res = match path {
            "/stats/prometheus" => match &self.metrics {
                Some(handle) => {
                    let mut body = handle.render();
                    if let Some(client) = &self.client {
                        endpoint_gauges(&mut body, &client.clusters());
                    }
                    let mut res = text(StatusCode::OK, body);
                    res.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE),
                    );
                    res
                }
                None => text(
                    StatusCode::NOT_FOUND,
                    "no metrics recorder is configured\n".to_owned(),
                ),
            },
            "/healthz/ready" => match self.readiness() {
                Ok(()) => text(StatusCode::OK, "LIVE\n".to_owned()),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
            },
            "/config_dump" => self.config_dump(),
            _ => self.clusters(query_param(req.uri().query(), "format") == Some("text")),
        };
        if req.method() == Method::HEAD {
            *res.body_mut() = Full::default();
        }
        res
    }

    fn config_dump(&self) -> Response<Full<Bytes>> {
        let default;
        let current;
        let config = match (&self.config, &self.client) {
            (Some(config), _) => config.as_ref(),
            (None, Some(client)) => {
                current = client.config();
                current.as_ref()
            }
            (None, None) => {
                default = MeshConfig::default();
                &default
            }
        };
        let mut dump = config_dump(config);
        if let (Some(identity), Some(map)) = (&self.identity, dump.as_object_mut()) {
            map.insert(
                "identity".to_owned(),
                json!({
                    "id": identity.id().as_str(),
                    "notAfterUnix": identity.not_after_unix(),
                }),
            );
        }
        json_response(&dump)
    }

    fn clusters(&self, as_text: bool) -> Response<Full<Bytes>> {
        let clusters = self
            .client
            .as_ref()
            .map(MeshClient::clusters)
            .unwrap_or_default();
        if as_text {
            return text(StatusCode::OK, clusters_text(&clusters));
        }
        let body = json!({
            "clusters": clusters.iter().map(|c| json!({
                "name": c.name,
                "discovery": c.state.name(),
                "reason": match &c.state {
                    DiscoveryState::Unresolved(reason) => json!(reason),
                    _ => serde_json::Value::Null,
                },
                "endpoints": c.endpoints.iter().map(|e| json!({
                    "address": e.addr.to_string(),
                    "health": e.health(),
                    "healthy": e.healthy,
                    "ejected": e.ejected,
                    "weight": e.weight,
                    "inFlight": e.in_flight,
                    "connectFailures": e.connect_failures,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        json_response(&body)
    }

    /// Serves the admin routes on `listener` until `shutdown` completes, then lets open
    /// connections finish (for at most 5 s). Errors accepting a connection are logged and
    /// the server goes on.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let builder = builder.http1_only();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "admin server: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let service = TowerToHyperService::new(self.clone());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection.into_owned());
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "admin connection ended");
                }
            });
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("admin server: connections still open after the grace period");
        }
    }
}

impl<B> tower_service::Service<Request<B>> for AdminServer {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        std::future::ready(Ok(self.respond(&req)))
    }
}

/// The name of the endpoint gauge appended to `/stats/prometheus`.
pub const ENDPOINTS_METRIC: &str = "mesh_endpoints";

/// Appends, in Prometheus' text format, the gauge [`ENDPOINTS_METRIC`]`{destination, state}`:
/// each destination's endpoints by health (`healthy`, `ejected`, `backoff`), every state
/// written (zeros too) so that a state's series does not vanish.
fn endpoint_gauges(out: &mut String, clusters: &[ClusterStatus]) {
    if clusters.is_empty() {
        return;
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "# HELP {ENDPOINTS_METRIC} Endpoints of each destination the client has created, by state (healthy, ejected by outlier detection, backoff after connect failures)."
    );
    let _ = writeln!(out, "# TYPE {ENDPOINTS_METRIC} gauge");
    for c in clusters {
        let destination = label_value(&c.name);
        for state in ["healthy", "ejected", "backoff"] {
            let n = c.endpoints.iter().filter(|e| e.health() == state).count();
            let _ = writeln!(
                out,
                "{ENDPOINTS_METRIC}{{destination=\"{destination}\",state=\"{state}\"}} {n}"
            );
        }
    }
}

/// A Prometheus label value, escaped: backslash, double quote and line feed.
fn label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Envoy's `/clusters` lines: `name::addr::key::value`, and `name::discovery::state`.
fn clusters_text(clusters: &[ClusterStatus]) -> String {
    let mut out = String::new();
    for c in clusters {
        let _ = writeln!(out, "{}::discovery::{}", c.name, c.state);
        for e in &c.endpoints {
            let flags = if e.ejected {
                "/failed_outlier_check"
            } else if e.healthy {
                "healthy"
            } else {
                "/connect_backoff"
            };
            let prefix = format!("{}::{}", c.name, e.addr);
            let _ = writeln!(out, "{prefix}::health_flags::{flags}");
            let _ = writeln!(out, "{prefix}::weight::{}", e.weight);
            let _ = writeln!(out, "{prefix}::rq_active::{}", e.in_flight);
            let _ = writeln!(out, "{prefix}::connect_failures::{}", e.connect_failures);
        }
    }
    out
}

/// The value of `name` in a query string (not percent-decoded; the admin's are plain).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn json_response(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut res = Response::new(Full::new(Bytes::from(body)));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
