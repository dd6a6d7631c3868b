//! What an inbound request hands to the outbound calls made while handling it, as pure
//! functions: which trace context is the parent of a client span, and how `x-request-id`,
//! configured headers and cookies are written onto an outbound request without overriding
//! what the application set itself.

use http::header::COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::request_id::{REQUEST_ID_NAME, is_valid_request_id};
use super::trace_context::{TraceContext, extract};

/// What the server stack captured from an inbound request for the outbound calls made while
/// handling it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Propagated {
    /// The context outbound calls continue: the server span's (its `span_id` is the server
    /// span), or the caller's when this workload makes no span.
    pub trace: Option<TraceContext>,
    /// The request's `x-request-id`.
    pub request_id: Option<HeaderValue>,
    /// The configured headers the request carried, in configuration order (each value kept,
    /// repeated headers included).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The configured cookies the request carried, as `name=value` pairs.
    pub cookies: Vec<(String, String)>,
}

impl Propagated {
    /// Captures the configured `headers` and `cookies` (by name) of an inbound request's
    /// `inbound` headers, with its trace context and request id.
    pub fn capture(
        inbound: &HeaderMap,
        trace: Option<TraceContext>,
        request_id: Option<HeaderValue>,
        headers: &[HeaderName],
        cookies: &[String],
    ) -> Propagated {
        let mut captured = Vec::new();
        for name in headers {
            for value in inbound.get_all(name) {
                captured.push((name.clone(), value.clone()));
            }
        }
        Propagated {
            trace,
            request_id,
            headers: captured,
            cookies: read_cookies(inbound, cookies),
        }
    }

    /// Whether nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.trace.is_none()
            && self.request_id.is_none()
            && self.headers.is_empty()
            && self.cookies.is_empty()
    }

    /// Writes the request id, the headers and the cookies onto an outbound request's
    /// `headers`: a header the application set is left as it is, and a cookie it set keeps its
    /// value (trace headers are the client span's business, see [`choose_parent`]).
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(id) = &self.request_id
            && !headers.contains_key(&REQUEST_ID_NAME)
        {
            headers.insert(REQUEST_ID_NAME.clone(), id.clone());
        }
        let mut i = 0;
        while i < self.headers.len() {
            let name = &self.headers[i].0;
            let run = self.headers[i..]
                .iter()
                .take_while(|(n, _)| n == name)
                .count();
            if !headers.contains_key(name) {
                for (n, v) in &self.headers[i..i + run] {
                    headers.append(n.clone(), v.clone());
                }
            }
            i += run;
        }
        if !self.cookies.is_empty()
            && let Some(cookie) = merge_cookies(headers, &self.cookies)
        {
            headers.remove(COOKIE);
            headers.insert(COOKIE, cookie);
        }
    }
}

/// The cookies named in `names` that `headers` carry (every `cookie` header read), in the
/// order of `names`; the first value of a repeated cookie wins. Values that are not visible
/// ASCII are skipped.
pub fn read_cookies(headers: &HeaderMap, names: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if names.is_empty() {
        return out;
    }
    for name in names {
        let found = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim());
        if let Some(value) = found
            && value.bytes().all(|b| b.is_ascii_graphic() && b != b';')
            && !out.iter().any(|(n, _)| n == name)
        {
            out.push((name.clone(), value.to_owned()));
        }
    }
    out
}

/// One `cookie` header carrying the cookies `headers` already carry (all `cookie` headers
/// joined with `; `) followed by those of `propagated` whose names are not among them.
/// `None` when nothing is to be added (the headers are left as they are).
pub fn merge_cookies(headers: &HeaderMap, propagated: &[(String, String)]) -> Option<HeaderValue> {
    let existing: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let has = |name: &str| {
        existing
            .iter()
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(n, _)| n.trim() == name)
    };
    let missing: Vec<&(String, String)> = propagated.iter().filter(|(n, _)| !has(n)).collect();
    if missing.is_empty() {
        return None;
    }
    let mut out = String::new();
    for part in existing
        .iter()
        .map(|v| v.trim().trim_end_matches(';').trim())
        .filter(|v| !v.is_empty())
    {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(part);
    }
    for (name, value) in missing {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    HeaderValue::try_from(out).ok()
}

/// The parent a client span continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parent {
    /// Trace headers the application set on the outbound request itself (forwarded by hand).
    Headers(TraceContext),
    /// The context of the inbound request being handled.
    Inbound(TraceContext),
    /// No context anywhere, and tracing is on: a new trace.
    NewRoot,
    /// No context, and tracing is off: no trace.
    None,
}

impl Parent {
    /// The parent's context, if it has one.
    pub fn context(&self) -> Option<&TraceContext> {
        match self {
            Parent::Headers(c) | Parent::Inbound(c) => Some(c),
            Parent::NewRoot | Parent::None => None,
        }
    }
}

/// Chooses the parent of an outbound call: trace headers the application wrote on it win,
/// then the inbound request's context, then a new trace when `tracing` is on.
pub fn choose_parent(
    outbound: &HeaderMap,
    inbound: Option<&TraceContext>,
    tracing: bool,
) -> Parent {
    if let Some(ctx) = extract(outbound) {
        return Parent::Headers(ctx);
    }
    match inbound {
        Some(ctx) => Parent::Inbound(ctx.clone()),
        None if tracing => Parent::NewRoot,
        None => Parent::None,
    }
}

