//! Shared pieces of the security tests: SPIFFE IDs and certificates of a development CA, a
//! MeshServer whose application answers with what it knows of the caller, a DNS server that
//! names it, mesh clients, metrics read back from a local recorder, and temporary
//! certificate directories.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use mesh::core::MeshConfig;
use mesh::core::config::MeshConfigBuilder;
use mesh::core::identity::SpiffeId;
use mesh::tower::server::{Peer, ServerBuildError};
use mesh::tower::testing::DnsServer;
use mesh::tower::tls::{DevCa, Identity, IssueOptions, IssuedCert};
use mesh::tower::{LocalReply, MeshClient, MeshServer};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The trust domain of the mesh under test.
pub(crate) const TD: &str = "cluster.local";

/// `spiffe://cluster.local/ns/default/sa/<sa>`.
pub(crate) fn id(sa: &str) -> SpiffeId {
    SpiffeId::workload(TD, "default", sa).expect("valid SPIFFE ID")
}

/// `127.0.<net>.<host>`: these tests use the networks 91 and 93 only, one address per
/// server, so that tests running side by side never share one.
pub(crate) fn ip(net: u8, host: u8) -> IpAddr {
    assert!(
        net == 91 || net == 93,
        "security tests use 127.0.91.x and 127.0.93.x"
    );
    IpAddr::V4(Ipv4Addr::new(127, 0, net, host))
}

/// A certificate of `ca` for `id`, whose validity ended an hour ago.
pub(crate) fn expired(ca: &DevCa, id: &SpiffeId) -> IssuedCert {
    let mut options = IssueOptions::new(id.clone());
    options.not_before -= Duration::from_secs(2 * 3600);
    options.not_after = options.not_before + Duration::from_secs(3600);
    ca.issue_with(options).expect("certificate")
}

/// A certificate of `ca` for `id`, valid from in an hour on.
pub(crate) fn not_yet_valid(ca: &DevCa, id: &SpiffeId) -> IssuedCert {
    let mut options = IssueOptions::new(id.clone());
    options.not_before = options.not_after - Duration::from_secs(3600);
    ca.issue_with(options).expect("certificate")
}

/// An identity presenting `cert` and trusting `ca`, whatever the certificate's dates.
pub(crate) fn identity_of(cert: &IssuedCert, ca: &DevCa) -> Identity {
    Identity::from_pem_any_time(
        cert.chain_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        ca.roots_pem().as_bytes(),
    )
    .expect("identity")
}

/// What the application answers: everything the server knows about the caller.
pub(crate) fn seen(identity: Option<&SpiffeId>, policy: &str, tls: bool, version: &str) -> String {
    let identity = identity.map_or_else(|| "none".to_owned(), SpiffeId::to_string);
    format!("identity={identity} policy={policy} tls={tls} version={version}")
}

/// The application of every test server: answers with [`seen`] from the request's [`Peer`]
/// and counts its calls.
fn whoami(
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |req: Request<Incoming>| {
        calls.fetch_add(1, Ordering::Relaxed);
        let peer = req.extensions().get::<Peer>().cloned();
        let body = match peer {
            Some(peer) => seen(
                peer.identity.as_ref(),
                peer.connection_security_policy(),
                peer.tls,
                &format!("{:?}", req.version()),
            ),
            None => "no peer".to_owned(),
        };
        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
    })
}

/// A MeshServer serving [`whoami`] in a task.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerBuildError>>>,
}

