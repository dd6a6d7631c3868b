//! Property tests of the server stack built from YAML (`MeshServer::from_config(..).layer()`,
//! called with `oneshot`): arbitrary requests (methods, paths, headers, forwarded-for noise,
//! peers) and arbitrary tokens never panic, and every answer is 200, 400 (a malformed path escape), 401 or 403.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::BodyExt;
use mesh::tower::MeshServer;
use mesh::tower::authn::RequestAuth;
use mesh::tower::server::Peer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower::util::BoxCloneService;

use crate::support::{
    ISSUER, KEYS, claims, config_text, inline_jwks, load, spiffe, test_jwks, token,
};

/// The stack around an application that answers with the request principal (empty
/// without one).
type Stack = BoxCloneService<Request<()>, Response<String>, Infallible>;

/// RequestAuthentication with two issuers and every token location, and ALLOW, DENY and
/// AUDIT policies on every kind of attribute.
fn documents(with_policies: bool) -> Vec<String> {
    let jwks = inline_jwks(&test_jwks());
    let mut documents = vec![format!(
        "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: default}}
spec:
  jwtRules:
  - issuer: \"{ISSUER}\"
    audiences: [reviews]
    jwks: {jwks}
    outputClaimToHeaders: [{{header: x-claim-sub, claim: sub}}]
  - issuer: https://other.example.com
    jwks: {jwks}
    fromHeaders: [{{name: x-jwt-assertion, prefix: \"Bearer \"}}]
    fromParams: [my_token]
    fromCookies: [session]
    outputPayloadToHeader: x-payload
"
    )];
    if with_policies {
        documents.push(
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [\"/admin*\", \"/api/{*}/private\"]}}]
  - from: [{source: {remoteIpBlocks: [\"192.0.2.0/24\"], notIpBlocks: [\"10.0.0.0/8\"]}}]
  - when:
    - key: request.headers[x-block]
      values: [\"*\"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: default}
spec:
  rules:
  - from: [{source: {requestPrincipals: [\"*\"], notRequestPrincipals: [\"*/mallory\"]}}]
  - to: [{operation: {methods: [GET, HEAD], paths: [\"/public*\", \"/files/{**}\", \"*.css\"]}}]
  - from: [{source: {ipBlocks: [\"10.0.0.0/8\", \"fd00::/8\"], principals: [\"cluster.local/ns/default/*\"]}}]
  - from: [{source: {namespaces: [test], notPrincipals: [\"*/sa/sleep\"]}}]
  - to: [{operation: {hosts: [reviews, \"*.example.com\"], notHosts: [admin.example.com], ports: [\"9080\"]}}]
    when:
    - key: request.headers[x-version]
      values: [v1, \"v2*\"]
      notValues: [v2-beta]
    - key: request.auth.claims[groups]
      values: [group1]
    - key: remote.ip
      notValues: [\"203.0.113.0/24\"]
    - key: destination.port
      values: [\"9080\"]
    - key: source.namespace
      notValues: [legacy]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: default}
spec:
  action: AUDIT
  rules:
  - to: [{operation: {methods: [POST, DELETE]}}]
"
            .to_owned(),
        );
    }
    documents
}

/// The stack of [`documents`], through the front door.
fn stack(with_policies: bool) -> Stack {
    let documents = documents(with_policies);
    let documents: Vec<&str> = documents.iter().map(String::as_str).collect();
    let config = load(&config_text("reviews", "default", "", &documents));
    let layer = MeshServer::from_config(&config)
        .expect("server")
        .layer()
        .expect("stack");
    let app = tower::service_fn(|req: Request<()>| async move {
        let principal = req
            .extensions()
            .get::<RequestAuth>()
            .map(|a| a.principal.to_string())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(principal))
    });
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(app)
        .map_response(whole);
    BoxCloneService::new(service)
}

/// A response with its body read (local replies and the application's are whole at once).
fn whole<B>(res: Response<B>) -> Response<String>
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = res.into_parts();
    let body = futures_util::FutureExt::now_or_never(body.collect())
        .expect("a whole body at once")
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    Response::from_parts(parts, body)
}

/// A paused current-thread runtime of its own: the proptest runner drives the cases one by
/// one from a plain test, each case `block_on` the stack.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// A request as generated: its parts before they are checked by `http`.
#[derive(Clone, Debug)]
struct Generated {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    peer: Option<(IpAddr, Option<(String, String)>)>,
}

impl Generated {
    /// The request, leaving out what `http` refuses (the path falls back to `/`).
    fn request(&self) -> Request<()> {
        let method = Method::from_bytes(self.method.as_bytes()).unwrap_or(Method::GET);
        let uri = Uri::try_from(self.path.as_str()).unwrap_or_else(|_| Uri::from_static("/"));
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .expect("request");
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                req.headers_mut().append(name, value);
            }
        }
        if let Some((ip, identity)) = &self.peer {
            req.extensions_mut().insert(Peer {
                addr: SocketAddr::new(*ip, 40000),
                local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9080),
                identity: identity.as_ref().map(|(ns, sa)| spiffe(ns, sa)),
                tls: identity.is_some(),
            });
        }
        req
    }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"
        ])
        .prop_map(str::to_owned),
        "[A-Za-z]{1,10}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        "(/(admin|api|public|files|private|x|\\{\\*\\}|\\*|\\.\\.|%2e|%2F|[a-z0-9._~-]{0,6})){0,6}(\\?[a-z_]{1,8}=[A-Za-z0-9._%-]{0,12}(&my_token=[A-Za-z0-9._-]{0,20})?)?",
        "\\PC{0,40}",
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        prop::sample::select(vec![
            "10.1.2.3",
            "192.0.2.9",
            "203.0.113.5",
            "127.0.95.1",
            "::1",
            "fd00::7",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ])
        .prop_map(|s| s.parse::<IpAddr>().expect("address")),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

/// `X-Forwarded-For` noise: lists of addresses, ports, brackets, garbage.
fn forwarded() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            ip().prop_map(|ip| ip.to_string()),
            (ip(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port).to_string()),
            ip().prop_map(|ip| format!("[{ip}]")),
            "[ -~]{0,12}",
        ],
        0..5,
    )
    .prop_map(|parts| parts.join(", ").into_bytes())
}

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "authorization",
            "x-forwarded-for",
            "host",
            "cookie",
            "x-jwt-assertion",
            "x-version",
            "x-block",
            "x-claim-sub",
            "x-payload",
        ])
        .prop_map(str::to_owned),
        "x-[a-z]{1,8}",
    ];
    let value = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        forwarded(),
        token_text().prop_map(|t| format!("Bearer {t}").into_bytes()),
        token_text().prop_map(|t| format!("a=b; session={t}").into_bytes()),
        prop::sample::select(vec![
            "reviews",
            "reviews:9080",
            "api.example.com",
            "v1",
            "v2-beta"
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ];
    (name, value)
}

fn request() -> impl Strategy<Value = Generated> {
    let who = prop::option::of((
        prop::sample::select(vec!["default", "test", "legacy", "a-b"]),
        prop::sample::select(vec!["sleep", "productpage", "x"]),
    ));
    (
        method(),
        path(),
        prop::collection::vec(header(), 0..8),
        prop::option::of((ip(), who)),
    )
        .prop_map(|(method, path, headers, peer)| Generated {
            method,
            path,
            headers,
            peer: peer.map(|(ip, who)| (ip, who.map(|(ns, sa)| (ns.to_owned(), sa.to_owned())))),
        })
}

/// Valid tokens of the first rule's issuer, with their subjects.
static VALID: LazyLock<Vec<(String, &'static str)>> = LazyLock::new(|| {
    vec![
        (token("alice"), "alice"),
        (token("mallory"), "mallory"),
        (KEYS.ec.sign("ec", &claims("bob")), "bob"),
        (KEYS.ed.sign("ed", &claims("carol")), "carol"),
    ]
});

/// Token-like text: valid tokens, valid tokens cut or spliced, three parts of base64url
/// JSON with random fields, or any text.
fn token_text() -> impl Strategy<Value = String> {
    let valid: Vec<String> = VALID.iter().map(|(token, _)| token.clone()).collect();
    let json_value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!(["reviews", 1])),
        Just(json!({"nested": []})),
    ];
    let header = (
        prop_oneof![
            prop::sample::select(vec![
                "RS256", "ES256", "EdDSA", "none", "HS256", "PS512", "ES384", ""
            ])
            .prop_map(Value::from),
            json_value.clone(),
        ],
        prop_oneof![
            prop::sample::select(vec!["rsa", "ec", "ed", "nope"]).prop_map(Value::from),
            json_value.clone(),
        ],
    )
        .prop_map(|(alg, kid)| json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string());
    let payload = (
        prop_oneof![Just(Value::from(ISSUER)), json_value.clone()],
        json_value.clone(),
        json_value.clone(),
        json_value.clone(),
        json_value,
    )
        .prop_map(|(iss, sub, aud, exp, nbf)| {
            json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp, "nbf": nbf}).to_string()
        });
    let structured =
        (header, payload, prop::collection::vec(any::<u8>(), 0..80)).prop_map(|(h, p, sig)| {
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(h),
                URL_SAFE_NO_PAD.encode(p),
                URL_SAFE_NO_PAD.encode(sig)
            )
        });
    let valid_sel = prop::sample::select(valid);
    let mangled = (
        valid_sel.clone(),
        any::<prop::sample::Index>(),
        "[A-Za-z0-9._-]{0,4}",
    )
        .prop_map(|(t, at, insert)| {
            let at = at.index(t.len() + 1);
            format!("{}{insert}{}", &t[..at], &t[at..])
        });
    prop_oneof![
        2 => structured,
        2 => mangled,
        1 => "[A-Za-z0-9._-]{0,60}",
        1 => "\\PC{0,60}",
        1 => valid_sel,
    ]
}

fn status_of(rt: &tokio::runtime::Runtime, stack: &Stack, req: Request<()>) -> Response<String> {
    rt.block_on(stack.clone().oneshot(req))
        .expect("the stack never fails")
}

#[test]
fn arbitrary_requests_get_200_400_401_or_403() {
    let rt = runtime();
    let stack = rt.block_on(async { stack(true) });
    runner(512)
        .run(&request(), |generated| {
            let res = status_of(&rt, &stack, generated.request());
            let status = res.status().as_u16();
            prop_assert!(
                matches!(status, 200 | 400 | 401 | 403),
                "{status} {:?} for {generated:?}",
                res.body()
            );
            match status {
                // Only a path the normalization cannot read is a 400, and it says so.
                400 => prop_assert!(
                    res.body().starts_with("malformed path")
                        && mesh::core::path::normalize(generated.request().uri().path()).is_err()
                ),
                401 => prop_assert!(res.headers().contains_key("www-authenticate")),
                403 => prop_assert_eq!(res.body().as_str(), "RBAC: access denied"),
                _ => {}
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Where a token is put: the first rule's default locations, or the second rule's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Location {
    Bearer,
    AccessToken,
    Assertion,
    Param,
    Cookie,
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A GET of `/` with `token` at `location` (left out when it cannot be a header value).
fn with_token(token: &str, location: Location) -> Request<()> {
    let uri = match location {
        Location::AccessToken => format!("/?access_token={}", percent_encode(token)),
        Location::Param => format!("/?my_token={}", percent_encode(token)),
        _ => "/".to_owned(),
    };
    let mut req = Request::get(uri).body(()).expect("request");
    let (name, value) = match location {
        Location::Bearer => ("authorization", format!("Bearer {token}")),
        Location::Assertion => ("x-jwt-assertion", format!("Bearer {token}")),
        Location::Cookie => ("cookie", format!("session={token}")),
        Location::AccessToken | Location::Param => return req,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        req.headers_mut().insert(name, value);
    }
    req
}

#[test]
fn arbitrary_tokens_never_panic_and_only_valid_ones_authenticate() {
    let rt = runtime();
    let stack = rt.block_on(async { stack(false) });
    let location = prop::sample::select(vec![
        Location::Bearer,
        Location::AccessToken,
        Location::Assertion,
        Location::Param,
        Location::Cookie,
    ]);
    runner(512)
        .run(&(token_text(), location), |(token, location)| {
            let res = status_of(&rt, &stack, with_token(&token, location));
            let status = res.status().as_u16();
            prop_assert!(
                matches!(status, 200 | 401),
                "{} for {:?} in {:?}",
                status,
                token,
                location
            );
            if !res.body().is_empty() && status == 200 {
                // Only an unchanged valid token, where its issuer's rule reads it.
                let sub = VALID
                    .iter()
                    .find(|(valid, _)| *valid == token)
                    .map(|(_, sub)| *sub);
                prop_assert!(
                    sub.is_some() && matches!(location, Location::Bearer | Location::AccessToken),
                    "{:?} in {:?} authenticated {:?}",
                    token,
                    location,
                    res.body()
                );
                prop_assert_eq!(
                    res.body().clone(),
                    format!("{ISSUER}/{}", sub.unwrap_or(""))
                );
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
