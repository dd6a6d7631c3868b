//! The rules every [`MeshConfig`] obeys, whichever front door built it.
//!
//! Paths in errors use the keys of configuration files (`defaults.retries.perTryTimeout`),
//! so that a message points at the line a user would edit.

use std::net::SocketAddr;
use std::time::Duration;

use super::security::check as sec;
use super::{
    AuthzRule, ClientTls, ConfigError, DestinationConfig, DiscoveryConfig, HashKey, HashTable,
    JwksSource, JwtRule, LoadBalancer, Matcher, MeshConfig, SecurityConfig, ServerConfig,
    SubsetEndpoints, TrafficPolicy, Workload,
};
use crate::balance::{MAX_MAGLEV_TABLE_SIZE, MAX_RING_SIZE, is_prime};
use crate::duration::format_duration;
use crate::hedge::HedgePolicy;
use crate::outlier::{SuccessRate, SuccessRateMode};
use crate::ratelimit::TokenBucketConfig;

/// The most retries one request may make.
pub(crate) const MAX_ATTEMPTS: u32 = 100;

/// The largest retry budget ratio (retries per request).
pub(crate) const MAX_BUDGET_RATIO: f64 = 1000.0;

/// The largest success-rate stdev factor, in thousandths (100 standard deviations): a larger
/// one never ejects anything, and is most likely Envoy's thousandths written as a factor.
pub(crate) const MAX_STDEV_FACTOR: u32 = 100_000;

impl MeshConfig {
    /// Checks every rule of the model; the error names the first field that breaks one.
    ///
    /// The builders and readers call this before returning a config; call it yourself after
    /// changing a config's fields by hand.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_workload(&self.workload)?;
        validate_discovery(&self.discovery)?;
        validate_policy("defaults", &self.defaults)?;
        for (i, destination) in self.destinations.iter().enumerate() {
            validate_destination(&format!("destinations[{i}]"), destination)?;
        }
        for (second, b) in self.destinations.iter().enumerate() {
            if let Some(first) = self.destinations[..second]
                .iter()
                .position(|a| a.host == b.host && a.port == b.port)
            {
                let destination = match b.port {
                    Some(port) => format!("{}:{port}", b.host),
                    None => b.host.clone(),
                };
                return Err(ConfigError::DuplicateDestination {
                    path: format!("destinations[{second}]"),
                    first,
                    second,
                    destination,
                });
            }
        }
        for (i, vs) in self.virtual_services.iter().enumerate() {
            vs.validate(&format!("virtualServices[{i}]"))?;
        }
        validate_server(&self.server)?;
        validate_security(&self.security)?;
        super::telemetry::validate(&self.telemetry)
    }
}

/// Checks the security section; documents are named by their place in the lists
/// (`security.authorizationPolicies[0]`) and their fields by Istio's spec keys.
fn validate_security(s: &SecurityConfig) -> Result<(), ConfigError> {
    if let Some(c) = &s.certificates {
        for (key, path) in [("chain", &c.chain), ("key", &c.key), ("roots", &c.roots)] {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::invalid(
                    format!("security.certificates.{key}"),
                    "",
                    "must not be empty",
                ));
            }
        }
        positive("security.certificates.refresh", c.refresh)?;
    }
    check("security.rootNamespace", &s.root_namespace, dns_label)?;
    for (i, alias) in s.trust_domain_aliases.iter().enumerate() {
        check(
            &format!("security.trustDomainAliases[{i}]"),
            alias,
            dns_name,
        )?;
    }
    check(
        "security.identityTemplate",
        &s.identity_template,
        sec::identity_template,
    )?;
    for (i, host) in s.outbound.allowed_hosts.iter().enumerate() {
        check(
            &format!("security.outbound.allowedHosts[{i}]"),
            host,
            sec::egress_host,
        )?;
    }
    for (i, pa) in s.peer_authentications.iter().enumerate() {
        let prefix = format!("security.peerAuthentications[{i}]");
        document(
            &prefix,
            &pa.name,
            pa.namespace.as_deref(),
            pa.selector.as_ref(),
        )?;
        let selected = pa.selector.as_ref().is_some_and(|m| !m.is_empty());
        for port in pa.port_modes.keys() {
            let path = format!("{prefix}.portLevelMtls.{port}");
            if *port == 0 {
                return Err(ConfigError::invalid(
                    path,
                    port,
                    "expected a port number from 1 to 65535",
                ));
            }
            if !selected {
                return Err(ConfigError::invalid(
                    path,
                    port,
                    "portLevelMtls applies only to a policy with a workload selector",
                ));
            }
        }
    }
    for (i, ra) in s.request_authentications.iter().enumerate() {
        let prefix = format!("security.requestAuthentications[{i}]");
        document(
            &prefix,
            &ra.name,
            ra.namespace.as_deref(),
            ra.selector.as_ref(),
        )?;
        for (j, rule) in ra.jwt_rules.iter().enumerate() {
            jwt_rule(&format!("{prefix}.jwtRules[{j}]"), rule)?;
        }
    }
    for (i, ap) in s.authorization_policies.iter().enumerate() {
        let prefix = format!("security.authorizationPolicies[{i}]");
        document(
            &prefix,
            &ap.name,
            ap.namespace.as_deref(),
            ap.selector.as_ref(),
        )?;
        for (j, rule) in ap.rules.iter().enumerate() {
            authz_rule(&format!("{prefix}.rules[{j}]"), rule)?;
        }
    }
    Ok(())
}

