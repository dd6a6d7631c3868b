//! `/config_dump`: the effective configuration as JSON.
//!
//! A summary for people and scripts, not a lossless dump: it names the workload, discovery,
//! the default traffic policy, each destination with the essentials of its policy (load
//! balancer, timeout, retries, connection pool, outlier detection, TLS mode) and its subsets,
//! the VirtualServices by name and hosts (with their number of routes), the server settings,
//! a security summary (mTLS modes, policies counted by kind, outbound mode, certificate
//! files) and the config's warnings. Route details, JWT rules and authorization rules are
//! left out. Durations are written as in Istio's documents (`15s`, `250ms`).

use std::time::Duration;

use mesh_core::config::{
    AuthzAction, ClientTls, ConnectionPool, DestinationConfig, HashKey, HashTable, LoadBalancer,
    MeshConfig, NxDomainPolicy, OutlierDetection, Protocol, SubsetEndpoints, TrafficPolicy,
};
use mesh_core::duration::format_duration;
use mesh_core::ratelimit::TokenBucketConfig;
use serde_json::{Value, json};

/// The JSON summary of `config` that `/config_dump` serves.
pub fn config_dump(config: &MeshConfig) -> Value {
    let w = &config.workload;
    let d = &config.discovery;
    json!({
        "workload": {
            "service": w.service,
            "namespace": w.namespace,
            "clusterDomain": w.cluster_domain,
            "trustDomain": w.trust_domain,
            "serviceAccount": w.service_account,
            "podName": w.pod_name,
            "version": w.version,
            "labels": w.labels,
        },
        "discovery": {
            "nameservers": d.nameservers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "minTtl": dur(d.min_ttl),
            "maxTtl": dur(d.max_ttl),
            "jitter": d.jitter,
            "timeout": dur(d.timeout),
            "nxdomain": match d.nxdomain {
                NxDomainPolicy::Keep { grace } => json!({"keep": {"grace": dur(grace)}}),
                NxDomainPolicy::Drop => json!("drop"),
            },
        },
        "defaults": policy(&config.defaults),
        "destinations": config.destinations.iter().map(destination).collect::<Vec<_>>(),
        "virtualServices": config.virtual_services.iter().map(|vs| json!({
            "name": vs.name,
            "namespace": vs.namespace,
            "hosts": vs.hosts,
            "routes": vs.http.len(),
        })).collect::<Vec<_>>(),
        "server": server(config),
        "security": security(config),
        "warnings": config.warnings.iter().map(|w| json!({
            "path": w.path,
            "message": w.message,
        })).collect::<Vec<_>>(),
    })
}

fn dur(d: Duration) -> String {
    format_duration(d)
}

fn opt_dur(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(dur(d)))
}

