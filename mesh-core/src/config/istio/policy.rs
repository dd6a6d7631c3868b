//! Traffic-policy settings in Istio's shapes (`loadBalancer`, `connectionPool`,
//! `outlierDetection`, `retryBudget`, `tls`, `portLevelSettings`), shared by DestinationRules and
//! mesh's own format. Mesh's own format also takes `outlierDetection.successRate`, which
//! Istio's API does not have (in a DestinationRule it is an unknown field).

use std::path::PathBuf;

use http::HeaderName;

use super::walk::{Mode, Node, Obj, Walker, join, shown};
use crate::balance::{DEFAULT_MAGLEV_TABLE_SIZE, MAX_MAGLEV_TABLE_SIZE, MAX_RING_SIZE, is_prime};
use crate::config::builder::PolicyOverrides;
use crate::config::security::check;
use crate::config::values::{self, LbKind};
use crate::config::{
    ClientTls, ClientTlsMode, ConfigError, ConnectionPool, ConsistentHash, HashCookie, HashKey,
    HashTable, OutlierDetection, Protocol, RetryConcurrencyBudget,
};
use crate::outlier::{
    DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS, DEFAULT_SUCCESS_RATE_REQUEST_VOLUME,
    DEFAULT_SUCCESS_RATE_STDEV_FACTOR, SuccessRate, SuccessRateMode,
};

/// A load-balancing algorithm and, for consistent hashing, its parameters.
#[derive(Clone, Debug)]
pub(crate) struct LbSetting {
    pub(crate) kind: LbKind,
    pub(crate) hash: Option<ConsistentHash>,
}

impl LbSetting {
    /// Sets the balancer in `o`.
    pub(crate) fn apply(self, o: &mut PolicyOverrides) {
        o.load_balancer = Some(self.kind);
        if self.hash.is_some() {
            o.consistent_hash = self.hash;
        }
    }
}

/// Reads `loadBalancer`: `{simple: NAME}` or `{consistentHash: {...}}` (in mesh's own format
/// also a bare name). `None` when it selects nothing (`simple: UNSPECIFIED`, or only
/// unimplemented fields).
pub(crate) fn load_balancer(
    node: Node<'_>,
    w: &mut Walker,
) -> Result<Option<LbSetting>, ConfigError> {
    let value = node.value;
    const SHAPES: &str =
        "expected a name such as ROUND_ROBIN, or {simple: NAME}, or {consistentHash: {...}}";
    if let Some(name) = value.as_str()
        && w.mode() == Mode::Strict
    {
        let kind = values::load_balancer(name).map_err(|r| w.invalid(&node.path, name, r))?;
        return Ok(Some(LbSetting { kind, hash: None }));
    }
    if !value.is_object() {
        let reason = match w.mode() {
            Mode::Strict => SHAPES,
            Mode::Lenient => "expected {simple: NAME} or {consistentHash: {...}}",
        };
        return Err(w.invalid(&node.path, shown(value), reason));
    }
    let mut o = node.obj(w)?;
    let path = o.path().to_owned();
    let simple = o.field("simple");
    let hash = o.field("consistentHash");
    o.unsupported(
        w,
        "localityLbSetting",
        "locality-aware balancing is not implemented; ignored",
    )?;
    o.unsupported(
        w,
        "warmupDurationSecs",
        "slow start (warm-up) is not implemented; ignored",
    )?;
    o.unsupported(
        w,
        "warmup",
        "slow start (warm-up) is not implemented; ignored",
    )?;
    let empty = o.is_empty();
    o.finish(w)?;
    match (simple, hash) {
        (Some(_), Some(_)) => Err(w.invalid(
            &path,
            shown(value),
            "set either simple or consistentHash, not both",
        )),
        (Some(s), None) => {
            let name = s.str(w)?;
            if name == "UNSPECIFIED" {
                return Ok(None);
            }
            let kind = values::load_balancer(name).map_err(|r| w.invalid(&s.path, name, r))?;
            Ok(Some(LbSetting { kind, hash: None }))
        }
        (None, Some(h)) => Ok(Some(LbSetting {
            kind: LbKind::ConsistentHash,
            hash: Some(consistent_hash(h, w)?),
        })),
        (None, None) if empty && w.mode() == Mode::Strict => {
            Err(w.invalid(&path, shown(value), SHAPES))
        }
        (None, None) => Ok(None),
    }
}

