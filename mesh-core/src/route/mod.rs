//! HTTP routing, as Istio's VirtualService defines it: an ordered list of routes per host,
//! first match wins; each route forwards to weighted destinations (with rewrites, header
//! operations, fault injection and mirroring), redirects, or answers directly.
//!
//! Everything here is pure: matching takes a [`RequestInfo`], randomness is passed in.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::retry::RetryOn;

/// One VirtualService: routes for a set of hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    /// The document's name (for messages).
    pub name: String,
    /// The namespace short names in `hosts` and destinations are qualified with; `None`
    /// means the workload's namespace.
    pub namespace: Option<String>,
    /// The hosts the routes apply to, as written (`reviews`, `reviews.bookinfo.svc.cluster.local`).
    pub hosts: Vec<String>,
    /// The routes, in order; the first that matches a request applies.
    pub http: Vec<HttpRoute>,
}

/// One HTTP route (Istio's `HTTPRoute`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRoute {
    /// The route's name, if any.
    pub name: Option<String>,
    /// Match blocks, ORed; an empty list matches every request.
    pub matches: Vec<RouteMatch>,
    /// What the route does with a matching request.
    pub action: RouteAction,
    /// Header operations of the route, applied to every request it forwards.
    pub headers: Headers,
    /// Injected faults; with a fault the route's timeout and retries do not apply.
    pub fault: Option<Fault>,
    /// Shadow destinations a copy of each request goes to.
    pub mirrors: Vec<Mirror>,
    /// The route's timeout: `None` inherits the destination's, `Some(None)` disables.
    pub timeout: Option<Option<Duration>>,
    /// The route's retries: `None` inherits the destination's.
    pub retries: Option<RouteRetries>,
}

/// A route's retry policy (Istio's `HTTPRetry`); unset fields inherit the destination's.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RouteRetries {
    /// Retries after the first try (0 disables).
    pub attempts: u32,
    /// Each try's timeout.
    pub per_try_timeout: Option<Duration>,
    /// The retry conditions.
    pub retry_on: Option<RetryOn>,
}

/// What a route does.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteAction {
    /// Forward to one of weighted destinations.
    Forward(Forward),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with a fixed status and body.
    DirectResponse(DirectResponse),
}

/// Forwarding to weighted destinations.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// The destinations; one is chosen per request by weight.
    pub destinations: Vec<RouteDestination>,
    /// Rewrites applied before forwarding.
    pub rewrite: Option<Rewrite>,
}

/// A weighted destination of a route (Istio's `HTTPRouteDestination`).
#[derive(Clone, Debug, PartialEq)]
pub struct RouteDestination {
    /// The destination host, as written.
    pub host: String,
    /// The subset, if any.
    pub subset: Option<String>,
    /// The port; `None` keeps the request's.
    pub port: Option<u16>,
    /// The weight; weights are normalised over the route's destinations.
    pub weight: u32,
    /// Header operations applied when this destination is chosen.
    pub headers: Headers,
}

/// Request and response header operations.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Headers {
    /// Applied to the request before forwarding.
    pub request: HeaderOps,
    /// Applied to the response before returning it.
    pub response: HeaderOps,
}

/// Header operations: `set` replaces, `add` appends, `remove` deletes (applied in the order
/// remove, set, add... see [`HeaderOps::apply`]).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HeaderOps {
    /// Headers to set, replacing any value.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers to append.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Headers to remove.
    pub remove: Vec<HeaderName>,
}

/// One match block (Istio's `HTTPMatchRequest`): every field set must match.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RouteMatch {
    /// The block's name, if any.
    pub name: Option<String>,
    /// The path (without the query).
    pub uri: Option<StringMatch>,
    /// The scheme (`http`, `https`).
    pub scheme: Option<StringMatch>,
    /// The method.
    pub method: Option<StringMatch>,
    /// The authority (`Host`), port included when the request has one.
    pub authority: Option<StringMatch>,
    /// Headers that must match, by lower-case name.
    pub headers: Vec<(HeaderName, ValueMatch)>,
    /// Query parameters that must match, by name.
    pub query_params: Vec<(String, ValueMatch)>,
    /// Headers that must not match.
    pub without_headers: Vec<(HeaderName, ValueMatch)>,
    /// Whether an exact or prefix `uri` match ignores ASCII case; as in Istio, a regex `uri`
    /// match is not affected (write `(?i)` in the expression instead).
    pub ignore_uri_case: bool,
    /// The port the request is for.
    pub port: Option<u16>,
}

/// A string match.
#[derive(Clone, Debug, PartialEq)]
pub enum StringMatch {
    /// The whole string equals this.
    Exact(String),
    /// The string starts with this.
    Prefix(String),
    /// The whole string matches this regular expression (RE2 syntax, fully anchored).
    Regex(Pattern),
}

/// A header or query parameter match.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueMatch {
    /// Present, whatever the value.
    Present,
    /// Present with a value that matches.
    Value(StringMatch),
}

