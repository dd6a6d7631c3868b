//! Istio's VirtualService, read into a [`VirtualService`] of routes.

use http::{HeaderName, HeaderValue};

use super::walk::{Node, Walker, shown};
use crate::config::ConfigError;
use crate::config::validate::MAX_ATTEMPTS;
use crate::config::values;
use crate::route::{
    AbortStatus, DirectResponse, Fault, FaultAbort, FaultDelay, Forward, HeaderOps, Headers,
    HttpRoute, Mirror, Pattern, Percentage, Redirect, RedirectPort, RegexRewrite, Rewrite,
    RouteAction, RouteDestination, RouteMatch, RouteRetries, StringMatch, ValueMatch,
    VirtualService,
};

/// The gateway name that stands for the workloads of the mesh (sidecars, and mesh clients).
const MESH_GATEWAY: &str = "mesh";

/// Reads a VirtualService's `spec`; `None` when none of its routes applies to the mesh (they
/// are bound to gateways only).
pub(crate) fn virtual_service(
    name: &str,
    namespace: Option<&str>,
    spec: Node<'_>,
    w: &mut Walker,
) -> Result<Option<VirtualService>, ConfigError> {
    let mut o = spec.obj(w)?;
    let hosts_node = o.required(w, "hosts")?;
    let hosts_path = hosts_node.path.clone();
    let hosts = hosts_node.strings(w)?;
    if hosts.is_empty() {
        return Err(w.invalid(&hosts_path, "[]", "must list at least one host"));
    }
    let (gateways_path, gateways) = match o.field("gateways") {
        Some(g) => (g.path.clone(), g.strings(w)?),
        None => (String::new(), Vec::new()),
    };
    let mesh = gateways.is_empty() || gateways.iter().any(|g| g == MESH_GATEWAY);
    if mesh {
        for (i, g) in gateways.iter().enumerate() {
            if g != MESH_GATEWAY {
                w.warn(
                    &format!("{gateways_path}[{i}]"),
                    format!("gateway {g} is not implemented; the routes apply to the mesh only"),
                );
            }
        }
    }
    let mut http = Vec::new();
    if let Some(list) = o.field("http") {
        for item in list.list(w)? {
            if let Some(route) = http_route(item, w, mesh)? {
                http.push(route);
            }
        }
    }
    o.unsupported(w, "tcp", "TCP routes are not implemented; ignored")?;
    o.unsupported(w, "tls", "TLS routes are not implemented; ignored")?;
    o.unsupported(
        w,
        "exportTo",
        "exportTo is not implemented; the routes apply to every workload that reads them",
    )?;
    o.finish(w)?;
    if !mesh && http.is_empty() {
        w.warn(
            &gateways_path,
            format!(
                "the routes are bound to gateways ({}), not to mesh; document ignored",
                gateways.join(", ")
            ),
        );
        return Ok(None);
    }
    Ok(Some(VirtualService {
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
        hosts,
        http,
    }))
}

