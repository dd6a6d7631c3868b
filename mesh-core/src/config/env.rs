//! Reading a [`MeshConfig`] from environment variables.
//!
//! If `MESH_CONFIG` names a file, the file is read first; the other variables then override
//! it. Identity comes from the Kubernetes Downward API names a pod spec usually sets
//! (`POD_NAMESPACE`, `POD_NAME`, `SERVICE_ACCOUNT`), trace propagation from OpenTelemetry's
//! standard `OTEL_PROPAGATORS` and the cluster ID also from Istio's `ISTIO_META_CLUSTER_ID`;
//! everything else has a `MESH_` prefix.
//! Policy variables set the `defaults` policy, which destinations inherit where they do not
//! set a field themselves. Empty values count as unset. A variable that starts with `MESH_`
//! but is not listed here is an error, so that a typo is not silently ignored; other
//! variables are ignored.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `MESH_CONFIG` | none | Path of a `.yaml`/`.yml`/`.toml`/`.json` config file read first: mesh's own document and/or Istio documents (VirtualService, DestinationRule, ServiceEntry, Sidecar, PeerAuthentication, RequestAuthentication, AuthorizationPolicy; several, separated by `---`, in YAML); the variables below override it. |
//! | `MESH_SERVICE` | `unknown` | The service (canonical name) this workload belongs to. |
//! | `MESH_NAMESPACE` | `POD_NAMESPACE`, else the resolv.conf search list, else `default` | The workload's namespace; overrides `POD_NAMESPACE`. |
//! | `POD_NAMESPACE` | resolv.conf search list, else `default` | The workload's namespace, from the Downward API (`metadata.namespace`). |
//! | `POD_NAME` | none | The pod's name, from the Downward API (`metadata.name`). |
//! | `MESH_SERVICE_ACCOUNT` | `SERVICE_ACCOUNT`, else `default` | The workload's service account; overrides `SERVICE_ACCOUNT` and `POD_SERVICE_ACCOUNT`. |
//! | `SERVICE_ACCOUNT` | `default` | The service account, from the Downward API (`spec.serviceAccountName`). |
//! | `POD_SERVICE_ACCOUNT` | `default` | The service account, read when `SERVICE_ACCOUNT` is unset. |
//! | `MESH_CLUSTER_DOMAIN` | resolv.conf search list, else `cluster.local` | The cluster's DNS domain. |
//! | `MESH_RESOLV_CONF` | `/etc/resolv.conf` | The resolv.conf whose Kubernetes search list (`<ns>.svc.<domain> svc.<domain> <domain>`) gives the namespace and cluster domain when nothing else sets them; the default may be missing, a named file may not. |
//! | `MESH_TRUST_DOMAIN` | `cluster.local` | The SPIFFE trust domain. |
//! | `MESH_VERSION` | none | The workload's version label, such as `v1`. |
//! | `MESH_WORKLOAD_LABELS` | none | Further pod labels for the workload selectors of security policies, `key=value` pairs separated by commas (such as `team=books,tier=backend`); `app` and `version` come from `MESH_SERVICE` and `MESH_VERSION` unless given here. |
//! | `MESH_DNS_SERVERS` | system (`/etc/resolv.conf`) | Comma-separated DNS servers, `ip:port` or `[ipv6]:port`; a bare IP means port 53. |
//! | `MESH_DNS_MIN_TTL` | `1s` | Lower bound of the DNS refresh interval. |
//! | `MESH_DNS_MAX_TTL` | `60s` | Upper bound of the DNS refresh interval. |
//! | `MESH_DNS_JITTER` | `0.1` | Fraction (0 to 1) by which refresh intervals are shortened at random. |
//! | `MESH_DNS_TIMEOUT` | `2s` | How long one DNS lookup may take. |
//! | `MESH_DNS_NXDOMAIN` | `keep` | On NXDOMAIN for a name that had endpoints: `keep` them for the grace period, or `drop` them. |
//! | `MESH_DNS_NXDOMAIN_GRACE` | `60s` | How long endpoints are kept after NXDOMAIN (with `keep`). |
//! | `MESH_LB` | `LEAST_REQUEST` | Load balancer: `ROUND_ROBIN`, `RANDOM`, `LEAST_REQUEST` or `PEAK_EWMA`. |
//! | `MESH_TIMEOUT` | `15s` | Whole-request timeout, retries included; `0s` disables it. |
//! | `MESH_CONNECT_TIMEOUT` | `10s` | TCP connect timeout. |
//! | `MESH_PROTOCOL` | `http1` | HTTP version spoken to endpoints: `http1` or `http2` (h2c). |
//! | `MESH_RETRY_ATTEMPTS` | `2` | Retries after the first try (0 to 100; 0 disables retries). |
//! | `MESH_RETRY_PER_TRY_TIMEOUT` | none | Timeout of each try; `0s` means none. |
//! | `MESH_RETRY_ON` | `reset,connect-failure,refused-stream,cancelled,unavailable,503` | Istio `retryOn` conditions, comma-separated. |
//! | `MESH_RETRY_NON_IDEMPOTENT` | `false` | Whether POST/PATCH are retried on conditions where they may have been processed (`true`/`false`). |
//! | `MESH_RETRY_BACKOFF_BASE` | `25ms` | Upper bound of the first back-off interval. |
//! | `MESH_RETRY_BACKOFF_MAX` | `250ms` | Cap on any back-off interval. |
//! | `MESH_RETRY_BUDGET_PERCENT` | `20` | Retries allowed as a percentage of requests (0 to 100000). |
//! | `MESH_RETRY_BUDGET_MIN_PER_SECOND` | `10` | Retries always allowed each second. |
//! | `MESH_RETRY_BUDGET_TTL` | `10s` | Window over which requests and retries are counted. |
//! | `MESH_RETRY_CONCURRENCY_BUDGET` | none | Istio's `retryBudget`: retries in flight as a percentage of requests in flight, `PERCENT[,minRetryConcurrency=N]` (such as `20` or `20,minRetryConcurrency=5`; N defaults to 3), or `off`. |
//! | `MESH_RATE_LIMIT` | none | Rate limit on requests to each destination (429 past it): `TOKENS/INTERVAL[,maxTokens=N]` (such as `100/1s` or `100/1s,maxTokens=200`; the bucket holds `TOKENS` unless `maxTokens` says otherwise), or `off`. |
//! | `MESH_CONCURRENCY_LIMIT` | none | Requests in flight to each destination at once (503 past it): a whole number from 1, or `off`. |
//! | `MESH_HEDGE` | none | Hedging of idempotent requests slower than a latency percentile: `PERCENTILE[,key=value...]` with the percentile as `p95` or `0.95` and keys `maxExtraPercent`, `minPerSecond`, `minDelay`, `window`, `minSamples` (such as `p95` or `p99,maxExtraPercent=5,minDelay=5ms`), or `off`. |
//! | `MESH_SERVER_RATE_LIMIT` | none | Rate limit on inbound requests (429 past it), as `MESH_RATE_LIMIT` writes it, or `off`. |
//! | `MESH_SERVER_CONCURRENCY_LIMIT` | none | Inbound requests handled at once (503 past it): a whole number from 1, or `off`. |
//! | `MESH_PROPAGATE_DEADLINE` | `true` | Whether an inbound request's deadline (`x-mesh-timeout-ms` or `grpc-timeout`) bounds the outbound calls made for it (`true`/`false`). |
//! | `MESH_SHUTDOWN_DRAIN` | `5s` | How long kept-alive connections stay open once shutdown starts, each answer closing its connection; at most `MESH_SHUTDOWN_GRACE`. |
//! | `MESH_SHUTDOWN_GRACE` | `30s` | The most shutdown takes: requests still in flight after it are cut. |
//! | `MESH_CERT_DIR` | none | A directory of workload certificates whose layout is told by the files it holds when the config is read: Istio's (`cert-chain.pem`, `key.pem`, `root-cert.pem`), else SPIRE's (`svid.pem`, `svid_key.pem`, `bundle.pem`), else cert-manager's (`tls.crt`, `tls.key`, `ca.crt`). |
//! | `MESH_CERT_CHAIN` | none | The workload's certificate chain (PEM), leaf first; with `MESH_CERT_KEY` and `MESH_CERT_ROOTS`, instead of `MESH_CERT_DIR`. |
//! | `MESH_CERT_KEY` | none | The workload's private key (PEM); with `MESH_CERT_CHAIN` and `MESH_CERT_ROOTS`. |
//! | `MESH_CERT_ROOTS` | none | The trust bundle (PEM CA certificates); with `MESH_CERT_CHAIN` and `MESH_CERT_KEY`. |
//! | `MESH_CERT_REFRESH` | `5s` | How often the certificate files are checked for changes. |
//! | `MESH_MTLS_MODE` | `PERMISSIVE` | The server's mTLS mode when no PeerAuthentication applies: `STRICT`, `PERMISSIVE` or `DISABLE`. |
//! | `MESH_OUTBOUND_POLICY` | `ALLOW_ANY` | Which hosts the client may call: `ALLOW_ANY`, or `REGISTRY_ONLY` (the cluster's, configured destinations and allowed hosts). |
//! | `MESH_ALLOWED_HOSTS` | none | Comma-separated hosts (`api.example.com`, `*.example.com`) that may be called under `REGISTRY_ONLY`, added to those of the file (ServiceEntry hosts). |
//! | `MESH_TRUST_DOMAIN_ALIASES` | none | Comma-separated trust domains whose identities are accepted besides `MESH_TRUST_DOMAIN`. |
//! | `MESH_ROOT_NAMESPACE` | `istio-system` | Istio's root namespace: its policies apply to every workload. |
//! | `MESH_NUM_TRUSTED_PROXIES` | `0` | Proxies in front of the workload that append to `X-Forwarded-For` (Istio's `numTrustedProxies`): authorization's `remote.ip` is that many hops from the right. |
//! | `MESH_TELEMETRY_METRICS` | `true` | Whether both stacks record Istio's standard metrics (`istio_requests_total` ...): `true`/`false`. |
//! | `MESH_CLUSTER_ID` | `ISTIO_META_CLUSTER_ID`, else `Kubernetes` | The cluster ID of the `source_cluster` and `destination_cluster` metric labels. |
//! | `ISTIO_META_CLUSTER_ID` | `Kubernetes` | Istio's name for the cluster ID, read when `MESH_CLUSTER_ID` is unset. |
//! | `MESH_TRACING` | `true` | Whether the server stack starts a trace for a request that carries none (`true`/`false`); a request that carries a trace context is always continued. |
//! | `OTEL_PROPAGATORS` | `tracecontext,b3multi` | The trace header styles written on outbound calls, comma-separated: `tracecontext` (W3C), `b3` (single header), `b3multi`, or `none`; every style is read. OpenTelemetry's other names (`baggage`, `jaeger`, `xray`, `ottrace`) are skipped with a warning, since the variable may be meant for another SDK in the process; any other name is an error. |
//! | `MESH_GENERATE_REQUEST_ID` | `true` | Whether the server stack gives a request without `x-request-id` a new one (`true`/`false`). |
//! | `MESH_PROPAGATE_HEADERS` | none | Comma-separated request headers (such as `end-user`) carried from an inbound request to the outbound calls made while handling it; names are lowercased; hop-by-hop headers, trace headers and `x-request-id` (always carried) are refused. |
//! | `MESH_PROPAGATE_COOKIES` | none | Comma-separated cookie names (such as `user`) carried the same way, as one `cookie` header. |
//! | `MESH_ACCESS_LOG` | none (off) | Both stacks' access log: a file path (appended to), `-` or `/dev/stdout` for standard output, or `off`. |
//! | `MESH_CLIENT_ACCESS_LOG` | `MESH_ACCESS_LOG` | The client stack's access log, as `MESH_ACCESS_LOG` writes it; overrides it. |
//! | `MESH_SERVER_ACCESS_LOG` | `MESH_ACCESS_LOG` | The server stack's access log, as `MESH_ACCESS_LOG` writes it; overrides it. |
//! | `MESH_ACCESS_LOG_FORMAT` | `text` | The format of every access log that is on: `text` (Istio's default line) or `json`; an error when no access log is on. |

