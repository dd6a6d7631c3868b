//! Bad security documents: the file front door (`MeshConfig::from_file`) refuses them with
//! a typed error naming the file, the document and the field, or the server refuses to
//! start with a typed [`ServerBuildError`] naming what it cannot use.

use mesh::ConfigError;
use mesh::tower::MeshServer;
use mesh::tower::authn::AuthnError;
use mesh::tower::server::ServerBuildError;
use mesh::tower::tls::CertError;

use crate::support::{config_text, listen, load, load_file};

/// The error of loading `document` (after mesh's own document for reviews) from a file:
/// the `Invalid` error inside the file's, as `(path, value)`, with its message.
fn refused(document: &str) -> (String, String, String) {
    let text = config_text("reviews", "default", "", &[document]);
    let error = load_file(&text).expect_err("the loader refuses it");
    assert!(error.file().is_some(), "names the file: {error}");
    let message = error.to_string();
    match error {
        ConfigError::File { source, .. } => match *source {
            ConfigError::Invalid { path, value, .. } => (path, value, message),
            other => panic!("not an invalid value: {other:?}"),
        },
        other => panic!("not a file error: {other:?}"),
    }
}

#[test]
fn authorization_policies_the_loader_refuses() {
    let cases = [
        (
            "CUSTOM, Istio's external authorization",
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: CUSTOM
  provider: {name: my-ext-authz}
  rules:
  - to: [{operation: {paths: [\"/headers\"]}}]
",
            "AuthorizationPolicy foo/ext-authz: spec.action",
            "CUSTOM",
            "not supported",
        ),
        (
            "an unknown action",
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reject, namespace: default}
spec:
  action: REJECT
",
            "AuthorizationPolicy default/reject: spec.action",
            "REJECT",
            "expected one of ALLOW, DENY, AUDIT",
        ),
        (
            "a bad CIDR block",
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cidr, namespace: default}
spec:
  rules:
  - from:
    - source:
        ipBlocks: [\"10.0.0.0/33\"]
",
            "AuthorizationPolicy default/cidr: spec.rules[0].from[0].source.ipBlocks[0]",
            "10.0.0.0/33",
            "CIDR",
        ),
        (
            "a bad IPv6 block in a not form",
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cidr6, namespace: default}
spec:
  action: DENY
  rules:
  - from:
    - source:
        notRemoteIpBlocks: [\"fd00::/8\", \"fd00::/129\"]
",
            "AuthorizationPolicy default/cidr6: spec.rules[0].from[0].source.notRemoteIpBlocks[1]",
            "fd00::/129",
            "CIDR",
        ),
        (
            "a bad address in a source.ip condition",
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: when-ip, namespace: default}
spec:
  rules:
  - when:
    - key: source.ip
      values: [\"10.0.0.300\"]
",
            "AuthorizationPolicy default/when-ip: spec.rules[0].when[0].values[0]",
            "10.0.0.300",
            "CIDR",
        ),
        (
            "a path template with {**} not last",
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: template, namespace: default}
spec:
  rules:
  - to: [{operation: {paths: [\"/api/{**}/admin\"]}}]
",
            "AuthorizationPolicy default/template: spec.rules[0].to[0].operation.paths[0]",
            "/api/{**}/admin",
            "{**}",
        ),
        (
            "an unknown condition key",
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: key, namespace: default}
spec:
  rules:
  - when:
    - key: request.cookies[session]
      values: [x]
",
            "AuthorizationPolicy default/key: spec.rules[0].when[0].key",
            "request.cookies[session]",
            "unknown attribute",
        ),
        (
            "serviceAccounts, which would widen the rule if dropped",
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: accounts, namespace: default}
spec:
  rules:
  - from: [{source: {serviceAccounts: [default/sleep]}}]
",
            "AuthorizationPolicy default/accounts: spec.rules[0].from[0].source.serviceAccounts",
            "[\"default/sleep\"]",
            "not implemented",
        ),
    ];
    for (case, document, path, value, reason) in cases {
        let (got_path, got_value, message) = refused(document);
        assert_eq!(got_path, path, "{case}: {message}");
        assert_eq!(got_value, value, "{case}: {message}");
        assert!(message.contains(reason), "{case}: {message}");
    }
}

#[test]
fn request_and_peer_authentications_the_loader_refuses() {
    let cases = [
        (
            "an inline JWKS without a usable key: only an HMAC secret",
            "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: hmac-only, namespace: default}
spec:
  jwtRules:
  - issuer: testing@secure.istio.io
    jwks: '{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\", \"alg\": \"HS256\"}]}'
",
            "RequestAuthentication default/hmac-only: spec.jwtRules[0].jwks",
            "the JWKS has no usable key",
        ),
        (
            "an inline JWKS without a usable key: no keys at all",
            "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: no-keys, namespace: default}
spec:
  jwtRules:
  - issuer: other
    jwksUri: http://127.0.94.250:1/jwks
  - issuer: testing@secure.istio.io
    jwks: '{\"keys\": []}'
",
            "RequestAuthentication default/no-keys: spec.jwtRules[1].jwks",
            "the JWKS has no usable key",
        ),
        (
            "an inline JWKS whose RSA key has no modulus",
            "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: half-key, namespace: default}
spec:
  jwtRules:
  - issuer: testing@secure.istio.io
    jwks: '{\"keys\": [{\"kty\": \"RSA\", \"e\": \"AQAB\", \"kid\": \"k1\"}]}'
",
            "RequestAuthentication default/half-key: spec.jwtRules[0].jwks",
            "keys[0]: [n] is missing",
        ),
        (
            "an inline JWKS that is not JSON",
            "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: not-json, namespace: default}
spec:
  jwtRules:
  - issuer: testing@secure.istio.io
    jwks: 'keys: []'
",
            "RequestAuthentication default/not-json: spec.jwtRules[0].jwks",
            "expected a JSON Web Key Set",
        ),
        (
            "no keys at all",
            "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: keyless, namespace: default}
spec:
  jwtRules:
  - issuer: testing@secure.istio.io
",
            "RequestAuthentication default/keyless: spec.jwtRules[0]",
            "one of jwks or jwksUri is required",
        ),
        (
            "a JWKS URI of another scheme",
            "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ftp, namespace: default}
spec:
  jwtRules:
  - issuer: testing@secure.istio.io
    jwksUri: ftp://127.0.94.1/jwks
",
            "RequestAuthentication default/ftp: spec.jwtRules[0].jwksUri",
            "http or https",
        ),
        (
            "an unknown mTLS mode",
            "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: ON}
",
            "PeerAuthentication default/default: spec.mtls.mode",
            "expected one of UNSET, DISABLE, PERMISSIVE, STRICT",
        ),
        (
            "port modes without a workload selector",
            "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
",
            "PeerAuthentication default/default: spec.portLevelMtls",
            "workload selector",
        ),
        (
            "a port out of range",
            "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: finance, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  portLevelMtls:
    70000: {mode: DISABLE}
",
            "PeerAuthentication default/finance: spec.portLevelMtls.70000",
            "port number",
        ),
    ];
    for (case, document, path, reason) in cases {
        let (got_path, _, message) = refused(document);
        assert_eq!(got_path, path, "{case}: {message}");
        assert!(message.contains(reason), "{case}: {message}");
    }
}

/// What `MeshServer::from_config(...).serve(...)` says of the config of `text`: the server
/// refuses to start, before serving.
async fn serve_error(text: &str, host: u8) -> ServerBuildError {
    let config = load(text);
    let server = MeshServer::from_config(&config).expect("the config names no certificates");
    let listener = listen(95, host).await;
    server
        .serve(listener, axum::Router::new(), std::future::pending::<()>())
        .await
        .expect_err("the server refuses to start")
}

#[tokio::test(start_paused = true)]
async fn what_only_the_server_can_tell_is_a_build_error() {
    // STRICT needs a workload identity, which this config does not give.
    let strict = config_text("reviews", "default", "security: {mtls: STRICT}", &[]);
    let error = serve_error(&strict, 210).await;
    assert!(
        matches!(error, ServerBuildError::Certificates(CertError::NoIdentity)),
        "{error:?}"
    );

    // Key material the loader cannot check (the modulus is not base64url): the rule and its
    // issuer are named.
    let bad_modulus = "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: bad-modulus, namespace: default}
spec:
  jwtRules:
  - issuer: testing@secure.istio.io
    jwks: '{\"keys\": [{\"kty\": \"RSA\", \"n\": \"!!!\", \"e\": \"AQAB\"}]}'
";
    let error = serve_error(&config_text("reviews", "default", "", &[bad_modulus]), 211).await;
    match &error {
        ServerBuildError::Authn(AuthnError::Rule {
            index,
            issuer,
            reason,
        }) => {
            assert_eq!((*index, issuer.as_str()), (0, "testing@secure.istio.io"));
            assert!(reason.starts_with("jwks: keys[0]: RSA key"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // A condition key Istio knows but this authorizer cannot evaluate: refused, naming the
    // policy and the field, rather than ignored.
    let sni = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-sni, namespace: default}
spec:
  action: DENY
  rules:
  - when: [{key: connection.sni, values: [\"*.example.com\"]}]
";
    let error = serve_error(&config_text("reviews", "default", "", &[sni]), 212).await;
    match &error {
        ServerBuildError::Authz(e) => {
            assert_eq!(e.policy, "default/by-sni");
            assert_eq!(e.field, "rules[0].when[0].key");
            assert_eq!(e.value, "connection.sni");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "AuthorizationPolicy default/by-sni: rules[0].when[0].key: \"connection.sni\": not supported by this authorizer"
    );
}
