//! Security documents in files: the Istio docs fixtures, every invalid value by path,
//! warnings for what is not implemented, client TLS in DestinationRules, and documents of
//! any shape never panicking the loaders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;

use crate::config::builder::MeshConfigBuilder;
use crate::config::{
    AuthorizationPolicy, AuthzAction, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource,
    ClaimToHeader, ClientTls, ClientTlsMode, ConfigError, DestinationBuilder, Format, JwksSource,
    JwtHeader, JwtRule, Matcher, MeshConfig, MtlsMode, OutboundMode, OutboundTrafficPolicy,
    PeerAuthentication, RequestAuthentication, ServerSecurity, SubsetBuilder,
};

/// The path of a fixture under `tests/fixtures/istio/` of the workspace.
fn fixture(name: &str) -> String {
    format!(
        "{}/../tests/fixtures/istio/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn load(name: &str) -> MeshConfig {
    MeshConfig::from_file(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn yaml(text: &str) -> Result<MeshConfig, ConfigError> {
    MeshConfig::from_str(text, Format::Yaml)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn values(items: &[&str]) -> Matcher {
    Matcher {
        values: strings(items),
        not_values: Vec::new(),
    }
}

fn not_values(items: &[&str]) -> Matcher {
    Matcher {
        values: Vec::new(),
        not_values: strings(items),
    }
}

/// The security `c` resolves for `service` (version v1, plus `extra` labels) in `namespace`.
fn resolved(
    c: &MeshConfig,
    service: &str,
    namespace: &str,
    extra: &[(&str, &str)],
) -> ServerSecurity {
    let mut c = c.clone();
    c.workload.service = service.to_owned();
    c.workload.namespace = namespace.to_owned();
    c.workload.version = Some("v1".to_owned());
    c.workload.labels = labels(extra);
    c.inbound().security
}

fn warning_paths(c: &MeshConfig) -> Vec<&str> {
    c.warnings.iter().map(|w| w.path.as_str()).collect()
}

// ---- the fixtures ----

#[test]
fn fixture_peer_authentication() {
    let c = load("security-peer-authentication.yaml");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let pas = &c.security.peer_authentications;
    assert_eq!(
        pas[0],
        PeerAuthentication {
            name: "default".to_owned(),
            namespace: Some("istio-system".to_owned()),
            selector: None,
            mode: Some(MtlsMode::Strict),
            port_modes: BTreeMap::new(),
        }
    );
    assert_eq!(pas[1].mode, Some(MtlsMode::Permissive));
    assert_eq!(
        pas[2],
        PeerAuthentication {
            name: "finance".to_owned(),
            namespace: Some("foo".to_owned()),
            selector: Some(labels(&[("app", "finance")])),
            mode: Some(MtlsMode::Strict),
            port_modes: BTreeMap::from([(8080, MtlsMode::Disable)]),
        }
    );
    assert_eq!(pas[3].mode, None, "UNSET");
    assert_eq!(pas.len(), 4);

    let finance = resolved(&c, "finance", "foo", &[]);
    assert_eq!(finance.mtls, MtlsMode::Strict);
    assert_eq!(finance.mtls_for_port(8080), MtlsMode::Disable);
    assert_eq!(finance.mtls_for_port(9080), MtlsMode::Strict);
    let other = resolved(&c, "other", "foo", &[]);
    assert_eq!(other.mtls, MtlsMode::Permissive, "the namespace's");
    assert!(other.port_mtls.is_empty());
    let httpbin = resolved(&c, "httpbin", "bar", &[]);
    assert_eq!(httpbin.mtls, MtlsMode::Strict, "UNSET inherits the mesh's");
    assert_eq!(httpbin.mtls_for_port(8080), MtlsMode::Disable);
    assert_eq!(resolved(&c, "reviews", "baz", &[]).mtls, MtlsMode::Strict);
}

#[test]
fn fixture_request_authentication() {
    let c = load("security-request-authentication.yaml");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let ras = &c.security.request_authentications;
    assert_eq!(ras.len(), 3);
    let plain = |issuer: &str, keys: JwksSource| JwtRule {
        issuer: issuer.to_owned(),
        audiences: Vec::new(),
        keys,
        from_headers: Vec::new(),
        from_params: Vec::new(),
        from_cookies: Vec::new(),
        forward_original_token: false,
        output_claim_to_headers: Vec::new(),
        output_payload_to_header: None,
    };
    assert_eq!(
        ras[0],
        RequestAuthentication {
            name: "httpbin".to_owned(),
            namespace: Some("foo".to_owned()),
            selector: Some(labels(&[("app", "httpbin")])),
            jwt_rules: vec![plain(
                "issuer-foo",
                JwksSource::Remote {
                    uri: "https://example.com/.well-known/jwks.json".to_owned(),
                    timeout: Duration::from_secs(10),
                    refresh: Duration::from_secs(20 * 60),
                }
            )],
        }
    );
    let example = &ras[1].jwt_rules[0];
    assert_eq!(
        example.keys,
        JwksSource::remote(
            "https://raw.githubusercontent.com/istio/istio/release-1.24/security/tools/jwt/samples/jwks.json"
        ),
        "5 s timeout and 20 min refresh by default"
    );
    assert_eq!(
        example.output_payload_to_header.as_deref(),
        Some("x-jwt-payload")
    );
    assert_eq!(
        example.output_claim_to_headers,
        [ClaimToHeader {
            header: "x-jwt-claim-foo".to_owned(),
            claim: "foo".to_owned(),
        }]
    );
    let custom = &ras[2].jwt_rules[0];
    assert_eq!(
        custom.audiences,
        strings(&[
            "bookstore_android.apps.example.com",
            "bookstore_web.apps.example.com"
        ])
    );
    assert_eq!(
        custom.from_headers,
        [JwtHeader {
            name: "x-jwt-assertion".to_owned(),
            prefix: "Bearer ".to_owned(),
        }]
    );
    assert_eq!(custom.from_params, ["my_token"]);
    assert_eq!(custom.from_cookies, ["session"]);
    assert!(custom.forward_original_token);
    assert!(matches!(&custom.keys, JwksSource::Inline(jwks) if jwks.contains("\"kty\": \"RSA\"")));

    let issuers =
        |s: ServerSecurity| -> Vec<String> { s.jwt_rules.into_iter().map(|r| r.issuer).collect() };
    assert_eq!(
        issuers(resolved(&c, "httpbin", "foo", &[])),
        ["issuer-foo", "issuer-bar"]
    );
    assert_eq!(
        issuers(resolved(
            &c,
            "istio-ingressgateway",
            "istio-system",
            &[("istio", "ingressgateway")]
        )),
        ["testing@secure.istio.io"]
    );
    assert!(issuers(resolved(&c, "httpbin", "bar", &[])).is_empty());
}

#[test]
fn fixture_authorization_policy() {
    let c = load("security-authorization-policy.yaml");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let aps = &c.security.authorization_policies;
    let names: Vec<&str> = aps.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "allow-nothing",
            "productpage-viewer",
            "details-viewer",
            "reviews-viewer",
            "ratings-viewer",
            "httpbin",
            "httpbin-deny",
            "deny-admin",
            "allow-all",
            "audit-posts",
        ]
    );
    assert_eq!(
        aps[0],
        AuthorizationPolicy {
            name: "allow-nothing".to_owned(),
            namespace: Some("default".to_owned()),
            selector: None,
            action: AuthzAction::Allow,
            rules: Vec::new(),
        },
        "spec: {{}} is an ALLOW policy without rules: it allows nothing"
    );
    let get = AuthzOperation {
        methods: values(&["GET"]),
        ..AuthzOperation::default()
    };
    assert_eq!(
        aps[1].rules,
        [AuthzRule {
            to: vec![get.clone()],
            ..AuthzRule::default()
        }]
    );
    assert_eq!(
        aps[2].rules,
        [AuthzRule {
            from: vec![AuthzSource {
                principals: values(&["cluster.local/ns/default/sa/bookinfo-productpage"]),
                ..AuthzSource::default()
            }],
            to: vec![get],
            when: Vec::new(),
        }]
    );
    assert_eq!(
        aps[5],
        AuthorizationPolicy {
            name: "httpbin".to_owned(),
            namespace: Some("foo".to_owned()),
            selector: Some(labels(&[("app", "httpbin"), ("version", "v1")])),
            action: AuthzAction::Allow,
            rules: vec![AuthzRule {
                from: vec![
                    AuthzSource {
                        principals: values(&["cluster.local/ns/default/sa/sleep"]),
                        ..AuthzSource::default()
                    },
                    AuthzSource {
                        namespaces: values(&["test"]),
                        ..AuthzSource::default()
                    },
                ],
                to: vec![
                    AuthzOperation {
                        methods: values(&["GET"]),
                        paths: values(&["/info*"]),
                        ..AuthzOperation::default()
                    },
                    AuthzOperation {
                        methods: values(&["POST"]),
                        paths: values(&["/data"]),
                        ..AuthzOperation::default()
                    },
                ],
                when: vec![AuthzCondition {
                    key: "request.auth.claims[iss]".to_owned(),
                    matcher: values(&["https://accounts.google.com"]),
                }],
            }],
        }
    );
    assert_eq!(aps[6].action, AuthzAction::Deny);
    assert_eq!(aps[6].rules[0].from[0].namespaces, not_values(&["foo"]));
    let admin = &aps[7];
    assert_eq!(admin.selector, None);
    assert_eq!(
        admin.rules[0].to[0].paths,
        values(&["/admin/{**}", "/api/{*}/admin"])
    );
    assert_eq!(
        admin.rules[1].from[0].ip_blocks,
        not_values(&["1.2.3.4", "5.6.7.0/24"])
    );
    assert_eq!(admin.rules[1].to[0].ports, values(&["8080"]));
    assert_eq!(
        aps[8].rules,
        [AuthzRule::default()],
        "rules: [{{}}] matches everything"
    );
    assert_eq!(aps[9].action, AuthzAction::Audit);
    assert_eq!(
        aps[9].rules[0].when,
        [AuthzCondition {
            key: "source.ip".to_owned(),
            matcher: not_values(&["10.0.0.0/8"]),
        }]
    );

    let applied = |service: &str, namespace: &str, version: &str| -> Vec<String> {
        let mut c = c.clone();
        c.workload.service = service.to_owned();
        c.workload.namespace = namespace.to_owned();
        c.workload.version = Some(version.to_owned());
        c.inbound()
            .security
            .authorization
            .into_iter()
            .map(|p| format!("{}/{}", p.namespace.unwrap_or_default(), p.name))
            .collect()
    };
    assert_eq!(
        applied("productpage", "default", "v1"),
        ["default/allow-nothing", "default/productpage-viewer"]
    );
    assert_eq!(
        applied("ratings", "default", "v1"),
        ["default/allow-nothing", "default/ratings-viewer"]
    );
    assert_eq!(
        applied("httpbin", "foo", "v1"),
        [
            "foo/httpbin",
            "foo/httpbin-deny",
            "foo/deny-admin",
            "foo/allow-all",
            "foo/audit-posts"
        ]
    );
    assert_eq!(
        applied("httpbin", "foo", "v2"),
        ["foo/deny-admin", "foo/allow-all", "foo/audit-posts"]
    );
    assert!(applied("productpage", "bar", "v1").is_empty());
}

#[test]
fn fixture_egress() {
    let c = load("egress.yaml");
    assert_eq!(
        c.security.outbound,
        OutboundTrafficPolicy {
            mode: OutboundMode::RegistryOnly,
            allowed_hosts: strings(&["httpbin.org", "www.google.com", "*.wikipedia.org"]),
        }
    );
    assert_eq!(
        warning_paths(&c),
        [
            "Sidecar istio-system/default: spec.egress",
            "ServiceEntry httpbin-ext: spec.ports",
            "ServiceEntry httpbin-ext: spec.resolution",
            "ServiceEntry google: spec.ports",
            "ServiceEntry google: spec.resolution",
            "ServiceEntry wikipedia: spec.ports",
        ]
    );
    assert!(
        c.warnings[1]
            .message
            .contains("the hosts are allowed as egress destinations"),
        "{}",
        c.warnings[1]
    );

    // Through MESH_CONFIG, with more hosts from a variable.
    let c = MeshConfig::from_vars([
        ("MESH_CONFIG", fixture("egress.yaml")),
        (
            "MESH_ALLOWED_HOSTS",
            "API.example.com, httpbin.org".to_owned(),
        ),
    ])
    .unwrap();
    assert_eq!(
        c.security.outbound.allowed_hosts,
        [
            "httpbin.org",
            "www.google.com",
            "*.wikipedia.org",
            "api.example.com"
        ]
    );
}

#[test]
fn fixtures_together_through_mesh_config() {
    for name in [
        "security-peer-authentication.yaml",
        "security-request-authentication.yaml",
        "security-authorization-policy.yaml",
        "egress.yaml",
    ] {
        let c = MeshConfig::from_vars([
            ("MESH_CONFIG", fixture(name)),
            ("POD_NAMESPACE", "foo".to_owned()),
            ("MESH_SERVICE", "httpbin".to_owned()),
        ])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c, {
            let mut file = load(name);
            file.workload.namespace = "foo".to_owned();
            file.workload.service = "httpbin".to_owned();
            file
        });
    }
}

// ---- invalid values, by path ----

#[track_caller]
fn assert_error(text: &str, path: &str, needles: &[&str]) {
    let e = match yaml(text) {
        Err(e) => e,
        Ok(c) => panic!("expected an error at {path}, got {c:?}"),
    };
    let message = e.to_string();
    assert_eq!(e.path(), Some(path), "{message}");
    assert!(matches!(e, ConfigError::Invalid { .. }), "{message}");
    for needle in needles {
        assert!(message.contains(needle), "`{needle}` missing in: {message}");
    }
}

fn doc(api: &str, kind: &str, spec: &str) -> String {
    format!(
        "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: p, namespace: foo}}\nspec: {spec}\n"
    )
}

fn ap_with(spec: &str) -> String {
    doc("security.istio.io/v1", "AuthorizationPolicy", spec)
}

fn ra_with(rule: &str) -> String {
    doc(
        "security.istio.io/v1",
        "RequestAuthentication",
        &format!("{{jwtRules: [{rule}]}}"),
    )
}

fn pa_with(spec: &str) -> String {
    doc("security.istio.io/v1beta1", "PeerAuthentication", spec)
}

type Case = (String, &'static str, Vec<&'static str>);

fn check_cases(label: &str, cases: Vec<Case>) {
    for (text, path, needles) in cases {
        assert_error(&text, &format!("{label}: {path}"), &needles);
    }
}

#[test]
fn invalid_authorization_policies_name_their_path() {
    let cases: Vec<Case> = vec![
        (
            ap_with("{action: CUSTOM, provider: {name: ext-authz}}"),
            "spec.action",
            vec!["\"CUSTOM\"", "is not supported"],
        ),
        (
            ap_with("{provider: {name: ext-authz}}"),
            "spec.provider",
            vec!["not supported"],
        ),
        (
            ap_with("{action: allow}"),
            "spec.action",
            vec!["\"allow\"", "expected one of ALLOW, DENY, AUDIT"],
        ),
        (
            ap_with("{rules: [{from: [{source: {ipBlocks: [10.0.0.0/8, 10.0.0.300]}}]}]}"),
            "spec.rules[0].from[0].source.ipBlocks[1]",
            vec!["\"10.0.0.300\"", "IP address or a CIDR block"],
        ),
        (
            ap_with("{rules: [{}, {from: [{source: {notRemoteIpBlocks: [10.0.0.0/33]}}]}]}"),
            "spec.rules[1].from[0].source.notRemoteIpBlocks[0]",
            vec!["\"10.0.0.0/33\""],
        ),
        (
            ap_with("{rules: [{to: [{operation: {ports: [\"80\", http]}}]}]}"),
            "spec.rules[0].to[0].operation.ports[1]",
            vec!["\"http\"", "1 to 65535"],
        ),
        (
            ap_with("{rules: [{to: [{operation: {notPorts: [\"0\"]}}]}]}"),
            "spec.rules[0].to[0].operation.notPorts[0]",
            vec!["\"0\""],
        ),
        (
            ap_with("{rules: [{to: [{operation: {ports: [70000]}}]}]}"),
            "spec.rules[0].to[0].operation.ports[0]",
            vec!["\"70000\""],
        ),
        (
            ap_with("{rules: [{to: [{operation: {paths: [/ok, \"/a/{**}/b\"]}}]}]}"),
            "spec.rules[0].to[0].operation.paths[1]",
            vec!["\"/a/{**}/b\"", "`{**}` may only be the last segment"],
        ),
        (
            ap_with("{rules: [{to: [{operation: {notPaths: [\"/a/{id}\"]}}]}]}"),
            "spec.rules[0].to[0].operation.notPaths[0]",
            vec!["whole segments"],
        ),
        (
            ap_with("{rules: [{when: [{key: \"\", values: [a]}]}]}"),
            "spec.rules[0].when[0].key",
            vec!["must not be empty"],
        ),
        (
            ap_with("{rules: [{when: [{values: [a]}]}]}"),
            "spec.rules[0].when[0].key",
            vec!["is required"],
        ),
        (
            ap_with("{rules: [{when: [{key: \"request.header[x]\", values: [a]}]}]}"),
            "spec.rules[0].when[0].key",
            vec!["unknown attribute"],
        ),
        (
            ap_with("{rules: [{when: [{key: \"request.headers[]\", values: [a]}]}]}"),
            "spec.rules[0].when[0].key",
            vec!["expected request.headers[NAME]"],
        ),
        (
            ap_with("{rules: [{when: [{key: source.ip, values: [nope]}]}]}"),
            "spec.rules[0].when[0].values[0]",
            vec!["\"nope\""],
        ),
        (
            ap_with("{rules: [{when: [{key: destination.port, notValues: [\"99999\"]}]}]}"),
            "spec.rules[0].when[0].notValues[0]",
            vec!["\"99999\""],
        ),
        (
            ap_with("{rules: [{when: [{key: source.ip}]}]}"),
            "spec.rules[0].when[0]",
            vec!["at least one of values or notValues"],
        ),
        (
            ap_with("{rules: [{from: [{source: {}}]}]}"),
            "spec.rules[0].from[0].source",
            vec!["at least one field"],
        ),
        (
            ap_with("{rules: [{from: [{}]}]}"),
            "spec.rules[0].from[0].source",
            vec!["is required"],
        ),
        (
            ap_with("{rules: [{to: [{operation: {}}]}]}"),
            "spec.rules[0].to[0].operation",
            vec!["at least one field"],
        ),
        (
            ap_with("{rules: [{from: [{source: {principals: [a], serviceAccounts: [sleep]}}]}]}"),
            "spec.rules[0].from[0].source.serviceAccounts",
            vec!["write principals"],
        ),
        (
            ap_with("{rules: {}}"),
            "spec.rules",
            vec!["expected a list"],
        ),
        (
            ap_with("{rules: [{from: [{source: {principals: cluster.local/ns/a/sa/b}}]}]}"),
            "spec.rules[0].from[0].source.principals",
            vec!["expected a list"],
        ),
        (
            ap_with("{selector: {matchLabels: {app: \"*\"}}}"),
            "spec.selector.matchLabels.app",
            vec!["wildcards"],
        ),
        (
            ap_with("{selector: {matchLabels: {\"\": a}}}"),
            "spec.selector.matchLabels.",
            vec!["label key"],
        ),
    ];
    check_cases("AuthorizationPolicy foo/p", cases);
}

#[test]
fn invalid_request_authentications_name_their_path() {
    const URI: &str = "jwksUri: https://example.com/jwks.json";
    let cases: Vec<Case> = vec![
        (
            ra_with("{issuer: a, jwks: not json}"),
            "spec.jwtRules[0].jwks",
            vec!["\"not json\"", "JSON Web Key Set"],
        ),
        (
            ra_with("{issuer: a, jwks: '{\"keys\": 1}'}"),
            "spec.jwtRules[0].jwks",
            vec!["`keys` array"],
        ),
        (
            ra_with(&format!("{{issuer: a, jwks: '{{\"keys\": []}}', {URI}}}")),
            "spec.jwtRules[0].jwksUri",
            vec!["set either jwks or jwksUri, not both"],
        ),
        (
            ra_with(&format!("{{{URI}}}")),
            "spec.jwtRules[0].issuer",
            vec!["is required"],
        ),
        (
            ra_with(&format!("{{issuer: '', {URI}}}")),
            "spec.jwtRules[0].issuer",
            vec!["must not be empty"],
        ),
        (
            ra_with("{issuer: a}"),
            "spec.jwtRules[0]",
            vec!["one of jwks or jwksUri is required"],
        ),
        (
            ra_with("{issuer: a, jwksUri: ftp://example.com/jwks}"),
            "spec.jwtRules[0].jwksUri",
            vec!["\"ftp://example.com/jwks\"", "http or https"],
        ),
        (
            ra_with("{issuer: a, jwksUri: /jwks.json}"),
            "spec.jwtRules[0].jwksUri",
            vec!["http or https"],
        ),
        (
            ra_with(&format!("{{issuer: a, {URI}, timeout: 0s}}")),
            "spec.jwtRules[0].timeout",
            vec!["greater than 0"],
        ),
        (
            ra_with(&format!("{{issuer: a, {URI}, timeout: 5}}")),
            "spec.jwtRules[0].timeout",
            vec!["\"5\""],
        ),
        (
            ra_with(&format!(
                "{{issuer: a, {URI}, fromHeaders: [{{name: bad header}}]}}"
            )),
            "spec.jwtRules[0].fromHeaders[0].name",
            vec!["\"bad header\"", "header name"],
        ),
        (
            ra_with(&format!(
                "{{issuer: a, {URI}, fromHeaders: [{{prefix: x}}]}}"
            )),
            "spec.jwtRules[0].fromHeaders[0].name",
            vec!["is required"],
        ),
        (
            ra_with(&format!("{{issuer: a, {URI}, fromParams: [t, '']}}")),
            "spec.jwtRules[0].fromParams[1]",
            vec!["must not be empty"],
        ),
        (
            ra_with(&format!("{{issuer: a, {URI}, fromCookies: ['']}}")),
            "spec.jwtRules[0].fromCookies[0]",
            vec!["must not be empty"],
        ),
        (
            ra_with(&format!(
                "{{issuer: a, {URI}, outputClaimToHeaders: [{{header: 'x:y', claim: sub}}]}}"
            )),
            "spec.jwtRules[0].outputClaimToHeaders[0].header",
            vec!["\"x:y\""],
        ),
        (
            ra_with(&format!(
                "{{issuer: a, {URI}, outputClaimToHeaders: [{{header: x-sub}}]}}"
            )),
            "spec.jwtRules[0].outputClaimToHeaders[0].claim",
            vec!["is required"],
        ),
        (
            ra_with(&format!(
                "{{issuer: a, {URI}, outputPayloadToHeader: 'a b'}}"
            )),
            "spec.jwtRules[0].outputPayloadToHeader",
            vec!["header name"],
        ),
        (
            ra_with(&format!("{{issuer: a, {URI}, audiences: [x, '']}}")),
            "spec.jwtRules[0].audiences[1]",
            vec!["must not be empty"],
        ),
        (
            ra_with(&format!("{{issuer: a, {URI}, forwardOriginalToken: yes}}")),
            "spec.jwtRules[0].forwardOriginalToken",
            vec!["true or false"],
        ),
    ];
    check_cases("RequestAuthentication foo/p", cases);
}

#[test]
fn invalid_peer_authentications_name_their_path() {
    let cases: Vec<Case> = vec![
        (
            pa_with("{mtls: {mode: STRCT}}"),
            "spec.mtls.mode",
            vec![
                "\"STRCT\"",
                "expected one of UNSET, DISABLE, PERMISSIVE, STRICT",
            ],
        ),
        (
            pa_with("{mtls: STRICT}"),
            "spec.mtls",
            vec!["expected an object"],
        ),
        (
            pa_with("{portLevelMtls: {8080: {mode: DISABLE}}}"),
            "spec.portLevelMtls",
            vec!["workload selector"],
        ),
        (
            pa_with("{selector: {matchLabels: {}}, portLevelMtls: {8080: {mode: DISABLE}}}"),
            "spec.portLevelMtls",
            vec!["workload selector"],
        ),
        (
            pa_with("{selector: {matchLabels: {app: a}}, portLevelMtls: {http: {mode: DISABLE}}}"),
            "spec.portLevelMtls.http",
            vec!["\"http\"", "1 to 65535"],
        ),
        (
            pa_with("{selector: {matchLabels: {app: a}}, portLevelMtls: {'0': {mode: DISABLE}}}"),
            "spec.portLevelMtls.0",
            vec!["\"0\""],
        ),
        (
            pa_with("{selector: {matchLabels: {app: a}}, portLevelMtls: {8080: {mode: OFF}}}"),
            "spec.portLevelMtls.8080.mode",
            vec!["\"OFF\""],
        ),
        (
            pa_with("{selector: {matchLabels: [app]}}"),
            "spec.selector.matchLabels",
            vec!["expected an object"],
        ),
    ];
    check_cases("PeerAuthentication foo/p", cases);
}

#[test]
fn invalid_egress_documents_name_their_path() {
    let se = |spec: &str| doc("networking.istio.io/v1", "ServiceEntry", spec);
    check_cases(
        "ServiceEntry foo/p",
        vec![
            (se("{ports: []}"), "spec.hosts", vec!["is required"]),
            (se("{hosts: []}"), "spec.hosts", vec!["at least one host"]),
            (
                se("{hosts: [a.example.com, '*']}"),
                "spec.hosts[1]",
                vec!["ALLOW_ANY"],
            ),
            (
                se("{hosts: ['api.*.com']}"),
                "spec.hosts[0]",
                vec!["\"api.*.com\""],
            ),
            (
                se("{hosts: [a.com], location: OUTSIDE}"),
                "spec.location",
                vec!["MESH_EXTERNAL"],
            ),
        ],
    );
    assert_error(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: p, namespace: foo}\n",
        "ServiceEntry foo/p: spec",
        &["is required"],
    );
    let sidecar = |spec: &str| doc("networking.istio.io/v1alpha3", "Sidecar", spec);
    check_cases(
        "Sidecar foo/p",
        vec![
            (
                sidecar("{outboundTrafficPolicy: {mode: DENY_ALL}}"),
                "spec.outboundTrafficPolicy.mode",
                vec!["\"DENY_ALL\"", "ALLOW_ANY, REGISTRY_ONLY"],
            ),
            (
                sidecar("{outboundTrafficPolicy: REGISTRY_ONLY}"),
                "spec.outboundTrafficPolicy",
                vec!["expected an object"],
            ),
        ],
    );
}

