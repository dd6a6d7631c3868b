//! The pure part of the metrics layers: which label values a request, a response and a
//! local reply give, and the labels fixed for a whole layer.

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use mesh_core::telemetry::PeerMetadata;
use mesh_core::telemetry::labels::{IstioLabels, Reporter, RequestProtocol, SecurityPolicy};
use mesh_core::telemetry::peer_metadata::UNKNOWN;

use crate::error::MeshError;
use crate::limit::Limited;
use crate::server::ServerError;

/// `destination_service_name` and `destination_service_namespace` of a destination host:
/// `(reviews, default)` for `reviews.default.svc.cluster.local` (any cluster domain, a
/// trailing dot ignored, SRV `_service._proto.` labels skipped), else the host and `unknown`.
pub(crate) fn service_name_namespace(host: &str) -> (&str, &str) {
    let trimmed = host.trim_end_matches('.');
    let mut labels = trimmed.split('.').skip_while(|l| l.starts_with('_'));
    match (labels.next(), labels.next(), labels.next(), labels.next()) {
        (Some(name), Some(namespace), Some("svc"), Some(domain))
            if !name.is_empty() && !namespace.is_empty() && !domain.is_empty() =>
        {
            (name, namespace)
        }
        _ => (host, UNKNOWN),
    }
}

/// The host a workload serves as: `<service>.<namespace>.svc.<cluster domain>`, or
/// `unknown` when its service or namespace is unknown.
pub(crate) fn service_host(workload: &PeerMetadata, cluster_domain: &str) -> String {
    if workload.service == UNKNOWN || workload.namespace == UNKNOWN || cluster_domain.is_empty() {
        return UNKNOWN.to_owned();
    }
    format!(
        "{}.{}.svc.{}",
        workload.service,
        workload.namespace,
        cluster_domain.trim_end_matches('.')
    )
}

/// One pass over request headers: the bytes they take on the wire, approximately (each
/// `name: value\r\n`), and `request_protocol`: `grpc` when the (first) `content-type`
/// [is gRPC's](mesh_core::deadline::is_grpc_content_type), else `http`. The names are compared
/// while they are counted, rather than looked up (hashed).
pub(crate) fn request_size_and_protocol(headers: &HeaderMap) -> (u64, RequestProtocol) {
    let mut size = 0;
    let mut content_type = None;
    for (name, value) in headers {
        size += (name.as_str().len() + value.len() + 4) as u64;
        if content_type.is_none() && *name == CONTENT_TYPE {
            content_type = Some(value.as_bytes());
        }
    }
    let protocol = if content_type.is_some_and(mesh_core::deadline::is_grpc_content_type) {
        RequestProtocol::Grpc
    } else {
        RequestProtocol::Http
    };
    (size, protocol)
}

/// `grpc-status`, parsed once: it is looked up on every response.
static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The `grpc-status` of response headers or trailers, when present and a number.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get(&GRPC_STATUS).and_then(parse_grpc_status)
}

/// A `grpc-status` value as a number (surrounding spaces allowed).
fn parse_grpc_status(value: &HeaderValue) -> Option<u32> {
    value.to_str().ok().and_then(|v| v.trim().parse().ok())
}

/// One pass over response headers or trailers: the bytes they take on the wire,
/// approximately (each `name: value\r\n`), and their [`grpc_status`]. The names are compared
/// while they are counted, rather than `grpc-status` looked up (hashed).
pub(crate) fn size_and_grpc_status(headers: &HeaderMap) -> (u64, Option<u32>) {
    let mut size = 0;
    // The first `grpc-status` value, as `HeaderMap::get` gives it.
    let mut first = None;
    for (name, value) in headers {
        size += (name.as_str().len() + value.len() + 4) as u64;
        if first.is_none() && *name == GRPC_STATUS {
            first = Some(value);
        }
    }
    (size, first.and_then(parse_grpc_status))
}

/// Envoy's response flag for a local reply of the server stack.
///
/// | reply | flag | why |
/// |---|---|---|
/// | 429 local rate limit | `RL` | Envoy's local rate limit filter sets it |
/// | 503 shed by the concurrency limit | `UO` | the inbound cluster's circuit breaker (overflow towards the application) is what a sidecar would shed with |
/// | 504 deadline passed on arrival | `UT` | the request's time was up before the application answered, as an inbound route timeout |
/// | 400 malformed deadline header or path, 401 invalid token, 403 denied, 500 application error | `-` | Envoy sets no flag for these; `response_code_details` says why |
pub(crate) fn server_reply_flag(error: &ServerError) -> &'static str {
    match error {
        ServerError::Limited {
            limited: Limited::RateLimited,
            ..
        } => "RL",
        ServerError::Limited {
            limited: Limited::Shed { .. },
            ..
        } => "UO",
        ServerError::DeadlineExceeded => "UT",
        _ => "",
    }
}

