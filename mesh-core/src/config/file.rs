//! Reading a [`MeshConfig`](super::MeshConfig) from YAML, TOML or JSON.
//!
//! A file holds mesh's own document, Istio's documents, or both. JSON and TOML files hold one
//! document; a YAML file may hold several, separated by `---`, of which at most one is mesh's
//! own. A document with a `kind` (or an `apiVersion`) is a Kubernetes document, read as
//! Istio's (see below); one without is mesh's own. Mesh's own document is applied first,
//! wherever it stands, then Istio's documents in order.
//!
//! # Mesh's own document
//!
//! It is read in two passes. Serde reads it into "raw" structs whose fields are all optional
//! and whose unknown fields are errors; `serde_path_to_error` supplies the path of any type
//! error. A second pass turns raw values (durations, names, addresses) into the model, naming
//! the path of any bad value, and [`MeshConfig::validate`](super::MeshConfig::validate)
//! checks the rules that span fields.
//!
//! The file's keys are camelCase; durations are strings in Istio's form (`500ms`, `1m30s`).
//! `loadBalancer`, `connectionPool`, `outlierDetection` and `retryBudget` take the shapes and
//! field names of Istio's DestinationRule (fields mesh does not implement are errors here);
//! `outlierDetection` also takes mesh's `successRate`. `rateLimit`, `concurrencyLimit`,
//! `hedge` and `retryBudget` may be `off`, so that a destination does not inherit the
//! defaults' setting:
//!
//! ```yaml
//! workload: {service: productpage, namespace: default}
//! discovery: {nameservers: ["10.96.0.10"], minTtl: 1s, maxTtl: 60s, nxdomain: {action: keep, grace: 60s}}
//! defaults:
//!   loadBalancer: LEAST_REQUEST      # or {simple: LEAST_REQUEST}, or {consistentHash: {...}};
//!                                    # PEAK_EWMA takes peakEwma: {decay, defaultRtt}
//!   timeout: 15s                     # 0s disables
//!   retries: {attempts: 2, retryOn: "5xx,connect-failure", budget: {percent: 20}}
//!   retryBudget: {percent: 20, minRetryConcurrency: 3}   # retries in flight (Istio's)
//!   rateLimit: {tokensPerFill: 100, fillInterval: 1s, maxTokens: 200}  # 429 past it;
//!                                    # tokensPerFill defaults to 1, maxTokens to tokensPerFill
//!   concurrencyLimit: 100            # requests in flight; 503 past it
//!   hedge: {percentile: p95}         # or 0.95; also maxExtraPercent, minPerSecond,
//!                                    # minDelay, window, minSamples
//! destinations:
//!   - host: reviews
//!     port: 9080
//!     retries: {attempts: 3}         # merged field by field with the defaults' retries
//!     loadBalancer: {consistentHash: {httpHeaderName: end-user, maglev: {tableSize: 65537}}}
//!     connectionPool: {tcp: {maxConnections: 100, connectTimeout: 2s}, http: {http2MaxRequests: 1000}}
//!     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s,
//!                        successRate: {requestVolume: 100, minimumHosts: 5, stdevFactor: 1.9}}
//!                                    # or successRate: {requestVolume: 100, minSuccessPercent: 95}
//!     hedge: off                     # not inherited from the defaults
//!     subsets:                       # each inherits the destination's policy, field by field
//!       - {name: v1, labels: {version: v1}}              # endpoints: DNS name reviews-v1
//!       - {name: v2, host: reviews-canary, timeout: 1s}  # or endpoints: ["10.0.0.7:9080"]
//!     tls: {mode: MUTUAL, clientCertificate: /etc/certs/cert.pem, privateKey: /etc/certs/key.pem,
//!           caCertificates: /etc/certs/ca.pem}   # Istio's trafficPolicy.tls; also in defaults
//! server:                            # the server stack
//!   rateLimit: {tokensPerFill: 1000, fillInterval: 1s}
//!   concurrencyLimit: 500
//!   propagateDeadline: true
//!   shutdown: {drain: 5s, grace: 30s}
//! security:
//!   certificates: {dir: /etc/certs, layout: istio, refresh: 5s}  # layout: istio (default),
//!                                    # spire or certManager; or {chain, key, roots} files
//!   rootNamespace: istio-system      # policies here apply to every workload
//!   trustDomainAliases: [old.example.org]
//!   numTrustedProxies: 0             # proxies appending to X-Forwarded-For (remote.ip)
//!   mtls: PERMISSIVE                 # the server's mode when no PeerAuthentication applies;
//!                                    # or {mode: STRICT}
//!   identityTemplate: "spiffe://{trust_domain}/ns/{namespace}/sa/{service}"
//!   outbound: {mode: REGISTRY_ONLY, allowedHosts: [api.example.com, "*.googleapis.com"]}
//! telemetry:
//!   metrics: true                    # Istio's standard metrics on both stacks
//!   clusterId: Kubernetes            # the *_cluster labels
//!   tracing: true                    # start traces for requests that carry none
//!   propagation: [tracecontext, b3multi]  # written on outbound calls, OTEL_PROPAGATORS' names:
//!                                    # tracecontext, b3 (single header), b3multi; [none] or []
//!   generateRequestId: true          # x-request-id for requests without one
//!   propagateHeaders: [end-user]     # carried from inbound requests to outbound calls
//!   propagateCookies: [user]
//!   accessLog: {format: text, path: /dev/stdout}   # both stacks; format text or json,
//!                                    # path - or /dev/stdout for standard output; or off
//!   clientAccessLog: {format: json, path: /var/log/mesh/client.log}  # overrides accessLog
//!   serverAccessLog: off
//! ```
//!
//! `workload.labels` adds pod labels for the selectors of security policies. A destination's
//! (or the defaults', or a subset's) `tls` takes the fields of Istio's `ClientTLSSettings`:
//! `mode` (DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL), `clientCertificate`, `privateKey`,
//! `caCertificates`, `subjectAltNames`, `sni` and `insecureSkipVerify`. MUTUAL needs a
//! certificate and key; SIMPLE and MUTUAL need `caCertificates` unless `insecureSkipVerify`
//! is true.
//!
//! # Istio's documents
//!
//! `networking.istio.io` VirtualService, DestinationRule, ServiceEntry and Sidecar (API
//! versions `v1`, `v1beta1` or `v1alpha3`), `security.istio.io` PeerAuthentication,
//! RequestAuthentication and AuthorizationPolicy (`v1` or `v1beta1`), and
//! `telemetry.istio.io` Telemetry (`v1` or `v1alpha1`). A VirtualService
//! becomes one of the config's `virtual_services`; a DestinationRule is laid over the
//! destination of the same host (and over, or into, one destination per port of its
//! `portLevelSettings`), its `tls` included. The security documents are kept in
//! [`MeshConfig::security`](super::MeshConfig::security) with their namespace and selector,
//! and [`MeshConfig::inbound`](super::MeshConfig::inbound) resolves which apply to the
//! workload. A ServiceEntry's `hosts` may be called under REGISTRY_ONLY; a Sidecar's
//! `outboundTrafficPolicy.mode` sets the outbound mode. A Telemetry's `accessLogging`
//! (provider `envoy`) turns access logs on (text, standard output) or off (`disabled: true`),
//! and its `tracing` turns tracing off with `randomSamplingPercentage: 0` or
//! `disableSpanReporting: true`. Invalid values are errors that name
//! the document and the path; fields mesh does not implement, and unknown fields, are
//! warnings in [`MeshConfig::warnings`](super::MeshConfig::warnings) and the document still
//! applies. Other kinds are ignored with a warning.
//!
//! ```
//! use mesh_core::config::{Format, LoadBalancer, MeshConfig};
//!
//! let text = r#"
//! workload: {service: productpage, namespace: bookinfo}
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - match: [{headers: {end-user: {exact: jason}}}]
//!     route: [{destination: {host: reviews, subset: v2}}]
//!     corsPolicy: {allowOrigins: [{exact: "*"}]}
//!   - route:
//!     - {destination: {host: reviews, subset: v1}, weight: 80}
//!     - {destination: {host: reviews, subset: v3}, weight: 20}
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: DestinationRule
//! metadata: {name: reviews}
//! spec:
//!   host: reviews
//!   trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
//!   subsets:
//!   - {name: v1, labels: {version: v1}}
//!   - {name: v2, labels: {version: v2}}
//!   - {name: v3, labels: {version: v3}}
//! "#;
//! let config = MeshConfig::from_str(text, Format::Yaml)?;
//! assert_eq!(config.virtual_services[0].http.len(), 2);
//! let reviews = &config.destinations[0];
//! assert_eq!(reviews.policy.load_balancer, LoadBalancer::RoundRobin);
//! assert_eq!(reviews.subsets.len(), 3);
//! assert_eq!(
//!     config.warnings[0].to_string(),
//!     "VirtualService reviews: spec.http[0].corsPolicy: CORS is not implemented; ignored"
//! );
//! # Ok::<(), mesh_core::ConfigError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_saphyr::MessageFormatter as _;