#[test]
fn invalid_client_tls_names_its_path() {
    let dr = |spec: &str| {
        doc(
            "networking.istio.io/v1",
            "DestinationRule",
            &format!("{{host: reviews, {spec}}}"),
        )
    };
    check_cases(
        "DestinationRule foo/p",
        vec![
            (
                dr("trafficPolicy: {tls: {mode: STRICT}}"),
                "spec.trafficPolicy.tls.mode",
                vec!["\"STRICT\"", "DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL"],
            ),
            (
                dr("trafficPolicy: {tls: {mode: MUTUAL, caCertificates: /ca.pem}}"),
                "spec.trafficPolicy.tls.clientCertificate",
                vec!["is required for MUTUAL"],
            ),
            (
                dr("trafficPolicy: {tls: {mode: SIMPLE}}"),
                "spec.trafficPolicy.tls.caCertificates",
                vec!["unless insecureSkipVerify"],
            ),
            (
                dr(
                    "subsets: [{name: v1, trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: [a]}}}]",
                ),
                "spec.subsets[0].trafficPolicy.tls.subjectAltNames",
                vec!["insecureSkipVerify"],
            ),
            (
                dr(
                    "trafficPolicy: {portLevelSettings: [{port: {number: 443}, tls: {mode: MUTUAL, clientCertificate: /c.pem, caCertificates: /ca.pem}}]}",
                ),
                "spec.trafficPolicy.portLevelSettings[0].tls.privateKey",
                vec!["is required for MUTUAL"],
            ),
            (
                dr(
                    "trafficPolicy: {tls: {mode: SIMPLE, credentialName: secret, caCertificates: /ca.pem}}",
                ),
                "spec.trafficPolicy.tls.credentialName",
                vec!["cannot be set with caCertificates"],
            ),
            (
                dr("trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: 'true'}}"),
                "spec.trafficPolicy.tls.insecureSkipVerify",
                vec!["true or false"],
            ),
        ],
    );
}

