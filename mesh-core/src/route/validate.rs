//! Checks of a VirtualService's values that its types do not already guarantee.

use super::{AbortStatus, HttpRoute, RedirectPort, RouteAction, VirtualService};
use crate::ConfigError;

/// The redirect codes Istio accepts.
const REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

/// The highest gRPC status code (`UNAUTHENTICATED`).
const MAX_GRPC_CODE: u16 = 16;

impl VirtualService {
    /// Checks the routes' values; the first error names its field under `prefix` (such as
    /// `virtualServices[0]`) with the keys of Istio's YAML, for example
    /// `virtualServices[0].http[1].redirect.redirectCode`.
    ///
    /// Refused: no hosts or an empty host; a forwarding route without destinations; an empty
    /// destination or mirror host; a port 0; a rewrite with both `uri` and
    /// `uriRegexRewrite`; a redirect code other than 301, 302, 303, 307 and 308; a direct
    /// response or abort status outside 200..=599; a gRPC abort code above 16. Percentages
    /// and expressions are valid by construction.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.hosts.is_empty() {
            return Err(ConfigError::invalid(
                format!("{prefix}.hosts"),
                "[]",
                "at least one host is required",
            ));
        }
        for (i, host) in self.hosts.iter().enumerate() {
            if host.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{prefix}.hosts[{i}]"),
                    "",
                    "a host cannot be empty",
                ));
            }
        }
        for (i, route) in self.http.iter().enumerate() {
            validate_route(route, &format!("{prefix}.http[{i}]"))?;
        }
        Ok(())
    }
}

fn validate_route(route: &HttpRoute, path: &str) -> Result<(), ConfigError> {
    for (j, m) in route.matches.iter().enumerate() {
        if m.port == Some(0) {
            return Err(port_error(format!("{path}.match[{j}].port")));
        }
    }
    match &route.action {
        RouteAction::Forward(forward) => {
            if forward.destinations.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{path}.route"),
                    "[]",
                    "a route needs at least one destination",
                ));
            }
            for (k, d) in forward.destinations.iter().enumerate() {
                let at = format!("{path}.route[{k}].destination");
                destination(&d.host, d.port, &at)?;
            }
            if let Some(rewrite) = &forward.rewrite
                && let (Some(_), Some(re)) = (&rewrite.uri, &rewrite.uri_regex)
            {
                return Err(ConfigError::invalid(
                    format!("{path}.rewrite.uriRegexRewrite"),
                    re.pattern.as_str(),
                    "cannot be set together with rewrite.uri",
                ));
            }
        }
        RouteAction::Redirect(redirect) => {
            if !REDIRECT_CODES.contains(&redirect.code) {
                return Err(ConfigError::invalid(
                    format!("{path}.redirect.redirectCode"),
                    redirect.code,
                    "must be one of 301, 302, 303, 307, 308",
                ));
            }
            if redirect.port == Some(RedirectPort::Port(0)) {
                return Err(port_error(format!("{path}.redirect.port")));
            }
        }
        RouteAction::DirectResponse(direct) => {
            if !(200..=599).contains(&direct.status) {
                return Err(ConfigError::invalid(
                    format!("{path}.directResponse.status"),
                    direct.status,
                    "must be an HTTP status between 200 and 599",
                ));
            }
        }
    }
    if let Some(abort) = route.fault.as_ref().and_then(|f| f.abort.as_ref()) {
        match abort.status {
            AbortStatus::Http(status) if !(200..=599).contains(&status) => {
                return Err(ConfigError::invalid(
                    format!("{path}.fault.abort.httpStatus"),
                    status,
                    "must be an HTTP status between 200 and 599",
                ));
            }
            AbortStatus::Grpc(code) if code > MAX_GRPC_CODE => {
                return Err(ConfigError::invalid(
                    format!("{path}.fault.abort.grpcStatus"),
                    code,
                    "must be a gRPC status code between 0 and 16",
                ));
            }
            _ => {}
        }
    }
    for (m, mirror) in route.mirrors.iter().enumerate() {
        destination(
            &mirror.host,
            mirror.port,
            &format!("{path}.mirrors[{m}].destination"),
        )?;
    }
    Ok(())
}

/// Checks a destination's host and port; `at` is the path of the `destination` field.
fn destination(host: &str, port: Option<u16>, at: &str) -> Result<(), ConfigError> {
    if host.is_empty() {
        return Err(ConfigError::invalid(
            format!("{at}.host"),
            "",
            "a destination host cannot be empty",
        ));
    }
    if port == Some(0) {
        return Err(port_error(format!("{at}.port.number")));
    }
    Ok(())
}

