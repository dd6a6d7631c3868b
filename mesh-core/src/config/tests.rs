//! Tests across the three front doors: the same config from each, and bad input in each.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::hedge::HedgePolicy;
use crate::outlier::{SuccessRate, SuccessRateMode};
use crate::ratelimit::TokenBucketConfig;
use crate::retry::RetryOn;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The path of a file under `testdata/`.
fn testdata(name: &str) -> String {
    format!("{}/src/config/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn retry_on(s: &str) -> RetryOn {
    s.parse().expect("a valid retryOn")
}

/// `testdata/mesh.yaml`, built in code.
fn reference() -> MeshConfig {
    MeshConfig::builder()
        .service("productpage")
        .namespace("bookinfo")
        .cluster_domain("example.internal")
        .trust_domain("example.org")
        .service_account("bookinfo-productpage")
        .pod_name("productpage-v1-1")
        .version("v1")
        .nameserver("127.0.0.1:5353".parse().unwrap())
        .nameserver("10.96.0.10:53".parse().unwrap())
        .min_ttl(secs(2))
        .max_ttl(secs(30))
        .jitter(0.25)
        .dns_timeout(ms(1500))
        .nxdomain(NxDomainPolicy::Keep { grace: secs(90) })
        .destination(
            DestinationBuilder::new("reviews")
                .port(9080)
                .load_balancer(LoadBalancer::RoundRobin)
                .timeout(secs(2))
                .retry_attempts(3)
                .endpoints(["127.0.0.1:9080".parse().unwrap()])
                .concurrency_limit(10)
                .no_hedge(),
        )
        .destination(
            DestinationBuilder::new("ratings.bookinfo.svc.example.internal")
                .load_balancer(LoadBalancer::PeakEwma(PeakEwmaConfig {
                    decay: secs(5),
                    default_rtt: ms(30),
                }))
                .protocol(Protocol::Http2)
                .no_timeout()
                .per_try_timeout(Duration::ZERO)
                .retry_on(retry_on("gateway-error,503"))
                .backoff(BackoffConfig {
                    base: ms(25),
                    max: secs(1),
                })
                .retry_budget(RetryBudgetConfig {
                    ratio: 0.5,
                    min_per_second: 10,
                    window: secs(10),
                })
                .rate_limit(TokenBucketConfig::new(10, 1, ms(100)))
                .outlier_detection(OutlierDetection {
                    consecutive_5xx_errors: Some(5),
                    success_rate: Some(SuccessRate {
                        request_volume: 50,
                        mode: SuccessRateMode::Threshold {
                            min_success_percent: 90,
                        },
                    }),
                    ..OutlierDetection::default()
                })
                .no_retry_concurrency_budget(),
        )
        // Defaults set after the destinations still reach them.
        .load_balancer(LoadBalancer::LeastRequest)
        .timeout(secs(15))
        .connect_timeout(secs(5))
        .protocol(Protocol::Http1)
        .retry_attempts(2)
        .per_try_timeout(secs(1))
        .retry_on(retry_on("5xx,connect-failure"))
        .retry_non_idempotent(false)
        .backoff(BackoffConfig {
            base: ms(25),
            max: ms(250),
        })
        .retry_budget(RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
            window: secs(10),
        })
        .retry_concurrency_budget(RetryConcurrencyBudget {
            percent: 25.0,
            min_retry_concurrency: 5,
        })
        .rate_limit(TokenBucketConfig::new(200, 100, secs(1)))
        .concurrency_limit(64)
        .hedge(HedgePolicy {
            percentile: 0.99,
            max_extra_percent: 5.0,
            min_delay: ms(5),
            ..HedgePolicy::default()
        })
        .server_rate_limit(TokenBucketConfig::new(1000, 1000, secs(1)))
        .server_concurrency_limit(500)
        .propagate_deadline(false)
        .shutdown_drain(secs(10))
        .shutdown_grace(secs(45))
        .build()
        .expect("the reference config is valid")
}

/// The reference config's workload, discovery and defaults as environment variables.
const REFERENCE_VARS: &[(&str, &str)] = &[
    ("MESH_SERVICE", "productpage"),
    ("POD_NAMESPACE", "bookinfo"),
    ("MESH_CLUSTER_DOMAIN", "example.internal"),
    ("MESH_TRUST_DOMAIN", "example.org"),
    ("SERVICE_ACCOUNT", "bookinfo-productpage"),
    ("POD_NAME", "productpage-v1-1"),
    ("MESH_VERSION", "v1"),
    ("MESH_DNS_SERVERS", "127.0.0.1:5353, 10.96.0.10"),
    ("MESH_DNS_MIN_TTL", "2s"),
    ("MESH_DNS_MAX_TTL", "30s"),
    ("MESH_DNS_JITTER", "0.25"),
    ("MESH_DNS_TIMEOUT", "1.5s"),
    ("MESH_DNS_NXDOMAIN", "keep"),
    ("MESH_DNS_NXDOMAIN_GRACE", "90s"),
    ("MESH_LB", "LEAST_REQUEST"),
    ("MESH_TIMEOUT", "15s"),
    ("MESH_CONNECT_TIMEOUT", "5s"),
    ("MESH_PROTOCOL", "http1"),
    ("MESH_RETRY_ATTEMPTS", "2"),
    ("MESH_RETRY_PER_TRY_TIMEOUT", "1s"),
    ("MESH_RETRY_ON", "5xx,connect-failure"),
    ("MESH_RETRY_NON_IDEMPOTENT", "false"),
    ("MESH_RETRY_BACKOFF_BASE", "25ms"),
    ("MESH_RETRY_BACKOFF_MAX", "250ms"),
    ("MESH_RETRY_BUDGET_PERCENT", "20"),
    ("MESH_RETRY_BUDGET_MIN_PER_SECOND", "10"),
    ("MESH_RETRY_BUDGET_TTL", "10s"),
    ("MESH_RETRY_CONCURRENCY_BUDGET", "25,minRetryConcurrency=5"),
    ("MESH_RATE_LIMIT", "100/1s,maxTokens=200"),
    ("MESH_CONCURRENCY_LIMIT", "64"),
    ("MESH_HEDGE", "p99, maxExtraPercent=5, minDelay=5ms"),
    ("MESH_SERVER_RATE_LIMIT", "1000/1s"),
    ("MESH_SERVER_CONCURRENCY_LIMIT", "500"),
    ("MESH_PROPAGATE_DEADLINE", "false"),
    ("MESH_SHUTDOWN_DRAIN", "10s"),
    ("MESH_SHUTDOWN_GRACE", "45s"),
    // Not ours: ignored.
    ("HOME", "/home/app"),
    ("PATH", "/usr/bin"),
];

fn vars_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    REFERENCE_VARS.iter().chain(extra).copied().collect()
}