/// A security document's name, namespace and selector.
fn document(
    prefix: &str,
    name: &str,
    namespace: Option<&str>,
    selector: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<(), ConfigError> {
    check(&format!("{prefix}.name"), name, dns_name)?;
    if let Some(ns) = namespace {
        check(&format!("{prefix}.namespace"), ns, dns_label)?;
    }
    for (key, value) in selector.into_iter().flatten() {
        let path = format!("{prefix}.selector.matchLabels.{key}");
        check(&path, key, sec::label_key)?;
        check(&path, value, sec::label_value)?;
    }
    Ok(())
}

fn jwt_rule(prefix: &str, r: &JwtRule) -> Result<(), ConfigError> {
    check(&format!("{prefix}.issuer"), &r.issuer, sec::not_empty)?;
    for (i, a) in r.audiences.iter().enumerate() {
        check(&format!("{prefix}.audiences[{i}]"), a, sec::not_empty)?;
    }
    match &r.keys {
        JwksSource::Inline(jwks) => check(&format!("{prefix}.jwks"), jwks, sec::jwks)?,
        JwksSource::Remote {
            uri,
            timeout,
            refresh,
        } => {
            check(&format!("{prefix}.jwksUri"), uri, sec::jwks_uri)?;
            positive(&format!("{prefix}.timeout"), *timeout)?;
            positive(&format!("{prefix}.refresh"), *refresh)?;
        }
    }
    for (i, h) in r.from_headers.iter().enumerate() {
        check(
            &format!("{prefix}.fromHeaders[{i}].name"),
            &h.name,
            sec::header_name,
        )?;
    }
    for (i, p) in r.from_params.iter().enumerate() {
        check(&format!("{prefix}.fromParams[{i}]"), p, sec::not_empty)?;
    }
    for (i, c) in r.from_cookies.iter().enumerate() {
        check(&format!("{prefix}.fromCookies[{i}]"), c, sec::not_empty)?;
    }
    for (i, c) in r.output_claim_to_headers.iter().enumerate() {
        let prefix = format!("{prefix}.outputClaimToHeaders[{i}]");
        check(&format!("{prefix}.header"), &c.header, sec::header_name)?;
        check(&format!("{prefix}.claim"), &c.claim, sec::not_empty)?;
    }
    if let Some(h) = &r.output_payload_to_header {
        check(
            &format!("{prefix}.outputPayloadToHeader"),
            h,
            sec::header_name,
        )?;
    }
    Ok(())
}

/// Checks the values of a matcher (`key` and `notKey`) with `rule`.
fn matcher(
    prefix: &str,
    key: &str,
    not_key: &str,
    m: &Matcher,
    rule: &dyn Fn(&str) -> Result<(), String>,
) -> Result<(), ConfigError> {
    for (k, values) in [(key, &m.values), (not_key, &m.not_values)] {
        for (i, v) in values.iter().enumerate() {
            rule(v).map_err(|r| ConfigError::invalid(format!("{prefix}.{k}[{i}]"), v, r))?;
        }
    }
    Ok(())
}

fn authz_rule(prefix: &str, r: &AuthzRule) -> Result<(), ConfigError> {
    let any = |_: &str| Ok(());
    let ip = sec::ip_block;
    let port = |s: &str| sec::port_text(s).map(|_| ());
    for (i, f) in r.from.iter().enumerate() {
        let p = format!("{prefix}.from[{i}].source");
        matcher(&p, "principals", "notPrincipals", &f.principals, &any)?;
        matcher(
            &p,
            "requestPrincipals",
            "notRequestPrincipals",
            &f.request_principals,
            &any,
        )?;
        matcher(&p, "namespaces", "notNamespaces", &f.namespaces, &any)?;
        matcher(&p, "ipBlocks", "notIpBlocks", &f.ip_blocks, &ip)?;
        matcher(
            &p,
            "remoteIpBlocks",
            "notRemoteIpBlocks",
            &f.remote_ip_blocks,
            &ip,
        )?;
    }
    for (i, t) in r.to.iter().enumerate() {
        let p = format!("{prefix}.to[{i}].operation");
        matcher(&p, "hosts", "notHosts", &t.hosts, &any)?;
        matcher(&p, "ports", "notPorts", &t.ports, &port)?;
        matcher(&p, "methods", "notMethods", &t.methods, &any)?;
        matcher(&p, "paths", "notPaths", &t.paths, &sec::authz_path)?;
    }
    for (i, c) in r.when.iter().enumerate() {
        let p = format!("{prefix}.when[{i}]");
        let values = sec::condition_key(&c.key)
            .map_err(|r| ConfigError::invalid(format!("{p}.key"), &c.key, r))?;
        matcher(&p, "values", "notValues", &c.matcher, &|v| values.check(v))?;
    }
    Ok(())
}

/// Checks client TLS settings at `{prefix}.tls`.
fn client_tls(prefix: &str, tls: &ClientTls) -> Result<(), ConfigError> {
    sec::client_tls(tls)
        .map_err(|p| ConfigError::invalid(format!("{prefix}.tls.{}", p.field), p.value, p.reason))
}

fn validate_server(s: &ServerConfig) -> Result<(), ConfigError> {
    if let Some(bucket) = &s.rate_limit {
        token_bucket("server.rateLimit", bucket)?;
    }
    if let Some(limit) = s.concurrency_limit {
        concurrency_limit("server.concurrencyLimit", limit)?;
    }
    let shutdown = &s.shutdown;
    positive("server.shutdown.grace", shutdown.grace)?;
    if shutdown.drain > shutdown.grace {
        return Err(ConfigError::invalid(
            "server.shutdown.drain",
            format_duration(shutdown.drain),
            format!(
                "must not exceed server.shutdown.grace ({})",
                format_duration(shutdown.grace)
            ),
        ));
    }
    Ok(())
}

/// Checks a token bucket; the error names the bucket's field by its file key.
fn token_bucket(prefix: &str, b: &TokenBucketConfig) -> Result<(), ConfigError> {
    b.validate().map_err(|reason| {
        let (key, value) = match first_word(&reason) {
            "max_tokens" => ("maxTokens", b.max_tokens.to_string()),
            "tokens_per_fill" => ("tokensPerFill", b.tokens_per_fill.to_string()),
            "fill_interval" => ("fillInterval", format_duration(b.fill_interval)),
            _ => return ConfigError::invalid(prefix, format!("{b:?}"), reason),
        };
        field_error(prefix, key, value, &reason)
    })
}

/// Checks a hedging policy; the error names the policy's field by its file key.
fn hedge(prefix: &str, h: &HedgePolicy) -> Result<(), ConfigError> {
    h.validate().map_err(|reason| {
        let (key, value) = match first_word(&reason) {
            "percentile" => ("percentile", h.percentile.to_string()),
            "max_extra_percent" => ("maxExtraPercent", h.max_extra_percent.to_string()),
            "min_per_second" => ("minPerSecond", h.min_per_second.to_string()),
            "min_delay" => ("minDelay", format_duration(h.min_delay)),
            "window" => ("window", format_duration(h.window)),
            "min_samples" => ("minSamples", h.min_samples.to_string()),
            _ => return ConfigError::invalid(prefix, format!("{h:?}"), reason),
        };
        field_error(prefix, key, value, &reason)
    })
}

fn first_word(s: &str) -> &str {
    s.split(' ').next().unwrap_or_default()
}

/// An error at `prefix.key` whose reason, which starts with the model's field name, is
/// reworded to start with `key`.
fn field_error(prefix: &str, key: &str, value: String, reason: &str) -> ConfigError {
    let rest = reason.split_once(' ').map_or("", |(_, rest)| rest);
    ConfigError::invalid(format!("{prefix}.{key}"), value, format!("{key} {rest}"))
}

fn concurrency_limit(path: &str, limit: u32) -> Result<(), ConfigError> {
    if limit == 0 {
        return Err(ConfigError::invalid(
            path,
            0,
            "must be at least 1 (leave it out, or write off, for no limit)",
        ));
    }
    Ok(())
}

fn success_rate(prefix: &str, s: &SuccessRate) -> Result<(), ConfigError> {
    if s.request_volume == 0 {
        return Err(ConfigError::invalid(
            format!("{prefix}.requestVolume"),
            0,
            "must be at least 1",
        ));
    }
    match s.mode {
        SuccessRateMode::Stdev {
            minimum_hosts,
            factor,
        } => {
            if minimum_hosts == 0 {
                return Err(ConfigError::invalid(
                    format!("{prefix}.minimumHosts"),
                    0,
                    "must be at least 1",
                ));
            }
            if factor > MAX_STDEV_FACTOR {
                return Err(ConfigError::invalid(
                    format!("{prefix}.stdevFactor"),
                    f64::from(factor) / 1000.0,
                    "must be between 0 and 100 standard deviations (1.9 is Envoy's 1900)",
                ));
            }
        }
        SuccessRateMode::Threshold {
            min_success_percent,
        } => {
            if min_success_percent > 100 {
                return Err(ConfigError::invalid(
                    format!("{prefix}.minSuccessPercent"),
                    min_success_percent,
                    "must be between 0 and 100",
                ));
            }
        }
    }
    Ok(())
}

fn validate_workload(w: &Workload) -> Result<(), ConfigError> {
    check("workload.service", &w.service, dns_label)?;
    check("workload.namespace", &w.namespace, dns_label)?;
    check("workload.clusterDomain", &w.cluster_domain, dns_name)?;
    check("workload.trustDomain", &w.trust_domain, dns_name)?;
    check("workload.serviceAccount", &w.service_account, dns_name)?;
    if let Some(pod) = &w.pod_name {
        check("workload.podName", pod, dns_name)?;
    }
    if let Some(version) = &w.version {
        check("workload.version", version, label_value)?;
    }
    for (key, value) in &w.labels {
        let path = format!("workload.labels.{key}");
        check(&path, key, sec::label_key)?;
        check(&path, value, sec::label_value)?;
    }
    Ok(())
}

fn validate_discovery(d: &DiscoveryConfig) -> Result<(), ConfigError> {
    for (i, addr) in d.nameservers.iter().enumerate() {
        check_addr(&format!("discovery.nameservers[{i}]"), addr)?;
    }
    if d.min_ttl > d.max_ttl {
        return Err(ConfigError::invalid(
            "discovery.minTtl",
            format_duration(d.min_ttl),
            format!(
                "must not exceed discovery.maxTtl ({})",
                format_duration(d.max_ttl)
            ),
        ));
    }
    if !(0.0..=1.0).contains(&d.jitter) {
        return Err(ConfigError::invalid(
            "discovery.jitter",
            d.jitter,
            "must be between 0 and 1",
        ));
    }
    positive("discovery.timeout", d.timeout)
}

fn validate_destination(prefix: &str, d: &DestinationConfig) -> Result<(), ConfigError> {
    check(&format!("{prefix}.host"), &d.host, host)?;
    if d.port == Some(0) {
        return Err(ConfigError::invalid(
            format!("{prefix}.port"),
            0,
            "port must be between 1 and 65535",
        ));
    }
    if let Some(endpoints) = &d.endpoints {
        if endpoints.is_empty() {
            return Err(ConfigError::invalid(
                format!("{prefix}.endpoints"),
                "[]",
                "must list at least one endpoint (leave it out to use DNS)",
            ));
        }
        for (i, addr) in endpoints.iter().enumerate() {
            check_addr(&format!("{prefix}.endpoints[{i}]"), addr)?;
        }
    }
    validate_policy(prefix, &d.policy)?;
    for (i, s) in d.subsets.iter().enumerate() {
        let prefix = format!("{prefix}.subsets[{i}]");
        check(&format!("{prefix}.name"), &s.name, dns_label)?;
        if let Some(first) = d.subsets[..i].iter().position(|o| o.name == s.name) {
            return Err(ConfigError::invalid(
                format!("{prefix}.name"),
                &s.name,
                format!("duplicate subset name: same as subsets[{first}]"),
            ));
        }
        match &s.endpoints {
            SubsetEndpoints::Host(h) => check(&format!("{prefix}.host"), h, host)?,
            SubsetEndpoints::Static(endpoints) => {
                if endpoints.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{prefix}.endpoints"),
                        "[]",
                        "must list at least one endpoint (leave it out to use DNS)",
                    ));
                }
                for (j, addr) in endpoints.iter().enumerate() {
                    check_addr(&format!("{prefix}.endpoints[{j}]"), addr)?;
                }
            }
        }
        validate_policy(&prefix, &s.policy)?;
    }
    Ok(())
}