/// Reads one `http[]` route; `None` when it does not apply to the mesh or is delegated.
fn http_route(
    node: Node<'_>,
    w: &mut Walker,
    vs_mesh: bool,
) -> Result<Option<HttpRoute>, ConfigError> {
    let value = node.value;
    let mut o = node.obj(w)?;
    let path = o.path().to_owned();
    let name = match o.field("name") {
        Some(n) => Some(n.str(w)?.to_owned()),
        None => None,
    };
    let mut matches = Vec::new();
    let mut had_matches = false;
    if let Some(list) = o.field("match") {
        for m in list.list(w)? {
            had_matches = true;
            if let Some(m) = route_match(m, w, vs_mesh)? {
                matches.push(m);
            }
        }
    }
    let applies = if had_matches {
        !matches.is_empty()
    } else {
        vs_mesh
    };

    let route = o.field("route");
    let redirect = o.field("redirect");
    let direct = o.field("directResponse");
    let delegate = o.field("delegate");
    let rewrite = o.field("rewrite");
    let actions = [&route, &redirect, &direct, &delegate]
        .iter()
        .filter(|a| a.is_some())
        .count();
    if actions > 1 {
        return Err(w.invalid(
            &path,
            shown(value),
            "set only one of route, redirect, directResponse and delegate",
        ));
    }
    if actions == 0 {
        return Err(w.invalid(
            &path,
            shown(value),
            "one of route, redirect or directResponse is required",
        ));
    }
    if let Some(r) = &rewrite
        && route.is_none()
        && delegate.is_none()
    {
        return Err(w.invalid(
            &r.path,
            shown(r.value),
            "applies only with route, not with redirect or directResponse",
        ));
    }
    let action = if let Some(r) = route {
        let rewrite = match rewrite {
            Some(n) => Some(parse_rewrite(n, w)?),
            None => None,
        };
        Some(RouteAction::Forward(Forward {
            destinations: destinations(r, w)?,
            rewrite,
        }))
    } else if let Some(r) = redirect {
        Some(RouteAction::Redirect(parse_redirect(r, w)?))
    } else if let Some(d) = direct {
        Some(RouteAction::DirectResponse(direct_response(d, w)?))
    } else {
        None
    };
    let headers = match o.field("headers") {
        Some(h) => headers(h, w)?,
        None => Headers::default(),
    };
    let fault = match o.field("fault") {
        Some(f) => fault(f, w)?,
        None => None,
    };
    let mirrors = mirrors(&mut o, w, &path, value)?;
    let timeout = match o.field("timeout") {
        Some(t) => Some(t.timeout(w)?),
        None => None,
    };
    let retries = match o.field("retries") {
        Some(r) => Some(retries(r, w)?),
        None => None,
    };
    o.unsupported(w, "corsPolicy", "CORS is not implemented; ignored")?;
    o.finish(w)?;
    let Some(action) = action else {
        if let Some(d) = delegate {
            w.warn(
                &d.path,
                "delegation to another VirtualService is not implemented; route ignored",
            );
        }
        return Ok(None);
    };
    if !applies {
        return Ok(None);
    }
    Ok(Some(HttpRoute {
        name,
        matches,
        action,
        headers,
        fault,
        mirrors,
        timeout,
        retries,
    }))
}

/// Reads one `match[]` block; `None` when its `gateways` leave the mesh out.
fn route_match(
    node: Node<'_>,
    w: &mut Walker,
    vs_mesh: bool,
) -> Result<Option<RouteMatch>, ConfigError> {
    let mut o = node.obj(w)?;
    let mut m = RouteMatch::default();
    if let Some(n) = o.field("name") {
        m.name = Some(n.str(w)?.to_owned());
    }
    if let Some(n) = o.field("uri") {
        m.uri = string_match(n, w)?;
    }
    if let Some(n) = o.field("scheme") {
        m.scheme = string_match(n, w)?;
    }
    if let Some(n) = o.field("method") {
        m.method = string_match(n, w)?;
    }
    if let Some(n) = o.field("authority") {
        m.authority = string_match(n, w)?;
    }
    if let Some(n) = o.field("headers") {
        m.headers = header_matches(n, w)?;
    }
    if let Some(n) = o.field("queryParams") {
        let mut params = Vec::new();
        for (key, v) in n.obj(w)?.entries() {
            params.push((key.to_owned(), value_match(v, w)?));
        }
        m.query_params = params;
    }
    if let Some(n) = o.field("withoutHeaders") {
        m.without_headers = header_matches(n, w)?;
    }
    if let Some(n) = o.field("ignoreUriCase") {
        m.ignore_uri_case = n.bool(w)?;
    }
    if let Some(n) = o.field("port") {
        m.port = Some(n.port(w)?);
    }
    let mut applies = vs_mesh;
    if let Some(n) = o.field("gateways") {
        let gateways_path = n.path.clone();
        let gateways = n.strings(w)?;
        if !gateways.is_empty() {
            applies = gateways.iter().any(|g| g == MESH_GATEWAY);
            if !applies {
                w.warn(
                    &gateways_path,
                    format!(
                        "the block is bound to gateways ({}), not to mesh; a mesh client skips it",
                        gateways.join(", ")
                    ),
                );
            } else if gateways.len() > 1 {
                w.warn(
                    &gateways_path,
                    "gateways other than mesh are not implemented; the block applies to the mesh only",
                );
            }
        }
    }
    o.unsupported(
        w,
        "sourceLabels",
        "not implemented; the block matches calls from every workload",
    )?;
    o.unsupported(
        w,
        "sourceNamespace",
        "not implemented; the block matches calls from every namespace",
    )?;
    o.unsupported(
        w,
        "statPrefix",
        "per-route statistics prefixes are not implemented; ignored",
    )?;
    o.finish(w)?;
    Ok(applies.then_some(m))
}