impl Server {
    /// Serves on `ip` (a free port).
    pub(crate) async fn start(ip: IpAddr, server: MeshServer) -> Server {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("bound");
        let calls = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = whoami(calls.clone());
        let task = tokio::spawn(server.serve(listener, app, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            calls,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Its port.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests the application has handled.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Shuts down and returns what `serve` returned.
    pub(crate) async fn stop(mut self) -> Result<(), ServerBuildError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        task.await.expect("serve panicked")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
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

    /// Names `<service>.default.svc.cluster.local` `ip` (A record, TTL 30 s).
    pub(crate) fn name(&self, service: &str, ip: IpAddr) {
        self.dns
            .set_hosts(&format!("{service}.default.svc"), &[ip], 30)
            .expect("DNS record");
    }

    /// The config of workload `service` in `default`, resolving through this DNS server.
    pub(crate) fn config(&self, service: &str) -> MeshConfigBuilder {
        MeshConfig::builder()
            .service(service)
            .namespace("default")
            .discovery(self.dns.config())
    }

    /// A client of `config`, with `identity` when given.
    pub(crate) fn client(
        &self,
        config: MeshConfigBuilder,
        identity: Option<&Identity>,
    ) -> MeshClient {
        let mut builder = MeshClient::builder().config(config.build().expect("valid config"));
        if let Some(identity) = identity {
            builder = builder.identity(identity.clone());
        }
        builder.build().expect("client")
    }

    /// The mesh config of `yaml` (a document of mesh's own may be left out): mesh's own
    /// document for workload `service`, resolving through this DNS server, then `yaml`.
    pub(crate) fn yaml_config(&self, service: &str, yaml: &str) -> MeshConfig {
        let text = format!(
            "workload: {{service: {service}, namespace: default}}\n\
             discovery: {{nameservers: [\"{}\"]}}\n---\n{yaml}",
            self.dns.addr()
        );
        MeshConfig::from_str(&text, mesh::core::config::Format::Yaml)
            .unwrap_or_else(|e| panic!("invalid config: {e}\n{text}"))
    }
}

/// A whole answer of a mesh client.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
    /// The typed error, when the mesh answered locally.
    pub(crate) reply: Option<LocalReply>,
}

impl Answer {
    /// The Envoy response flag of a local reply; `""` for an upstream's answer.
    pub(crate) fn flag(&self) -> &'static str {
        self.reply
            .as_ref()
            .map(|r| r.error.response_flag())
            .unwrap_or("")
    }
}

/// One GET of `uri` through `client`, answered whole.
pub(crate) async fn get(client: &MeshClient, uri: &str) -> Answer {
    let req = Request::get(uri)
        .body(Empty::<Bytes>::new())
        .expect("valid request");
    let res = client
        .request(req)
        .await
        .expect("the mesh client never fails");
    let status = res.status().as_u16();
    let reply = res.extensions().get::<LocalReply>().cloned();
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_else(|e| format!("body error: {e}"));
    Answer {
        status,
        body,
        reply,
    }
}

/// `http://<service>:<port>/`.
pub(crate) fn uri(service: &str, port: u16) -> String {
    format!("http://{service}:{port}/")
}

/// Metrics recorded on this thread: counters summed across snapshots (a snapshot resets
/// them), gauges as last set to a value other than zero.
pub(crate) struct Metrics {
    snapshotter: Snapshotter,
    counters: HashMap<(String, Vec<(String, String)>), u64>,
    gauges: HashMap<(String, Vec<(String, String)>), f64>,
}

type Key = (String, Vec<(String, String)>);

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

impl Metrics {
    /// Reads what `recorder` records.
    pub(crate) fn new(recorder: &DebuggingRecorder) -> Self {
        Self {
            snapshotter: recorder.snapshotter(),
            counters: HashMap::new(),
            gauges: HashMap::new(),
        }
    }

    fn update(&mut self) {
        for (composite, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let (_, k) = composite.into_parts();
            let labels: Vec<(&str, &str)> = k.labels().map(|l| (l.key(), l.value())).collect();
            let id = key(k.name(), &labels);
            match value {
                DebugValue::Counter(n) => *self.counters.entry(id).or_default() += n,
                // A snapshot swaps gauges to zero too: zero is "not set since".
                DebugValue::Gauge(g) if g.into_inner() != 0.0 => {
                    self.gauges.insert(id, g.into_inner());
                }
                DebugValue::Gauge(_) => {}
                DebugValue::Histogram(_) => {}
            }
        }
    }

    /// A counter's total so far.
    pub(crate) fn counter(&mut self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.update();
        self.counters.get(&key(name, labels)).copied().unwrap_or(0)
    }

    /// `mesh_tls_handshake_failures_total{side, reason}`.
    pub(crate) fn handshake_failures(&mut self, side: &str, reason: &str) -> u64 {
        self.counter(
            mesh::tower::tls::HANDSHAKE_FAILURES,
            &[("side", side), ("reason", reason)],
        )
    }

    /// A gauge's last value.
    pub(crate) fn gauge(&mut self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.update();
        self.gauges.get(&key(name, labels)).copied()
    }

    /// `mesh_certificate_expiry_timestamp_seconds{identity}`.
    pub(crate) fn expiry(&mut self, identity: &SpiffeId) -> Option<i64> {
        self.gauge(
            mesh::tower::tls::CERTIFICATE_EXPIRY,
            &[("identity", identity.as_str())],
        )
        .map(|v| v as i64)
    }
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "mesh-security-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temporary directory");
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to the file `name` in the directory.
    pub(crate) fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    /// A subdirectory, created.
    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(&path).expect("subdirectory");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) use mesh::tower::testing::eventually;