use std::collections::BTreeMap;
use std::path::Path;

use super::builder::MeshConfigBuilder;
use super::file::{builder_from_file, nxdomain_policy};
use super::security::check;
use super::validate::dns_name;
use super::values::{self, NxAction, at, whole_number};
use super::{
    AccessLogConfig, AccessLogOutput, CertificateFiles, ConfigError, ConfigWarning, MeshConfig,
    SecurityConfig, TelemetryConfig, telemetry,
};

/// Every environment variable mesh reads, with a one-line description.
///
/// Names starting with `MESH_` that are not listed here are rejected as typos.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "MESH_CONFIG",
        "path of a YAML, TOML or JSON config file (mesh's own document and/or Istio documents) read before the variables",
    ),
    ("MESH_SERVICE", "the service this workload belongs to"),
    (
        "MESH_NAMESPACE",
        "the workload's namespace (overrides POD_NAMESPACE)",
    ),
    (
        "POD_NAMESPACE",
        "the workload's namespace, from the Downward API",
    ),
    ("POD_NAME", "the pod's name, from the Downward API"),
    (
        "MESH_SERVICE_ACCOUNT",
        "the workload's service account (overrides SERVICE_ACCOUNT)",
    ),
    (
        "SERVICE_ACCOUNT",
        "the workload's service account, from the Downward API",
    ),
    (
        "POD_SERVICE_ACCOUNT",
        "the workload's service account, when SERVICE_ACCOUNT is unset",
    ),
    ("MESH_CLUSTER_DOMAIN", "the cluster's DNS domain"),
    (
        "MESH_RESOLV_CONF",
        "resolv.conf whose Kubernetes search list gives namespace and cluster domain",
    ),
    ("MESH_TRUST_DOMAIN", "the SPIFFE trust domain"),
    ("MESH_VERSION", "the workload's version label"),
    (
        "MESH_WORKLOAD_LABELS",
        "further pod labels for policy selectors: key=value pairs separated by commas",
    ),
    (
        "MESH_DNS_SERVERS",
        "comma-separated DNS servers, ip:port (a bare ip means port 53)",
    ),
    (
        "MESH_DNS_MIN_TTL",
        "lower bound of the DNS refresh interval",
    ),
    (
        "MESH_DNS_MAX_TTL",
        "upper bound of the DNS refresh interval",
    ),
    (
        "MESH_DNS_JITTER",
        "fraction (0 to 1) by which refresh intervals are shortened at random",
    ),
    ("MESH_DNS_TIMEOUT", "how long one DNS lookup may take"),
    (
        "MESH_DNS_NXDOMAIN",
        "on NXDOMAIN: keep the last endpoints for a grace period, or drop them",
    ),
    (
        "MESH_DNS_NXDOMAIN_GRACE",
        "how long endpoints are kept after NXDOMAIN",
    ),
    (
        "MESH_LB",
        "load balancer: ROUND_ROBIN, RANDOM, LEAST_REQUEST or PEAK_EWMA",
    ),
    (
        "MESH_TIMEOUT",
        "whole-request timeout, retries included; 0s disables it",
    ),
    ("MESH_CONNECT_TIMEOUT", "TCP connect timeout"),
    (
        "MESH_PROTOCOL",
        "HTTP version spoken to endpoints: http1 or http2",
    ),
    (
        "MESH_RETRY_ATTEMPTS",
        "retries after the first try (0 to 100)",
    ),
    (
        "MESH_RETRY_PER_TRY_TIMEOUT",
        "timeout of each try; 0s means none",
    ),
    ("MESH_RETRY_ON", "Istio retryOn conditions, comma-separated"),
    (
        "MESH_RETRY_NON_IDEMPOTENT",
        "whether non-idempotent requests may be retried",
    ),
    (
        "MESH_RETRY_BACKOFF_BASE",
        "upper bound of the first back-off interval",
    ),
    ("MESH_RETRY_BACKOFF_MAX", "cap on any back-off interval"),
    (
        "MESH_RETRY_BUDGET_PERCENT",
        "retries allowed as a percentage of requests",
    ),
    (
        "MESH_RETRY_BUDGET_MIN_PER_SECOND",
        "retries always allowed each second",
    ),
    (
        "MESH_RETRY_BUDGET_TTL",
        "window over which requests and retries are counted",
    ),
    (
        "MESH_RETRY_CONCURRENCY_BUDGET",
        "retries in flight as a percentage of requests in flight: PERCENT[,minRetryConcurrency=N], or off",
    ),
    (
        "MESH_RATE_LIMIT",
        "rate limit on requests to each destination: TOKENS/INTERVAL[,maxTokens=N], or off",
    ),
    (
        "MESH_CONCURRENCY_LIMIT",
        "requests in flight to each destination at once, or off",
    ),
    (
        "MESH_HEDGE",
        "hedge idempotent requests slower than a percentile: PERCENTILE[,key=value...], or off",
    ),
    (
        "MESH_SERVER_RATE_LIMIT",
        "rate limit on inbound requests: TOKENS/INTERVAL[,maxTokens=N], or off",
    ),
    (
        "MESH_SERVER_CONCURRENCY_LIMIT",
        "inbound requests handled at once, or off",
    ),
    (
        "MESH_PROPAGATE_DEADLINE",
        "whether an inbound request's deadline bounds its outbound calls",
    ),
    (
        "MESH_SHUTDOWN_DRAIN",
        "how long kept-alive connections stay open once shutdown starts",
    ),
    (
        "MESH_SHUTDOWN_GRACE",
        "the most shutdown takes; requests in flight after it are cut",
    ),
    (
        "MESH_CERT_DIR",
        "directory of workload certificates, its layout (Istio, SPIRE, cert-manager) told by the files in it",
    ),
    (
        "MESH_CERT_CHAIN",
        "the workload's certificate chain (with MESH_CERT_KEY and MESH_CERT_ROOTS)",
    ),
    (
        "MESH_CERT_KEY",
        "the workload's private key (with MESH_CERT_CHAIN and MESH_CERT_ROOTS)",
    ),
    (
        "MESH_CERT_ROOTS",
        "the trust bundle (with MESH_CERT_CHAIN and MESH_CERT_KEY)",
    ),
    (
        "MESH_CERT_REFRESH",
        "how often the certificate files are checked for changes",
    ),
    (
        "MESH_MTLS_MODE",
        "the server's mTLS mode when no PeerAuthentication applies: STRICT, PERMISSIVE or DISABLE",
    ),
    (
        "MESH_OUTBOUND_POLICY",
        "which hosts the client may call: ALLOW_ANY or REGISTRY_ONLY",
    ),
    (
        "MESH_ALLOWED_HOSTS",
        "comma-separated hosts that may be called under REGISTRY_ONLY",
    ),
    (
        "MESH_TRUST_DOMAIN_ALIASES",
        "comma-separated trust domains accepted besides the workload's own",
    ),
    (
        "MESH_ROOT_NAMESPACE",
        "Istio's root namespace, whose policies apply to every workload",
    ),
    (
        "MESH_NUM_TRUSTED_PROXIES",
        "proxies in front of the workload that append to X-Forwarded-For",
    ),
    (
        "MESH_TELEMETRY_METRICS",
        "whether both stacks record Istio's standard metrics",
    ),
    (
        "MESH_CLUSTER_ID",
        "the cluster ID of the *_cluster metric labels",
    ),
    (
        "ISTIO_META_CLUSTER_ID",
        "the cluster ID, Istio's variable, read when MESH_CLUSTER_ID is unset",
    ),
    (
        "MESH_TRACING",
        "whether the server stack starts traces for requests that carry none",
    ),
    (
        "OTEL_PROPAGATORS",
        "trace header styles written on outbound calls: tracecontext, b3, b3multi, or none",
    ),
    (
        "MESH_GENERATE_REQUEST_ID",
        "whether the server stack gives requests without x-request-id a new one",
    ),
    (
        "MESH_PROPAGATE_HEADERS",
        "comma-separated request headers carried from inbound requests to outbound calls",
    ),
    (
        "MESH_PROPAGATE_COOKIES",
        "comma-separated cookies carried from inbound requests to outbound calls",
    ),
    (
        "MESH_ACCESS_LOG",
        "both stacks' access log: a path, - or /dev/stdout, or off",
    ),
    (
        "MESH_CLIENT_ACCESS_LOG",
        "the client stack's access log (overrides MESH_ACCESS_LOG)",
    ),
    (
        "MESH_SERVER_ACCESS_LOG",
        "the server stack's access log (overrides MESH_ACCESS_LOG)",
    ),
    ("MESH_ACCESS_LOG_FORMAT", "access log format: text or json"),
];