#[test]
fn security_api_versions() {
    for version in ["v1", "v1beta1"] {
        for kind in [
            "PeerAuthentication",
            "RequestAuthentication",
            "AuthorizationPolicy",
        ] {
            let text = doc(&format!("security.istio.io/{version}"), kind, "{}");
            assert!(yaml(&text).is_ok(), "{kind} {version}");
        }
    }
    for version in ["v1", "v1beta1", "v1alpha3"] {
        let text = doc(
            &format!("networking.istio.io/{version}"),
            "ServiceEntry",
            "{hosts: [a.example.com]}",
        );
        assert!(yaml(&text).is_ok(), "ServiceEntry {version}");
        let text = doc(&format!("networking.istio.io/{version}"), "Sidecar", "{}");
        assert!(yaml(&text).is_ok(), "Sidecar {version}");
    }
    assert_error(
        &doc("security.istio.io/v1alpha1", "PeerAuthentication", "{}"),
        "PeerAuthentication foo/p: apiVersion",
        &[
            "\"security.istio.io/v1alpha1\"",
            "expected security.istio.io/v1 or security.istio.io/v1beta1",
        ],
    );
    assert_error(
        &doc("networking.istio.io/v1", "AuthorizationPolicy", "{}"),
        "AuthorizationPolicy foo/p: apiVersion",
        &["security.istio.io/v1"],
    );
    assert_error(
        &doc("security.istio.io/v1", "Sidecar", "{}"),
        "Sidecar foo/p: apiVersion",
        &["networking.istio.io/v1alpha3"],
    );
    assert_error(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {namespace: foo}\n",
        "PeerAuthentication documents[0]: metadata.name",
        &["is required"],
    );
}