/// Reads a `StringMatch`; `None` when it sets none of exact, prefix and regex.
fn string_match(node: Node<'_>, w: &mut Walker) -> Result<Option<StringMatch>, ConfigError> {
    let value = node.value;
    let mut o = node.obj(w)?;
    let path = o.path().to_owned();
    let exact = o.field("exact");
    let prefix = o.field("prefix");
    let regex = o.field("regex");
    o.finish(w)?;
    let set = [&exact, &prefix, &regex]
        .iter()
        .filter(|n| n.is_some())
        .count();
    if set > 1 {
        return Err(w.invalid(
            &path,
            shown(value),
            "set only one of exact, prefix and regex",
        ));
    }
    if let Some(n) = exact {
        return Ok(Some(StringMatch::Exact(n.str(w)?.to_owned())));
    }
    if let Some(n) = prefix {
        return Ok(Some(StringMatch::Prefix(n.str(w)?.to_owned())));
    }
    if let Some(n) = regex {
        let source = n.str(w)?;
        let pattern = Pattern::full(source)
            .map_err(|e| w.invalid(&n.path, source, format!("invalid regular expression: {e}")))?;
        return Ok(Some(StringMatch::Regex(pattern)));
    }
    Ok(None)
}

/// A header or query parameter match: `{}` means present.
fn value_match(node: Node<'_>, w: &mut Walker) -> Result<ValueMatch, ConfigError> {
    Ok(match string_match(node, w)? {
        Some(m) => ValueMatch::Value(m),
        None => ValueMatch::Present,
    })
}

fn header_name(node: &Node<'_>, name: &str, w: &Walker) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| w.invalid(&node.path, name, "expected an HTTP header name"))
}

fn header_matches(
    node: Node<'_>,
    w: &mut Walker,
) -> Result<Vec<(HeaderName, ValueMatch)>, ConfigError> {
    let mut out = Vec::new();
    for (key, v) in node.obj(w)?.entries() {
        let name = header_name(&v, key, w)?;
        out.push((name, value_match(v, w)?));
    }
    Ok(out)
}

/// A `Destination`: host, subset and port.
fn destination(
    node: Node<'_>,
    w: &mut Walker,
) -> Result<(String, Option<String>, Option<u16>), ConfigError> {
    let mut o = node.obj(w)?;
    let host_node = o.required(w, "host")?;
    let host = host_node.str(w)?;
    if host.is_empty() {
        return Err(w.invalid(&host_node.path, host, "must not be empty"));
    }
    let subset = match o.field("subset") {
        Some(s) => Some(s.str(w)?.to_owned()).filter(|s| !s.is_empty()),
        None => None,
    };
    let port = match o.field("port") {
        Some(p) => {
            let mut p = p.obj(w)?;
            let port = match p.field("number") {
                Some(n) => Some(n.port(w)?),
                None => None,
            };
            p.finish(w)?;
            port
        }
        None => None,
    };
    o.finish(w)?;
    Ok((host.to_owned(), subset, port))
}