use super::builder::{DestinationBuilder, MeshConfigBuilder, PolicyOverrides, SubsetBuilder};
use super::istio::{
    self, policy,
    walk::{Node, Walker},
};
use super::values::{self, LbKind, NxAction, at};
use super::{
    AccessLogConfig, AccessLogFormat, AccessLogOutput, CertificateFiles, CertificateLayout,
    ConfigError, ConfigWarning, DiscoveryConfig, MeshConfig, NxDomainPolicy, SecurityConfig,
    ServerConfig, SubsetEndpoints, TelemetryConfig, Workload, telemetry,
};
use crate::hedge::HedgePolicy;
use crate::ratelimit::TokenBucketConfig;

/// A configuration file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML.
    Yaml,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl Format {
    /// The format a file's extension names (`.yaml`, `.yml`, `.toml`, `.json`, in any case).
    pub fn from_path(path: impl AsRef<Path>) -> Option<Format> {
        let ext = path.as_ref().extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
            Format::Json => "JSON",
        })
    }
}

impl MeshConfig {
    /// Reads a config file, choosing the format by its extension.
    ///
    /// Errors name the file as well as the field path and value.
    pub fn from_file(path: impl AsRef<Path>) -> Result<MeshConfig, ConfigError> {
        let path = path.as_ref();
        builder_from_file(path, MeshConfigBuilder::default())?
            .build()
            .map_err(|e| e.in_file(path))
    }

    /// Reads a config from text in the given format.
    pub fn from_str(text: &str, format: Format) -> Result<MeshConfig, ConfigError> {
        builder_from_str(text, format, MeshConfigBuilder::default())?.build()
    }
}

