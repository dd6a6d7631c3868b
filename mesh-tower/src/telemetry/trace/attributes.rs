//! HTTP semantic-convention attributes of the client and server spans.

use http::{HeaderMap, Method, StatusCode, Version};
use opentelemetry::trace::Status;
use opentelemetry::{KeyValue, Value};

use super::tracer::ActiveSpan;

/// The span's `http.request.method`: the method, or `_OTHER` for one semconv does not know.
pub(super) fn method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// `network.protocol.version`.
pub(super) fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// `user_agent.original`, when the request has one.
pub(super) fn user_agent(headers: &HeaderMap) -> Option<KeyValue> {
    let ua = headers.get(http::header::USER_AGENT)?.to_str().ok()?;
    Some(KeyValue::new("user_agent.original", ua.to_owned()))
}

/// A static string value, without allocating.
pub(super) fn s(v: &'static str) -> Value {
    Value::from(v)
}

/// Records the answer: `http.response.status_code`, and for a failure `error.type` (the
/// status code, or `flag` when a local reply names one) and the Error status. A server span
/// fails on 5xx only, a client span on 4xx too (HTTP semantic conventions).
pub(super) fn record_response(
    span: &mut ActiveSpan,
    status: StatusCode,
    server: bool,
    flag: Option<&'static str>,
) {
    if !span.is_recording() {
        return;
    }
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if let Some(flag) = flag {
        span.set_attribute(KeyValue::new("response_flags", s(flag)));
    }
    let failed = status.is_server_error() || (!server && status.is_client_error());
    if failed {
        let kind = match flag {
            Some(f) if f != "-" => Value::from(f),
            _ => Value::from(status.as_str().to_owned()),
        };
        span.set_attribute(KeyValue::new("error.type", kind));
        span.set_status(Status::error(""));
    }
}

/// Records a failure without an answer (the inner service failed).
pub(super) fn record_failure(span: &mut ActiveSpan) {
    if span.is_recording() {
        span.set_attribute(KeyValue::new("error.type", s("_OTHER")));
        span.set_status(Status::error(""));
    }
}
