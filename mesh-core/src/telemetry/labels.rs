//! Istio's standard metrics: their names, histogram buckets and label set, in Istio's order,
//! so Istio's Grafana dashboards and Kiali read mesh's metrics unchanged.

use std::borrow::Cow;

use super::peer_metadata::{PeerMetadata, UNKNOWN};

/// HTTP/gRPC request count.
pub const ISTIO_REQUESTS_TOTAL: &str = "istio_requests_total";
/// HTTP/gRPC request duration histogram, milliseconds.
pub const ISTIO_REQUEST_DURATION: &str = "istio_request_duration_milliseconds";
/// HTTP/gRPC request body size histogram, bytes.
pub const ISTIO_REQUEST_BYTES: &str = "istio_request_bytes";
/// HTTP/gRPC response body size histogram, bytes.
pub const ISTIO_RESPONSE_BYTES: &str = "istio_response_bytes";
/// TCP bytes sent to the peer.
pub const ISTIO_TCP_SENT_BYTES_TOTAL: &str = "istio_tcp_sent_bytes_total";
/// TCP bytes received from the peer.
pub const ISTIO_TCP_RECEIVED_BYTES_TOTAL: &str = "istio_tcp_received_bytes_total";
/// TCP connections opened.
pub const ISTIO_TCP_CONNECTIONS_OPENED_TOTAL: &str = "istio_tcp_connections_opened_total";
/// TCP connections closed.
pub const ISTIO_TCP_CONNECTIONS_CLOSED_TOTAL: &str = "istio_tcp_connections_closed_total";

/// Envoy's default histogram bucket bounds, which Istio's metrics use (milliseconds for
/// durations, bytes for sizes).
pub const ENVOY_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Istio's request metric label names, in Istio's order.
pub const LABEL_NAMES: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

/// Istio's TCP metric label names: the request labels without `response_code` and
/// `grpc_response_status`.
pub const TCP_LABEL_NAMES: [&str; 23] = {
    let mut names = [""; 23];
    let mut i = 0;
    let mut j = 0;
    while i < 25 {
        if i != 21 && i != 22 {
            names[j] = LABEL_NAMES[i];
            j += 1;
        }
        i += 1;
    }
    names
};

/// Which side reports a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Reporter {
    /// The client stack (`source`).
    #[default]
    Source,
    /// The server stack (`destination`).
    Destination,
}

impl Reporter {
    /// The label value: `source` or `destination`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

/// The `request_protocol` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RequestProtocol {
    /// Plain HTTP (any version).
    #[default]
    Http,
    /// gRPC over HTTP/2.
    Grpc,
    /// Raw TCP.
    Tcp,
}

impl RequestProtocol {
    /// The label value: `http`, `grpc` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestProtocol::Http => "http",
            RequestProtocol::Grpc => "grpc",
            RequestProtocol::Tcp => "tcp",
        }
    }
}

/// The `connection_security_policy` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SecurityPolicy {
    /// Mutual TLS with a verified peer.
    MutualTls,
    /// Plaintext.
    None,
    /// Not known (what the source reporter says, as Istio).
    #[default]
    Unknown,
}

impl SecurityPolicy {
    /// The label value: `mutual_tls`, `none` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityPolicy::MutualTls => "mutual_tls",
            SecurityPolicy::None => "none",
            SecurityPolicy::Unknown => "unknown",
        }
    }
}

/// The labels of one request's Istio metrics. Strings are `unknown` when not known;
/// [`Default`] is all unknown, HTTP, response code 0, no flags.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IstioLabels {
    /// Who reports.
    pub reporter: Reporter,
    /// The calling workload's name.
    pub source_workload: String,
    /// The calling workload's namespace.
    pub source_workload_namespace: String,
    /// The caller's SPIFFE ID (`spiffe://...`), verified by mTLS where possible.
    pub source_principal: String,
    /// The caller's `app` label.
    pub source_app: String,
    /// The caller's `version` label.
    pub source_version: String,
    /// The caller's canonical service.
    pub source_canonical_service: String,
    /// The caller's canonical revision.
    pub source_canonical_revision: String,
    /// The caller's cluster.
    pub source_cluster: String,
    /// The called workload's name.
    pub destination_workload: String,
    /// The called workload's namespace.
    pub destination_workload_namespace: String,
    /// The callee's SPIFFE ID.
    pub destination_principal: String,
    /// The callee's `app` label.
    pub destination_app: String,
    /// The callee's `version` label.
    pub destination_version: String,
    /// The called service's host, such as `reviews.bookinfo.svc.cluster.local`.
    pub destination_service: String,
    /// The called service's short name, such as `reviews`.
    pub destination_service_name: String,
    /// The called service's namespace.
    pub destination_service_namespace: String,
    /// The callee's canonical service.
    pub destination_canonical_service: String,
    /// The callee's canonical revision.
    pub destination_canonical_revision: String,
    /// The callee's cluster.
    pub destination_cluster: String,
    /// HTTP, gRPC or TCP.
    pub request_protocol: RequestProtocol,
    /// The HTTP status; 0 when there was no response.
    pub response_code: u16,
    /// The gRPC status, for gRPC requests; the label is empty otherwise, as Istio.
    pub grpc_response_status: Option<u32>,
    /// Envoy response flags such as `UH` or `UT,URX`; empty means none (`-`).
    pub response_flags: String,
    /// Whether the connection was mutual TLS.
    pub connection_security_policy: SecurityPolicy,
}