/// The prefix of mesh's own variables.
const PREFIX: &str = "MESH_";

/// `from_env` reads this resolv.conf when `MESH_RESOLV_CONF` is unset, and tolerates its absence.
const OPTIONAL_RESOLV_CONF: &str = "?/etc/resolv.conf";

impl MeshConfig {
    /// Reads the config from the process environment; the [`env`](mod@super::env) module lists
    /// the variables.
    ///
    /// When neither the variables nor the file name the namespace and cluster domain, they
    /// come from the pod's resolv.conf search list (`MESH_RESOLV_CONF`, by default
    /// `/etc/resolv.conf`), as Kubernetes writes it.
    pub fn from_env() -> Result<MeshConfig, ConfigError> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if !is_known(&name) && !name.starts_with(PREFIX) {
                continue;
            }
            let value = value.into_string().map_err(|v| {
                ConfigError::invalid(&name, v.to_string_lossy(), "is not valid UTF-8")
            })?;
            vars.push((name, value));
        }
        if !vars.iter().any(|(name, _)| name == "MESH_RESOLV_CONF") {
            // The pod's own resolv.conf, when there is one; a missing file is no error here.
            vars.push((
                "MESH_RESOLV_CONF".to_owned(),
                OPTIONAL_RESOLV_CONF.to_owned(),
            ));
        }
        Self::from_vars(vars)
    }

    /// Reads the config from the given variables, as [`from_env`](Self::from_env) does from
    /// the process environment; the testable core of it.
    pub fn from_vars<I, K, V>(vars: I) -> Result<MeshConfig, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        if let Some((name, value)) = vars
            .iter()
            .find(|(name, _)| name.starts_with(PREFIX) && !is_known(name))
        {
            return Err(ConfigError::UnknownVariable {
                name: name.clone(),
                value: value.clone(),
                suggestion: closest(name),
            });
        }
        let mut env = Env {
            vars: &vars,
            applied: Vec::new(),
        };
        let base = env.resolv_conf_base()?;
        let file = env.get("MESH_CONFIG");
        let mut b = match file {
            Some(path) => builder_from_file(Path::new(path), base).map_err(|e| match e {
                ConfigError::Read { source, .. } => ConfigError::invalid(
                    "MESH_CONFIG",
                    path,
                    format!("cannot read the file: {source}"),
                ),
                ConfigError::UnknownFormat { .. } => ConfigError::invalid(
                    "MESH_CONFIG",
                    path,
                    "unknown format (expected a .yaml, .yml, .toml or .json extension)",
                ),
                e => e,
            })?,
            None => base,
        };
        env.apply(&mut b)?;
        b.build().map_err(|e| match env.blame(e) {
            Ok(e) => e,
            Err(e) => match file {
                Some(path) => e.in_file(Path::new(path)),
                None => e,
            },
        })
    }
}

