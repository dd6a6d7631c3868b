//! Parsing of the scalar values that files and environment variables share.
//!
//! Each parser returns the reason a value is bad; the caller adds the path and the value.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::security::check;
use super::{
    CertificateLayout, ConfigError, LoadBalancer, MtlsMode, NxDomainPolicy, OutboundMode, Protocol,
    RetryConcurrencyBudget,
};
use crate::duration::parse_duration;
use crate::hedge::HedgePolicy;
use crate::ratelimit::TokenBucketConfig;
use crate::retry::RetryOn;

/// The word that turns an optional setting off (in variables, and in files where a
/// destination would otherwise inherit the setting from the defaults).
pub(crate) const OFF: &str = "off";

/// A load-balancing algorithm without its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LbKind {
    RoundRobin,
    Random,
    LeastRequest,
    PeakEwma,
    Passthrough,
    ConsistentHash,
}

impl LbKind {
    /// The algorithm of `lb`.
    pub(crate) fn of(lb: &LoadBalancer) -> Self {
        match lb {
            LoadBalancer::RoundRobin => LbKind::RoundRobin,
            LoadBalancer::Random => LbKind::Random,
            LoadBalancer::LeastRequest => LbKind::LeastRequest,
            LoadBalancer::PeakEwma(_) => LbKind::PeakEwma,
            LoadBalancer::Passthrough => LbKind::Passthrough,
            LoadBalancer::ConsistentHash(_) => LbKind::ConsistentHash,
        }
    }
}

/// Parses a load balancer by Istio's name (`LEAST_CONN` is Istio's deprecated alias of
/// `LEAST_REQUEST`).
pub(crate) fn load_balancer(s: &str) -> Result<LbKind, String> {
    match s {
        "ROUND_ROBIN" => Ok(LbKind::RoundRobin),
        "RANDOM" => Ok(LbKind::Random),
        "LEAST_REQUEST" | "LEAST_CONN" => Ok(LbKind::LeastRequest),
        "PEAK_EWMA" => Ok(LbKind::PeakEwma),
        "PASSTHROUGH" => Ok(LbKind::Passthrough),
        _ => Err(
            "expected one of ROUND_ROBIN, RANDOM, LEAST_REQUEST, PEAK_EWMA, PASSTHROUGH".to_owned(),
        ),
    }
}

/// Parses `http1` or `http2`.
pub(crate) fn protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "http1" => Ok(Protocol::Http1),
        "http2" => Ok(Protocol::Http2),
        _ => Err("expected one of http1, http2".to_owned()),
    }
}

/// What to do on NXDOMAIN, without the grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NxAction {
    Keep,
    Drop,
}

impl NxAction {
    /// The action of `policy`.
    pub(crate) fn of(policy: &NxDomainPolicy) -> Self {
        match policy {
            NxDomainPolicy::Keep { .. } => NxAction::Keep,
            NxDomainPolicy::Drop => NxAction::Drop,
        }
    }
}

/// Parses `keep` or `drop`.
pub(crate) fn nxdomain_action(s: &str) -> Result<NxAction, String> {
    match s {
        "keep" => Ok(NxAction::Keep),
        "drop" => Ok(NxAction::Drop),
        _ => Err("expected one of keep, drop".to_owned()),
    }
}

/// Parses a duration in Istio's form.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Parses a timeout, where `0s` (or `0`) disables it, as in Istio.
pub(crate) fn timeout(s: &str) -> Result<Option<Duration>, String> {
    duration(s).map(|d| (!d.is_zero()).then_some(d))
}

/// Parses a `retryOn` list.
pub(crate) fn retry_on(s: &str) -> Result<RetryOn, String> {
    s.parse()
        .map_err(|e: crate::retry::ParseRetryOnError| e.to_string())
}

/// Parses `true` or `false` (also `1` / `0`, as environment variables often hold).
pub(crate) fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Parses a DNS server address: `ip:port`, `[ipv6]:port`, or a bare IP meaning port 53.
pub(crate) fn nameserver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    let addr: SocketAddr = s.parse().map_err(|_| {
        "expected an IP address with an optional port, such as 10.96.0.10:53 or [fd00::10]:53"
            .to_owned()
    })?;
    nonzero_port(addr)
}

/// Parses a fixed endpoint address: `ip:port` or `[ipv6]:port`.
pub(crate) fn endpoint(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| "expected an IP address and port, such as 127.0.0.1:9080".to_owned())?;
    nonzero_port(addr)
}