// ---- meaning ----

#[test]
fn rules_absent_empty_and_one_empty_rule() {
    let policy = |spec: Option<&str>| -> AuthorizationPolicy {
        let text = match spec {
            Some(spec) => ap_with(spec),
            None => {
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n"
                    .to_owned()
            }
        };
        let c = yaml(&text).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        c.security.authorization_policies[0].clone()
    };
    for spec in [
        None,
        Some("{}"),
        Some("{rules: []}"),
        Some("{action: ALLOW}"),
    ] {
        let p = policy(spec);
        assert_eq!(p.action, AuthzAction::Allow, "{spec:?}");
        assert!(p.rules.is_empty(), "{spec:?}: allows nothing");
    }
    assert_eq!(policy(None).namespace, None, "no metadata.namespace");
    assert_eq!(policy(Some("{}")).namespace.as_deref(), Some("foo"));
    assert_eq!(policy(Some("{rules: [{}]}")).rules, [AuthzRule::default()]);
    let deny = policy(Some("{action: DENY}"));
    assert_eq!((deny.action, deny.rules.len()), (AuthzAction::Deny, 0));
    let ports = policy(Some(
        "{rules: [{to: [{operation: {ports: [8080, \"9080\"]}}]}]}",
    ));
    assert_eq!(ports.rules[0].to[0].ports, values(&["8080", "9080"]));
}

