//! Matching a request against routes (Istio's `HTTPMatchRequest`): the fields of a block are
//! ANDed, the blocks of a route ORed, and the first matching route of a list wins.

use http::{HeaderMap, HeaderName, Method, Uri};

use super::{
    HttpRoute, RequestInfo, RouteHit, RouteMatch, StringMatch, ValueMatch, default_port,
    split_authority,
};

impl<'a> RequestInfo<'a> {
    /// The parts of a request that matching looks at.
    ///
    /// The scheme comes from the URI (`http` when it has none); the authority from the URI
    /// (without any user info) or else the `Host` header (empty when neither has one); the
    /// port from the authority, else the scheme's default (80, or 443 for `https`); the path
    /// is `/` when the URI has none.
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        let scheme = uri.scheme_str().unwrap_or("http");
        let authority = match uri.authority() {
            Some(a) => a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, h)| h),
            None => headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        };
        let port = split_authority(authority)
            .1
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| default_port(scheme));
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        RequestInfo {
            method,
            scheme,
            authority,
            port,
            path,
            query: uri.query(),
            headers,
        }
    }
}

impl HttpRoute {
    /// Whether the route matches, and how.
    ///
    /// `None` when no block matches; `Some(prefix)` with the first matching block's uri
    /// prefix when it matched the path by prefix (rewrites need it), `Some(None)` otherwise.
    /// A route without blocks matches every request.
    pub fn matches<'a>(&'a self, req: &RequestInfo<'_>) -> Option<Option<&'a str>> {
        if self.matches.is_empty() {
            return Some(None);
        }
        self.matches.iter().find_map(|m| m.matches(req))
    }
}

/// The first route of `routes` that matches `req`.
pub fn find<'a>(routes: &'a [HttpRoute], req: &RequestInfo<'_>) -> Option<RouteHit<'a>> {
    routes.iter().enumerate().find_map(|(index, route)| {
        route.matches(req).map(|matched_prefix| RouteHit {
            index,
            route,
            matched_prefix,
        })
    })
}

impl RouteMatch {
    /// Whether every field of the block matches; `Some(prefix)` when the uri matched by prefix.
    ///
    /// A block without fields matches every request. Headers match when any of their values
    /// does; a query parameter is compared by its first occurrence (as Envoy does), after
    /// percent-decoding; `without_headers` fails the block when any of its entries matches.
    pub fn matches(&self, req: &RequestInfo<'_>) -> Option<Option<&str>> {
        if self.port.is_some_and(|p| p != req.port) {
            return None;
        }
        if let Some(m) = &self.method
            && !m.matches(req.method.as_str())
        {
            return None;
        }
        let prefix = match &self.uri {
            None => None,
            Some(m) => {
                if !uri_matches(m, req.path, self.ignore_uri_case) {
                    return None;
                }
                match m {
                    StringMatch::Prefix(p) => Some(p.as_str()),
                    _ => None,
                }
            }
        };
        if let Some(m) = &self.scheme
            && !m.matches(req.scheme)
        {
            return None;
        }
        if let Some(m) = &self.authority
            && !m.matches(req.authority)
        {
            return None;
        }
        if !self
            .headers
            .iter()
            .all(|(name, m)| header_matches(req.headers, name, m))
        {
            return None;
        }
        if !self
            .query_params
            .iter()
            .all(|(name, m)| query_matches(req.query, name, m))
        {
            return None;
        }
        if self
            .without_headers
            .iter()
            .any(|(name, m)| header_matches(req.headers, name, m))
        {
            return None;
        }
        Some(prefix)
    }
}

impl StringMatch {
    /// Whether `value` matches (case-sensitively; a regex must match all of `value`).
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(e) => value == e,
            StringMatch::Prefix(p) => value.starts_with(p.as_str()),
            StringMatch::Regex(r) => r.regex().is_match(value),
        }
    }
}

