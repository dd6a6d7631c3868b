//! Istio routing through the mesh client, with Bookinfo's task files: version routing by
//! subset, routing by header, weighted splits, and the route actions (header operations,
//! rewrite, redirect, direct response, no route).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::support::{REVIEWS, Service, Versions, fetch, istio, load, load_with};

#[tokio::test(start_paused = true)]
async fn all_v1_sends_every_request_to_v1() {
    let reviews = Versions::start("reviews", 60, REVIEWS).await;
    let client = reviews.client(&[
        &istio("virtual-service-all-v1.yaml"),
        &istio("destination-rule-all.yaml"),
    ]);
    let report = load(&client, &reviews.uri("/reviews/0"), 10, 100, Arc::default()).await;

    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        reviews.by_version(&report),
        BTreeMap::from([("v1".to_owned(), 1000)])
    );
    // Both v1 pods serve; no other version sees a request.
    assert!(
        reviews.pods("v1").iter().all(|p| p.hits() > 0),
        "{report:?}"
    );
    assert_eq!(reviews.hits("v2") + reviews.hits("v3"), 0);
}

#[tokio::test(start_paused = true)]
async fn jason_goes_to_v2_and_everyone_else_to_v1() {
    let reviews = Versions::start("reviews", 61, REVIEWS).await;
    let client = reviews.client(&[
        &istio("virtual-service-reviews-test-v2.yaml"),
        &istio("destination-rule-all.yaml"),
    ]);
    let uri = reviews.uri("/reviews/0");

    let jason = load_with(
        &client,
        &uri,
        &[("end-user", "jason")],
        10,
        100,
        Arc::default(),
    )
    .await;
    assert!(jason.failures.is_empty(), "{:?}", jason.failures);
    assert_eq!(
        reviews.by_version(&jason),
        BTreeMap::from([("v2".to_owned(), 1000)])
    );

    let anonymous = load(&client, &uri, 10, 100, Arc::default()).await;
    assert!(anonymous.failures.is_empty(), "{:?}", anonymous.failures);
    assert_eq!(
        reviews.by_version(&anonymous),
        BTreeMap::from([("v1".to_owned(), 1000)])
    );

    // `exact` is exact: another user, or jason's name as a prefix, is not jason.
    for user in ["jasonx", "Jason", "mike"] {
        let other = load_with(&client, &uri, &[("end-user", user)], 2, 25, Arc::default()).await;
        assert_eq!(
            reviews.by_version(&other),
            BTreeMap::from([("v1".to_owned(), 50)]),
            "{user}"
        );
    }
    // Nobody but jason reached v2, and nobody at all v3.
    assert_eq!(reviews.hits("v2"), 1000);
    assert_eq!(reviews.hits("v3"), 0);
}

/// Sends 10,000 requests through the routes of `fixture`, 16 callers at a time, and returns
/// each version's share of the answers.
async fn shares(fixture: &str, net: u8) -> BTreeMap<String, f64> {
    let reviews = Versions::start("reviews", net, REVIEWS).await;
    let client = reviews.client(&[&istio(fixture), &istio("destination-rule-all.yaml")]);
    let report = load(&client, &reviews.uri("/reviews/0"), 16, 625, Arc::default()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.total(), 10_000);
    // The pods saw exactly the requests the answers came from.
    let by_version = reviews.by_version(&report);
    for (version, hits) in reviews.hits_by_version() {
        assert_eq!(
            by_version.get(&version).copied().unwrap_or(0),
            hits,
            "{version}"
        );
    }
    by_version
        .into_iter()
        .map(|(version, count)| (version, count as f64 / 10_000.0))
        .collect()
}

/// Asserts `shares` has exactly the versions of `expected`, each within 3 percentage points.
fn assert_shares(shares: &BTreeMap<String, f64>, expected: &[(&str, f64)]) {
    let versions: Vec<&str> = shares.keys().map(String::as_str).collect();
    let wanted: Vec<&str> = expected.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, wanted, "{shares:?}");
    for (version, share) in expected {
        let got = shares[*version];
        assert!(
            (got - share).abs() <= 0.03,
            "{version} got {:.1} %, expected {:.0} % ± 3",
            got * 100.0,
            share * 100.0
        );
    }
}

#[tokio::test(start_paused = true)]
async fn eighty_twenty_split_holds_within_three_points() {
    let shares = shares("virtual-service-reviews-80-20.yaml", 62).await;
    assert_shares(&shares, &[("v1", 0.8), ("v2", 0.2)]);
}

