use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mesh_core::config::{ClaimToHeader, JwksSource, JwtHeader, JwtRule};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::server::ServerError;
use crate::test_metrics::Counters;

const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://issuer.example.com";

// ---------------------------------------------------------------------------------------
// Keys and tokens

struct TestKey {
    enc: EncodingKey,
    alg: Algorithm,
    /// The private key as PKCS#8 PEM; the public key's PEM for the HMAC confusion test.
    public_pem: String,
    /// The raw public key (for the Ed25519 JWK).
    public_raw: Vec<u8>,
}

impl TestKey {
    fn generate(alg: &'static rcgen::SignatureAlgorithm, jwt_alg: Algorithm) -> Self {
        let pair = rcgen::KeyPair::generate_for(alg).unwrap();
        let pem = pair.serialize_pem();
        let enc = match jwt_alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .unwrap();
        TestKey {
            enc,
            alg: jwt_alg,
            public_pem: pair.public_key_pem(),
            public_raw: pair.public_key_raw().to_vec(),
        }
    }

    /// The public JWK with `kid` (and the key's `alg`, unless `with_alg` is false).
    fn jwk(&self, kid: &str, with_alg: bool) -> Jwk {
        let mut jwk = if self.alg == Algorithm::EdDSA {
            // By hand: `from_encoding_key` reads PKCS#8 v1 only, rcgen writes v2.
            serde_json::from_value(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&self.public_raw),
                "alg": "EdDSA",
            }))
            .unwrap()
        } else {
            Jwk::from_encoding_key(&self.enc, self.alg).unwrap()
        };
        jwk.common.key_id = Some(kid.to_owned());
        if !with_alg {
            jwk.common.key_algorithm = None;
        }
        jwk
    }

    /// A token of `claims` with `kid`, signed with this key and its algorithm.
    fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        self.sign_as(self.alg, kid, claims)
    }

    fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.enc).unwrap()
    }
}

struct Keys {
    rsa: TestKey,
    rsa2: TestKey,
    ec: TestKey,
    ed: TestKey,
}

/// RSA key generation is slow: once per test binary.
static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    rsa: TestKey::generate(&rcgen::PKCS_RSA_SHA256, Algorithm::RS256),
    rsa2: TestKey::generate(&rcgen::PKCS_RSA_SHA256, Algorithm::RS256),
    ec: TestKey::generate(&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256),
    ed: TestKey::generate(&rcgen::PKCS_ED25519, Algorithm::EdDSA),
});

fn jwks(keys: Vec<Jwk>) -> String {
    serde_json::to_string(&JwkSet { keys }).unwrap()
}

/// The inline JWKS of the matrix: the RSA, EC and Ed25519 keys as `rsa`, `ec`, `ed`.
fn matrix_jwks() -> String {
    let k = &*KEYS;
    jwks(vec![
        k.rsa.jwk("rsa", true),
        k.ec.jwk("ec", true),
        k.ed.jwk("ed", true),
    ])
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "sub": "alice",
        "aud": ["reviews", "ratings"],
        "exp": NOW + 3600,
        "nbf": NOW - 10,
        "iat": NOW - 10,
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

// ---------------------------------------------------------------------------------------
// Rules and the service

fn rule(keys: JwksSource) -> JwtRule {
    JwtRule {
        issuer: ISS.to_owned(),
        audiences: vec!["reviews".to_owned()],
        keys,
        from_headers: Vec::new(),
        from_params: Vec::new(),
        from_cookies: Vec::new(),
        forward_original_token: false,
        output_claim_to_headers: Vec::new(),
        output_payload_to_header: None,
    }
}

fn inline_rule() -> JwtRule {
    rule(JwksSource::Inline(matrix_jwks()))
}

/// What the application saw.
#[derive(Debug)]
struct Seen {
    auth: Option<RequestAuth>,
    headers: HeaderMap,
    uri: Uri,
}

type App = tower::util::ServiceFn<
    fn(Request<()>) -> std::future::Ready<Result<Response<Seen>, ServerError>>,
>;

fn handle(req: Request<()>) -> std::future::Ready<Result<Response<Seen>, ServerError>> {
    std::future::ready(Ok(Response::new(Seen {
        auth: req.extensions().get::<RequestAuth>().cloned(),
        headers: req.headers().clone(),
        uri: req.uri().clone(),
    })))
}

fn app() -> App {
    tower::service_fn(handle as fn(_) -> _)
}

fn fixed_clock() -> UnixClock {
    Arc::new(|| NOW)
}

fn service(rules: &[JwtRule]) -> AuthnService<App> {
    AuthnLayer::new(rules)
        .unwrap()
        .clock(fixed_clock())
        .layer(app())
}

async fn send(svc: &AuthnService<App>, req: Request<()>) -> Result<Seen, (StatusCode, String)> {
    match svc.clone().oneshot(req).await {
        Ok(res) => Ok(res.into_body()),
        Err(e) => Err((e.status(), e.to_string())),
    }
}

fn bearer(token: &str) -> Request<()> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

/// Sends `token` as a bearer token; the 401 message, or `None` when it passed.
async fn rejection(svc: &AuthnService<App>, token: &str) -> Option<String> {
    match send(svc, bearer(token)).await {
        Ok(_) => None,
        Err((status, message)) => {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
            Some(message)
        }
    }
}

// ---------------------------------------------------------------------------------------
// A metrics recorder counting counters by name and labels

fn recorder() -> &'static Counters {
    Counters::global()
}