/// Reads `consistentHash`.
fn consistent_hash(node: Node<'_>, w: &mut Walker) -> Result<ConsistentHash, ConfigError> {
    let value = node.value;
    let mut o = node.obj(w)?;
    let path = o.path().to_owned();
    let mut keys: Vec<(&str, HashKey)> = Vec::new();
    if let Some(n) = o.field("httpHeaderName") {
        let s = n.str(w)?;
        let name = HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
            .map_err(|_| w.invalid(&n.path, s, "expected an HTTP header name"))?;
        keys.push(("httpHeaderName", HashKey::Header(name)));
    }
    if let Some(n) = o.field("httpCookie") {
        keys.push(("httpCookie", HashKey::Cookie(cookie(n, w)?)));
    }
    if let Some(n) = o.field("useSourceIp")
        && n.bool(w)?
    {
        keys.push(("useSourceIp", HashKey::SourceIp));
    }
    if let Some(n) = o.field("httpQueryParameterName") {
        let s = n.str(w)?;
        if s.is_empty() {
            return Err(w.invalid(&n.path, s, "must not be empty"));
        }
        keys.push((
            "httpQueryParameterName",
            HashKey::QueryParameter(s.to_owned()),
        ));
    }
    let mut tables: Vec<(&str, HashTable)> = Vec::new();
    if let Some(n) = o.field("ringHash") {
        let mut r = n.obj(w)?;
        let minimum_size = match r.field("minimumRingSize") {
            Some(m) => ring_size(&m, w)?,
            None => 1024,
        };
        r.finish(w)?;
        tables.push(("ringHash", HashTable::Ring { minimum_size }));
    }
    if let Some(n) = o.field("maglev") {
        let mut m = n.obj(w)?;
        let table_size = match m.field("tableSize") {
            Some(t) => maglev_size(&t, w)?,
            None => DEFAULT_MAGLEV_TABLE_SIZE,
        };
        m.finish(w)?;
        tables.push(("maglev", HashTable::Maglev { table_size }));
    }
    if let Some(n) = o.field("minimumRingSize") {
        w.deprecated(&n, "deprecated; read as ringHash.minimumRingSize")?;
        let minimum_size = ring_size(&n, w)?;
        tables.push(("minimumRingSize", HashTable::Ring { minimum_size }));
    }
    o.finish(w)?;
    let key = match keys.len() {
        0 => {
            return Err(w.invalid(
                &path,
                shown(value),
                "one of httpHeaderName, httpCookie, useSourceIp (true) or httpQueryParameterName is required",
            ));
        }
        1 => keys.remove(0).1,
        _ => {
            let names: Vec<&str> = keys.iter().map(|(n, _)| *n).collect();
            return Err(w.invalid(
                &path,
                shown(value),
                format!("set only one hash key, found {}", names.join(", ")),
            ));
        }
    };
    let table = match tables.len() {
        0 => HashTable::default(),
        1 => tables.remove(0).1,
        _ => {
            let names: Vec<&str> = tables.iter().map(|(n, _)| *n).collect();
            return Err(w.invalid(
                &path,
                shown(value),
                format!(
                    "set only one of ringHash, maglev and minimumRingSize, found {}",
                    names.join(", ")
                ),
            ));
        }
    };
    Ok(ConsistentHash { key, table })
}

fn ring_size(n: &Node<'_>, w: &Walker) -> Result<u64, ConfigError> {
    let size = n.int_in(w, 1, i128::from(MAX_RING_SIZE))?;
    Ok(u64::try_from(size).unwrap_or(MAX_RING_SIZE))
}