#[test]
fn peer_authentication_shapes() {
    let pa = |spec: &str| yaml(&pa_with(spec)).unwrap().security.peer_authentications[0].clone();
    assert_eq!(pa("{}").mode, None);
    assert_eq!(pa("{mtls: {}}").mode, None);
    assert_eq!(pa("{mtls: {mode: UNSET}}").mode, None);
    assert_eq!(pa("{mtls: {mode: DISABLE}}").mode, Some(MtlsMode::Disable));
    assert_eq!(
        pa("{selector: {}}").selector,
        None,
        "no labels is no selector"
    );
    let p = pa(
        "{selector: {matchLabels: {app: a, version: 2}}, portLevelMtls: {8080: {mode: UNSET}, 9000: {mode: STRICT}, 9001: {}}}",
    );
    assert_eq!(p.selector, Some(labels(&[("app", "a"), ("version", "2")])));
    assert_eq!(
        p.port_modes,
        BTreeMap::from([(9000, MtlsMode::Strict)]),
        "UNSET ports take the workload's mode, which leaving them out does"
    );
}

#[test]
fn not_implemented_fields_are_warnings() {
    let text = r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}
  jwtRules:
  - issuer: a
    jwks: '{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}'
    timeout: 3s
    spaceDelimitedClaims: [scope]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: authz, namespace: foo}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  rules:
  - to: [{operation: {methods: [GET], typo: 1}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: pa, namespace: foo}
spec: {mtls: {mode: STRICT, extra: 1}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: foo}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress: []
  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: foo}
spec:
  hosts: [api.example.com]
  addresses: [10.0.0.1]
  endpoints: [{address: 10.0.0.1}]
  exportTo: ["."]
  location: MESH_INTERNAL
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr, namespace: foo}
spec:
  host: api.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, insecureSkipVerify: true, credentialName: api-cert, caCrl: /crl.pem}