/// The request id of `headers`, when there is exactly one and it is valid.
pub fn request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut all = headers.get_all(&REQUEST_ID_NAME).iter();
    match (all.next(), all.next()) {
        (Some(v), None) if is_valid_request_id(v.as_bytes()) => Some(v.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace_context::{TRACEPARENT, parse_traceparent};
    use proptest::prelude::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parent_choice_order() {
        let inbound = parse_traceparent(TP).unwrap();
        let forwarded = "00-11111111111111111111111111111111-2222222222222222-01";
        let by_hand = headers(&[(TRACEPARENT, forwarded)]);
        assert_eq!(
            choose_parent(&by_hand, Some(&inbound), true),
            Parent::Headers(parse_traceparent(forwarded).unwrap())
        );
        let none = HeaderMap::new();
        assert_eq!(
            choose_parent(&none, Some(&inbound), false),
            Parent::Inbound(inbound.clone())
        );
        assert_eq!(choose_parent(&none, None, true), Parent::NewRoot);
        assert_eq!(choose_parent(&none, None, false), Parent::None);
        // Garbage written by the application does not win.
        let garbage = headers(&[(TRACEPARENT, "nope")]);
        assert_eq!(
            choose_parent(&garbage, Some(&inbound), true),
            Parent::Inbound(inbound)
        );
        assert_eq!(Parent::None.context(), None);
    }

    #[test]
    fn reads_named_cookies_from_every_header() {
        let h = headers(&[
            ("cookie", "user=jason; other=x"),
            ("cookie", "session=abc ;user=later"),
        ]);
        let names = vec!["user".to_owned(), "session".into(), "absent".into()];
        assert_eq!(
            read_cookies(&h, &names),
            pairs(&[("user", "jason"), ("session", "abc")])
        );
        assert!(read_cookies(&h, &[]).is_empty());
        let bad = headers(&[("cookie", "user=a b")]);
        assert!(read_cookies(&bad, &names).is_empty());
    }

    #[test]
    fn merges_cookies_without_duplicating_names() {
        let carried = pairs(&[("user", "jason"), ("session", "abc")]);
        assert_eq!(
            merge_cookies(&HeaderMap::new(), &carried).unwrap(),
            "user=jason; session=abc"
        );
        let app = headers(&[("cookie", "user=mine; theme=dark;")]);
        assert_eq!(
            merge_cookies(&app, &carried).unwrap(),
            "user=mine; theme=dark; session=abc"
        );
        let all = headers(&[("cookie", "user=a"), ("cookie", "session=b")]);
        assert_eq!(merge_cookies(&all, &carried), None);
    }

    #[test]
    fn apply_keeps_what_the_application_set() {
        let inbound = headers(&[
            ("end-user", "jason"),
            ("x-tenant", "a"),
            ("x-tenant", "b"),
            ("cookie", "user=jason; other=x"),
        ]);
        let names = [
            HeaderName::from_static("end-user"),
            HeaderName::from_static("x-tenant"),
            HeaderName::from_static("x-absent"),
        ];
        let p = Propagated::capture(
            &inbound,
            None,
            Some(HeaderValue::from_static("rid")),
            &names,
            &["user".to_owned()],
        );
        assert!(!p.is_empty());
        assert_eq!(p.headers.len(), 3);

        let mut out = headers(&[("x-tenant", "mine"), ("cookie", "theme=dark")]);
        p.apply(&mut out);
        assert_eq!(out["x-request-id"], "rid");
        assert_eq!(out["end-user"], "jason");
        assert_eq!(out.get_all("x-tenant").iter().count(), 1);
        assert_eq!(out["x-tenant"], "mine");
        assert_eq!(out["cookie"], "theme=dark; user=jason");

        let mut fresh = HeaderMap::new();
        p.apply(&mut fresh);
        let tenants: Vec<_> = fresh.get_all("x-tenant").iter().collect();
        assert_eq!(tenants, ["a", "b"]);
        assert_eq!(fresh["cookie"], "user=jason");

        let mut own_id = headers(&[("x-request-id", "app")]);
        p.apply(&mut own_id);
        assert_eq!(own_id["x-request-id"], "app");
        assert!(Propagated::default().is_empty());
    }

    #[test]
    fn request_id_only_when_single_and_valid() {
        assert_eq!(request_id(&headers(&[("x-request-id", "a")])).unwrap(), "a");
        assert_eq!(
            request_id(&headers(&[("x-request-id", "a"), ("x-request-id", "b")])),
            None
        );
        assert_eq!(request_id(&headers(&[("x-request-id", " a")])), None);
    }

    proptest! {
        #[test]
        fn merge_never_duplicates_names(
            app in proptest::collection::vec(("[a-c]", "[a-z0-9]{1,4}"), 0..4),
            carried in proptest::collection::vec(("[a-d]", "[a-z0-9]{1,4}"), 0..4),
        ) {
            let app_header = app.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
            let mut h = HeaderMap::new();
            if !app_header.is_empty() {
                h.insert(COOKIE, HeaderValue::from_str(&app_header).unwrap());
            }
            let mut dedup: Vec<(String, String)> = Vec::new();
            for (n, v) in carried {
                if !dedup.iter().any(|(m, _)| *m == n) {
                    dedup.push((n, v));
                }
            }
            if let Some(merged) = merge_cookies(&h, &dedup) {
                let merged = merged.to_str().unwrap().to_owned();
                let names: Vec<&str> = merged.split("; ").filter_map(|p| p.split_once('=')).map(|(n, _)| n).collect();
                for (n, _) in &dedup {
                    prop_assert!(names.contains(&n.as_str()));
                }
                // The application's pairs come first, unchanged.
                prop_assert!(merged.starts_with(&app_header));
                let carried_names: Vec<&str> = names[app.len()..].to_vec();
                for n in carried_names {
                    prop_assert!(!app.iter().any(|(a, _)| a == n));
                }
            }
        }
    }
}
