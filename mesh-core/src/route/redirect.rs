//! Redirect answers (Istio's `HTTPRedirect`): the `Location` a redirect points to.

use std::fmt::Write as _;

use http::Uri;

use super::{Redirect, RedirectPort, default_port, split_authority};

impl Redirect {
    /// The `Location` of the redirect for a request to `uri` (absolute), matched as
    /// `_matched_prefix`.
    ///
    /// As Istio documents it, `uri` replaces the whole path whatever the kind of match, so the
    /// matched prefix does not change the result (it stays in the signature for callers that
    /// pass a [`RouteHit`](super::RouteHit) along). The request's query is kept unless `uri`
    /// has one of its own.
    ///
    /// The scheme is `scheme` or the request's; the host is `authority` (with the port it
    /// names, if any) or the request's host. The port is then: [`RedirectPort::Port`] that
    /// port; [`RedirectPort::FromProtocolDefault`] none (the scheme's default);
    /// [`RedirectPort::FromRequestPort`] the request's port; unset, the request's explicit
    /// port unless `authority` replaced the host, dropped when the scheme changes and it was
    /// the old scheme's default (`http://a:80` to `https://a`). A request without any
    /// authority gets a relative location (path and query only).
    pub fn location(&self, uri: &Uri, _matched_prefix: Option<&str>) -> String {
        let request_scheme = uri.scheme_str().unwrap_or("http");
        let scheme = self.scheme.as_deref().unwrap_or(request_scheme);
        let scheme_changed = !scheme.eq_ignore_ascii_case(request_scheme);
        let request_port = uri.port_u16();

        let (host, mut port) = match &self.authority {
            Some(authority) => match split_authority(authority) {
                (host, Some(p)) => match p.parse::<u16>() {
                    Ok(p) => (host, Some(p)),
                    Err(_) => (authority.as_str(), None),
                },
                (host, None) => (host, None),
            },
            None => (
                uri.host().unwrap_or(""),
                request_port.filter(|&p| !(scheme_changed && p == default_port(request_scheme))),
            ),
        };
        match self.port {
            Some(RedirectPort::Port(p)) => port = Some(p),
            Some(RedirectPort::FromProtocolDefault) => port = None,
            Some(RedirectPort::FromRequestPort) => {
                port = request_port.or(scheme_changed.then(|| default_port(request_scheme)));
            }
            None => {}
        }

        let path = match self.uri.as_deref() {
            Some(u) if !u.is_empty() => u,
            _ => match uri.path() {
                "" => "/",
                p => p,
            },
        };
        let mut out = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
        if !host.is_empty() {
            out.push_str(scheme);
            out.push_str("://");
            out.push_str(host);
            if let Some(port) = port {
                let _ = write!(out, ":{port}");
            }
        }
        if !path.starts_with('/') {
            out.push('/');
        }
        out.push_str(path);
        if !path.contains('?')
            && let Some(query) = uri.query()
        {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect() -> Redirect {
        Redirect {
            uri: None,
            authority: None,
            port: None,
            scheme: None,
            code: 301,
        }
    }
    fn loc(r: &Redirect, uri: &str) -> String {
        r.location(&uri.parse().unwrap(), None)
    }

    #[test]
    fn keeps_the_request_by_default() {
        let r = redirect();
        assert_eq!(
            loc(&r, "http://reviews:9080/a?b=c"),
            "http://reviews:9080/a?b=c"
        );
        assert_eq!(loc(&r, "https://reviews/a"), "https://reviews/a");
        assert_eq!(loc(&r, "http://reviews"), "http://reviews/");
        // No authority: a relative location.
        assert_eq!(loc(&r, "/a?x"), "/a?x");
    }

    #[test]
    fn uri_replaces_the_whole_path() {
        let r = Redirect {
            uri: Some("/v1/bookRatings".into()),
            ..redirect()
        };
        let uri: Uri = "http://ratings/v1/getProductRatings/7?x=1".parse().unwrap();
        // Prefix match or not, the path is replaced whole (Istio's documented semantics).
        assert_eq!(
            r.location(&uri, Some("/v1/getProductRatings")),
            "http://ratings/v1/bookRatings?x=1"
        );
        assert_eq!(r.location(&uri, None), "http://ratings/v1/bookRatings?x=1");
        // A query in `uri` replaces the request's.
        let r = Redirect {
            uri: Some("/new?lang=en".into()),
            ..redirect()
        };
        assert_eq!(loc(&r, "http://a/old?x=1"), "http://a/new?lang=en");
        // An empty `uri` keeps the path; one without a slash gets one.
        let r = Redirect {
            uri: Some(String::new()),
            ..redirect()
        };
        assert_eq!(loc(&r, "http://a/old"), "http://a/old");
        let r = Redirect {
            uri: Some("new".into()),
            ..redirect()
        };
        assert_eq!(loc(&r, "http://a/old"), "http://a/new");
    }

    #[test]
    fn authority_and_scheme() {
        let r = Redirect {
            authority: Some("newratings.default.svc.cluster.local".into()),
            ..redirect()
        };
        // A replaced host drops the request's port.
        assert_eq!(
            loc(&r, "http://ratings:9080/x"),
            "http://newratings.default.svc.cluster.local/x"
        );
        let r = Redirect {
            authority: Some("new:8443".into()),
            scheme: Some("https".into()),
            ..redirect()
        };
        assert_eq!(loc(&r, "http://old:9080/x"), "https://new:8443/x");
        // A port that is not a number stays part of the host text.
        let r = Redirect {
            authority: Some("new:abc".into()),
            ..redirect()
        };
        assert_eq!(loc(&r, "http://old/x"), "http://new:abc/x");

        let https = Redirect {
            scheme: Some("https".into()),
            ..redirect()
        };
        assert_eq!(loc(&https, "http://a/x?y"), "https://a/x?y");
        // The old scheme's default port goes; any other stays.
        assert_eq!(loc(&https, "http://a:80/x"), "https://a/x");
        assert_eq!(loc(&https, "http://a:8080/x"), "https://a:8080/x");
        assert_eq!(loc(&https, "https://a:443/x"), "https://a:443/x");
    }

    #[test]
    fn ports() {
        let with = |port| Redirect {
            port: Some(port),
            ..redirect()
        };
        let fixed = with(RedirectPort::Port(8080));
        assert_eq!(loc(&fixed, "http://a/x"), "http://a:8080/x");
        assert_eq!(loc(&fixed, "http://a:9/x"), "http://a:8080/x");
        let fixed_host = Redirect {
            authority: Some("b:1".into()),
            ..fixed.clone()
        };
        assert_eq!(loc(&fixed_host, "http://a:9/x"), "http://b:8080/x");

        let default = with(RedirectPort::FromProtocolDefault);
        assert_eq!(loc(&default, "http://a:9080/x"), "http://a/x");
        let default_https = Redirect {
            scheme: Some("https".into()),
            ..default.clone()
        };
        assert_eq!(loc(&default_https, "http://a:9080/x"), "https://a/x");

        let request = with(RedirectPort::FromRequestPort);
        assert_eq!(loc(&request, "http://a:9080/x"), "http://a:9080/x");
        assert_eq!(loc(&request, "http://a/x"), "http://a/x");
        let request_host = Redirect {
            authority: Some("b".into()),
            ..request.clone()
        };
        assert_eq!(loc(&request_host, "http://a:9080/x"), "http://b:9080/x");
        let request_https = Redirect {
            scheme: Some("https".into()),
            ..request
        };
        // The request came in on port 80; the location keeps it explicitly.
        assert_eq!(loc(&request_https, "http://a/x"), "https://a:80/x");
    }

    #[test]
    fn ipv6_hosts() {
        let r = Redirect {
            port: Some(RedirectPort::Port(81)),
            ..redirect()
        };
        assert_eq!(loc(&r, "http://[::1]:80/x"), "http://[::1]:81/x");
        let r = Redirect {
            authority: Some("[::2]:82".into()),
            ..redirect()
        };
        assert_eq!(loc(&r, "http://[::1]/x"), "http://[::2]:82/x");
    }
}