impl Default for IstioLabels {
    fn default() -> Self {
        let u = || UNKNOWN.to_owned();
        IstioLabels {
            reporter: Reporter::Source,
            source_workload: u(),
            source_workload_namespace: u(),
            source_principal: u(),
            source_app: u(),
            source_version: u(),
            source_canonical_service: u(),
            source_canonical_revision: u(),
            source_cluster: u(),
            destination_workload: u(),
            destination_workload_namespace: u(),
            destination_principal: u(),
            destination_app: u(),
            destination_version: u(),
            destination_service: u(),
            destination_service_name: u(),
            destination_service_namespace: u(),
            destination_canonical_service: u(),
            destination_canonical_revision: u(),
            destination_cluster: u(),
            request_protocol: RequestProtocol::Http,
            response_code: 0,
            grpc_response_status: None,
            response_flags: String::new(),
            connection_security_policy: SecurityPolicy::Unknown,
        }
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { UNKNOWN } else { s }
}

impl IstioLabels {
    /// Fills the `source_*` labels from the caller's metadata.
    pub fn set_source(&mut self, peer: &PeerMetadata) {
        self.source_workload.clone_from(&peer.workload);
        self.source_workload_namespace.clone_from(&peer.namespace);
        self.source_principal = peer.principal.clone().unwrap_or_else(|| UNKNOWN.to_owned());
        self.source_app.clone_from(&peer.app);
        self.source_version.clone_from(&peer.version);
        self.source_canonical_service
            .clone_from(&peer.canonical_service);
        self.source_canonical_revision
            .clone_from(&peer.canonical_revision);
        self.source_cluster.clone_from(&peer.cluster);
    }

    /// Fills the `destination_*` workload labels from the callee's metadata, and the service
    /// name and namespace when still unknown. `destination_service` (the host) is the
    /// caller's to set.
    pub fn set_destination(&mut self, peer: &PeerMetadata) {
        self.destination_workload.clone_from(&peer.workload);
        self.destination_workload_namespace
            .clone_from(&peer.namespace);
        self.destination_principal = peer.principal.clone().unwrap_or_else(|| UNKNOWN.to_owned());
        self.destination_app.clone_from(&peer.app);
        self.destination_version.clone_from(&peer.version);
        self.destination_canonical_service
            .clone_from(&peer.canonical_service);
        self.destination_canonical_revision
            .clone_from(&peer.canonical_revision);
        self.destination_cluster.clone_from(&peer.cluster);
        if self.destination_service_name == UNKNOWN {
            self.destination_service_name.clone_from(&peer.service);
        }
        if self.destination_service_namespace == UNKNOWN {
            self.destination_service_namespace
                .clone_from(&peer.namespace);
        }
    }