/// Envoy's `response_code_details` for a local reply of the server stack.
pub(crate) fn server_reply_details(error: &ServerError) -> &'static str {
    match error {
        ServerError::Limited {
            limited: Limited::RateLimited,
            ..
        } => "local_rate_limited",
        ServerError::Limited {
            limited: Limited::Shed { .. },
            ..
        } => "overloaded",
        ServerError::BadDeadline(_) => "invalid_deadline_header",
        ServerError::DeadlineExceeded => "deadline_exceeded",
        ServerError::MalformedPath(_) => "path_normalization_failed",
        ServerError::Unauthenticated(_) => "jwt_authn_access_denied",
        ServerError::Forbidden { .. } => "rbac_access_denied_matched_policy",
        ServerError::App(_) => "application_error",
    }
}

/// Envoy's `response_code_details` for a local reply of the client stack.
pub(crate) fn client_reply_details(error: &MeshError) -> &'static str {
    match error {
        MeshError::Timeout { .. } => "upstream_response_timeout",
        MeshError::PerTryTimeout { .. } => "upstream_per_try_timeout",
        MeshError::NoEndpoints { .. } => "no_healthy_upstream",
        MeshError::Connect { .. } => "upstream_reset_before_response_started{connection_failure}",
        MeshError::RefusedStream { .. } => {
            "upstream_reset_before_response_started{remote_refused_stream_reset}"
        }
        MeshError::Reset { .. } => "upstream_reset_before_response_started{connection_termination}",
        MeshError::BadRequest { .. } => "bad_request",
        MeshError::NoRoute { .. } => "route_not_found",
        MeshError::Overflow { .. } => "upstream_reset_before_response_started{overflow}",
        MeshError::Limited {
            limited: Limited::RateLimited,
            ..
        } => "local_rate_limited",
        MeshError::Limited { .. } => "overloaded",
        MeshError::FaultAbort { .. } => "fault_filter_abort",
        MeshError::EgressDenied { .. } => "direct_response",
    }
}

/// The labels a client layer (`reporter="source"`) fixes for every call to `host`:
/// `source_*` from the own workload (the principal only when the leg is mutual TLS with the
/// workload's identity), the destination service from the host, policy `unknown`.
pub(crate) fn client_base(workload: &PeerMetadata, host: &str, mutual_tls: bool) -> IstioLabels {
    let mut labels = IstioLabels {
        reporter: Reporter::Source,
        ..IstioLabels::default()
    };
    labels.set_source(workload);
    if !mutual_tls {
        UNKNOWN.clone_into(&mut labels.source_principal);
    }
    let (name, namespace) = service_name_namespace(host);
    labels.destination_service = host.to_owned();
    labels.destination_service_name = name.to_owned();
    labels.destination_service_namespace = namespace.to_owned();
    labels.connection_security_policy = SecurityPolicy::Unknown;
    labels
}

/// The labels a server layer (`reporter="destination"`) fixes for every request:
/// `destination_*` from the own workload (the principal is set per request, when the
/// connection is mutual TLS), the destination service its host.
pub(crate) fn server_base(workload: &PeerMetadata, service_host: &str) -> IstioLabels {
    let mut labels = IstioLabels {
        reporter: Reporter::Destination,
        destination_service: service_host.to_owned(),
        ..IstioLabels::default()
    };
    labels.set_destination(workload);
    UNKNOWN.clone_into(&mut labels.destination_principal);
    labels
        .destination_service_name
        .clone_from(&workload.service);
    labels
        .destination_service_namespace
        .clone_from(&workload.namespace);
    labels
}

/// Fills what the client learns per call: the callee's metadata (when it answered with
/// some), whose claimed principal counts only on a mutual-TLS leg (whose handshake checked
/// the server's identity).
pub(crate) fn client_peer(labels: &mut IstioLabels, peer: Option<&PeerMetadata>, mutual_tls: bool) {
    let Some(peer) = peer else { return };
    let service = std::mem::take(&mut labels.destination_service);
    let name = std::mem::take(&mut labels.destination_service_name);
    let namespace = std::mem::take(&mut labels.destination_service_namespace);
    labels.set_destination(peer);
    labels.destination_service = service;
    labels.destination_service_name = name;
    labels.destination_service_namespace = namespace;
    if !mutual_tls {
        UNKNOWN.clone_into(&mut labels.destination_principal);
    }
}

