//! HTTP semantic-convention attributes of the client and server spans.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use http::uri::Authority;
use http::{HeaderMap, Method, StatusCode, Uri, Version};
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
    Some(KeyValue::new(
        "user_agent.original",
        remembered(Memo::UserAgent, ua),
    ))
}

/// `url.full` as a value, [`remembered`](Memo) (a client calls the same URLs again and
/// again).
pub(super) fn url_full_value(uri: &Uri) -> Value {
    remembered_by(
        Memo::UrlFull,
        |old| is_url_full(old, uri),
        || Arc::from(url_full(uri)),
    )
}

/// Whether `text` is [`url_full`] of `uri`, compared piece by piece without writing it.
fn is_url_full(text: &str, uri: &Uri) -> bool {
    let mut rest = text;
    let mut take = |piece: &str| match rest.strip_prefix(piece) {
        Some(r) => {
            rest = r;
            true
        }
        None => false,
    };
    let scheme_ok = uri
        .scheme_str()
        .is_none_or(|scheme| take(scheme) && take("://"));
    scheme_ok
        && uri.authority().is_none_or(|a| take(a.as_str()))
        && take(uri.path())
        && uri.query().is_none_or(|q| take("?") && take(q))
        && rest.is_empty()
}

/// `url.full`: the URI as it displays, written without `fmt`.
fn url_full(uri: &Uri) -> String {
    let scheme = uri.scheme_str();
    let authority = uri.authority().map(Authority::as_str);
    let path = uri.path();
    let query = uri.query();
    let mut out = String::with_capacity(
        scheme.map_or(0, |s| s.len() + 3)
            + authority.map_or(0, str::len)
            + path.len()
            + query.map_or(0, |q| q.len() + 1),
    );
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(authority) = authority {
        out.push_str(authority);
    }
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// `client.address` as a value, [`remembered`](Memo) (a connection's requests share it).
pub(super) fn client_address(ip: IpAddr) -> Value {
    with_ip_text(ip, |text| remembered(Memo::ClientAddress, text))
}

/// Calls `f` with the text of `ip`: an IPv4 address written digit by digit in a buffer (the
/// common case), an IPv6 one through `Display`.
fn with_ip_text<R>(ip: IpAddr, f: impl FnOnce(&str) -> R) -> R {
    let IpAddr::V4(v4) = ip else {
        return f(&ip.to_string());
    };
    let mut buf = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            buf[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            buf[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        buf[len] = b'0' + octet % 10;
        len += 1;
    }
    // Digits and dots only: always text.
    f(std::str::from_utf8(&buf[..len]).unwrap_or_default())
}

/// Attribute values that repeat from request to request: one remembered per kind and
/// thread, so a repeat costs a reference count instead of an allocation, a copy and a free
/// (here and again when the exported span is dropped).
#[derive(Clone, Copy, Debug)]
pub(super) enum Memo {
    /// The server span's `client.address` (the same for a connection's requests).
    ClientAddress,
    /// The server span's `server.address` (the `Host`).
    ServerAddress,
    /// The server span's `url.path`.
    Path,
    /// The server span's `user_agent.original`.
    UserAgent,
    /// The client span's `url.full`.
    UrlFull,
}

const MEMOS: usize = 5;

thread_local! {
    static MEMORY: RefCell<[Option<Arc<str>>; MEMOS]> =
        const { RefCell::new([const { None }; MEMOS]) };
}

/// `text` as a value: the one remembered for `kind` when it is the same text, else a new
/// one, remembered in its place.
pub(super) fn remembered(kind: Memo, text: &str) -> Value {
    remembered_by(kind, |old| old == text, || Arc::from(text))
}

/// The value remembered for `kind` when `same` says it is the one wanted, else `make`'s,
/// remembered in its place.
fn remembered_by(
    kind: Memo,
    same: impl FnOnce(&str) -> bool,
    make: impl FnOnce() -> Arc<str>,
) -> Value {
    let hit = MEMORY
        .try_with(|memory| {
            let memory = memory.try_borrow().ok()?;
            memory[kind as usize]
                .as_ref()
                .filter(|old| same(old))
                .cloned()
        })
        .ok()
        .flatten();
    if let Some(old) = hit {
        return Value::from(old);
    }
    let new = make();
    // Without the thread's memory (being torn down) the value is simply not remembered.
    let _ = MEMORY.try_with(|memory| {
        if let Ok(mut memory) = memory.try_borrow_mut() {
            memory[kind as usize] = Some(new.clone());
        }
    });
    Value::from(new)
}

/// The host and port of a plain `Host` value, `name[:port]` (letters, digits, `-` and `.`,
/// a port of one to five digits), read without [`Authority`]'s parser (which copies the
/// value); `None` for anything else, which that parser reads. The answer is the parser's.
pub(super) fn plain_host_port(value: &str) -> Option<(&str, Option<u16>)> {
    // One pass: the host's bytes up to the first `:`, then the port's digits.
    let bytes = value.as_bytes();
    let mut host_len = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' {
            host_len = i;
            break;
        }
        if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
            return None;
        }
    }
    if host_len == 0 {
        return None;
    }
    let host = value.get(..host_len)?;
    let Some(port) = bytes.get(host_len + 1..) else {
        return Some((host, None));
    };
    if !(1..=5).contains(&port.len()) {
        return None;
    }
    let mut n = 0u32;
    for &b in port {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    Some((host, u16::try_from(n).ok()))
}

