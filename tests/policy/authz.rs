//! Authorization policies end to end: every field of a rule and its `not` form, `when`
//! conditions, the order of evaluation and Istio's Bookinfo task, each loaded from YAML and
//! decided by a MeshServer for requests over real connections (bare hyper clients bound to
//! chosen source addresses, MeshClients with DevCa identities over mutual TLS).

use std::net::{IpAddr, SocketAddr};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;

use crate::support::{
    CertDir, ISSUER, KEYS, Server, call, claims, config_text, fixture, get, inline_jwks, ip,
    listen, load, mesh_client, request, send, send_from, spiffe, test_jwks, token, token_with,
    with,
};
use mesh::tower::tls::DevCa;

/// An AuthorizationPolicy `name` of namespace default selecting `reviews`, with `action`
/// and `rules` (YAML list items, indented by two spaces).
fn policy(name: &str, action: &str, rules: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: {name}
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  action: {action}
  rules:
{rules}"
    )
}

/// A server for `reviews` in default with `documents`, on 127.0.95.`host`.
async fn reviews(host: u8, documents: &[&str]) -> Server {
    Server::start(
        &load(&config_text("reviews", "default", "", documents)),
        95,
        host,
    )
    .await
}

/// The status of `method path` with `headers` from 127.0.95.1.
async fn status_of(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let answer = send(server.addr(), request(method, path, headers))
        .await
        .expect("an answer");
    if answer.status == 403 && method != "HEAD" {
        assert_eq!(answer.body, "RBAC: access denied");
    }
    answer.status.as_u16()
}

/// The status of a GET of `path` sent from `from`.
async fn status_from(server: &Server, from: IpAddr, path: &str, headers: &[(&str, &str)]) -> u16 {
    send_from(from, server.addr(), get(path, headers))
        .await
        .expect("an answer")
        .status
        .as_u16()
}