    /// The labels of the request metrics, in Istio's order ([`LABEL_NAMES`]). Empty strings
    /// read `unknown`, no flags read `-`, and `grpc_response_status` is empty unless gRPC.
    pub fn to_labels(&self) -> [(&'static str, Cow<'_, str>); 25] {
        fn s(v: &str) -> Cow<'_, str> {
            Cow::Borrowed(or_unknown(v))
        }
        let values: [Cow<'_, str>; 25] = [
            Cow::Borrowed(self.reporter.as_str()),
            s(&self.source_workload),
            s(&self.source_workload_namespace),
            s(&self.source_principal),
            s(&self.source_app),
            s(&self.source_version),
            s(&self.source_canonical_service),
            s(&self.source_canonical_revision),
            s(&self.source_cluster),
            s(&self.destination_workload),
            s(&self.destination_workload_namespace),
            s(&self.destination_principal),
            s(&self.destination_app),
            s(&self.destination_version),
            s(&self.destination_service),
            s(&self.destination_service_name),
            s(&self.destination_service_namespace),
            s(&self.destination_canonical_service),
            s(&self.destination_canonical_revision),
            s(&self.destination_cluster),
            Cow::Borrowed(self.request_protocol.as_str()),
            Cow::Owned(self.response_code.to_string()),
            match (self.request_protocol, self.grpc_response_status) {
                (RequestProtocol::Grpc, Some(status)) => Cow::Owned(status.to_string()),
                _ => Cow::Borrowed(""),
            },
            Cow::Borrowed(if self.response_flags.is_empty() {
                "-"
            } else {
                &self.response_flags
            }),
            Cow::Borrowed(self.connection_security_policy.as_str()),
        ];
        let mut values = values.into_iter();
        LABEL_NAMES.map(|name| (name, values.next().unwrap_or_default()))
    }

    /// The labels of the TCP metrics, in Istio's order ([`TCP_LABEL_NAMES`]): the request
    /// labels without `response_code` and `grpc_response_status`.
    pub fn to_tcp_labels(&self) -> [(&'static str, Cow<'_, str>); 23] {
        let mut labels = self
            .to_labels()
            .into_iter()
            .filter(|(name, _)| !matches!(*name, "response_code" | "grpc_response_status"));
        TCP_LABEL_NAMES.map(|name| (name, labels.next().map(|(_, v)| v).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_like_istio() {
        let defaults = IstioLabels::default();
        let labels = defaults.to_labels();
        let names: Vec<_> = labels.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, LABEL_NAMES);
        let get = |n: &str| labels.iter().find(|(k, _)| *k == n).unwrap().1.clone();
        assert_eq!(get("reporter"), "source");
        assert_eq!(get("source_workload"), "unknown");
        assert_eq!(get("response_code"), "0");
        assert_eq!(get("grpc_response_status"), "");
        assert_eq!(get("response_flags"), "-");
        assert_eq!(get("connection_security_policy"), "unknown");
        assert_eq!(get("request_protocol"), "http");
    }

    #[test]
    fn filled_from_peers() {
        let source = PeerMetadata {
            workload: "productpage-v1".into(),
            namespace: "bookinfo".into(),
            app: "productpage".into(),
            version: "v1".into(),
            service: "productpage".into(),
            canonical_service: "productpage".into(),
            canonical_revision: "v1".into(),
            cluster: "Kubernetes".into(),
            principal: Some("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage".into()),
        };
        let dest = PeerMetadata {
            workload: "reviews-v2".into(),
            app: "reviews".into(),
            service: "reviews".into(),
            namespace: "bookinfo".into(),
            ..PeerMetadata::default()
        };
        let mut l = IstioLabels {
            reporter: Reporter::Destination,
            destination_service: "reviews.bookinfo.svc.cluster.local".into(),
            request_protocol: RequestProtocol::Grpc,
            response_code: 200,
            grpc_response_status: Some(14),
            response_flags: "UH".into(),
            connection_security_policy: SecurityPolicy::MutualTls,
            source_version: String::new(),
            ..IstioLabels::default()
        };
        l.set_source(&source);
        l.set_destination(&dest);
        let values: Vec<String> = l.to_labels().iter().map(|(_, v)| v.to_string()).collect();
        assert_eq!(
            values,
            [
                "destination",
                "productpage-v1",
                "bookinfo",
                "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage",
                "productpage",
                "v1",
                "productpage",
                "v1",
                "Kubernetes",
                "reviews-v2",
                "bookinfo",
                "unknown",
                "reviews",
                "unknown",
                "reviews.bookinfo.svc.cluster.local",
                "reviews",
                "bookinfo",
                "unknown",
                "unknown",
                "unknown",
                "grpc",
                "200",
                "14",
                "UH",
                "mutual_tls",
            ]
        );
        l.request_protocol = RequestProtocol::Http;
        assert_eq!(l.to_labels()[22].1, "");
        let tcp = l.to_tcp_labels();
        assert_eq!(tcp[21].1, "UH");
        assert_eq!(tcp.map(|(n, _)| n), TCP_LABEL_NAMES);
        assert!(!TCP_LABEL_NAMES.contains(&"response_code"));
    }

    #[test]
    fn buckets_ascend() {
        assert!(ENVOY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ENVOY_BUCKETS[18], 3_600_000.0);
    }
}