fn destinations(node: Node<'_>, w: &mut Walker) -> Result<Vec<RouteDestination>, ConfigError> {
    let path = node.path.clone();
    let items = node.list(w)?;
    if items.is_empty() {
        return Err(w.invalid(&path, "[]", "must list at least one destination"));
    }
    // Istio: a lone destination takes all traffic; among several, an unset weight is 0.
    let default_weight = if items.len() == 1 { 100 } else { 0 };
    let mut out = Vec::new();
    for item in items {
        let mut o = item.obj(w)?;
        let (host, subset, port) = destination(o.required(w, "destination")?, w)?;
        let weight = match o.field("weight") {
            Some(n) => n.u32(w)?,
            None => default_weight,
        };
        let headers = match o.field("headers") {
            Some(h) => headers(h, w)?,
            None => Headers::default(),
        };
        o.finish(w)?;
        out.push(RouteDestination {
            host,
            subset,
            port,
            weight,
            headers,
        });
    }
    Ok(out)
}

fn headers(node: Node<'_>, w: &mut Walker) -> Result<Headers, ConfigError> {
    let mut o = node.obj(w)?;
    let mut h = Headers::default();
    if let Some(n) = o.field("request") {
        h.request = header_ops(n, w)?;
    }
    if let Some(n) = o.field("response") {
        h.response = header_ops(n, w)?;
    }
    o.finish(w)?;
    Ok(h)
}

fn header_ops(node: Node<'_>, w: &mut Walker) -> Result<HeaderOps, ConfigError> {
    let mut o = node.obj(w)?;
    let mut ops = HeaderOps::default();
    let pairs =
        |n: Node<'_>, w: &mut Walker| -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
            let mut out = Vec::new();
            for (key, v) in n.obj(w)?.entries() {
                let name = header_name(&v, key, w)?;
                let text = v.scalar_text(w)?;
                let value = HeaderValue::from_str(&text)
                    .map_err(|_| w.invalid(&v.path, &text, "expected a valid HTTP header value"))?;
                out.push((name, value));
            }
            Ok(out)
        };
    if let Some(n) = o.field("set") {
        ops.set = pairs(n, w)?;
    }
    if let Some(n) = o.field("add") {
        ops.add = pairs(n, w)?;
    }
    if let Some(n) = o.field("remove") {
        for item in n.list(w)? {
            let name = item.str(w)?;
            ops.remove.push(header_name(&item, name, w)?);
        }
    }
    o.finish(w)?;
    Ok(ops)
}

fn parse_redirect(node: Node<'_>, w: &mut Walker) -> Result<Redirect, ConfigError> {
    let value = node.value;
    let mut o = node.obj(w)?;
    let path = o.path().to_owned();
    let text = |n: Option<Node<'_>>, w: &Walker| -> Result<Option<String>, ConfigError> {
        n.map(|n| n.str(w).map(str::to_owned)).transpose()
    };
    let uri = text(o.field("uri"), w)?;
    let authority = text(o.field("authority"), w)?;
    let scheme = text(o.field("scheme"), w)?;
    let port = o.field("port");
    let derive = o.field("derivePort");
    if port.is_some() && derive.is_some() {
        return Err(w.invalid(
            &path,
            shown(value),
            "set either port or derivePort, not both",
        ));
    }
    let port = match (port, derive) {
        (Some(p), _) => Some(RedirectPort::Port(p.port(w)?)),
        (None, Some(d)) => match d.str(w)? {
            "FROM_PROTOCOL_DEFAULT" => Some(RedirectPort::FromProtocolDefault),
            "FROM_REQUEST_PORT" => Some(RedirectPort::FromRequestPort),
            other => {
                return Err(w.invalid(
                    &d.path,
                    other,
                    "expected FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT",
                ));
            }
        },
        (None, None) => None,
    };
    let code = match o.field("redirectCode") {
        Some(n) => {
            let code = n.int(w)?;
            match code {
                301 | 302 | 303 | 307 | 308 => u16::try_from(code).unwrap_or(301),
                _ => {
                    return Err(w.invalid(
                        &n.path,
                        code,
                        "expected one of 301, 302, 303, 307, 308",
                    ));
                }
            }
        }
        None => 301,
    };
    o.finish(w)?;
    Ok(Redirect {
        uri,
        authority,
        port,
        scheme,
        code,
    })
}