fn nonzero_port(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.port() == 0 {
        Err("port must be between 1 and 65535".to_owned())
    } else {
        Ok(addr)
    }
}

/// Checks a port number as written in a file (any integer).
pub(crate) fn port(n: i64) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| "port must be between 1 and 65535".to_owned())
}

/// Checks a count that must fit a `u32`.
pub(crate) fn count(n: i64) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("must be between 0 and {}", u32::MAX))
}

/// Checks a retry attempt count as written in a file.
pub(crate) fn attempts(n: i64) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| "must be between 0 and 100".to_owned())
}

/// Parses `off` as `None`, anything else with `parse`.
pub(crate) fn switch<T>(
    s: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if s == OFF {
        Ok(None)
    } else {
        parse(s).map(Some)
    }
}

/// Parses a whole number from 0 to `u32::MAX`.
pub(crate) fn whole_number(s: &str) -> Result<u32, String> {
    s.parse()
        .map_err(|_| format!("expected a whole number from 0 to {}", u32::MAX))
}

/// Parses a limit of requests in flight: a whole number, or `off`.
pub(crate) fn limit(s: &str) -> Result<Option<u32>, String> {
    switch(s, |s| {
        s.parse()
            .map_err(|_| format!("expected a whole number from 1 to {}, or off", u32::MAX))
    })
}

/// Parses a number that must be finite.
pub(crate) fn finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err("expected a number".to_owned()),
    }
}

/// Parses a latency percentile as a fraction: `p95` (a percentile, above 0 and at most 100)
/// or `0.95` (a fraction, above 0 and at most 1).
pub(crate) fn percentile(s: &str) -> Result<f64, String> {
    const EXPECTED: &str = "expected a percentile such as p95 or p99.9, or a fraction such as 0.95";
    let fraction = match s.strip_prefix('p') {
        Some(p) => finite(p).map_err(|_| EXPECTED.to_owned())? / 100.0,
        None => finite(s).map_err(|_| EXPECTED.to_owned())?,
    };
    if fraction > 0.0 && fraction <= 1.0 {
        Ok(fraction)
    } else {
        Err(EXPECTED.to_owned())
    }
}

/// The `key=value` options of a compact value, in order.
type Options<'a> = Vec<(&'a str, &'a str)>;