/// Whether the path matches, ignoring ASCII case for exact and prefix matches when asked.
fn uri_matches(m: &StringMatch, path: &str, ignore_case: bool) -> bool {
    match m {
        StringMatch::Exact(e) if ignore_case => e.eq_ignore_ascii_case(path),
        StringMatch::Prefix(p) if ignore_case => path
            .as_bytes()
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes())),
        _ => m.matches(path),
    }
}

/// Whether the header is present (for [`ValueMatch::Present`]) or one of its values matches;
/// values that are not UTF-8 match nothing.
fn header_matches(headers: &HeaderMap, name: &HeaderName, m: &ValueMatch) -> bool {
    let mut values = headers.get_all(name).iter();
    match m {
        ValueMatch::Present => values.next().is_some(),
        ValueMatch::Value(m) => {
            values.any(|v| std::str::from_utf8(v.as_bytes()).is_ok_and(|s| m.matches(s)))
        }
    }
}

/// Whether the query has the parameter `name` (first occurrence) and it matches.
fn query_matches(query: Option<&str>, name: &str, m: &ValueMatch) -> bool {
    let Some(value) = query.and_then(|q| crate::query::param(q, name)) else {
        return false;
    };
    match m {
        ValueMatch::Present => true,
        ValueMatch::Value(m) => m.matches(&value),
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Request};

    use super::*;
    use crate::route::{Pattern, RouteAction};

    fn exact(s: &str) -> StringMatch {
        StringMatch::Exact(s.into())
    }
    fn prefix(s: &str) -> StringMatch {
        StringMatch::Prefix(s.into())
    }
    fn regex(s: &str) -> StringMatch {
        StringMatch::Regex(Pattern::full(s).unwrap())
    }
    fn name(s: &'static str) -> HeaderName {
        HeaderName::from_static(s)
    }

    /// Matches `m` against a request built from `builder`.
    fn check(m: &RouteMatch, req: Request<()>) -> Option<Option<String>> {
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        m.matches(&info).map(|p| p.map(str::to_owned))
    }

    fn get(uri: &str) -> Request<()> {
        Request::get(uri).body(()).unwrap()
    }

    #[test]
    fn request_info_from_absolute_uri() {
        let req = get("https://reviews:9443/a/b?x=1");
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!(info.scheme, "https");
        assert_eq!(info.authority, "reviews:9443");
        assert_eq!(info.port, 9443);
        assert_eq!(info.path, "/a/b");
        assert_eq!(info.query, Some("x=1"));
    }

    #[test]
    fn request_info_defaults() {
        let req = Request::get("/p")
            .header("host", "reviews:9080")
            .body(())
            .unwrap();
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!(info.scheme, "http");
        assert_eq!(info.authority, "reviews:9080");
        assert_eq!(info.port, 9080);
        assert_eq!(info.query, None);

        let req = Request::get("/")
            .header("host", "reviews")
            .body(())
            .unwrap();
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!((info.authority, info.port), ("reviews", 80));

        let req = get("https://reviews");
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!((info.port, info.path), (443, "/"));

        let req = get("*");
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!(info.authority, "");

        // The URI's authority wins over the Host header; user info is not part of it.
        let req = Request::get("http://u:p@ratings:81/")
            .header("host", "other")
            .body(())
            .unwrap();
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!((info.authority, info.port), ("ratings:81", 81));

        let req = Request::get("http://[::1]:8080/").body(()).unwrap();
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!((info.authority, info.port), ("[::1]:8080", 8080));

        // A port that is not a number falls back to the scheme's.
        let req = Request::get("/").header("host", "x:abc").body(()).unwrap();
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!(info.port, 80);
    }

    #[test]
    fn string_matches() {
        assert!(exact("/a").matches("/a"));
        assert!(!exact("/a").matches("/a/"));
        assert!(!exact("/a").matches("/A"));
        assert!(prefix("/a").matches("/a"));
        assert!(prefix("/a").matches("/ab"));
        assert!(!prefix("/a").matches("/"));
        assert!(prefix("").matches(""));
        assert!(regex("/a.*").matches("/abc"));
        // Regexes match the whole string only.
        assert!(!regex("b").matches("abc"));
        assert!(!regex("a|b").matches("ab"));
    }

    #[test]
    fn empty_block_matches_everything() {
        assert_eq!(
            check(&RouteMatch::default(), get("/anything?q")),
            Some(None)
        );
    }

    #[test]
    fn uri_match_reports_prefix() {
        let m = RouteMatch {
            uri: Some(prefix("/ratings/")),
            ..Default::default()
        };
        assert_eq!(
            check(&m, get("/ratings/1?x=/other")),
            Some(Some("/ratings/".into()))
        );
        // The query is not part of the path.
        assert_eq!(check(&m, get("/other?/ratings/")), None);

        let m = RouteMatch {
            uri: Some(exact("/ratings")),
            ..Default::default()
        };
        assert_eq!(check(&m, get("/ratings?x=1")), Some(None));
        assert_eq!(check(&m, get("/ratings/")), None);
    }

    #[test]
    fn ignore_uri_case() {
        let mut m = RouteMatch {
            uri: Some(prefix("/Ratings/")),
            ignore_uri_case: true,
            ..Default::default()
        };
        assert_eq!(check(&m, get("/rATINGS/x")), Some(Some("/Ratings/".into())));
        assert_eq!(check(&m, get("/rat")), None);
        m.uri = Some(exact("/A/b"));
        assert_eq!(check(&m, get("/a/B")), Some(None));
        assert_eq!(check(&m, get("/a/Bc")), None);
        // Regex matches keep their case, as in Istio; `(?i)` is the way to ignore it.
        m.uri = Some(regex("/a/b"));
        assert_eq!(check(&m, get("/A/B")), None);
        m.uri = Some(regex("(?i)/a/b"));
        assert_eq!(check(&m, get("/A/B")), Some(None));
        // Without the flag, case matters.
        m.ignore_uri_case = false;
        m.uri = Some(exact("/A/b"));
        assert_eq!(check(&m, get("/a/B")), None);
        // A multibyte path shorter than the prefix in bytes, or cut mid-character, is no panic.
        m.ignore_uri_case = true;
        m.uri = Some(prefix("/éa"));
        assert_eq!(check(&m, get("/%C3%A9a")), None);
        assert_eq!(check(&m, get("/")), None);
    }

    #[test]
    fn scheme_method_authority_port() {
        let m = RouteMatch {
            scheme: Some(exact("https")),
            method: Some(regex("GET|HEAD")),
            authority: Some(exact("reviews:9080")),
            port: Some(9080),
            ..Default::default()
        };
        assert_eq!(check(&m, get("https://reviews:9080/")), Some(None));
        assert_eq!(check(&m, get("http://reviews:9080/")), None);
        assert_eq!(check(&m, get("https://reviews:9081/")), None);
        let post = Request::post("https://reviews:9080/").body(()).unwrap();
        assert_eq!(check(&m, post), None);

        let m = RouteMatch {
            port: Some(80),
            authority: Some(prefix("reviews")),
            ..Default::default()
        };
        let req = Request::get("/")
            .header("host", "reviews")
            .body(())
            .unwrap();
        assert_eq!(check(&m, req), Some(None));
    }

    #[test]
    fn headers_and_without_headers() {
        let m = RouteMatch {
            headers: vec![
                (name("end-user"), ValueMatch::Value(exact("jason"))),
                (name("x-canary"), ValueMatch::Present),
            ],
            without_headers: vec![(name("x-block"), ValueMatch::Value(prefix("yes")))],
            ..Default::default()
        };
        let req = |headers: &[(&'static str, &str)]| {
            let mut b = Request::get("/");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        assert_eq!(
            check(&m, req(&[("end-user", "jason"), ("x-canary", "")])),
            Some(None)
        );
        assert_eq!(check(&m, req(&[("end-user", "jason")])), None);
        assert_eq!(
            check(&m, req(&[("end-user", "Jason"), ("x-canary", "1")])),
            None
        );
        // Any of several values may match.
        assert_eq!(
            check(
                &m,
                req(&[
                    ("end-user", "bob"),
                    ("end-user", "jason"),
                    ("x-canary", "1")
                ])
            ),
            Some(None)
        );
        assert_eq!(
            check(
                &m,
                req(&[
                    ("end-user", "jason"),
                    ("x-canary", "1"),
                    ("x-block", "yes!")
                ])
            ),
            None
        );
        assert_eq!(
            check(
                &m,
                req(&[("end-user", "jason"), ("x-canary", "1"), ("x-block", "no")])
            ),
            Some(None)
        );

        // A value that is not UTF-8 matches no string match but is present.
        let mut r = req(&[("x-canary", "1")]);
        r.headers_mut()
            .insert("end-user", HeaderValue::from_bytes(b"ja\xffson").unwrap());
        assert_eq!(check(&m, r), None);
        let present = RouteMatch {
            headers: vec![(name("end-user"), ValueMatch::Present)],
            ..Default::default()
        };
        let mut r = req(&[]);
        r.headers_mut()
            .insert("end-user", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(check(&present, r), Some(None));

        // Without a header that is present at all.
        let absent = RouteMatch {
            without_headers: vec![(name("x-debug"), ValueMatch::Present)],
            ..Default::default()
        };
        assert_eq!(check(&absent, req(&[])), Some(None));
        assert_eq!(check(&absent, req(&[("x-debug", "")])), None);
    }

    #[test]
    fn query_params() {
        let m = RouteMatch {
            query_params: vec![
                ("user".into(), ValueMatch::Value(exact("jason doe"))),
                ("debug".into(), ValueMatch::Present),
            ],
            ..Default::default()
        };
        assert_eq!(check(&m, get("/?user=jason%20doe&debug")), Some(None));
        assert_eq!(check(&m, get("/?debug=&user=jason+doe")), Some(None));
        assert_eq!(check(&m, get("/?user=jason%20doe")), None);
        assert_eq!(check(&m, get("/?user=jason&debug")), None);
        assert_eq!(check(&m, get("/")), None);
        // The first occurrence counts.
        assert_eq!(check(&m, get("/?user=bob&user=jason%20doe&debug")), None);
        // Names are decoded too.
        assert_eq!(check(&m, get("/?%75ser=jason%20doe&&debug=1")), Some(None));

        let empty = RouteMatch {
            query_params: vec![("flag".into(), ValueMatch::Value(exact("")))],
            ..Default::default()
        };
        assert_eq!(check(&empty, get("/?flag")), Some(None));
        assert_eq!(check(&empty, get("/?flag=x")), None);
    }

    fn route(matches: Vec<RouteMatch>) -> HttpRoute {
        HttpRoute {
            name: None,
            matches,
            action: RouteAction::DirectResponse(crate::route::DirectResponse {
                status: 200,
                body: None,
            }),
            headers: Default::default(),
            fault: None,
            mirrors: vec![],
            timeout: None,
            retries: None,
        }
    }

    #[test]
    fn blocks_are_ored_and_first_route_wins() {
        let routes = vec![
            route(vec![
                RouteMatch {
                    uri: Some(exact("/a")),
                    ..Default::default()
                },
                RouteMatch {
                    uri: Some(prefix("/b")),
                    ..Default::default()
                },
            ]),
            route(vec![RouteMatch {
                uri: Some(prefix("/")),
                ..Default::default()
            }]),
            route(vec![]),
        ];
        let hit = |uri: &str| {
            let req = get(uri);
            let info = RequestInfo::new(req.method(), req.uri(), req.headers());
            find(&routes, &info).map(|h| (h.index, h.matched_prefix.map(str::to_owned)))
        };
        assert_eq!(hit("/a"), Some((0, None)));
        assert_eq!(hit("/bb"), Some((0, Some("/b".into()))));
        assert_eq!(hit("/c"), Some((1, Some("/".into()))));
        let req = get("/");
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!(find(&routes[2..], &info).map(|h| h.index), Some(0));
        assert!(find(&[], &info).is_none());
        assert!(find(&routes[..1], &info).is_none());
    }
}