fn maglev_size(n: &Node<'_>, w: &Walker) -> Result<u64, ConfigError> {
    let size = n.int_in(w, 1, i128::from(MAX_MAGLEV_TABLE_SIZE))?;
    let size = u64::try_from(size).unwrap_or(DEFAULT_MAGLEV_TABLE_SIZE);
    if !is_prime(size) {
        return Err(w.invalid(&n.path, size, "must be a prime number (such as 65537)"));
    }
    Ok(size)
}

fn cookie(node: Node<'_>, w: &mut Walker) -> Result<HashCookie, ConfigError> {
    let mut o = node.obj(w)?;
    let name_node = o.required(w, "name")?;
    let name = name_node.str(w)?;
    if name.is_empty() {
        return Err(w.invalid(&name_node.path, name, "must not be empty"));
    }
    let path = match o.field("path") {
        Some(p) => Some(p.str(w)?.to_owned()),
        None => None,
    };
    let ttl = match o.field("ttl") {
        Some(t) => Some(t.duration(w)?),
        None => None,
    };
    o.unsupported(
        w,
        "attributes",
        "cookie attributes are not implemented; ignored",
    )?;
    o.finish(w)?;
    Ok(HashCookie {
        name: name.to_owned(),
        path,
        ttl,
    })
}

/// `connectionPool`: the pool and the protocol `h2UpgradePolicy` asks for.
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolSetting {
    pub(crate) pool: ConnectionPool,
    pub(crate) protocol: Option<Protocol>,
}

impl PoolSetting {
    /// Sets the pool in `o`; its connect timeout is also the policy's.
    pub(crate) fn apply(self, o: &mut PolicyOverrides) {
        if let Some(t) = self.pool.connect_timeout {
            o.connect_timeout = Some(t);
        }
        if let Some(p) = self.protocol {
            o.protocol = Some(p);
        }
        o.connection_pool = Some(self.pool);
    }
}

/// A count where zero is proto3's "unset", which leaves the default (no limit).
fn count(n: &Node<'_>, w: &Walker) -> Result<Option<u32>, ConfigError> {
    let c = n.u32(w)?;
    Ok((c != 0).then_some(c))
}

/// Reads `connectionPool`.
pub(crate) fn connection_pool(node: Node<'_>, w: &mut Walker) -> Result<PoolSetting, ConfigError> {
    let mut o = node.obj(w)?;
    let mut s = PoolSetting::default();
    if let Some(tcp) = o.field("tcp") {
        let mut t = tcp.obj(w)?;
        if let Some(n) = t.field("maxConnections") {
            s.pool.max_connections = count(&n, w)?;
        }
        if let Some(n) = t.field("connectTimeout") {
            s.pool.connect_timeout = Some(n.positive_duration(w)?);
        }
        t.unsupported(
            w,
            "tcpKeepalive",
            "TCP keep-alive settings are not implemented; the system's apply",
        )?;
        t.unsupported(
            w,
            "maxConnectionDuration",
            "connection lifetimes are not implemented; ignored",
        )?;
        t.unsupported(
            w,
            "idleTimeout",
            "TCP idle timeouts are not implemented; http.idleTimeout is",
        )?;
        t.finish(w)?;
    }
    if let Some(http) = o.field("http") {
        let mut h = http.obj(w)?;
        if let Some(n) = h.field("http1MaxPendingRequests") {
            s.pool.http1_max_pending_requests = count(&n, w)?;
        }
        if let Some(n) = h.field("http2MaxRequests") {
            s.pool.http2_max_requests = count(&n, w)?;
        }
        if let Some(n) = h.field("maxRequestsPerConnection") {
            s.pool.max_requests_per_connection = count(&n, w)?;
        }
        if let Some(n) = h.field("maxRetries") {
            s.pool.max_retries = count(&n, w)?;
        }
        if let Some(n) = h.field("idleTimeout") {
            s.pool.idle_timeout = Some(n.duration(w)?);
        }
        if let Some(n) = h.field("h2UpgradePolicy") {
            let policy = n.str(w)?;
            s.protocol = match policy {
                "DEFAULT" => None,
                "DO_NOT_UPGRADE" => Some(Protocol::Http1),
                "UPGRADE" => Some(Protocol::Http2),
                _ => {
                    return Err(w.invalid(
                        &n.path,
                        policy,
                        "expected one of DEFAULT, DO_NOT_UPGRADE, UPGRADE",
                    ));
                }
            };
        }
        h.unsupported(
            w,
            "useClientProtocol",
            "not implemented; the destination's protocol is used",
        )?;
        h.unsupported(
            w,
            "maxConcurrentStreams",
            "not implemented; the HTTP/2 client's default applies",
        )?;
        h.finish(w)?;
    }
    o.finish(w)?;
    Ok(s)
}