/// How many attributes [`record_response`] may add to a span.
pub(super) const RESPONSE_ATTRIBUTES: usize = 3;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_full_is_the_display_form() {
        for uri in [
            "http://reviews.default.svc.cluster.local:9080/reviews/0?x=1&y",
            "https://a/",
            "/only/path?q",
            "/",
            "*",
            "reviews:9080",
            "http://a:1",
            "http://a?",
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(url_full(&uri), uri.to_string(), "{uri:?}");
        }
    }

    #[test]
    fn remembered_values_are_the_text_asked_for() {
        let uris: Vec<Uri> = [
            "http://a:1/x?q",
            "http://a:1/x",
            "http://a:1/x?q",
            "/x",
            "/x?",
        ]
        .iter()
        .map(|u| u.parse().unwrap())
        .collect();
        // Twice over, so each is asked for after itself and after each other one.
        for uri in uris.iter().chain(&uris).chain(uris.iter().rev()) {
            assert_eq!(url_full_value(uri), Value::from(url_full(uri)), "{uri}");
        }
        for (a, b) in [("http://a/x", "http://a/"), ("/x?q", "/x?"), ("/x", "/xy")] {
            let (a, b): (Uri, Uri) = (a.parse().unwrap(), b.parse().unwrap());
            assert!(!is_url_full(&url_full(&a), &b) && !is_url_full(&url_full(&b), &a));
        }
        for text in ["/a", "/b", "/b", "", "/a"] {
            assert_eq!(remembered(Memo::Path, text), Value::from(text.to_owned()));
        }
        for ip in ["10.0.0.1", "10.0.0.1", "::1", "10.0.0.2"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(client_address(ip), Value::from(ip.to_string()));
        }
    }

    #[test]
    fn plain_host_port_answers_as_the_authority_parser() {
        for value in [
            "reviews",
            "reviews:9080",
            "Reviews.Default.svc:80",
            "127.0.0.1:8080",
            "a:00080",
            "a:99999",
            "a:",
            ":80",
            "a:1:2",
            "[::1]:80",
            "user@host:80",
            "a b",
            "a_b:80",
            "a%41",
            "a/b",
            "",
        ] {
            let parsed = value
                .parse::<Authority>()
                .ok()
                .map(|a| (a.host().to_owned(), a.port_u16()));
            if let Some((host, port)) = plain_host_port(value) {
                assert_eq!(Some((host.to_owned(), port)), parsed, "{value:?}");
            }
        }
        assert_eq!(
            plain_host_port("reviews:9080"),
            Some(("reviews", Some(9080)))
        );
        assert_eq!(plain_host_port("a:99999"), Some(("a", None)));
        assert_eq!(plain_host_port("[::1]:80"), None);
    }

    #[test]
    fn ip_text_is_the_display_form() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "9.99.100.199",
            "::1",
            "fe80::1:2",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(with_ip_text(ip, str::to_owned), ip.to_string());
        }
        for a in 0..=255u8 {
            let ip = IpAddr::from([a, 255 - a, a / 3, a.wrapping_mul(7)]);
            assert_eq!(with_ip_text(ip, str::to_owned), ip.to_string());
        }
    }
}
