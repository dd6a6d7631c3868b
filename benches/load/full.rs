//! The `mesh-full` variant: every feature on, on both sides.
//!
//! The client (workload `load-client`) discovers `secure` through DNS, matches a header
//! route that splits 90/10 between two subsets, keeps outlier detection and connection-pool
//! limits (set high enough never to trip), and calls over mutual TLS (automatic
//! ISTIO_MUTUAL with a development CA's SPIFFE identities). The server is a `MeshServer` in
//! STRICT mode with an AuthorizationPolicy allowing only the client's principal. Both
//! record Istio's metrics into an installed Prometheus recorder and send every span (always
//! sampled, unless `--trace-sampling` gives a share of new traces) through a batch processor
//! to an exporter that drops them.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full as FullBody;
use mesh::core::config::Format;
use mesh::core::identity::SpiffeId;
use mesh::prelude::*;
use mesh::tower::telemetry::Tracer;
use mesh::tower::telemetry::metrics::prometheus_builder;
use mesh::tower::testing::DnsServer;
use mesh::tower::tls::DevCa;
use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tokio::net::TcpListener;

use crate::caller::{Caller, uri};
use crate::discard::Discard;
use crate::servers::{self, BODY};

const TRUST_DOMAIN: &str = "cluster.local";
/// The mesh server's address (the bare server is on .1, proxies on .2 and up).
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 170, 9);

/// What a `mesh-full` worker holds while it runs, and what it reports at the end.
pub(crate) struct Full {
    provider: SdkTracerProvider,
    exported: Discard,
    metrics: PrometheusHandle,
    _dns: DnsServer,
}

impl Full {
    /// Installs the recorder and the tracer provider (sampling `trace_sampling` of new
    /// traces, continuing a caller's decision), starts the DNS server and the mesh server,
    /// and builds the client (returned as the caller). Call once per process, inside the
    /// runtime.
    pub(crate) async fn start(trace_sampling: f64) -> Result<(Self, Caller), String> {
        let recorder = prometheus_builder().build_recorder();
        let metrics = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| format!("recorder: {e}"))?;
        let exported = Discard::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler(trace_sampling))
            .with_batch_exporter(exported.clone())
            .build();
        let upkeep = metrics.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        });

        let ca = DevCa::new(TRUST_DOMAIN).map_err(|e| format!("CA: {e}"))?;
        let identity = |sa: &str| {
            SpiffeId::workload(TRUST_DOMAIN, "default", sa)
                .map_err(|e| e.to_string())
                .and_then(|id| ca.identity(&id).map_err(|e| e.to_string()))
                .map_err(|e| format!("identity {sa}: {e}"))
        };
        // Tracers named by static text, as a service names its own: an owned name would be
        // copied into every span the SDK exports.
        let telemetry = |config: &MeshConfig, name: &'static str| {
            Telemetry::from_config(config)
                .map(|t| t.with_tracer(Tracer::sdk(provider.tracer(name))))
                .map_err(|e| format!("telemetry: {e}"))
        };

        let server_config = load(&server_yaml())?;
        let listener = TcpListener::bind((SERVER_IP, 0))
            .await
            .map_err(|e| format!("bind the mesh server on {SERVER_IP}: {e}"))?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = MeshServer::from_config(&server_config)
            .map_err(|e| format!("server: {e}"))?
            .identity(identity("secure")?)
            .telemetry(telemetry(&server_config, "secure")?);
        let app = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(http::Response::new(FullBody::new(Bytes::from_static(BODY))))
        });
        tokio::spawn(async move {
            if let Err(e) = server.serve(listener, app, std::future::pending()).await {
                eprintln!("load: mesh server: {e}");
            }
        });

        let dns = servers::dns("secure.default.svc", IpAddr::V4(SERVER_IP))?;
        let client_config = load(&client_yaml(dns.addr()))?;
        let client = MeshClient::builder()
            .telemetry(telemetry(&client_config, "load-client")?)
            .config(client_config)
            .identity(identity("load-client")?)
            .build()
            .map_err(|e| format!("client: {e}"))?;
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", http::HeaderValue::from_static("tenant-7"));
        let caller = Caller::Mesh {
            client,
            uri: uri(&format!("http://secure:{}/", addr.port()))?,
            headers,
        };
        let full = Self {
            provider,
            exported,
            metrics,
            _dns: dns,
        };
        Ok((full, caller))
    }

    /// Spans exported and `istio_requests_total` series so far: proof the layers worked.
    pub(crate) fn evidence(&self) -> (u64, usize) {
        let _ = self.provider.force_flush();
        let series = self
            .metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .count();
        (self.exported.count(), series)
    }
}

/// The client's documents: the destination with subsets, pool limits and outlier
/// detection, and a VirtualService whose header route splits between the subsets.
fn client_yaml(nameserver: SocketAddr) -> String {
    format!(
        "workload: {{service: load-client, namespace: default}}
discovery: {{nameservers: [\"{nameserver}\"]}}
destinations:
- host: secure
  subsets: [{{name: a, host: secure}}, {{name: b, host: secure}}]
  connectionPool:
    tcp: {{maxConnections: 1024}}
    http: {{http1MaxPendingRequests: 1024, http2MaxRequests: 1024}}
  outlierDetection: {{consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: secure}}
spec:
  hosts: [secure]
  http:
  - match: [{{headers: {{x-tenant: {{prefix: tenant-}}}}}}]
    route:
    - {{destination: {{host: secure, subset: a}}, weight: 90}}
    - {{destination: {{host: secure, subset: b}}, weight: 10}}
  - route: [{{destination: {{host: secure}}}}]
"
    )
}

/// The server's documents: STRICT mutual TLS and a policy allowing only the client.
fn server_yaml() -> String {
    "workload: {service: secure, namespace: default}
security: {mtls: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: load-client-only, namespace: default}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: [\"cluster.local/ns/default/sa/load-client\"]}}]
    to: [{operation: {methods: [GET], paths: [\"/*\"]}}]
"
    .to_owned()
}

/// Every span when `share` is 1 (the default: everything on); else a share of new traces, as
/// Istio's sampling percentage, with a traced caller's decision followed.
fn sampler(share: f64) -> Sampler {
    if share >= 1.0 {
        Sampler::AlwaysOn
    } else {
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(share)))
    }
}

fn load(yaml: &str) -> Result<MeshConfig, String> {
    MeshConfig::from_str(yaml, Format::Yaml).map_err(|e| format!("config: {e}\n{yaml}"))
}
