//! Which security documents apply to one workload, as istiod decides it.
//!
//! A document without `metadata.namespace` is in the workload's own namespace. Documents in
//! the root namespace reach every namespace; a workload selector (`matchLabels`) narrows a
//! document to the workloads whose labels include all of its labels. An empty selector is
//! no selector.
//!
//! - PeerAuthentication: one mode wins, by precedence: the first workload-selecting document
//!   of the workload's namespace (selectors in the root namespace are ignored, as istiod
//!   ignores them), then the first namespace-wide one of the workload's namespace, then the
//!   first mesh-wide one (root namespace, no selector), then
//!   [`SecurityConfig::default_mtls`]. A level whose mode is UNSET inherits from the next.
//!   Port modes come from the chosen workload document; an UNSET port takes the workload's
//!   mode (the model leaves such ports out, which [`ServerSecurity::mtls_for_port`] reads
//!   the same way).
//! - RequestAuthentication and AuthorizationPolicy: every document that applies, in the
//!   order given.

use std::collections::BTreeMap;

use super::{
    super::Workload, AuthorizationPolicy, MtlsMode, PeerAuthentication, SecurityConfig,
    ServerSecurity,
};

/// Whether `selector` takes in a workload with `labels`: `None` (or no labels) takes in
/// every workload.
pub(crate) fn selects(
    selector: Option<&BTreeMap<String, String>>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Whether a selector is set and not empty.
fn has_selector(selector: Option<&BTreeMap<String, String>>) -> bool {
    selector.is_some_and(|s| !s.is_empty())
}

impl SecurityConfig {
    /// The security the server of `workload` applies: its mTLS mode and port modes, the JWT
    /// rules and authorization policies that apply to it, and the trust domains it accepts
    /// (its own and [`trust_domain_aliases`](Self::trust_domain_aliases)).
    ///
    /// The authorization policies are returned with their namespace filled in.
    pub fn server_security(&self, workload: &Workload) -> ServerSecurity {
        let labels = workload.selector_labels();
        let own = workload.namespace.as_str();
        let root = self.root_namespace.as_str();
        let home = |ns: &Option<String>| ns.clone().unwrap_or_else(|| own.to_owned());
        // Whether a document of namespace `ns` with `selector` applies (Request-
        // Authentication, AuthorizationPolicy).
        let applies = |ns: &str, selector: Option<&BTreeMap<String, String>>| {
            (ns == root || ns == own) && selects(selector, &labels)
        };

        let (mut mesh, mut namespace, mut workload_level): (
            Option<&PeerAuthentication>,
            Option<&PeerAuthentication>,
            Option<&PeerAuthentication>,
        ) = (None, None, None);
        for pa in &self.peer_authentications {
            let ns = home(&pa.namespace);
            let selector = pa.selector.as_ref();
            if !has_selector(selector) {
                if ns == root {
                    mesh.get_or_insert(pa);
                } else if ns == own {
                    namespace.get_or_insert(pa);
                }
            } else if ns != root && ns == own && selects(selector, &labels) {
                workload_level.get_or_insert(pa);
            }
        }
        let mut mtls = self.default_mtls;
        for level in [mesh, namespace, workload_level] {
            if let Some(mode) = level.and_then(|pa| pa.mode) {
                mtls = mode;
            }
        }
        let port_mtls: BTreeMap<u16, MtlsMode> = workload_level
            .map(|pa| pa.port_modes.clone())
            .unwrap_or_default();

        let jwt_rules = self
            .request_authentications
            .iter()
            .filter(|ra| applies(&home(&ra.namespace), ra.selector.as_ref()))
            .flat_map(|ra| ra.jwt_rules.iter().cloned())
            .collect();
        let authorization = self
            .authorization_policies
            .iter()
            .filter(|ap| applies(&home(&ap.namespace), ap.selector.as_ref()))
            .map(|ap| AuthorizationPolicy {
                namespace: Some(home(&ap.namespace)),
                ..ap.clone()
            })
            .collect();

        let mut trust_domains = vec![workload.trust_domain.clone()];
        for alias in &self.trust_domain_aliases {
            if !trust_domains.contains(alias) {
                trust_domains.push(alias.clone());
            }
        }
        ServerSecurity {
            mtls,
            port_mtls,
            trust_domains,
            jwt_rules,
            authorization,
            num_trusted_proxies: self.num_trusted_proxies,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{
        AuthzAction, AuthzRule, JwksSource, JwtRule, MeshConfig, RequestAuthentication,
    };

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn pa(
        name: &str,
        ns: Option<&str>,
        selector: Option<&[(&str, &str)]>,
        mode: Option<MtlsMode>,
    ) -> PeerAuthentication {
        PeerAuthentication {
            name: name.to_owned(),
            namespace: ns.map(str::to_owned),
            selector: selector.map(labels),
            mode,
            port_modes: BTreeMap::new(),
        }
    }

    fn workload(service: &str, namespace: &str) -> Workload {
        Workload {
            service: service.to_owned(),
            namespace: namespace.to_owned(),
            version: Some("v1".to_owned()),
            ..Workload::default()
        }
    }

    fn mode_of(sec: &SecurityConfig, w: &Workload) -> MtlsMode {
        sec.server_security(w).mtls
    }

    use MtlsMode::{Disable, Permissive, Strict};

    #[test]
    fn peer_authentication_precedence() {
        let finance = workload("finance", "foo");
        let other = workload("other", "foo");
        let elsewhere = workload("finance", "bar");
        let mut sec = SecurityConfig::default();
        assert_eq!(mode_of(&sec, &finance), Permissive, "Istio's default");
        sec.default_mtls = Disable;
        assert_eq!(mode_of(&sec, &finance), Disable, "the configured default");

        sec.peer_authentications
            .push(pa("mesh", Some("istio-system"), None, Some(Strict)));
        assert_eq!(mode_of(&sec, &finance), Strict, "mesh-wide");
        assert_eq!(mode_of(&sec, &elsewhere), Strict);

        sec.peer_authentications
            .push(pa("ns", Some("foo"), None, Some(Permissive)));
        assert_eq!(mode_of(&sec, &finance), Permissive, "namespace beats mesh");
        assert_eq!(
            mode_of(&sec, &elsewhere),
            Strict,
            "other namespaces keep mesh"
        );

        sec.peer_authentications.push(pa(
            "finance",
            Some("foo"),
            Some(&[("app", "finance")]),
            Some(Disable),
        ));
        assert_eq!(mode_of(&sec, &finance), Disable, "workload beats namespace");
        assert_eq!(mode_of(&sec, &other), Permissive, "selector does not match");
        assert_eq!(
            mode_of(&sec, &elsewhere),
            Strict,
            "a selector reaches only its own namespace"
        );
    }

    #[test]
    fn unset_inherits_and_first_given_wins() {
        let w = workload("finance", "foo");
        let sec = SecurityConfig {
            peer_authentications: vec![
                pa("mesh", Some("istio-system"), None, Some(Strict)),
                pa("mesh-2", Some("istio-system"), None, Some(Disable)),
                pa("ns", Some("foo"), None, None),
                pa("ns-2", Some("foo"), None, Some(Disable)),
                pa("wl", Some("foo"), Some(&[("app", "finance")]), None),
                pa(
                    "wl-2",
                    Some("foo"),
                    Some(&[("app", "finance")]),
                    Some(Disable),
                ),
            ],
            ..SecurityConfig::default()
        };
        // The first of each level is chosen even when UNSET; UNSET inherits down to the
        // first mesh-wide document.
        assert_eq!(mode_of(&sec, &w), Strict);
    }

    #[test]
    fn namespace_none_is_the_workloads_own() {
        let w = workload("reviews", "bookinfo");
        let sec = SecurityConfig {
            peer_authentications: vec![pa("default", None, None, Some(Strict))],
            ..SecurityConfig::default()
        };
        assert_eq!(mode_of(&sec, &w), Strict);
        // In the root namespace itself, a namespace-wide document is mesh-wide.
        let root = workload("istiod", "istio-system");
        assert_eq!(mode_of(&sec, &root), Strict);
    }

    #[test]
    fn selectors_in_the_root_namespace_are_ignored() {
        let w = workload("finance", "foo");
        let sec = SecurityConfig {
            peer_authentications: vec![pa(
                "root-selector",
                Some("istio-system"),
                Some(&[("app", "finance")]),
                Some(Strict),
            )],
            ..SecurityConfig::default()
        };
        assert_eq!(mode_of(&sec, &w), Permissive);
        // An empty selector is no selector: mesh-wide.
        let sec = SecurityConfig {
            peer_authentications: vec![pa("mesh", Some("istio-system"), Some(&[]), Some(Strict))],
            ..SecurityConfig::default()
        };
        assert_eq!(mode_of(&sec, &w), Strict);
    }

    #[test]
    fn port_modes_come_from_the_workload_document() {
        let w = workload("finance", "foo");
        let mut finance = pa("finance", Some("foo"), Some(&[("app", "finance")]), None);
        finance.port_modes.insert(8080, Disable);
        let sec = SecurityConfig {
            peer_authentications: vec![pa("ns", Some("foo"), None, Some(Strict)), finance],
            ..SecurityConfig::default()
        };
        let s = sec.server_security(&w);
        assert_eq!(s.mtls, Strict, "UNSET inherits the namespace's");
        assert_eq!(s.mtls_for_port(8080), Disable);
        assert_eq!(s.mtls_for_port(9080), Strict);
        // A namespace-wide document's ports never apply (the loader refuses them anyway).
        let mut ns = pa("ns", Some("foo"), None, Some(Strict));
        ns.port_modes.insert(8080, Disable);
        let sec = SecurityConfig {
            peer_authentications: vec![ns],
            ..SecurityConfig::default()
        };
        assert!(sec.server_security(&w).port_mtls.is_empty());
    }

    #[test]
    fn labels_select_by_subset() {
        let mut w = workload("reviews", "default");
        w.labels.insert("team".to_owned(), "books".to_owned());
        let all = w.selector_labels();
        assert!(selects(None, &all));
        assert!(selects(Some(&labels(&[])), &all));
        assert!(selects(Some(&labels(&[("app", "reviews")])), &all));
        assert!(selects(
            Some(&labels(&[
                ("app", "reviews"),
                ("version", "v1"),
                ("team", "books")
            ])),
            &all
        ));
        assert!(!selects(Some(&labels(&[("app", "ratings")])), &all));
        assert!(!selects(
            Some(&labels(&[("app", "reviews"), ("version", "v2")])),
            &all
        ));
        assert!(!selects(Some(&labels(&[("missing", "")])), &all));
    }

    fn rule(issuer: &str) -> JwtRule {
        JwtRule {
            issuer: issuer.to_owned(),
            audiences: Vec::new(),
            keys: JwksSource::Remote {
                uri: "https://example.com/jwks".to_owned(),
                timeout: Duration::from_secs(5),
                refresh: Duration::from_secs(1200),
            },
            from_headers: Vec::new(),
            from_params: Vec::new(),
            from_cookies: Vec::new(),
            forward_original_token: false,
            output_claim_to_headers: Vec::new(),
            output_payload_to_header: None,
        }
    }

    fn ra(
        ns: Option<&str>,
        selector: Option<&[(&str, &str)]>,
        issuer: &str,
    ) -> RequestAuthentication {
        RequestAuthentication {
            name: issuer.to_owned(),
            namespace: ns.map(str::to_owned),
            selector: selector.map(labels),
            jwt_rules: vec![rule(issuer)],
        }
    }

    fn ap(name: &str, ns: Option<&str>, selector: Option<&[(&str, &str)]>) -> AuthorizationPolicy {
        AuthorizationPolicy {
            name: name.to_owned(),
            namespace: ns.map(str::to_owned),
            selector: selector.map(labels),
            action: AuthzAction::Allow,
            rules: vec![AuthzRule::default()],
        }
    }

    #[test]
    fn request_authentications_that_apply() {
        let w = workload("httpbin", "foo");
        let sec = SecurityConfig {
            request_authentications: vec![
                ra(Some("istio-system"), None, "mesh"),
                ra(
                    Some("istio-system"),
                    Some(&[("app", "httpbin")]),
                    "root-selected",
                ),
                ra(
                    Some("istio-system"),
                    Some(&[("app", "other")]),
                    "root-other",
                ),
                ra(Some("foo"), None, "ns"),
                ra(None, Some(&[("app", "httpbin")]), "own-selected"),
                ra(Some("foo"), Some(&[("app", "other")]), "ns-other"),
                ra(Some("bar"), None, "bar"),
                ra(Some("bar"), Some(&[("app", "httpbin")]), "bar-selected"),
            ],
            ..SecurityConfig::default()
        };
        let issuers: Vec<String> = sec
            .server_security(&w)
            .jwt_rules
            .into_iter()
            .map(|r| r.issuer)
            .collect();
        assert_eq!(issuers, ["mesh", "root-selected", "ns", "own-selected"]);
    }

    #[test]
    fn authorization_policies_that_apply() {
        let w = workload("productpage", "default");
        let sec = SecurityConfig {
            root_namespace: "mesh-root".to_owned(),
            authorization_policies: vec![
                ap("allow-nothing", Some("default"), None),
                ap("productpage-viewer", None, Some(&[("app", "productpage")])),
                ap(
                    "details-viewer",
                    Some("default"),
                    Some(&[("app", "details")]),
                ),
                ap("global", Some("mesh-root"), None),
                ap(
                    "global-productpage",
                    Some("mesh-root"),
                    Some(&[("app", "productpage")]),
                ),
                ap("other-ns", Some("foo"), None),
                ap("istio-system-is-not-root", Some("istio-system"), None),
            ],
            ..SecurityConfig::default()
        };
        let s = sec.server_security(&w);
        let names: Vec<(&str, Option<&str>)> = s
            .authorization
            .iter()
            .map(|p| (p.name.as_str(), p.namespace.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("allow-nothing", Some("default")),
                ("productpage-viewer", Some("default")),
                ("global", Some("mesh-root")),
                ("global-productpage", Some("mesh-root")),
            ]
        );
    }

    #[test]
    fn trust_domains_and_inbound() {
        let c = MeshConfig::builder()
            .service("reviews")
            .namespace("bookinfo")
            .trust_domain("example.org")
            .trust_domain_aliases(["old.example.org", "example.org"])
            .mtls(Strict)
            .server_concurrency_limit(9)
            .authorization_policy(ap("all", None, None))
            .build()
            .unwrap();
        let server = c.inbound();
        assert_eq!(server.concurrency_limit, Some(9), "the rest is kept");
        let s = &server.security;
        assert_eq!(s.trust_domains, ["example.org", "old.example.org"]);
        assert_eq!(s.mtls, Strict);
        assert_eq!(s.authorization.len(), 1);
        assert_eq!(s.authorization[0].namespace.as_deref(), Some("bookinfo"));
        assert_eq!(s, &c.security.server_security(&c.workload));
    }
}