"#;
    let c = yaml(text).unwrap();
    assert_eq!(
        warning_paths(&c),
        [
            "RequestAuthentication foo/jwt: spec.targetRef",
            "RequestAuthentication foo/jwt: spec.jwtRules[0].timeout",
            "RequestAuthentication foo/jwt: spec.jwtRules[0].spaceDelimitedClaims",
            "AuthorizationPolicy foo/authz: spec.targetRefs",
            "AuthorizationPolicy foo/authz: spec.rules[0].to[0].operation.typo",
            "PeerAuthentication foo/pa: spec.mtls.extra",
            "Sidecar foo/default: spec.outboundTrafficPolicy.egressProxy",
            "Sidecar foo/default: spec.workloadSelector",
            "Sidecar foo/default: spec.ingress",
            "ServiceEntry foo/se: spec.addresses",
            "ServiceEntry foo/se: spec.endpoints",
            "ServiceEntry foo/se: spec.exportTo",
            "DestinationRule foo/dr: spec.trafficPolicy.tls.credentialName",
            "DestinationRule foo/dr: spec.trafficPolicy.tls.caCrl",
        ]
    );
    // The documents still apply.
    assert_eq!(c.security.request_authentications[0].jwt_rules.len(), 1);
    assert_eq!(
        c.security.authorization_policies[0].rules[0].to[0].methods,
        values(&["GET"])
    );
    assert_eq!(
        c.security.peer_authentications[0].mode,
        Some(MtlsMode::Strict)
    );
    assert_eq!(c.security.outbound.allowed_hosts, ["api.example.com"]);
    assert_eq!(c.security.outbound.mode, OutboundMode::AllowAny);
    let tls = c.destinations[0].policy.tls.as_ref().unwrap();
    assert_eq!(tls.mode, ClientTlsMode::Simple);
    assert!(tls.insecure_skip_verify);
}

#[test]
fn client_tls_in_destination_rules() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
      sni: reviews.default.svc.cluster.local
      subjectAltNames: ["spiffe://cluster.local/ns/default/sa/reviews"]
    portLevelSettings:
    - port: {number: 443}
      tls:
        mode: MUTUAL
        clientCertificate: /etc/certs/cert.pem
        privateKey: /etc/certs/key.pem
        caCertificates: /etc/certs/ca.pem
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {tls: {mode: DISABLE}}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
    trafficPolicy: {tls: {sni: v3.example.com, clientCertificate: ""}}
"#;
    let c = yaml(text).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let istio = ClientTls {
        sni: Some("reviews.default.svc.cluster.local".to_owned()),
        subject_alt_names: strings(&["spiffe://cluster.local/ns/default/sa/reviews"]),
        ..ClientTls::mode(ClientTlsMode::IstioMutual)
    };
    let mutual = ClientTls {
        client_certificate: Some(PathBuf::from("/etc/certs/cert.pem")),
        private_key: Some(PathBuf::from("/etc/certs/key.pem")),
        ca_certificates: Some(PathBuf::from("/etc/certs/ca.pem")),
        ..ClientTls::mode(ClientTlsMode::Mutual)
    };
    let disable = ClientTls::mode(ClientTlsMode::Disable);
    let v3 = ClientTls {
        sni: Some("v3.example.com".to_owned()),
        ..ClientTls::mode(ClientTlsMode::Disable)
    };
    let tls = |i: usize| -> Vec<Option<ClientTls>> {
        let d = &c.destinations[i];
        std::iter::once(d.policy.tls.clone())
            .chain(d.subsets.iter().map(|s| s.policy.tls.clone()))
            .collect()
    };
    assert_eq!(c.destinations[0].port, None);
    assert_eq!(
        tls(0),
        [
            Some(istio.clone()),
            Some(disable.clone()),
            Some(istio.clone()),
            Some(v3.clone())
        ],
        "mode left out is DISABLE, as in Istio; an empty string is unset"
    );
    assert_eq!(c.destinations[1].port, Some(443));
    assert_eq!(
        tls(1),
        [Some(mutual.clone()), Some(disable), Some(mutual), Some(v3)]
    );

    // The same from code.
    let built = MeshConfig::builder()
        .destination(
            DestinationBuilder::new("reviews")
                .tls(istio)
                .subset(
                    SubsetBuilder::new("v1")
                        .label("version", "v1")
                        .tls(ClientTls::mode(ClientTlsMode::Disable)),
                )
                .subset(SubsetBuilder::new("v2").label("version", "v2"))
                .subset(
                    SubsetBuilder::new("v3")
                        .label("version", "v3")
                        .tls(ClientTls {
                            sni: Some("v3.example.com".to_owned()),
                            ..ClientTls::mode(ClientTlsMode::Disable)
                        }),
                ),
        )
        .build()
        .unwrap();
    assert_eq!(c.destinations[0], built.destinations[0]);
}