fn counter(text: &str) -> u64 {
    recorder().get(text)
}

// ---------------------------------------------------------------------------------------
// The JWT matrix

#[tokio::test]
async fn valid_rs256_es256_and_eddsa_tokens_pass_with_a_principal() {
    let svc = service(&[inline_rule()]);
    let k = &*KEYS;
    for (key, kid) in [(&k.rsa, "rsa"), (&k.ec, "ec"), (&k.ed, "ed")] {
        let token = key.sign(Some(kid), &claims());
        let seen = send(&svc, bearer(&token)).await.unwrap();
        let auth = seen.auth.expect("RequestAuth");
        assert_eq!(
            &*auth.principal, "https://issuer.example.com/alice",
            "{kid}"
        );
        assert_eq!(auth.claims["sub"], "alice");
        assert_eq!(auth.issuer(), Some(ISS));
        assert_eq!(auth.audiences().collect::<Vec<_>>(), ["reviews", "ratings"]);
        assert_eq!(auth.presenter(), None);
        assert_eq!(auth.claim("sub"), Some(&json!("alice")));
        // forwardOriginalToken is false: the token's header is gone.
        assert!(!seen.headers.contains_key("authorization"), "{kid}");
    }
}

#[tokio::test]
async fn the_matrix_of_bad_tokens_is_rejected_with_envoys_messages() {
    let svc = service(&[inline_rule()]);
    let k = &*KEYS;
    let c = claims();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            k.rsa
                .sign(Some("rsa"), &with(c.clone(), json!({"exp": NOW - 61}))),
            "Jwt is expired",
        ),
        (
            "not yet valid",
            k.rsa
                .sign(Some("rsa"), &with(c.clone(), json!({"nbf": NOW + 61}))),
            "Jwt not yet valid",
        ),
        (
            "wrong issuer",
            k.rsa.sign(
                Some("rsa"),
                &with(c.clone(), json!({"iss": "https://evil"})),
            ),
            "Jwt issuer is not configured",
        ),
        (
            "no issuer",
            k.rsa
                .sign(Some("rsa"), &json!({"sub": "alice", "aud": "reviews"})),
            "Jwt issuer is not configured",
        ),
        (
            "wrong audience",
            k.rsa
                .sign(Some("rsa"), &with(c.clone(), json!({"aud": "details"}))),
            "Audiences in Jwt are not allowed",
        ),
        (
            "unknown kid",
            k.rsa.sign(Some("nope"), &c),
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
        (
            "kid of a key of another type",
            k.ec.sign(Some("rsa"), &c),
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
        (
            "bad signature: signed with another key",
            k.rsa2.sign(Some("rsa"), &c),
            "Jwt verification fails",
        ),
        (
            "bad signature: no kid, another key",
            k.rsa2.sign(None, &c),
            "Jwt verification fails",
        ),
        (
            "RS384 against a key that is RS256 only",
            k.rsa.sign_as(Algorithm::RS384, Some("rsa"), &c),
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(&c.to_string())
            ),
            "Jwt algorithm is not supported: none (unsigned tokens are never accepted)",
        ),
        (
            "HS256 with the RSA public key as the secret",
            {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some("rsa".into());
                let secret = EncodingKey::from_secret(k.rsa.public_pem.as_bytes());
                jsonwebtoken::encode(&header, &c, &secret).unwrap()
            },
            "Jwt algorithm is not supported: HS256 (mesh accepts only asymmetric keys)",
        ),
        (
            "malformed",
            "not-a-jwt".to_owned(),
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections: found 1 sections",
        ),
        (
            "payload not JSON",
            format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("nope")),
            "Jwt payload is an invalid JSON",
        ),
        (
            "exp of the wrong type",
            k.rsa
                .sign(Some("rsa"), &with(c.clone(), json!({"exp": "soon"}))),
            "Jwt exp claim has a wrong type",
        ),
    ];
    for (what, token, message) in cases {
        let before = counter(&format!(
            "mesh_jwt_rejected_total{{reason={}}}",
            reason_of(message)
        ));
        assert_eq!(
            rejection(&svc, &token).await.as_deref(),
            Some(message),
            "{what}"
        );
        let after = counter(&format!(
            "mesh_jwt_rejected_total{{reason={}}}",
            reason_of(message)
        ));
        assert!(after > before, "{what}: counted");
    }
}