/// Reads `outlierDetection`.
pub(crate) fn outlier_detection(
    node: Node<'_>,
    w: &mut Walker,
) -> Result<OutlierDetection, ConfigError> {
    let mut o = node.obj(w)?;
    let mut d = OutlierDetection::default();
    if let Some(n) = o.field("consecutive5xxErrors") {
        d.consecutive_5xx_errors = Some(n.u32(w)?);
    }
    if let Some(n) = o.field("consecutiveGatewayErrors") {
        d.consecutive_gateway_errors = Some(n.u32(w)?);
    }
    if let Some(n) = o.field("consecutiveLocalOriginFailures") {
        d.consecutive_local_origin_failures = Some(n.u32(w)?);
    }
    if let Some(n) = o.field("splitExternalLocalOriginErrors") {
        d.split_external_local_origin_errors = n.bool(w)?;
    }
    if let Some(n) = o.field("interval") {
        d.interval = Some(n.positive_duration(w)?);
    }
    if let Some(n) = o.field("baseEjectionTime") {
        d.base_ejection_time = Some(n.positive_duration(w)?);
    }
    // Plain int32 fields in Istio: zero is unset, so the default applies.
    if let Some(n) = o.field("maxEjectionPercent") {
        d.max_ejection_percent = Some(n.percent(w)?).filter(|p| *p != 0);
    }
    if let Some(n) = o.field("minHealthPercent") {
        d.min_health_percent = Some(n.percent(w)?).filter(|p| *p != 0);
    }
    if w.mode() == Mode::Strict
        && let Some(n) = o.field("successRate")
    {
        d.success_rate = Some(success_rate(n, w)?);
    }
    if let Some(n) = o.field("consecutiveErrors") {
        // Istio reads the deprecated field as gateway errors only, with 5xx ejection off.
        w.deprecated(
            &n,
            "deprecated; read as consecutiveGatewayErrors with consecutive 5xx ejection off, as Istio does",
        )?;
        let errors = n.u32(w)?;
        if errors > 0 {
            d.consecutive_gateway_errors.get_or_insert(errors);
            d.consecutive_5xx_errors.get_or_insert(0);
        }
    }
    o.finish(w)?;
    Ok(d)
}

/// Reads mesh's `outlierDetection.successRate`: `requestVolume` and either the stdev mode's
/// `minimumHosts` and `stdevFactor` (a multiple of the standard deviation, 1.9) or the
/// threshold mode's `minSuccessPercent`. Envoy's defaults fill what is left out.
fn success_rate(node: Node<'_>, w: &mut Walker) -> Result<SuccessRate, ConfigError> {
    let value = node.value;
    let mut o = node.obj(w)?;
    let path = o.path().to_owned();
    let request_volume = match o.field("requestVolume") {
        Some(n) => n.u32(w)?,
        None => DEFAULT_SUCCESS_RATE_REQUEST_VOLUME,
    };
    let hosts = o.field("minimumHosts");
    let factor = o.field("stdevFactor");
    let threshold = o.field("minSuccessPercent");
    o.finish(w)?;
    let mode = match threshold {
        Some(_) if hosts.is_some() || factor.is_some() => {
            return Err(w.invalid(
                &path,
                shown(value),
                "set either minSuccessPercent (threshold mode) or minimumHosts and stdevFactor (stdev mode), not both",
            ));
        }
        Some(t) => SuccessRateMode::Threshold {
            min_success_percent: t.percent(w)?,
        },
        None => SuccessRateMode::Stdev {
            minimum_hosts: match hosts {
                Some(n) => n.u32(w)?,
                None => DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS,
            },
            factor: match factor {
                Some(n) => stdev_factor(&n, w)?,
                None => DEFAULT_SUCCESS_RATE_STDEV_FACTOR,
            },
        },
    };
    Ok(SuccessRate {
        request_volume,
        mode,
    })
}