/// Splits `FIRST[,key=value...]` into the first part and the options, checking each key is
/// one of `keys` and appears once.
fn with_options<'a>(s: &'a str, keys: &[&str]) -> Result<(&'a str, Options<'a>), String> {
    let mut parts = s.split(',').map(str::trim);
    let first = parts.next().unwrap_or_default();
    let mut options: Options<'a> = Vec::new();
    for part in parts {
        let Some((key, value)) = part.split_once('=') else {
            return Err(format!(
                "`{part}`: expected key=value, with key one of {}",
                keys.join(", ")
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if !keys.contains(&key) {
            return Err(format!(
                "`{key}`: unknown option, expected one of {}",
                keys.join(", ")
            ));
        }
        if options.iter().any(|(k, _)| *k == key) {
            return Err(format!("`{key}` is given twice"));
        }
        options.push((key, value));
    }
    Ok((first, options))
}

/// Names the option in an error from parsing its value.
fn option<T>(
    key: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    parse(value).map_err(|e| format!("{key} `{value}`: {e}"))
}

/// Parses a token bucket in its compact form, `TOKENS/INTERVAL[,maxTokens=N]`: `TOKENS` added
/// every `INTERVAL`, and a bucket of `maxTokens` (by default `TOKENS`). `100/1s` allows 100
/// requests a second; `100/1s,maxTokens=200` also allows bursts of 200.
pub(crate) fn token_bucket(s: &str) -> Result<TokenBucketConfig, String> {
    let (rate, options) = with_options(s, &["maxTokens"])?;
    let Some((tokens, interval)) = rate.split_once('/') else {
        return Err(
            "expected TOKENS/INTERVAL[,maxTokens=N], such as 100/1s or 100/1s,maxTokens=200"
                .to_owned(),
        );
    };
    let tokens_per_fill = option("tokens", tokens.trim(), whole_number)?;
    let fill_interval = option("interval", interval.trim(), duration)?;
    // At least 1, so that a zero TOKENS is the error reported.
    let mut max_tokens = tokens_per_fill.max(1);
    for (key, value) in options {
        if key == "maxTokens" {
            max_tokens = option(key, value, whole_number)?;
        }
    }
    Ok(TokenBucketConfig {
        max_tokens,
        tokens_per_fill,
        fill_interval,
    })
}

/// Parses a hedging policy in its compact form, `PERCENTILE[,key=value...]`: the percentile
/// (`p95`, or `0.95`) and any of `maxExtraPercent`, `minPerSecond`, `minDelay`, `window` and
/// `minSamples`; the rest keep their defaults.
pub(crate) fn hedge(s: &str) -> Result<HedgePolicy, String> {
    let keys = [
        "maxExtraPercent",
        "minPerSecond",
        "minDelay",
        "window",
        "minSamples",
    ];
    let (first, options) = with_options(s, &keys)?;
    let mut h = HedgePolicy {
        percentile: percentile(first)?,
        ..HedgePolicy::default()
    };
    for (key, value) in options {
        match key {
            "maxExtraPercent" => h.max_extra_percent = option(key, value, finite)?,
            "minPerSecond" => h.min_per_second = option(key, value, whole_number)?,
            "minDelay" => h.min_delay = option(key, value, duration)?,
            "window" => h.window = option(key, value, duration)?,
            _ => {
                h.min_samples = option(key, value, |v| {
                    v.parse()
                        .map_err(|_| format!("expected a whole number from 0 to {}", u64::MAX))
                })?
            }
        }
    }
    Ok(h)
}

/// Parses a retry concurrency budget in its compact form, `PERCENT[,minRetryConcurrency=N]`.
pub(crate) fn retry_concurrency_budget(s: &str) -> Result<RetryConcurrencyBudget, String> {
    let (first, options) = with_options(s, &["minRetryConcurrency"])?;
    let mut b = RetryConcurrencyBudget {
        percent: finite(first).map_err(|_| {
            "expected PERCENT[,minRetryConcurrency=N], such as 20 or 20,minRetryConcurrency=5"
                .to_owned()
        })?,
        ..RetryConcurrencyBudget::default()
    };
    for (key, value) in options {
        if key == "minRetryConcurrency" {
            b.min_retry_concurrency = option(key, value, whole_number)?;
        }
    }
    Ok(b)
}

/// Parses a default mTLS mode by Istio's name.
pub(crate) fn mtls_mode(s: &str) -> Result<MtlsMode, String> {
    MtlsMode::from_name(s).ok_or_else(|| "expected one of STRICT, PERMISSIVE, DISABLE".to_owned())
}

/// Parses an outbound traffic mode by Istio's name.
pub(crate) fn outbound_mode(s: &str) -> Result<OutboundMode, String> {
    OutboundMode::from_name(s).ok_or_else(|| "expected one of ALLOW_ANY, REGISTRY_ONLY".to_owned())
}

/// Parses a certificate directory layout: `istio`, `spire` or `certManager`.
pub(crate) fn layout(s: &str) -> Result<CertificateLayout, String> {
    CertificateLayout::from_name(s)
        .ok_or_else(|| "expected one of istio, spire, certManager".to_owned())
}

/// Splits a comma-separated list, trimming pieces and dropping empty ones, and checks each
/// piece with `rule`.
pub(crate) fn list(s: &str, rule: fn(&str) -> Result<(), String>) -> Result<Vec<String>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            rule(piece)
                .map(|()| piece.to_owned())
                .map_err(|e| format!("`{piece}`: {e}"))
        })
        .collect()
}