#[test]
fn model_validation_names_security_paths() {
    use crate::config::CertificateFiles;

    fn ap(rule: AuthzRule) -> AuthorizationPolicy {
        AuthorizationPolicy {
            name: "p".to_owned(),
            namespace: None,
            selector: None,
            action: AuthzAction::Allow,
            rules: vec![rule],
        }
    }
    fn ra(change: impl FnOnce(&mut JwtRule)) -> RequestAuthentication {
        let mut rule = JwtRule {
            issuer: "a".to_owned(),
            audiences: Vec::new(),
            keys: JwksSource::remote("https://example.com/jwks"),
            from_headers: Vec::new(),
            from_params: Vec::new(),
            from_cookies: Vec::new(),
            forward_original_token: false,
            output_claim_to_headers: Vec::new(),
            output_payload_to_header: None,
        };
        change(&mut rule);
        RequestAuthentication {
            name: "r".to_owned(),
            namespace: Some("foo".to_owned()),
            selector: None,
            jwt_rules: vec![rule],
        }
    }
    fn pa(selector: Option<&[(&str, &str)]>, port: u16) -> PeerAuthentication {
        PeerAuthentication {
            name: "pa".to_owned(),
            namespace: None,
            selector: selector.map(labels),
            mode: None,
            port_modes: BTreeMap::from([(port, MtlsMode::Disable)]),
        }
    }
    type Change = Box<dyn Fn(&mut MeshConfig)>;
    let cases: Vec<(Change, &str, &str)> = vec![
        (
            Box::new(|c| {
                c.security.certificates = Some(CertificateFiles {
                    chain: PathBuf::new(),
                    ..CertificateFiles::in_dir(
                        "/etc/certs",
                        crate::config::CertificateLayout::Istio,
                    )
                })
            }),
            "security.certificates.chain",
            "must not be empty",
        ),
        (
            Box::new(|c| {
                let mut files =
                    CertificateFiles::in_dir("/etc/certs", crate::config::CertificateLayout::Istio);
                files.refresh = Duration::ZERO;
                c.security.certificates = Some(files);
            }),
            "security.certificates.refresh",
            "\"0s\"",
        ),
        (
            Box::new(|c| c.security.root_namespace = "Istio_System".to_owned()),
            "security.rootNamespace",
            "\"Istio_System\"",
        ),
        (
            Box::new(|c| c.security.trust_domain_aliases = strings(&["ok.org", "no way"])),
            "security.trustDomainAliases[1]",
            "\"no way\"",
        ),
        (
            Box::new(|c| c.security.identity_template = "spiffe://{td}/x".to_owned()),
            "security.identityTemplate",
            "placeholders",
        ),
        (
            Box::new(|c| c.security.outbound.allowed_hosts = strings(&["*"])),
            "security.outbound.allowedHosts[0]",
            "ALLOW_ANY",
        ),
        (
            Box::new(|c| c.security.peer_authentications = vec![pa(Some(&[("app", "a")]), 0)]),
            "security.peerAuthentications[0].portLevelMtls.0",
            "1 to 65535",
        ),
        (
            Box::new(|c| c.security.peer_authentications = vec![pa(None, 8080)]),
            "security.peerAuthentications[0].portLevelMtls.8080",
            "workload selector",
        ),
        (
            Box::new(|c| c.security.peer_authentications = vec![pa(Some(&[("app", "a*")]), 8080)]),
            "security.peerAuthentications[0].selector.matchLabels.app",
            "wildcards",
        ),
        (
            Box::new(|c| {
                let mut p = pa(Some(&[("app", "a")]), 8080);
                p.name = "Bad".to_owned();
                c.security.peer_authentications = vec![p];
            }),
            "security.peerAuthentications[0].name",
            "\"Bad\"",
        ),
        (
            Box::new(|c| c.security.request_authentications = vec![ra(|r| r.issuer.clear())]),
            "security.requestAuthentications[0].jwtRules[0].issuer",
            "must not be empty",
        ),
        (
            Box::new(|c| {
                c.security.request_authentications =
                    vec![ra(|r| r.keys = JwksSource::Inline("{}".to_owned()))]
            }),
            "security.requestAuthentications[0].jwtRules[0].jwks",
            "`keys` array",
        ),
        (
            Box::new(|c| {
                c.security.request_authentications =
                    vec![ra(|r| r.keys = JwksSource::remote("example.com/jwks"))]
            }),
            "security.requestAuthentications[0].jwtRules[0].jwksUri",
            "http or https",
        ),
        (
            Box::new(|c| {
                c.security.request_authentications = vec![ra(|r| {
                    r.keys = JwksSource::Remote {
                        uri: "https://example.com/jwks".to_owned(),
                        timeout: Duration::from_secs(5),
                        refresh: Duration::ZERO,
                    }
                })]
            }),
            "security.requestAuthentications[0].jwtRules[0].refresh",
            "\"0s\"",
        ),
        (
            Box::new(|c| {
                c.security.request_authentications = vec![ra(|r| {
                    r.from_headers = vec![JwtHeader {
                        name: "a b".to_owned(),
                        prefix: String::new(),
                    }]
                })]
            }),
            "security.requestAuthentications[0].jwtRules[0].fromHeaders[0].name",
            "header name",
        ),
        (
            Box::new(|c| {
                c.security.authorization_policies = vec![ap(AuthzRule {
                    from: vec![AuthzSource {
                        ip_blocks: values(&["10.0.0.0/40"]),
                        ..AuthzSource::default()
                    }],
                    ..AuthzRule::default()
                })]
            }),
            "security.authorizationPolicies[0].rules[0].from[0].source.ipBlocks[0]",
            "\"10.0.0.0/40\"",
        ),
        (
            Box::new(|c| {
                c.security.authorization_policies = vec![ap(AuthzRule {
                    to: vec![AuthzOperation {
                        ports: not_values(&["http"]),
                        ..AuthzOperation::default()
                    }],
                    ..AuthzRule::default()
                })]
            }),
            "security.authorizationPolicies[0].rules[0].to[0].operation.notPorts[0]",
            "\"http\"",
        ),
        (
            Box::new(|c| {
                c.security.authorization_policies = vec![ap(AuthzRule {
                    to: vec![AuthzOperation {
                        paths: values(&["/{**}/x"]),
                        ..AuthzOperation::default()
                    }],
                    ..AuthzRule::default()
                })]
            }),
            "security.authorizationPolicies[0].rules[0].to[0].operation.paths[0]",
            "last segment",
        ),
        (
            Box::new(|c| {
                c.security.authorization_policies = vec![ap(AuthzRule {
                    when: vec![AuthzCondition {
                        key: String::new(),
                        matcher: values(&["a"]),
                    }],
                    ..AuthzRule::default()
                })]
            }),
            "security.authorizationPolicies[0].rules[0].when[0].key",
            "must not be empty",
        ),
        (
            Box::new(|c| {
                c.security.authorization_policies = vec![ap(AuthzRule {
                    when: vec![AuthzCondition {
                        key: "remote.ip".to_owned(),
                        matcher: not_values(&["x"]),
                    }],
                    ..AuthzRule::default()
                })]
            }),
            "security.authorizationPolicies[0].rules[0].when[0].notValues[0]",
            "\"x\"",
        ),
        (
            Box::new(|c| c.defaults.tls = Some(ClientTls::mode(ClientTlsMode::Simple))),
            "defaults.tls.caCertificates",
            "unless insecureSkipVerify",
        ),
        (
            Box::new(|c| {
                let mut d = MeshConfig::builder()
                    .destination(DestinationBuilder::new("a").subset(
                        SubsetBuilder::new("v1").tls(ClientTls::mode(ClientTlsMode::Disable)),
                    ))
                    .build()
                    .unwrap()
                    .destinations;
                d[0].subsets[0].policy.tls = Some(ClientTls::mode(ClientTlsMode::Mutual));
                c.destinations = d;
            }),
            "destinations[0].subsets[0].tls.clientCertificate",
            "MUTUAL",
        ),
        (
            Box::new(|c| {
                c.workload.labels = labels(&[("team", "books"), ("tier", "-x")]);
            }),
            "workload.labels.tier",
            "\"-x\"",
        ),
    ];
    for (change, path, detail) in cases {
        let mut c = MeshConfig::default();
        change(&mut c);
        let e = c.validate().expect_err(path).to_string();
        assert!(e.starts_with(&format!("{path}: ")), "{path}: {e}");
        assert!(e.contains(detail), "{detail}: {e}");
    }
}

// ---- documents of any shape never panic ----