fn direct_response(node: Node<'_>, w: &mut Walker) -> Result<DirectResponse, ConfigError> {
    let mut o = node.obj(w)?;
    let status_node = o.required(w, "status")?;
    let status = u16::try_from(status_node.int_in(w, 200, 599)?).unwrap_or(200);
    let body = match o.field("body") {
        Some(b) => {
            let value = b.value;
            let mut b = b.obj(w)?;
            let path = b.path().to_owned();
            let string = b.field("string");
            let bytes = b.field("bytes");
            b.finish(w)?;
            match (string, bytes) {
                (Some(_), Some(_)) => {
                    return Err(w.invalid(
                        &path,
                        shown(value),
                        "set either string or bytes, not both",
                    ));
                }
                (Some(s), None) => Some(s.str(w)?.to_owned()),
                (None, Some(n)) => {
                    let text = n.str(w)?;
                    let decoded = base64_decode(text).map_err(|r| w.invalid(&n.path, text, r))?;
                    Some(match String::from_utf8(decoded) {
                        Ok(s) => s,
                        Err(e) => {
                            w.warn(
                                &n.path,
                                "the body is not UTF-8 text; invalid sequences are replaced with U+FFFD",
                            );
                            String::from_utf8_lossy(e.as_bytes()).into_owned()
                        }
                    })
                }
                (None, None) => None,
            }
        }
        None => None,
    };
    o.finish(w)?;
    Ok(DirectResponse { status, body })
}

/// Decodes standard or URL-safe base64, padded or not.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let bad = || "expected base64 (proto's encoding of bytes)".to_owned();
    let digits = text.trim_end_matches('=');
    if text.len() - digits.len() > 2 {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in digits.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(bad()),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    if bits >= 6 {
        return Err(bad());
    }
    Ok(out)
}

fn parse_rewrite(node: Node<'_>, w: &mut Walker) -> Result<Rewrite, ConfigError> {
    let value = node.value;
    let mut o = node.obj(w)?;
    let path = o.path().to_owned();
    let mut r = Rewrite::default();
    if let Some(n) = o.field("uri") {
        r.uri = Some(n.str(w)?.to_owned());
    }
    if let Some(n) = o.field("authority") {
        r.authority = Some(n.str(w)?.to_owned());
    }
    if let Some(n) = o.field("uriRegexRewrite") {
        let mut x = n.obj(w)?;
        let m = x.required(w, "match")?;
        let source = m.str(w)?;
        let pattern = Pattern::unanchored(source)
            .map_err(|e| w.invalid(&m.path, source, format!("invalid regular expression: {e}")))?;
        let rewrite = x.required(w, "rewrite")?.str(w)?.to_owned();
        x.finish(w)?;
        r.uri_regex = Some(RegexRewrite { pattern, rewrite });
    }
    o.finish(w)?;
    if r.uri.is_some() && r.uri_regex.is_some() {
        return Err(w.invalid(
            &path,
            shown(value),
            "set either uri or uriRegexRewrite, not both",
        ));
    }
    Ok(r)
}

fn retries(node: Node<'_>, w: &mut Walker) -> Result<RouteRetries, ConfigError> {
    let mut o = node.obj(w)?;
    let mut r = RouteRetries::default();
    if let Some(n) = o.field("attempts") {
        let attempts = n.int_in(w, 0, i128::from(MAX_ATTEMPTS))?;
        r.attempts = u32::try_from(attempts).unwrap_or(0);
    }
    if let Some(n) = o.field("perTryTimeout") {
        r.per_try_timeout = n.timeout(w)?;
    }
    if let Some(n) = o.field("retryOn") {
        let text = n.str(w)?;
        r.retry_on = Some(values::retry_on(text).map_err(|e| w.invalid(&n.path, text, e))?);
    }
    o.unsupported(
        w,
        "retryRemoteLocalities",
        "locality-aware retries are not implemented; ignored",
    )?;
    o.unsupported(
        w,
        "retryIgnorePreviousHosts",
        "not implemented; the balancer may pick the same endpoint again",
    )?;
    o.unsupported(
        w,
        "backoff",
        "per-route back-off is not implemented; the destination's back-off applies",
    )?;
    o.finish(w)?;
    Ok(r)
}