fn is_known(name: &str) -> bool {
    ENV_VARS.iter().any(|(known, _)| *known == name)
}

/// The known `MESH_` variable closest to `name`, if it is within a few edits.
fn closest(name: &str) -> Option<&'static str> {
    ENV_VARS
        .iter()
        .map(|(known, _)| *known)
        .filter(|known| known.starts_with(PREFIX))
        .map(|known| (edit_distance(name, known), known))
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The variables being read, and which config paths they set.
struct Env<'a> {
    vars: &'a BTreeMap<String, String>,
    /// (config path, variable, value) for every variable applied.
    applied: Vec<(&'static str, &'static str, &'a str)>,
}

impl<'a> Env<'a> {
    /// The variable's trimmed value, if it is set and not empty.
    fn get(&self, name: &str) -> Option<&'a str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Parses variable `name`, which sets config `path`, if it is set.
    fn take<T>(
        &mut self,
        name: &'static str,
        path: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let parsed = at(name, value, parse)?;
        self.applied.push((path, name, value));
        Ok(Some(parsed))
    }

    /// The first of `names` that is set, as a string setting `path`.
    fn text(&mut self, names: &[&'static str], path: &'static str) -> Option<String> {
        let name = names.iter().find(|n| self.get(n).is_some())?;
        self.take(name, path, |v| Ok(v.to_owned())).ok().flatten()
    }

    /// A builder whose namespace and cluster domain come from the resolv.conf that
    /// `MESH_RESOLV_CONF` names, when its search list has Kubernetes' shape. A path that starts
    /// with `?` may be missing.
    fn resolv_conf_base(&mut self) -> Result<MeshConfigBuilder, ConfigError> {
        let mut base = MeshConfigBuilder::default();
        let Some(value) = self.get("MESH_RESOLV_CONF") else {
            return Ok(base);
        };
        let (path, optional) = match value.strip_prefix('?') {
            Some(path) => (path, true),
            None => (value, false),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(_) if optional => return Ok(base),
            Err(e) => {
                return Err(ConfigError::invalid(
                    "MESH_RESOLV_CONF",
                    value,
                    format!("cannot read the file: {e}"),
                ));
            }
        };
        let parsed = crate::resolv_conf::parse(&text)
            .map_err(|e| ConfigError::invalid("MESH_RESOLV_CONF", value, e.to_string()))?;
        if let Some((namespace, cluster_domain)) = parsed.kubernetes() {
            base.workload.namespace = namespace;
            base.workload.cluster_domain = cluster_domain;
        }
        Ok(base)
    }

    /// Lays every set variable over `b`.
    fn apply(&mut self, b: &mut MeshConfigBuilder) -> Result<(), ConfigError> {
        let w = &mut b.workload;
        if let Some(v) = self.text(&["MESH_SERVICE"], "workload.service") {
            w.service = v;
        }
        if let Some(v) = self.text(&["MESH_NAMESPACE", "POD_NAMESPACE"], "workload.namespace") {
            w.namespace = v;
        }
        if let Some(v) = self.text(&["MESH_CLUSTER_DOMAIN"], "workload.clusterDomain") {
            w.cluster_domain = v;
        }
        if let Some(v) = self.text(&["MESH_TRUST_DOMAIN"], "workload.trustDomain") {
            w.trust_domain = v;
        }
        let accounts = [
            "MESH_SERVICE_ACCOUNT",
            "SERVICE_ACCOUNT",
            "POD_SERVICE_ACCOUNT",
        ];
        if let Some(v) = self.text(&accounts, "workload.serviceAccount") {
            w.service_account = v;
        }
        if let Some(v) = self.text(&["POD_NAME"], "workload.podName") {
            w.pod_name = Some(v);
        }
        if let Some(v) = self.text(&["MESH_VERSION"], "workload.version") {
            w.version = Some(v);
        }
        if let Some(v) = self.take("MESH_WORKLOAD_LABELS", "workload.labels", values::labels)? {
            w.labels = v;
        }

        let d = &mut b.discovery;
        if let Some(v) = self.take("MESH_DNS_SERVERS", "discovery.nameservers", nameservers)? {
            d.nameservers = v;
        }
        if let Some(v) = self.take("MESH_DNS_MIN_TTL", "discovery.minTtl", values::duration)? {
            d.min_ttl = v;
        }
        if let Some(v) = self.take("MESH_DNS_MAX_TTL", "discovery.maxTtl", values::duration)? {
            d.max_ttl = v;
        }
        if let Some(v) = self.take("MESH_DNS_JITTER", "discovery.jitter", number)? {
            d.jitter = v;
        }
        if let Some(v) = self.take("MESH_DNS_TIMEOUT", "discovery.timeout", values::duration)? {
            d.timeout = v;
        }
        let action = self.take(
            "MESH_DNS_NXDOMAIN",
            "discovery.nxdomain",
            values::nxdomain_action,
        )?;
        let grace_var = "MESH_DNS_NXDOMAIN_GRACE";
        let grace = self.take(grace_var, "discovery.nxdomain.grace", values::duration)?;
        if action.is_some() || grace.is_some() {
            let action = action.unwrap_or_else(|| NxAction::of(&d.nxdomain));
            let raw_grace = self.get(grace_var).unwrap_or_default();
            d.nxdomain = nxdomain_policy(action, grace, &d.nxdomain, || {
                ConfigError::invalid(
                    grace_var,
                    raw_grace,
                    "applies only when MESH_DNS_NXDOMAIN is keep",
                )
            })?;
        }

        let p = &mut b.defaults;
        if let Some(v) = self.take("MESH_LB", "defaults.loadBalancer", values::load_balancer)? {
            p.load_balancer = Some(v);
        }
        if let Some(v) = self.take("MESH_TIMEOUT", "defaults.timeout", values::timeout)? {
            p.timeout = Some(v);
        }
        let path = "defaults.connectTimeout";
        if let Some(v) = self.take("MESH_CONNECT_TIMEOUT", path, values::duration)? {
            p.connect_timeout = Some(v);
        }
        if let Some(v) = self.take("MESH_PROTOCOL", "defaults.protocol", values::protocol)? {
            p.protocol = Some(v);
        }
        let path = "defaults.retries.attempts";
        if let Some(v) = self.take("MESH_RETRY_ATTEMPTS", path, whole_number)? {
            p.attempts = Some(v);
        }
        let path = "defaults.retries.perTryTimeout";
        if let Some(v) = self.take("MESH_RETRY_PER_TRY_TIMEOUT", path, values::timeout)? {
            p.per_try_timeout = Some(v);
        }
        let path = "defaults.retries.retryOn";
        if let Some(v) = self.take("MESH_RETRY_ON", path, values::retry_on)? {
            p.retry_on = Some(v);
        }
        let path = "defaults.retries.retryNonIdempotent";
        if let Some(v) = self.take("MESH_RETRY_NON_IDEMPOTENT", path, values::boolean)? {
            p.retry_non_idempotent = Some(v);
        }
        let path = "defaults.retries.backoff.baseInterval";
        if let Some(v) = self.take("MESH_RETRY_BACKOFF_BASE", path, values::duration)? {
            p.backoff_base = Some(v);
        }
        let path = "defaults.retries.backoff.maxInterval";
        if let Some(v) = self.take("MESH_RETRY_BACKOFF_MAX", path, values::duration)? {
            p.backoff_max = Some(v);
        }
        let path = "defaults.retries.budget.percent";
        if let Some(v) = self.take("MESH_RETRY_BUDGET_PERCENT", path, number)? {
            p.budget_ratio = Some(v / 100.0);
        }
        let path = "defaults.retries.budget.minRetriesPerSecond";
        if let Some(v) = self.take("MESH_RETRY_BUDGET_MIN_PER_SECOND", path, whole_number)? {
            p.budget_min_per_second = Some(v);
        }
        let path = "defaults.retries.budget.ttl";
        if let Some(v) = self.take("MESH_RETRY_BUDGET_TTL", path, values::duration)? {
            p.budget_window = Some(v);
        }
        let name = "MESH_RETRY_CONCURRENCY_BUDGET";
        if let Some(v) = self.take(name, "defaults.retryBudget", |s| {
            values::switch(s, values::retry_concurrency_budget)
        })? {
            p.retry_concurrency_budget = Some(v);
        }
        if let Some(v) = self.take("MESH_RATE_LIMIT", "defaults.rateLimit", |s| {
            values::switch(s, values::token_bucket)
        })? {
            p.rate_limit = Some(v);
        }
        let path = "defaults.concurrencyLimit";
        if let Some(v) = self.take("MESH_CONCURRENCY_LIMIT", path, values::limit)? {
            p.concurrency_limit = Some(v);
        }
        if let Some(v) = self.take("MESH_HEDGE", "defaults.hedge", |s| {
            values::switch(s, values::hedge)
        })? {
            p.hedge = Some(v);
        }

        let server = &mut b.server;
        if let Some(v) = self.take("MESH_SERVER_RATE_LIMIT", "server.rateLimit", |s| {
            values::switch(s, values::token_bucket)
        })? {
            server.rate_limit = v;
        }
        let path = "server.concurrencyLimit";
        if let Some(v) = self.take("MESH_SERVER_CONCURRENCY_LIMIT", path, values::limit)? {
            server.concurrency_limit = v;
        }
        let path = "server.propagateDeadline";
        if let Some(v) = self.take("MESH_PROPAGATE_DEADLINE", path, values::boolean)? {
            server.propagate_deadline = v;
        }
        let path = "server.shutdown.drain";
        let drain = self.take("MESH_SHUTDOWN_DRAIN", path, values::duration)?;
        if let Some(v) = drain {
            server.shutdown.drain = v;
        }
        let (name, path) = ("MESH_SHUTDOWN_GRACE", "server.shutdown.grace");
        if let Some(v) = self.take(name, path, values::duration)? {
            server.shutdown.grace = v;
            // A grace shorter than a drain no variable set: blame the variable.
            if drain.is_none() && server.shutdown.drain > v {
                return Err(ConfigError::invalid(
                    name,
                    self.get(name).unwrap_or_default(),
                    format!(
                        "must not be less than server.shutdown.drain ({}); set MESH_SHUTDOWN_DRAIN too",
                        crate::duration::format_duration(server.shutdown.drain)
                    ),
                ));
            }
        }
        self.apply_security(&mut b.security)?;
        self.apply_telemetry(&mut b.telemetry, &mut b.warnings)
    }

    /// Lays the telemetry variables over `t`; skipped propagator names become warnings.
    fn apply_telemetry(
        &mut self,
        t: &mut TelemetryConfig,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = self.take(
            "MESH_TELEMETRY_METRICS",
            "telemetry.metrics",
            values::boolean,
        )? {
            t.metrics = v;
        }
        let names = ["MESH_CLUSTER_ID", "ISTIO_META_CLUSTER_ID"];
        if let Some(v) = self.text(&names, "telemetry.clusterId") {
            t.cluster_id = v;
        }
        if let Some(v) = self.take("MESH_TRACING", "telemetry.tracing", values::boolean)? {
            t.tracing = v;
        }
        let name = "OTEL_PROPAGATORS";
        if let Some((set, skipped)) = self.take(name, "telemetry.propagation", |v| {
            telemetry::propagators(v.split(','), true)
        })? {
            t.propagation = set;
            for skipped in skipped {
                warnings.push(ConfigWarning {
                    path: name.to_owned(),
                    message: format!(
                        "the {skipped} propagator is not implemented by mesh; ignored"
                    ),
                });
            }
        }
        let path = "telemetry.generateRequestId";
        if let Some(v) = self.take("MESH_GENERATE_REQUEST_ID", path, values::boolean)? {
            t.generate_request_id = v;
        }
        let path = "telemetry.propagateHeaders";
        if let Some(v) = self.take("MESH_PROPAGATE_HEADERS", path, |v| {
            values::list(&v.to_ascii_lowercase(), telemetry::propagated_header)
        })? {
            t.propagate_headers = v;
        }
        let path = "telemetry.propagateCookies";
        if let Some(v) = self.take("MESH_PROPAGATE_COOKIES", path, |v| {
            values::list(v, telemetry::cookie_name)
        })? {
            t.propagate_cookies = v;
        }
        let both = self.take("MESH_ACCESS_LOG", "telemetry.accessLog", access_log)?;
        let client = self.take(
            "MESH_CLIENT_ACCESS_LOG",
            "telemetry.clientAccessLog",
            access_log,
        )?;
        let server = self.take(
            "MESH_SERVER_ACCESS_LOG",
            "telemetry.serverAccessLog",
            access_log,
        )?;
        for (one, slot) in [
            (client, &mut t.client_access_log),
            (server, &mut t.server_access_log),
        ] {
            if let Some(output) = one.or_else(|| both.clone()) {
                let format = slot.as_ref().map(|l| l.format).unwrap_or_default();
                *slot = output.map(|output| AccessLogConfig { format, output });
            }
        }
        let name = "MESH_ACCESS_LOG_FORMAT";
        let path = "telemetry.accessLog.format";
        if let Some(format) = self.take(name, path, telemetry::access_log_format)? {
            let mut any = false;
            for log in [&mut t.client_access_log, &mut t.server_access_log]
                .into_iter()
                .flatten()
            {
                log.format = format;
                any = true;
            }
            if !any {
                return Err(ConfigError::invalid(
                    name,
                    self.get(name).unwrap_or_default(),
                    "applies only with an access log: set MESH_ACCESS_LOG (or telemetry.accessLog in the file)",
                ));
            }
        }
        Ok(())
    }

    /// Lays the security variables over `s`.
    fn apply_security(&mut self, s: &mut SecurityConfig) -> Result<(), ConfigError> {
        // Taken first, so that a validation error about the refresh blames this variable.
        let refresh_var = "MESH_CERT_REFRESH";
        let path = "security.certificates.refresh";
        let refresh = self.take(refresh_var, path, values::duration)?;
        // Recorded under a path no validation error names: the directory is checked here,
        // and a bad refresh kept from the file is the file's.
        let dir = self.take("MESH_CERT_DIR", "security.certificates.dir", |d| {
            CertificateFiles::detect(d)
        })?;
        let explicit = [
            (
                "MESH_CERT_CHAIN",
                self.text(&["MESH_CERT_CHAIN"], "security.certificates.chain"),
            ),
            (
                "MESH_CERT_KEY",
                self.text(&["MESH_CERT_KEY"], "security.certificates.key"),
            ),
            (
                "MESH_CERT_ROOTS",
                self.text(&["MESH_CERT_ROOTS"], "security.certificates.roots"),
            ),
        ];
        let set: Vec<&str> = explicit
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(name, _)| *name)
            .collect();
        if dir.is_some() && !set.is_empty() {
            return Err(ConfigError::invalid(
                "MESH_CERT_DIR",
                self.get("MESH_CERT_DIR").unwrap_or_default(),
                format!(
                    "set either MESH_CERT_DIR or MESH_CERT_CHAIN, MESH_CERT_KEY and MESH_CERT_ROOTS, not both ({} is set too)",
                    set.join(", ")
                ),
            ));
        }
        let files = match (dir, explicit) {
            (Some(files), _) => Some(files),
            (None, [(_, Some(chain)), (_, Some(key)), (_, Some(roots))]) => {
                Some(CertificateFiles {
                    chain: chain.into(),
                    key: key.into(),
                    roots: roots.into(),
                    refresh: CertificateFiles::DEFAULT_REFRESH,
                })
            }
            (None, explicit) => {
                if let Some(first) = set.first() {
                    let missing: Vec<&str> = explicit
                        .iter()
                        .filter(|(_, v)| v.is_none())
                        .map(|(name, _)| *name)
                        .collect();
                    return Err(ConfigError::invalid(
                        *first,
                        self.get(first).unwrap_or_default(),
                        format!(
                            "MESH_CERT_CHAIN, MESH_CERT_KEY and MESH_CERT_ROOTS go together; {} not set",
                            match missing.as_slice() {
                                [one] => format!("{one} is"),
                                more => format!("{} are", more.join(" and ")),
                            }
                        ),
                    ));
                }
                None
            }
        };
        let previous = s.certificates.as_ref().map(|c| c.refresh);
        match (files, &mut s.certificates) {
            (Some(mut files), current) => {
                files.refresh = refresh
                    .or(previous)
                    .unwrap_or(CertificateFiles::DEFAULT_REFRESH);
                *current = Some(files);
            }
            (None, Some(current)) => {
                if let Some(r) = refresh {
                    current.refresh = r;
                }
            }
            (None, None) => {
                if refresh.is_some() {
                    return Err(ConfigError::invalid(
                        refresh_var,
                        self.get(refresh_var).unwrap_or_default(),
                        "applies only with certificates: set MESH_CERT_DIR, or MESH_CERT_CHAIN, MESH_CERT_KEY and MESH_CERT_ROOTS (or security.certificates in the file)",
                    ));
                }
            }
        }

        if let Some(v) = self.take("MESH_MTLS_MODE", "security.mtls", values::mtls_mode)? {
            s.default_mtls = v;
        }
        let path = "security.outbound.mode";
        if let Some(v) = self.take("MESH_OUTBOUND_POLICY", path, values::outbound_mode)? {
            s.outbound.mode = v;
        }
        let path = "security.outbound.allowedHosts";
        if let Some(hosts) = self.take("MESH_ALLOWED_HOSTS", path, |v| {
            values::list(v, check::egress_host)
        })? {
            for host in hosts {
                let host = host.to_ascii_lowercase();
                if !s.outbound.allowed_hosts.contains(&host) {
                    s.outbound.allowed_hosts.push(host);
                }
            }
        }
        let path = "security.trustDomainAliases";
        if let Some(v) = self.take("MESH_TRUST_DOMAIN_ALIASES", path, |v| {
            values::list(v, dns_name)
        })? {
            s.trust_domain_aliases = v;
        }
        if let Some(v) = self.text(&["MESH_ROOT_NAMESPACE"], "security.rootNamespace") {
            s.root_namespace = v;
        }
        let path = "security.numTrustedProxies";
        if let Some(v) = self.take("MESH_NUM_TRUSTED_PROXIES", path, values::whole_number)? {
            s.num_trusted_proxies = v;
        }
        Ok(())
    }

