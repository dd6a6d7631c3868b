//! Telemetry for both stacks: Istio's standard metrics, OpenTelemetry spans with trace
//! context propagation, and access logs.
//!
//! A [`Telemetry`] is built once per workload (from [`MeshConfig`], or by hand) and given to
//! the [`MeshClient`](crate::client::MeshClient) and the [`MeshServer`](crate::server::MeshServer)
//! (or [`ServerLayer`](crate::server::ServerLayer)); it is cheap to clone.
//!
//! | stack | layers, outermost first |
//! |---|---|
//! | client | `MeshClient::send` writes the `x-request-id`, headers and cookies of the inbound request being handled, before routing (so routes match on them); then per destination [`trace::ClientTraceLayer`] (client span; its trace context written on the call), [`metrics::ClientMetricsLayer`] (`reporter="source"` metrics, peer metadata sent, client access log) |
//! | server | [`trace::ServerTraceLayer`] (trace context read, server span, `x-request-id`), [`metrics::ServerMetricsLayer`] (`reporter="destination"` metrics, peer metadata read and stripped, server access log), then the rest of the server stack |

use std::sync::Arc;

use http::HeaderValue;
use mesh_core::config::{MeshConfig, TelemetryConfig};
use mesh_core::telemetry::PeerMetadata;

pub mod access_log;
pub mod metrics;
pub mod trace;

pub use access_log::AccessLog;

/// The cluster domain a workload is taken to be in unless told otherwise.
const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
pub use metrics::{ClientMetricsLayer, ServerMetricsLayer};
pub use trace::{ClientTraceLayer, ServerTraceLayer, Tracer};

/// A telemetry setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An access-log file cannot be opened for appending.
    #[error("access log {path}: {source}")]
    AccessLog {
        /// The file.
        path: String,
        /// Why it cannot be opened.
        #[source]
        source: std::io::Error,
    },
}

/// What both stacks of a workload report with: its own peer metadata, the settings, the
/// tracer and the access logs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Telemetry {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) config: TelemetryConfig,
    /// This workload, as the peer-metadata header describes it.
    pub(crate) workload: PeerMetadata,
    /// [`PeerMetadata::encode`] of `workload`, sent on every call and answer.
    pub(crate) encoded: HeaderValue,
    /// The host this workload serves as, `<service>.<namespace>.svc.<cluster domain>`: the
    /// server's `destination_service` (`unknown` for an unknown workload).
    pub(crate) service_host: String,
    pub(crate) tracer: Tracer,
    pub(crate) client_log: Option<AccessLog>,
    pub(crate) server_log: Option<AccessLog>,
}

impl Default for Telemetry {
    /// Metrics on with an `unknown` workload, spans through the global tracer provider, no
    /// access log.
    fn default() -> Self {
        Self::with_parts(
            PeerMetadata::default(),
            TelemetryConfig::default(),
            None,
            None,
        )
    }
}

impl Telemetry {
    /// The telemetry of a workload's whole configuration: its workload as peer metadata
    /// (cluster `telemetry.clusterId`), its telemetry settings, spans through the global
    /// tracer provider (see [`trace::init_from_env`]). Fails when an access-log file cannot be
    /// opened.
    pub fn from_config(config: &MeshConfig) -> Result<Self, TelemetryError> {
        let workload = PeerMetadata::from_workload(&config.workload, &config.telemetry.cluster_id);
        let telemetry = Self::new(workload, config.telemetry.clone())?;
        Ok(telemetry.with_cluster_domain(&config.workload.cluster_domain))
    }

    /// Telemetry for `workload` with `config`; the workload's host is taken to be in
    /// `cluster.local` (see [`Telemetry::with_cluster_domain`]).
    pub fn new(workload: PeerMetadata, config: TelemetryConfig) -> Result<Self, TelemetryError> {
        let client_log = config
            .client_access_log
            .as_ref()
            .map(AccessLog::open)
            .transpose()?;
        let server_log = config
            .server_access_log
            .as_ref()
            .map(AccessLog::open)
            .transpose()?;
        Ok(Self::with_parts(workload, config, client_log, server_log))
    }

    /// No metrics, no spans, no access log, no new trace or request id: trace context,
    /// `x-request-id` and configured headers an inbound request carries still propagate.
    pub fn disabled() -> Self {
        let config = TelemetryConfig {
            metrics: false,
            tracing: false,
            generate_request_id: false,
            ..TelemetryConfig::default()
        };
        Self::with_parts(PeerMetadata::default(), config, None, None).with_tracer(Tracer::none())
    }

    fn with_parts(
        workload: PeerMetadata,
        config: TelemetryConfig,
        client_log: Option<AccessLog>,
        server_log: Option<AccessLog>,
    ) -> Self {
        let encoded = crate::interned::interned(workload.encode());
        let service_host = metrics::service_host(&workload, DEFAULT_CLUSTER_DOMAIN);
        Self {
            shared: Arc::new(Shared {
                config,
                workload,
                encoded,
                service_host,
                tracer: Tracer::global(),
                client_log,
                server_log,
            }),
        }
    }

    /// The same telemetry with spans made by `tracer` instead of the global provider's.
    pub fn with_tracer(self, tracer: Tracer) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        shared.tracer = tracer;
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The same telemetry for a workload in the cluster domain `domain` (its server reports
    /// `destination_service="<service>.<namespace>.svc.<domain>"`).
    pub fn with_cluster_domain(self, domain: &str) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        shared.service_host = metrics::service_host(&shared.workload, domain);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Resolves once every access-log line written so far (client and server) is in its
    /// file or on stdout.
    pub async fn flush_access_logs(&self) {
        for log in [&self.shared.client_log, &self.shared.server_log]
            .into_iter()
            .flatten()
        {
            log.flush().await;
        }
    }

    /// The settings.
    pub fn config(&self) -> &TelemetryConfig {
        &self.shared.config
    }

    /// This workload as peers see it.
    pub fn workload(&self) -> &PeerMetadata {
        &self.shared.workload
    }
}

/// A destination a client-stack leg sends to, as its metrics and spans name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Upstream {
    /// The qualified host (`reviews.default.svc.cluster.local`), the SRV name, or the address.
    pub(crate) host: Arc<str>,
    /// The port (0 for an SRV name).
    pub(crate) port: u16,
    /// The DestinationRule subset, when the leg sends to one.
    pub(crate) subset: Option<Arc<str>>,
}

impl Upstream {
    /// A destination telemetry knows nothing of.
    pub(crate) fn unknown() -> Self {
        Self {
            host: Arc::from(mesh_core::telemetry::peer_metadata::UNKNOWN),
            port: 0,
            subset: None,
        }
    }
}