/// Fills what the server learns per request: the caller's metadata (when it sent some), the
/// verified principal and the connection's security policy (from the `Peer` extension,
/// `unknown` without one); the own principal under mutual TLS.
pub(crate) fn server_peer(
    labels: &mut IstioLabels,
    peer: Option<&PeerMetadata>,
    principal: Option<&str>,
    policy: SecurityPolicy,
    own_principal: Option<&str>,
) {
    if let Some(peer) = peer {
        labels.set_source(peer);
    }
    // The caller's claim is not evidence: only the handshake's identity counts.
    labels.source_principal = principal.unwrap_or(UNKNOWN).to_owned();
    labels.connection_security_policy = policy;
    if policy == SecurityPolicy::MutualTls {
        labels.destination_principal = own_principal.unwrap_or(UNKNOWN).to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn workload(service: &str, namespace: &str) -> PeerMetadata {
        PeerMetadata {
            workload: format!("{service}-v1"),
            namespace: namespace.into(),
            app: service.into(),
            version: "v1".into(),
            service: service.into(),
            canonical_service: service.into(),
            canonical_revision: "v1".into(),
            cluster: "Kubernetes".into(),
            principal: Some(format!(
                "spiffe://cluster.local/ns/{namespace}/sa/{service}"
            )),
        }
    }

    fn get(labels: &IstioLabels, name: &str) -> String {
        labels
            .to_labels()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
            .unwrap()
    }

    #[test]
    fn service_names_of_hosts() {
        assert_eq!(
            service_name_namespace("reviews.default.svc.cluster.local"),
            ("reviews", "default")
        );
        assert_eq!(
            service_name_namespace("reviews.bookinfo.svc.example.org."),
            ("reviews", "bookinfo")
        );
        assert_eq!(
            service_name_namespace("_http._tcp.reviews.default.svc.cluster.local"),
            ("reviews", "default")
        );
        for host in [
            "api.example.com",
            "10.0.0.1",
            "reviews",
            "a.b.svc",
            "unknown",
        ] {
            assert_eq!(service_name_namespace(host), (host, UNKNOWN), "{host}");
        }
        assert_eq!(
            service_host(&workload("reviews", "default"), "cluster.local"),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(
            service_host(&PeerMetadata::default(), "cluster.local"),
            UNKNOWN
        );
    }

    #[test]
    fn protocol_and_grpc_status() {
        let protocol = |headers: &HeaderMap| request_size_and_protocol(headers).1;
        let mut headers = HeaderMap::new();
        assert_eq!(protocol(&headers), RequestProtocol::Http);
        for (content_type, grpc) in [
            ("application/grpc+proto", true),
            ("application/grpc", true),
            ("Application/GRPC-web", true),
            ("application/json", false),
            ("application/grp", false),
            ("", false),
        ] {
            headers.insert("content-type", HeaderValue::from_static(content_type));
            let expected = if grpc {
                RequestProtocol::Grpc
            } else {
                RequestProtocol::Http
            };
            assert_eq!(protocol(&headers), expected, "{content_type}");
            assert_eq!(
                mesh_core::deadline::is_grpc(&headers),
                grpc,
                "{content_type}"
            );
        }
        // The first value counts, as `HeaderMap::get` gives it.
        headers.append("content-type", HeaderValue::from_static("application/grpc"));
        assert_eq!(protocol(&headers), RequestProtocol::Http);
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        assert_eq!(grpc_status(&headers), Some(14));
        headers.insert("grpc-status", HeaderValue::from_static("x"));
        assert_eq!(grpc_status(&headers), None);

        let mut sized = HeaderMap::new();
        sized.insert("ab", HeaderValue::from_static("cde"));
        assert_eq!(
            request_size_and_protocol(&sized),
            (9, RequestProtocol::Http)
        );
        assert_eq!(size_and_grpc_status(&sized), (9, None));
        sized.append("grpc-status", HeaderValue::from_static(" 7"));
        sized.append("grpc-status", HeaderValue::from_static("14"));
        assert_eq!(size_and_grpc_status(&sized), (9 + 17 + 17, Some(7)));
        assert_eq!(grpc_status(&sized), Some(7));
        let mut bad = HeaderMap::new();
        bad.append("grpc-status", HeaderValue::from_static("x"));
        bad.append("grpc-status", HeaderValue::from_static("14"));
        assert_eq!(size_and_grpc_status(&bad), (16 + 17, None));
        assert_eq!(grpc_status(&bad), None);
        let mut grpc = HeaderMap::new();
        grpc.insert("content-type", HeaderValue::from_static("application/grpc"));
        assert_eq!(
            request_size_and_protocol(&grpc),
            (12 + 16 + 4, RequestProtocol::Grpc)
        );
    }

    #[test]
    fn client_labels() {
        let me = workload("productpage", "default");
        let plain = client_base(&me, "reviews.default.svc.cluster.local", false);
        assert_eq!(get(&plain, "reporter"), "source");
        assert_eq!(get(&plain, "source_workload"), "productpage-v1");
        assert_eq!(get(&plain, "source_principal"), "unknown");
        assert_eq!(get(&plain, "destination_service_name"), "reviews");
        assert_eq!(get(&plain, "destination_service_namespace"), "default");
        assert_eq!(get(&plain, "destination_workload"), "unknown");
        assert_eq!(get(&plain, "connection_security_policy"), "unknown");
        let mtls = client_base(&me, "reviews.default.svc.cluster.local", true);
        assert_eq!(
            get(&mtls, "source_principal"),
            "spiffe://cluster.local/ns/default/sa/productpage"
        );

        let reviews = PeerMetadata {
            service: "reviews-svc".into(),
            ..workload("reviews", "other")
        };
        let mut answered = plain.clone();
        client_peer(&mut answered, Some(&reviews), false);
        assert_eq!(get(&answered, "destination_workload"), "reviews-v1");
        assert_eq!(get(&answered, "destination_workload_namespace"), "other");
        assert_eq!(get(&answered, "destination_version"), "v1");
        assert_eq!(get(&answered, "destination_principal"), "unknown");
        // The service is the host called, whatever the callee says it serves.
        assert_eq!(get(&answered, "destination_service_name"), "reviews");
        assert_eq!(get(&answered, "destination_service_namespace"), "default");
        assert_eq!(
            get(&answered, "destination_service"),
            "reviews.default.svc.cluster.local"
        );
        let mut secured = mtls.clone();
        client_peer(&mut secured, Some(&reviews), true);
        assert_eq!(
            get(&secured, "destination_principal"),
            "spiffe://cluster.local/ns/other/sa/reviews"
        );
        let external = client_base(&me, "api.example.com", false);
        assert_eq!(
            get(&external, "destination_service_name"),
            "api.example.com"
        );
        assert_eq!(get(&external, "destination_service_namespace"), "unknown");
    }

    #[test]
    fn server_labels() {
        let me = workload("reviews", "default");
        let base = server_base(&me, "reviews.default.svc.cluster.local");
        assert_eq!(get(&base, "reporter"), "destination");
        assert_eq!(get(&base, "destination_workload"), "reviews-v1");
        assert_eq!(get(&base, "destination_service_name"), "reviews");
        assert_eq!(get(&base, "destination_principal"), "unknown");
        assert_eq!(get(&base, "source_workload"), "unknown");

        let caller = workload("productpage", "default");
        let mut plain = base.clone();
        server_peer(
            &mut plain,
            Some(&caller),
            None,
            SecurityPolicy::None,
            me.principal.as_deref(),
        );
        assert_eq!(get(&plain, "source_workload"), "productpage-v1");
        assert_eq!(get(&plain, "source_principal"), "unknown");
        assert_eq!(get(&plain, "destination_principal"), "unknown");
        assert_eq!(get(&plain, "connection_security_policy"), "none");

        let mut mtls = base.clone();
        let id = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
        server_peer(
            &mut mtls,
            None,
            Some(id),
            SecurityPolicy::MutualTls,
            me.principal.as_deref(),
        );
        assert_eq!(get(&mtls, "source_workload"), "unknown");
        assert_eq!(get(&mtls, "source_principal"), id);
        assert_eq!(
            get(&mtls, "destination_principal"),
            "spiffe://cluster.local/ns/default/sa/reviews"
        );
        assert_eq!(get(&mtls, "connection_security_policy"), "mutual_tls");
    }

    #[test]
    fn server_reply_flags() {
        let limited = |limited| ServerError::Limited {
            name: "reviews".into(),
            limited,
        };
        assert_eq!(server_reply_flag(&limited(Limited::RateLimited)), "RL");
        assert_eq!(server_reply_flag(&limited(Limited::Shed { max: 1 })), "UO");
        assert_eq!(server_reply_flag(&ServerError::DeadlineExceeded), "UT");
        let forbidden = ServerError::Forbidden { policy: None };
        assert_eq!(server_reply_flag(&forbidden), "");
        assert_eq!(
            server_reply_details(&forbidden),
            "rbac_access_denied_matched_policy"
        );
        assert_eq!(server_reply_flag(&ServerError::App("boom".into())), "");
    }
}