fn destination(dest: &DestinationConfig) -> Value {
    json!({
        "host": dest.host,
        "port": dest.port,
        "endpoints": dest.endpoints.as_ref().map(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>()),
        "policy": policy(&dest.policy),
        "subsets": dest.subsets.iter().map(|s| json!({
            "name": s.name,
            "labels": s.labels,
            "endpoints": match &s.endpoints {
                SubsetEndpoints::Host(host) => json!({"host": host}),
                SubsetEndpoints::Static(addrs) => json!({
                    "static": addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            },
            "policy": policy(&s.policy),
        })).collect::<Vec<_>>(),
    })
}

fn policy(p: &TrafficPolicy) -> Value {
    let r = &p.retries;
    json!({
        "loadBalancer": load_balancer(&p.load_balancer),
        "timeout": opt_dur(p.timeout),
        "connectTimeout": dur(p.connect_timeout),
        "protocol": match p.protocol {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        },
        "retries": {
            "attempts": r.attempts,
            "perTryTimeout": opt_dur(r.per_try_timeout),
            "retryOn": r.retry_on.to_string(),
            "retryNonIdempotent": r.retry_non_idempotent,
            "backoff": {"base": dur(r.backoff.base), "max": dur(r.backoff.max)},
            "budget": {
                "ratio": r.budget.ratio,
                "minPerSecond": r.budget.min_per_second,
                "window": dur(r.budget.window),
            },
        },
        "connectionPool": connection_pool(&p.connection_pool),
        "outlierDetection": p.outlier_detection.as_ref().map(outlier),
        "retryBudget": p.retry_concurrency_budget.map(|b| json!({
            "percent": b.percent,
            "minRetryConcurrency": b.min_retry_concurrency,
        })),
        "rateLimit": p.rate_limit.as_ref().map(bucket),
        "concurrencyLimit": p.concurrency_limit,
        "hedge": p.hedge.as_ref().map(|h| json!({
            "percentile": h.percentile,
            "maxExtraPercent": h.max_extra_percent,
            "minDelay": dur(h.min_delay),
        })),
        "tls": tls(p.tls.as_ref()),
    })
}

fn load_balancer(lb: &LoadBalancer) -> Value {
    match lb {
        LoadBalancer::RoundRobin => json!("ROUND_ROBIN"),
        LoadBalancer::Random => json!("RANDOM"),
        LoadBalancer::LeastRequest => json!("LEAST_REQUEST"),
        LoadBalancer::Passthrough => json!("PASSTHROUGH"),
        LoadBalancer::PeakEwma(c) => json!({"PEAK_EWMA": {
            "decay": dur(c.decay),
            "defaultRtt": dur(c.default_rtt),
        }}),
        LoadBalancer::ConsistentHash(ch) => {
            let key = match &ch.key {
                HashKey::Header(name) => json!({"httpHeaderName": name.as_str()}),
                HashKey::Cookie(c) => json!({"httpCookie": {
                    "name": c.name,
                    "path": c.path,
                    "ttl": opt_dur(c.ttl),
                }}),
                HashKey::SourceIp => json!({"useSourceIp": true}),
                HashKey::QueryParameter(name) => json!({"httpQueryParameterName": name}),
            };
            let table = match ch.table {
                HashTable::Ring { minimum_size } => {
                    json!({"ringHash": {"minimumRingSize": minimum_size}})
                }
                HashTable::Maglev { table_size } => json!({"maglev": {"tableSize": table_size}}),
            };
            json!({"consistentHash": {"key": key, "table": table}})
        }
        other => json!(format!("{other:?}")),
    }
}

fn connection_pool(c: &ConnectionPool) -> Value {
    json!({
        "maxConnections": c.max_connections,
        "connectTimeout": opt_dur(c.connect_timeout),
        "http1MaxPendingRequests": c.http1_max_pending_requests,
        "http2MaxRequests": c.http2_max_requests,
        "maxRequestsPerConnection": c.max_requests_per_connection,
        "maxRetries": c.max_retries,
        "idleTimeout": opt_dur(c.idle_timeout),
    })
}

fn outlier(o: &OutlierDetection) -> Value {
    json!({
        "consecutive5xxErrors": o.consecutive_5xx_errors,
        "consecutiveGatewayErrors": o.consecutive_gateway_errors,
        "consecutiveLocalOriginFailures": o.consecutive_local_origin_failures,
        "splitExternalLocalOriginErrors": o.split_external_local_origin_errors,
        "interval": opt_dur(o.interval),
        "baseEjectionTime": opt_dur(o.base_ejection_time),
        "maxEjectionPercent": o.max_ejection_percent,
        "minHealthPercent": o.min_health_percent,
        // Not in Istio's API; its settings are shown as debug text.
        "successRate": o.success_rate.as_ref().map(|s| format!("{s:?}")),
    })
}

fn bucket(b: &TokenBucketConfig) -> Value {
    json!({
        "maxTokens": b.max_tokens,
        "tokensPerFill": b.tokens_per_fill,
        "fillInterval": dur(b.fill_interval),
    })
}

fn tls(t: Option<&ClientTls>) -> Value {
    match t {
        // Automatic mutual TLS: ISTIO_MUTUAL in the cluster with an identity.
        None => json!({"mode": "AUTO"}),
        Some(t) => json!({
            "mode": t.mode.name(),
            "sni": t.sni,
            "subjectAltNames": t.subject_alt_names,
            "clientCertificate": t.client_certificate.as_ref().map(|p| p.display().to_string()),
            "privateKey": t.private_key.as_ref().map(|p| p.display().to_string()),
            "caCertificates": t.ca_certificates.as_ref().map(|p| p.display().to_string()),
        }),
    }
}

fn server(config: &MeshConfig) -> Value {
    let s = &config.server;
    json!({
        "rateLimit": s.rate_limit.as_ref().map(bucket),
        "concurrencyLimit": s.concurrency_limit,
        "propagateDeadline": s.propagate_deadline,
        "shutdown": {"drain": dur(s.shutdown.drain), "grace": dur(s.shutdown.grace)},
        "mtls": s.security.mtls.name(),
        "portMtls": s.security.port_mtls.iter()
            .map(|(port, mode)| (port.to_string(), json!(mode.name())))
            .collect::<serde_json::Map<_, _>>(),
        "trustDomains": s.security.trust_domains,
        "jwtRules": s.security.jwt_rules.len(),
        "authorizationPolicies": s.security.authorization.len(),
        "numTrustedProxies": s.security.num_trusted_proxies,
    })
}

fn security(config: &MeshConfig) -> Value {
    let s = &config.security;
    let count = |action: AuthzAction| {
        s.authorization_policies
            .iter()
            .filter(|p| p.action == action)
            .count()
    };
    json!({
        "defaultMtls": s.default_mtls.name(),
        "rootNamespace": s.root_namespace,
        "trustDomainAliases": s.trust_domain_aliases,
        "identityTemplate": s.identity_template,
        "policies": {
            "peerAuthentication": s.peer_authentications.len(),
            "requestAuthentication": s.request_authentications.len(),
            "authorization": {
                "ALLOW": count(AuthzAction::Allow),
                "DENY": count(AuthzAction::Deny),
                "AUDIT": count(AuthzAction::Audit),
            },
        },
        "outbound": {
            "mode": s.outbound.mode.name(),
            "allowedHosts": s.outbound.allowed_hosts,
        },
        "certificates": s.certificates.as_ref().map(|c| json!({
            "chain": c.chain.display().to_string(),
            "key": c.key.display().to_string(),
            "roots": c.roots.display().to_string(),
            "refresh": dur(c.refresh),
        })),
        "numTrustedProxies": s.num_trusted_proxies,
    })
}
