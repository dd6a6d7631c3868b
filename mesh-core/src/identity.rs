//! Workload identities: SPIFFE IDs `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
//! as Istio writes them in a certificate's URI SAN and as authorization policies name them
//! (without the `spiffe://` scheme: `cluster.local/ns/default/sa/reviews`).

use std::fmt;
use std::sync::Arc;

/// The scheme of a SPIFFE ID.
pub const SPIFFE_SCHEME: &str = "spiffe://";

/// A SPIFFE ID. Istio's form `spiffe://<td>/ns/<ns>/sa/<sa>` exposes its namespace and
/// service account; other paths are kept as written.
///
/// ```
/// use mesh_core::identity::SpiffeId;
///
/// let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/reviews".parse().unwrap();
/// assert_eq!(id.trust_domain(), "cluster.local");
/// assert_eq!(id.namespace(), Some("default"));
/// assert_eq!(id.service_account(), Some("reviews"));
/// assert_eq!(id.principal(), "cluster.local/ns/default/sa/reviews");
/// assert!("https://cluster.local/ns/default/sa/reviews".parse::<SpiffeId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The whole ID, `spiffe://` included.
    uri: Arc<str>,
}

/// Why a text is not a SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{uri:?} is not a SPIFFE ID: {reason}")]
pub struct SpiffeIdError {
    /// The text.
    pub uri: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl SpiffeId {
    /// Istio's identity of a workload: `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`.
    pub fn workload(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        format!("{SPIFFE_SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}").parse()
    }

    /// The whole ID, `spiffe://` included.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The ID without its scheme, as Istio's `source.principal` and authorization policies'
    /// `principals` write it: `cluster.local/ns/default/sa/reviews`.
    pub fn principal(&self) -> &str {
        &self.uri[SPIFFE_SCHEME.len()..]
    }

    /// The trust domain, such as `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        let rest = self.principal();
        rest.split_once('/').map_or(rest, |(td, _)| td)
    }

    /// The path after the trust domain, starting with `/` (empty when there is none).
    pub fn path(&self) -> &str {
        let rest = self.principal();
        rest.find('/').map_or("", |i| &rest[i..])
    }

    /// The namespace of an Istio-style ID (`/ns/<ns>/sa/<sa>`).
    pub fn namespace(&self) -> Option<&str> {
        self.istio_parts().map(|(ns, _)| ns)
    }

    /// The service account of an Istio-style ID (`/ns/<ns>/sa/<sa>`).
    pub fn service_account(&self) -> Option<&str> {
        self.istio_parts().map(|(_, sa)| sa)
    }

    fn istio_parts(&self) -> Option<(&str, &str)> {
        let rest = self.path().strip_prefix("/ns/")?;
        let (ns, sa) = rest.split_once("/sa/")?;
        (!ns.is_empty() && !sa.is_empty() && !sa.contains('/')).then_some((ns, sa))
    }
}

impl std::str::FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let err = |reason| SpiffeIdError {
            uri: uri.to_owned(),
            reason,
        };
        let rest = uri
            .strip_prefix(SPIFFE_SCHEME)
            .ok_or_else(|| err("it does not start with spiffe://"))?;
        let (td, path) = rest.split_once('/').map_or((rest, ""), |(td, p)| (td, p));
        if td.is_empty() {
            return Err(err("the trust domain is empty"));
        }
        if !td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        {
            return Err(err(
                "the trust domain may hold only lowercase letters, digits, '-', '.' and '_'",
            ));
        }
        if rest.len() > td.len() {
            if path.is_empty() || path.ends_with('/') {
                return Err(err("the path ends with '/'"));
            }
            for segment in path.split('/') {
                if segment.is_empty() || segment == "." || segment == ".." {
                    return Err(err("the path has an empty, '.' or '..' segment"));
                }
                if !segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                {
                    return Err(err(
                        "a path segment may hold only letters, digits, '-', '.' and '_'",
                    ));
                }
            }
        }
        if uri.len() > 2048 {
            return Err(err("it is longer than 2048 bytes"));
        }
        Ok(SpiffeId { uri: uri.into() })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_ids_expose_namespace_and_account() {
        let id = SpiffeId::workload("cluster.local", "bookinfo", "bookinfo-reviews").unwrap();
        assert_eq!(
            id.as_str(),
            "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews"
        );
        assert_eq!(id.namespace(), Some("bookinfo"));
        assert_eq!(id.service_account(), Some("bookinfo-reviews"));
        assert_eq!(id.path(), "/ns/bookinfo/sa/bookinfo-reviews");
    }

    #[test]
    fn other_paths_have_no_namespace() {
        let id: SpiffeId = "spiffe://example.org/workload/x".parse().unwrap();
        assert_eq!(id.namespace(), None);
        let id: SpiffeId = "spiffe://example.org".parse().unwrap();
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.path(), "");
    }

    #[test]
    fn bad_ids_say_why() {
        for (uri, reason) in [
            ("http://x/ns/a/sa/b", "spiffe://"),
            ("spiffe:///ns/a", "trust domain is empty"),
            ("spiffe://Cluster.local/ns/a", "lowercase"),
            ("spiffe://td/ns//sa/b", "empty"),
            ("spiffe://td/ns/a/", "ends with"),
            ("spiffe://td/ns/../sa/b", "'..'"),
            ("spiffe://td/ns/a b", "letters"),
        ] {
            let e = uri.parse::<SpiffeId>().unwrap_err();
            assert!(e.to_string().contains(reason), "{uri}: {e}");
        }
    }
}