fn validate_policy(prefix: &str, p: &TrafficPolicy) -> Result<(), ConfigError> {
    if let LoadBalancer::PeakEwma(ewma) = &p.load_balancer {
        positive(&format!("{prefix}.peakEwma.decay"), ewma.decay)?;
        positive(&format!("{prefix}.peakEwma.defaultRtt"), ewma.default_rtt)?;
    }
    if let LoadBalancer::ConsistentHash(hash) = &p.load_balancer {
        let prefix = format!("{prefix}.loadBalancer.consistentHash");
        match hash.table {
            HashTable::Ring { minimum_size } => {
                if !(1..=MAX_RING_SIZE).contains(&minimum_size) {
                    return Err(ConfigError::invalid(
                        format!("{prefix}.ringHash.minimumRingSize"),
                        minimum_size,
                        format!("must be between 1 and {MAX_RING_SIZE}"),
                    ));
                }
            }
            HashTable::Maglev { table_size } => {
                if table_size > MAX_MAGLEV_TABLE_SIZE || !is_prime(table_size) {
                    return Err(ConfigError::invalid(
                        format!("{prefix}.maglev.tableSize"),
                        table_size,
                        format!(
                            "must be a prime number up to {MAX_MAGLEV_TABLE_SIZE} (such as 65537)"
                        ),
                    ));
                }
            }
        }
        match &hash.key {
            HashKey::Cookie(cookie) if cookie.name.is_empty() => {
                return Err(ConfigError::invalid(
                    format!("{prefix}.httpCookie.name"),
                    "",
                    "must not be empty",
                ));
            }
            HashKey::QueryParameter(name) if name.is_empty() => {
                return Err(ConfigError::invalid(
                    format!("{prefix}.httpQueryParameterName"),
                    "",
                    "must not be empty",
                ));
            }
            _ => {}
        }
    }
    if let Some(t) = p.connection_pool.connect_timeout {
        positive(&format!("{prefix}.connectionPool.tcp.connectTimeout"), t)?;
    }
    if let Some(o) = &p.outlier_detection {
        let prefix = format!("{prefix}.outlierDetection");
        for (field, value) in [
            ("maxEjectionPercent", o.max_ejection_percent),
            ("minHealthPercent", o.min_health_percent),
        ] {
            if let Some(v) = value.filter(|v| *v > 100) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{field}"),
                    v,
                    "must be between 0 and 100",
                ));
            }
        }
        if let Some(t) = o.interval {
            positive(&format!("{prefix}.interval"), t)?;
        }
        if let Some(t) = o.base_ejection_time {
            positive(&format!("{prefix}.baseEjectionTime"), t)?;
        }
        if let Some(s) = &o.success_rate {
            success_rate(&format!("{prefix}.successRate"), s)?;
        }
    }
    if let Some(b) = &p.retry_concurrency_budget
        && !(0.0..=100.0).contains(&b.percent)
    {
        return Err(ConfigError::invalid(
            format!("{prefix}.retryBudget.percent"),
            b.percent,
            "must be between 0 and 100",
        ));
    }
    if let Some(bucket) = &p.rate_limit {
        token_bucket(&format!("{prefix}.rateLimit"), bucket)?;
    }
    if let Some(limit) = p.concurrency_limit {
        concurrency_limit(&format!("{prefix}.concurrencyLimit"), limit)?;
    }
    if let Some(h) = &p.hedge {
        hedge(&format!("{prefix}.hedge"), h)?;
    }
    if let Some(tls) = &p.tls {
        client_tls(prefix, tls)?;
    }
    if p.timeout == Some(Duration::ZERO) {
        return Err(ConfigError::invalid(
            format!("{prefix}.timeout"),
            "0s",
            "must be greater than 0 (use no timeout to disable it)",
        ));
    }
    positive(&format!("{prefix}.connectTimeout"), p.connect_timeout)?;
    let r = &p.retries;
    if r.attempts > MAX_ATTEMPTS {
        return Err(ConfigError::invalid(
            format!("{prefix}.retries.attempts"),
            r.attempts,
            format!("at most {MAX_ATTEMPTS} retries are allowed"),
        ));
    }
    if let Some(per_try) = r.per_try_timeout {
        positive(&format!("{prefix}.retries.perTryTimeout"), per_try)?;
    }
    positive(
        &format!("{prefix}.retries.backoff.baseInterval"),
        r.backoff.base,
    )?;
    if r.backoff.base > r.backoff.max {
        return Err(ConfigError::invalid(
            format!("{prefix}.retries.backoff.baseInterval"),
            format_duration(r.backoff.base),
            format!(
                "must not exceed maxInterval ({})",
                format_duration(r.backoff.max)
            ),
        ));
    }
    let ratio = r.budget.ratio;
    if !(0.0..=MAX_BUDGET_RATIO).contains(&ratio) {
        return Err(ConfigError::invalid(
            format!("{prefix}.retries.budget.percent"),
            ratio * 100.0,
            "must be between 0 and 100000 percent (a ratio of 0 to 1000)",
        ));
    }
    positive(&format!("{prefix}.retries.budget.ttl"), r.budget.window)
}