#[test]
fn reference_resolves_inheritance() {
    let c = reference();
    let reviews = &c.destinations[0].policy;
    assert_eq!(reviews.retries.attempts, 3);
    assert_eq!(reviews.retries.per_try_timeout, Some(secs(1)));
    assert_eq!(reviews.retries.retry_on, retry_on("5xx,connect-failure"));
    assert_eq!(reviews.connect_timeout, secs(5));
    let ratings = &c.destinations[1].policy;
    assert_eq!(ratings.timeout, None);
    assert_eq!(ratings.retries.attempts, 2);
    assert_eq!(ratings.retries.per_try_timeout, None);
    assert_eq!(ratings.retries.budget.ratio, 0.5);
    assert_eq!(ratings.retries.budget.min_per_second, 10);
    // The resilience settings inherit too, and a destination may turn one off.
    assert_eq!(reviews.concurrency_limit, Some(10));
    assert_eq!(reviews.hedge, None, "turned off");
    assert_eq!(reviews.rate_limit, c.defaults.rate_limit);
    assert_eq!(
        reviews.retry_concurrency_budget,
        c.defaults.retry_concurrency_budget
    );
    assert_eq!(ratings.concurrency_limit, Some(64));
    assert_eq!(ratings.hedge, c.defaults.hedge);
    assert_eq!(ratings.retry_concurrency_budget, None, "turned off");
    assert_eq!(
        ratings.rate_limit,
        Some(TokenBucketConfig::new(10, 1, ms(100)))
    );
    assert_eq!(c.server.concurrency_limit, Some(500));
    assert!(!c.server.propagate_deadline);
}

#[test]
fn same_config_from_every_front_door() {
    let want = reference();
    for file in ["mesh.yaml", "mesh.toml", "mesh.json"] {
        assert_eq!(
            MeshConfig::from_file(testdata(file)).unwrap(),
            want,
            "{file}"
        );
    }
    let yaml = std::fs::read_to_string(testdata("mesh.yaml")).unwrap();
    assert_eq!(MeshConfig::from_str(&yaml, Format::Yaml).unwrap(), want);

    let destinations = testdata("destinations.yaml");
    let vars = vars_with(&[("MESH_CONFIG", &destinations)]);
    assert_eq!(
        MeshConfig::from_vars(vars).unwrap(),
        want,
        "env over a file"
    );

    let without_destinations = MeshConfig {
        destinations: Vec::new(),
        ..want
    };
    assert_eq!(
        MeshConfig::from_vars(REFERENCE_VARS.iter().copied()).unwrap(),
        without_destinations,
        "env alone"
    );
}

#[test]
fn empty_inputs_give_the_defaults() {
    let none: [(&str, &str); 0] = [];
    assert_eq!(MeshConfig::from_vars(none).unwrap(), MeshConfig::default());
    assert_eq!(
        MeshConfig::from_str("", Format::Yaml).unwrap(),
        MeshConfig::default()
    );
    assert_eq!(
        MeshConfig::from_str("{}", Format::Json).unwrap(),
        MeshConfig::default()
    );
    assert_eq!(
        MeshConfig::from_str("", Format::Toml).unwrap(),
        MeshConfig::default()
    );
}

#[test]
fn variables_override_the_file() {
    let file = testdata("mesh.yaml");
    let c = MeshConfig::from_vars([
        ("MESH_CONFIG", file.as_str()),
        ("POD_NAMESPACE", "ignored"),
        ("MESH_NAMESPACE", "prod"),
        ("MESH_TIMEOUT", "0s"),
        ("MESH_RETRY_ATTEMPTS", "5"),
        ("MESH_LB", "PEAK_EWMA"),
        ("MESH_DNS_NXDOMAIN", "drop"),
    ])
    .unwrap();
    assert_eq!(c.workload.namespace, "prod");
    assert_eq!(c.workload.service, "productpage", "kept from the file");
    assert_eq!(c.defaults.timeout, None);
    assert_eq!(c.defaults.retries.attempts, 5);
    assert_eq!(c.discovery.nxdomain, NxDomainPolicy::Drop);
    assert_eq!(
        c.defaults.load_balancer,
        LoadBalancer::PeakEwma(PeakEwmaConfig::default())
    );
    let reviews = &c.destinations[0].policy;
    assert_eq!(reviews.retries.attempts, 3, "set by the destination");
    assert_eq!(reviews.timeout, Some(secs(2)), "set by the destination");
    let ratings = &c.destinations[1].policy;
    assert_eq!(ratings.retries.attempts, 5, "inherited from the variables");
}

#[test]
fn downward_api_names() {
    let c = MeshConfig::from_vars([
        ("POD_NAMESPACE", "shop"),
        ("POD_NAME", "cart-1"),
        ("POD_SERVICE_ACCOUNT", "cart"),
    ])
    .unwrap();
    assert_eq!(c.workload.namespace, "shop");
    assert_eq!(c.workload.pod_name.as_deref(), Some("cart-1"));
    assert_eq!(c.workload.service_account, "cart");
    let c = MeshConfig::from_vars([
        ("SERVICE_ACCOUNT", "a"),
        ("POD_SERVICE_ACCOUNT", "b"),
        ("MESH_NAMESPACE", "mesh"),
        ("POD_NAMESPACE", "pod"),
        ("MESH_DNS_NXDOMAIN_GRACE", "5s"),
        ("MESH_VERSION", ""),
    ])
    .unwrap();
    assert_eq!(c.workload.service_account, "a");
    assert_eq!(c.workload.namespace, "mesh");
    assert_eq!(c.workload.version, None, "empty values count as unset");
    assert_eq!(
        c.discovery.nxdomain,
        NxDomainPolicy::Keep { grace: secs(5) }
    );
    let c = MeshConfig::from_vars([("MESH_SERVICE_ACCOUNT", "m"), ("SERVICE_ACCOUNT", "a")]);
    assert_eq!(c.unwrap().workload.service_account, "m");
}

#[test]
fn from_env_reads_the_process() {
    // The test process sets no MESH_ variables, so this gives the defaults (plus any
    // Downward-API names the runner happens to set).
    let ours = |k: &std::ffi::OsStr| {
        let k = k.to_string_lossy();
        k.starts_with("MESH_") || k.starts_with("POD_") || k.ends_with("SERVICE_ACCOUNT")
    };
    if std::env::vars_os().all(|(k, _)| !ours(&k)) {
        let c = MeshConfig::from_env().unwrap();
        assert_eq!(c.defaults, TrafficPolicy::default());
    }
}

