//! Parsing of the scalar values that files and environment variables share.
//!
//! Each parser returns the reason a value is bad; the caller adds the path and the value.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{ConfigError, LoadBalancer, NxDomainPolicy, Protocol};
use crate::duration::parse_duration;
use crate::retry::RetryOn;

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