/// A share of requests from `{value: N}`.
fn percentage(node: Node<'_>, w: &mut Walker) -> Result<Percentage, ConfigError> {
    let mut o = node.obj(w)?;
    let value_node = o.required(w, "value")?;
    let value = value_node.f64(w)?;
    o.finish(w)?;
    percent_of(&value_node, value, w)
}

/// `value` percent, named by `node` in errors.
fn percent_of(node: &Node<'_>, value: f64, w: &Walker) -> Result<Percentage, ConfigError> {
    if !(0.0..=100.0).contains(&value) {
        return Err(w.invalid(&node.path, shown(node.value), "must be between 0 and 100"));
    }
    if value == 100.0 {
        return Ok(Percentage::ALL);
    }
    Percentage::new(value).map_err(|r| w.invalid(&node.path, shown(node.value), r))
}

/// The share of a fault: `percentage`, else the deprecated whole `percent`, else none.
fn fault_share(
    o: &mut super::walk::Obj<'_>,
    w: &mut Walker,
    what: &str,
) -> Result<Percentage, ConfigError> {
    if let Some(p) = o.field("percentage") {
        return percentage(p, w);
    }
    if let Some(p) = o.field("percent") {
        w.deprecated(&p, "deprecated; read as percentage.value")?;
        let value = p.percent(w)?;
        return percent_of(&p, f64::from(value), w);
    }
    let path = o.path().to_owned();
    w.warn(
        &path,
        format!("no percentage: no request is {what}, as in Istio; set percentage.value"),
    );
    let zero = Node::new(path, &serde_json::Value::Null);
    percent_of(&zero, 0.0, w)
}

fn fault(node: Node<'_>, w: &mut Walker) -> Result<Option<Fault>, ConfigError> {
    let mut o = node.obj(w)?;
    let mut f = Fault::default();
    if let Some(n) = o.field("delay") {
        let mut d = n.obj(w)?;
        let fixed = match d.field("fixedDelay") {
            Some(n) => Some(n.positive_duration(w)?),
            None => None,
        };
        let exponential = d.has("exponentialDelay");
        d.unsupported(
            w,
            "exponentialDelay",
            "exponential delays are not implemented; no delay is injected",
        )?;
        match fixed {
            Some(fixed) => {
                let percentage = fault_share(&mut d, w, "delayed")?;
                f.delay = Some(FaultDelay { fixed, percentage });
            }
            None if exponential => {
                let _ = (d.field("percentage"), d.field("percent"));
            }
            None => {
                let path = super::walk::join(d.path(), "fixedDelay");
                return Err(w.invalid(&path, "", "is required"));
            }
        }
        d.finish(w)?;
    }
    if let Some(n) = o.field("abort") {
        let value = n.value;
        let mut a = n.obj(w)?;
        let path = a.path().to_owned();
        let http = a.field("httpStatus");
        let grpc = a.field("grpcStatus");
        let http2 = a.has("http2Error");
        a.unsupported(
            w,
            "http2Error",
            "HTTP/2 error aborts are not implemented; no abort is injected",
        )?;
        if http.is_some() && grpc.is_some() {
            return Err(w.invalid(
                &path,
                shown(value),
                "set either httpStatus or grpcStatus, not both",
            ));
        }
        let status = if let Some(h) = http {
            let code = h.int_in(w, 200, 599)?;
            Some(AbortStatus::Http(u16::try_from(code).unwrap_or(500)))
        } else if let Some(g) = grpc {
            Some(AbortStatus::Grpc(grpc_status(&g, w)?))
        } else if http2 {
            None
        } else {
            return Err(w.invalid(
                &path,
                shown(value),
                "one of httpStatus or grpcStatus is required",
            ));
        };
        match status {
            Some(status) => {
                let percentage = fault_share(&mut a, w, "aborted")?;
                f.abort = Some(FaultAbort { status, percentage });
            }
            None => {
                let _ = a.field("percentage");
            }
        }
        a.finish(w)?;
    }
    o.finish(w)?;
    Ok((f.delay.is_some() || f.abort.is_some()).then_some(f))
}

