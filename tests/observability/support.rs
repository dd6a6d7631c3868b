//! Shared pieces of the metrics and access-log tests: the binary's Prometheus recorder, a
//! DNS server naming the services, a `reviews` server whose handler answers by path and
//! notes whether it ever saw the peer-metadata header, requests, and a scrape of the admin
//! server parsed as Prometheus text.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh::core::MeshConfig;
use mesh::core::config::MeshConfigBuilder;
use mesh::core::telemetry::PEER_METADATA_HEADER;
use mesh::tower::MeshClient;
use mesh::tower::admin::AdminServer;
use mesh::tower::server::MeshServer;
use mesh::tower::telemetry::metrics::prometheus_builder;
use mesh::tower::testing::DnsServer;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The Prometheus recorder of this test binary, installed once (before any client or
/// server is built) with Envoy's buckets.
pub(crate) fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            prometheus_builder()
                .install_recorder()
                .expect("the test binary's only global recorder")
        })
        .clone()
}

/// `127.0.98.<host>`: these tests use this network only, one address per server.
pub(crate) fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 98, host))
}

/// The DNS server of one test (zone `cluster.local`).
pub(crate) struct Mesh {
    pub(crate) dns: DnsServer,
}

impl Mesh {
    pub(crate) fn start() -> Mesh {
        Mesh {
            dns: DnsServer::start().expect("DNS server"),
        }
    }

    /// Names `<service>.default.svc.cluster.local` `ip` (TTL 30 s).
    pub(crate) fn name(&self, service: &str, ip: IpAddr) {
        self.dns
            .set_hosts(&format!("{service}.default.svc"), &[ip], 30)
            .expect("DNS record");
    }

    /// Workload `service` version `version` in `default` (service account = service),
    /// resolving through this DNS server.
    pub(crate) fn config(&self, service: &str, version: &str) -> MeshConfigBuilder {
        MeshConfig::builder()
            .service(service)
            .namespace("default")
            .service_account(service)
            .version(version)
            .pod_name(format!("{service}-{version}-5b667bcbf8-x7k9z"))
            .discovery(self.dns.config())
    }
}

/// What the `reviews` handler saw.
#[derive(Clone, Default)]
pub(crate) struct Seen {
    /// Requests handled.
    pub(crate) calls: Arc<AtomicUsize>,
    /// Requests that carried the peer-metadata header (must stay 0).
    pub(crate) peer_headers: Arc<AtomicUsize>,
}

/// The handler: `/missing` 404, `/slow/<ms>` 200 after that many milliseconds, else 200
/// `hello`.
fn handler(
    seen: Seen,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            if req.headers().contains_key(PEER_METADATA_HEADER) {
                seen.peer_headers.fetch_add(1, Ordering::SeqCst);
            }
            let path = req.uri().path().to_owned();
            let mut response = Response::new(Full::new(Bytes::from_static(b"hello")));
            if path == "/missing" {
                *response.status_mut() = StatusCode::NOT_FOUND;
            } else if let Some(ms) = path.strip_prefix("/slow/") {
                let ms = ms.parse().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok::<_, Infallible>(response)
        }
    })
}

/// A running server (stopped when dropped).
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// Serves `server` with the handler on `ip`, a free port.
pub(crate) async fn serve(server: MeshServer, ip: IpAddr, seen: Seen) -> Running {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, handler(seen), async {
        let _ = stopped.await;
    }));
    Running { addr, _stop: stop }
}

/// Serves the admin server with `handle` on `ip`, a free port.
pub(crate) async fn serve_admin(handle: PrometheusHandle, ip: IpAddr) -> Running {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(AdminServer::new().metrics(handle).serve(listener, async {
        let _ = stopped.await;
    }));
    Running { addr, _stop: stop }
}

/// A whole answer of a mesh client.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Whether the response carried the peer-metadata header (must not).
    pub(crate) peer_header: bool,
}

/// One GET of `uri` through `client` with `headers`, read whole.
pub(crate) async fn get(client: &MeshClient, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Empty::<Bytes>::new()).expect("valid request");
    let response = client.request(req).await.expect("the mesh always answers");
    let status = response.status().as_u16();
    let peer_header = response.headers().contains_key(PEER_METADATA_HEADER);
    let _ = response.into_body().collect().await;
    Answer {
        status,
        peer_header,
    }
}

/// One plaintext HTTP/1.1 GET of `path` with a bare hyper client, with `headers`: the status
/// and the body.
pub(crate) async fn bare_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .expect("handshake");
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::get(path).header("host", addr.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = sender
        .send_request(req.body(Empty::new()).expect("request"))
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    conn.abort();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// `/stats/prometheus` of the admin server at `addr`, parsed.
pub(crate) async fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (status, _, text) = bare_get(addr, "/stats/prometheus", &[]).await;
    assert_eq!(status, 200, "{text}");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text")
}

/// `http://<service>.default.svc.cluster.local:<port><path>`.
pub(crate) fn uri(service: &str, port: u16, path: &str) -> String {
    format!("http://{service}.default.svc.cluster.local:{port}{path}")
}