/// Parses `key=value` pairs separated by commas (pod labels); a value may be empty.
pub(crate) fn labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for piece in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = piece
            .split_once('=')
            .ok_or_else(|| format!("`{piece}`: expected key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        check::label_key(key).map_err(|e| format!("`{piece}`: label key {e}"))?;
        check::label_value(value).map_err(|e| format!("`{piece}`: label value {e}"))?;
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(labels)
}

/// Runs `parse` on `value` and names `path` and `value` in any error.
pub(crate) fn at<T>(
    path: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    parse(value).map_err(|reason| ConfigError::invalid(path, value, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_default_to_port_53() {
        assert_eq!(nameserver("10.0.0.1"), Ok("10.0.0.1:53".parse().unwrap()));
        assert_eq!(nameserver("::1"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(nameserver("[::1]:5353"), Ok("[::1]:5353".parse().unwrap()));
        assert_eq!(
            nameserver("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        for bad in ["", "dns.local", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3:53"] {
            assert!(nameserver(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_need_a_port() {
        assert!(endpoint("127.0.0.1:9080").is_ok());
        assert!(endpoint("127.0.0.1").is_err());
        assert!(endpoint("127.0.0.1:0").is_err());
    }

    #[test]
    fn timeouts_of_zero_disable() {
        assert_eq!(timeout("0s"), Ok(None));
        assert_eq!(timeout("0"), Ok(None));
        assert_eq!(timeout("2s"), Ok(Some(Duration::from_secs(2))));
        assert!(timeout("2").is_err());
    }

    #[test]
    fn compact_token_buckets() {
        let secs = Duration::from_secs;
        assert_eq!(
            token_bucket("100/1s"),
            Ok(TokenBucketConfig::new(100, 100, secs(1)))
        );
        assert_eq!(
            token_bucket(" 100 / 1s , maxTokens = 250 "),
            Ok(TokenBucketConfig::new(250, 100, secs(1)))
        );
        assert_eq!(
            token_bucket("1/100ms"),
            Ok(TokenBucketConfig::new(1, 1, Duration::from_millis(100)))
        );
        assert_eq!(
            token_bucket("0/1s"),
            Ok(TokenBucketConfig::new(1, 0, secs(1))),
            "left for validation to name tokensPerFill"
        );
        for bad in [
            "",
            "100",
            "/1s",
            "100/",
            "x/1s",
            "100/1",
            "-1/1s",
            "100/1s,",
            "100/1s,maxTokens",
            "100/1s,maxTokens=x",
            "100/1s,burst=2",
            "100/1s,maxTokens=1,maxTokens=2",
        ] {
            assert!(token_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compact_hedges() {
        let d = HedgePolicy::default();
        assert_eq!(
            hedge("p95"),
            Ok(HedgePolicy {
                percentile: 0.95,
                ..d
            })
        );
        assert_eq!(
            hedge("0.99"),
            Ok(HedgePolicy {
                percentile: 0.99,
                ..d
            })
        );
        assert_eq!(
            hedge("p100"),
            Ok(HedgePolicy {
                percentile: 1.0,
                ..d
            })
        );
        assert_eq!(
            hedge("p90,maxExtraPercent=2.5,minPerSecond=0,minDelay=2ms,window=1m,minSamples=50"),
            Ok(HedgePolicy {
                percentile: 0.9,
                max_extra_percent: 2.5,
                min_per_second: 0,
                min_delay: Duration::from_millis(2),
                window: Duration::from_secs(60),
                min_samples: 50,
            })
        );
        for bad in [
            "",
            "95",
            "p0",
            "p101",
            "1.5",
            "0",
            "pNaN",
            "inf",
            "p95,",
            "p95,minDelay=1",
            "p95,minSamples=-1",
            "p95,maxExtraPercent=inf",
            "p95,percentile=0.9",
        ] {
            assert!(hedge(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compact_retry_concurrency_budgets() {
        assert_eq!(
            retry_concurrency_budget("25"),
            Ok(RetryConcurrencyBudget {
                percent: 25.0,
                min_retry_concurrency: 3
            })
        );
        assert_eq!(
            retry_concurrency_budget("12.5,minRetryConcurrency=0"),
            Ok(RetryConcurrencyBudget {
                percent: 12.5,
                min_retry_concurrency: 0
            })
        );
        for bad in ["", "x", "NaN", "20,minRetryConcurrency=x", "20,min=1"] {
            assert!(retry_concurrency_budget(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn off_and_limits() {
        assert_eq!(limit("off"), Ok(None));
        assert_eq!(limit("7"), Ok(Some(7)));
        assert_eq!(limit("0"), Ok(Some(0)), "left for validation");
        assert!(limit("OFF").is_err());
        assert!(limit("-1").is_err());
        assert_eq!(switch("off", token_bucket), Ok(None));
        assert!(switch("10/1s", token_bucket).unwrap().is_some());
    }

    #[test]
    fn ports_and_counts() {
        assert_eq!(port(9080), Ok(9080));
        assert!(port(0).is_err());
        assert!(port(-1).is_err());
        assert!(port(65536).is_err());
        assert_eq!(count(10), Ok(10));
        assert!(count(-1).is_err());
        assert!(attempts(-1).is_err());
    }
}