/// gRPC status names, by code.
const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A gRPC status by name (`UNAVAILABLE`) or code (`14`).
fn grpc_status(node: &Node<'_>, w: &Walker) -> Result<u16, ConfigError> {
    let reason = "expected a gRPC status name such as UNAVAILABLE, or a code from 0 to 16";
    let code = match node.value {
        serde_json::Value::String(s) => match s.trim().parse::<i128>() {
            Ok(n) => n,
            Err(_) => {
                let upper = s.trim().to_ascii_uppercase();
                match GRPC_CODES.iter().position(|c| *c == upper) {
                    Some(i) => i as i128,
                    None => return Err(w.invalid(&node.path, s, reason)),
                }
            }
        },
        serde_json::Value::Number(_) => node.int(w)?,
        other => return Err(w.invalid(&node.path, shown(other), reason)),
    };
    match u16::try_from(code) {
        Ok(c) if usize::from(c) < GRPC_CODES.len() => Ok(c),
        _ => Err(w.invalid(&node.path, shown(node.value), reason)),
    }
}

/// `mirror` with `mirrorPercentage` (or the deprecated `mirrorPercent`), or `mirrors[]`.
fn mirrors(
    o: &mut super::walk::Obj<'_>,
    w: &mut Walker,
    path: &str,
    value: &serde_json::Value,
) -> Result<Vec<Mirror>, ConfigError> {
    let mirror = o.field("mirror");
    let list = o.field("mirrors");
    let share = o.field("mirrorPercentage");
    let old_share = o.field("mirrorPercent");
    if mirror.is_some() && list.is_some() {
        return Err(w.invalid(path, shown(value), "set either mirror or mirrors, not both"));
    }
    let mut out = Vec::new();
    if let Some(m) = mirror {
        let percentage = if let Some(p) = share {
            percentage(p, w)?
        } else if let Some(p) = old_share {
            w.deprecated(&p, "deprecated; read as mirrorPercentage.value")?;
            let v = p.percent(w)?;
            percent_of(&p, f64::from(v), w)?
        } else {
            Percentage::ALL
        };
        let (host, subset, port) = destination(m, w)?;
        out.push(Mirror {
            host,
            subset,
            port,
            percentage,
        });
    } else {
        for n in [share, old_share].into_iter().flatten() {
            w.warn(&n.path, "applies only with mirror; ignored");
        }
    }
    if let Some(list) = list {
        for item in list.list(w)? {
            let mut m = item.obj(w)?;
            let (host, subset, port) = destination(m.required(w, "destination")?, w)?;
            let percentage = match m.field("percentage") {
                Some(p) => percentage(p, w)?,
                None => Percentage::ALL,
            };
            m.finish(w)?;
            out.push(Mirror {
                host,
                subset,
                port,
                percentage,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("_-8=").unwrap(), [0xff, 0xef]);
        assert!(base64_decode("a").is_err());
        assert!(base64_decode("aGV*").is_err());
        assert!(base64_decode("aG===").is_err());
    }

    #[test]
    fn grpc_codes() {
        let w = Walker::lenient("VirtualService t");
        for (v, want) in [
            (serde_json::json!("UNAVAILABLE"), Some(14)),
            (serde_json::json!("unavailable"), Some(14)),
            (serde_json::json!("14"), Some(14)),
            (serde_json::json!(0), Some(0)),
            (serde_json::json!(17), None),
            (serde_json::json!("BOGUS"), None),
            (serde_json::json!(-1), None),
        ] {
            let n = Node::new("g", &v);
            assert_eq!(grpc_status(&n, &w).ok(), want, "{v}");
        }
    }
}
