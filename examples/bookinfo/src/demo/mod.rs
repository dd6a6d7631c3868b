//! The one-command demo: every service, the gateway, a DNS server and a development CA on
//! loopback.
//!
//! [`Demo::start`] starts, on one loopback address per pod ([`network`]), productpage,
//! details, ratings and reviews v1, v2 and v3 on Bookinfo's port 9080, each a `MeshServer`
//! with its own `MeshClient`, `Telemetry` and admin server; a DNS server answering
//! `*.default.svc.cluster.local` for them (`reviews` lists its three pods, `reviews-v1` ...
//! one each, for DestinationRule subsets); a development CA issuing each workload the
//! identity of its Bookinfo service account (`spiffe://cluster.local/ns/default/sa/bookinfo-reviews`)
//! with STRICT mTLS everywhere; and the ingress gateway on [`DemoOptions::gateway_addr`],
//! plaintext (or TLS for browsers) outside, mutual TLS to productpage.

pub mod network;
pub mod reload;
pub mod traffic;
pub mod workload;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mesh::dns::server::DnsServer;
use mesh::tower::admin::{AdminServer, PrometheusHandle};
use mesh::tower::telemetry::metrics::install_prometheus;
use mesh::tower::tls::DevCa;
use mesh::{MeshClient, MeshServer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::books::Upstreams;
use crate::gateway::{self, GatewayTls};
use network::{Network, Workload};

/// The default pod network of a demo run: `127.0.140.1` to `127.0.140.7`.
pub const DEFAULT_NETWORK: Ipv4Addr = Ipv4Addr::new(127, 0, 140, 0);

/// Where the demo's gateway listens unless told otherwise.
pub const DEFAULT_GATEWAY_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Each pod's admin port unless told otherwise (Envoy's).
pub const DEFAULT_ADMIN_PORT: u16 = 15000;

/// How the demo starts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DemoOptions {
    /// Where the gateway listens ([`DEFAULT_GATEWAY_ADDR`]; port 0 picks a free port).
    pub gateway_addr: SocketAddr,
    /// The /24 of loopback pod addresses ([`DEFAULT_NETWORK`]); pods get `.1` to `.7`.
    pub network: Ipv4Addr,
    /// Each pod's admin port, on the pod's address ([`DEFAULT_ADMIN_PORT`]; 0 picks free
    /// ports).
    pub admin_port: u16,
    /// YAML files of Istio documents (VirtualService, DestinationRule ...) applied to every
    /// workload's config, in order (Istio's tasks apply `destination-rule-all.yaml` before the
    /// VirtualServices that name its subsets); read at start, then followed while the demo
    /// runs ([`reload`]).
    pub config: Vec<PathBuf>,
    /// TLS for browsers at the gateway (plaintext when `None`).
    pub gateway_tls: Option<GatewayTls>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            gateway_addr: DEFAULT_GATEWAY_ADDR,
            network: DEFAULT_NETWORK,
            admin_port: DEFAULT_ADMIN_PORT,
            config: Vec::new(),
            gateway_tls: None,
        }
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The DNS server did not start.
    #[error("DNS server: {0}")]
    Dns(String),
    /// An address could not be bound (on Linux every `127.x` address is loopback; elsewhere
    /// the pod network's addresses may need adding to the loopback interface).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The config file is not YAML.
    #[error("{}: the config file must be YAML (.yaml or .yml)", .0.display())]
    ConfigFormat(PathBuf),
    /// The config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A workload's config is invalid (the file's documents, most likely).
    #[error("config: {0}")]
    Config(mesh::ConfigError),
    /// The documents of one config file are invalid.
    #[error("{}: {source}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its documents.
        source: mesh::ConfigError,
    },
    /// A certificate could not be issued or loaded.
    #[error("identity: {0}")]
    Identity(String),
    /// Telemetry could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(String),
    /// A client could not be built.
    #[error("client: {0}")]
    Client(String),
    /// A server could not be built.
    #[error("server: {0}")]
    Server(String),
    /// The Prometheus recorder could not be installed (another recorder is installed).
    #[error("metrics: {0}")]
    Metrics(String),
}

/// Where to look at a running demo.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Urls {
    /// The gateway's address.
    pub gateway: SocketAddr,
    /// `http://<gateway>/productpage` (`https` with TLS).
    pub productpage: String,
    /// Each pod's name and its admin server's address.
    pub admins: Vec<(String, SocketAddr)>,
}

impl Urls {
    /// The admin server of the pod `pod` (`productpage-v1`, `istio-ingressgateway-v1`).
    pub fn admin(&self, pod: &str) -> Option<SocketAddr> {
        self.admins.iter().find(|(p, _)| p == pod).map(|(_, a)| *a)
    }
}

impl fmt::Display for Urls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Bookinfo: {}", self.productpage)?;
        writeln!(f, "Metrics, config and endpoints of each pod:")?;
        for (pod, addr) in &self.admins {
            writeln!(f, "  {pod:<24} http://{addr}/stats/prometheus")?;
        }
        Ok(())
    }
}

/// A running demo; [`Demo::shutdown`] stops it (dropping it aborts every task).
#[derive(Debug)]
pub struct Demo {
    urls: Urls,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    dns: DnsServer,
    clients: Vec<MeshClient>,
    reloader: Arc<reload::Reloader>,
}

/// The process's Prometheus handle: the recorder is global, so it is installed once.
static METRICS: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