    /// Renames a validation error about a value a variable set to that variable and value;
    /// gives the error back unchanged (as `Err`) when no variable set it.
    fn blame(&self, e: ConfigError) -> Result<ConfigError, ConfigError> {
        let ConfigError::Invalid { path, reason, .. } = &e else {
            return Err(e);
        };
        let set_by = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
        };
        match self.applied.iter().find(|(prefix, _, _)| set_by(prefix)) {
            Some((_, name, value)) => Ok(ConfigError::invalid(*name, value, reason.clone())),
            None => Err(e),
        }
    }
}

fn nameservers(s: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .map(|piece| values::nameserver(piece).map_err(|e| format!("`{piece}`: {e}")))
        .collect()
}

/// An access log's output: a path, `-` or `/dev/stdout` for standard output; `off` is
/// `None`.
fn access_log(s: &str) -> Result<Option<AccessLogOutput>, String> {
    Ok((s != values::OFF).then(|| AccessLogOutput::from_path(s)))
}

fn number(s: &str) -> Result<f64, String> {
    s.parse().map_err(|_| "expected a number".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_list_agree() {
        let source = include_str!("env.rs");
        let rows: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let names: Vec<&str> = ENV_VARS.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            rows, names,
            "the module docs' table lists ENV_VARS in order"
        );
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "no name twice");
        for (name, description) in ENV_VARS {
            assert!(!description.is_empty(), "{name}");
        }
    }

    #[test]
    fn documented_retry_on_default_is_the_real_one() {
        let default = crate::retry::RetryOn::default().to_string();
        assert!(include_str!("env.rs").contains(&format!("| `MESH_RETRY_ON` | `{default}` |")));
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("MESH_TIMEOT"), Some("MESH_TIMEOUT"));
        assert_eq!(closest("MESH_DNS_SERVER"), Some("MESH_DNS_SERVERS"));
        assert_eq!(closest("MESH_SOMETHING_ELSE_ENTIRELY"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
