//! The workload metadata one mesh stack tells the other, so both can fill the `source_*` and
//! `destination_*` labels of Istio's metrics.
//!
//! Istio's sidecars exchange `x-envoy-peer-metadata` (a base64 protobuf `Struct`); mesh sends
//! [`PEER_METADATA_HEADER`], the base64url (no padding) of a compact JSON object with the
//! fields of [`PeerMetadata`]. The client stack sends its own metadata on each request; the
//! server stack answers with its own on each response.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::config::Workload;
use crate::identity::SpiffeId;

/// The header carrying the peer's [`PeerMetadata`].
pub const PEER_METADATA_HEADER: &str = "x-mesh-peer-metadata";

/// [`PEER_METADATA_HEADER`] as a header name, parsed once for the per-request lookups.
pub static PEER_METADATA_NAME: http::HeaderName =
    http::HeaderName::from_static(PEER_METADATA_HEADER);

/// The most bytes of an encoded [`PEER_METADATA_HEADER`] value [`PeerMetadata::decode`] reads.
pub const MAX_PEER_METADATA_LEN: usize = 4096;

/// The value Istio's metrics use for anything unknown.
pub const UNKNOWN: &str = "unknown";

const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Who a workload is, in the terms of Istio's metric labels. Every field but `principal` is
/// `unknown` when not known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerMetadata {
    /// The workload (Deployment) name, such as `reviews-v2`.
    pub workload: String,
    /// The Kubernetes namespace.
    pub namespace: String,
    /// The `app` label.
    pub app: String,
    /// The `version` label.
    pub version: String,
    /// The service name the workload serves, such as `reviews`.
    pub service: String,
    /// Istio's canonical service (`service.istio.io/canonical-name`, else `app`).
    pub canonical_service: String,
    /// Istio's canonical revision (`service.istio.io/canonical-revision`, else `version`,
    /// else `latest`).
    pub canonical_revision: String,
    /// The cluster's id (Istio's `cluster_id`, such as `Kubernetes`).
    pub cluster: String,
    /// The workload's SPIFFE ID as it claims it; a server should prefer the identity its mTLS
    /// handshake verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

impl Default for PeerMetadata {
    fn default() -> Self {
        let u = || UNKNOWN.to_owned();
        PeerMetadata {
            workload: u(),
            namespace: u(),
            app: u(),
            version: u(),
            service: u(),
            canonical_service: u(),
            canonical_revision: u(),
            cluster: u(),
            principal: None,
        }
    }
}

/// Why a [`PEER_METADATA_HEADER`] value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerMetadataError {
    /// Longer than [`MAX_PEER_METADATA_LEN`].
    #[error("peer metadata of {len} bytes is over the {MAX_PEER_METADATA_LEN} byte limit")]
    TooLarge {
        /// The value's length.
        len: usize,
    },
    /// Not base64url.
    #[error("peer metadata is not base64url: {0}")]
    Base64(String),
    /// Not a JSON object of string fields.
    #[error("peer metadata is not a JSON object of strings: {0}")]
    Json(String),
}

/// The Deployment's name from a pod name `{deployment}-{pod-template-hash}-{suffix}`, when it
/// has that shape (Kubernetes' safe alphabet for the hash and the 5-character suffix).
fn deployment_of_pod(pod: &str) -> Option<&str> {
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let safe = |s: &str| s.bytes().all(|b| SAFE.contains(&b));
    let (rest, suffix) = pod.rsplit_once('-')?;
    let (name, hash) = rest.rsplit_once('-')?;
    (suffix.len() == 5
        && safe(suffix)
        && (1..=10).contains(&hash.len())
        && safe(hash)
        && !name.is_empty())
    .then_some(name)
}

fn known(s: &str) -> String {
    if s.is_empty() {
        UNKNOWN.to_owned()
    } else {
        s.to_owned()
    }
}

impl PeerMetadata {
    /// The metadata of this process's workload. The workload name is the Deployment part of
    /// the pod name when it has a Deployment pod's shape, else the service; `app` and the
    /// canonical service are the service; the canonical revision is the version, else
    /// `latest`, as Istio; the principal is the workload's SPIFFE ID.
    pub fn from_workload(workload: &Workload, cluster: &str) -> PeerMetadata {
        let name = workload
            .pod_name
            .as_deref()
            .and_then(deployment_of_pod)
            .unwrap_or(&workload.service);
        let version = workload.version.as_deref().filter(|v| !v.is_empty());
        PeerMetadata {
            workload: known(name),
            namespace: known(&workload.namespace),
            app: known(&workload.service),
            version: known(version.unwrap_or("")),
            service: known(&workload.service),
            canonical_service: known(&workload.service),
            canonical_revision: version.unwrap_or("latest").to_owned(),
            cluster: known(cluster),
            principal: SpiffeId::workload(
                &workload.trust_domain,
                &workload.namespace,
                &workload.service_account,
            )
            .ok()
            .map(|id| id.as_str().to_owned()),
        }
    }

