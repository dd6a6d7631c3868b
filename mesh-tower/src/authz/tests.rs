use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_core::config::{
    AuthorizationPolicy, AuthzAction, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource,
    Matcher,
};
use mesh_core::identity::SpiffeId;
use serde_json::json;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::server::ReplyLayer;
use crate::test_metrics::Counters;

// ---------------------------------------------------------------------------------------
// Helpers.

fn is(values: &[&str]) -> Matcher {
    Matcher {
        values: values.iter().map(|v| (*v).to_owned()).collect(),
        not_values: Vec::new(),
    }
}

fn policy(name: &str, action: AuthzAction, rule: AuthzRule) -> AuthorizationPolicy {
    AuthorizationPolicy {
        name: name.to_owned(),
        namespace: Some("default".to_owned()),
        selector: None,
        action,
        rules: vec![rule],
    }
}

fn source(f: impl FnOnce(&mut AuthzSource)) -> AuthzRule {
    let mut s = AuthzSource::default();
    f(&mut s);
    AuthzRule {
        from: vec![s],
        ..AuthzRule::default()
    }
}

fn operation(f: impl FnOnce(&mut AuthzOperation)) -> AuthzRule {
    let mut o = AuthzOperation::default();
    f(&mut o);
    AuthzRule {
        to: vec![o],
        ..AuthzRule::default()
    }
}

fn when(key: &str, values: &[&str]) -> AuthzRule {
    AuthzRule {
        when: vec![AuthzCondition {
            key: key.to_owned(),
            matcher: is(values),
        }],
        ..AuthzRule::default()
    }
}

fn layer(policies: &[AuthorizationPolicy]) -> AuthzLayer {
    AuthzLayer::new(Authorizer::new(policies).unwrap())
}

/// The application: answers 200 and counts its calls.
fn app(
    calls: &Arc<AtomicUsize>,
) -> impl Service<Request<()>, Response = Response<String>, Error = ServerError, Future: Send> + Clone
{
    let calls = calls.clone();
    service_fn(move |_req: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok(Response::new("ok".to_owned())) }
    })
}

const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 40000);
const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), 9080);

fn peer(identity: Option<&str>) -> Peer {
    Peer {
        addr: CLIENT,
        local: SERVER,
        identity: identity.map(|id| id.parse::<SpiffeId>().unwrap()),
        tls: identity.is_some(),
    }
}

const SLEEP: &str = "spiffe://cluster.local/ns/default/sa/sleep";

fn get(path: &str) -> Request<()> {
    Request::get(path)
        .header("host", "reviews.default.svc:9080")
        .body(())
        .unwrap()
}

fn with_peer(mut req: Request<()>, identity: Option<&str>) -> Request<()> {
    req.extensions_mut().insert(peer(identity));
    req
}

fn with_token(mut req: Request<()>) -> Request<()> {
    req.extensions_mut().insert(RequestAuth {
        principal: Arc::from("https://issuer.example/alice"),
        claims: Arc::new(json!({
            "iss": "https://issuer.example",
            "sub": "alice",
            "groups": ["admin"],
        })),
    });
    req
}

/// Sends `req` through `layer` around [`app`]: the result and whether the app was called.
async fn send(
    layer: &AuthzLayer,
    req: Request<()>,
) -> (Result<Response<String>, ServerError>, bool) {
    let calls = Arc::new(AtomicUsize::new(0));
    let result = layer.layer(app(&calls)).oneshot(req).await;
    (result, calls.load(Ordering::SeqCst) == 1)
}