/// Lays a config file over `base`, so that more settings can be laid over it in turn.
pub(crate) fn builder_from_file(
    path: &Path,
    base: MeshConfigBuilder,
) -> Result<MeshConfigBuilder, ConfigError> {
    let format = Format::from_path(path).ok_or_else(|| ConfigError::UnknownFormat {
        file: path.to_owned(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_owned(),
        source,
    })?;
    builder_from_str(&text, format, base).map_err(|e| e.in_file(path))
}

/// Lays config text over `base`: mesh's own document first (whatever its place in the
/// file), then Istio's documents in order, so that a DestinationRule lays over the
/// destination of the same host.
pub(crate) fn builder_from_str(
    text: &str,
    format: Format,
    base: MeshConfigBuilder,
) -> Result<MeshConfigBuilder, ConfigError> {
    let mut builder = base;
    let mut mesh: Option<(usize, Box<RawMesh>)> = None;
    let mut kubernetes = Vec::new();
    for (i, document) in read_documents(text, format)?.into_iter().enumerate() {
        match document {
            Document::Mesh(raw) => {
                if let Some((first, _)) = &mesh {
                    return Err(ConfigError::invalid(
                        format!("documents[{i}]"),
                        "a document without kind",
                        format!(
                            "a file holds at most one mesh document (one without kind); documents[{first}] is one"
                        ),
                    ));
                }
                mesh = Some((i, raw));
            }
            Document::Kubernetes(value) => kubernetes.push((i, value)),
        }
    }
    if let Some((_, raw)) = mesh {
        raw.apply(&mut builder)?;
    }
    // As `kubectl apply`: a later document of the same kind, namespace and name replaces an
    // earlier one.
    let replaced = replaced_documents(&kubernetes);
    for (i, value) in kubernetes {
        if let Some(by) = replaced.get(&i) {
            builder.warnings.push(ConfigWarning {
                path: format!("documents[{i}]"),
                message: format!(
                    "replaced by documents[{by}], of the same kind, namespace and name"
                ),
            });
            continue;
        }
        istio::apply_document(&value, &format!("documents[{i}]"), &mut builder)?;
    }
    Ok(builder)
}

/// The documents a later one of the same kind, namespace and name replaces: index -> the
/// index of the last such document. Documents without a kind or name are left to validation.
fn replaced_documents(documents: &[(usize, serde_json::Value)]) -> HashMap<usize, usize> {
    let identity = |value: &serde_json::Value| {
        let kind = value.get("kind")?.as_str()?;
        let metadata = value.get("metadata")?;
        let name = metadata.get("name")?.as_str()?;
        let namespace = metadata
            .get("namespace")
            .and_then(|n| n.as_str())
            .unwrap_or("");
        Some((kind.to_owned(), namespace.to_owned(), name.to_owned()))
    };
    let mut last = HashMap::new();
    for (i, value) in documents {
        if let Some(id) = identity(value) {
            last.insert(id, *i);
        }
    }
    documents
        .iter()
        .filter_map(|(i, value)| {
            let by = *last.get(&identity(value)?)?;
            (by != *i).then_some((*i, by))
        })
        .collect()
}

/// One document of a configuration file.
enum Document {
    /// Mesh's own settings (a document without `kind` or `apiVersion`).
    Mesh(Box<RawMesh>),
    /// A Kubernetes-style document (Istio's VirtualService, DestinationRule, ...).
    Kubernetes(serde_json::Value),
}

/// The documents of a file: YAML may hold several, separated by `---`; JSON and TOML hold one.
fn read_documents(text: &str, format: Format) -> Result<Vec<Document>, ConfigError> {
    match format {
        Format::Yaml => {
            let mut documents = Vec::new();
            for piece in yaml_documents(text) {
                let value: serde_json::Value = deserialize(&piece, format)?;
                if !value.is_null() {
                    documents.push(document(&piece, format, value)?);
                }
            }
            Ok(documents)
        }
        Format::Json | Format::Toml => {
            let value: serde_json::Value = deserialize(text, format)?;
            Ok(vec![document(text, format, value)?])
        }
    }
}

/// Tells a document by its `kind`; mesh's own is read again into its raw structs, so that
/// errors keep the parser's line numbers and unknown fields are errors.
fn document(text: &str, format: Format, value: serde_json::Value) -> Result<Document, ConfigError> {
    if istio::is_kubernetes(&value) {
        Ok(Document::Kubernetes(value))
    } else {
        deserialize(text, format).map(|raw| Document::Mesh(Box::new(raw)))
    }
}

/// Splits YAML text into its documents, each preceded by as many empty lines as precede it
/// in `text`, so that line numbers in errors are those of the whole text.
///
/// A document marker (`---` or `...` at the start of a line, followed by a space or the
/// line's end) can never be part of a YAML value, so cutting at markers is exact.
fn yaml_documents(text: &str) -> Vec<String> {
    fn marker(line: &str, m: &str) -> bool {
        line.strip_prefix(m)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    }
    let piece = |line: usize, start: usize, end: usize| {
        let mut s = "\n".repeat(line);
        s.push_str(text.get(start..end).unwrap_or_default());
        s
    };
    let mut pieces = Vec::new();
    let (mut start, mut start_line) = (0, 0);
    // Whether the current piece has begun a document (directives and comments do not).
    let mut begun = false;
    let mut offset = 0;
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if marker(bare, "---") {
            if begun {
                pieces.push(piece(start_line, start, offset));
                (start, start_line) = (offset, line_no);
            }
            begun = true;
        } else if marker(bare, "...") {
            let end = offset + line.len();
            pieces.push(piece(start_line, start, end));
            (start, start_line) = (end, line_no + 1);
            begun = false;
        } else if !begun {
            let t = bare.trim_start();
            begun = !(t.is_empty() || t.starts_with('#') || bare.starts_with('%'));
        }
        offset += line.len();
    }
    if start < text.len() {
        pieces.push(piece(start_line, start, text.len()));
    }
    pieces
}

/// Reads `text` into `T`, naming the path (and line, where the format gives one) of errors.
fn deserialize<T: DeserializeOwned>(text: &str, format: Format) -> Result<T, ConfigError> {
    match format {
        Format::Yaml => {
            let mut options = serde_saphyr::Options::default();
            options.with_snippet = false;
            options.strict_booleans = true;
            // `.nan` and `.inf` where any type goes (a generic tree, a duration) are read as
            // the text they are, so that the error quotes them; f64 fields still take them.
            options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
            let mut path = String::new();
            serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
                serde_path_to_error::deserialize(de).map_err(|e| {
                    path = render_path(e.path());
                    e.into_inner()
                })
            })
            .map_err(|e| {
                let e = e.without_snippet();
                let mut message = serde_saphyr::DefaultMessageFormatter
                    .format_message(e)
                    .into_owned();
                let (line, column) = match e.location() {
                    Some(l) => (Some(l.line()), Some(l.column())),
                    None => (None, None),
                };
                // saphyr's scalar errors ("invalid i64") do not quote the value; quote it
                // from the text.
                if !path.is_empty()
                    && message.starts_with("invalid ")
                    && let Some(found) = yaml_scalar_at(text, line, column)
                    && !message.contains(found)
                {
                    message = format!("{message}: found {found:?}");
                }
                classify(format, path, &message, line, column)
            })
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let value = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| json_error(render_path(e.path()), e.inner()))?;
            de.end().map_err(|e| json_error(String::new(), &e))?;
            Ok(value)
        }
        Format::Toml => {
            let de = toml::de::Deserializer::parse(text)
                .map_err(|e| toml_error(text, String::new(), &e))?;
            serde_path_to_error::deserialize(de)
                .map_err(|e| toml_error(text, render_path(e.path()), e.inner()))
        }
    }
}

/// The scalar that starts at the 1-based `line` and `column` of `text`, up to a flow
/// delimiter or a comment.
fn yaml_scalar_at(text: &str, line: Option<u64>, column: Option<u64>) -> Option<&str> {
    let line = text
        .lines()
        .nth(usize::try_from(line?.checked_sub(1)?).ok()?)?;
    let column = usize::try_from(column?.checked_sub(1)?).ok()?;
    let start = line.char_indices().nth(column)?.0;
    let rest = line.get(start..)?;
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    let scalar = rest.get(..end)?.trim();
    let plain = !scalar.is_empty() && !scalar.contains(": ") && !scalar.starts_with(['[', '{']);
    plain.then_some(scalar)
}