    /// The [`PEER_METADATA_HEADER`] value: base64url (no padding) of compact JSON. A value over
    /// [`MAX_PEER_METADATA_LEN`] (absurdly long fields) would be refused by the peer.
    pub fn encode(&self) -> HeaderValue {
        let json = serde_json::to_vec(self).unwrap_or_default();
        // Base64url text is always a valid header value.
        HeaderValue::try_from(B64.encode(json)).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Reads a [`PEER_METADATA_HEADER`] value: unknown keys are ignored, missing (or empty)
    /// ones are `unknown`.
    pub fn decode(value: &HeaderValue) -> Result<PeerMetadata, PeerMetadataError> {
        let bytes = value.as_bytes();
        if bytes.len() > MAX_PEER_METADATA_LEN {
            return Err(PeerMetadataError::TooLarge { len: bytes.len() });
        }
        let json = B64
            .decode(bytes)
            .map_err(|e| PeerMetadataError::Base64(e.to_string()))?;
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(PeerMetadataError::Json("not an object".to_owned()));
        }
        let mut meta: PeerMetadata =
            serde_json::from_slice(&json).map_err(|e| PeerMetadataError::Json(e.to_string()))?;
        for field in [
            &mut meta.workload,
            &mut meta.namespace,
            &mut meta.app,
            &mut meta.version,
            &mut meta.service,
            &mut meta.canonical_service,
            &mut meta.canonical_revision,
            &mut meta.cluster,
        ] {
            if field.is_empty() {
                UNKNOWN.clone_into(field);
            }
        }
        meta.principal = meta.principal.filter(|p| !p.is_empty());
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn workload(pod: Option<&str>, version: Option<&str>) -> Workload {
        Workload {
            service: "reviews".into(),
            namespace: "bookinfo".into(),
            cluster_domain: "cluster.local".into(),
            trust_domain: "cluster.local".into(),
            service_account: "bookinfo-reviews".into(),
            pod_name: pod.map(Into::into),
            version: version.map(Into::into),
            labels: Default::default(),
        }
    }

    #[test]
    fn from_workload_like_istio() {
        let m = PeerMetadata::from_workload(
            &workload(Some("reviews-v2-5b667bcbf8-x7k9z"), Some("v2")),
            "Kubernetes",
        );
        assert_eq!(m.workload, "reviews-v2");
        assert_eq!(m.namespace, "bookinfo");
        assert_eq!(m.app, "reviews");
        assert_eq!(m.service, "reviews");
        assert_eq!(m.version, "v2");
        assert_eq!(m.canonical_service, "reviews");
        assert_eq!(m.canonical_revision, "v2");
        assert_eq!(m.cluster, "Kubernetes");
        assert_eq!(
            m.principal.as_deref(),
            Some("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews")
        );

        let m = PeerMetadata::from_workload(&workload(Some("reviews-0"), None), "");
        assert_eq!(m.workload, "reviews");
        assert_eq!(m.version, "unknown");
        assert_eq!(m.canonical_revision, "latest");
        assert_eq!(m.cluster, "unknown");
        for pod in [
            "reviews-v1-abcde-12345",
            "x-5b667bcbf8-x7k9",
            "-5b667bcbf8-x7k9z",
        ] {
            assert_eq!(deployment_of_pod(pod), None, "{pod}");
        }
        assert_eq!(deployment_of_pod("a-b-c-5b667bcbf8-x7k9z"), Some("a-b-c"));
    }

    #[test]
    fn decode_defaults_and_errors() {
        let v = HeaderValue::try_from(B64.encode(br#"{"app":"ratings","extra":[1],"version":""}"#))
            .unwrap();
        let m = PeerMetadata::decode(&v).unwrap();
        assert_eq!(m.app, "ratings");
        assert_eq!(m.version, "unknown");
        assert_eq!(m.workload, "unknown");
        assert_eq!(m.principal, None);

        let big = HeaderValue::try_from("A".repeat(MAX_PEER_METADATA_LEN + 1)).unwrap();
        assert_eq!(
            PeerMetadata::decode(&big),
            Err(PeerMetadataError::TooLarge {
                len: MAX_PEER_METADATA_LEN + 1
            })
        );
        assert!(matches!(
            PeerMetadata::decode(&HeaderValue::from_static("!!")),
            Err(PeerMetadataError::Base64(_))
        ));
        for json in [&b"[]"[..], br#"{"app":1}"#, b"{"] {
            let v = HeaderValue::try_from(B64.encode(json)).unwrap();
            assert!(matches!(
                PeerMetadata::decode(&v),
                Err(PeerMetadataError::Json(_))
            ));
        }
        // Padded base64url is accepted too.
        let padded = base64::engine::general_purpose::URL_SAFE.encode(br#"{"app":"a"}"#);
        let v = HeaderValue::try_from(padded).unwrap();
        assert_eq!(PeerMetadata::decode(&v).unwrap().app, "a");
    }

    fn field() -> impl Strategy<Value = String> {
        "\\PC{1,20}"
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), json in "\\PC{0,100}") {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let _ = PeerMetadata::decode(&v);
            }
            let v = HeaderValue::try_from(B64.encode(json)).unwrap();
            let _ = PeerMetadata::decode(&v);
        }

        #[test]
        fn round_trip(
            a in [field(), field(), field(), field()],
            b in [field(), field(), field(), field()],
            principal in proptest::option::of(field()),
        ) {
            let [workload, namespace, app, version] = a;
            let [service, canonical_service, canonical_revision, cluster] = b;
            let m = PeerMetadata {
                workload, namespace, app, version, service, canonical_service,
                canonical_revision, cluster, principal,
            };
            prop_assert_eq!(PeerMetadata::decode(&m.encode()), Ok(m));
        }
    }
}
