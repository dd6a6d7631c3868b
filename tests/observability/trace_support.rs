//! Shared pieces of the tracing tests: an OTLP/gRPC receiver started by the test that keeps
//! every span it is sent, workloads whose telemetry exports to it, MeshServers on loopback
//! (`127.0.99.x`), and a handler that notes the headers and context it saw.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use mesh::core::config::{ServerConfig, TelemetryConfig};
use mesh::core::telemetry::PeerMetadata;
use mesh::tower::MeshServer;
use mesh::tower::context::RequestContext;
use mesh::tower::telemetry::Telemetry;
use mesh::tower::telemetry::trace::{Tracer, provider_with_env};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::TcpListener;

/// `127.0.99.<host>`.
pub(crate) fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 99, host))
}

/// `SpanKind::Server` and `SpanKind::Client` in OTLP.
pub(crate) const SERVER: i32 = 2;
pub(crate) const CLIENT: i32 = 3;

/// One span as the receiver got it, with its resource's `service.name`.
#[derive(Clone, Debug)]
pub(crate) struct Collected {
    pub(crate) service: String,
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) span: Span,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

impl Collected {
    pub(crate) fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub(crate) fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id, empty for a root.
    pub(crate) fn parent(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// An attribute as text (integers in decimal).
    pub(crate) fn attr(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| text(&kv.value))
    }
}

/// Keeps what it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Collected>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let resource: Vec<(String, String)> = rs
                .resource
                .map(|r| {
                    r.attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(&kv.value)))
                        .collect()
                })
                .unwrap_or_default();
            let service = resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Collected {
                        service: service.clone(),
                        resource: resource.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver on loopback.
pub(crate) struct Receiver {
    spans: Arc<Mutex<Vec<Collected>>>,
    /// `http://127.0.99.x:port`.
    pub(crate) endpoint: String,
}

impl Receiver {
    /// Starts a receiver on `127.0.99.<host>`.
    pub(crate) async fn start(host: u8) -> Receiver {
        let listener = TcpListener::bind(SocketAddr::new(ip(host), 0))
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let collector = Collector::default();
        let spans = collector.spans.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Receiver { spans, endpoint }
    }

    /// Every span received so far.
    pub(crate) fn spans(&self) -> Vec<Collected> {
        self.spans.lock().unwrap().clone()
    }

    /// A provider exporting here, built from these `OTEL_*` values (plus the endpoint and a
    /// batch delay of an hour: tests flush by hand).
    pub(crate) fn provider(&self, service: &str, vars: &[(&str, &str)]) -> SdkTracerProvider {
        let endpoint = self.endpoint.clone();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        provider_with_env(service, move |k| match k {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some(endpoint.clone()),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("3600000".to_owned()),
            _ => vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        })
        .expect("valid settings")
        .expect("tracing on")
    }
}

/// Exports every finished span of `providers` now.
///
/// The batch processor exports on a thread of its own through the gRPC channel running on
/// this runtime, so the blocking flush runs on tokio's blocking pool (which also stops paused
/// time from jumping while it waits).
pub(crate) async fn flush(providers: &[SdkTracerProvider]) {
    for provider in providers {
        let provider = provider.clone();
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .expect("flush task")
            .expect("flushed");
    }
}

/// A workload's telemetry: `config`, spans through `provider` (or none).
pub(crate) fn telemetry(
    config: TelemetryConfig,
    provider: Option<&SdkTracerProvider>,
) -> Telemetry {
    let tracer = match provider {
        Some(p) => Tracer::sdk(p.tracer("mesh")),
        None => Tracer::none(),
    };
    Telemetry::new(PeerMetadata::default(), config)
        .expect("telemetry")
        .with_tracer(tracer)
}

/// What a handler saw: the request's headers and its context.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    pub(crate) headers: HeaderMap,
    pub(crate) context: Option<RequestContext>,
}

/// Where a handler notes what it saw.
pub(crate) type SeenSlot = Arc<Mutex<Option<Seen>>>;

/// Notes the headers and the current context into `slot`.
pub(crate) fn note(slot: &SeenSlot, headers: &HeaderMap) {
    *slot.lock().unwrap() = Some(Seen {
        headers: headers.clone(),
        context: RequestContext::current(),
    });
}

/// Serves `app` with a MeshServer named `name` on `127.0.99.<host>`; answers its address.
pub(crate) async fn serve(
    host: u8,
    name: &str,
    telemetry: Telemetry,
    app: axum::Router,
) -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::new(ip(host), 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = MeshServer::new(ServerConfig::default())
        .name(name.to_owned())
        .telemetry(telemetry);
    tokio::spawn(async move {
        let never = std::future::pending::<()>();
        server.serve(listener, app, never).await.expect("serves");
    });
    addr
}

/// A header as text.
pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("?").to_owned())
}

/// Sends `GET uri` with `headers` through a bare hyper client (which adds and retries
/// nothing); answers the status and the body.
pub(crate) async fn raw_get(uri: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut req = http::Request::get(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = client
        .request(req.body(http_body_util::Empty::new()).expect("request"))
        .await
        .expect("answered");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