#[track_caller]
fn assert_forbidden(result: &Result<Response<String>, ServerError>, want: Option<&str>) {
    match result {
        Err(ServerError::Forbidden { policy }) => assert_eq!(policy.as_deref(), want),
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Decisions.

#[tokio::test(start_paused = true)]
async fn an_empty_authorizer_passes_everything_through() {
    let layer = AuthzLayer::new(Authorizer::default());
    let (result, called) = send(&layer, Request::new(())).await;
    assert_eq!(result.unwrap().into_body(), "ok");
    assert!(called);
}

#[tokio::test(start_paused = true)]
async fn a_matching_deny_policy_is_forbidden_and_the_app_never_runs() {
    let layer = layer(&[policy(
        "deny-sleep",
        AuthzAction::Deny,
        source(|s| s.principals = is(&["cluster.local/ns/default/sa/sleep"])),
    )]);
    let (result, called) = send(&layer, with_peer(get("/"), Some(SLEEP))).await;
    assert_forbidden(&result, Some("default/deny-sleep"));
    assert!(!called);
    // Another identity, plaintext, or no peer at all pass.
    let other = "spiffe://cluster.local/ns/default/sa/productpage";
    for req in [
        with_peer(get("/"), Some(other)),
        with_peer(get("/"), None),
        get("/"),
    ] {
        let (result, called) = send(&layer, req).await;
        assert!(result.is_ok());
        assert!(called);
    }
}

#[tokio::test(start_paused = true)]
async fn allow_policies_that_do_not_match_are_forbidden_without_a_policy() {
    let layer = layer(&[policy(
        "from-prod",
        AuthzAction::Allow,
        source(|s| s.namespaces = is(&["prod"])),
    )]);
    let (result, called) = send(&layer, with_peer(get("/"), Some(SLEEP))).await;
    assert_forbidden(&result, None);
    assert!(!called);
    let prod = "spiffe://cluster.local/ns/prod/sa/web";
    let (result, called) = send(&layer, with_peer(get("/"), Some(prod))).await;
    assert!(result.is_ok() && called);
}

#[tokio::test(start_paused = true)]
async fn request_auth_gives_the_request_principal_and_claims() {
    let layer = layer(&[
        policy(
            "tokens",
            AuthzAction::Allow,
            source(|s| s.request_principals = is(&["https://issuer.example/*"])),
        ),
        policy(
            "admins-only",
            AuthzAction::Deny,
            AuthzRule {
                when: vec![AuthzCondition {
                    key: "request.auth.claims[groups]".into(),
                    matcher: Matcher {
                        values: Vec::new(),
                        not_values: vec!["admin".into()],
                    },
                }],
                ..operation(|o| o.paths = is(&["/admin/{**}"]))
            },
        ),
    ]);
    let (result, _) = send(&layer, with_token(get("/admin/users"))).await;
    assert!(result.is_ok());
    let (result, _) = send(&layer, get("/admin/users")).await;
    // No token: the DENY's `notValues` matches the absent claim.
    assert_forbidden(&result, Some("default/admins-only"));
    let (result, _) = send(&layer, get("/public")).await;
    assert_forbidden(&result, None);
}

#[tokio::test(start_paused = true)]
async fn the_peer_gives_source_ip_and_destination_port_and_ip() {
    let by_ip = layer(&[policy(
        "pods",
        AuthzAction::Allow,
        source(|s| s.ip_blocks = is(&["10.1.0.0/16"])),
    )]);
    let (result, _) = send(&by_ip, with_peer(get("/"), None)).await;
    assert!(result.is_ok());
    // Without a peer the source is 0.0.0.0.
    let (result, _) = send(&by_ip, get("/")).await;
    assert_forbidden(&result, None);

    let by_port = layer(&[policy(
        "port",
        AuthzAction::Allow,
        operation(|o| o.ports = is(&["9080"])),
    )]);
    let mut req = with_peer(Request::get("/").body(()).unwrap(), None);
    // The peer's local port counts, not the Host header's.
    req.headers_mut()
        .insert("host", "reviews:1234".parse().unwrap());
    let (result, _) = send(&by_port, req).await;
    assert!(result.is_ok());
    // Without a peer the Host header's port counts, else 0.
    let (result, _) = send(&by_port, get("/")).await;
    assert!(result.is_ok());
    let plain = Request::get("/")
        .header("host", "reviews")
        .body(())
        .unwrap();
    let (result, _) = send(&by_port, plain).await;
    assert_forbidden(&result, None);

    let by_destination = layer(&[policy(
        "dest",
        AuthzAction::Allow,
        when("destination.ip", &["10.9.9.9"]),
    )]);
    let (result, _) = send(&by_destination, with_peer(get("/"), None)).await;
    assert!(result.is_ok());
    let (result, _) = send(&by_destination, get("/")).await;
    assert_forbidden(&result, None);
}

#[tokio::test(start_paused = true)]
async fn hosts_come_from_the_host_header_or_the_authority() {
    let layer = layer(&[policy(
        "reviews",
        AuthzAction::Allow,
        operation(|o| o.hosts = is(&["reviews.default.svc"])),
    )]);
    let (result, _) = send(&layer, get("/")).await;
    assert!(result.is_ok());
    // HTTP/2 style: no Host header, the URI's authority.
    let h2 = Request::get("http://Reviews.Default.svc:9080/x")
        .body(())
        .unwrap();
    let (result, _) = send(&layer, h2).await;
    assert!(result.is_ok());
    let other = Request::get("/")
        .header("host", "ratings")
        .body(())
        .unwrap();
    let (result, _) = send(&layer, other).await;
    assert_forbidden(&result, None);
}

#[tokio::test(start_paused = true)]
async fn remote_ip_is_the_trusted_hop_of_x_forwarded_for() {
    let policies = [policy(
        "origin",
        AuthzAction::Allow,
        source(|s| s.remote_ip_blocks = is(&["203.0.113.0/24"])),
    )];
    let xff = |lines: &[&str]| {
        let mut req = with_peer(get("/"), None);
        for line in lines {
            req.headers_mut()
                .append("x-forwarded-for", line.parse().unwrap());
        }
        req
    };
    let none = layer(&policies);
    let one = layer(&policies).trusted_proxies(1);
    let two = layer(&policies).trusted_proxies(2);
    // Without trusted proxies the header is ignored: remote is the peer (10.1.2.3).
    let (result, _) = send(&none, xff(&["203.0.113.9"])).await;
    assert_forbidden(&result, None);
    // One: the rightmost address.
    let (result, _) = send(&one, xff(&["198.51.100.1, 203.0.113.9"])).await;
    assert!(result.is_ok());
    let (result, _) = send(&one, xff(&["203.0.113.9, 198.51.100.1"])).await;
    assert_forbidden(&result, None);
    // Two: the second from the right, across header lines.
    let (result, _) = send(&two, xff(&["203.0.113.9", "198.51.100.1"])).await;
    assert!(result.is_ok());
    let (result, _) = send(&two, xff(&["1.1.1.1,203.0.113.9 , 198.51.100.1"])).await;
    assert!(result.is_ok());
    // Fewer addresses than hops, or a bad one: the connection's source.
    let (result, _) = send(&two, xff(&["203.0.113.9"])).await;
    assert_forbidden(&result, None);
    let (result, _) = send(&two, xff(&["203.0.113.9", "garbage, 1.1.1.1"])).await;
    assert_forbidden(&result, None);
}

#[test]
fn forwarded_addresses_take_the_forms_proxies_write() {
    let headers = |line: &'static str| {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", line.parse().unwrap());
        h
    };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let cases = [
        ("192.0.2.1", Some(ip("192.0.2.1"))),
        ("2001:db8::1", Some(ip("2001:db8::1"))),
        ("[2001:db8::1]", Some(ip("2001:db8::1"))),
        ("[2001:db8::1]:443", Some(ip("2001:db8::1"))),
        ("192.0.2.1:8080", Some(ip("192.0.2.1"))),
        ("::ffff:192.0.2.1", Some(ip("192.0.2.1"))),
        ("unknown", None),
        ("", None),
    ];
    for (line, want) in cases {
        assert_eq!(forwarded_client(&headers(line), 1), want, "{line}");
    }
    assert_eq!(forwarded_client(&HeaderMap::new(), 1), None);
    assert_eq!(forwarded_client(&headers("a, b"), 3), None);
}

#[test]
fn host_ports_are_parsed_as_the_host_header_writes_them() {
    assert_eq!(host_port("reviews:9080"), Some(9080));
    assert_eq!(host_port("[::1]:8443"), Some(8443));
    assert_eq!(host_port("reviews"), None);
    assert_eq!(host_port("::1"), None);
    assert_eq!(host_port("reviews:"), None);
    assert_eq!(host_port("reviews:99999"), None);
    assert_eq!(host_port("reviews:+1"), None);
}

#[tokio::test(start_paused = true)]
async fn audit_policies_never_change_the_decision() {
    let audit = policy(
        "audit-admin",
        AuthzAction::Audit,
        operation(|o| o.paths = is(&["/admin*"])),
    );
    let (result, called) = send(&layer(std::slice::from_ref(&audit)), get("/admin")).await;
    assert!(result.is_ok() && called);
    let deny = policy(
        "deny-admin",
        AuthzAction::Deny,
        operation(|o| o.paths = is(&["/admin*"])),
    );
    let verdict = layer(&[audit.clone(), deny.clone()]).authorize(&get("/admin"));
    assert!(!verdict.allowed);
    assert_eq!(verdict.audited.as_deref(), Some("default/audit-admin"));
    let (result, _) = send(&layer(&[audit, deny]), get("/admin")).await;
    assert_forbidden(&result, Some("default/deny-admin"));
}

#[tokio::test(start_paused = true)]
async fn inner_errors_become_server_errors() {
    let layer = layer(&[policy("all", AuthzAction::Allow, AuthzRule::default())]);
    let failing = service_fn(|_req: Request<()>| async {
        Err::<Response<()>, _>(ServerError::DeadlineExceeded)
    });
    let result = layer.layer(failing).oneshot(get("/")).await;
    assert!(matches!(result, Err(ServerError::DeadlineExceeded)));
    let infallible = service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(()))
    });
    assert!(layer.layer(infallible).oneshot(get("/")).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_reply_layer_answers_403_rbac_access_denied() {
    let mut nothing = policy("allow-nothing", AuthzAction::Allow, AuthzRule::default());
    nothing.rules.clear();
    let authz = layer(&[nothing]);
    let calls = Arc::new(AtomicUsize::new(0));
    let stack = ReplyLayer::new().layer(authz.layer(app(&calls)));
    let res = stack.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"RBAC: access denied");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------
// Metrics.

#[tokio::test(start_paused = true)]
async fn denials_and_audits_are_counted_by_policy() {
    let layer = layer(&[
        policy("audit-all", AuthzAction::Audit, AuthzRule::default()),
        policy(
            "deny-admin",
            AuthzAction::Deny,
            operation(|o| o.paths = is(&["/admin"])),
        ),
        policy(
            "allow-get",
            AuthzAction::Allow,
            operation(|o| o.methods = is(&["GET"])),
        ),
    ]);
    let counters = Counters::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(app(&calls));
    let post = Request::post("/").body(()).unwrap();
    let mut futures = Vec::new();
    for req in [get("/"), get("/admin"), post, get("/x")] {
        svc.ready().await.unwrap();
        // The decision, and its counting, happen in `call`.
        futures.push(metrics::with_local_recorder(&counters, || svc.call(req)));
    }
    let results: Vec<_> = futures_util::future::join_all(futures).await;
    assert_eq!(
        results.iter().map(Result::is_ok).collect::<Vec<_>>(),
        [true, false, false, true]
    );
    assert_eq!(
        counters.get("mesh_authz_denied_total{policy=default/deny-admin}"),
        1
    );
    assert_eq!(counters.get("mesh_authz_denied_total{policy=-}"), 1);
    assert_eq!(
        counters.get("mesh_authz_audited_total{policy=default/audit-all}"),
        4
    );
}