fn json_error(path: String, e: &serde_json::Error) -> ConfigError {
    let (line, column) = (e.line() as u64, e.column() as u64);
    let text = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    let known = |n: u64| (n > 0).then_some(n);
    classify(Format::Json, path, message, known(line), known(column))
}

fn toml_error(text: &str, path: String, e: &toml::de::Error) -> ConfigError {
    let (line, column) = match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
            (Some(line as u64), Some(column as u64))
        }
        None => (None, None),
    };
    classify(Format::Toml, path, e.message().trim_end(), line, column)
}

/// Turns a parser's error into an unknown-field error or a parse error.
fn classify(
    format: Format,
    path: String,
    message: &str,
    line: Option<u64>,
    column: Option<u64>,
) -> ConfigError {
    if let Some((field, tail)) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
    {
        let expected = tail
            .trim_start_matches(',')
            .trim()
            .strip_prefix("expected ")
            .unwrap_or("")
            .to_owned();
        let path = if path == field || path.ends_with(&format!(".{field}")) {
            path
        } else if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return ConfigError::UnknownField {
            path,
            field: field.to_owned(),
            expected,
            line,
        };
    }
    ConfigError::Parse {
        format,
        path,
        message: message.to_owned(),
        line,
        column,
    }
}

/// Renders a serde path as `destinations[1].retries.attempts`, skipping unknown segments.
fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// A scalar read as text: a string, or a number as written (so that `timeout: 5` reports a
/// missing unit rather than a type error).
#[derive(Debug)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

/// Mesh's own document.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMesh {
    workload: Option<RawWorkload>,
    discovery: Option<RawDiscovery>,
    defaults: Option<RawPolicy>,
    destinations: Option<Vec<RawDestination>>,
    server: Option<RawServer>,
    security: Option<RawSecurity>,
    telemetry: Option<RawTelemetry>,
}

/// The `telemetry` section.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawTelemetry {
    metrics: Option<bool>,
    cluster_id: Option<String>,
    tracing: Option<bool>,
    propagation: Option<Vec<String>>,
    generate_request_id: Option<bool>,
    propagate_headers: Option<Vec<String>>,
    propagate_cookies: Option<Vec<String>>,
    access_log: Option<Switch<RawAccessLog>>,
    client_access_log: Option<Switch<RawAccessLog>>,
    server_access_log: Option<Switch<RawAccessLog>>,
}

/// An access log: `format` (`text` by default) and `path` (`/dev/stdout` by default).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAccessLog {
    format: Option<String>,
    path: Option<String>,
}

/// The `security` section.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSecurity {
    certificates: Option<RawCertificates>,
    root_namespace: Option<String>,
    trust_domain_aliases: Option<Vec<String>>,
    num_trusted_proxies: Option<u32>,
    /// `STRICT`, or PeerAuthentication's shape `{mode: STRICT}`.
    mtls: Option<serde_json::Value>,
    identity_template: Option<String>,
    outbound: Option<RawOutbound>,
}

/// `security.certificates`: a directory of a known layout, or three files.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCertificates {
    dir: Option<String>,
    layout: Option<String>,
    chain: Option<String>,
    key: Option<String>,
    roots: Option<String>,
    refresh: Option<Text>,
}

/// `security.outbound`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawOutbound {
    mode: Option<String>,
    allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawServer {
    rate_limit: Option<Switch<RawTokenBucket>>,
    concurrency_limit: Option<Text>,
    propagate_deadline: Option<bool>,
    shutdown: Option<RawShutdown>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawShutdown {
    drain: Option<Text>,
    grace: Option<Text>,
}

/// A token bucket: `fillInterval` is required, `tokensPerFill` defaults to 1 (as in Envoy)
/// and `maxTokens` to `tokensPerFill` (Envoy requires it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawTokenBucket {
    max_tokens: Option<i64>,
    tokens_per_fill: Option<i64>,
    fill_interval: Option<Text>,
}

/// A hedging policy; fields left out keep [`HedgePolicy::default`]'s values.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawHedge {
    percentile: Option<Text>,
    max_extra_percent: Option<f64>,
    min_per_second: Option<i64>,
    min_delay: Option<Text>,
    window: Option<Text>,
    min_samples: Option<i64>,
}