/// Field names of every kind the loaders read, so that random trees reach deep.
const KEYS: &[&str] = &[
    "selector",
    "matchLabels",
    "mtls",
    "mode",
    "portLevelMtls",
    "8080",
    "0",
    "jwtRules",
    "issuer",
    "audiences",
    "jwks",
    "jwksUri",
    "timeout",
    "fromHeaders",
    "name",
    "prefix",
    "fromParams",
    "fromCookies",
    "forwardOriginalToken",
    "outputClaimToHeaders",
    "header",
    "claim",
    "outputPayloadToHeader",
    "targetRef",
    "targetRefs",
    "action",
    "provider",
    "rules",
    "from",
    "source",
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "namespaces",
    "ipBlocks",
    "notIpBlocks",
    "remoteIpBlocks",
    "to",
    "operation",
    "hosts",
    "notHosts",
    "ports",
    "notPorts",
    "methods",
    "paths",
    "notPaths",
    "when",
    "key",
    "values",
    "notValues",
    "location",
    "resolution",
    "endpoints",
    "outboundTrafficPolicy",
    "egress",
    "workloadSelector",
    "host",
    "trafficPolicy",
    "tls",
    "clientCertificate",
    "privateKey",
    "caCertificates",
    "subjectAltNames",
    "sni",
    "insecureSkipVerify",
    "credentialName",
    "subsets",
    "labels",
    "portLevelSettings",
    "port",
    "number",
    "loadBalancer",
    "simple",
    "consistentHash",
    "connectionPool",
    "outlierDetection",
    "http",
    "route",
    "destination",
    "subset",
    "weight",
    "match",
    "uri",
    "exact",
    "headers",
    "fault",
    "retries",
    "gateways",
    "spec",
    "metadata",
    "namespace",
    "kind",
    "apiVersion",
    "items",
];

/// Values the loaders treat specially, besides random ones.
const WORDS: &[&str] = &[
    "STRICT",
    "PERMISSIVE",
    "DISABLE",
    "UNSET",
    "ALLOW",
    "DENY",
    "AUDIT",
    "CUSTOM",
    "ALLOW_ANY",
    "REGISTRY_ONLY",
    "SIMPLE",
    "MUTUAL",
    "ISTIO_MUTUAL",
    "MESH_EXTERNAL",
    "10.0.0.0/8",
    "10.0.0.300",
    "::1",
    "8080",
    "0",
    "/a/{**}",
    "/a/{**}/b",
    "{*}",
    "request.headers[x]",
    "request.auth.claims[",
    "source.ip",
    "destination.port",
    "https://example.com/jwks",
    "{\"keys\": []}",
    "not json",
    "x-jwt",
    "bad header",
    "*",
    "*.example.com",
    "reviews",
    "v1",
    "1s",
    "0s",
    "ROUND_ROBIN",
    "/ca.pem",
    "",
];

const KINDS: &[&str] = &[
    "PeerAuthentication",
    "RequestAuthentication",
    "AuthorizationPolicy",
    "ServiceEntry",
    "Sidecar",
    "VirtualService",
    "DestinationRule",
    "List",
    "Gateway",
];

const APIS: &[&str] = &[
    "security.istio.io/v1",
    "security.istio.io/v1beta1",
    "networking.istio.io/v1",
    "networking.istio.io/v1alpha3",
    "networking.istio.io/v1beta1",
    "v1",
    "x/y",
];

fn tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(|s| Value::String(s.to_owned())),
        ".{0,10}".prop_map(Value::String),
    ];
    let key = prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9]{0,6}",
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A document of one of the kinds, with a random spec (or none) and random metadata.
fn document() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(KINDS),
        prop::sample::select(APIS),
        prop::option::of(prop::sample::select(&["p", "Bad", ""][..])),
        prop::option::of(prop::sample::select(&["foo", "istio-system", "Bad_"][..])),
        prop::option::of(tree()),
    )
        .prop_map(|(kind, api, name, namespace, spec)| {
            let mut meta = serde_json::Map::new();
            if let Some(name) = name {
                meta.insert("name".to_owned(), Value::from(name));
            }
            if let Some(ns) = namespace {
                meta.insert("namespace".to_owned(), Value::from(ns));
            }
            let mut doc = serde_json::Map::new();
            doc.insert("apiVersion".to_owned(), Value::from(api));
            doc.insert("kind".to_owned(), Value::from(kind));
            doc.insert("metadata".to_owned(), Value::Object(meta));
            if let Some(spec) = spec {
                if kind == "List" {
                    doc.insert("items".to_owned(), spec);
                } else {
                    doc.insert("spec".to_owned(), spec);
                }
            }
            Value::Object(doc)
        })
}

/// The documents of every fixture, as trees (read once).
fn fixture_documents() -> &'static [Value] {
    static DOCS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    DOCS.get_or_init(read_fixture_documents)
}

fn read_fixture_documents() -> Vec<Value> {
    let dir = format!("{}/../tests/fixtures/istio", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    let mut docs = Vec::new();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        for piece in text.split("\n---\n") {
            let value: Value = serde_saphyr::from_str(piece).unwrap();
            if !value.is_null() {
                docs.push(value);
            }
        }
    }
    docs
}

/// `doc` with the node of its `spec` that `path` leads to (each step picks a child, modulo
/// their number) replaced by `replacement`.
/// The `spec` is where the loaders' work is, so the path starts there.
fn mutate(mut doc: Value, path: &[usize], replacement: Value) -> Value {
    match doc.get_mut("spec") {
        Some(spec) => mutate_at(spec, path, replacement),
        None => mutate_at(&mut doc, path, replacement),
    }
    doc
}

fn mutate_at(node: &mut Value, path: &[usize], replacement: Value) {
    let Some((step, rest)) = path.split_first() else {
        *node = replacement;
        return;
    };
    let len = match node {
        Value::Object(map) => map.len(),
        Value::Array(items) => items.len(),
        _ => 0,
    };
    if len == 0 {
        *node = replacement;
        return;
    }
    let child = match node {
        Value::Object(map) => map.values_mut().nth(step % len),
        Value::Array(items) => items.get_mut(step % len),
        _ => None,
    };
    if let Some(child) = child {
        mutate_at(child, rest, replacement);
    }
}

/// Loads `doc` every way: as a tree, and as JSON and YAML text; a config that loads is
/// validated and resolved for a workload.
fn load_every_way(doc: &Value) {
    let mut b = MeshConfigBuilder::default();
    if super::apply_document(doc, "documents[0]", &mut b).is_ok()
        && let Ok(c) = b.build()
    {
        let _ = c.validate();
        let _ = c.inbound();
    }
    let text = doc.to_string();
    for format in [Format::Json, Format::Yaml] {
        if let Ok(c) = MeshConfig::from_str(&text, format) {
            let _ = c.inbound();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_documents_never_panic(doc in document()) {
        load_every_way(&doc);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        index in any::<prop::sample::Index>(),
        path in prop::collection::vec(any::<usize>(), 0..10),
        replacement in tree(),
    ) {
        let docs = fixture_documents();
        let doc = mutate(docs[index.index(docs.len())].clone(), &path, replacement);
        load_every_way(&doc);
    }
}

#[test]
fn fixture_documents_load_one_by_one() {
    let docs = fixture_documents();
    assert!(docs.len() > 30, "{}", docs.len());
    for doc in docs {
        let mut b = MeshConfigBuilder::default();
        super::apply_document(doc, "documents[0]", &mut b).unwrap_or_else(|e| panic!("{e}"));
        b.build().unwrap();
    }
}