/// A stdev factor written as a multiple (1.9), in thousandths as the model holds it (1900).
fn stdev_factor(n: &Node<'_>, w: &Walker) -> Result<u32, ConfigError> {
    let f = n.f64(w)?;
    if !(0.0..=100.0).contains(&f) {
        return Err(w.invalid(
            &n.path,
            shown(n.value),
            "must be between 0 and 100 standard deviations (1.9 is Envoy's 1900)",
        ));
    }
    Ok((f * 1000.0).round() as u32)
}

/// Reads `retryBudget`: `percent` (a number, or `{value: N}` as protobuf's DoubleValue is
/// written; 20 when left out) and `minRetryConcurrency` (3 when left out or 0).
pub(crate) fn retry_budget(
    node: Node<'_>,
    w: &mut Walker,
) -> Result<RetryConcurrencyBudget, ConfigError> {
    let mut o = node.obj(w)?;
    let mut b = RetryConcurrencyBudget::default();
    if let Some(n) = o.field("percent") {
        let (number, shown_value) = if n.value.is_object() {
            let mut v = n.obj(w)?;
            let inner = v.required(w, "value")?;
            v.finish(w)?;
            let shown_value = shown(inner.value);
            (inner, shown_value)
        } else {
            let shown_value = shown(n.value);
            (n, shown_value)
        };
        let percent = number.f64(w)?;
        if !(0.0..=100.0).contains(&percent) {
            return Err(w.invalid(&number.path, shown_value, "must be between 0 and 100"));
        }
        b.percent = percent;
    }
    if let Some(n) = o.field("minRetryConcurrency")
        && let Some(min) = count(&n, w)?
    {
        b.min_retry_concurrency = min;
    }
    o.unsupported(
        w,
        "budgetInterval",
        "a budget interval is not implemented; only requests in flight count",
    )?;
    o.finish(w)?;
    Ok(b)
}

/// A `trafficPolicy`: its own settings and those of each port.
#[derive(Clone, Debug, Default)]
pub(crate) struct PolicyPart {
    pub(crate) overrides: PolicyOverrides,
    pub(crate) ports: Vec<(u16, PolicyOverrides)>,
}

impl PolicyPart {
    /// The settings for `port`: the port's laid over the policy's own.
    pub(crate) fn for_port(&self, port: u16) -> PolicyOverrides {
        match self.ports.iter().find(|(p, _)| *p == port) {
            Some((_, o)) => self.overrides.overlay(o),
            None => self.overrides.clone(),
        }
    }
}

/// Reads a DestinationRule's (or a subset's) `trafficPolicy`.
pub(crate) fn traffic_policy(node: Node<'_>, w: &mut Walker) -> Result<PolicyPart, ConfigError> {
    let mut o = node.obj(w)?;
    let mut overrides = policy_fields(&mut o, w)?;
    if let Some(n) = o.field("retryBudget") {
        overrides.retry_concurrency_budget = Some(Some(retry_budget(n, w)?));
    }
    let mut ports: Vec<(u16, PolicyOverrides)> = Vec::new();
    if let Some(list) = o.field("portLevelSettings") {
        for item in list.list(w)? {
            let mut p = item.obj(w)?;
            let mut port = p.required(w, "port")?.obj(w)?;
            let number_node = port.required(w, "number")?;
            let number = number_node.port(w)?;
            port.finish(w)?;
            if ports.iter().any(|(n, _)| *n == number) {
                return Err(w.invalid(
                    &number_node.path,
                    number,
                    "this port already has settings in portLevelSettings",
                ));
            }
            let settings = policy_fields(&mut p, w)?;
            p.finish(w)?;
            ports.push((number, settings));
        }
    }
    o.unsupported(
        w,
        "proxyProtocol",
        "the PROXY protocol is not implemented; ignored",
    )?;
    o.unsupported(w, "tunnel", "tunnelling is not implemented; ignored")?;
    o.finish(w)?;
    Ok(PolicyPart { overrides, ports })
}