/// An optional setting: its fields, or `off` to turn off what would be inherited.
#[derive(Debug)]
enum Switch<T> {
    Off,
    On(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Switch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SwitchVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for SwitchVisitor<T> {
            type Value = Switch<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a map, or \"{}\"", values::OFF)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Switch<T>, E> {
                if v == values::OFF {
                    Ok(Switch::Off)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Switch<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Switch::On)
            }
        }
        deserializer.deserialize_any(SwitchVisitor(std::marker::PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawWorkload {
    service: Option<String>,
    namespace: Option<String>,
    cluster_domain: Option<String>,
    trust_domain: Option<String>,
    service_account: Option<String>,
    pod_name: Option<String>,
    version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDiscovery {
    nameservers: Option<Vec<String>>,
    min_ttl: Option<Text>,
    max_ttl: Option<Text>,
    jitter: Option<f64>,
    timeout: Option<Text>,
    nxdomain: Option<RawNxDomain>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawNxDomain {
    action: Option<String>,
    grace: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPolicy {
    load_balancer: Option<serde_json::Value>,
    peak_ewma: Option<RawPeakEwma>,
    timeout: Option<Text>,
    connect_timeout: Option<Text>,
    protocol: Option<String>,
    retries: Option<RawRetries>,
    connection_pool: Option<serde_json::Value>,
    outlier_detection: Option<serde_json::Value>,
    retry_budget: Option<serde_json::Value>,
    rate_limit: Option<Switch<RawTokenBucket>>,
    concurrency_limit: Option<Text>,
    hedge: Option<Switch<RawHedge>>,
    tls: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPeakEwma {
    decay: Option<Text>,
    default_rtt: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRetries {
    attempts: Option<i64>,
    per_try_timeout: Option<Text>,
    retry_on: Option<Text>,
    retry_non_idempotent: Option<bool>,
    backoff: Option<RawBackoff>,
    budget: Option<RawBudget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBackoff {
    base_interval: Option<Text>,
    max_interval: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBudget {
    percent: Option<f64>,
    min_retries_per_second: Option<i64>,
    ttl: Option<Text>,
}

/// A destination: its own keys plus every [`RawPolicy`] key (serde cannot flatten a struct
/// that denies unknown fields).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDestination {
    host: Option<String>,
    port: Option<i64>,
    endpoints: Option<Vec<String>>,
    subsets: Option<Vec<RawSubset>>,
    load_balancer: Option<serde_json::Value>,
    peak_ewma: Option<RawPeakEwma>,
    timeout: Option<Text>,
    connect_timeout: Option<Text>,
    protocol: Option<String>,
    retries: Option<RawRetries>,
    connection_pool: Option<serde_json::Value>,
    outlier_detection: Option<serde_json::Value>,
    retry_budget: Option<serde_json::Value>,
    rate_limit: Option<Switch<RawTokenBucket>>,
    concurrency_limit: Option<Text>,
    hedge: Option<Switch<RawHedge>>,
    tls: Option<serde_json::Value>,
}

/// A subset of a destination: its own keys plus every [`RawPolicy`] key.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSubset {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    host: Option<String>,
    endpoints: Option<Vec<String>>,
    load_balancer: Option<serde_json::Value>,
    peak_ewma: Option<RawPeakEwma>,
    timeout: Option<Text>,
    connect_timeout: Option<Text>,
    protocol: Option<String>,
    retries: Option<RawRetries>,
    connection_pool: Option<serde_json::Value>,
    outlier_detection: Option<serde_json::Value>,
    retry_budget: Option<serde_json::Value>,
    rate_limit: Option<Switch<RawTokenBucket>>,
    concurrency_limit: Option<Text>,
    hedge: Option<Switch<RawHedge>>,
    tls: Option<serde_json::Value>,
}

impl RawMesh {
    fn apply(self, b: &mut MeshConfigBuilder) -> Result<(), ConfigError> {
        if let Some(w) = self.workload {
            w.apply(&mut b.workload);
        }
        if let Some(d) = self.discovery {
            d.apply(&mut b.discovery)?;
        }
        if let Some(p) = self.defaults {
            b.defaults = p.overrides("defaults", LbKind::of(&b.defaults_base.load_balancer))?;
        }
        let inherited = LbKind::of(&b.resolved_defaults().load_balancer);
        for (i, d) in self
            .destinations
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let destination = d.into_builder(&format!("destinations[{i}]"), inherited)?;
            b.destinations.push(destination);
        }
        if let Some(s) = self.server {
            s.apply(&mut b.server)?;
        }
        if let Some(s) = self.security {
            s.apply(&mut b.security)?;
        }
        if let Some(t) = self.telemetry {
            t.apply(&mut b.telemetry)?;
        }
        Ok(())
    }
}

impl RawTelemetry {
    fn apply(self, t: &mut TelemetryConfig) -> Result<(), ConfigError> {
        if let Some(m) = self.metrics {
            t.metrics = m;
        }
        if let Some(id) = self.cluster_id {
            t.cluster_id = id;
        }
        if let Some(on) = self.tracing {
            t.tracing = on;
        }
        if let Some(names) = self.propagation {
            for (i, name) in names.iter().enumerate() {
                if name != "none" {
                    at(
                        &format!("telemetry.propagation[{i}]"),
                        name,
                        telemetry::propagator,
                    )?;
                }
            }
            let (set, _) = telemetry::propagators(names.iter().map(String::as_str), false)
                .map_err(|r| ConfigError::invalid("telemetry.propagation", names.join(","), r))?;
            t.propagation = set;
        }
        if let Some(g) = self.generate_request_id {
            t.generate_request_id = g;
        }
        if let Some(headers) = self.propagate_headers {
            t.propagate_headers = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        }
        if let Some(cookies) = self.propagate_cookies {
            t.propagate_cookies = cookies;
        }
        let both = match self.access_log {
            Some(log) => Some(log.read("telemetry.accessLog", RawAccessLog::read)?),
            None => None,
        };
        for (key, raw, slot) in [
            (
                "telemetry.clientAccessLog",
                self.client_access_log,
                &mut t.client_access_log,
            ),
            (
                "telemetry.serverAccessLog",
                self.server_access_log,
                &mut t.server_access_log,
            ),
        ] {
            match raw {
                Some(log) => *slot = log.read(key, RawAccessLog::read)?,
                None => {
                    if let Some(log) = &both {
                        slot.clone_from(log);
                    }
                }
            }
        }
        Ok(())
    }
}

impl RawAccessLog {
    fn read(self, prefix: &str) -> Result<AccessLogConfig, ConfigError> {
        let format = match &self.format {
            Some(f) => at(&format!("{prefix}.format"), f, telemetry::access_log_format)?,
            None => AccessLogFormat::Text,
        };
        let output = match &self.path {
            Some(p) if p.trim().is_empty() => {
                return Err(ConfigError::invalid(
                    format!("{prefix}.path"),
                    p,
                    "must not be empty (use /dev/stdout or - for standard output)",
                ));
            }
            Some(p) => AccessLogOutput::from_path(p),
            None => AccessLogOutput::Stdout,
        };
        Ok(AccessLogConfig { format, output })
    }
}

impl RawSecurity {
    fn apply(self, s: &mut SecurityConfig) -> Result<(), ConfigError> {
        if let Some(c) = self.certificates {
            s.certificates = Some(c.read("security.certificates")?);
        }
        if let Some(ns) = self.root_namespace {
            s.root_namespace = ns;
        }
        if let Some(aliases) = self.trust_domain_aliases {
            s.trust_domain_aliases = aliases;
        }
        if let Some(n) = self.num_trusted_proxies {
            s.num_trusted_proxies = n;
        }
        if let Some(mtls) = &self.mtls {
            let path = "security.mtls";
            let mut w = Walker::strict();
            let node = Node::new(path, mtls);
            let (name, at_path) = match mtls {
                serde_json::Value::String(name) => (name.as_str(), path.to_owned()),
                _ => {
                    let mut o = node.obj(&w)?;
                    let mode = o.required(&w, "mode")?;
                    let name = mode.str(&w)?;
                    o.finish(&mut w)?;
                    (name, mode.path)
                }
            };
            s.default_mtls = at(&at_path, name, values::mtls_mode)?;
        }
        if let Some(t) = self.identity_template {
            s.identity_template = t;
        }
        if let Some(o) = self.outbound {
            if let Some(mode) = o.mode {
                s.outbound.mode = at("security.outbound.mode", &mode, values::outbound_mode)?;
            }
            if let Some(hosts) = o.allowed_hosts {
                s.outbound.allowed_hosts = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
            }
        }
        Ok(())
    }
}

impl RawCertificates {
    fn read(self, prefix: &str) -> Result<CertificateFiles, ConfigError> {
        let explicit = [
            ("chain", &self.chain),
            ("key", &self.key),
            ("roots", &self.roots),
        ];
        let mut files = match &self.dir {
            Some(dir) => {
                if let Some((key, Some(v))) = explicit.iter().find(|(_, v)| v.is_some()) {
                    return Err(ConfigError::invalid(
                        format!("{prefix}.{key}"),
                        v,
                        "set either dir (with layout) or chain, key and roots, not both",
                    ));
                }
                let layout = match &self.layout {
                    Some(name) => at(&format!("{prefix}.layout"), name, values::layout)?,
                    None => CertificateLayout::Istio,
                };
                CertificateFiles::in_dir(dir, layout)
            }
            None => {
                if let Some(layout) = &self.layout {
                    return Err(ConfigError::invalid(
                        format!("{prefix}.layout"),
                        layout,
                        "applies only with dir",
                    ));
                }
                if explicit.iter().all(|(_, v)| v.is_none()) {
                    return Err(ConfigError::invalid(
                        prefix,
                        "{}",
                        "set dir (with an optional layout), or chain, key and roots",
                    ));
                }
                if let Some((key, _)) = explicit.iter().find(|(_, v)| v.is_none()) {
                    return Err(ConfigError::invalid(
                        format!("{prefix}.{key}"),
                        "",
                        "is required with chain, key and roots (or set dir instead)",
                    ));
                }
                CertificateFiles {
                    chain: self.chain.unwrap_or_default().into(),
                    key: self.key.unwrap_or_default().into(),
                    roots: self.roots.unwrap_or_default().into(),
                    refresh: CertificateFiles::DEFAULT_REFRESH,
                }
            }
        };
        if let Some(Text(t)) = self.refresh {
            files.refresh = at(&format!("{prefix}.refresh"), &t, values::duration)?;
        }
        Ok(files)
    }
}

impl RawServer {
    fn apply(self, s: &mut ServerConfig) -> Result<(), ConfigError> {
        if let Some(r) = self.rate_limit {
            s.rate_limit = r.read("server.rateLimit", RawTokenBucket::read)?;
        }
        if let Some(Text(t)) = self.concurrency_limit {
            s.concurrency_limit = at("server.concurrencyLimit", &t, values::limit)?;
        }
        if let Some(p) = self.propagate_deadline {
            s.propagate_deadline = p;
        }
        if let Some(shutdown) = self.shutdown {
            if let Some(Text(t)) = shutdown.drain {
                s.shutdown.drain = at("server.shutdown.drain", &t, values::duration)?;
            }
            if let Some(Text(t)) = shutdown.grace {
                s.shutdown.grace = at("server.shutdown.grace", &t, values::duration)?;
            }
        }
        Ok(())
    }
}

impl<T> Switch<T> {
    /// The setting, read by `read` at `path`; `None` for `off`.
    fn read<U>(
        self,
        path: &str,
        read: impl FnOnce(T, &str) -> Result<U, ConfigError>,
    ) -> Result<Option<U>, ConfigError> {
        match self {
            Switch::Off => Ok(None),
            Switch::On(raw) => read(raw, path).map(Some),
        }
    }
}

/// A count written in a file, at `path`.
fn file_count(path: &str, n: i64) -> Result<u32, ConfigError> {
    values::count(n).map_err(|r| ConfigError::invalid(path, n, r))
}

impl RawTokenBucket {
    fn read(self, prefix: &str) -> Result<TokenBucketConfig, ConfigError> {
        let fill_interval = match self.fill_interval {
            Some(Text(t)) => at(&format!("{prefix}.fillInterval"), &t, values::duration)?,
            None => {
                return Err(ConfigError::invalid(
                    format!("{prefix}.fillInterval"),
                    "",
                    "is required",
                ));
            }
        };
        let tokens_per_fill = match self.tokens_per_fill {
            Some(n) => file_count(&format!("{prefix}.tokensPerFill"), n)?,
            None => 1,
        };
        let max_tokens = match self.max_tokens {
            Some(n) => file_count(&format!("{prefix}.maxTokens"), n)?,
            // At least 1, so that a zero tokensPerFill is the error reported.
            None => tokens_per_fill.max(1),
        };
        Ok(TokenBucketConfig {
            max_tokens,
            tokens_per_fill,
            fill_interval,
        })
    }
}

impl RawHedge {
    fn read(self, prefix: &str) -> Result<HedgePolicy, ConfigError> {
        let mut h = HedgePolicy::default();
        if let Some(Text(t)) = self.percentile {
            h.percentile = at(&format!("{prefix}.percentile"), &t, values::percentile)?;
        }
        if let Some(p) = self.max_extra_percent {
            h.max_extra_percent = p;
        }
        if let Some(n) = self.min_per_second {
            h.min_per_second = file_count(&format!("{prefix}.minPerSecond"), n)?;
        }
        if let Some(Text(t)) = self.min_delay {
            h.min_delay = at(&format!("{prefix}.minDelay"), &t, values::duration)?;
        }
        if let Some(Text(t)) = self.window {
            h.window = at(&format!("{prefix}.window"), &t, values::duration)?;
        }
        if let Some(n) = self.min_samples {
            h.min_samples = u64::try_from(n).map_err(|_| {
                ConfigError::invalid(
                    format!("{prefix}.minSamples"),
                    n,
                    format!("must be between 0 and {}", u64::MAX),
                )
            })?;
        }
        Ok(h)
    }
}

impl RawWorkload {
    fn apply(self, w: &mut Workload) {
        let set = |field: &mut String, value: Option<String>| {
            if let Some(v) = value {
                *field = v;
            }
        };
        set(&mut w.service, self.service);
        set(&mut w.namespace, self.namespace);
        set(&mut w.cluster_domain, self.cluster_domain);
        set(&mut w.trust_domain, self.trust_domain);
        set(&mut w.service_account, self.service_account);
        if self.pod_name.is_some() {
            w.pod_name = self.pod_name;
        }
        if self.version.is_some() {
            w.version = self.version;
        }
        if let Some(labels) = self.labels {
            w.labels = labels;
        }
    }
}

impl RawDiscovery {
    fn apply(self, d: &mut DiscoveryConfig) -> Result<(), ConfigError> {
        if let Some(servers) = self.nameservers {
            d.nameservers = servers
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    at(
                        &format!("discovery.nameservers[{i}]"),
                        s,
                        values::nameserver,
                    )
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(Text(t)) = self.min_ttl {
            d.min_ttl = at("discovery.minTtl", &t, values::duration)?;
        }
        if let Some(Text(t)) = self.max_ttl {
            d.max_ttl = at("discovery.maxTtl", &t, values::duration)?;
        }
        if let Some(jitter) = self.jitter {
            d.jitter = jitter;
        }
        if let Some(Text(t)) = self.timeout {
            d.timeout = at("discovery.timeout", &t, values::duration)?;
        }
        if let Some(nx) = self.nxdomain {
            let action = match &nx.action {
                Some(a) => at("discovery.nxdomain.action", a, values::nxdomain_action)?,
                None => NxAction::Keep,
            };
            let grace = match &nx.grace {
                Some(Text(g)) => Some(at("discovery.nxdomain.grace", g, values::duration)?),
                None => None,
            };
            d.nxdomain = nxdomain_policy(action, grace, &d.nxdomain, || {
                let g = nx.grace.as_ref().map_or("", |Text(g)| g.as_str());
                ConfigError::invalid(
                    "discovery.nxdomain.grace",
                    g,
                    "applies only when discovery.nxdomain.action is keep",
                )
            })?;
        }
        Ok(())
    }
}

/// The NXDOMAIN policy for `action` and an optional `grace`, keeping `current`'s grace when
/// none is given; `grace_with_drop` is the error for a grace given with `drop`.
pub(crate) fn nxdomain_policy(
    action: NxAction,
    grace: Option<std::time::Duration>,
    current: &NxDomainPolicy,
    grace_with_drop: impl FnOnce() -> ConfigError,
) -> Result<NxDomainPolicy, ConfigError> {
    match (action, grace) {
        (NxAction::Drop, Some(_)) => Err(grace_with_drop()),
        (NxAction::Drop, None) => Ok(NxDomainPolicy::Drop),
        (NxAction::Keep, Some(grace)) => Ok(NxDomainPolicy::Keep { grace }),
        (NxAction::Keep, None) => Ok(match current {
            NxDomainPolicy::Keep { grace } => NxDomainPolicy::Keep { grace: *grace },
            NxDomainPolicy::Drop => NxDomainPolicy::default(),
        }),
    }
}

impl RawPolicy {
    /// The fields this policy sets; `inherited` is the balancer used when it sets none.
    fn overrides(self, prefix: &str, inherited: LbKind) -> Result<PolicyOverrides, ConfigError> {
        let mut o = PolicyOverrides::default();
        let mut w = Walker::strict();
        if let Some(lb) = &self.load_balancer {
            let node = Node::new(format!("{prefix}.loadBalancer"), lb);
            if let Some(setting) = policy::load_balancer(node, &mut w)? {
                setting.apply(&mut o);
            }
        }
        if let Some(pool) = &self.connection_pool {
            let node = Node::new(format!("{prefix}.connectionPool"), pool);
            policy::connection_pool(node, &mut w)?.apply(&mut o);
        }
        if let Some(outlier) = &self.outlier_detection {
            let node = Node::new(format!("{prefix}.outlierDetection"), outlier);
            o.outlier_detection = Some(Some(policy::outlier_detection(node, &mut w)?));
        }
        if let Some(ewma) = self.peak_ewma {
            let kind = o.load_balancer.unwrap_or(inherited);
            if kind != LbKind::PeakEwma {
                let mut shown = Vec::new();
                if let Some(Text(d)) = &ewma.decay {
                    shown.push(format!("decay: {d}"));
                }
                if let Some(Text(r)) = &ewma.default_rtt {
                    shown.push(format!("defaultRtt: {r}"));
                }
                return Err(ConfigError::invalid(
                    format!("{prefix}.peakEwma"),
                    format!("{{{}}}", shown.join(", ")),
                    "applies only when loadBalancer is PEAK_EWMA",
                ));
            }
            if let Some(Text(d)) = ewma.decay {
                o.peak_ewma_decay = Some(at(
                    &format!("{prefix}.peakEwma.decay"),
                    &d,
                    values::duration,
                )?);
            }
            if let Some(Text(r)) = ewma.default_rtt {
                o.peak_ewma_default_rtt = Some(at(
                    &format!("{prefix}.peakEwma.defaultRtt"),
                    &r,
                    values::duration,
                )?);
            }
        }
        if let Some(Text(t)) = self.timeout {
            o.timeout = Some(at(&format!("{prefix}.timeout"), &t, values::timeout)?);
        }
        if let Some(Text(t)) = self.connect_timeout {
            o.connect_timeout = Some(at(
                &format!("{prefix}.connectTimeout"),
                &t,
                values::duration,
            )?);
        }
        if let Some(p) = self.protocol {
            o.protocol = Some(at(&format!("{prefix}.protocol"), &p, values::protocol)?);
        }
        if let Some(r) = self.retries {
            r.apply(&format!("{prefix}.retries"), &mut o)?;
        }
        if let Some(budget) = &self.retry_budget {
            let path = format!("{prefix}.retryBudget");
            o.retry_concurrency_budget = Some(if budget.as_str() == Some(values::OFF) {
                None
            } else {
                Some(policy::retry_budget(Node::new(path, budget), &mut w)?)
            });
        }
        if let Some(r) = self.rate_limit {
            o.rate_limit = Some(r.read(&format!("{prefix}.rateLimit"), RawTokenBucket::read)?);
        }
        if let Some(Text(t)) = self.concurrency_limit {
            let path = format!("{prefix}.concurrencyLimit");
            o.concurrency_limit = Some(at(&path, &t, values::limit)?);
        }
        if let Some(h) = self.hedge {
            o.hedge = Some(h.read(&format!("{prefix}.hedge"), RawHedge::read)?);
        }
        if let Some(tls) = &self.tls {
            let node = Node::new(format!("{prefix}.tls"), tls);
            o.tls = Some(Some(policy::client_tls(node, &mut w)?));
        }
        Ok(o)
    }
}

impl RawRetries {
    fn apply(self, prefix: &str, o: &mut PolicyOverrides) -> Result<(), ConfigError> {
        if let Some(n) = self.attempts {
            let path = format!("{prefix}.attempts");
            o.attempts = Some(values::attempts(n).map_err(|r| ConfigError::invalid(path, n, r))?);
        }
        if let Some(Text(t)) = self.per_try_timeout {
            o.per_try_timeout = Some(at(&format!("{prefix}.perTryTimeout"), &t, values::timeout)?);
        }
        if let Some(Text(t)) = self.retry_on {
            o.retry_on = Some(at(&format!("{prefix}.retryOn"), &t, values::retry_on)?);
        }
        if let Some(b) = self.retry_non_idempotent {
            o.retry_non_idempotent = Some(b);
        }
        if let Some(backoff) = self.backoff {
            if let Some(Text(t)) = backoff.base_interval {
                let path = format!("{prefix}.backoff.baseInterval");
                o.backoff_base = Some(at(&path, &t, values::duration)?);
            }
            if let Some(Text(t)) = backoff.max_interval {
                let path = format!("{prefix}.backoff.maxInterval");
                o.backoff_max = Some(at(&path, &t, values::duration)?);
            }
        }
        if let Some(budget) = self.budget {
            if let Some(percent) = budget.percent {
                o.budget_ratio = Some(percent / 100.0);
            }
            if let Some(n) = budget.min_retries_per_second {
                let path = format!("{prefix}.budget.minRetriesPerSecond");
                o.budget_min_per_second =
                    Some(values::count(n).map_err(|r| ConfigError::invalid(path, n, r))?);
            }
            if let Some(Text(t)) = budget.ttl {
                o.budget_window = Some(at(&format!("{prefix}.budget.ttl"), &t, values::duration)?);
            }
        }
        Ok(())
    }
}

impl RawDestination {
    fn into_builder(
        self,
        prefix: &str,
        inherited: LbKind,
    ) -> Result<DestinationBuilder, ConfigError> {
        let mut d = DestinationBuilder::new(self.host.unwrap_or_default());
        if let Some(n) = self.port {
            let path = format!("{prefix}.port");
            d.port = Some(values::port(n).map_err(|r| ConfigError::invalid(path, n, r))?);
        }
        if let Some(endpoints) = self.endpoints {
            d.endpoints = Some(
                endpoints
                    .iter()
                    .enumerate()
                    .map(|(i, s)| at(&format!("{prefix}.endpoints[{i}]"), s, values::endpoint))
                    .collect::<Result<_, _>>()?,
            );
        }
        let policy = RawPolicy {
            load_balancer: self.load_balancer,
            peak_ewma: self.peak_ewma,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            protocol: self.protocol,
            retries: self.retries,
            connection_pool: self.connection_pool,
            outlier_detection: self.outlier_detection,
            retry_budget: self.retry_budget,
            rate_limit: self.rate_limit,
            concurrency_limit: self.concurrency_limit,
            hedge: self.hedge,
            tls: self.tls,
        };
        d.policy = policy.overrides(prefix, inherited)?;
        let own = d.policy.load_balancer.unwrap_or(inherited);
        for (i, s) in self.subsets.unwrap_or_default().into_iter().enumerate() {
            d.subsets
                .push(s.into_builder(&format!("{prefix}.subsets[{i}]"), own)?);
        }
        Ok(d)
    }
}

impl RawSubset {
    fn into_builder(self, prefix: &str, inherited: LbKind) -> Result<SubsetBuilder, ConfigError> {
        let mut s = SubsetBuilder::new(self.name.unwrap_or_default());
        s.labels = self.labels.unwrap_or_default();
        s.endpoints = match (self.host, self.endpoints) {
            (Some(_), Some(endpoints)) => {
                return Err(ConfigError::invalid(
                    format!("{prefix}.endpoints"),
                    format!("[{}]", endpoints.join(", ")),
                    "set either host or endpoints, not both",
                ));
            }
            (Some(host), None) => Some(SubsetEndpoints::Host(host)),
            (None, Some(endpoints)) => Some(SubsetEndpoints::Static(
                endpoints
                    .iter()
                    .enumerate()
                    .map(|(i, e)| at(&format!("{prefix}.endpoints[{i}]"), e, values::endpoint))
                    .collect::<Result<_, _>>()?,
            )),
            (None, None) => None,
        };
        let policy = RawPolicy {
            load_balancer: self.load_balancer,
            peak_ewma: self.peak_ewma,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            protocol: self.protocol,
            retries: self.retries,
            connection_pool: self.connection_pool,
            outlier_detection: self.outlier_detection,
            retry_budget: self.retry_budget,
            rate_limit: self.rate_limit,
            concurrency_limit: self.concurrency_limit,
            hedge: self.hedge,
            tls: self.tls,
        };
        s.policy = policy.overrides(prefix, inherited)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_keep_their_lines() {
        let text =
            "%YAML 1.2\n---\na: 1\n--- # second\nb: 2\n...\n# a comment\nc: 3\n---\n---   \n";
        let pieces = yaml_documents(text);
        assert_eq!(
            pieces,
            [
                "%YAML 1.2\n---\na: 1\n",
                "\n\n\n--- # second\nb: 2\n...\n",
                "\n\n\n\n\n\n# a comment\nc: 3\n",
                "\n\n\n\n\n\n\n\n---\n",
                "\n\n\n\n\n\n\n\n\n---   \n",
            ]
        );
        // Markers only count at the start of a line, followed by a space or the end.
        assert_eq!(
            yaml_documents("a: ---\n ---\nb: '---x'\n---x: 1\n").len(),
            1
        );
        assert!(yaml_documents("").is_empty());
        assert_eq!(yaml_documents("a: 1").len(), 1);
        assert_eq!(yaml_documents("a: 1\r\n---\r\nb: 2\r\n").len(), 2);
    }
}
