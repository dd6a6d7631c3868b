//! One request as both metrics layers follow it: what is known when it starts, what the
//! response adds, and the recording (metrics and access-log line) when it ends.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Version};
use http_body::Frame;
use mesh_core::identity::SpiffeId;
use mesh_core::telemetry::AccessLogRecord;
use mesh_core::telemetry::labels::{RequestProtocol, SecurityPolicy};
use tokio::time::Instant;

use super::labels;
use super::series::{Measures, Series, Vary};
use crate::telemetry::AccessLog;

/// What one layer records with.
#[derive(Debug)]
pub(crate) struct State {
    /// The metric series; none when metrics are off.
    pub(crate) series: Option<Series>,
    /// The stack's access log.
    pub(crate) log: Option<AccessLog>,
    /// The own peer-metadata header value.
    pub(crate) encoded: HeaderValue,
    /// The access log's `upstream_cluster` (Istio's `outbound|port|subset|host` or
    /// `inbound|port||`; the server's port is filled per request).
    pub(crate) cluster: Arc<str>,
}

/// The request fields only the access log needs.
#[derive(Debug, Default)]
struct LogFields {
    start_ms: u64,
    method: String,
    path: String,
    protocol: &'static str,
    x_forwarded_for: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    authority: Option<String>,
    upstream_host: Option<String>,
    upstream_cluster: Option<String>,
    downstream_local: Option<SocketAddr>,
    downstream_remote: Option<SocketAddr>,
    upstream_ms: Option<u64>,
    details: Option<&'static str>,
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// One request being followed. Dropping it records it: when the response body ends, fails
/// or is dropped, or (response code 0, flag `DC`) when the request is given up before a
/// response.
#[derive(Debug)]
pub(crate) struct Call {
    state: Arc<State>,
    start: Instant,
    protocol: RequestProtocol,
    request_bytes: u64,
    /// The other side's peer-metadata header.
    peer: Option<HeaderValue>,
    principal: Option<SpiffeId>,
    policy: SecurityPolicy,
    code: u16,
    flags: &'static str,
    grpc: Option<u32>,
    response_bytes: u64,
    log: Option<Box<LogFields>>,
}

impl Call {
    /// Starts following `req`: its protocol, its size (the request line and headers, and
    /// `body` bytes) and, with an access log, the fields the line needs.
    pub(crate) fn start<B>(state: &Arc<State>, req: &Request<B>, body: u64) -> Self {
        let headers = req.headers();
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let request_line = (req.method().as_str().len() + path.len() + 12) as u64;
        let log = state.log.as_ref().map(|log| {
            Box::new(LogFields {
                start_ms: log.now_unix_ms(),
                method: req.method().as_str().to_owned(),
                path: path.to_owned(),
                protocol: version_name(req.version()),
                x_forwarded_for: header(headers, "x-forwarded-for"),
                user_agent: header(headers, "user-agent"),
                request_id: header(headers, mesh_core::telemetry::REQUEST_ID_HEADER),
                authority: req
                    .uri()
                    .authority()
                    .map(|a| a.as_str().to_owned())
                    .or_else(|| header(headers, "host")),
                ..LogFields::default()
            })
        });
        let (size, protocol) = labels::request_size_and_protocol(headers);
        Self {
            state: state.clone(),
            start: crate::clock::now(),
            protocol,
            request_bytes: request_line + size + body,
            peer: None,
            principal: None,
            policy: SecurityPolicy::Unknown,
            code: 0,
            flags: "DC",
            grpc: None,
            response_bytes: 0,
            log,
        }
    }

    /// The own peer-metadata header value.
    pub(crate) fn encoded(&self) -> &HeaderValue {
        &self.state.encoded
    }

    /// The other side's peer metadata, as received.
    pub(crate) fn peer(&mut self, peer: Option<HeaderValue>) {
        self.peer = peer;
    }