/// The metrics reason of a message of the matrix.
fn reason_of(message: &str) -> &'static str {
    match message {
        "Jwt is expired" => "expired",
        "Jwt not yet valid" => "not_yet_valid",
        "Jwt issuer is not configured" => "unknown_issuer",
        "Audiences in Jwt are not allowed" => "audience",
        "Jwks doesn't have key to match kid or alg from Jwt" => "unknown_kid",
        "Jwt verification fails" => "bad_signature",
        "Jwt payload is an invalid JSON" => "bad_payload",
        "Jwt exp claim has a wrong type" => "bad_claim",
        m if m.starts_with("Jwt algorithm") => "unsupported_alg",
        _ => "malformed",
    }
}

#[tokio::test]
async fn the_clock_skew_is_60_seconds() {
    let svc = service(&[inline_rule()]);
    let k = &*KEYS;
    let ok = [json!({"exp": NOW - 59}), json!({"nbf": NOW + 60})];
    for change in ok {
        let token = k.ed.sign(Some("ed"), &with(claims(), change.clone()));
        assert_eq!(rejection(&svc, &token).await, None, "{change}");
    }
    let token =
        k.ed.sign(Some("ed"), &with(claims(), json!({"exp": NOW - 60})));
    assert_eq!(
        rejection(&svc, &token).await.as_deref(),
        Some("Jwt is expired")
    );
}

#[tokio::test]
async fn a_missing_token_passes_without_a_principal() {
    let svc = service(&[inline_rule()]);
    let seen = send(&svc, Request::new(())).await.unwrap();
    assert!(seen.auth.is_none());
    // Another scheme is no token either, and is left alone.
    let req = Request::get("/")
        .header("authorization", "Basic dXNlcjpwdw==")
        .body(())
        .unwrap();
    let seen = send(&svc, req).await.unwrap();
    assert!(seen.auth.is_none());
    assert_eq!(seen.headers["authorization"], "Basic dXNlcjpwdw==");
}

#[tokio::test]
async fn no_rules_pass_everything_untouched() {
    let svc = service(&[]);
    let seen = send(&svc, bearer("garbage")).await.unwrap();
    assert!(seen.auth.is_none());
    assert_eq!(seen.headers["authorization"], "Bearer garbage");
}

#[tokio::test]
async fn keys_without_alg_or_kid_fit_every_algorithm_of_their_type() {
    let k = &*KEYS;
    let mut anonymous = k.rsa.jwk("", false);
    anonymous.common.key_id = None;
    let svc = service(&[rule(JwksSource::Inline(jwks(vec![
        k.ec.jwk("ec", true),
        anonymous,
    ])))]);
    for alg in [
        Algorithm::RS256,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
    ] {
        // With any kid or none, as Envoy: a key without an id fits every kid.
        for kid in [None, Some("whatever")] {
            let token = k.rsa.sign_as(alg, kid, &claims());
            assert_eq!(rejection(&svc, &token).await, None, "{alg:?} {kid:?}");
        }
    }
    // Without a kid, the EC key is found among the keys of its type.
    let token = k.ec.sign(None, &claims());
    assert_eq!(rejection(&svc, &token).await, None);
}

