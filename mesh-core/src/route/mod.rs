//! HTTP routing, as Istio's VirtualService defines it: an ordered list of routes per host,
//! first match wins; each route forwards to weighted destinations (with rewrites, header
//! operations, fault injection and mirroring), redirects, or answers directly.
//!
//! Everything here is pure: matching takes a [`RequestInfo`], randomness is passed in.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use rand::Rng;

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
    /// Whether `uri` matches case-insensitively.
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
    /// Replaces the path (prefix semantics as for rewrites).
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
/// nothing unless it is alone.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    cumulative: Vec<u64>,
}

#[allow(clippy::todo, unused_variables)]
mod contract {
    //! Placeholders for the logic; replaced by the real modules.
    use super::*;

    impl VirtualService {
        /// Checks the routes' values (status codes, weights, percentages); errors name the
        /// field under `prefix` (such as `virtualServices[0]`).
        pub fn validate(&self, prefix: &str) -> Result<(), crate::ConfigError> {
            Ok(())
        }
    }

    impl Percentage {
        /// `value` percent; errors unless 0 ≤ value ≤ 100.
        pub fn new(value: f64) -> Result<Percentage, String> {
            todo!()
        }
        /// All requests.
        pub const ALL: Percentage = Percentage(100.0);
        /// The value in percent.
        pub fn value(self) -> f64 {
            self.0
        }
        /// Whether one request is in the share.
        pub fn sample<R: Rng + ?Sized>(self, rng: &mut R) -> bool {
            todo!()
        }
    }

    impl<'a> RequestInfo<'a> {
        /// The parts of a request that matching looks at.
        pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
            todo!()
        }
    }

    impl HttpRoute {
        /// Whether the route matches, and how.
        pub fn matches<'a>(&'a self, req: &RequestInfo<'_>) -> Option<Option<&'a str>> {
            todo!()
        }
    }

    /// The first route of `routes` that matches `req`.
    pub fn find<'a>(routes: &'a [HttpRoute], req: &RequestInfo<'_>) -> Option<RouteHit<'a>> {
        todo!()
    }

    impl RouteMatch {
        /// Whether every field of the block matches; `Some(prefix)` when the uri matched by prefix.
        pub fn matches(&self, req: &RequestInfo<'_>) -> Option<Option<&str>> {
            todo!()
        }
    }

    impl StringMatch {
        /// Whether `value` matches.
        pub fn matches(&self, value: &str) -> bool {
            todo!()
        }
    }

    impl HeaderOps {
        /// Applies the operations to `headers`.
        pub fn apply(&self, headers: &mut HeaderMap) {
            todo!()
        }
        /// Whether there is nothing to do.
        pub fn is_empty(&self) -> bool {
            todo!()
        }
    }

    impl Rewrite {
        /// The new path and query for a request whose path and query are `path_and_query`,
        /// matched as `matched_prefix`; `None` when the path is not rewritten.
        pub fn path(&self, path_and_query: &str, matched_prefix: Option<&str>) -> Option<String> {
            todo!()
        }
    }

    impl Redirect {
        /// The `Location` of the redirect for a request to `uri` (absolute), matched as
        /// `matched_prefix`.
        pub fn location(&self, uri: &Uri, matched_prefix: Option<&str>) -> String {
            todo!()
        }
    }

    impl Fault {
        /// What to do with one request.
        pub fn decide<R: Rng + ?Sized>(&self, rng: &mut R) -> FaultDecision {
            todo!()
        }
    }

    impl Split {
        /// A split over these weights (in order).
        pub fn new(weights: &[u32]) -> Split {
            todo!()
        }
        /// The index chosen for one request.
        pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
            todo!()
        }
    }

    /// The authority a mirror sends with: `-shadow` appended to the host, before the port.
    pub fn shadow_authority(authority: &str) -> String {
        todo!()
    }
}

pub use contract::{find, shadow_authority};