fn metrics() -> Result<PrometheusHandle, DemoError> {
    let mut slot = METRICS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = slot.as_ref() {
        return Ok(handle.clone());
    }
    let handle = install_prometheus().map_err(|e| DemoError::Metrics(e.to_string()))?;
    *slot = Some(handle.clone());
    Ok(handle)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, DemoError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr, source })
}

impl Demo {
    /// Starts everything; every listener is bound when this returns.
    pub async fn start(options: DemoOptions) -> Result<Demo, DemoError> {
        let handle = metrics()?;
        let network = Network::new(options.network);
        let dns = DnsServer::start().map_err(|e| DemoError::Dns(e.to_string()))?;
        for (name, ips) in network.records() {
            dns.set_a(&name, &ips, 30)
                .map_err(|e| DemoError::Dns(e.to_string()))?;
        }
        let (hash, documents) = reload::snapshot(&options.config);
        let documents = documents?;
        let ca = DevCa::new("cluster.local").map_err(|e| DemoError::Identity(e.to_string()))?;
        let (stop, stopped) = watch::channel(false);
        let mut demo = Demo {
            urls: Urls {
                gateway: options.gateway_addr,
                productpage: String::new(),
                admins: Vec::new(),
            },
            stop,
            tasks: JoinSet::new(),
            reloader: Arc::new(reload::Reloader::new(
                Vec::new(),
                dns.addr(),
                Vec::new(),
                hash,
            )),
            dns,
            clients: Vec::new(),
        };
        let mut live = Vec::with_capacity(Workload::ALL.len());
        for w in Workload::ALL {
            let parts = workload::build(w, demo.dns.addr(), &documents, &ca)?;
            let upstreams = Upstreams::default();
            let client = parts.client.clone();
            let app = match w {
                Workload::Productpage => crate::productpage::router(client, upstreams),
                Workload::Details => crate::details::router(),
                Workload::Ratings => crate::ratings::router(),
                Workload::Reviews(version) => crate::reviews::router(version, client, upstreams),
                Workload::Gateway => gateway::router(client, upstreams),
            };
            let server = MeshServer::new(workload::inbound(w, &parts.config))
                .name(w.service())
                .identity(parts.identity.clone())
                .telemetry(parts.telemetry.clone());
            // Checks the security settings before serving, so that a bad config fails the
            // start rather than a task; the handle follows the files ([`reload`]).
            let policy = server
                .policy()
                .map_err(|e| DemoError::Server(e.to_string()))?;
            // The admin server shows the client's config, which follows reloads.
            let admin = AdminServer::new()
                .metrics(handle.clone())
                .client(parts.client.clone())
                .identity(parts.identity.clone());
            let admin_listener =
                bind(SocketAddr::new(network.ip(w).into(), options.admin_port)).await?;
            let admin_addr = admin_listener
                .local_addr()
                .map_err(|source| DemoError::Bind {
                    addr: SocketAddr::new(network.ip(w).into(), options.admin_port),
                    source,
                })?;
            demo.urls.admins.push((w.pod_name(), admin_addr));
            demo.tasks
                .spawn(admin.serve(admin_listener, stopped_future(stopped.clone())));
            let addr = if w == Workload::Gateway {
                options.gateway_addr
            } else {
                network.service_addr(w)
            };
            let listener = bind(addr).await?;
            if w == Workload::Gateway {
                let local = listener
                    .local_addr()
                    .map_err(|source| DemoError::Bind { addr, source })?;
                demo.urls.gateway = local;
                demo.urls.productpage = gateway::describe(local, options.gateway_tls.is_some());
                // Checks the certificate before serving, so that a bad one fails the start
                // rather than a task.
                if let Some(tls) = &options.gateway_tls {
                    tls.server_config()
                        .map_err(|e| DemoError::Server(e.to_string()))?;
                }
                let serving = gateway::serve(
                    server,
                    listener,
                    app,
                    options.gateway_tls.clone(),
                    stopped_future(stopped.clone()),
                );
                demo.tasks.spawn(async move {
                    if let Err(e) = serving.await {
                        tracing::error!(error = %e, "gateway stopped");
                    }
                });
            } else {
                let shutdown = stopped_future(stopped.clone());
                demo.tasks.spawn(async move {
                    if let Err(e) = server.serve(listener, app, shutdown).await {
                        tracing::error!(error = %e, "server stopped");
                    }
                });
            }
            live.push(reload::Live {
                workload: w,
                client: parts.client.clone(),
                policy,
            });
            demo.clients.push(parts.client);
        }
        demo.reloader = Arc::new(reload::Reloader::new(
            options.config.clone(),
            demo.dns.addr(),
            live,
            hash,
        ));
        if demo.reloader.follows_files() {
            demo.tasks
                .spawn(reload::follow(demo.reloader.clone(), stopped.clone()));
        }
        Ok(demo)
    }

    /// Reads the `--config` files now, as the task that follows them does every
    /// [`reload::POLL_INTERVAL`], and applies them to every workload's server policy and
    /// client when their contents changed: `Ok(true)` when applied, `Ok(false)` when
    /// unchanged since the last read (or refused then). An error names the file (or the
    /// workload and the field) and the reason; every workload keeps its config.
    pub fn reload_now(&self) -> Result<bool, DemoError> {
        self.reloader.check()
    }

    /// Where the gateway and the admin servers are.
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The DNS server's address (it answers for `cluster.local.`).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.addr()
    }

    /// Stops accepting, lets requests in flight finish (at most 5 s), and stops the DNS
    /// server.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.clients.clear();
        self.dns.stop();
    }
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn stopped_future(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