/// Asserts that `e` is about `path` and that its message names the path and every needle.
#[track_caller]
fn assert_names(e: &ConfigError, path: &str, needles: &[&str]) {
    let text = e.to_string();
    assert_eq!(e.path(), Some(path), "{text}");
    assert!(text.contains(path), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` missing in: {text}");
    }
}

const LB_NAMES: &str = "expected one of ROUND_ROBIN, RANDOM, LEAST_REQUEST, PEAK_EWMA";

#[test]
fn bad_yaml_values_name_path_and_value() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "destinations: [{host: reviews, loadBalancer: ROUND_ROBBIN}]",
            "destinations[0].loadBalancer",
            &[&format!(
                "destinations[0].loadBalancer: invalid value \"ROUND_ROBBIN\": {LB_NAMES}"
            )],
        ),
        (
            "defaults: {loadBalancer: {simple: LEAST}}",
            "defaults.loadBalancer.simple",
            &["\"LEAST\"", LB_NAMES],
        ),
        (
            "defaults: {loadBalancer: {}}",
            "defaults.loadBalancer",
            &["{simple: NAME}"],
        ),
        (
            "defaults: {loadBalancer: {simple: RANDOM, consistentHash: {}}}",
            "defaults.loadBalancer",
            &["set either simple or consistentHash, not both"],
        ),
        (
            "defaults: {loadBalancer: {simple: RANDOM, hash: {}}}",
            "defaults.loadBalancer.hash",
            &["unknown field \"hash\"", "`consistentHash`"],
        ),
        (
            "defaults: {timeout: 5}",
            "defaults.timeout",
            &["\"5\"", "missing unit"],
        ),
        (
            "defaults: {timeout: 5x}",
            "defaults.timeout",
            &["\"5x\"", "unknown unit"],
        ),
        (
            "defaults: {timeout: -1s}",
            "defaults.timeout",
            &["\"-1s\"", "negative"],
        ),
        (
            "defaults: {timeout: ''}",
            "defaults.timeout",
            &["\"\"", "empty"],
        ),
        (
            "defaults: {connectTimeout: 0s}",
            "defaults.connectTimeout",
            &["\"0s\""],
        ),
        (
            "defaults: {protocol: http3}",
            "defaults.protocol",
            &["\"http3\"", "http2"],
        ),
        (
            "defaults: {retries: {retryOn: '5xx,bogus'}}",
            "defaults.retries.retryOn",
            &["\"5xx,bogus\"", "`bogus`"],
        ),
        (
            "defaults: {retries: {attempts: 101}}",
            "defaults.retries.attempts",
            &["\"101\"", "at most 100"],
        ),
        (
            "defaults: {retries: {attempts: -1}}",
            "defaults.retries.attempts",
            &["\"-1\""],
        ),
        (
            "defaults: {retries: {attemps: 2}}",
            "defaults.retries.attemps",
            &["unknown field \"attemps\"", "attempts", "line 1"],
        ),
        (
            "defaults: {retries: {perTryTimeout: 1}}",
            "defaults.retries.perTryTimeout",
            &["\"1\""],
        ),
        (
            "defaults: {retries: {backoff: {baseInterval: 1s}}}",
            "defaults.retries.backoff.baseInterval",
            &["\"1s\"", "maxInterval (250ms)"],
        ),
        (
            "defaults: {retries: {budget: {percent: 200000}}}",
            "defaults.retries.budget.percent",
            &["\"200000\""],
        ),
        (
            "defaults: {retries: {budget: {ttl: 0s}}}",
            "defaults.retries.budget.ttl",
            &["\"0s\""],
        ),
        (
            "defaults: {retries: {budget: {minRetriesPerSecond: -5}}}",
            "defaults.retries.budget.minRetriesPerSecond",
            &["\"-5\""],
        ),
        (
            "defaults: {peakEwma: {decay: 1s}}",
            "defaults.peakEwma",
            &["{decay: 1s}", "PEAK_EWMA"],
        ),
        (
            "defaults: {loadBalancer: PEAK_EWMA, peakEwma: {defaultRtt: 1x}}",
            "defaults.peakEwma.defaultRtt",
            &["\"1x\""],
        ),
        (
            "destinations: [{host: a, port: 70000}]",
            "destinations[0].port",
            &["\"70000\""],
        ),
        (
            "destinations: [{host: a, port: 0}]",
            "destinations[0].port",
            &["\"0\""],
        ),
        (
            "destinations: [{host: a, port: x}]",
            "destinations[0].port",
            &["\"x\"", "line 1"],
        ),
        (
            "destinations: [{port: 80}]",
            "destinations[0].host",
            &["\"\"", "empty"],
        ),
        (
            "destinations: [{host: Reviews}]",
            "destinations[0].host",
            &["\"Reviews\""],
        ),
        (
            "destinations: [{host: a, endpoints: []}]",
            "destinations[0].endpoints",
            &["\"[]\""],
        ),
        (
            "destinations: [{host: a, endpoints: ['localhost:80']}]",
            "destinations[0].endpoints[0]",
            &["\"localhost:80\""],
        ),
        (
            "destinations: [{host: a, port: 1}, {host: b}, {host: a, port: 1}]",
            "destinations[2]",
            &["\"a:1\"", "destinations[0]"],
        ),
        (
            "destinations: [{host: a, retries: {attempts: 3, budget: {pct: 1}}}]",
            "destinations[0].retries.budget.pct",
            &["unknown field \"pct\""],
        ),
        (
            "discovery: {nameservers: ['10.0.0.1', 'dns.local']}",
            "discovery.nameservers[1]",
            &["\"dns.local\""],
        ),
        ("discovery: {jitter: 2}", "discovery.jitter", &["\"2\""]),
        (
            "discovery: {jitter: .nan}",
            "discovery.jitter",
            &["\"NaN\""],
        ),
        (
            "discovery: {minTtl: 2m, maxTtl: 1m}",
            "discovery.minTtl",
            &["\"2m\"", "discovery.maxTtl (1m)"],
        ),
        ("discovery: {timeout: 0s}", "discovery.timeout", &["\"0s\""]),
        (
            "discovery: {nxdomain: {action: forget}}",
            "discovery.nxdomain.action",
            &["\"forget\"", "keep, drop"],
        ),
        (
            "discovery: {nxdomain: {action: drop, grace: 5s}}",
            "discovery.nxdomain.grace",
            &["\"5s\""],
        ),
        (
            "workload: {namespace: Default}",
            "workload.namespace",
            &["\"Default\""],
        ),
        ("workload: {service: ''}", "workload.service", &["\"\""]),
        (
            "workload: {trustDomain: 'a b'}",
            "workload.trustDomain",
            &["\"a b\""],
        ),
        (
            "kind: VirtualService",
            "VirtualService documents[0]: apiVersion",
            &["networking.istio.io/v1"],
        ),
        ("kynd: VirtualService", "kynd", &["unknown field \"kynd\""]),
        ("defaults: {timeout: [1]}", "defaults.timeout", &["line 1"]),
        (
            "defaults: {retries: {retryNonIdempotent: yes}}",
            "defaults.retries.retryNonIdempotent",
            &["\"yes\""],
        ),
        // Resilience settings.
        (
            "defaults: {retryBudget: {percent: 120}}",
            "defaults.retryBudget.percent",
            &["\"120\"", "between 0 and 100"],
        ),
        (
            "defaults: {retryBudget: {percent: {value: -1}}}",
            "defaults.retryBudget.percent.value",
            &["\"-1\""],
        ),
        (
            "defaults: {retryBudget: {percent: lots}}",
            "defaults.retryBudget.percent",
            &["\"lots\"", "a number"],
        ),
        (
            "defaults: {retryBudget: {minRetryConcurrency: -3}}",
            "defaults.retryBudget.minRetryConcurrency",
            &["\"-3\""],
        ),
        (
            "defaults: {retryBudget: {budgetInterval: 1s}}",
            "defaults.retryBudget.budgetInterval",
            &["not supported", "budget interval"],
        ),
        (
            "defaults: {retryBudget: {pct: 1}}",
            "defaults.retryBudget.pct",
            &["unknown field \"pct\"", "`minRetryConcurrency`"],
        ),
        (
            "defaults: {retryBudget: of}",
            "defaults.retryBudget",
            &["\"of\"", "an object"],
        ),
        (
            "defaults: {rateLimit: {maxTokens: 10}}",
            "defaults.rateLimit.fillInterval",
            &["is required"],
        ),
        (
            "defaults: {rateLimit: {fillInterval: 1s, maxTokens: 0}}",
            "defaults.rateLimit.maxTokens",
            &["\"0\"", "at least 1"],
        ),
        (
            "defaults: {rateLimit: {fillInterval: 1s, tokensPerFill: 0}}",
            "defaults.rateLimit.tokensPerFill",
            &["\"0\"", "at least 1"],
        ),
        (
            "defaults: {rateLimit: {fillInterval: 1s, tokensPerFill: -1}}",
            "defaults.rateLimit.tokensPerFill",
            &["\"-1\""],
        ),
        (
            "defaults: {rateLimit: {fillInterval: 0s}}",
            "defaults.rateLimit.fillInterval",
            &["\"0s\"", "at least 1ms"],
        ),
        (
            "defaults: {rateLimit: {fillInterval: 1}}",
            "defaults.rateLimit.fillInterval",
            &["\"1\"", "missing unit"],
        ),
        (
            "defaults: {rateLimit: {fillInterval: 1s, burst: 5}}",
            "defaults.rateLimit.burst",
            &["unknown field \"burst\"", "maxTokens"],
        ),
        (
            "defaults: {rateLimit: of}",
            "defaults.rateLimit",
            &["\"of\"", "\"off\""],
        ),
        (
            "defaults: {concurrencyLimit: 0}",
            "defaults.concurrencyLimit",
            &["\"0\"", "at least 1"],
        ),
        (
            "defaults: {concurrencyLimit: -1}",
            "defaults.concurrencyLimit",
            &["\"-1\"", "or off"],
        ),
        (
            "defaults: {concurrencyLimit: 1.5}",
            "defaults.concurrencyLimit",
            &["\"1.5\""],
        ),
        (
            "destinations: [{host: a, subsets: [{name: v1, concurrencyLimit: none}]}]",
            "destinations[0].subsets[0].concurrencyLimit",
            &["\"none\""],
        ),
        (
            "defaults: {hedge: {percentile: 95}}",
            "defaults.hedge.percentile",
            &["\"95\"", "p95"],
        ),
        (
            "defaults: {hedge: {percentile: p0}}",
            "defaults.hedge.percentile",
            &["\"p0\""],
        ),
        (
            "defaults: {hedge: {maxExtraPercent: 150}}",
            "defaults.hedge.maxExtraPercent",
            &["\"150\"", "between 0 and 100"],
        ),
        (
            "defaults: {hedge: {window: 0s}}",
            "defaults.hedge.window",
            &["\"0s\""],
        ),
        (
            "defaults: {hedge: {minSamples: 0}}",
            "defaults.hedge.minSamples",
            &["\"0\""],
        ),
        (
            "defaults: {hedge: {minSamples: -1}}",
            "defaults.hedge.minSamples",
            &["\"-1\""],
        ),
        (
            "defaults: {hedge: {minDelay: soon}}",
            "defaults.hedge.minDelay",
            &["\"soon\""],
        ),
        (
            "destinations: [{host: a, hedge: {minPerSecond: -1}}]",
            "destinations[0].hedge.minPerSecond",
            &["\"-1\""],
        ),
        (
            "defaults: {hedge: {delay: 1s}}",
            "defaults.hedge.delay",
            &["unknown field \"delay\"", "minDelay"],
        ),
        ("defaults: {hedge: true}", "defaults.hedge", &["\"off\""]),
        (
            "defaults: {outlierDetection: {successRate: {requestVolume: 0}}}",
            "defaults.outlierDetection.successRate.requestVolume",
            &["\"0\"", "at least 1"],
        ),
        (
            "defaults: {outlierDetection: {successRate: {minimumHosts: 0}}}",
            "defaults.outlierDetection.successRate.minimumHosts",
            &["\"0\"", "at least 1"],
        ),
        (
            "defaults: {outlierDetection: {successRate: {stdevFactor: 1900}}}",
            "defaults.outlierDetection.successRate.stdevFactor",
            &["\"1900\"", "Envoy's 1900"],
        ),
        (
            "defaults: {outlierDetection: {successRate: {stdevFactor: -1}}}",
            "defaults.outlierDetection.successRate.stdevFactor",
            &["\"-1\""],
        ),
        (
            "defaults: {outlierDetection: {successRate: {minSuccessPercent: 101}}}",
            "defaults.outlierDetection.successRate.minSuccessPercent",
            &["\"101\"", "between 0 and 100"],
        ),
        (
            "defaults: {outlierDetection: {successRate: {minSuccessPercent: 90, minimumHosts: 3}}}",
            "defaults.outlierDetection.successRate",
            &["either minSuccessPercent", "not both"],
        ),
        (
            "defaults: {outlierDetection: {successRate: {requestVolume: 10, hosts: 3}}}",
            "defaults.outlierDetection.successRate.hosts",
            &["unknown field \"hosts\"", "`minimumHosts`"],
        ),
        (
            "defaults: {outlierDetection: {successRate: 5}}",
            "defaults.outlierDetection.successRate",
            &["\"5\"", "an object"],
        ),
        (
            "server: {rateLimit: {tokensPerFill: 0, fillInterval: 1s}}",
            "server.rateLimit.tokensPerFill",
            &["\"0\""],
        ),
        (
            "server: {rateLimit: {maxTokens: 1}}",
            "server.rateLimit.fillInterval",
            &["is required"],
        ),
        (
            "server: {concurrencyLimit: 0}",
            "server.concurrencyLimit",
            &["\"0\""],
        ),
        (
            "server: {propagateDeadline: yes}",
            "server.propagateDeadline",
            &["\"yes\""],
        ),
        (
            "server: {shutdown: {grace: 0s}}",
            "server.shutdown.grace",
            &["\"0s\""],
        ),
        (
            "server: {shutdown: {drain: 1m}}",
            "server.shutdown.drain",
            &["\"1m\"", "server.shutdown.grace (30s)"],
        ),
        (
            "server: {shutdown: {drain: 5}}",
            "server.shutdown.drain",
            &["\"5\"", "missing unit"],
        ),
        (
            "server: {shutdown: {drian: 5s}}",
            "server.shutdown.drian",
            &["unknown field \"drian\"", "drain"],
        ),
        (
            "server: {rateLimt: {fillInterval: 1s}}",
            "server.rateLimt",
            &["unknown field \"rateLimt\"", "rateLimit"],
        ),
    ];
    for (text, path, needles) in cases {
        let e = MeshConfig::from_str(text, Format::Yaml).expect_err(text);
        assert_names(&e, path, needles);
    }
}

#[test]
fn bad_json_and_toml_values_name_path_and_value() {
    let cases: &[(Format, &str, &str, &[&str])] = &[
        (
            Format::Json,
            r#"{"destinations": [{"host": "a"}, {"host": "b", "loadBalancer": "ROUND_ROBBIN"}]}"#,
            "destinations[1].loadBalancer",
            &["\"ROUND_ROBBIN\"", LB_NAMES],
        ),
        (
            Format::Json,
            r#"{"defaults": {"retries": {"attemps": 1}}}"#,
            "defaults.retries.attemps",
            &["unknown field \"attemps\"", "line 1"],
        ),
        (
            Format::Json,
            r#"{"defaults": {"retries": {"attempts": "1"}}}"#,
            "defaults.retries.attempts",
            &["\"1\"", "line 1, column"],
        ),
        (
            Format::Json,
            r#"{"defaults": {"timeout": 5}}"#,
            "defaults.timeout",
            &["\"5\"", "missing unit"],
        ),
        (
            Format::Json,
            r#"{"destinations": [{"host": "a", "port": 99999}]}"#,
            "destinations[0].port",
            &["\"99999\""],
        ),
        (
            Format::Json,
            "{\"defaults\": {\n  \"timeout\": \"1s\",\n}}",
            "defaults",
            &["line 3"],
        ),
        (
            Format::Toml,
            "[defaults.retries]\nretryOn = \"5xx,bogus\"\n",
            "defaults.retries.retryOn",
            &["\"5xx,bogus\""],
        ),
        (
            Format::Toml,
            "[[destinations]]\nhost = \"a\"\n[[destinations]]\nhost = \"b\"\n[destinations.retries]\nattemps = 1\n",
            "destinations[1].retries.attemps",
            &["unknown field \"attemps\"", "line 6"],
        ),
        (
            Format::Toml,
            "[discovery]\nnameservers = [\"1.2.3.4:99999\"]\n",
            "discovery.nameservers[0]",
            &["\"1.2.3.4:99999\""],
        ),
        (
            Format::Toml,
            "[discovery]\njitter = \"high\"\n",
            "discovery.jitter",
            &["\"high\"", "line 2"],
        ),
        (
            Format::Json,
            r#"{"defaults": {"hedge": "of"}}"#,
            "defaults.hedge",
            &["\"of\"", "\"off\"", "line 1"],
        ),
        (
            Format::Json,
            r#"{"defaults": {"rateLimit": {"fillInterval": "1s", "maxTokens": 99999999}}}"#,
            "defaults.rateLimit.maxTokens",
            &["\"99999999\"", "at most 16777214"],
        ),
        (
            Format::Json,
            r#"{"server": {"shutdown": {"drain": "40s"}}}"#,
            "server.shutdown.drain",
            &["\"40s\""],
        ),
        (
            Format::Json,
            r#"{"defaults": {"retryBudget": {"percent": {"value": 101}}}}"#,
            "defaults.retryBudget.percent.value",
            &["\"101\""],
        ),
        (
            Format::Toml,
            "[server]\nconcurrencyLimit = 0\n",
            "server.concurrencyLimit",
            &["\"0\""],
        ),
        (
            Format::Toml,
            "[defaults.hedge]\npercentile = 1.5\n",
            "defaults.hedge.percentile",
            &["\"1.5\""],
        ),
        (
            Format::Toml,
            "[[destinations]]\nhost = \"a\"\n[destinations.rateLimit]\nfillInterval = \"1s\"\nmaxToken = 3\n",
            "destinations[0].rateLimit.maxToken",
            &["unknown field \"maxToken\"", "line 5"],
        ),
        (
            Format::Toml,
            "[defaults.outlierDetection.successRate]\nminSuccessPercent = 200\n",
            "defaults.outlierDetection.successRate.minSuccessPercent",
            &["\"200\""],
        ),
    ];
    for (format, text, path, needles) in cases {
        let e = MeshConfig::from_str(text, *format).expect_err(text);
        assert_names(&e, path, needles);
    }
}

#[test]
fn syntax_errors_give_a_line() {
    let cases = [
        (Format::Yaml, "defaults:\n  timeout: 1s\n bad", "line 3"),
        (Format::Yaml, "defaults: {timeout: 1s\n", "line"),
        (Format::Yaml, "- a\n", "line 1"),
        (Format::Json, "{\"defaults\": }", "line 1"),
        (Format::Json, "{} {}", "line 1"),
        (Format::Toml, "[defaults\ntimeout = \"1s\"\n", "line 1"),
        (Format::Toml, "x = \n", "line 1"),
    ];
    for (format, text, line) in cases {
        let e = MeshConfig::from_str(text, format).expect_err(text);
        let message = e.to_string();
        assert!(
            matches!(
                e,
                ConfigError::Parse { .. } | ConfigError::UnknownField { .. }
            ),
            "{message}"
        );
        assert!(message.contains(line), "{message}");
        assert!(
            message.contains(&format.to_string()) || message.contains("unknown"),
            "{message}"
        );
    }
}

#[test]
fn file_errors_name_the_file() {
    let missing = testdata("missing.yaml");
    let e = MeshConfig::from_file(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    assert!(e.to_string().contains(&missing), "{e}");
    assert_eq!(e.file(), Some(std::path::Path::new(&missing)));

    let ini = testdata("mesh.ini");
    let e = MeshConfig::from_file(&ini).unwrap_err();
    assert!(matches!(e, ConfigError::UnknownFormat { .. }), "{e}");
    assert!(e.to_string().contains(&ini), "{e}");

    let bad = testdata("bad.yaml");
    let e = MeshConfig::from_file(&bad).unwrap_err();
    assert!(e.to_string().contains(&bad), "{e}");
    assert_names(&e, "destinations[0].retries.attempts", &["\"1000\""]);
}

#[test]
fn format_by_extension() {
    assert_eq!(Format::from_path("a/b.yaml"), Some(Format::Yaml));
    assert_eq!(Format::from_path("b.YML"), Some(Format::Yaml));
    assert_eq!(Format::from_path("b.toml"), Some(Format::Toml));
    assert_eq!(Format::from_path("b.json"), Some(Format::Json));
    assert_eq!(Format::from_path("b.ini"), None);
    assert_eq!(Format::from_path("yaml"), None);
}

#[test]
fn bad_variables_name_the_variable_and_value() {
    let bad_file = testdata("bad.yaml");
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &[("MESH_TIMEOT", "2s")],
            "MESH_TIMEOT",
            &["\"2s\"", "did you mean MESH_TIMEOUT?"],
        ),
        (&[("MESH_", "x")], "MESH_", &["unknown MESH_ variable"]),
        (
            &[("MESH_TIMEOUT", "5")],
            "MESH_TIMEOUT",
            &["\"5\"", "missing unit"],
        ),
        (&[("MESH_TIMEOUT", "soon")], "MESH_TIMEOUT", &["\"soon\""]),
        (
            &[("MESH_LB", "ROUND_ROBBIN")],
            "MESH_LB",
            &["\"ROUND_ROBBIN\"", LB_NAMES],
        ),
        (
            &[("MESH_PROTOCOL", "http3")],
            "MESH_PROTOCOL",
            &["\"http3\""],
        ),
        (
            &[("MESH_RETRY_ON", "5xx,bogus")],
            "MESH_RETRY_ON",
            &["\"5xx,bogus\"", "`bogus`"],
        ),
        (
            &[("MESH_DNS_SERVERS", "10.0.0.1, dns.local:53")],
            "MESH_DNS_SERVERS",
            &["`dns.local:53`"],
        ),
        (
            &[("MESH_DNS_SERVERS", "10.0.0.1:0")],
            "MESH_DNS_SERVERS",
            &["10.0.0.1:0"],
        ),
        (
            &[("MESH_RETRY_ATTEMPTS", "101")],
            "MESH_RETRY_ATTEMPTS",
            &["\"101\"", "at most 100"],
        ),
        (
            &[("MESH_RETRY_ATTEMPTS", "-1")],
            "MESH_RETRY_ATTEMPTS",
            &["\"-1\""],
        ),
        (
            &[("MESH_DNS_JITTER", "1.5")],
            "MESH_DNS_JITTER",
            &["\"1.5\""],
        ),
        (
            &[("MESH_DNS_JITTER", "lots")],
            "MESH_DNS_JITTER",
            &["\"lots\""],
        ),
        (
            &[("MESH_DNS_MIN_TTL", "2m")],
            "MESH_DNS_MIN_TTL",
            &["\"2m\"", "maxTtl"],
        ),
        (
            &[("MESH_DNS_TIMEOUT", "0s")],
            "MESH_DNS_TIMEOUT",
            &["\"0s\""],
        ),
        (
            &[("MESH_DNS_NXDOMAIN", "forget")],
            "MESH_DNS_NXDOMAIN",
            &["\"forget\""],
        ),
        (
            &[
                ("MESH_DNS_NXDOMAIN", "drop"),
                ("MESH_DNS_NXDOMAIN_GRACE", "5s"),
            ],
            "MESH_DNS_NXDOMAIN_GRACE",
            &["\"5s\""],
        ),
        (
            &[("MESH_RETRY_BACKOFF_BASE", "1s")],
            "MESH_RETRY_BACKOFF_BASE",
            &["\"1s\""],
        ),
        (
            &[("MESH_RETRY_BACKOFF_BASE", "0s")],
            "MESH_RETRY_BACKOFF_BASE",
            &["\"0s\""],
        ),
        (
            &[("MESH_RETRY_BUDGET_PERCENT", "abc")],
            "MESH_RETRY_BUDGET_PERCENT",
            &["\"abc\""],
        ),
        (
            &[("MESH_RETRY_BUDGET_PERCENT", "200000")],
            "MESH_RETRY_BUDGET_PERCENT",
            &["\"200000\""],
        ),
        (
            &[("MESH_RETRY_BUDGET_MIN_PER_SECOND", "1.5")],
            "MESH_RETRY_BUDGET_MIN_PER_SECOND",
            &["\"1.5\""],
        ),
        (
            &[("MESH_RETRY_BUDGET_TTL", "0")],
            "MESH_RETRY_BUDGET_TTL",
            &["\"0\""],
        ),
        (
            &[("MESH_RETRY_NON_IDEMPOTENT", "maybe")],
            "MESH_RETRY_NON_IDEMPOTENT",
            &["\"maybe\""],
        ),
        (
            &[("MESH_CONNECT_TIMEOUT", "0s")],
            "MESH_CONNECT_TIMEOUT",
            &["\"0s\""],
        ),
        (
            &[("MESH_RETRY_CONCURRENCY_BUDGET", "120")],
            "MESH_RETRY_CONCURRENCY_BUDGET",
            &["\"120\"", "between 0 and 100"],
        ),
        (
            &[("MESH_RETRY_CONCURRENCY_BUDGET", "20%")],
            "MESH_RETRY_CONCURRENCY_BUDGET",
            &["\"20%\"", "PERCENT[,minRetryConcurrency=N]"],
        ),
        (
            &[("MESH_RETRY_CONCURRENCY_BUDGET", "20,min=3")],
            "MESH_RETRY_CONCURRENCY_BUDGET",
            &[
                "\"20,min=3\"",
                "`min`: unknown option",
                "minRetryConcurrency",
            ],
        ),
        (
            &[("MESH_RETRY_CONCURRENCY_BUDGET", "20,minRetryConcurrency=-1")],
            "MESH_RETRY_CONCURRENCY_BUDGET",
            &["minRetryConcurrency `-1`"],
        ),
        (
            &[("MESH_RATE_LIMIT", "100")],
            "MESH_RATE_LIMIT",
            &["\"100\"", "TOKENS/INTERVAL"],
        ),
        (
            &[("MESH_RATE_LIMIT", "100/1")],
            "MESH_RATE_LIMIT",
            &["interval `1`", "missing unit"],
        ),
        (
            &[("MESH_RATE_LIMIT", "many/1s")],
            "MESH_RATE_LIMIT",
            &["tokens `many`"],
        ),
        (
            &[("MESH_RATE_LIMIT", "0/1s")],
            "MESH_RATE_LIMIT",
            &["\"0/1s\"", "tokensPerFill must be at least 1"],
        ),
        (
            &[("MESH_RATE_LIMIT", "10/0s")],
            "MESH_RATE_LIMIT",
            &["\"10/0s\"", "fillInterval must be at least 1ms"],
        ),
        (
            &[("MESH_RATE_LIMIT", "10/1s,maxTokens=0")],
            "MESH_RATE_LIMIT",
            &["maxTokens must be at least 1"],
        ),
        (
            &[("MESH_RATE_LIMIT", "10/1s,burst=20")],
            "MESH_RATE_LIMIT",
            &["`burst`: unknown option"],
        ),
        (
            &[("MESH_RATE_LIMIT", "10/1s,maxTokens")],
            "MESH_RATE_LIMIT",
            &["`maxTokens`: expected key=value"],
        ),
        (
            &[("MESH_RATE_LIMIT", "10/1s,maxTokens=5,maxTokens=6")],
            "MESH_RATE_LIMIT",
            &["given twice"],
        ),
        (
            &[("MESH_CONCURRENCY_LIMIT", "0")],
            "MESH_CONCURRENCY_LIMIT",
            &["\"0\"", "at least 1"],
        ),
        (
            &[("MESH_CONCURRENCY_LIMIT", "none")],
            "MESH_CONCURRENCY_LIMIT",
            &["\"none\"", "or off"],
        ),
        (&[("MESH_HEDGE", "95")], "MESH_HEDGE", &["\"95\"", "p95"]),
        (&[("MESH_HEDGE", "true")], "MESH_HEDGE", &["\"true\""]),
        (
            &[("MESH_HEDGE", "p95,maxExtraPercent=500")],
            "MESH_HEDGE",
            &["maxExtraPercent must be between 0 and 100"],
        ),
        (
            &[("MESH_HEDGE", "p95,minSamples=0")],
            "MESH_HEDGE",
            &["minSamples must be at least 1"],
        ),
        (
            &[("MESH_HEDGE", "p95,window=0s")],
            "MESH_HEDGE",
            &["window must be at least 1ms"],
        ),
        (
            &[("MESH_HEDGE", "p95,minDelay=soon")],
            "MESH_HEDGE",
            &["minDelay `soon`"],
        ),
        (
            &[("MESH_HEDGE", "p95,minPerSecond=-1")],
            "MESH_HEDGE",
            &["minPerSecond `-1`"],
        ),
        (
            &[("MESH_HEDGE", "p95,delay=1ms")],
            "MESH_HEDGE",
            &["`delay`: unknown option", "minDelay"],
        ),
        (
            &[("MESH_SERVER_RATE_LIMIT", "5/s")],
            "MESH_SERVER_RATE_LIMIT",
            &["interval `s`"],
        ),
        (
            &[("MESH_SERVER_RATE_LIMIT", "5/1s,maxTokens=99999999")],
            "MESH_SERVER_RATE_LIMIT",
            &["maxTokens must be at most 16777214"],
        ),
        (
            &[("MESH_SERVER_CONCURRENCY_LIMIT", "0")],
            "MESH_SERVER_CONCURRENCY_LIMIT",
            &["\"0\"", "at least 1"],
        ),
        (
            &[("MESH_SERVER_CONCURRENCY_LIMIT", "-5")],
            "MESH_SERVER_CONCURRENCY_LIMIT",
            &["\"-5\""],
        ),
        (
            &[("MESH_PROPAGATE_DEADLINE", "yes")],
            "MESH_PROPAGATE_DEADLINE",
            &["\"yes\"", "true or false"],
        ),
        (
            &[("MESH_SHUTDOWN_DRAIN", "1m")],
            "MESH_SHUTDOWN_DRAIN",
            &["\"1m\"", "server.shutdown.grace (30s)"],
        ),
        (
            &[("MESH_SHUTDOWN_DRAIN", "5")],
            "MESH_SHUTDOWN_DRAIN",
            &["\"5\"", "missing unit"],
        ),
        (
            &[("MESH_SHUTDOWN_GRACE", "0s")],
            "MESH_SHUTDOWN_GRACE",
            &["\"0s\""],
        ),
        (
            // The drain left at its default (5s) exceeds a shorter grace.
            &[("MESH_SHUTDOWN_GRACE", "2s")],
            "MESH_SHUTDOWN_GRACE",
            &[
                "\"2s\"",
                "server.shutdown.drain (5s)",
                "MESH_SHUTDOWN_DRAIN",
            ],
        ),
        (
            &[("MESH_NAMESPACE", "Bad_NS")],
            "MESH_NAMESPACE",
            &["\"Bad_NS\""],
        ),
        (
            &[("POD_NAMESPACE", "Bad_NS")],
            "POD_NAMESPACE",
            &["\"Bad_NS\""],
        ),
        (&[("MESH_SERVICE", "-x")], "MESH_SERVICE", &["\"-x\""]),
        (
            &[("MESH_CLUSTER_DOMAIN", "a..b")],
            "MESH_CLUSTER_DOMAIN",
            &["\"a..b\""],
        ),
        (&[("SERVICE_ACCOUNT", "A")], "SERVICE_ACCOUNT", &["\"A\""]),
        (
            &[("MESH_CONFIG", "/nonexistent/mesh.yaml")],
            "MESH_CONFIG",
            &["\"/nonexistent/mesh.yaml\"", "cannot read"],
        ),
        (
            &[("MESH_CONFIG", "mesh.ini")],
            "MESH_CONFIG",
            &["\"mesh.ini\"", "unknown format"],
        ),
        (
            &[("MESH_CONFIG", &bad_file)],
            "destinations[0].retries.attempts",
            &[&bad_file, "\"1000\""],
        ),
        (
            // A bad value from the file is blamed on the file even when variables are set.
            &[("MESH_CONFIG", &bad_file), ("MESH_RETRY_ATTEMPTS", "4")],
            "destinations[0].retries.attempts",
            &[&bad_file, "\"1000\""],
        ),
    ];
    for (vars, path, needles) in cases {
        let e = MeshConfig::from_vars(vars.iter().copied()).expect_err(path);
        assert_names(&e, path, needles);
    }
}

/// YAML made of config-like pieces, to reach deeper than random text does.
fn config_like_yaml() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "workload",
        "discovery",
        "defaults",
        "destinations",
        "host",
        "port",
        "timeout",
        "retries",
        "attempts",
        "loadBalancer",
        "simple",
        "budget",
        "percent",
        "nameservers",
        "endpoints",
        "nxdomain",
        "action",
        "grace",
        "peakEwma",
        "decay",
        "jitter",
        "retryOn",
        "retryBudget",
        "minRetryConcurrency",
        "rateLimit",
        "fillInterval",
        "maxTokens",
        "concurrencyLimit",
        "hedge",
        "percentile",
        "outlierDetection",
        "successRate",
        "stdevFactor",
        "server",
        "shutdown",
        "drain",
    ]);
    let value = prop::sample::select(vec![
        "1s",
        "0s",
        "0",
        "-1",
        "1e400",
        "ROUND_ROBIN",
        "PEAK_EWMA",
        "[]",
        "{}",
        "~",
        "''",
        "[1, a]",
        "{simple: X}",
        "5xx",
        "127.0.0.1:80",
        "true",
        ".nan",
        "99999999999999999999",
        "&a x",
        "*a",
        "!!binary aGk=",
        "\"\\u0000\"",
        "off",
        "p95",
        "{value: 5}",
    ]);
    prop::collection::vec((0usize..4, key, value), 0..12).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(indent, k, v)| format!("{}{k}: {v}\n", "  ".repeat(indent)))
            .collect()
    })
}

proptest! {
    #[test]
    fn random_text_never_panics(s in any::<String>()) {
        for format in [Format::Yaml, Format::Json, Format::Toml] {
            let _ = MeshConfig::from_str(&s, format);
        }
    }

    #[test]
    fn config_like_yaml_never_panics(s in config_like_yaml()) {
        let _ = MeshConfig::from_str(&s, Format::Yaml);
    }

    #[test]
    fn config_like_json_never_panics(s in r#"[{}\[\],:"a-z0-9 .-]{0,80}"#) {
        let _ = MeshConfig::from_str(&s, Format::Json);
    }

    #[test]
    fn random_variable_values_never_panic(
        index in 0..ENV_VARS.len(),
        value in any::<String>(),
    ) {
        let (name, _) = ENV_VARS[index];
        if name != "MESH_CONFIG" {
            let _ = MeshConfig::from_vars([(name, value.as_str())]);
        }
    }
}

#[test]
fn namespace_and_domain_come_from_a_kubernetes_resolv_conf() {
    let c = MeshConfig::from_vars([("MESH_RESOLV_CONF", testdata("resolv.conf"))]).unwrap();
    assert_eq!(c.workload.namespace, "shop");
    assert_eq!(c.workload.cluster_domain, "corp.example");

    // Variables and files still win over the search list.
    let c = MeshConfig::from_vars([
        ("MESH_RESOLV_CONF", testdata("resolv.conf")),
        ("POD_NAMESPACE", "other".to_owned()),
    ])
    .unwrap();
    assert_eq!(c.workload.namespace, "other");
    assert_eq!(c.workload.cluster_domain, "corp.example");

    // A search list without Kubernetes' shape changes nothing.
    let c = MeshConfig::from_vars([("MESH_RESOLV_CONF", testdata("resolv-plain.conf"))]).unwrap();
    assert_eq!(c.workload.namespace, "default");
    assert_eq!(c.workload.cluster_domain, "cluster.local");
}

#[test]
fn a_named_resolv_conf_must_exist() {
    let err =
        MeshConfig::from_vars([("MESH_RESOLV_CONF", "/nonexistent/resolv.conf")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("MESH_RESOLV_CONF") && text.contains("/nonexistent/resolv.conf"),
        "{text}"
    );
    // The default location may be missing.
    assert!(MeshConfig::from_vars([("MESH_RESOLV_CONF", "?/nonexistent/resolv.conf")]).is_ok());
}

#[test]
fn success_rate_modes_in_mesh_format() {
    let c = MeshConfig::from_str(
        "defaults: {outlierDetection: {successRate: {}}}\n\
         destinations:\n\
         - {host: a, outlierDetection: {successRate: {requestVolume: 20, minimumHosts: 3, stdevFactor: 1.5}}}\n\
         - {host: b, outlierDetection: {successRate: {minSuccessPercent: 95}}}\n",
        Format::Yaml,
    )
    .unwrap();
    let rate = |p: &TrafficPolicy| {
        p.outlier_detection
            .as_ref()
            .and_then(|o| o.success_rate.clone())
    };
    assert_eq!(
        rate(&c.defaults),
        Some(SuccessRate::stdev()),
        "Envoy's defaults"
    );
    assert_eq!(
        rate(&c.destinations[0].policy),
        Some(SuccessRate {
            request_volume: 20,
            mode: SuccessRateMode::Stdev {
                minimum_hosts: 3,
                factor: 1500,
            },
        })
    );
    assert_eq!(
        rate(&c.destinations[1].policy),
        Some(SuccessRate::threshold(95))
    );
}

#[test]
fn off_turns_off_inherited_settings() {
    let defaults = "defaults:\n  retryBudget: {percent: 10}\n  rateLimit: {fillInterval: 1s}\n  \
                    concurrencyLimit: 5\n  hedge: {}\n";
    let c = MeshConfig::from_str(
        &format!(
            "{defaults}destinations:\n- {{host: a, retryBudget: off, rateLimit: off, concurrencyLimit: off, hedge: off}}\n\
             - {{host: b, subsets: [{{name: v1, hedge: off}}]}}\n"
        ),
        Format::Yaml,
    )
    .unwrap();
    let d = &c.defaults;
    assert!(d.retry_concurrency_budget.is_some());
    assert_eq!(d.rate_limit, Some(TokenBucketConfig::new(1, 1, secs(1))));
    assert_eq!(d.concurrency_limit, Some(5));
    assert_eq!(d.hedge, Some(HedgePolicy::default()));
    let a = &c.destinations[0].policy;
    assert_eq!(
        (
            a.retry_concurrency_budget,
            a.rate_limit,
            a.concurrency_limit,
            a.hedge
        ),
        (None, None, None, None)
    );
    let b = &c.destinations[1];
    assert_eq!(b.policy, *d);
    assert_eq!(b.subsets[0].policy.hedge, None);
    assert_eq!(b.subsets[0].policy.concurrency_limit, Some(5));

    // The same from code.
    let built = MeshConfig::builder()
        .retry_concurrency_budget(RetryConcurrencyBudget {
            percent: 10.0,
            ..RetryConcurrencyBudget::default()
        })
        .rate_limit(TokenBucketConfig::new(1, 1, secs(1)))
        .concurrency_limit(5)
        .hedge(HedgePolicy::default())
        .destination(
            DestinationBuilder::new("a")
                .no_retry_concurrency_budget()
                .no_rate_limit()
                .no_concurrency_limit()
                .no_hedge(),
        )
        .destination(DestinationBuilder::new("b").subset(SubsetBuilder::new("v1").no_hedge()))
        .build()
        .unwrap();
    assert_eq!(c, built);

    // Variables turn off what the file sets, and the defaults' setting reaches destinations.
    let file = testdata("mesh.yaml");
    let c = MeshConfig::from_vars([
        ("MESH_CONFIG", file.as_str()),
        ("MESH_RETRY_CONCURRENCY_BUDGET", "off"),
        ("MESH_RATE_LIMIT", "off"),
        ("MESH_CONCURRENCY_LIMIT", "off"),
        ("MESH_HEDGE", "off"),
        ("MESH_SERVER_RATE_LIMIT", "off"),
        ("MESH_SERVER_CONCURRENCY_LIMIT", "off"),
    ])
    .unwrap();
    let d = &c.defaults;
    assert_eq!(
        (
            d.retry_concurrency_budget,
            d.rate_limit,
            d.concurrency_limit,
            d.hedge
        ),
        (None, None, None, None)
    );
    assert_eq!(
        c.destinations[0].policy.concurrency_limit,
        Some(10),
        "the file's own"
    );
    assert_eq!(c.destinations[1].policy.concurrency_limit, None);
    assert_eq!(c.server.rate_limit, None);
    assert_eq!(c.server.concurrency_limit, None);
    assert_eq!(c.server.shutdown.grace, secs(45), "kept from the file");
}