    /// The connection's verified caller and security policy (server side).
    pub(crate) fn connection(
        &mut self,
        principal: Option<SpiffeId>,
        policy: SecurityPolicy,
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
    ) {
        self.principal = principal;
        self.policy = policy;
        if let Some(log) = &mut self.log {
            log.downstream_local = local;
            log.downstream_remote = remote;
            if let Some(local) = local {
                log.upstream_cluster = Some(format!("{}{}||", self.state.cluster, local.port()));
                log.upstream_host = Some(local.to_string());
            }
        }
    }

    /// The response head: its status, gRPC status, size, why it has its status
    /// (`via_upstream` unless `local` gives a local reply's flag and details) and the
    /// endpoint that answered (client side).
    pub(crate) fn respond(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        local: Option<(&'static str, &'static str)>,
        endpoint: Option<SocketAddr>,
    ) {
        self.code = status.as_u16();
        let (size, grpc) = labels::size_and_grpc_status(headers);
        self.grpc = grpc;
        self.response_bytes = 15 + size;
        let (flags, details) = local.unwrap_or(("", "via_upstream"));
        self.flags = flags;
        // Only the access log needs the details and the upstream time: no clock read
        // without one.
        if let Some(log) = &mut self.log {
            log.details = Some(details);
            if local.is_none() {
                log.upstream_ms =
                    Some(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX));
            }
            if log.upstream_cluster.is_none() {
                log.upstream_cluster = Some(self.state.cluster.to_string());
            }
            if let Some(endpoint) = endpoint {
                log.upstream_host = Some(endpoint.to_string());
            }
        }
    }

    /// A frame of the response body on its way: its bytes, and the gRPC status of trailers.
    pub(crate) fn frame(&mut self, frame: &Frame<Bytes>) {
        if let Some(data) = frame.data_ref() {
            self.response_bytes += data.len() as u64;
        } else if let Some(trailers) = frame.trailers_ref() {
            let (size, grpc) = labels::size_and_grpc_status(trailers);
            self.response_bytes += size;
            if let Some(status) = grpc {
                self.grpc = Some(status);
            }
        }
    }
}

impl crate::body::BodyObserver for Call {
    fn frame(&mut self, frame: &Frame<Bytes>) {
        Call::frame(self, frame);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        if let Some(series) = &self.state.series {
            let vary = Vary {
                peer: self.peer.as_ref(),
                principal: self.principal.as_ref().map(SpiffeId::as_str),
                policy: self.policy,
                protocol: self.protocol,
                code: self.code,
                grpc: self.grpc,
                flags: self.flags,
            };
            series.record(
                &vary,
                Measures {
                    duration_ms: elapsed.as_secs_f64() * 1000.0,
                    request_bytes: self.request_bytes,
                    response_bytes: self.response_bytes,
                },
            );
        }
        if let (Some(log), Some(fields)) = (&self.state.log, self.log.take()) {
            let fields = *fields;
            log.write(&AccessLogRecord {
                start_time_ms: fields.start_ms,
                method: Some(fields.method),
                path: Some(fields.path),
                protocol: Some(fields.protocol.to_owned()),
                response_code: self.code,
                response_flags: self.flags.to_owned(),
                response_code_details: fields
                    .details
                    .or((self.code == 0).then_some("downstream_remote_disconnect"))
                    .map(str::to_owned),
                connection_termination_details: None,
                upstream_transport_failure_reason: None,
                bytes_received: self.request_bytes,
                bytes_sent: self.response_bytes,
                duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                upstream_service_time_ms: fields.upstream_ms,
                x_forwarded_for: fields.x_forwarded_for,
                user_agent: fields.user_agent,
                request_id: fields.request_id,
                authority: fields.authority,
                upstream_host: fields.upstream_host,
                upstream_cluster: fields.upstream_cluster,
                upstream_local_address: None,
                downstream_local_address: fields.downstream_local.map(|a| a.to_string()),
                downstream_remote_address: fields.downstream_remote.map(|a| a.to_string()),
                requested_server_name: None,
                route_name: None,
            });
        }
    }
}
