//! JWT request authentication end to end: a RequestAuthentication (Istio's
//! `testing@secure.istio.io` rule with an audience) loaded from YAML, keys from a JWKS served
//! on loopback (`jwksUri`) or written inline, tokens sent over real HTTP to a MeshServer.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::support::{
    ISSUER, JwksServer, KEYS, Server, b64, claims, config_text, fixture, get, inline_jwks, jwks,
    listen, load, now, send, test_jwks, token, with,
};

/// Where a rule's keys come from.
enum Source {
    /// `jwksUri` of this server.
    Remote(String),
    /// `jwks` with this JSON.
    Inline(String),
}

impl Source {
    fn yaml(&self) -> String {
        match self {
            Source::Remote(uri) => format!("jwksUri: \"{uri}\""),
            Source::Inline(json) => format!("jwks: {}", inline_jwks(json)),
        }
    }
}

/// Istio's RequestAuthentication of the JWT task, for `reviews`, with `more` lines in the
/// rule (indented as its fields).
fn request_authentication(source: &Source, more: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt-example
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  jwtRules:
  - issuer: \"{ISSUER}\"
    audiences: [\"reviews\"]
    {}
{more}",
        source.yaml()
    )
}

/// A server for `reviews` with `documents`.
async fn reviews(host: u8, documents: &[&str]) -> Server {
    Server::start(
        &load(&config_text("reviews", "default", "", documents)),
        95,
        host,
    )
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Both ways of giving keys: a JWKS server on 127.0.94.`host` and the same set inline.
async fn sources(host: u8) -> (JwksServer, Vec<Source>) {
    let jwks = JwksServer::start(host, test_jwks()).await;
    let sources = vec![Source::Remote(jwks.uri()), Source::Inline(test_jwks())];
    (jwks, sources)
}

#[tokio::test(start_paused = true)]
async fn valid_rs256_es256_and_eddsa_tokens_pass_with_the_request_principal() {
    let (jwks, sources) = sources(1).await;
    for (i, source) in sources.iter().enumerate() {
        let server = reviews(1 + i as u8, &[&request_authentication(source, "")]).await;
        let k = &*KEYS;
        for (key, kid) in [(&k.rsa, "rsa"), (&k.ec, "ec"), (&k.ed, "ed")] {
            let sub = format!("alice-{kid}");
            let token = key.sign(kid, &claims(&sub));
            let answer = send(
                server.addr(),
                get("/", &[("authorization", &bearer(&token))]),
            )
            .await
            .unwrap();
            assert_eq!(answer.status, 200, "{kid}: {answer:?}");
            assert_eq!(
                answer.principal().as_deref(),
                Some(format!("{ISSUER}/{sub}").as_str()),
                "{kid}"
            );
            let echo = answer.echo();
            assert_eq!(echo["claims"]["sub"], sub.as_str());
            // forwardOriginalToken is false: the token's header is not passed on.
            assert_eq!(answer.seen_header("authorization"), None, "{kid}");
        }
        assert_eq!(server.hits(), 3);
    }
    // One fetch served every token of the remote set.
    assert_eq!(jwks.fetches(), 1);
}

/// A token and the 401 message it gets.
fn bad_tokens() -> Vec<(&'static str, String, &'static str)> {
    let k = &*KEYS;
    let now = now();
    let valid = claims("alice");
    vec![
        (
            "expired (past the 60 s skew)",
            k.rsa
                .sign("rsa", &with(valid.clone(), json!({"exp": now - 120}))),
            "Jwt is expired",
        ),
        (
            "not yet valid (past the 60 s skew)",
            k.ec.sign("ec", &with(valid.clone(), json!({"nbf": now + 120}))),
            "Jwt not yet valid",
        ),
        (
            "wrong issuer",
            k.rsa.sign(
                "rsa",
                &with(valid.clone(), json!({"iss": "https://evil.example.com"})),
            ),
            "Jwt issuer is not configured",
        ),
        (
            "wrong audience",
            k.ed.sign("ed", &with(valid.clone(), json!({"aud": "details"}))),
            "Audiences in Jwt are not allowed",
        ),
        (
            "unknown key id",
            k.rsa.sign("no-such-key", &valid),
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
        (
            "bad signature: another key under a known kid",
            k.other_rsa.sign("rsa", &valid),
            "Jwt verification fails",
        ),
        (
            "bad signature: the payload changed after signing",
            {
                let signed = k.ec.sign("ec", &valid);
                let parts: Vec<&str> = signed.split('.').collect();
                let forged = with(valid.clone(), json!({"sub": "admin"}));
                format!("{}.{}.{}", parts[0], b64(&forged.to_string()), parts[2])
            },
            "Jwt verification fails",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(&valid.to_string())
            ),
            "Jwt algorithm is not supported: none (unsigned tokens are never accepted)",
        ),
        (
            "HS256 signed with the RSA public key as the secret",
            {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some("rsa".into());
                let secret = EncodingKey::from_secret(k.rsa.public_pem.as_bytes());
                jsonwebtoken::encode(&header, &valid, &secret).unwrap()
            },
            "Jwt algorithm is not supported: HS256 (mesh accepts only asymmetric keys)",
        ),
        (
            "malformed",
            "not-a-jwt".to_owned(),
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        ),
        (
            "malformed: the header is not JSON",
            format!("{}.{}.c2ln", b64("nope"), b64(&valid.to_string())),
            "Jwt header is an invalid JSON",
        ),
    ]
}

#[tokio::test(start_paused = true)]
async fn invalid_tokens_get_401_with_envoys_message_and_a_bearer_challenge() {
    let (_jwks, sources) = sources(2).await;
    for (i, source) in sources.iter().enumerate() {
        let server = reviews(10 + i as u8, &[&request_authentication(source, "")]).await;
        for (case, token, message) in bad_tokens() {
            let answer = send(
                server.addr(),
                get("/", &[("authorization", &bearer(&token))]),
            )
            .await
            .unwrap();
            assert_eq!(answer.status, 401, "{case}: {answer:?}");
            assert!(
                answer.body.starts_with(message),
                "{case}: {:?} is not {message:?}",
                answer.body
            );
            assert_eq!(
                answer.header("www-authenticate"),
                "Bearer realm=\"mesh\", error=\"invalid_token\"",
                "{case}"
            );
        }
        // Rejected before the application.
        assert_eq!(server.hits(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_missing_token_passes_until_an_authorization_policy_requires_one() {
    let jwks = JwksServer::start(3, test_jwks()).await;
    let authn = request_authentication(&Source::Remote(jwks.uri()), "");

    // RequestAuthentication alone: no token, no principal, but served.
    let open = reviews(20, &[&authn]).await;
    let answer = send(open.addr(), get("/", &[])).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.principal(), None);

    // Istio's "require JWT": ALLOW requestPrincipals ["*"].
    let required = reviews(21, &[&authn, &fixture("policy-require-jwt.yaml")]).await;
    let answer = send(required.addr(), get("/", &[])).await.unwrap();
    assert_eq!(answer.status, 403);
    assert_eq!(answer.body, "RBAC: access denied");
    let answer = send(
        required.addr(),
        get("/", &[("authorization", &bearer(&token("alice")))]),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.principal().as_deref(),
        Some("testing@secure.istio.io/alice")
    );
    // Authentication comes first: a bad token is 401, not 403.
    let answer = send(
        required.addr(),
        get("/", &[("authorization", "Bearer nope")]),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 401);

    // A valid token without `sub` authenticates but makes no request principal, so it does
    // not satisfy `requestPrincipals: ["*"]`.
    let no_sub = KEYS.rsa.sign("rsa", &{
        let mut c = claims("x");
        c.as_object_mut().unwrap().remove("sub");
        c
    });
    let answer = send(
        required.addr(),
        get("/", &[("authorization", &bearer(&no_sub))]),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 403);
    let answer = send(
        open.addr(),
        get("/", &[("authorization", &bearer(&no_sub))]),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.principal().as_deref(), Some(""));
    // Every token found must be valid: a good one in the header and a bad one in the
    // `access_token` parameter is 401.
    let answer = send(
        required.addr(),
        get(
            "/?access_token=garbage",
            &[("authorization", &bearer(&token("alice")))],
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 401);
    assert_eq!(required.hits(), 1);

    // The task's per-path form: DENY notRequestPrincipals ["*"] to /headers only.
    let per_path = reviews(22, &[&authn, &fixture("policy-deny-without-jwt.yaml")]).await;
    assert_eq!(
        send(per_path.addr(), get("/headers", &[]))
            .await
            .unwrap()
            .status,
        403
    );
    assert_eq!(
        send(per_path.addr(), get("/ip", &[])).await.unwrap().status,
        200
    );
    let with_token = [("authorization", bearer(&token("alice")))];
    let with_token: Vec<(&str, &str)> = with_token.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        send(per_path.addr(), get("/headers", &with_token))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test(start_paused = true)]
async fn tokens_from_headers_params_and_cookies_with_forwarding_and_claim_headers() {
    let more = "    fromHeaders:
    - name: x-jwt-assertion
      prefix: \"Bearer \"
    fromParams: [my_token]
    fromCookies: [session]
    forwardOriginalToken: true
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - {header: x-jwt-claim-foo, claim: foo}
    - {header: x-jwt-nested, claim: nested.key}
";
    let server = reviews(
        30,
        &[&request_authentication(&Source::Inline(test_jwks()), more)],
    )
    .await;
    let token = KEYS.ed.sign(
        "ed",
        &with(
            claims("bob"),
            json!({"foo": "bar", "nested": {"key": "value"}}),
        ),
    );
    let principal = Some("testing@secure.istio.io/bob".to_owned());
    let payload = token.split('.').nth(1).unwrap().to_owned();

    // fromHeaders, forwarded: the application sees the token and the claims' headers.
    let answer = send(
        server.addr(),
        get("/", &[("x-jwt-assertion", &bearer(&token))]),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.principal(), principal);
    assert_eq!(answer.seen_header("x-jwt-assertion"), Some(bearer(&token)));
    assert_eq!(
        answer.seen_header("x-jwt-claim-foo").as_deref(),
        Some("bar")
    );
    assert_eq!(answer.seen_header("x-jwt-nested").as_deref(), Some("value"));
    assert_eq!(answer.seen_header("x-jwt-payload"), Some(payload));

    // fromParams: the token stays in the query.
    let path = format!("/search?q=1&my_token={token}");
    let answer = send(server.addr(), get(&path, &[])).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.principal(), principal);
    assert_eq!(answer.echo()["query"], format!("q=1&my_token={token}"));

    // fromCookies.
    let cookie = format!("theme=dark; session={token}");
    let answer = send(server.addr(), get("/", &[("cookie", &cookie)]))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.principal(), principal);

    // The default locations are not read when the rule names its own: neither a valid nor
    // an invalid token there counts.
    for value in [bearer(&token), "Bearer garbage".to_owned()] {
        let answer = send(server.addr(), get("/", &[("authorization", &value)]))
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.principal(), None);
    }
    let answer = send(server.addr(), get(&format!("/?access_token={token}"), &[]))
        .await
        .unwrap();
    assert_eq!((answer.status.as_u16(), answer.principal()), (200, None));

    // Output headers a client sends itself are removed, token or not.
    let answer = send(
        server.addr(),
        get(
            "/",
            &[("x-jwt-claim-foo", "forged"), ("x-jwt-payload", "forged")],
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer.seen_header("x-jwt-claim-foo"), None);
    assert_eq!(answer.seen_header("x-jwt-payload"), None);

    // Without forwardOriginalToken the token's header is removed.
    let plain = reviews(
        31,
        &[&request_authentication(
            &Source::Inline(test_jwks()),
            "    fromHeaders: [{name: x-jwt-assertion}]\n",
        )],
    )
    .await;
    let answer = send(plain.addr(), get("/", &[("x-jwt-assertion", &token)]))
        .await
        .unwrap();
    assert_eq!(answer.principal(), principal);
    assert_eq!(answer.seen_header("x-jwt-assertion"), None);
}

#[tokio::test(start_paused = true)]
async fn a_rotated_key_is_fetched_again_from_the_jwks_uri() {
    let k = &*KEYS;
    let jwks_server = JwksServer::start(4, jwks(&[(&k.rsa, "rsa")])).await;
    let server = reviews(
        40,
        &[&request_authentication(
            &Source::Remote(jwks_server.uri()),
            "",
        )],
    )
    .await;
    let send_token = |token: String| {
        let addr = server.addr();
        async move {
            send(addr, get("/", &[("authorization", &bearer(&token))]))
                .await
                .unwrap()
        }
    };
    assert_eq!(send_token(token("alice")).await.status, 200);
    assert_eq!(jwks_server.fetches(), 1);

    // A token of a key the set does not hold yet: the set is fetched again at once, still
    // without it.
    let rotated = k.later.sign("later", &claims("alice"));
    let answer = send_token(rotated.clone()).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.body,
        "Jwks doesn't have key to match kid or alg from Jwt"
    );
    assert_eq!(jwks_server.fetches(), 2);

    // The issuer publishes the key; fetches for unknown kids are at most one per 30 s.
    jwks_server.publish(jwks(&[(&k.rsa, "rsa"), (&k.later, "later")]));
    assert_eq!(send_token(rotated.clone()).await.status, 401);
    assert_eq!(jwks_server.fetches(), 2);
    tokio::time::advance(Duration::from_secs(31)).await;
    let answer = send_token(rotated).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.principal().as_deref(),
        Some("testing@secure.istio.io/alice")
    );
    assert_eq!(jwks_server.fetches(), 3);
    // The old key still works.
    assert_eq!(send_token(token("carol")).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_jwks_uri_fails_tokens_but_not_requests_without_one() {
    // A port nothing listens on.
    let closed = listen(94, 5).await.local_addr().unwrap();
    let server = reviews(
        50,
        &[&request_authentication(
            &Source::Remote(format!("http://{closed}/jwks")),
            "",
        )],
    )
    .await;
    let answer = send(
        server.addr(),
        get("/", &[("authorization", &bearer(&token("alice")))]),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body, "Jwks remote fetch is failed");
    let answer = send(server.addr(), get("/", &[])).await.unwrap();
    assert_eq!((answer.status.as_u16(), answer.principal()), (200, None));
}

#[tokio::test(start_paused = true)]
async fn request_authentications_apply_by_namespace_and_selector() {
    let jwks = inline_jwks(&test_jwks());
    // One rule for the whole mesh (root namespace), one for ratings only.
    let documents = format!(
        "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: mesh-wide, namespace: istio-system}}
spec:
  jwtRules:
  - issuer: \"{ISSUER}\"
    jwks: {jwks}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: ratings-only, namespace: default}}
spec:
  selector: {{matchLabels: {{app: ratings}}}}
  jwtRules:
  - issuer: https://ratings.example.com
    jwks: {jwks}
"
    );
    let reviews_server = reviews(60, &[&documents]).await;
    let ratings_server = Server::start(
        &load(&config_text("ratings", "default", "", &[&documents])),
        95,
        61,
    )
    .await;
    let ratings_token = KEYS.ec.sign(
        "ec",
        &with(
            claims("dave"),
            json!({"iss": "https://ratings.example.com"}),
        ),
    );
    let mesh_token = token("erin");
    let to = |server: &Server, token: &str| {
        let (addr, header) = (server.addr(), bearer(token));
        async move {
            send(addr, get("/", &[("authorization", &header)]))
                .await
                .unwrap()
        }
    };
    let answer = to(&reviews_server, &ratings_token).await;
    assert_eq!(
        answer.status, 401,
        "the ratings rule does not apply to reviews"
    );
    assert_eq!(answer.body, "Jwt issuer is not configured");
    let answer = to(&ratings_server, &ratings_token).await;
    assert_eq!(
        answer.principal().as_deref(),
        Some("https://ratings.example.com/dave")
    );
    for server in [&reviews_server, &ratings_server] {
        let answer = to(server, &mesh_token).await;
        assert_eq!(
            answer.principal().as_deref(),
            Some("testing@secure.istio.io/erin")
        );
    }
}