fn port_error(path: String) -> ConfigError {
    ConfigError::invalid(path, 0, "must be a port between 1 and 65535")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::route::{
        DirectResponse, Fault, FaultAbort, FaultDelay, Forward, Mirror, Pattern, Percentage,
        Redirect, RegexRewrite, Rewrite, RouteDestination, RouteMatch,
    };

    fn dest(host: &str) -> RouteDestination {
        RouteDestination {
            host: host.into(),
            subset: None,
            port: None,
            weight: 0,
            headers: Default::default(),
        }
    }

    fn route(action: RouteAction) -> HttpRoute {
        HttpRoute {
            name: None,
            matches: vec![],
            action,
            headers: Default::default(),
            fault: None,
            mirrors: vec![],
            timeout: None,
            retries: None,
        }
    }

    fn forward(destinations: Vec<RouteDestination>) -> HttpRoute {
        route(RouteAction::Forward(Forward {
            destinations,
            rewrite: None,
        }))
    }

    fn vs(http: Vec<HttpRoute>) -> VirtualService {
        VirtualService {
            name: "reviews".into(),
            namespace: None,
            hosts: vec!["reviews".into()],
            http,
        }
    }

    /// The error's path, value and reason, or `None` when valid.
    fn error(vs: &VirtualService) -> Option<(String, String)> {
        match vs.validate("virtualServices[0]") {
            Ok(()) => None,
            Err(ConfigError::Invalid { path, value, .. }) => Some((path, value)),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    fn err(path: &str, value: &str) -> Option<(String, String)> {
        Some((path.into(), value.into()))
    }

    fn redirect(code: u16, port: Option<RedirectPort>) -> HttpRoute {
        route(RouteAction::Redirect(Redirect {
            uri: None,
            authority: None,
            port,
            scheme: None,
            code,
        }))
    }

    fn abort(status: AbortStatus) -> HttpRoute {
        HttpRoute {
            fault: Some(Fault {
                delay: Some(FaultDelay {
                    fixed: Duration::from_secs(1),
                    percentage: Percentage::ALL,
                }),
                abort: Some(FaultAbort {
                    status,
                    percentage: Percentage::ALL,
                }),
            }),
            ..forward(vec![dest("reviews")])
        }
    }

    #[test]
    fn a_valid_service() {
        let mut good = vs(vec![
            forward(vec![dest("reviews"), dest("ratings")]),
            redirect(308, Some(RedirectPort::Port(8080))),
            route(RouteAction::DirectResponse(DirectResponse {
                status: 599,
                body: None,
            })),
            abort(AbortStatus::Http(200)),
            abort(AbortStatus::Grpc(16)),
        ]);
        assert_eq!(error(&good), None);
        good.http.clear();
        assert_eq!(error(&good), None);
    }

    #[test]
    fn hosts() {
        let mut v = vs(vec![]);
        v.hosts.clear();
        assert_eq!(error(&v), err("virtualServices[0].hosts", "[]"));
        v.hosts = vec!["a".into(), String::new()];
        assert_eq!(error(&v), err("virtualServices[0].hosts[1]", ""));
    }

    #[test]
    fn destinations() {
        let v = vs(vec![forward(vec![dest("a")]), forward(vec![])]);
        assert_eq!(error(&v), err("virtualServices[0].http[1].route", "[]"));
        let v = vs(vec![forward(vec![dest("a"), dest("")])]);
        assert_eq!(
            error(&v),
            err("virtualServices[0].http[0].route[1].destination.host", "")
        );
        let mut d = dest("a");
        d.port = Some(0);
        let v = vs(vec![forward(vec![d])]);
        assert_eq!(
            error(&v),
            err(
                "virtualServices[0].http[0].route[0].destination.port.number",
                "0"
            )
        );
    }

    #[test]
    fn mirrors_and_match_ports() {
        let mut r = forward(vec![dest("a")]);
        r.mirrors = vec![Mirror {
            host: String::new(),
            subset: None,
            port: None,
            percentage: Percentage::ALL,
        }];
        assert_eq!(
            error(&vs(vec![r])),
            err("virtualServices[0].http[0].mirrors[0].destination.host", "")
        );
        let mut r = forward(vec![dest("a")]);
        r.matches = vec![
            RouteMatch::default(),
            RouteMatch {
                port: Some(0),
                ..Default::default()
            },
        ];
        assert_eq!(
            error(&vs(vec![r])),
            err("virtualServices[0].http[0].match[1].port", "0")
        );
    }

    #[test]
    fn rewrite_both() {
        let both = route(RouteAction::Forward(Forward {
            destinations: vec![dest("a")],
            rewrite: Some(Rewrite {
                uri: Some("/x".into()),
                uri_regex: Some(RegexRewrite {
                    pattern: Pattern::unanchored("^/a").unwrap(),
                    rewrite: "/b".into(),
                }),
                authority: None,
            }),
        }));
        assert_eq!(
            error(&vs(vec![both])),
            err("virtualServices[0].http[0].rewrite.uriRegexRewrite", "^/a")
        );
    }

    #[test]
    fn redirect_codes() {
        for code in [301, 302, 303, 307, 308] {
            assert_eq!(error(&vs(vec![redirect(code, None)])), None);
        }
        for code in [0, 200, 300, 304, 305, 306, 309, 404] {
            assert_eq!(
                error(&vs(vec![redirect(code, None)])),
                err(
                    "virtualServices[0].http[0].redirect.redirectCode",
                    &code.to_string()
                )
            );
        }
        assert_eq!(
            error(&vs(vec![redirect(301, Some(RedirectPort::Port(0)))])),
            err("virtualServices[0].http[0].redirect.port", "0")
        );
    }

    #[test]
    fn statuses() {
        for (status, ok) in [(199, false), (200, true), (599, true), (600, false)] {
            let direct = route(RouteAction::DirectResponse(DirectResponse {
                status,
                body: Some("x".into()),
            }));
            let expected = (!ok).then(|| {
                (
                    "virtualServices[0].http[0].directResponse.status".to_owned(),
                    status.to_string(),
                )
            });
            assert_eq!(error(&vs(vec![direct])), expected);
            let expected = (!ok).then(|| {
                (
                    "virtualServices[0].http[0].fault.abort.httpStatus".to_owned(),
                    status.to_string(),
                )
            });
            assert_eq!(error(&vs(vec![abort(AbortStatus::Http(status))])), expected);
        }
        assert_eq!(error(&vs(vec![abort(AbortStatus::Grpc(0))])), None);
        assert_eq!(
            error(&vs(vec![abort(AbortStatus::Grpc(17))])),
            err("virtualServices[0].http[0].fault.abort.grpcStatus", "17")
        );
    }
}