#[tokio::test(start_paused = true)]
async fn fifty_fifty_split_holds_within_three_points() {
    let shares = shares("virtual-service-reviews-50-v3.yaml", 63).await;
    assert_shares(&shares, &[("v1", 0.5), ("v3", 0.5)]);
}

#[tokio::test(start_paused = true)]
async fn all_v3_sends_every_request_to_v3() {
    let reviews = Versions::start("reviews", 64, REVIEWS).await;
    let client = reviews.client(&[
        &istio("virtual-service-reviews-v3.yaml"),
        &istio("destination-rule-all.yaml"),
    ]);
    let report = load(&client, &reviews.uri("/reviews/0"), 10, 100, Arc::default()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        reviews.by_version(&report),
        BTreeMap::from([("v3".to_owned(), 1000)])
    );
    assert_eq!(reviews.hits("v1") + reviews.hits("v2"), 0);
}

/// Routes of `reviews` by path: a rewrite, a redirect, a direct response, and header
/// operations; any other path matches no route.
const ACTIONS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - name: rewritten
    match:
    - uri:
        prefix: /old
    rewrite:
      uri: /new
    route:
    - destination:
        host: reviews
  - name: moved
    match:
    - uri:
        exact: /gone
    redirect:
      uri: /moved
      redirectCode: 302
  - name: teapot
    match:
    - uri:
        exact: /teapot
    directResponse:
      status: 418
      body:
        string: teapot
  - name: decorated
    match:
    - uri:
        prefix: /reviews
    headers:
      request:
        set:
          x-added: "yes"
      response:
        add:
          x-resp: "yes"
    route:
    - destination:
        host: reviews
"#;

#[tokio::test(start_paused = true)]
async fn route_actions_rewrite_redirect_answer_and_set_headers() {
    let reviews = Service::start("reviews", 72, 1).await;
    let client = reviews.yaml_client(&[ACTIONS]);
    let pod = &reviews.pods[0];

    // Header operations: `set` replaces what the caller sent; `add` reaches the caller.
    let answer = fetch(&client, &reviews.uri("/reviews/1"), &[("x-added", "no")]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "reviews-0"));
    assert_eq!(answer.header("x-resp"), "yes");
    let seen = pod.last_request().expect("the pod saw the request");
    let added: Vec<_> = seen.headers.get_all("x-added").iter().collect();
    assert_eq!(added, ["yes"]);
    assert_eq!(seen.uri.path(), "/reviews/1");

    // Rewrite: the matched prefix is replaced, the rest and the query kept; the header
    // operations of another route do not apply.
    let answer = fetch(&client, &reviews.uri("/old/rest?page=2"), &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "reviews-0"));
    assert_eq!(answer.header("x-resp"), "");
    let seen = pod.last_request().expect("the pod saw the request");
    assert_eq!(
        seen.uri.path_and_query().map(|p| p.as_str()),
        Some("/new/rest?page=2")
    );
    assert!(seen.headers.get("x-added").is_none());
    assert_eq!(seen.host, reviews.authority());
    assert_eq!(pod.hits(), 2);

    // Redirect and direct response are answered by the client; the pod sees neither.
    let answer = fetch(&client, &reviews.uri("/gone"), &[]).await;
    assert_eq!(answer.status, 302, "{answer:?}");
    assert_eq!(
        answer.header("location"),
        format!("http://reviews:{}/moved", reviews.port)
    );
    let answer = fetch(&client, &reviews.uri("/teapot"), &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (418, "teapot"));
    assert_eq!(pod.hits(), 2);
}

#[tokio::test(start_paused = true)]
async fn unmatched_request_is_a_404_no_route() {
    let reviews = Service::start("reviews", 73, 1).await;
    let client = reviews.yaml_client(&[ACTIONS]);
    for path in ["/", "/elsewhere", "/gone/further", "/teapots"] {
        let answer = fetch(&client, &reviews.uri(path), &[]).await;
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert!(answer.body.contains("no route"), "{path}: {}", answer.body);
        assert_eq!(answer.response_flag(), "NR", "{path}");
    }
    assert_eq!(reviews.pods[0].hits(), 0);
}

const UNKNOWN_SUBSET: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
"#;

#[tokio::test(start_paused = true)]
async fn a_subset_no_rule_defines_is_a_503_that_names_it() {
    let reviews = Versions::start("reviews", 74, REVIEWS).await;
    let client = reviews.client(&[UNKNOWN_SUBSET, &istio("destination-rule-all.yaml")]);
    let answer = fetch(&client, &reviews.uri("/reviews/0"), &[]).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.response_flag(), "UH");
    assert!(answer.body.contains("subset \"v9\""), "{answer:?}");
    assert_eq!(reviews.hits_by_version().values().sum::<usize>(), 0);
}