#[tokio::test]
async fn the_server_stack_answers_401_with_the_message_and_a_challenge() {
    use crate::server::ReplyLayer;

    let svc = ReplyLayer::new().layer(
        AuthnLayer::new(&[inline_rule()])
            .unwrap()
            .clock(fixed_clock())
            .layer(tower::service_fn(|_req: Request<()>| async {
                Ok::<_, ServerError>(Response::new(Full::new(Bytes::from("app"))))
            })),
    );
    let token = KEYS
        .rsa
        .sign(Some("rsa"), &with(claims(), json!({"exp": NOW - 3600})));
    let res = svc.clone().oneshot(bearer(&token)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "Jwt is expired");

    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    let res = svc.oneshot(bearer(&token)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Locations, forwarding, output headers

#[tokio::test]
async fn tokens_are_found_in_the_rules_locations() {
    let mut r = inline_rule();
    r.from_headers = vec![JwtHeader {
        name: "x-jwt-assertion".into(),
        prefix: "Token ".into(),
    }];
    r.from_params = vec!["tok".into()];
    r.from_cookies = vec!["session".into()];
    let svc = service(&[r]);
    let token = KEYS.ec.sign(Some("ec"), &claims());

    // A header with a custom prefix: removed once checked.
    let req = Request::get("/")
        .header("x-jwt-assertion", format!("Token {token}"))
        .body(())
        .unwrap();
    let seen = send(&svc, req).await.unwrap();
    assert!(seen.auth.is_some());
    assert!(!seen.headers.contains_key("x-jwt-assertion"));

    // A query parameter: the request is left as it is.
    let uri = format!("/path?a=1&tok={token}");
    let seen = send(&svc, Request::get(&uri).body(()).unwrap())
        .await
        .unwrap();
    assert!(seen.auth.is_some());
    assert_eq!(seen.uri, uri.as_str());

    // A cookie: left as it is too.
    let cookie = format!("theme=dark; session={token}");
    let req = Request::get("/")
        .header("cookie", &cookie)
        .body(())
        .unwrap();
    let seen = send(&svc, req).await.unwrap();
    assert!(seen.auth.is_some());
    assert_eq!(seen.headers["cookie"], cookie.as_str());

    // The default locations are not read when the rule names its own.
    let seen = send(&svc, bearer(&token)).await.unwrap();
    assert!(seen.auth.is_none());
    let seen = send(
        &svc,
        Request::get(format!("/?access_token={token}"))
            .body(())
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(seen.auth.is_none());

    // A bad token in a cookie is rejected like one in a header.
    let req = Request::get("/")
        .header("cookie", "session=a.b.c")
        .body(())
        .unwrap();
    assert_eq!(
        send(&svc, req).await.unwrap_err().0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_default_locations_are_bearer_and_access_token() {
    let svc = service(&[inline_rule()]);
    let token = KEYS.ed.sign(Some("ed"), &claims());
    let seen = send(
        &svc,
        Request::get(format!("/?access_token={token}"))
            .body(())
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(seen.auth.is_some());
    let req = Request::get("/")
        .header("authorization", format!("bearer {token}"))
        .body(())
        .unwrap();
    assert!(send(&svc, req).await.unwrap().auth.is_some());
}

#[tokio::test]
async fn forward_original_token_keeps_the_header() {
    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    for forward in [false, true] {
        let mut r = inline_rule();
        r.forward_original_token = forward;
        let seen = send(&service(&[r]), bearer(&token)).await.unwrap();
        assert!(seen.auth.is_some());
        assert_eq!(
            seen.headers.get("authorization").is_some(),
            forward,
            "forward {forward}"
        );
        if forward {
            assert_eq!(
                seen.headers["authorization"],
                format!("Bearer {token}").as_str()
            );
        }
    }
}

#[tokio::test]
async fn claims_and_the_payload_are_output_to_headers_and_cannot_be_spoofed() {
    let mut r = inline_rule();
    r.output_claim_to_headers = vec![
        ClaimToHeader {
            header: "x-sub".into(),
            claim: "sub".into(),
        },
        ClaimToHeader {
            header: "x-groups".into(),
            claim: "groups".into(),
        },
        ClaimToHeader {
            header: "x-team".into(),
            claim: "org.team.name".into(),
        },
        ClaimToHeader {
            header: "x-level".into(),
            claim: "level".into(),
        },
        ClaimToHeader {
            header: "x-absent".into(),
            claim: "absent".into(),
        },
    ];
    r.output_payload_to_header = Some("x-jwt-payload".into());
    let svc = service(&[r]);
    let c = with(
        claims(),
        json!({"groups": ["admin", "dev"], "org": {"team": {"name": "core"}}, "level": 3}),
    );
    let token = KEYS.rsa.sign(Some("rsa"), &c);

    let mut req = bearer(&token);
    for spoof in ["x-sub", "x-absent", "x-jwt-payload"] {
        req.headers_mut().insert(spoof, "mallory".parse().unwrap());
    }
    let seen = send(&svc, req).await.unwrap();
    let h = &seen.headers;
    assert_eq!(h["x-sub"], "alice");
    assert_eq!(h["x-groups"], "admin,dev");
    assert_eq!(h["x-team"], "core");
    assert_eq!(h["x-level"], "3");
    assert!(
        !h.contains_key("x-absent"),
        "a spoofed header of an absent claim is gone"
    );
    let payload = token.split('.').nth(1).unwrap();
    assert_eq!(h["x-jwt-payload"], payload);
    let decoded: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(decoded["org"]["team"]["name"], "core");

    // Without a token, the client's own values are removed all the same.
    let req = Request::get("/")
        .header("x-sub", "mallory")
        .header("x-jwt-payload", "e30")
        .header("x-other", "kept")
        .body(())
        .unwrap();
    let seen = send(&svc, req).await.unwrap();
    assert!(seen.auth.is_none());
    assert!(!seen.headers.contains_key("x-sub"));
    assert!(!seen.headers.contains_key("x-jwt-payload"));
    assert_eq!(seen.headers["x-other"], "kept");
}

#[tokio::test]
async fn each_issuer_is_checked_with_its_own_rule() {
    let k = &*KEYS;
    let mut a = rule(JwksSource::Inline(jwks(vec![k.rsa.jwk("rsa", true)])));
    a.issuer = "issuer-a".into();
    a.audiences = Vec::new();
    let mut b = rule(JwksSource::Inline(jwks(vec![k.ec.jwk("ec", true)])));
    b.issuer = "issuer-b".into();
    b.audiences = Vec::new();
    b.from_headers = vec![JwtHeader {
        name: "x-b-token".into(),
        prefix: String::new(),
    }];
    let svc = service(&[a, b]);
    let token_a = k
        .rsa
        .sign(Some("rsa"), &json!({"iss": "issuer-a", "sub": "x"}));
    let token_b =
        k.ec.sign(Some("ec"), &json!({"iss": "issuer-b", "sub": "y"}));

    assert_eq!(
        &*send(&svc, bearer(&token_a))
            .await
            .unwrap()
            .auth
            .unwrap()
            .principal,
        "issuer-a/x"
    );
    let req = Request::get("/")
        .header("x-b-token", &token_b)
        .body(())
        .unwrap();
    assert_eq!(
        &*send(&svc, req).await.unwrap().auth.unwrap().principal,
        "issuer-b/y"
    );
    // Issuer B's token where only issuer A's rule reads.
    assert_eq!(
        rejection(&svc, &token_b).await.as_deref(),
        Some("Jwt issuer is not configured")
    );
    // Both tokens at once: both are checked; the first found gives the principal.
    let mut req = bearer(&token_a);
    req.headers_mut()
        .insert("x-b-token", token_b.parse().unwrap());
    let seen = send(&svc, req).await.unwrap();
    assert_eq!(&*seen.auth.unwrap().principal, "issuer-a/x");
    // One bad token among them fails the request.
    let mut req = bearer(&token_a);
    req.headers_mut()
        .insert("x-b-token", "bad".parse().unwrap());
    assert_eq!(
        send(&svc, req).await.unwrap_err().0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_token_without_sub_has_an_empty_principal() {
    let svc = service(&[inline_rule()]);
    let c = json!({"iss": ISS, "aud": "reviews", "azp": "web"});
    let seen = send(&svc, bearer(&KEYS.rsa.sign(Some("rsa"), &c)))
        .await
        .unwrap();
    let auth = seen.auth.unwrap();
    assert_eq!(&*auth.principal, "");
    assert_eq!(auth.presenter(), Some("web"));
    assert_eq!(auth.audiences().collect::<Vec<_>>(), ["reviews"]);
}

// ---------------------------------------------------------------------------------------
// Building

#[test]
fn bad_rules_name_the_issuer_and_what_is_wrong() {
    let k = &*KEYS;
    type Change = Box<dyn Fn(&mut JwtRule)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|r| r.keys = JwksSource::Inline("{not json".into())),
            "jwks: the JWKS is not JSON",
        ),
        (
            Box::new(|r| r.keys = JwksSource::Inline(r#"{"kid":"x"}"#.into())),
            "jwks: the JWKS has no [keys] list",
        ),
        (
            Box::new(|r| r.keys = JwksSource::Inline(r#"{"keys":[]}"#.into())),
            "jwks: the JWKS has no usable key",
        ),
        (
            Box::new(|r| {
                r.keys = JwksSource::Inline(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into())
            }),
            "jwks: the JWKS has no usable key",
        ),
        (
            Box::new(|r| {
                r.keys = JwksSource::Inline(r#"{"keys":[{"kty":"RSA","e":"AQAB"}]}"#.into())
            }),
            "jwks: keys[0]: [n] is missing",
        ),
        (
            Box::new(|r| {
                r.keys =
                    JwksSource::Inline(r#"{"keys":[{"kty":"RSA","n":"%%%","e":"AQAB"}]}"#.into())
            }),
            "jwks: keys[0]: RSA key",
        ),
        (
            Box::new(|r| {
                r.keys = JwksSource::Inline(
                    r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA","alg":"RS256"}]}"#.into(),
                )
            }),
            "jwks: keys[0]: [alg] RS256 does not fit a OKP key",
        ),
        (
            Box::new(|r| {
                r.from_headers = vec![JwtHeader {
                    name: "bad header".into(),
                    prefix: String::new(),
                }]
            }),
            "fromHeaders[0].name: invalid value \"bad header\"",
        ),
        (
            Box::new(|r| {
                r.output_claim_to_headers = vec![ClaimToHeader {
                    header: "x ok".into(),
                    claim: "sub".into(),
                }]
            }),
            "outputClaimToHeaders[0].header \"x ok\": not a valid header name",
        ),
        (
            Box::new(|r| r.output_payload_to_header = Some(String::new())),
            "outputPayloadToHeader \"\": not a valid header name",
        ),
        (
            Box::new(|r| {
                r.keys = JwksSource::Remote {
                    uri: "ftp://keys".into(),
                    timeout: Duration::from_secs(5),
                    refresh: Duration::from_secs(60),
                }
            }),
            "jwksUri \"ftp://keys\": the scheme must be http or https",
        ),
        (
            Box::new(|r| {
                r.keys = JwksSource::Remote {
                    uri: "http://127.0.0.1:1/keys".into(),
                    timeout: Duration::ZERO,
                    refresh: Duration::from_secs(60),
                }
            }),
            "the timeout must not be zero",
        ),
        (
            Box::new(|r| r.issuer = String::new()),
            "issuer must not be empty",
        ),
    ];
    for (change, want) in cases {
        let mut bad = inline_rule();
        change(&mut bad);
        let good = rule(JwksSource::Inline(jwks(vec![k.ed.jwk("ed", true)])));
        let err = AuthnLayer::new(&[good, bad.clone()])
            .unwrap_err()
            .to_string();
        let prefix = format!("jwtRules[1] (issuer {:?}): ", bad.issuer);
        assert!(err.starts_with(&prefix), "{err}");
        assert!(err.contains(want), "{err} does not say {want:?}");
    }
}

#[test]
fn a_remote_jwks_needs_a_runtime() {
    let r = rule(JwksSource::Remote {
        uri: "http://127.0.0.1:1/keys".into(),
        timeout: Duration::from_secs(5),
        refresh: Duration::from_secs(60),
    });
    assert!(matches!(AuthnLayer::new(&[r]), Err(AuthnError::NoRuntime)));
    // Inline keys need none.
    assert!(AuthnLayer::new(&[inline_rule()]).is_ok());
}

#[test]
fn unusable_keys_are_skipped() {
    let k = &*KEYS;
    let mut keys: Vec<Value> = vec![
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "RSA", "use": "enc", "n": "AA", "e": "AQAB"}),
        json!({"kty": "RSA", "alg": "RSA-OAEP", "n": "AA", "e": "AQAB"}),
        json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
        json!({"kty": "weird"}),
    ];
    keys.push(serde_json::to_value(k.ed.jwk("ed", true)).unwrap());
    let set = keys::KeySet::parse(&json!({ "keys": keys }).to_string()).unwrap();
    assert_eq!(format!("{set:?}").matches("Some(").count(), 2, "{set:?}");
    assert!(set.has_kid("ed"));
    assert!(!set.has_kid("hmac"));
}

// ---------------------------------------------------------------------------------------
// Remote JWKS

/// A JWKS server on loopback that counts the fetches.
#[derive(Clone)]
struct JwksServer {
    addr: SocketAddr,
    fetches: Arc<AtomicUsize>,
    /// The body served, or the status of a failure.
    answer: Arc<Mutex<Result<String, u16>>>,
    /// Accept and never answer.
    hang: Arc<AtomicBool>,
}

impl JwksServer {
    async fn start(jwks: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = JwksServer {
            addr: listener.local_addr().unwrap(),
            fetches: Arc::default(),
            answer: Arc::new(Mutex::new(Ok(jwks))),
            hang: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let s = s.clone();
                            async move {
                                assert_eq!(req.uri().path(), "/jwks.json");
                                s.fetches.fetch_add(1, Ordering::SeqCst);
                                if s.hang.load(Ordering::SeqCst) {
                                    std::future::pending::<()>().await;
                                }
                                let answer = s.answer.lock().unwrap().clone();
                                let mut res = Response::new(Full::new(Bytes::from(
                                    answer.clone().unwrap_or_default(),
                                )));
                                if let Err(status) = answer {
                                    *res.status_mut() = StatusCode::from_u16(status).unwrap();
                                }
                                Ok::<_, Infallible>(res)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        server
    }

    fn uri(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn answer(&self, answer: Result<String, u16>) {
        *self.answer.lock().unwrap() = answer;
    }
}

fn ok_fetches(server: &JwksServer) -> String {
    format!("mesh_jwks_fetches_total{{result=ok,uri={}}}", server.uri())
}

fn remote_rule(uri: String, timeout: Duration, refresh: Duration) -> JwtRule {
    rule(JwksSource::Remote {
        uri,
        timeout,
        refresh,
    })
}

fn remote_service(server: &JwksServer, refresh: Duration) -> AuthnService<App> {
    service(&[remote_rule(server.uri(), Duration::from_secs(5), refresh)])
}

/// Lets the fetch task run until `check` holds (paused time moves on while it waits).
async fn until(mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(start_paused = true)]
async fn a_remote_jwks_is_fetched_once_and_cached() {
    recorder();
    let server = JwksServer::start(jwks(vec![KEYS.rsa.jwk("rsa", true)])).await;
    let svc = remote_service(&server, Duration::from_secs(1200));
    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    // The first requests wait for the first fetch.
    let first: Vec<_> =
        futures_util::future::join_all((0..5).map(|_| send(&svc, bearer(&token)))).await;
    for seen in first {
        assert!(seen.unwrap().auth.is_some());
    }
    for _ in 0..20 {
        assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());
    }
    assert_eq!(server.fetches(), 1);
    assert_eq!(counter(&ok_fetches(&server)), 1);
}

#[tokio::test(start_paused = true)]
async fn a_remote_jwks_is_refreshed_after_the_interval() {
    recorder();
    let server = JwksServer::start(jwks(vec![KEYS.rsa.jwk("rsa", true)])).await;
    let svc = remote_service(&server, Duration::from_secs(60));
    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());
    assert_eq!(server.fetches(), 1);

    // The issuer rotates its key: tokens of the new one pass after the refresh.
    server.answer(Ok(jwks(vec![KEYS.ec.jwk("ec", true)])));
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(server.fetches(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    until(|| counter(&ok_fetches(&server)) == 2).await;
    assert_eq!(server.fetches(), 2);
    let new = KEYS.ec.sign(Some("ec"), &claims());
    assert!(send(&svc, bearer(&new)).await.unwrap().auth.is_some());
    tokio::time::sleep(Duration::from_secs(60)).await;
    until(|| counter(&ok_fetches(&server)) == 3).await;
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_fetches_again_at_most_every_30_seconds() {
    recorder();
    let server = JwksServer::start(jwks(vec![KEYS.rsa.jwk("k1", true)])).await;
    let svc = remote_service(&server, Duration::from_secs(1200));
    let old = KEYS.rsa.sign(Some("k1"), &claims());
    assert!(send(&svc, bearer(&old)).await.unwrap().auth.is_some());
    assert_eq!(server.fetches(), 1);

    // Key rotation: a token of the new key makes the set be fetched at once, and passes.
    server.answer(Ok(jwks(vec![
        KEYS.rsa.jwk("k1", true),
        KEYS.ec.jwk("k2", true),
    ])));
    let new = KEYS.ec.sign(Some("k2"), &claims());
    assert!(send(&svc, bearer(&new)).await.unwrap().auth.is_some());
    assert_eq!(server.fetches(), 2);

    // Another unknown kid within 30 s: no fetch, rejected at once.
    let unknown = KEYS.ed.sign(Some("k3"), &claims());
    for _ in 0..10 {
        assert_eq!(
            rejection(&svc, &unknown).await.as_deref(),
            Some("Jwks doesn't have key to match kid or alg from Jwt")
        );
    }
    assert_eq!(server.fetches(), 2);

    // After 30 s, one more fetch; the kid is still unknown.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        rejection(&svc, &unknown).await.as_deref(),
        Some("Jwks doesn't have key to match kid or alg from Jwt")
    );
    assert_eq!(server.fetches(), 3);
    // Known keys kept working throughout.
    assert!(send(&svc, bearer(&old)).await.unwrap().auth.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_keeps_the_last_good_keys_and_retries_with_back_off() {
    recorder();
    let server = JwksServer::start(jwks(vec![KEYS.rsa.jwk("rsa", true)])).await;
    let svc = remote_service(&server, Duration::from_secs(60));
    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());

    server.answer(Err(503));
    tokio::time::sleep(Duration::from_secs(61)).await;
    until(|| server.fetches() == 2).await;
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());
    // Retried after 1 s, then 2 s, then 4 s.
    let start = tokio::time::Instant::now();
    until(|| server.fetches() == 5).await;
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(6), "{waited:?}");
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    let error = format!(
        "mesh_jwks_fetches_total{{result=error,uri={}}}",
        server.uri()
    );
    assert!(counter(&error) >= 4);
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());

    // Back to good: the retry picks it up and the back-off starts over.
    server.answer(Ok(jwks(vec![KEYS.rsa.jwk("rsa", true)])));
    until(|| counter(&ok_fetches(&server)) == 2).await;
    assert_eq!(server.fetches(), 6);
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_fetch_rejects_tokens_until_a_retry_succeeds() {
    recorder();
    let server = JwksServer::start(String::new()).await;
    server.answer(Err(500));
    let svc = remote_service(&server, Duration::from_secs(1200));
    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    assert_eq!(
        rejection(&svc, &token).await.as_deref(),
        Some("Jwks remote fetch is failed")
    );
    assert_eq!(server.fetches(), 1);
    // Requests without a token pass meanwhile.
    assert!(send(&svc, Request::new(())).await.unwrap().auth.is_none());

    server.answer(Ok(jwks(vec![KEYS.rsa.jwk("rsa", true)])));
    until(|| counter(&ok_fetches(&server)) == 1).await;
    assert_eq!(server.fetches(), 2);
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_fetch_that_hangs_is_bounded_by_the_timeout() {
    recorder();
    let server = JwksServer::start(String::new()).await;
    server.hang.store(true, Ordering::SeqCst);
    let svc = service(&[remote_rule(
        server.uri(),
        Duration::from_secs(3),
        Duration::from_secs(1200),
    )]);
    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    let start = tokio::time::Instant::now();
    assert_eq!(
        rejection(&svc, &token).await.as_deref(),
        Some("Jwks remote fetch is failed")
    );
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_jwks_uri_rejects_tokens() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let svc = service(&[remote_rule(
        format!("http://{addr}/jwks.json"),
        Duration::from_secs(5),
        Duration::from_secs(1200),
    )]);
    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    assert_eq!(
        rejection(&svc, &token).await.as_deref(),
        Some("Jwks remote fetch is failed")
    );
}

#[tokio::test(start_paused = true)]
async fn rules_naming_one_uri_share_one_fetch() {
    recorder();
    let server = JwksServer::start(jwks(vec![KEYS.rsa.jwk("rsa", true)])).await;
    let a = remote_rule(
        server.uri(),
        Duration::from_secs(5),
        Duration::from_secs(1200),
    );
    let mut b = a.clone();
    b.issuer = "other".into();
    b.audiences = Vec::new();
    let svc = service(&[a, b]);
    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    let other = KEYS
        .rsa
        .sign(Some("rsa"), &json!({"iss": "other", "sub": "bob"}));
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());
    assert!(send(&svc, bearer(&other)).await.unwrap().auth.is_some());
    assert_eq!(server.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_the_key_sets_of_unchanged_uris() {
    recorder();
    let a = JwksServer::start(jwks(vec![KEYS.rsa.jwk("rsa", true)])).await;
    let b = JwksServer::start(jwks(vec![KEYS.ec.jwk("ec", true)])).await;
    let (timeout, refresh) = (Duration::from_secs(5), Duration::from_secs(1200));
    let rule_a = remote_rule(a.uri(), timeout, refresh);
    let mut rule_b = remote_rule(b.uri(), timeout, refresh);
    rule_b.issuer = "other".into();
    rule_b.audiences = Vec::new();
    let layer = AuthnLayer::builder(std::slice::from_ref(&rule_a))
        .clock(fixed_clock())
        .build()
        .unwrap();
    let svc = layer.layer(app());
    let token = KEYS.rsa.sign(Some("rsa"), &claims());
    let other = KEYS
        .ec
        .sign(Some("ec"), &json!({"iss": "other", "sub": "bob"}));
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());
    assert_eq!(
        rejection(&svc, &other).await.as_deref(),
        Some("Jwt issuer is not configured")
    );

    // A second issuer: its set is fetched, the first one's is kept.
    layer.store(layer.prepare(&[rule_a.clone(), rule_b]).unwrap());
    assert!(send(&svc, bearer(&other)).await.unwrap().auth.is_some());
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());
    assert_eq!((a.fetches(), b.fetches()), (1, 1));

    // A bad rule is refused before anything starts; the rules in force stay.
    let mut bad = rule_a.clone();
    bad.keys = JwksSource::Remote {
        uri: "ftp://keys".into(),
        timeout,
        refresh,
    };
    assert!(layer.prepare(&[bad]).is_err());
    assert!(send(&svc, bearer(&other)).await.unwrap().auth.is_some());

    // Another refresh is another fetch; a URI no rule names any more is not fetched again.
    let mut faster = rule_a;
    faster.keys = JwksSource::Remote {
        uri: a.uri(),
        timeout,
        refresh: Duration::from_secs(600),
    };
    layer.store(layer.prepare(&[faster]).unwrap());
    until(|| a.fetches() == 2).await;
    assert_eq!(
        rejection(&svc, &other).await.as_deref(),
        Some("Jwt issuer is not configured")
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(b.fetches(), 1);
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());
}

#[tokio::test(start_paused = true)]
async fn the_fetch_task_ends_with_the_layer() {
    recorder();
    let server = JwksServer::start(jwks(vec![KEYS.rsa.jwk("rsa", true)])).await;
    let svc = remote_service(&server, Duration::from_secs(10));
    until(|| server.fetches() == 1).await;
    drop(svc);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(server.fetches(), 1);
}

// Real time: paused time jumps to the next timer whenever the runtime waits for I/O, and
// the TLS handshake's round trips make it wait (the fetch timeout would fire).
#[tokio::test]
async fn an_https_jwks_uri_is_verified_against_the_given_roots() {
    use rustls_pki_types::PrivateKeyDer;

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = jwks(vec![KEYS.ed.jwk("ed", true)]);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(tls) = acceptor.accept(stream).await else {
                continue;
            };
            let body = body.clone();
            let svc = hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc),
            );
        }
    });

    let uri = format!("https://{addr}/jwks.json");
    let r = remote_rule(
        uri.clone(),
        Duration::from_secs(5),
        Duration::from_secs(1200),
    );
    let token = KEYS.ed.sign(Some("ed"), &claims());

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let svc = AuthnLayer::builder(std::slice::from_ref(&r))
        .https_roots(roots)
        .clock(fixed_clock())
        .build()
        .unwrap()
        .layer(app());
    assert!(send(&svc, bearer(&token)).await.unwrap().auth.is_some());

    // Roots that do not hold the server's certificate: the fetch fails.
    let other = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(other.der().clone()).unwrap();
    let svc = AuthnLayer::builder(&[r])
        .https_roots(roots)
        .clock(fixed_clock())
        .build()
        .unwrap()
        .layer(app());
    assert_eq!(
        rejection(&svc, &token).await.as_deref(),
        Some("Jwks remote fetch is failed")
    );
}

#[tokio::test]
async fn the_service_is_ready_when_the_inner_one_is() {
    let mut svc = service(&[inline_rule()]);
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let _ = svc.get_ref();
    let _ = format!("{svc:?} {:?}", AuthnLayer::new(&[inline_rule()]).unwrap());
}