/// A compiled regular expression, compared by its source.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source` to match whole strings only (Istio's semantics).
    pub fn full(source: &str) -> Result<Pattern, String> {
        let regex = regex::Regex::new(&format!("^(?:{source})$")).map_err(|e| e.to_string())?;
        Ok(Pattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// Compiles `source` to match anywhere (for regex rewrites).
    pub fn unanchored(source: &str) -> Result<Pattern, String> {
        let regex = regex::Regex::new(source).map_err(|e| e.to_string())?;
        Ok(Pattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The compiled expression.
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.regex.as_str() == other.regex.as_str()
    }
}

/// Rewrites before forwarding (Istio's `HTTPRewrite`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Rewrite {
    /// Replaces the matched uri prefix (or the whole path when the match was not a prefix).
    pub uri: Option<String>,
    /// Rewrites the path by a regular expression (`uriRegexRewrite`).
    pub uri_regex: Option<RegexRewrite>,
    /// Replaces the authority (`Host`) sent upstream.
    pub authority: Option<String>,
}

/// A regular-expression path rewrite; `\1` (or `$1`) in `rewrite` is a capture group.
#[derive(Clone, Debug, PartialEq)]
pub struct RegexRewrite {
    /// The expression, matched anywhere in the path.
    pub pattern: Pattern,
    /// The replacement.
    pub rewrite: String,
}

/// A redirect (Istio's `HTTPRedirect`).
#[derive(Clone, Debug, PartialEq)]
pub struct Redirect {
    /// Replaces the whole path, whatever the kind of the uri match (as Istio documents it);
    /// a `?` in it replaces the request's query as well.
    pub uri: Option<String>,
    /// Replaces the authority.
    pub authority: Option<String>,
    /// Replaces the port.
    pub port: Option<RedirectPort>,
    /// Replaces the scheme.
    pub scheme: Option<String>,
    /// The status code (301 by default).
    pub code: u16,
}

/// The port of a redirect's location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectPort {
    /// This port.
    Port(u16),
    /// The scheme's default port (80 or 443), left out of the location.
    FromProtocolDefault,
    /// The request's port.
    FromRequestPort,
}

/// A fixed answer (Istio's `HTTPDirectResponse`).
#[derive(Clone, Debug, PartialEq)]
pub struct DirectResponse {
    /// The status code.
    pub status: u16,
    /// The body, if any.
    pub body: Option<String>,
}

/// Fault injection (Istio's `HTTPFaultInjection`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Fault {
    /// A delay before forwarding.
    pub delay: Option<FaultDelay>,
    /// An abort instead of forwarding.
    pub abort: Option<FaultAbort>,
}

/// An injected delay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultDelay {
    /// How long (`fixedDelay`).
    pub fixed: Duration,
    /// The share of requests delayed.
    pub percentage: Percentage,
}

/// An injected abort.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultAbort {
    /// The answer.
    pub status: AbortStatus,
    /// The share of requests aborted.
    pub percentage: Percentage,
}

/// The status an abort answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortStatus {
    /// An HTTP status code.
    Http(u16),
    /// A gRPC status code (HTTP 200 with `grpc-status`).
    Grpc(u16),
}

/// A share of requests, 0 to 100 percent.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Percentage(f64);

/// A mirror (Istio's `mirror` / `mirrors[]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Mirror {
    /// The shadow host, as written.
    pub host: String,
    /// The subset, if any.
    pub subset: Option<String>,
    /// The port; `None` keeps the request's.
    pub port: Option<u16>,
    /// The share of requests mirrored (100 % by default).
    pub percentage: Percentage,
}

/// What matching looks at in a request.
#[derive(Clone, Copy, Debug)]
pub struct RequestInfo<'a> {
    /// The method.
    pub method: &'a Method,
    /// The scheme, `http` when the URI has none.
    pub scheme: &'a str,
    /// The authority, from the URI or the `Host` header.
    pub authority: &'a str,
    /// The port the request is for (from the authority; 80 for `http` without one).
    pub port: u16,
    /// The path, without the query.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
}

/// A route that matched, and what rewrites need to know about the match.
#[derive(Clone, Copy, Debug)]
pub struct RouteHit<'a> {
    /// The route's index in its list.
    pub index: usize,
    /// The route.
    pub route: &'a HttpRoute,
    /// The uri prefix the matching block matched, when it was a prefix match.
    pub matched_prefix: Option<&'a str>,
}

/// What fault injection decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct FaultDecision {
    /// Delay the request this long first.
    pub delay: Option<Duration>,
    /// Then answer with this instead of forwarding.
    pub abort: Option<AbortStatus>,
}

/// Picks one of weighted choices per request: weights are normalised, a zero weight gets
/// nothing unless it is alone; when every weight is zero the choices share equally.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    cumulative: Vec<u64>,
}

mod fault;
mod headers;
mod matching;
mod mirror;
mod redirect;
mod rewrite;
mod split;
mod validate;

#[cfg(test)]
mod tests;

pub use matching::find;
pub use mirror::shadow_authority;

/// The port a scheme implies when the authority names none: 443 for `https` and `wss`, 80
/// otherwise.
fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        443
    } else {
        80
    }
}

/// Splits an authority into its host and port text (`reviews:9080` gives `("reviews",
/// Some("9080"))`); a bracketed IPv6 literal keeps its brackets, and an unbracketed text with
/// several colons is taken as a host without a port.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let (host, rest) = authority.split_at(end + 1);
            return (host, rest.strip_prefix(':'));
        }
        return (authority, None);
    }
    match authority.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}