fn positive(path: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::invalid(path, "0s", "must be greater than 0"))
    } else {
        Ok(())
    }
}

fn check_addr(path: &str, addr: &SocketAddr) -> Result<(), ConfigError> {
    if addr.port() == 0 {
        Err(ConfigError::invalid(
            path,
            addr,
            "port must be between 1 and 65535",
        ))
    } else {
        Ok(())
    }
}

fn check(path: &str, value: &str, rule: fn(&str) -> Result<(), String>) -> Result<(), ConfigError> {
    rule(value).map_err(|reason| ConfigError::invalid(path, value, reason))
}

/// An RFC 1123 label, lowercase, as Kubernetes names namespaces and services.
pub(crate) fn dns_label(s: &str) -> Result<(), String> {
    label(s, false).map_err(|e| format!("must be a DNS label: {e}"))
}

/// An RFC 1123 subdomain, lowercase: labels joined by dots.
pub(crate) fn dns_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.len() > 253 {
        return Err("must be a DNS name of at most 253 characters".to_owned());
    }
    s.split('.')
        .try_for_each(|l| label(l, false))
        .map_err(|e| format!("must be a DNS name: {e}"))
}

/// A destination host: a DNS name, optionally fully qualified (a trailing dot), whose labels
/// may start with `_` as SRV names do (`_http._tcp.reviews`).
fn host(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.len() > 253 {
        return Err("must be a DNS name of at most 253 characters".to_owned());
    }
    name.split('.')
        .try_for_each(|l| label(l, true))
        .map_err(|e| format!("must be a DNS name: {e}"))
}

