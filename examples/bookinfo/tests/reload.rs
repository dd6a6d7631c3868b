//! The demo follows its `--config` files: rewriting all-v1 to test-v2 sends jason to
//! reviews v2 (black stars) without a restart, and a bad file is refused, naming it, with
//! the old routes kept; an AuthorizationPolicy written, edited and removed applies to the
//! productpage server at once (403, then 200 again), also without a restart.
//!
//! Real time, as in `demo.rs`: DNS lookups and TLS handshakes run on real sockets, and paused
//! time would fire their timeouts while they wait. So the test does not wait for the
//! once-a-second poll; it calls `Demo::reload_now`, the check the poll runs. Nothing sleeps.

mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use bookinfo::demo::{Demo, DemoOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh::MeshClient;
use support::outside_client;

/// The status and body of the product page as `user` (anonymous when `None`) gets it.
async fn answer(client: &MeshClient, demo: &Demo, user: Option<&str>) -> (u16, String) {
    let gateway = demo.urls().gateway;
    let mut req = http::Request::get(format!("http://{gateway}/productpage"));
    if let Some(user) = user {
        req = req.header("cookie", format!("user={user}"));
    }
    let Ok(res) = client
        .request(req.body(Empty::<Bytes>::new()).unwrap())
        .await;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The product page as `user` (anonymous when `None`) sees it.
async fn productpage(client: &MeshClient, demo: &Demo, user: Option<&str>) -> String {
    let (status, body) = answer(client, demo, user).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/istio")
        .join(name)
}

/// A directory of its own under the build's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_the_config_file_sends_jason_to_reviews_v2() {
    let dir = scratch("reload-test-v2");
    let routes = dir.join("routes.yaml");
    std::fs::copy(fixture("virtual-service-all-v1.yaml"), &routes).unwrap();
    let mut options = DemoOptions::default();
    options.gateway_addr = "127.0.0.1:0".parse().unwrap();
    options.network = Ipv4Addr::new(127, 0, 150, 0);
    options.admin_port = 0;
    options.config = vec![fixture("destination-rule-all.yaml"), routes.clone()];
    let demo = Demo::start(options).await.expect("demo starts");
    let client = outside_client();

    // All v1: no stars for anyone.
    let page = productpage(&client, &demo, Some("jason")).await;
    assert!(
        page.contains("The Comedy of Errors") && !page.contains('★'),
        "{page}"
    );
    assert!(!demo.reload_now().unwrap(), "nothing changed yet");

    // test-v2: jason gets reviews v2, black stars; everyone else stays on v1.
    std::fs::copy(fixture("virtual-service-reviews-test-v2.yaml"), &routes).unwrap();
    assert!(demo.reload_now().expect("a valid file applies"));
    let page = productpage(&client, &demo, Some("jason")).await;
    assert!(
        page.contains('★') && page.contains("color: black"),
        "{page}"
    );
    let page = productpage(&client, &demo, None).await;
    assert!(!page.contains('★'), "{page}");

    // A bad file is refused, naming it; jason keeps v2.
    std::fs::write(
        &routes,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n\
         spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: -5\n",
    )
    .unwrap();
    let error = demo.reload_now().expect_err("an invalid file");
    assert!(error.to_string().contains("routes.yaml"), "{error}");
    assert!(
        !demo.reload_now().unwrap(),
        "the same bad file is not tried again"
    );
    let page = productpage(&client, &demo, Some("jason")).await;
    assert!(page.contains("color: black"), "{page}");

    demo.shutdown().await;
}

/// Istio's `deny-all`, for productpage only: an ALLOW policy without rules matches nothing.
/// (Namespace-wide, as in Istio's task, it would also stop the demo's gateway, which runs in
/// `default`; Istio's runs in `istio-system`.)
const DENY_ALL: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: default}
spec:
  selector:
    matchLabels: {app: productpage}
";

/// Istio's Bookinfo authorization task: anyone may GET productpage.
const PRODUCTPAGE_VIEWER: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: productpage-viewer, namespace: default}
spec:
  selector:
    matchLabels: {app: productpage}
  action: ALLOW
  rules:
  - to:
    - operation:
        methods: [GET]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_policy_applies_and_goes_without_a_restart() {
    let dir = scratch("reload-authz");
    let policies = dir.join("policies.yaml");
    std::fs::write(&policies, "# no policies yet\n").unwrap();
    let mut options = DemoOptions::default();
    options.gateway_addr = "127.0.0.1:0".parse().unwrap();
    options.network = Ipv4Addr::new(127, 0, 151, 0);
    options.admin_port = 0;
    options.config = vec![fixture("destination-rule-all.yaml"), policies.clone()];
    let demo = Demo::start(options).await.expect("demo starts");
    let client = outside_client();
    let page = productpage(&client, &demo, None).await;
    assert!(page.contains("The Comedy of Errors"), "{page}");

    // deny-all on productpage: the gateway's calls are refused by productpage's server.
    std::fs::write(&policies, DENY_ALL).unwrap();
    assert!(demo.reload_now().expect("a valid policy applies"));
    let (status, body) = answer(&client, &demo, None).await;
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));

    // The task's next step: GET is allowed again.
    std::fs::write(&policies, format!("{DENY_ALL}---\n{PRODUCTPAGE_VIEWER}")).unwrap();
    assert!(demo.reload_now().unwrap());
    productpage(&client, &demo, Some("jason")).await;

    // A policy that does not compile is refused, naming the file; GET stays allowed.
    std::fs::write(
        &policies,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
         metadata: {name: typo, namespace: default}\n\
         spec:\n  rules:\n  - from:\n    - source: {ipBlocks: [10.0.0.300]}\n",
    )
    .unwrap();
    let error = demo.reload_now().expect_err("an invalid policy");
    assert!(error.to_string().contains("policies.yaml"), "{error}");
    productpage(&client, &demo, None).await;

    // deny-all again, then removed: 200 without a restart.
    std::fs::write(&policies, DENY_ALL).unwrap();
    assert!(demo.reload_now().unwrap());
    assert_eq!(answer(&client, &demo, None).await.0, 403);
    std::fs::write(&policies, "# policies removed\n").unwrap();
    assert!(demo.reload_now().unwrap());
    productpage(&client, &demo, None).await;

    demo.shutdown().await;
}