/// The settings a traffic policy and a port's settings share.
fn policy_fields(o: &mut Obj<'_>, w: &mut Walker) -> Result<PolicyOverrides, ConfigError> {
    let mut ov = PolicyOverrides::default();
    if let Some(n) = o.field("loadBalancer")
        && let Some(lb) = load_balancer(n, w)?
    {
        lb.apply(&mut ov);
    }
    if let Some(n) = o.field("connectionPool") {
        connection_pool(n, w)?.apply(&mut ov);
    }
    if let Some(n) = o.field("outlierDetection") {
        ov.outlier_detection = Some(Some(outlier_detection(n, w)?));
    }
    if let Some(n) = o.field("tls") {
        ov.tls = Some(Some(client_tls(n, w)?));
    }
    Ok(ov)
}

/// Reads `tls` (Istio's `ClientTLSSettings`): `mode` (DISABLE when left out, as in Istio),
/// the certificate files, `subjectAltNames`, `sni` and `insecureSkipVerify`. Empty strings
/// are proto3's "unset". `credentialName` and `caCrl` are not implemented.
pub(crate) fn client_tls(node: Node<'_>, w: &mut Walker) -> Result<ClientTls, ConfigError> {
    let mut o = node.obj(w)?;
    let path = o.path().to_owned();
    let mode = match o.field("mode") {
        Some(n) => {
            let text = n.str(w)?;
            ClientTlsMode::from_name(text).ok_or_else(|| {
                w.invalid(
                    &n.path,
                    text,
                    "expected one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL",
                )
            })?
        }
        None => ClientTlsMode::Disable,
    };
    let mut tls = ClientTls::mode(mode);
    let text = |o: &mut Obj<'_>, key: &'static str| -> Result<Option<String>, ConfigError> {
        match o.field(key) {
            Some(n) => Ok(Some(n.str(w)?.to_owned()).filter(|s| !s.is_empty())),
            None => Ok(None),
        }
    };
    tls.client_certificate = text(&mut o, "clientCertificate")?.map(PathBuf::from);
    tls.private_key = text(&mut o, "privateKey")?.map(PathBuf::from);
    tls.ca_certificates = text(&mut o, "caCertificates")?.map(PathBuf::from);
    tls.sni = text(&mut o, "sni")?;
    if let Some(n) = o.field("subjectAltNames") {
        tls.subject_alt_names = n.strings(w)?;
    }
    if let Some(n) = o.field("insecureSkipVerify") {
        tls.insecure_skip_verify = n.bool(w)?;
    }
    if let Some(n) = o.field("credentialName") {
        // As Istio's validation: a credential name takes the place of the files.
        let files = [
            ("clientCertificate", &tls.client_certificate),
            ("privateKey", &tls.private_key),
            ("caCertificates", &tls.ca_certificates),
        ];
        if let Some((key, _)) = files.iter().find(|(_, f)| f.is_some()) {
            return Err(w.invalid(&n.path, shown(n.value), format!("cannot be set with {key}")));
        }
        w.unsupported(
            &n,
            "certificates from Kubernetes secrets are not implemented; use clientCertificate, privateKey and caCertificates",
        )?;
    }
    o.unsupported(
        w,
        "caCrl",
        "certificate revocation lists are not implemented; ignored",
    )?;
    o.finish(w)?;
    check::client_tls(&tls).map_err(|p| w.invalid(&join(&path, p.field), p.value, p.reason))?;
    Ok(tls)
}