/// Checks one DNS label; `underscore` allows a leading `_` (SRV service and protocol labels).
fn label(l: &str, underscore: bool) -> Result<(), String> {
    let body = if underscore {
        l.strip_prefix('_').unwrap_or(l)
    } else {
        l
    };
    if body.is_empty() {
        return Err("empty label".to_owned());
    }
    if l.len() > 63 {
        return Err(format!("label `{l}` is longer than 63 characters"));
    }
    if body.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("label `{l}` must be lowercase"));
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("label `{l}` may hold only a-z, 0-9 and `-`"));
    }
    if body.starts_with('-') || body.ends_with('-') {
        return Err(format!(
            "label `{l}` must start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// A Kubernetes label value, such as a version: up to 63 of `A-Za-z0-9._-`, starting and
/// ending with a letter or digit.
pub(super) fn label_value(s: &str) -> Result<(), String> {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters".to_owned());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || !alnum(s.chars().next())
        || !alnum(s.chars().last())
    {
        return Err(
            "may hold only A-Z, a-z, 0-9, `-`, `_` and `.`, and must start and end with a letter or digit"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        BackoffConfig, NxDomainPolicy, PeakEwmaConfig, RetryBudgetConfig, RetryPolicy,
    };

    fn dest(host: &str, port: Option<u16>) -> DestinationConfig {
        DestinationConfig {
            host: host.to_owned(),
            port,
            endpoints: None,
            policy: TrafficPolicy::default(),
            subsets: Vec::new(),
        }
    }

    /// Applies `change` to a valid config and returns the Display of the error it causes.
    fn error_of(change: impl FnOnce(&mut MeshConfig)) -> String {
        let mut c = MeshConfig::default();
        c.destinations.push(dest("reviews", Some(9080)));
        c.validate().expect("the base config is valid");
        change(&mut c);
        match c.validate() {
            Err(e) => e.to_string(),
            Ok(()) => panic!("expected an error"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(MeshConfig::default().validate().is_ok());
        let mut c = MeshConfig::default();
        c.workload.version = Some("v1.2_beta".to_owned());
        c.workload.pod_name = Some("productpage-v1-6b746f74dc-9stvs".to_owned());
        c.destinations
            .push(dest("_http._tcp.reviews.default.svc.cluster.local.", None));
        c.destinations.push(dest("10.0.0.1", Some(80)));
        c.discovery.nxdomain = NxDomainPolicy::Drop;
        c.defaults.load_balancer = LoadBalancer::PeakEwma(PeakEwmaConfig::default());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn every_rule_names_path_and_value() {
        type Change = fn(&mut MeshConfig);
        let cases: Vec<(Change, &str, &str)> = vec![
            (
                |c| c.workload.service = String::new(),
                "workload.service",
                "\"\"",
            ),
            (
                |c| c.workload.service = "Product".into(),
                "workload.service",
                "\"Product\"",
            ),
            (
                |c| c.workload.namespace = "a.b".into(),
                "workload.namespace",
                "\"a.b\"",
            ),
            (
                |c| c.workload.namespace = "-ns".into(),
                "workload.namespace",
                "\"-ns\"",
            ),
            (
                |c| c.workload.namespace = "x".repeat(64),
                "workload.namespace",
                "longer than 63",
            ),
            (
                |c| c.workload.cluster_domain = "cluster..local".into(),
                "workload.clusterDomain",
                "\"cluster..local\"",
            ),
            (
                |c| c.workload.cluster_domain = String::new(),
                "workload.clusterDomain",
                "must not be empty",
            ),
            (
                |c| c.workload.trust_domain = "Example.org".into(),
                "workload.trustDomain",
                "lowercase",
            ),
            (
                |c| c.workload.service_account = "sa_1".into(),
                "workload.serviceAccount",
                "\"sa_1\"",
            ),
            (
                |c| c.workload.pod_name = Some(String::new()),
                "workload.podName",
                "\"\"",
            ),
            (
                |c| c.workload.version = Some("-v1".into()),
                "workload.version",
                "\"-v1\"",
            ),
            (
                |c| c.discovery.min_ttl = Duration::from_secs(61),
                "discovery.minTtl",
                "\"1m1s\": must not exceed discovery.maxTtl (1m)",
            ),
            (|c| c.discovery.jitter = 1.5, "discovery.jitter", "\"1.5\""),
            (
                |c| c.discovery.jitter = -0.1,
                "discovery.jitter",
                "\"-0.1\"",
            ),
            (
                |c| c.discovery.jitter = f64::NAN,
                "discovery.jitter",
                "\"NaN\"",
            ),
            (
                |c| c.discovery.timeout = Duration::ZERO,
                "discovery.timeout",
                "\"0s\"",
            ),
            (
                |c| c.discovery.nameservers = vec!["10.0.0.1:0".parse().unwrap()],
                "discovery.nameservers[0]",
                "\"10.0.0.1:0\"",
            ),
            (
                |c| c.defaults.retries.attempts = 101,
                "defaults.retries.attempts",
                "\"101\": at most 100 retries",
            ),
            (
                |c| c.defaults.retries.per_try_timeout = Some(Duration::ZERO),
                "defaults.retries.perTryTimeout",
                "\"0s\"",
            ),
            (
                |c| c.defaults.timeout = Some(Duration::ZERO),
                "defaults.timeout",
                "\"0s\"",
            ),
            (
                |c| c.defaults.connect_timeout = Duration::ZERO,
                "defaults.connectTimeout",
                "\"0s\"",
            ),
            (
                |c| {
                    c.defaults.retries.backoff = BackoffConfig {
                        base: Duration::ZERO,
                        max: Duration::from_secs(1),
                    }
                },
                "defaults.retries.backoff.baseInterval",
                "\"0s\"",
            ),
            (
                |c| {
                    c.defaults.retries.backoff = BackoffConfig {
                        base: Duration::from_secs(2),
                        max: Duration::from_secs(1),
                    }
                },
                "defaults.retries.backoff.baseInterval",
                "\"2s\": must not exceed maxInterval (1s)",
            ),
            (
                |c| c.defaults.retries.budget.ratio = 1000.5,
                "defaults.retries.budget.percent",
                "\"100050\"",
            ),
            (
                |c| c.defaults.retries.budget.ratio = -0.01,
                "defaults.retries.budget.percent",
                "\"-1\"",
            ),
            (
                |c| c.defaults.retries.budget.ratio = f64::INFINITY,
                "defaults.retries.budget.percent",
                "\"inf\"",
            ),
            (
                |c| c.defaults.retries.budget.window = Duration::ZERO,
                "defaults.retries.budget.ttl",
                "\"0s\"",
            ),
            (
                |c| {
                    c.defaults.load_balancer = LoadBalancer::PeakEwma(PeakEwmaConfig {
                        decay: Duration::ZERO,
                        default_rtt: Duration::from_millis(30),
                    })
                },
                "defaults.peakEwma.decay",
                "\"0s\"",
            ),
            (
                |c| c.destinations[0].host = String::new(),
                "destinations[0].host",
                "\"\": must not be empty",
            ),
            (
                |c| c.destinations[0].host = "Reviews".into(),
                "destinations[0].host",
                "\"Reviews\"",
            ),
            (
                |c| c.destinations[0].host = "reviews:9080".into(),
                "destinations[0].host",
                "\"reviews:9080\"",
            ),
            (
                |c| c.destinations[0].port = Some(0),
                "destinations[0].port",
                "\"0\"",
            ),
            (
                |c| c.destinations[0].endpoints = Some(vec![]),
                "destinations[0].endpoints",
                "\"[]\"",
            ),
            (
                |c| c.destinations[0].endpoints = Some(vec!["127.0.0.1:0".parse().unwrap()]),
                "destinations[0].endpoints[0]",
                "\"127.0.0.1:0\"",
            ),
            (
                |c| {
                    c.destinations[0].policy.retries = RetryPolicy {
                        attempts: 500,
                        ..RetryPolicy::default()
                    }
                },
                "destinations[0].retries.attempts",
                "\"500\"",
            ),
            (
                |c| {
                    c.destinations[0].policy.retries.budget = RetryBudgetConfig {
                        ratio: 2000.0,
                        ..RetryBudgetConfig::default()
                    }
                },
                "destinations[0].retries.budget.percent",
                "\"200000\"",
            ),
            (
                |c| c.destinations.push(dest("reviews", Some(9080))),
                "destinations[1]",
                "\"reviews:9080\": same host and port as destinations[0]",
            ),
        ];
        for (change, path, detail) in cases {
            let e = error_of(change);
            assert!(e.starts_with(&format!("{path}: ")), "{path}: {e}");
            assert!(e.contains(detail), "{detail}: {e}");
        }
    }

    #[test]
    fn subsets_and_traffic_settings_name_their_path() {
        use crate::config::{
            ConnectionPool, ConsistentHash, HashCookie, HashKey, HashTable, OutlierDetection,
            Subset, SubsetEndpoints,
        };
        fn subset(name: &str) -> Subset {
            Subset {
                name: name.to_owned(),
                labels: Default::default(),
                endpoints: SubsetEndpoints::Host(format!("reviews-{name}")),
                policy: TrafficPolicy::default(),
            }
        }
        fn hash(key: HashKey, table: HashTable) -> LoadBalancer {
            LoadBalancer::ConsistentHash(ConsistentHash { key, table })
        }
        type Change = fn(&mut MeshConfig);
        let cases: Vec<(Change, &str, &str)> = vec![
            (
                |c| c.destinations[0].subsets.push(subset("")),
                "destinations[0].subsets[0].name",
                "\"\": must be a DNS label",
            ),
            (
                |c| c.destinations[0].subsets = vec![subset("v1"), subset("V2")],
                "destinations[0].subsets[1].name",
                "\"V2\"",
            ),
            (
                |c| c.destinations[0].subsets = vec![subset("v1"), subset("v2"), subset("v1")],
                "destinations[0].subsets[2].name",
                "duplicate subset name: same as subsets[0]",
            ),
            (
                |c| {
                    let mut s = subset("v1");
                    s.endpoints = SubsetEndpoints::Static(Vec::new());
                    c.destinations[0].subsets.push(s);
                },
                "destinations[0].subsets[0].endpoints",
                "\"[]\"",
            ),
            (
                |c| {
                    let mut s = subset("v1");
                    s.endpoints = SubsetEndpoints::Static(vec!["127.0.0.1:0".parse().unwrap()]);
                    c.destinations[0].subsets.push(s);
                },
                "destinations[0].subsets[0].endpoints[0]",
                "\"127.0.0.1:0\"",
            ),
            (
                |c| {
                    let mut s = subset("v1");
                    s.endpoints = SubsetEndpoints::Host("Reviews-V1".to_owned());
                    c.destinations[0].subsets.push(s);
                },
                "destinations[0].subsets[0].host",
                "\"Reviews-V1\"",
            ),
            (
                |c| {
                    let mut s = subset("v1");
                    s.policy.retries.attempts = 1000;
                    c.destinations[0].subsets.push(s);
                },
                "destinations[0].subsets[0].retries.attempts",
                "\"1000\"",
            ),
            (
                |c| {
                    c.defaults.load_balancer =
                        hash(HashKey::SourceIp, HashTable::Maglev { table_size: 65536 })
                },
                "defaults.loadBalancer.consistentHash.maglev.tableSize",
                "\"65536\": must be a prime number",
            ),
            (
                |c| {
                    c.defaults.load_balancer = hash(
                        HashKey::SourceIp,
                        HashTable::Maglev {
                            table_size: 5_000_077,
                        },
                    )
                },
                "defaults.loadBalancer.consistentHash.maglev.tableSize",
                "\"5000077\"",
            ),
            (
                |c| {
                    c.destinations[0].policy.load_balancer =
                        hash(HashKey::SourceIp, HashTable::Ring { minimum_size: 0 })
                },
                "destinations[0].loadBalancer.consistentHash.ringHash.minimumRingSize",
                "\"0\": must be between 1 and 8388608",
            ),
            (
                |c| {
                    c.defaults.load_balancer = hash(
                        HashKey::SourceIp,
                        HashTable::Ring {
                            minimum_size: 1 << 24,
                        },
                    )
                },
                "defaults.loadBalancer.consistentHash.ringHash.minimumRingSize",
                "\"16777216\"",
            ),
            (
                |c| {
                    c.defaults.load_balancer = hash(
                        HashKey::Cookie(HashCookie {
                            name: String::new(),
                            path: None,
                            ttl: None,
                        }),
                        HashTable::default(),
                    )
                },
                "defaults.loadBalancer.consistentHash.httpCookie.name",
                "must not be empty",
            ),
            (
                |c| {
                    c.defaults.load_balancer =
                        hash(HashKey::QueryParameter(String::new()), HashTable::default())
                },
                "defaults.loadBalancer.consistentHash.httpQueryParameterName",
                "must not be empty",
            ),
            (
                |c| {
                    c.defaults.connection_pool = ConnectionPool {
                        connect_timeout: Some(Duration::ZERO),
                        ..ConnectionPool::default()
                    }
                },
                "defaults.connectionPool.tcp.connectTimeout",
                "\"0s\"",
            ),
            (
                |c| {
                    c.defaults.outlier_detection = Some(OutlierDetection {
                        max_ejection_percent: Some(101),
                        ..OutlierDetection::default()
                    })
                },
                "defaults.outlierDetection.maxEjectionPercent",
                "\"101\": must be between 0 and 100",
            ),
            (
                |c| {
                    let mut s = subset("v1");
                    s.policy.outlier_detection = Some(OutlierDetection {
                        min_health_percent: Some(150),
                        ..OutlierDetection::default()
                    });
                    c.destinations[0].subsets.push(s);
                },
                "destinations[0].subsets[0].outlierDetection.minHealthPercent",
                "\"150\"",
            ),
            (
                |c| {
                    c.destinations[0].policy.outlier_detection = Some(OutlierDetection {
                        interval: Some(Duration::ZERO),
                        ..OutlierDetection::default()
                    })
                },
                "destinations[0].outlierDetection.interval",
                "\"0s\"",
            ),
            (
                |c| {
                    c.defaults.outlier_detection = Some(OutlierDetection {
                        base_ejection_time: Some(Duration::ZERO),
                        ..OutlierDetection::default()
                    })
                },
                "defaults.outlierDetection.baseEjectionTime",
                "\"0s\"",
            ),
        ];
        for (change, path, detail) in cases {
            let e = error_of(change);
            assert!(e.starts_with(&format!("{path}: ")), "{path}: {e}");
            assert!(e.contains(detail), "{detail}: {e}");
        }

        let mut c = MeshConfig::default();
        c.destinations.push(dest("reviews", None));
        c.destinations[0].subsets = vec![subset("v1"), subset("v2-mysql")];
        c.defaults.load_balancer = hash(HashKey::SourceIp, HashTable::Maglev { table_size: 65537 });
        assert!(c.validate().is_ok());
    }

    #[test]
    fn resilience_settings_name_path_and_value() {
        use crate::config::{OutlierDetection, RetryConcurrencyBudget, Subset, SubsetEndpoints};
        use crate::outlier::SuccessRate;

        fn bucket(max: u32, per_fill: u32, ms: u64) -> Option<TokenBucketConfig> {
            Some(TokenBucketConfig::new(
                max,
                per_fill,
                Duration::from_millis(ms),
            ))
        }
        fn hedged(change: impl FnOnce(&mut HedgePolicy)) -> Option<HedgePolicy> {
            let mut h = HedgePolicy::default();
            change(&mut h);
            Some(h)
        }
        fn budget(percent: f64) -> Option<RetryConcurrencyBudget> {
            Some(RetryConcurrencyBudget {
                percent,
                min_retry_concurrency: 3,
            })
        }
        fn outlier(request_volume: u32, mode: SuccessRateMode) -> Option<OutlierDetection> {
            Some(OutlierDetection {
                success_rate: Some(SuccessRate {
                    request_volume,
                    mode,
                }),
                ..OutlierDetection::default()
            })
        }
        const STDEV: SuccessRateMode = SuccessRateMode::Stdev {
            minimum_hosts: 5,
            factor: 1900,
        };
        type Change = fn(&mut MeshConfig);
        let cases: Vec<(Change, &str, &str)> = vec![
            (
                |c| c.defaults.retry_concurrency_budget = budget(100.5),
                "defaults.retryBudget.percent",
                "\"100.5\": must be between 0 and 100",
            ),
            (
                |c| c.destinations[0].policy.retry_concurrency_budget = budget(-1.0),
                "destinations[0].retryBudget.percent",
                "\"-1\"",
            ),
            (
                |c| c.defaults.retry_concurrency_budget = budget(f64::NAN),
                "defaults.retryBudget.percent",
                "\"NaN\"",
            ),
            (
                |c| c.defaults.retry_concurrency_budget = budget(f64::INFINITY),
                "defaults.retryBudget.percent",
                "\"inf\"",
            ),
            (
                |c| c.defaults.rate_limit = bucket(0, 1, 1000),
                "defaults.rateLimit.maxTokens",
                "\"0\": maxTokens must be at least 1",
            ),
            (
                |c| c.defaults.rate_limit = bucket(20_000_000, 1, 1000),
                "defaults.rateLimit.maxTokens",
                "\"20000000\": maxTokens must be at most 16777214",
            ),
            (
                |c| c.destinations[0].policy.rate_limit = bucket(10, 0, 1000),
                "destinations[0].rateLimit.tokensPerFill",
                "\"0\": tokensPerFill must be at least 1",
            ),
            (
                |c| c.defaults.rate_limit = bucket(10, 1, 0),
                "defaults.rateLimit.fillInterval",
                "\"0s\": fillInterval must be at least 1ms",
            ),
            (
                |c| c.defaults.concurrency_limit = Some(0),
                "defaults.concurrencyLimit",
                "\"0\": must be at least 1",
            ),
            (
                |c| c.defaults.hedge = hedged(|h| h.percentile = 95.0),
                "defaults.hedge.percentile",
                "\"95\": percentile must be a fraction in (0, 1]",
            ),
            (
                |c| c.defaults.hedge = hedged(|h| h.percentile = f64::NAN),
                "defaults.hedge.percentile",
                "\"NaN\"",
            ),
            (
                |c| c.destinations[0].policy.hedge = hedged(|h| h.max_extra_percent = 101.0),
                "destinations[0].hedge.maxExtraPercent",
                "\"101\": maxExtraPercent must be between 0 and 100",
            ),
            (
                |c| c.defaults.hedge = hedged(|h| h.window = Duration::ZERO),
                "defaults.hedge.window",
                "\"0s\"",
            ),
            (
                |c| c.defaults.hedge = hedged(|h| h.min_samples = 0),
                "defaults.hedge.minSamples",
                "\"0\": minSamples must be at least 1",
            ),
            (
                |c| c.defaults.outlier_detection = outlier(0, STDEV),
                "defaults.outlierDetection.successRate.requestVolume",
                "\"0\": must be at least 1",
            ),
            (
                |c| {
                    c.defaults.outlier_detection = outlier(
                        100,
                        SuccessRateMode::Stdev {
                            minimum_hosts: 0,
                            factor: 1900,
                        },
                    )
                },
                "defaults.outlierDetection.successRate.minimumHosts",
                "\"0\": must be at least 1",
            ),
            (
                |c| {
                    c.defaults.outlier_detection = outlier(
                        100,
                        SuccessRateMode::Stdev {
                            minimum_hosts: 5,
                            factor: 1_900_000,
                        },
                    )
                },
                "defaults.outlierDetection.successRate.stdevFactor",
                "\"1900\": must be between 0 and 100",
            ),
            (
                |c| {
                    c.destinations[0].subsets.push(Subset {
                        name: "v1".to_owned(),
                        labels: Default::default(),
                        endpoints: SubsetEndpoints::Host("reviews-v1".to_owned()),
                        policy: TrafficPolicy {
                            outlier_detection: outlier(
                                100,
                                SuccessRateMode::Threshold {
                                    min_success_percent: 101,
                                },
                            ),
                            ..TrafficPolicy::default()
                        },
                    })
                },
                "destinations[0].subsets[0].outlierDetection.successRate.minSuccessPercent",
                "\"101\": must be between 0 and 100",
            ),
            (
                |c| c.server.rate_limit = bucket(0, 1, 1000),
                "server.rateLimit.maxTokens",
                "\"0\"",
            ),
            (
                |c| c.server.rate_limit = bucket(1, 1, 0),
                "server.rateLimit.fillInterval",
                "\"0s\"",
            ),
            (
                |c| c.server.concurrency_limit = Some(0),
                "server.concurrencyLimit",
                "\"0\": must be at least 1",
            ),
            (
                |c| c.server.shutdown.grace = Duration::ZERO,
                "server.shutdown.grace",
                "\"0s\": must be greater than 0",
            ),
            (
                |c| c.server.shutdown.drain = Duration::from_secs(31),
                "server.shutdown.drain",
                "\"31s\": must not exceed server.shutdown.grace (30s)",
            ),
        ];
        for (change, path, detail) in cases {
            let e = error_of(change);
            assert!(e.starts_with(&format!("{path}: ")), "{path}: {e}");
            assert!(e.contains(detail), "{detail}: {e}");
        }

        // The edges are valid.
        let mut c = MeshConfig::default();
        c.defaults.retry_concurrency_budget = budget(0.0);
        c.defaults.rate_limit = bucket(TokenBucketConfig::MAX_TOKENS, 1, 1);
        c.defaults.concurrency_limit = Some(1);
        c.defaults.hedge = hedged(|h| h.percentile = 1.0);
        c.defaults.outlier_detection = outlier(
            1,
            SuccessRateMode::Stdev {
                minimum_hosts: 1,
                factor: MAX_STDEV_FACTOR,
            },
        );
        c.server.concurrency_limit = Some(1);
        c.server.shutdown.drain = c.server.shutdown.grace;
        assert_eq!(c.validate().map_err(|e| e.to_string()), Ok(()));
        c.destinations.push(dest("a", None));
        c.destinations[0].policy.retry_concurrency_budget = budget(100.0);
        c.destinations[0].policy.outlier_detection = outlier(
            1,
            SuccessRateMode::Threshold {
                min_success_percent: 100,
            },
        );
        c.server.shutdown.drain = Duration::ZERO;
        assert_eq!(c.validate().map_err(|e| e.to_string()), Ok(()));
    }

    #[test]
    fn duplicates_name_both_indexes() {
        let c = MeshConfig {
            destinations: vec![
                dest("a", None),
                dest("b", None),
                dest("a", Some(1)),
                dest("a", None),
            ],
            ..MeshConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(matches!(
            e,
            ConfigError::DuplicateDestination {
                first: 0,
                second: 3,
                ..
            }
        ));
        assert_eq!(e.path(), Some("destinations[3]"));
    }
}
