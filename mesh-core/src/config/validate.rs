//! The rules every [`MeshConfig`] obeys, whichever front door built it.
//!
//! Paths in errors use the keys of configuration files (`defaults.retries.perTryTimeout`),
//! so that a message points at the line a user would edit.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    ConfigError, DestinationConfig, DiscoveryConfig, LoadBalancer, MeshConfig, TrafficPolicy,
    Workload,
};
use crate::duration::format_duration;

/// The most retries one request may make.
pub(crate) const MAX_ATTEMPTS: u32 = 100;

/// The largest retry budget ratio (retries per request).
pub(crate) const MAX_BUDGET_RATIO: f64 = 1000.0;

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
        Ok(())
    }
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
    validate_policy(prefix, &d.policy)
}

fn validate_policy(prefix: &str, p: &TrafficPolicy) -> Result<(), ConfigError> {
    if let LoadBalancer::PeakEwma(ewma) = &p.load_balancer {
        positive(&format!("{prefix}.peakEwma.decay"), ewma.decay)?;
        positive(&format!("{prefix}.peakEwma.defaultRtt"), ewma.default_rtt)?;
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
fn dns_label(s: &str) -> Result<(), String> {
    label(s, false).map_err(|e| format!("must be a DNS label: {e}"))
}

/// An RFC 1123 subdomain, lowercase: labels joined by dots.
fn dns_name(s: &str) -> Result<(), String> {
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
fn label_value(s: &str) -> Result<(), String> {
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