/// Checks `(method, path, expected status)` cases.
async fn expect_all(server: &Server, cases: &[(&str, &str, u16)]) {
    for &(method, path, expected) in cases {
        assert_eq!(
            status_of(server, method, path, &[]).await,
            expected,
            "{method} {path}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Sources

#[tokio::test(start_paused = true)]
async fn ip_blocks_and_not_ip_blocks_match_the_connections_source() {
    let server = reviews(
        1,
        &[&policy(
            "ip-blocks",
            "ALLOW",
            "  - from:
    - source:
        ipBlocks: [\"127.0.95.0/24\"]
        notIpBlocks: [\"127.0.95.66\"]
",
        )],
    )
    .await;
    assert_eq!(status_from(&server, ip(95, 61), "/", &[]).await, 200);
    assert_eq!(status_from(&server, ip(95, 66), "/", &[]).await, 403);
    assert_eq!(status_from(&server, ip(96, 61), "/", &[]).await, 403);
    // The application saw the chosen source.
    let answer = send_from(ip(95, 62), server.addr(), get("/", &[]))
        .await
        .unwrap();
    assert_eq!(answer.echo()["source"], "127.0.95.62");

    // when source.ip, with notValues.
    let server = reviews(
        2,
        &[&policy(
            "source-ip",
            "DENY",
            "  - when:
    - key: source.ip
      values: [\"127.0.96.0/24\"]
      notValues: [\"127.0.96.7\"]
",
        )],
    )
    .await;
    assert_eq!(status_from(&server, ip(96, 6), "/", &[]).await, 403);
    assert_eq!(status_from(&server, ip(96, 7), "/", &[]).await, 200);
    assert_eq!(status_from(&server, ip(95, 63), "/", &[]).await, 200);
}

/// With no trusted proxies (`numTrustedProxies` 0, the default) `remote.ip` is the
/// connection's source and `X-Forwarded-For` is ignored: a client cannot claim another
/// address with it.
#[tokio::test(start_paused = true)]
async fn remote_ip_blocks_are_the_source_when_no_proxy_is_trusted() {
    let server = reviews(
        3,
        &[&policy(
            "remote-ip-blocks",
            "ALLOW",
            "  - from:
    - source:
        remoteIpBlocks: [\"127.0.95.0/24\"]
        notRemoteIpBlocks: [\"127.0.95.67\"]
  - to:
    - operation:
        paths: [\"/when\"]
    when:
    - key: remote.ip
      values: [\"127.0.96.64\"]
",
        )],
    )
    .await;
    assert_eq!(status_from(&server, ip(95, 64), "/", &[]).await, 200);
    assert_eq!(status_from(&server, ip(95, 67), "/", &[]).await, 403);
    assert_eq!(status_from(&server, ip(96, 64), "/", &[]).await, 403);
    // Forwarded-for addresses change nothing either way.
    let xff = [("x-forwarded-for", "127.0.95.64")];
    assert_eq!(status_from(&server, ip(96, 65), "/", &xff).await, 403);
    let xff = [("x-forwarded-for", "10.1.2.3, 127.0.95.67")];
    assert_eq!(status_from(&server, ip(95, 64), "/", &xff).await, 200);
    assert_eq!(status_from(&server, ip(96, 64), "/when", &[]).await, 200);
    let xff = [("x-forwarded-for", "127.0.96.64")];
    assert_eq!(status_from(&server, ip(96, 65), "/when", &xff).await, 403);
}

/// With `numTrustedProxies: 1` (one proxy in front, such as an ingress gateway), `remote.ip`
/// is the last `X-Forwarded-For` address, the one that proxy appended; an address a client
/// wrote before it is not trusted.
#[tokio::test(start_paused = true)]
async fn remote_ip_blocks_read_forwarded_for_behind_trusted_proxies() {
    let config = load(&config_text(
        "reviews",
        "default",
        "security: {numTrustedProxies: 1}",
        &[&policy(
            "remote-ip-blocks",
            "ALLOW",
            "  - from:
    - source:
        remoteIpBlocks: [\"10.1.0.0/16\"]
",
        )],
    ));
    let server = Server::start(&config, 95, 78).await;
    let xff = [("x-forwarded-for", "10.1.2.3")];
    assert_eq!(status_from(&server, ip(96, 70), "/", &xff).await, 200);
    // The client's own claim comes first; the proxy's entry (last) decides.
    let xff = [("x-forwarded-for", "10.1.2.3, 192.0.2.9")];
    assert_eq!(status_from(&server, ip(96, 70), "/", &xff).await, 403);
    // Without the header the connection's source is the remote address.
    assert_eq!(status_from(&server, ip(96, 70), "/", &[]).await, 403);
}

/// A RequestAuthentication for reviews with two issuers sharing the test keys.
fn two_issuers() -> String {
    let jwks = inline_jwks(&test_jwks());
    format!(
        "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: \"{ISSUER}\"
    jwks: {jwks}
  - issuer: \"https://other.example.com\"
    jwks: {jwks}
"
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(start_paused = true)]
async fn request_principals_and_not_request_principals_match_the_token() {
    let server = reviews(
        4,
        &[
            &two_issuers(),
            &policy(
                "request-principals",
                "ALLOW",
                "  - from:
    - source:
        requestPrincipals: [\"testing@secure.istio.io/*\"]
        notRequestPrincipals: [\"testing@secure.istio.io/mallory\"]
",
            ),
        ],
    )
    .await;
    let other = KEYS.rsa.sign(
        "rsa",
        &with(claims("alice"), json!({"iss": "https://other.example.com"})),
    );
    for (token, expected) in [
        (Some(token("alice")), 200),
        (Some(token("mallory")), 403),
        (Some(other), 403),
        (None, 403),
    ] {
        let header = token.as_deref().map(bearer);
        let headers: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("authorization", h.as_str()))
            .collect();
        assert_eq!(
            status_of(&server, "GET", "/", &headers).await,
            expected,
            "{token:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Operations

#[tokio::test(start_paused = true)]
async fn hosts_and_not_hosts_match_the_host_header_with_and_without_port() {
    let server = reviews(
        5,
        &[&policy(
            "hosts",
            "ALLOW",
            "  - to:
    - operation:
        hosts: [\"reviews\", \"*.example.com\", \"details:9080\"]
        notHosts: [\"admin.example.com\"]
",
        )],
    )
    .await;
    for (host, expected) in [
        ("reviews", 200),
        ("reviews:9080", 200),
        ("REVIEWS", 200),
        ("reviews.default", 403),
        ("api.example.com", 200),
        ("api.example.com:8443", 200),
        ("admin.example.com", 403),
        ("admin.example.com:80", 403),
        ("details:9080", 200),
        ("details", 403),
        ("details:9081", 403),
        ("ratings", 403),
    ] {
        assert_eq!(
            status_of(&server, "GET", "/", &[("host", host)]).await,
            expected,
            "Host: {host}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn ports_and_not_ports_match_the_listener_port() {
    let listeners = vec![
        listen(95, 6).await,
        listen(95, 6).await,
        listen(95, 6).await,
    ];
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let (a, b, c) = (ports[0], ports[1], ports[2]);
    let rules = format!(
        "  - to:
    - operation:
        ports: [\"{a}\", \"{b}\"]
        notPorts: [\"{b}\"]
  - to:
    - operation:
        paths: [\"/c\"]
    when:
    - key: destination.port
      values: [\"{c}\"]
"
    );
    let config = load(&config_text(
        "reviews",
        "default",
        "",
        &[&policy("ports", "ALLOW", &rules)],
    ));
    let server = Server::on(&config, listeners);
    let at = |port: u16| SocketAddr::new(ip(95, 6), port);
    for (port, path, expected) in [
        (a, "/", 200),
        (b, "/", 403),
        (c, "/", 403),
        (c, "/c", 200),
        (a, "/c", 200),
        (b, "/c", 403),
    ] {
        let answer = send(at(port), get(path, &[])).await.unwrap();
        assert_eq!(answer.status, expected, "port {port} {path}");
    }
    assert_eq!(server.addrs.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn methods_and_not_methods() {
    let server = reviews(
        7,
        &[&policy(
            "methods",
            "ALLOW",
            "  - to:
    - operation:
        methods: [\"GET\", \"HEAD\", \"POST\", \"PUT\"]
        notMethods: [\"PUT\"]
",
        )],
    )
    .await;
    expect_all(
        &server,
        &[
            ("GET", "/", 200),
            ("HEAD", "/", 200),
            ("POST", "/", 200),
            ("PUT", "/", 403),
            ("DELETE", "/", 403),
            ("PATCH", "/", 403),
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn paths_exact_prefix_suffix_and_templates_with_not_paths() {
    let server = reviews(
        8,
        &[&policy(
            "paths",
            "ALLOW",
            "  - to:
    - operation:
        paths: [\"/info\", \"/api/*\", \"*.json\", \"/users/{*}/profile\", \"/files/{**}\"]
        notPaths: [\"/api/private*\"]
",
        )],
    )
    .await;
    expect_all(
        &server,
        &[
            // Exact, the query ignored.
            ("GET", "/info", 200),
            ("GET", "/info?verbose=1", 200),
            ("GET", "/info/", 403),
            ("GET", "/infox", 403),
            // Prefix, and the not form.
            ("GET", "/api/v1/items", 200),
            ("GET", "/api/", 200),
            ("GET", "/api", 403),
            ("GET", "/api/private", 403),
            ("GET", "/api/private/keys", 403),
            // Suffix.
            ("GET", "/data/x.json", 200),
            ("GET", "/x.jsonp", 403),
            // {*}: one non-empty segment.
            ("GET", "/users/alice/profile", 200),
            ("GET", "/users//profile", 403),
            ("GET", "/users/a/b/profile", 403),
            ("GET", "/users/alice/profile/photo", 403),
            // {**}: the non-empty rest.
            ("GET", "/files/a", 200),
            ("GET", "/files/a/b/c.txt", 200),
            ("GET", "/files/", 403),
            ("GET", "/files", 403),
            ("GET", "/", 403),
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn paths_are_normalized_before_policies_and_the_application_see_them() {
    let server = reviews(
        77,
        &[&policy(
            "no-admin",
            "DENY",
            "  - to:
    - operation:
        paths: [\"/admin*\"]
",
        )],
    )
    .await;
    // A DENY on `/admin*` cannot be walked around with dot segments or escapes.
    expect_all(
        &server,
        &[
            ("GET", "/admin", 403),
            ("GET", "/./admin", 403),
            ("GET", "/public/../admin/keys", 403),
            ("GET", "/%61dmin", 403),
            ("GET", "/public/%2E%2E/admin", 403),
            ("GET", "/public/x", 200),
        ],
    )
    .await;
    // The application sees the path the policies judged, the query kept.
    let answer = send(server.addr(), get("/public/./a/../b?q=1", &[]))
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200);
    let seen: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    assert_eq!(seen["path"], "/public/b");
    assert_eq!(seen["query"], "q=1");
    // A malformed escape is a 400 that says so, and the application never sees it.
    let answer = send(server.addr(), get("/a%zz", &[]))
        .await
        .expect("an answer");
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("two hex digits"), "{}", answer.body);
}

// ---------------------------------------------------------------------------------------
// Conditions

#[tokio::test(start_paused = true)]
async fn when_conditions_on_headers_and_token_claims() {
    let rules = "  - to:
    - operation:
        paths: [\"/headers\"]
    when:
    - key: request.headers[x-version]
      values: [\"v1\", \"v2*\"]
      notValues: [\"v2-beta\"]
  # Istio's authorization-with-JWT task: a principal of the issuer in group1.
  - from:
    - source:
        requestPrincipals: [\"testing@secure.istio.io/*\"]
    to:
    - operation:
        paths: [\"/groups\"]
    when:
    - key: request.auth.claims[groups]
      values: [\"group1\"]
  - to:
    - operation:
        paths: [\"/nested\"]
    when:
    - key: request.auth.claims[nested][level]
      values: [\"2\"]
  - to:
    - operation:
        paths: [\"/token\"]
    when:
    - key: request.auth.principal
      values: [\"testing@secure.istio.io/alice\"]
    - key: request.auth.audiences
      values: [\"ratings\"]
    - key: request.auth.presenter
      notValues: [\"untrusted-app\"]
";
    let server = reviews(9, &[&two_issuers(), &policy("conditions", "ALLOW", rules)]).await;

    for (version, expected) in [
        (Some("v1"), 200),
        (Some("v2-rc1"), 200),
        (Some("v2-beta"), 403),
        (Some("v3"), 403),
        (None, 403),
    ] {
        let headers: Vec<(&str, &str)> = version.iter().map(|v| ("x-version", *v)).collect();
        assert_eq!(
            status_of(&server, "GET", "/headers", &headers).await,
            expected,
            "x-version {version:?}"
        );
    }

    let cases = [
        (
            "/groups",
            token_with("alice", json!({"groups": ["group1", "group2"]})),
            200,
        ),
        (
            "/groups",
            token_with("alice", json!({"groups": "group1"})),
            200,
        ),
        (
            "/groups",
            token_with("alice", json!({"groups": ["group2"]})),
            403,
        ),
        ("/groups", token("alice"), 403),
        (
            "/nested",
            token_with("bob", json!({"nested": {"level": 2}})),
            200,
        ),
        (
            "/nested",
            token_with("bob", json!({"nested": {"level": 3}})),
            403,
        ),
        (
            "/token",
            token_with("alice", json!({"azp": "web-app"})),
            200,
        ),
        ("/token", token("alice"), 200),
        (
            "/token",
            token_with("alice", json!({"azp": "untrusted-app"})),
            403,
        ),
        (
            "/token",
            token_with("alice", json!({"aud": "reviews"})),
            403,
        ),
        ("/token", token("bob"), 403),
    ];
    for (path, token, expected) in cases {
        let header = bearer(&token);
        assert_eq!(
            status_of(&server, "GET", path, &[("authorization", &header)]).await,
            expected,
            "{path} {:?}",
            jwt_claims(&token)
        );
    }
    // Without a token no claim condition matches.
    for path in ["/groups", "/nested", "/token"] {
        assert_eq!(status_of(&server, "GET", path, &[]).await, 403, "{path}");
    }
}

/// The claims of `token`, for messages.
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap_or("");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Evaluation order

#[tokio::test(start_paused = true)]
async fn deny_beats_allow() {
    let server = reviews(
        10,
        &[
            &policy("allow-all", "ALLOW", "  - {}\n"),
            &policy(
                "deny-admin",
                "DENY",
                "  - to:
    - operation:
        paths: [\"/admin*\"]
",
            ),
        ],
    )
    .await;
    expect_all(
        &server,
        &[
            ("GET", "/", 200),
            ("POST", "/x", 200),
            ("GET", "/admin/users", 403),
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_allow_policy_that_matches_nothing_denies_and_none_allows_everything() {
    // ALLOW present but not matching: 403.
    let server = reviews(
        11,
        &[&policy(
            "get-only",
            "ALLOW",
            "  - to:
    - operation:
        methods: [\"GET\"]
",
        )],
    )
    .await;
    expect_all(&server, &[("GET", "/", 200), ("POST", "/", 403)]).await;

    // No ALLOW policy: what no DENY matches is allowed.
    let server = reviews(
        12,
        &[&policy(
            "deny-delete",
            "DENY",
            "  - to:
    - operation:
        methods: [\"DELETE\"]
",
        )],
    )
    .await;
    expect_all(
        &server,
        &[("GET", "/", 200), ("POST", "/", 200), ("DELETE", "/", 403)],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn allow_nothing_denies_everything_and_an_empty_rule_allows_everything() {
    let allow_nothing = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: default
spec:
  {}
";
    let server = reviews(13, &[allow_nothing]).await;
    expect_all(
        &server,
        &[
            ("GET", "/", 403),
            ("POST", "/data", 403),
            ("HEAD", "/", 403),
        ],
    )
    .await;
    assert_eq!(server.hits(), 0);

    let allow_all = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-all
  namespace: default
spec:
  rules:
  - {}
";
    let server = reviews(14, &[allow_nothing, allow_all]).await;
    expect_all(
        &server,
        &[
            ("GET", "/", 200),
            ("POST", "/data", 200),
            ("DELETE", "/x", 200),
        ],
    )
    .await;
}

/// The counters of a snapshot (which resets them) by name and `policy` label.
fn counters(snapshotter: &Snapshotter) -> Vec<(String, String, u64)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let policy = key
                .labels()
                .find(|l| l.key() == "policy")?
                .value()
                .to_owned();
            match value {
                DebugValue::Counter(n) => Some((key.name().to_owned(), policy, n)),
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn audit_changes_nothing_but_counts() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The server's tasks run on this thread (a current-thread runtime).
    let _local = metrics::set_default_local_recorder(&recorder);

    let server = reviews(
        15,
        &[
            &policy(
                "audit-writes",
                "AUDIT",
                "  - to:
    - operation:
        methods: [\"POST\", \"DELETE\"]
",
            ),
            &policy(
                "deny-delete",
                "DENY",
                "  - to:
    - operation:
        methods: [\"DELETE\"]
",
            ),
        ],
    )
    .await;
    expect_all(
        &server,
        &[
            ("GET", "/", 200),
            ("POST", "/a", 200),
            ("POST", "/b", 200),
            ("DELETE", "/c", 403),
        ],
    )
    .await;
    // Audited whatever the decision: the two POSTs and the denied DELETE.
    let mut seen = counters(&snapshotter);
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "mesh_authz_audited_total".to_owned(),
                "default/audit-writes".to_owned(),
                3
            ),
            (
                "mesh_authz_denied_total".to_owned(),
                "default/deny-delete".to_owned(),
                1
            ),
        ]
    );
    assert_eq!(server.hits(), 3);
}

// ---------------------------------------------------------------------------------------
// Peer identities over mutual TLS

/// Clients with identities, and one without (plaintext).
struct Callers {
    ca: DevCa,
}

impl Callers {
    fn new() -> Self {
        Callers {
            ca: DevCa::new("cluster.local").expect("CA"),
        }
    }

    /// A MeshClient running as `<namespace>/<account>` (plaintext when `None`) for the
    /// destinations given.
    fn client(
        &self,
        who: Option<(&str, &str)>,
        destinations: &[(&str, SocketAddr)],
        bookinfo: bool,
    ) -> mesh::MeshClient {
        let id = who.map(|(ns, sa)| spiffe(ns, sa));
        mesh_client(&self.ca, id.as_ref(), destinations, bookinfo)
    }

    /// A server for `service` in `namespace` running as `account`, with `documents`.
    async fn server(
        &self,
        service: &str,
        namespace: &str,
        account: &str,
        host: u8,
        documents: &[&str],
    ) -> (Server, CertDir) {
        let certs = CertDir::issue(&self.ca, &spiffe(namespace, account));
        let text = config_text(service, namespace, &certs.security(""), documents);
        (Server::start(&load(&text), 95, host).await, certs)
    }
}

#[tokio::test(start_paused = true)]
async fn principals_and_namespaces_with_their_not_forms_over_mutual_tls() {
    let callers = Callers::new();
    let rules = "  - from:
    - source:
        principals: [\"cluster.local/ns/default/*\"]
        notPrincipals: [\"cluster.local/ns/default/sa/ratings\"]
    to:
    - operation:
        paths: [\"/principals\"]
  - from:
    - source:
        namespaces: [\"*\"]
        notNamespaces: [\"legacy\"]
    to:
    - operation:
        paths: [\"/namespaces\"]
  - to:
    - operation:
        paths: [\"/when\"]
    when:
    - key: source.namespace
      values: [\"test\"]
    - key: source.principal
      values: [\"*/sa/sleep\"]
";
    let (server, _certs) = callers
        .server(
            "reviews",
            "default",
            "reviews",
            20,
            &[&policy("peers", "ALLOW", rules)],
        )
        .await;
    let dest = [("reviews", server.addr())];
    let productpage = callers.client(Some(("default", "productpage")), &dest, false);
    let ratings = callers.client(Some(("default", "ratings")), &dest, false);
    let sleep = callers.client(Some(("test", "sleep")), &dest, false);
    let legacy = callers.client(Some(("legacy", "sleep")), &dest, false);
    let plaintext = callers.client(None, &dest, false);
    let port = server.port();

    // The application sees the verified peer.
    let answer = call(&productpage, "GET", "reviews", port, "/principals").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.echo()["peer"],
        "cluster.local/ns/default/sa/productpage"
    );
    assert_eq!(answer.echo()["mtls"], "mutual_tls");
    let answer = call(&plaintext, "GET", "reviews", port, "/namespaces").await;
    assert_eq!(answer.status, 403, "plaintext has no namespace");

    let table = [
        (&productpage, "productpage", [200, 200, 403]),
        (&ratings, "ratings", [403, 200, 403]),
        (&sleep, "test/sleep", [403, 200, 200]),
        (&legacy, "legacy/sleep", [403, 403, 403]),
        (&plaintext, "plaintext", [403, 403, 403]),
    ];
    for (client, who, expected) in table {
        for (path, expected) in ["/principals", "/namespaces", "/when"]
            .into_iter()
            .zip(expected)
        {
            let answer = call(client, "GET", "reviews", port, path).await;
            assert_eq!(answer.status, expected, "{who} {path}: {answer:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn not_namespaces_in_a_deny_policy_denies_plaintext_callers() {
    // Istio's httpbin-deny example: a caller without an identity has no namespace, so it is
    // "not in" the namespace.
    let callers = Callers::new();
    let rules = "  - from:
    - source:
        notNamespaces: [\"default\"]
    to:
    - operation:
        paths: [\"/private*\"]
";
    let (server, _certs) = callers
        .server(
            "reviews",
            "default",
            "reviews",
            21,
            &[&policy("deny-others", "DENY", rules)],
        )
        .await;
    let dest = [("reviews", server.addr())];
    let port = server.port();
    let inside = callers.client(Some(("default", "productpage")), &dest, false);
    let outside = callers.client(Some(("test", "sleep")), &dest, false);
    let plaintext = callers.client(None, &dest, false);
    for (client, who, private, public) in [
        (&inside, "default", 200, 200),
        (&outside, "test", 403, 200),
        (&plaintext, "plaintext", 403, 200),
    ] {
        assert_eq!(
            call(client, "GET", "reviews", port, "/private")
                .await
                .status,
            private,
            "{who}"
        );
        assert_eq!(
            call(client, "GET", "reviews", port, "/public").await.status,
            public,
            "{who}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Istio's examples

#[tokio::test(start_paused = true)]
async fn bookinfo_authorization_for_http_traffic() {
    let callers = Callers::new();
    let task = fixture("policy-bookinfo-http.yaml");
    let mut servers = Vec::new();
    for (i, service) in ["productpage", "details", "reviews", "ratings"]
        .into_iter()
        .enumerate()
    {
        let account = format!("bookinfo-{service}");
        servers.push(
            callers
                .server(service, "default", &account, 30 + i as u8, &[&task])
                .await,
        );
    }
    let dest: Vec<(&str, SocketAddr)> = ["productpage", "details", "reviews", "ratings"]
        .into_iter()
        .zip(servers.iter().map(|(s, _)| s.addr()))
        .collect();
    let port = |service: &str| dest.iter().find(|(s, _)| *s == service).unwrap().1.port();
    let productpage = callers.client(Some(("default", "bookinfo-productpage")), &dest, true);
    let reviews = callers.client(Some(("default", "bookinfo-reviews")), &dest, true);
    let plaintext = callers.client(None, &dest, true);

    let cases = [
        // productpage-viewer: anyone may GET, nothing else.
        (&plaintext, "plaintext", "GET", "productpage", 200),
        (&productpage, "productpage", "GET", "productpage", 200),
        (&plaintext, "plaintext", "POST", "productpage", 403),
        // details-viewer and reviews-viewer: productpage may GET.
        (&productpage, "productpage", "GET", "details", 200),
        (&productpage, "productpage", "POST", "details", 403),
        (&reviews, "reviews", "GET", "details", 403),
        (&plaintext, "plaintext", "GET", "details", 403),
        (&productpage, "productpage", "GET", "reviews", 200),
        (&reviews, "reviews", "GET", "reviews", 403),
        // ratings-viewer: reviews may GET; its policy does not reach the others.
        (&reviews, "reviews", "GET", "ratings", 200),
        (&productpage, "productpage", "GET", "ratings", 403),
        (&plaintext, "plaintext", "GET", "ratings", 403),
    ];
    for (client, who, method, service, expected) in cases {
        let answer = call(client, method, service, port(service), "/").await;
        assert_eq!(
            answer.status, expected,
            "{who} {method} {service}: {answer:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_policy_selecting_another_workload_does_not_apply() {
    let task = fixture("policy-bookinfo-http.yaml");
    // Only the ratings-viewer document (the last of the task's).
    let ratings_viewer = task
        .split("\n---\n")
        .find(|d| d.contains("name: \"ratings-viewer\""))
        .unwrap();
    let reviews_server = reviews(40, &[ratings_viewer]).await;
    expect_all(&reviews_server, &[("GET", "/", 200), ("POST", "/", 200)]).await;
    let ratings_server = Server::start(
        &load(&config_text("ratings", "default", "", &[ratings_viewer])),
        95,
        41,
    )
    .await;
    expect_all(&ratings_server, &[("GET", "/", 403)]).await;
}

#[tokio::test(start_paused = true)]
async fn root_namespace_policies_apply_mesh_wide() {
    let policies = fixture("policy-root-namespace.yaml");
    let reviews_server = reviews(42, &[&policies]).await;
    let httpbin = Server::start(
        &load(&config_text("httpbin", "foo", "", &[&policies])),
        95,
        43,
    )
    .await;
    expect_all(
        &reviews_server,
        &[
            ("GET", "/admin", 403),
            ("GET", "/admin/users", 403),
            ("GET", "/status/200", 200),
            ("DELETE", "/items/1", 200),
            ("GET", "/", 200),
        ],
    )
    .await;
    expect_all(
        &httpbin,
        &[
            ("GET", "/admin", 403),
            ("GET", "/status/200", 403),
            ("DELETE", "/items/1", 403),
            ("GET", "/", 200),
        ],
    )
    .await;

    // With another root namespace, istio-system is a namespace like any other.
    let moved = config_text(
        "httpbin",
        "foo",
        "security: {rootNamespace: mesh-root}",
        &[&policies],
    );
    let httpbin = Server::start(&load(&moved), 95, 44).await;
    expect_all(
        &httpbin,
        &[
            ("GET", "/admin", 200),
            ("GET", "/status/200", 200),
            ("DELETE", "/items/1", 403),
        ],
    )
    .await;
}
