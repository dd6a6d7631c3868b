//! Istio documents in files: the Bookinfo fixtures, every invalid value by path, warnings for
//! what is not implemented, and mesh's own format in Istio's shapes.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::config::{
    ConfigError, ConnectionPool, ConsistentHash, DestinationBuilder, DestinationConfig, Format,
    HashCookie, HashKey, HashTable, LoadBalancer, MeshConfig, OutlierDetection, Protocol,
    SubsetBuilder, SubsetEndpoints, TrafficPolicy,
};
use crate::route::{
    AbortStatus, DirectResponse, Fault, FaultAbort, FaultDelay, Forward, HeaderOps, Headers,
    HttpRoute, Mirror, Pattern, Percentage, Redirect, RedirectPort, RegexRewrite, Rewrite,
    RouteAction, RouteDestination, RouteMatch, RouteRetries, StringMatch, ValueMatch,
    VirtualService,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

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

fn to(host: &str, subset: &str, weight: u32) -> RouteDestination {
    RouteDestination {
        host: host.to_owned(),
        subset: Some(subset.to_owned()),
        port: None,
        weight,
        headers: Headers::default(),
    }
}

fn forward(destinations: Vec<RouteDestination>) -> RouteAction {
    RouteAction::Forward(Forward {
        destinations,
        rewrite: None,
    })
}

fn route(matches: Vec<RouteMatch>, action: RouteAction) -> HttpRoute {
    HttpRoute {
        name: None,
        matches,
        action,
        headers: Headers::default(),
        fault: None,
        mirrors: Vec::new(),
        timeout: None,
        retries: None,
    }
}

fn vs(name: &str, http: Vec<HttpRoute>) -> VirtualService {
    VirtualService {
        name: name.to_owned(),
        namespace: None,
        hosts: vec![name.to_owned()],
        http,
    }
}

fn header(name: &str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes()).unwrap()
}

/// `end-user: {exact: jason}`, as the Bookinfo tasks match the logged-in user.
fn jason() -> RouteMatch {
    RouteMatch {
        headers: vec![(
            header("end-user"),
            ValueMatch::Value(StringMatch::Exact("jason".to_owned())),
        )],
        ..RouteMatch::default()
    }
}

fn paths(c: &MeshConfig) -> Vec<&str> {
    let mut p: Vec<&str> = c.warnings.iter().map(|w| w.path.as_str()).collect();
    p.sort_unstable();
    p
}

// ---- the Bookinfo fixtures ----

#[test]
fn fixture_all_v1() {
    let c = load("virtual-service-all-v1.yaml");
    let want: Vec<VirtualService> = ["productpage", "reviews", "ratings", "details"]
        .iter()
        .map(|s| vs(s, vec![route(vec![], forward(vec![to(s, "v1", 100)]))]))
        .collect();
    assert_eq!(c.virtual_services, want);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.destinations.is_empty());
}

#[test]
fn a_later_document_of_the_same_kind_and_name_replaces_the_earlier() {
    // As `kubectl apply` of all-v1 then reviews v3: the second `reviews` wins, with a warning;
    // the other VirtualServices stay, and a namesake in another namespace is its own.
    let all_v1 = std::fs::read_to_string(fixture("virtual-service-all-v1.yaml")).unwrap();
    let v3 = std::fs::read_to_string(fixture("virtual-service-reviews-v3.yaml")).unwrap();
    let other = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n  namespace: other\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
    let c = yaml(&format!("{all_v1}\n---\n{v3}\n---\n{other}")).unwrap();
    let reviews: Vec<_> = c
        .virtual_services
        .iter()
        .filter(|vs| vs.name == "reviews")
        .collect();
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    let names: Vec<_> = c
        .virtual_services
        .iter()
        .map(|vs| vs.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["productpage", "ratings", "details", "reviews", "reviews"]
    );
    let default_reviews = reviews.iter().find(|vs| vs.namespace.is_none()).unwrap();
    assert_eq!(
        default_reviews,
        &&load("virtual-service-reviews-v3.yaml").virtual_services[0]
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].message.contains("replaced by documents[4]"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn fixture_destination_rule_all() {
    let c = load("destination-rule-all.yaml");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let hosts: Vec<&str> = c.destinations.iter().map(|d| d.host.as_str()).collect();
    assert_eq!(hosts, ["productpage", "reviews", "ratings", "details"]);
    let subsets = |host: &str| -> Vec<String> {
        let d = c.destinations.iter().find(|d| d.host == host).unwrap();
        d.subsets.iter().map(|s| s.name.clone()).collect()
    };
    assert_eq!(subsets("productpage"), ["v1"]);
    assert_eq!(subsets("reviews"), ["v1", "v2", "v3"]);
    assert_eq!(subsets("ratings"), ["v1", "v2", "v2-mysql", "v2-mysql-vm"]);
    assert_eq!(subsets("details"), ["v1", "v2"]);
    for d in &c.destinations {
        assert_eq!(d.port, None);
        assert_eq!(d.endpoints, None);
        assert_eq!(d.policy, TrafficPolicy::default(), "{}", d.host);
        for s in &d.subsets {
            let labels = BTreeMap::from([("version".to_owned(), s.name.clone())]);
            assert_eq!(s.labels, labels);
            let host = format!("{}-{}", d.host, s.name);
            assert_eq!(s.endpoints, SubsetEndpoints::Host(host));
            assert_eq!(s.policy, d.policy);
        }
    }
    // The same destination, built in code.
    let built = MeshConfig::builder()
        .destination(
            DestinationBuilder::new("reviews")
                .subset(SubsetBuilder::new("v1").label("version", "v1"))
                .subset(SubsetBuilder::new("v2").label("version", "v2"))
                .subset(SubsetBuilder::new("v3").label("version", "v3")),
        )
        .build()
        .unwrap();
    assert_eq!(c.destinations[1], built.destinations[0]);
}

#[test]
fn fixture_reviews_test_v2() {
    let c = load("virtual-service-reviews-test-v2.yaml");
    let want = vs(
        "reviews",
        vec![
            route(vec![jason()], forward(vec![to("reviews", "v2", 100)])),
            route(vec![], forward(vec![to("reviews", "v1", 100)])),
        ],
    );
    assert_eq!(c.virtual_services, [want]);
    assert!(c.warnings.is_empty());
}

#[test]
fn fixture_reviews_50_v3() {
    let c = load("virtual-service-reviews-50-v3.yaml");
    let want = vs(
        "reviews",
        vec![route(
            vec![],
            forward(vec![to("reviews", "v1", 50), to("reviews", "v3", 50)]),
        )],
    );
    assert_eq!(c.virtual_services, [want]);
}

#[test]
fn fixture_reviews_80_20() {
    let c = load("virtual-service-reviews-80-20.yaml");
    let want = vs(
        "reviews",
        vec![route(
            vec![],
            forward(vec![to("reviews", "v1", 80), to("reviews", "v2", 20)]),
        )],
    );
    assert_eq!(c.virtual_services, [want]);
}

#[test]
fn fixture_reviews_v3() {
    let c = load("virtual-service-reviews-v3.yaml");
    let want = vs(
        "reviews",
        vec![route(vec![], forward(vec![to("reviews", "v3", 100)]))],
    );
    assert_eq!(c.virtual_services, [want]);
}

#[test]
fn fixture_ratings_test_delay() {
    let c = load("virtual-service-ratings-test-delay.yaml");
    let mut delayed = route(vec![jason()], forward(vec![to("ratings", "v1", 100)]));
    delayed.fault = Some(Fault {
        delay: Some(FaultDelay {
            fixed: secs(7),
            percentage: Percentage::ALL,
        }),
        abort: None,
    });
    let want = vs(
        "ratings",
        vec![
            delayed,
            route(vec![], forward(vec![to("ratings", "v1", 100)])),
        ],
    );
    assert_eq!(c.virtual_services, [want]);
    assert!(c.warnings.is_empty());
}

#[test]
fn fixture_ratings_test_abort() {
    let c = load("virtual-service-ratings-test-abort.yaml");
    let mut aborted = route(vec![jason()], forward(vec![to("ratings", "v1", 100)]));
    aborted.fault = Some(Fault {
        delay: None,
        abort: Some(FaultAbort {
            status: AbortStatus::Http(500),
            percentage: Percentage::ALL,
        }),
    });
    let want = vs(
        "ratings",
        vec![
            aborted,
            route(vec![], forward(vec![to("ratings", "v1", 100)])),
        ],
    );
    assert_eq!(c.virtual_services, [want]);
}

#[test]
fn fixtures_through_mesh_config_variable() {
    let c = MeshConfig::from_vars([
        ("MESH_CONFIG", fixture("virtual-service-all-v1.yaml")),
        ("POD_NAMESPACE", "bookinfo".to_owned()),
    ])
    .unwrap();
    assert_eq!(c.virtual_services.len(), 4);
    assert_eq!(c.workload.namespace, "bookinfo");
    let c = MeshConfig::from_vars([("MESH_CONFIG", fixture("destination-rule-all.yaml"))]).unwrap();
    assert_eq!(c.destinations.len(), 4);
}

// ---- documents in one file ----

const MIXED: &str = "\
# A DestinationRule before mesh's own document: it still lays over the destination.
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
---
workload: {service: productpage, namespace: bookinfo}
defaults: {timeout: 5s}
destinations:
- host: reviews
  timeout: 2s
  loadBalancer: LEAST_REQUEST
...
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
";

#[test]
fn mesh_and_istio_documents_in_one_file() {
    let c = yaml(MIXED).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.workload.namespace, "bookinfo");
    assert_eq!(c.defaults.timeout, Some(secs(5)));
    assert_eq!(c.destinations.len(), 1);
    let d = &c.destinations[0];
    assert_eq!(
        d.policy.load_balancer,
        LoadBalancer::Random,
        "the rule wins"
    );
    assert_eq!(d.policy.timeout, Some(secs(2)), "kept from mesh's document");
    assert_eq!(d.subsets.len(), 1);
    let v2 = &d.subsets[0];
    assert_eq!(v2.policy.load_balancer, LoadBalancer::RoundRobin);
    assert_eq!(
        v2.policy.timeout,
        Some(secs(2)),
        "inherited from the destination"
    );
    assert_eq!(v2.endpoints, SubsetEndpoints::Host("reviews-v2".to_owned()));
    assert_eq!(
        c.virtual_services,
        [vs(
            "reviews",
            vec![route(vec![], forward(vec![to("reviews", "v2", 100)]))]
        )]
    );
}

#[test]
fn at_most_one_mesh_document() {
    let e = yaml("defaults: {timeout: 1s}\n---\n# comment only\n---\ndefaults: {timeout: 2s}\n")
        .unwrap_err();
    assert_eq!(e.path(), Some("documents[1]"), "{e}");
    assert!(e.to_string().contains("documents[0]"), "{e}");
}

#[test]
fn errors_in_later_documents_keep_their_line() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews]}
---
defaults:
  retries: {attemps: 2}
";
    let e = yaml(text).unwrap_err();
    assert_eq!(e.path(), Some("defaults.retries.attemps"));
    assert!(e.to_string().contains("line 7"), "{e}");
    let e = yaml("defaults: {timeout: 1s}\n---\nkind: VirtualService\n  bad: [\n").unwrap_err();
    assert!(e.to_string().contains("line 4"), "{e}");
}

#[test]
fn json_and_toml_documents_by_kind() {
    let json = r#"{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v3"}}]}]}}"#;
    let c = MeshConfig::from_str(json, Format::Json).unwrap();
    assert_eq!(
        c.virtual_services,
        [vs(
            "reviews",
            vec![route(vec![], forward(vec![to("reviews", "v3", 100)]))]
        )]
    );
    let toml = "apiVersion = \"networking.istio.io/v1\"\nkind = \"DestinationRule\"\n\
                [metadata]\nname = \"reviews\"\n[spec]\nhost = \"reviews\"\n\
                [spec.trafficPolicy.loadBalancer]\nsimple = \"ROUND_ROBIN\"\n";
    let c = MeshConfig::from_str(toml, Format::Toml).unwrap();
    assert_eq!(
        c.destinations[0].policy.load_balancer,
        LoadBalancer::RoundRobin
    );
}

#[test]
fn kubernetes_lists_are_read_item_by_item() {
    let text = "\
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: reviews, namespace: bookinfo, resourceVersion: '42', uid: abc}
  spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}
  status: {}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: reviews, namespace: bookinfo}
  spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
metadata: {resourceVersion: ''}
";
    let c = yaml(text).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.virtual_services.len(), 1);
    assert_eq!(c.virtual_services[0].namespace.as_deref(), Some("bookinfo"));
    assert_eq!(c.destinations[0].host, "reviews.bookinfo");
}

#[test]
fn unsupported_kinds_are_warned_and_ignored() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway}
spec: {selector: {istio: ingressgateway}, servers: []}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: bookinfo}
spec: {address: 10.0.0.9}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
---
kind: EnvoyFilter
metadata: {name: external}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
";
    let c = yaml(text).unwrap();
    assert_eq!(c.virtual_services.len(), 1);
    let warnings: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "Gateway bookinfo-gateway: kind: kind Gateway (networking.istio.io/v1) is not supported; document ignored",
            "WorkloadEntry bookinfo/vm-1: kind: kind WorkloadEntry (networking.istio.io/v1) is not supported; document ignored",
            "Deployment reviews-v1: kind: kind Deployment (apps/v1) is not supported; document ignored",
            "EnvoyFilter external: kind: kind EnvoyFilter is not supported; document ignored",
        ]
    );
}

#[test]
fn api_versions() {
    for version in ["v1", "v1beta1", "v1alpha3"] {
        let text = format!(
            "apiVersion: networking.istio.io/{version}\nkind: VirtualService\n\
             metadata: {{name: reviews}}\nspec: {{hosts: [reviews]}}\n"
        );
        assert!(yaml(&text).is_ok(), "{version}");
    }
    let cases = [
        (
            "apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: reviews}\nspec: {hosts: [a]}",
            "VirtualService reviews: apiVersion",
            "\"networking.istio.io/v2\"",
        ),
        (
            "apiVersion: v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: a}",
            "DestinationRule reviews: apiVersion",
            "\"v1\"",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [a]}",
            "VirtualService r: apiVersion",
            "networking.istio.io/v1beta1",
        ),
        (
            "kind: VirtualService\nmetadata: {name: reviews}\nspec: {hosts: [a]}",
            "VirtualService reviews: apiVersion",
            "invalid value \"\"",
        ),
        (
            "apiVersion: networking.istio.io/v1\nspec: {hosts: [a]}",
            "documents[0].kind",
            "is required",
        ),
        (
            "apiVersion: 1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [a]}",
            "VirtualService r: apiVersion",
            "expected a string",
        ),
    ];
    for (text, path, needle) in cases {
        let e = yaml(text).expect_err(text);
        assert_eq!(e.path(), Some(path), "{e}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
}

// ---- VirtualService: the whole model ----

const EVERYTHING: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: bookinfo}
spec:
  hosts: [bookinfo.example.com, productpage]
  gateways: [mesh]
  http:
  - name: legacy
    match:
    - name: old-path
      uri: {prefix: /old}
      ignoreUriCase: true
      method: {exact: GET}
      scheme: {exact: http}
      authority: {regex: 'bookinfo\..*'}
      port: 9080
      headers:
        X-Canary: {}
        cookie: {regex: '^(.*?;)?(user=jason)(;.*)?$'}
      queryParams:
        debug: {exact: "1"}
      withoutHeaders:
        x-skip: {}
    redirect: {uri: /new, authority: new.example.com, derivePort: FROM_REQUEST_PORT, scheme: https, redirectCode: 308}
  - match: [{uri: {exact: /health}}]
    directResponse: {status: 200, body: {string: ok}}
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {bytes: aGVsbG8=}}
  - match: [{uri: {exact: /moved}}]
    redirect: {authority: other, port: 8080}
  - match: [{uri: {prefix: /api/v1}}]
    rewrite: {uri: /v1, authority: api.internal}
    timeout: 0s
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,connect-failure"}
    headers:
      request: {set: {x-route: api}, add: {x-trace: 1}, remove: [X-Debug]}
      response: {remove: [server]}
    mirror: {host: productpage-shadow, subset: v2, port: {number: 9080}}
    route:
    - destination: {host: productpage, subset: v1, port: {number: 9080}}
      weight: 90
      headers: {response: {set: {x-version: v1}}}
    - destination: {host: productpage, subset: v2}
      weight: 10
    - destination: {host: productpage, subset: v3}
  - match: [{uri: {regex: '/static/.*'}}]
    rewrite: {uriRegexRewrite: {match: '^/static/(.*)$', rewrite: '/assets/\1'}}
    timeout: 3s
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    mirrors:
    - destination: {host: audit}
    route:
    - destination: {host: productpage}
"#;

#[test]
fn every_route_field_reaches_the_model() {
    let c = yaml(EVERYTHING).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let exact = |s: &str| StringMatch::Exact(s.to_owned());
    let uri = |m: StringMatch| RouteMatch {
        uri: Some(m),
        ..RouteMatch::default()
    };
    let legacy = HttpRoute {
        name: Some("legacy".to_owned()),
        matches: vec![RouteMatch {
            name: Some("old-path".to_owned()),
            uri: Some(StringMatch::Prefix("/old".to_owned())),
            scheme: Some(exact("http")),
            method: Some(exact("GET")),
            authority: Some(StringMatch::Regex(Pattern::full(r"bookinfo\..*").unwrap())),
            headers: vec![
                (header("x-canary"), ValueMatch::Present),
                (
                    header("cookie"),
                    ValueMatch::Value(StringMatch::Regex(
                        Pattern::full("^(.*?;)?(user=jason)(;.*)?$").unwrap(),
                    )),
                ),
            ],
            query_params: vec![("debug".to_owned(), ValueMatch::Value(exact("1")))],
            without_headers: vec![(header("x-skip"), ValueMatch::Present)],
            ignore_uri_case: true,
            port: Some(9080),
        }],
        ..route(
            vec![],
            RouteAction::Redirect(Redirect {
                uri: Some("/new".to_owned()),
                authority: Some("new.example.com".to_owned()),
                port: Some(RedirectPort::FromRequestPort),
                scheme: Some("https".to_owned()),
                code: 308,
            }),
        )
    };
    let health = route(
        vec![uri(exact("/health"))],
        RouteAction::DirectResponse(DirectResponse {
            status: 200,
            body: Some("ok".to_owned()),
        }),
    );
    let teapot = route(
        vec![uri(exact("/teapot"))],
        RouteAction::DirectResponse(DirectResponse {
            status: 418,
            body: Some("hello".to_owned()),
        }),
    );
    let moved = route(
        vec![uri(exact("/moved"))],
        RouteAction::Redirect(Redirect {
            uri: None,
            authority: Some("other".to_owned()),
            port: Some(RedirectPort::Port(8080)),
            scheme: None,
            code: 301,
        }),
    );
    let value = |s: &str| HeaderValue::from_str(s).unwrap();
    let mut v1 = to("productpage", "v1", 90);
    v1.port = Some(9080);
    v1.headers.response.set = vec![(header("x-version"), value("v1"))];
    let api = HttpRoute {
        headers: Headers {
            request: HeaderOps {
                set: vec![(header("x-route"), value("api"))],
                add: vec![(header("x-trace"), value("1"))],
                remove: vec![header("x-debug")],
            },
            response: HeaderOps {
                remove: vec![header("server")],
                ..HeaderOps::default()
            },
        },
        mirrors: vec![Mirror {
            host: "productpage-shadow".to_owned(),
            subset: Some("v2".to_owned()),
            port: Some(9080),
            percentage: Percentage::ALL,
        }],
        timeout: Some(None),
        retries: Some(RouteRetries {
            attempts: 3,
            per_try_timeout: Some(secs(2)),
            retry_on: Some("5xx,connect-failure".parse().unwrap()),
        }),
        ..route(
            vec![uri(StringMatch::Prefix("/api/v1".to_owned()))],
            RouteAction::Forward(Forward {
                destinations: vec![v1, to("productpage", "v2", 10), to("productpage", "v3", 0)],
                rewrite: Some(Rewrite {
                    uri: Some("/v1".to_owned()),
                    uri_regex: None,
                    authority: Some("api.internal".to_owned()),
                }),
            }),
        )
    };
    let statics = HttpRoute {
        fault: Some(Fault {
            delay: None,
            abort: Some(FaultAbort {
                status: AbortStatus::Grpc(14),
                percentage: Percentage::ALL,
            }),
        }),
        mirrors: vec![Mirror {
            host: "audit".to_owned(),
            subset: None,
            port: None,
            percentage: Percentage::ALL,
        }],
        timeout: Some(Some(secs(3))),
        ..route(
            vec![uri(StringMatch::Regex(
                Pattern::full("/static/.*").unwrap(),
            ))],
            RouteAction::Forward(Forward {
                destinations: vec![RouteDestination {
                    host: "productpage".to_owned(),
                    subset: None,
                    port: None,
                    weight: 100,
                    headers: Headers::default(),
                }],
                rewrite: Some(Rewrite {
                    uri: None,
                    uri_regex: Some(RegexRewrite {
                        pattern: Pattern::unanchored("^/static/(.*)$").unwrap(),
                        rewrite: r"/assets/\1".to_owned(),
                    }),
                    authority: None,
                }),
            }),
        )
    };
    let want = VirtualService {
        name: "bookinfo".to_owned(),
        namespace: Some("bookinfo".to_owned()),
        hosts: vec!["bookinfo.example.com".to_owned(), "productpage".to_owned()],
        http: vec![legacy, health, teapot, moved, api, statics],
    };
    assert_eq!(c.virtual_services, [want]);
}

// ---- invalid values, by path ----

/// A VirtualService `reviews` whose only route is `route` (a YAML flow mapping).
fn vs_with(route: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\n\
         spec:\n  hosts: [reviews]\n  http:\n  - {route}\n"
    )
}

/// A DestinationRule `reviews` with this `spec` (a YAML flow mapping's inside).
fn dr_with(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\n\
         spec: {{host: reviews, {spec}}}\n"
    )
}

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

const R: &str = "route: [{destination: {host: reviews}}]";

#[test]
fn invalid_virtual_service_values_name_their_path() {
    let p = "VirtualService reviews: spec.http[0]";
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (
            "{route: [{destination: {host: reviews, subset: v1}, weight: 50}, {destination: {host: reviews, subset: v2}, weight: heavy}]}".into(),
            format!("{p}.route[1].weight"),
            vec!["invalid value \"heavy\"", "whole number"],
        ),
        (
            "{route: [{destination: {host: reviews}, weight: -1}]}".into(),
            format!("{p}.route[0].weight"),
            vec!["\"-1\"", "between 0 and 4294967295"],
        ),
        (
            "{route: [{destination: {host: reviews}, weight: 1.5}]}".into(),
            format!("{p}.route[0].weight"),
            vec!["\"1.5\""],
        ),
        (
            format!("{{{R}, fault: {{delay: {{fixedDelay: 1s, percentage: {{value: -5}}}}}}}}"),
            format!("{p}.fault.delay.percentage.value"),
            vec!["\"-5\"", "between 0 and 100"],
        ),
        (
            format!("{{{R}, fault: {{delay: {{fixedDelay: 1s, percentage: {{value: 100.5}}}}}}}}"),
            format!("{p}.fault.delay.percentage.value"),
            vec!["\"100.5\""],
        ),
        (
            format!("{{{R}, fault: {{delay: {{fixedDelay: 1s, percent: 101}}}}}}"),
            format!("{p}.fault.delay.percent"),
            vec!["\"101\""],
        ),
        (
            format!("{{{R}, fault: {{delay: {{fixedDelay: 0s, percentage: {{value: 1}}}}}}}}"),
            format!("{p}.fault.delay.fixedDelay"),
            vec!["\"0s\"", "greater than 0"],
        ),
        (
            format!("{{{R}, fault: {{delay: {{percentage: {{value: 1}}}}}}}}"),
            format!("{p}.fault.delay.fixedDelay"),
            vec!["is required"],
        ),
        (
            format!("{{{R}, fault: {{abort: {{httpStatus: 700, percentage: {{value: 100}}}}}}}}"),
            format!("{p}.fault.abort.httpStatus"),
            vec!["\"700\"", "between 200 and 599"],
        ),
        (
            format!("{{{R}, fault: {{abort: {{grpcStatus: NOPE}}}}}}"),
            format!("{p}.fault.abort.grpcStatus"),
            vec!["\"NOPE\"", "UNAVAILABLE"],
        ),
        (
            format!("{{{R}, fault: {{abort: {{grpcStatus: 17}}}}}}"),
            format!("{p}.fault.abort.grpcStatus"),
            vec!["\"17\""],
        ),
        (
            format!("{{{R}, fault: {{abort: {{httpStatus: 503, grpcStatus: UNAVAILABLE}}}}}}"),
            format!("{p}.fault.abort"),
            vec!["not both"],
        ),
        (
            format!("{{{R}, fault: {{abort: {{percentage: {{value: 5}}}}}}}}"),
            format!("{p}.fault.abort"),
            vec!["httpStatus or grpcStatus is required"],
        ),
        (
            format!("{{{R}, fault: {{abort: {{httpStatus: 503, percentage: {{value: 150}}}}}}}}"),
            format!("{p}.fault.abort.percentage.value"),
            vec!["\"150\""],
        ),
        (
            format!("{{{R}, timeout: 5}}"),
            format!("{p}.timeout"),
            vec!["\"5\"", "missing unit"],
        ),
        (
            format!("{{{R}, timeout: soon}}"),
            format!("{p}.timeout"),
            vec!["\"soon\""],
        ),
        (
            format!("{{{R}, retries: {{attempts: 3, perTryTimeout: 1x}}}}"),
            format!("{p}.retries.perTryTimeout"),
            vec!["\"1x\""],
        ),
        (
            format!("{{{R}, retries: {{attempts: -1}}}}"),
            format!("{p}.retries.attempts"),
            vec!["\"-1\""],
        ),
        (
            format!("{{{R}, retries: {{attempts: 101}}}}"),
            format!("{p}.retries.attempts"),
            vec!["\"101\"", "between 0 and 100"],
        ),
        (
            format!("{{{R}, retries: {{retryOn: '5xx,bogus'}}}}"),
            format!("{p}.retries.retryOn"),
            vec!["\"5xx,bogus\""],
        ),
        (
            "{redirect: {uri: /x, redirectCode: 304}}".into(),
            format!("{p}.redirect.redirectCode"),
            vec!["\"304\"", "301, 302, 303, 307, 308"],
        ),
        (
            "{redirect: {port: 80, derivePort: FROM_REQUEST_PORT}}".into(),
            format!("{p}.redirect"),
            vec!["not both"],
        ),
        (
            "{redirect: {derivePort: SOMEWHERE}}".into(),
            format!("{p}.redirect.derivePort"),
            vec!["\"SOMEWHERE\""],
        ),
        (
            "{redirect: {port: 0}}".into(),
            format!("{p}.redirect.port"),
            vec!["\"0\""],
        ),
        (
            "{directResponse: {status: 99}}".into(),
            format!("{p}.directResponse.status"),
            vec!["\"99\""],
        ),
        (
            "{directResponse: {body: {string: x}}}".into(),
            format!("{p}.directResponse.status"),
            vec!["is required"],
        ),
        (
            "{directResponse: {status: 200, body: {bytes: '*not base64*'}}}".into(),
            format!("{p}.directResponse.body.bytes"),
            vec!["base64"],
        ),
        (
            format!("{{{R}, match: [{{uri: {{regex: '('}}}}]}}"),
            format!("{p}.match[0].uri.regex"),
            vec!["\"(\"", "invalid regular expression"],
        ),
        (
            format!("{{{R}, match: [{{uri: {{exact: /a, prefix: /b}}}}]}}"),
            format!("{p}.match[0].uri"),
            vec!["only one of exact, prefix and regex"],
        ),
        (
            format!("{{{R}, match: [{{headers: {{'bad header': {{exact: x}}}}}}]}}"),
            format!("{p}.match[0].headers.bad header"),
            vec!["\"bad header\"", "header name"],
        ),
        (
            format!("{{{R}, match: [{{port: 70000}}]}}"),
            format!("{p}.match[0].port"),
            vec!["\"70000\""],
        ),
        (
            format!("{{{R}, match: {{uri: {{exact: /}}}}}}"),
            format!("{p}.match"),
            vec!["expected a list"],
        ),
        (
            "{route: [{destination: {subset: v1}}]}".into(),
            format!("{p}.route[0].destination.host"),
            vec!["is required"],
        ),
        (
            "{route: [{weight: 100}]}".into(),
            format!("{p}.route[0].destination"),
            vec!["is required"],
        ),
        (
            "{route: [{destination: {host: reviews, port: {number: 0}}}]}".into(),
            format!("{p}.route[0].destination.port.number"),
            vec!["\"0\""],
        ),
        (
            "{route: []}".into(),
            format!("{p}.route"),
            vec!["at least one destination"],
        ),
        (
            format!("{{{R}, redirect: {{uri: /x}}}}"),
            p.to_owned(),
            vec!["only one of route, redirect, directResponse and delegate"],
        ),
        (
            "{timeout: 1s}".into(),
            p.to_owned(),
            vec!["one of route, redirect or directResponse is required"],
        ),
        (
            "{redirect: {uri: /x}, rewrite: {uri: /y}}".into(),
            format!("{p}.rewrite"),
            vec!["applies only with route"],
        ),
        (
            format!("{{{R}, rewrite: {{uri: /y, uriRegexRewrite: {{match: a, rewrite: b}}}}}}"),
            format!("{p}.rewrite"),
            vec!["not both"],
        ),
        (
            format!("{{{R}, rewrite: {{uriRegexRewrite: {{match: '[', rewrite: b}}}}}}"),
            format!("{p}.rewrite.uriRegexRewrite.match"),
            vec!["\"[\""],
        ),
        (
            format!("{{{R}, headers: {{request: {{set: {{x-a: \"a\\nb\"}}}}}}}}"),
            format!("{p}.headers.request.set.x-a"),
            vec!["header value"],
        ),
        (
            format!("{{{R}, mirror: {{host: a}}, mirrors: [{{destination: {{host: b}}}}]}}"),
            p.to_owned(),
            vec!["either mirror or mirrors"],
        ),
        (
            format!("{{{R}, mirror: {{host: a}}, mirrorPercentage: {{value: 200}}}}"),
            format!("{p}.mirrorPercentage.value"),
            vec!["\"200\""],
        ),
        (
            format!("{{{R}, mirrors: [{{destination: {{host: b}}, percentage: {{value: -1}}}}]}}"),
            format!("{p}.mirrors[0].percentage.value"),
            vec!["\"-1\""],
        ),
        (
            format!("{{{R}, name: [a]}}"),
            format!("{p}.name"),
            vec!["expected a string"],
        ),
    ];
    for (route, path, needles) in &cases {
        assert_error(&vs_with(route), path, needles);
    }

    // Document-level values.
    let doc = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n";
    assert_error(
        &format!("{doc}metadata: {{name: reviews}}\nspec: {{http: []}}\n"),
        "VirtualService reviews: spec.hosts",
        &["is required"],
    );
    assert_error(
        &format!("{doc}metadata: {{name: reviews}}\nspec: {{hosts: []}}\n"),
        "VirtualService reviews: spec.hosts",
        &["at least one host"],
    );
    assert_error(
        &format!("{doc}metadata: {{name: reviews}}\n"),
        "VirtualService reviews: spec",
        &["is required"],
    );
    assert_error(
        &format!("{doc}metadata: {{namespace: bookinfo}}\nspec: {{hosts: [a]}}\n"),
        "VirtualService documents[0]: metadata.name",
        &["is required"],
    );
    assert_error(
        &format!("{doc}metadata: {{name: Reviews}}\nspec: {{hosts: [a]}}\n"),
        "VirtualService Reviews: metadata.name",
        &["\"Reviews\""],
    );
    assert_error(
        &format!("{doc}metadata: {{name: r, namespace: Book_Info}}\nspec: {{hosts: [a]}}\n"),
        "VirtualService Book_Info/r: metadata.namespace",
        &["\"Book_Info\""],
    );
    // The namespace is part of the document's name in messages.
    assert_error(
        &format!(
            "{doc}metadata: {{name: reviews, namespace: bookinfo}}\n\
             spec: {{hosts: [reviews], http: [{{route: [{{destination: {{host: reviews}}, weight: x}}]}}]}}\n"
        ),
        "VirtualService bookinfo/reviews: spec.http[0].route[0].weight",
        &["\"x\""],
    );
}

#[test]
fn invalid_destination_rule_values_name_their_path() {
    let p = "DestinationRule reviews: spec";
    let tp = |s: &str| dr_with(&format!("trafficPolicy: {s}"));
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (
            tp("{loadBalancer: {simple: BOGUS}}"),
            format!("{p}.trafficPolicy.loadBalancer.simple"),
            vec!["\"BOGUS\"", "ROUND_ROBIN"],
        ),
        (
            tp("{loadBalancer: ROUND_ROBIN}"),
            format!("{p}.trafficPolicy.loadBalancer"),
            vec!["{simple: NAME}"],
        ),
        (
            tp("{loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}"),
            format!("{p}.trafficPolicy.loadBalancer"),
            vec!["not both"],
        ),
        (
            tp("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}}}"),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize"),
            vec!["\"65536\"", "prime"],
        ),
        (
            tp(
                "{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 5000101}}}}",
            ),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize"),
            vec!["\"5000101\"", "5000011"],
        ),
        (
            tp(
                "{loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 0}}}}",
            ),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize"),
            vec!["\"0\"", "between 1 and 8388608"],
        ),
        (
            tp(
                "{loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 8388609}}}}",
            ),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize"),
            vec!["\"8388609\""],
        ),
        (
            tp("{loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {}, maglev: {}}}}"),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash"),
            vec!["ringHash, maglev"],
        ),
        (
            tp("{loadBalancer: {consistentHash: {}}}"),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash"),
            vec!["httpHeaderName, httpCookie, useSourceIp"],
        ),
        (
            tp("{loadBalancer: {consistentHash: {useSourceIp: true, httpHeaderName: x-user}}}"),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash"),
            vec!["set only one hash key"],
        ),
        (
            tp("{loadBalancer: {consistentHash: {httpHeaderName: 'x user'}}}"),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash.httpHeaderName"),
            vec!["\"x user\""],
        ),
        (
            tp("{loadBalancer: {consistentHash: {httpCookie: {ttl: 1s}}}}"),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash.httpCookie.name"),
            vec!["is required"],
        ),
        (
            tp("{loadBalancer: {consistentHash: {httpCookie: {name: u, ttl: forever}}}}"),
            format!("{p}.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl"),
            vec!["\"forever\""],
        ),
        (
            tp("{connectionPool: {tcp: {maxConnections: -1}}}"),
            format!("{p}.trafficPolicy.connectionPool.tcp.maxConnections"),
            vec!["\"-1\""],
        ),
        (
            tp("{connectionPool: {tcp: {maxConnections: 4294967296}}}"),
            format!("{p}.trafficPolicy.connectionPool.tcp.maxConnections"),
            vec!["\"4294967296\""],
        ),
        (
            tp("{connectionPool: {tcp: {connectTimeout: 0s}}}"),
            format!("{p}.trafficPolicy.connectionPool.tcp.connectTimeout"),
            vec!["\"0s\"", "greater than 0"],
        ),
        (
            tp("{connectionPool: {http: {http2MaxRequests: many}}}"),
            format!("{p}.trafficPolicy.connectionPool.http.http2MaxRequests"),
            vec!["\"many\""],
        ),
        (
            tp("{connectionPool: {http: {idleTimeout: 1}}}"),
            format!("{p}.trafficPolicy.connectionPool.http.idleTimeout"),
            vec!["\"1\"", "missing unit"],
        ),
        (
            tp("{connectionPool: {http: {h2UpgradePolicy: SOMETIMES}}}"),
            format!("{p}.trafficPolicy.connectionPool.http.h2UpgradePolicy"),
            vec!["\"SOMETIMES\"", "UPGRADE"],
        ),
        (
            tp("{outlierDetection: {maxEjectionPercent: 101}}"),
            format!("{p}.trafficPolicy.outlierDetection.maxEjectionPercent"),
            vec!["\"101\"", "between 0 and 100"],
        ),
        (
            tp("{outlierDetection: {minHealthPercent: -1}}"),
            format!("{p}.trafficPolicy.outlierDetection.minHealthPercent"),
            vec!["\"-1\""],
        ),
        (
            tp("{outlierDetection: {interval: 1x}}"),
            format!("{p}.trafficPolicy.outlierDetection.interval"),
            vec!["\"1x\""],
        ),
        (
            tp("{outlierDetection: {baseEjectionTime: 0s}}"),
            format!("{p}.trafficPolicy.outlierDetection.baseEjectionTime"),
            vec!["\"0s\""],
        ),
        (
            tp("{outlierDetection: {consecutive5xxErrors: -1}}"),
            format!("{p}.trafficPolicy.outlierDetection.consecutive5xxErrors"),
            vec!["\"-1\""],
        ),
        (
            tp("{outlierDetection: {splitExternalLocalOriginErrors: maybe}}"),
            format!("{p}.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors"),
            vec!["\"maybe\""],
        ),
        (
            tp("{portLevelSettings: [{port: {number: 0}}]}"),
            format!("{p}.trafficPolicy.portLevelSettings[0].port.number"),
            vec!["\"0\""],
        ),
        (
            tp("{portLevelSettings: [{loadBalancer: {simple: RANDOM}}]}"),
            format!("{p}.trafficPolicy.portLevelSettings[0].port"),
            vec!["is required"],
        ),
        (
            tp("{portLevelSettings: [{port: {number: 80}}, {port: {number: 80}}]}"),
            format!("{p}.trafficPolicy.portLevelSettings[1].port.number"),
            vec!["\"80\""],
        ),
        (
            dr_with("subsets: [{labels: {version: v1}}]"),
            format!("{p}.subsets[0].name"),
            vec!["is required"],
        ),
        (
            dr_with("subsets: [{name: V_1}]"),
            format!("{p}.subsets[0].name"),
            vec!["\"V_1\""],
        ),
        (
            dr_with("subsets: [{name: v1}, {name: v1}]"),
            format!("{p}.subsets[1].name"),
            vec!["duplicate"],
        ),
        (
            dr_with("subsets: [{name: v1, labels: {version: [1]}}]"),
            format!("{p}.subsets[0].labels.version"),
            vec!["expected a string"],
        ),
        (
            dr_with("subsets: [{name: v1, trafficPolicy: {loadBalancer: {simple: X}}}]"),
            format!("{p}.subsets[0].trafficPolicy.loadBalancer.simple"),
            vec!["\"X\""],
        ),
    ];
    for (text, path, needles) in &cases {
        assert_error(text, path, needles);
    }
    let doc =
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n";
    assert_error(
        &format!("{doc}spec: {{}}\n"),
        "DestinationRule reviews: spec.host",
        &["is required"],
    );
    assert_error(
        &format!("{doc}spec: {{host: ''}}\n"),
        "DestinationRule reviews: spec.host",
        &["must not be empty"],
    );
    assert_error(
        &format!("{doc}spec: {{host: reviews, subsets: {{name: v1}}}}\n"),
        "DestinationRule reviews: spec.subsets",
        &["expected a list"],
    );
}

// ---- warnings ----

#[test]
fn unimplemented_and_unknown_fields_are_warnings_with_paths() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo, labels: {app: reviews}}
spec:
  hosts: [reviews]
  gateways: [mesh, bookinfo-gateway]
  exportTo: ["."]
  tcp: [{route: [{destination: {host: reviews}}]}]
  tls: [{match: [{sniHosts: [reviews]}], route: [{destination: {host: reviews}}]}]
  http:
  - match:
    - uri: {prefix: /reviews}
      sourceLabels: {app: productpage}
      sourceNamespace: bookinfo
    corsPolicy: {allowOrigins: [{exact: "*"}]}
    retries: {attempts: 3, retryRemoteLocalities: true}
    route:
    - destination: {host: reviews, subset: v1}
      weigth: 10
  - delegate: {name: reviews-v2, namespace: other}
  - route: [{destination: {host: reviews}}]
    fault: {delay: {fixedDelay: 1s, percent: 100}}
    mirror: {host: reviews-shadow}
    mirrorPercent: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  exportTo: ["."]
  workloadSelector: {matchLabels: {app: productpage}}
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    loadBalancer:
      consistentHash: {useSourceIp: true, minimumRingSize: 2048}
      localityLbSetting: {enabled: true}
      warmupDurationSecs: 30s
    connectionPool:
      tcp: {maxConnections: 10, tcpKeepalive: {time: 7200s}}
      http: {useClientProtocol: true}
    outlierDetection: {consecutiveErrors: 5}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, caCrl: /etc/crl.pem}}
"#;
    let c = yaml(text).unwrap();
    let v = "VirtualService bookinfo/reviews: spec";
    let d = "DestinationRule bookinfo/reviews: spec";
    let mut want = vec![
        format!("{v}.gateways[1]"),
        format!("{v}.exportTo"),
        format!("{v}.tcp"),
        format!("{v}.tls"),
        format!("{v}.http[0].match[0].sourceLabels"),
        format!("{v}.http[0].match[0].sourceNamespace"),
        format!("{v}.http[0].corsPolicy"),
        format!("{v}.http[0].retries.retryRemoteLocalities"),
        format!("{v}.http[0].route[0].weigth"),
        format!("{v}.http[1].delegate"),
        format!("{v}.http[2].fault.delay.percent"),
        format!("{v}.http[2].mirrorPercent"),
        format!("{d}.exportTo"),
        format!("{d}.workloadSelector"),
        format!("{d}.trafficPolicy.loadBalancer.consistentHash.minimumRingSize"),
        format!("{d}.trafficPolicy.loadBalancer.localityLbSetting"),
        format!("{d}.trafficPolicy.loadBalancer.warmupDurationSecs"),
        format!("{d}.trafficPolicy.connectionPool.tcp.tcpKeepalive"),
        format!("{d}.trafficPolicy.connectionPool.http.useClientProtocol"),
        format!("{d}.trafficPolicy.outlierDetection.consecutiveErrors"),
        format!("{d}.subsets[0].trafficPolicy.tls.caCrl"),
    ];
    want.sort_unstable();
    assert_eq!(paths(&c), want);
    let message = |path: &str| {
        c.warnings
            .iter()
            .find(|w| w.path == path)
            .map(|w| w.message.clone())
            .unwrap()
    };
    assert!(message(&format!("{v}.http[0].route[0].weigth")).contains("unknown field"));
    assert!(message(&format!("{v}.http[0].corsPolicy")).contains("not implemented"));
    assert!(message(&format!("{v}.gateways[1]")).contains("bookinfo-gateway"));
    assert!(
        message(&format!(
            "{d}.trafficPolicy.outlierDetection.consecutiveErrors"
        ))
        .contains("consecutiveGatewayErrors")
    );

    // The documents still apply, without what was warned about.
    let r = &c.virtual_services[0];
    assert_eq!(r.namespace.as_deref(), Some("bookinfo"));
    assert_eq!(r.http.len(), 2, "the delegated route is left out");
    assert_eq!(
        r.http[0].matches[0].uri,
        Some(StringMatch::Prefix("/reviews".to_owned()))
    );
    assert_eq!(r.http[0].retries.as_ref().map(|r| r.attempts), Some(3));
    let RouteAction::Forward(f) = &r.http[0].action else {
        panic!("a forward");
    };
    assert_eq!(
        f.destinations[0].weight, 100,
        "the misspelt weight is ignored"
    );
    // Deprecated fields are still read.
    let delay = r.http[1].fault.as_ref().and_then(|f| f.delay).unwrap();
    assert_eq!(delay.percentage, Percentage::ALL);
    assert_eq!(r.http[1].mirrors[0].percentage, Percentage::ALL);

    let dest = &c.destinations[0];
    assert_eq!(dest.host, "reviews.bookinfo");
    assert_eq!(
        dest.policy.load_balancer,
        LoadBalancer::ConsistentHash(ConsistentHash {
            key: HashKey::SourceIp,
            table: HashTable::Ring { minimum_size: 2048 },
        })
    );
    assert_eq!(dest.policy.connection_pool.max_connections, Some(10));
    assert_eq!(
        dest.policy.outlier_detection,
        Some(OutlierDetection {
            consecutive_gateway_errors: Some(5),
            consecutive_5xx_errors: Some(0),
            ..OutlierDetection::default()
        }),
        "Istio reads consecutiveErrors as gateway errors only"
    );
}

#[test]
fn gateways_other_than_mesh() {
    let doc =
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bookinfo}\n";
    // Bound to a gateway only: not for a mesh client.
    let text = format!(
        "{doc}spec:
  hosts: ['*']
  gateways: [bookinfo-gateway]
  http:
  - match: [{{uri: {{exact: /productpage}}}}]
    route: [{{destination: {{host: productpage, port: {{number: 9080}}}}}}]
"
    );
    let c = yaml(&text).unwrap();
    assert!(c.virtual_services.is_empty());
    assert_eq!(paths(&c), ["VirtualService bookinfo: spec.gateways"]);
    assert!(c.warnings[0].message.contains("document ignored"));

    // A match block may bind its route to the mesh when the document does not.
    let text = format!(
        "{doc}spec:
  hosts: [reviews]
  gateways: [bookinfo-gateway]
  http:
  - match: [{{uri: {{prefix: /a}}, gateways: [mesh]}}]
    route: [{{destination: {{host: a}}}}]
  - match: [{{uri: {{prefix: /b}}}}]
    route: [{{destination: {{host: b}}}}]
  - match: [{{uri: {{prefix: /c}}, gateways: [bookinfo-gateway]}}]
    route: [{{destination: {{host: c}}}}]
"
    );
    let c = yaml(&text).unwrap();
    let vs = &c.virtual_services[0];
    assert_eq!(vs.http.len(), 1);
    assert_eq!(
        vs.http[0].matches[0].uri,
        Some(StringMatch::Prefix("/a".to_owned()))
    );
    assert_eq!(
        paths(&c),
        ["VirtualService bookinfo: spec.http[2].match[0].gateways"]
    );
}

// ---- DestinationRules ----

#[test]
fn short_hosts_take_the_document_namespace() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec: {host: reviews, subsets: [{name: v1}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: bookinfo}
spec: {host: ratings.prod.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec: {host: details}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all}
spec: {host: '*.bookinfo.svc.cluster.local', trafficPolicy: {loadBalancer: {simple: RANDOM}}}
";
    let c = yaml(text).unwrap();
    let hosts: Vec<&str> = c.destinations.iter().map(|d| d.host.as_str()).collect();
    assert_eq!(
        hosts,
        [
            "reviews.bookinfo",
            "ratings.prod.svc.cluster.local",
            "details"
        ]
    );
    assert_eq!(
        c.destinations[0].subsets[0].endpoints,
        SubsetEndpoints::Host("reviews-v1.bookinfo".to_owned())
    );
    assert_eq!(paths(&c), ["DestinationRule all: spec.host"]);
    assert!(c.warnings[0].message.contains("wildcard"));
}

#[test]
fn port_level_settings_become_destinations_with_a_port() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {tcp: {maxConnections: 100}}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: ROUND_ROBIN}
    - port: {number: 9443}
      outlierDetection: {consecutive5xxErrors: 7}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 9080}
        connectionPool: {http: {http2MaxRequests: 10}}
      - port: {number: 7070}
        loadBalancer: {simple: LEAST_REQUEST}
";
    let c = yaml(text).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let pool = |n| ConnectionPool {
        max_connections: Some(n),
        ..ConnectionPool::default()
    };
    let summary: Vec<(
        Option<u16>,
        LoadBalancer,
        ConnectionPool,
        Option<OutlierDetection>,
    )> = c
        .destinations
        .iter()
        .map(|d| {
            assert_eq!(d.host, "reviews.bookinfo");
            let p = &d.policy;
            (
                d.port,
                p.load_balancer.clone(),
                p.connection_pool.clone(),
                p.outlier_detection.clone(),
            )
        })
        .collect();
    let seven = OutlierDetection {
        consecutive_5xx_errors: Some(7),
        ..OutlierDetection::default()
    };
    assert_eq!(
        summary,
        [
            (None, LoadBalancer::Random, pool(100), None),
            (Some(9080), LoadBalancer::RoundRobin, pool(100), None),
            (
                Some(9443),
                LoadBalancer::Random,
                pool(100),
                Some(seven.clone())
            ),
            (Some(7070), LoadBalancer::Random, pool(100), None),
        ]
    );
    let v2 = |i: usize| &c.destinations[i].subsets[0];
    assert_eq!(v2(0).policy, c.destinations[0].policy);
    // The subset's port settings replace the whole connection pool, as in Istio.
    assert_eq!(v2(1).policy.load_balancer, LoadBalancer::RoundRobin);
    assert_eq!(
        v2(1).policy.connection_pool,
        ConnectionPool {
            http2_max_requests: Some(10),
            ..ConnectionPool::default()
        }
    );
    assert_eq!(v2(2).policy.outlier_detection, Some(seven));
    assert_eq!(v2(3).policy.load_balancer, LoadBalancer::LeastRequest);
    for i in 0..4 {
        assert_eq!(
            v2(i).endpoints,
            SubsetEndpoints::Host("reviews-v2.bookinfo".to_owned())
        );
    }
}

#[test]
fn rules_lay_over_destinations_with_a_port() {
    let text = "\
destinations:
- {host: reviews, port: 9080, timeout: 3s}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    portLevelSettings:
    - port: {number: 9080}
      connectionPool: {http: {maxRetries: 3}}
";
    let c = yaml(text).unwrap();
    let ports: Vec<Option<u16>> = c.destinations.iter().map(|d| d.port).collect();
    assert_eq!(ports, [Some(9080), None]);
    let d = &c.destinations[0].policy;
    assert_eq!(d.timeout, Some(secs(3)));
    assert_eq!(d.load_balancer, LoadBalancer::Random);
    assert_eq!(d.connection_pool.max_retries, Some(3));
}

#[test]
fn consistent_hash_variants() {
    let rule = |host: &str, hash: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}}}\n\
             spec: {{host: {host}, trafficPolicy: {{loadBalancer: {{consistentHash: {hash}}}}}}}\n"
        )
    };
    let text = [
        rule("a", "{httpHeaderName: X-User}"),
        rule(
            "b",
            "{httpCookie: {name: user, path: /, ttl: 0s}, maglev: {}}",
        ),
        rule(
            "c",
            "{useSourceIp: true, ringHash: {minimumRingSize: 2048}}",
        ),
        rule(
            "d",
            "{httpQueryParameterName: user, maglev: {tableSize: 251}}",
        ),
        rule("e", "{httpCookie: {name: session}, ringHash: {}}"),
    ]
    .concat();
    let c = yaml(&text).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let hash = |key, table| LoadBalancer::ConsistentHash(ConsistentHash { key, table });
    let lbs: Vec<LoadBalancer> = c
        .destinations
        .iter()
        .map(|d| d.policy.load_balancer.clone())
        .collect();
    assert_eq!(
        lbs,
        [
            hash(
                HashKey::Header(header("x-user")),
                HashTable::Ring { minimum_size: 1024 }
            ),
            hash(
                HashKey::Cookie(HashCookie {
                    name: "user".to_owned(),
                    path: Some("/".to_owned()),
                    ttl: Some(Duration::ZERO),
                }),
                HashTable::Maglev { table_size: 65537 },
            ),
            hash(HashKey::SourceIp, HashTable::Ring { minimum_size: 2048 }),
            hash(
                HashKey::QueryParameter("user".to_owned()),
                HashTable::Maglev { table_size: 251 },
            ),
            hash(
                HashKey::Cookie(HashCookie {
                    name: "session".to_owned(),
                    path: None,
                    ttl: None,
                }),
                HashTable::Ring { minimum_size: 1024 },
            ),
        ]
    );
}

// ---- mesh's own format in Istio's shapes ----

const MESH_SUBSETS: &str = "\
defaults: {timeout: 5s, retries: {attempts: 4}}
destinations:
- host: reviews
  loadBalancer: {simple: RANDOM}
  connectionPool:
    tcp: {maxConnections: 10, connectTimeout: 2s}
    http: {h2UpgradePolicy: UPGRADE, http1MaxPendingRequests: 5, idleTimeout: 30s}
  outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    host: reviews-canary
    timeout: 1s
    loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 1h}}}
  - name: v3
    endpoints: ['127.0.0.1:9083']
    outlierDetection: {consecutiveGatewayErrors: 2}
";

#[test]
fn subsets_inherit_their_destination_policy() {
    let from_file = yaml(MESH_SUBSETS).unwrap();
    let outlier = OutlierDetection {
        consecutive_5xx_errors: Some(3),
        interval: Some(secs(5)),
        base_ejection_time: Some(secs(60)),
        max_ejection_percent: Some(50),
        ..OutlierDetection::default()
    };
    let cookie = ConsistentHash {
        key: HashKey::Cookie(HashCookie {
            name: "user".to_owned(),
            path: None,
            ttl: Some(secs(3600)),
        }),
        table: HashTable::default(),
    };
    let built = MeshConfig::builder()
        .destination(
            DestinationBuilder::new("reviews")
                .load_balancer(LoadBalancer::Random)
                .connection_pool(ConnectionPool {
                    max_connections: Some(10),
                    connect_timeout: Some(secs(2)),
                    http1_max_pending_requests: Some(5),
                    idle_timeout: Some(secs(30)),
                    ..ConnectionPool::default()
                })
                .protocol(Protocol::Http2)
                .outlier_detection(outlier.clone())
                .subset(SubsetBuilder::new("v1").label("version", "v1"))
                .subset(
                    SubsetBuilder::new("v2")
                        .host("reviews-canary")
                        .timeout(secs(1))
                        .load_balancer(LoadBalancer::ConsistentHash(cookie.clone())),
                )
                .subset(
                    SubsetBuilder::new("v3")
                        .endpoints(["127.0.0.1:9083".parse().unwrap()])
                        .outlier_detection(OutlierDetection {
                            consecutive_gateway_errors: Some(2),
                            ..OutlierDetection::default()
                        }),
                ),
        )
        .timeout(secs(5))
        .retry_attempts(4)
        .build()
        .unwrap();
    assert_eq!(from_file, built);

    let d: &DestinationConfig = &from_file.destinations[0];
    let p = &d.policy;
    assert_eq!(p.timeout, Some(secs(5)), "from the defaults");
    assert_eq!(p.retries.attempts, 4, "from the defaults");
    assert_eq!(
        p.connect_timeout,
        secs(2),
        "connectTimeout sets the policy's"
    );
    assert_eq!(p.protocol, Protocol::Http2, "h2UpgradePolicy: UPGRADE");
    let [v1, v2, v3] = &d.subsets[..] else {
        panic!("three subsets");
    };
    assert_eq!(v1.policy, *p);
    assert_eq!(v1.endpoints, SubsetEndpoints::Host("reviews-v1".to_owned()));
    assert_eq!(
        v2.endpoints,
        SubsetEndpoints::Host("reviews-canary".to_owned())
    );
    assert_eq!(v2.policy.timeout, Some(secs(1)));
    assert_eq!(
        v2.policy.load_balancer,
        LoadBalancer::ConsistentHash(cookie)
    );
    assert_eq!(v2.policy.outlier_detection, Some(outlier));
    assert_eq!(v2.policy.retries.attempts, 4);
    assert_eq!(
        v3.endpoints,
        SubsetEndpoints::Static(vec!["127.0.0.1:9083".parse().unwrap()])
    );
    assert_eq!(
        v3.policy.outlier_detection,
        Some(OutlierDetection {
            consecutive_gateway_errors: Some(2),
            ..OutlierDetection::default()
        })
    );
    assert_eq!(v3.policy.load_balancer, LoadBalancer::Random);

    // The same destination as a DestinationRule.
    let rule = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 2s}
      http: {h2UpgradePolicy: UPGRADE, http1MaxPendingRequests: 5, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
---
defaults: {timeout: 5s, retries: {attempts: 4}}
";
    let c = yaml(rule).unwrap();
    assert_eq!(c.destinations[0].policy, *p);
    assert_eq!(c.destinations[0].subsets[0], *v1);
}

#[test]
fn mesh_format_load_balancer_shapes() {
    let c = yaml(
        "defaults: {loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}}\n\
         destinations:\n- {host: a, loadBalancer: {consistentHash: {useSourceIp: true}}}\n\
         - {host: b, loadBalancer: PASSTHROUGH}\n- {host: c}\n",
    )
    .unwrap();
    let header_hash = LoadBalancer::ConsistentHash(ConsistentHash {
        key: HashKey::Header(header("x-user")),
        table: HashTable::Maglev { table_size: 65537 },
    });
    assert_eq!(c.defaults.load_balancer, header_hash);
    assert_eq!(
        c.destinations[0].policy.load_balancer,
        LoadBalancer::ConsistentHash(ConsistentHash {
            key: HashKey::SourceIp,
            table: HashTable::default(),
        })
    );
    assert_eq!(
        c.destinations[1].policy.load_balancer,
        LoadBalancer::Passthrough
    );
    assert_eq!(c.destinations[2].policy.load_balancer, header_hash);
}

#[test]
fn mesh_format_stays_strict() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "defaults: {connectionPool: {tcp: {maxConection: 1}}}",
            "defaults.connectionPool.tcp.maxConection",
            "unknown field \"maxConection\"",
        ),
        (
            "defaults: {connectionPool: {tcp: {tcpKeepalive: {time: 1s}}}}",
            "defaults.connectionPool.tcp.tcpKeepalive",
            "not supported",
        ),
        (
            "defaults: {loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 5}}}",
            "defaults.loadBalancer.consistentHash.minimumRingSize",
            "ringHash",
        ),
        (
            "defaults: {outlierDetection: {consecutiveErrors: 5}}",
            "defaults.outlierDetection.consecutiveErrors",
            "consecutiveGatewayErrors",
        ),
        (
            "defaults: {loadBalancer: {simple: RANDOM, localityLbSetting: {}}}",
            "defaults.loadBalancer.localityLbSetting",
            "not supported",
        ),
        (
            "defaults: {outlierDetection: {maxEjectionPercent: 200}}",
            "defaults.outlierDetection.maxEjectionPercent",
            "\"200\"",
        ),
        (
            "destinations: [{host: a, loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 100}}}}]",
            "destinations[0].loadBalancer.consistentHash.maglev.tableSize",
            "prime",
        ),
        (
            "destinations: [{host: a, subsets: [{name: v1, host: b, endpoints: ['127.0.0.1:1']}]}]",
            "destinations[0].subsets[0].endpoints",
            "either host or endpoints",
        ),
        (
            "destinations: [{host: a, subsets: [{name: v1, endpoints: [nowhere]}]}]",
            "destinations[0].subsets[0].endpoints[0]",
            "\"nowhere\"",
        ),
        (
            "destinations: [{host: a, subsets: [{name: v1}, {name: v1}]}]",
            "destinations[0].subsets[1].name",
            "duplicate",
        ),
        (
            "destinations: [{host: a, subsets: [{name: ''}]}]",
            "destinations[0].subsets[0].name",
            "DNS label",
        ),
        (
            "destinations: [{host: a, subsets: [{name: v1, endpoints: []}]}]",
            "destinations[0].subsets[0].endpoints",
            "\"[]\"",
        ),
        (
            "destinations: [{host: a, subsets: [{name: v1, timeout: 1x}]}]",
            "destinations[0].subsets[0].timeout",
            "\"1x\"",
        ),
        (
            "destinations: [{host: a, subsets: [{nam: v1}]}]",
            "destinations[0].subsets[0].nam",
            "unknown field \"nam\"",
        ),
        (
            "destinations: [{host: a, subsets: [{name: v1, peakEwma: {decay: 1s}}]}]",
            "destinations[0].subsets[0].peakEwma",
            "PEAK_EWMA",
        ),
    ];
    for (text, path, needle) in cases {
        let e = yaml(text).expect_err(text);
        assert_eq!(e.path(), Some(*path), "{e}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
}

#[test]
fn a_subset_of_a_peak_ewma_destination_may_tune_it() {
    let c = yaml(
        "destinations: [{host: a, loadBalancer: PEAK_EWMA, subsets: [{name: v1, peakEwma: {decay: 1s}}]}]",
    )
    .unwrap();
    let LoadBalancer::PeakEwma(ewma) = &c.destinations[0].subsets[0].policy.load_balancer else {
        panic!("peak EWMA");
    };
    assert_eq!(ewma.decay, secs(1));
}

// ---- retryBudget and the settings Istio does not have ----

#[test]
fn retry_budget_from_a_rule_and_from_mesh_format_agree() {
    use crate::config::RetryConcurrencyBudget;

    let rule = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    retryBudget: {percent: {value: 25}, minRetryConcurrency: 5}
  subsets:
  - name: v1
    trafficPolicy: {retryBudget: {percent: 12.5}}
  - name: v2
    trafficPolicy: {retryBudget: {minRetryConcurrency: 0}}
";
    let mesh = "\
destinations:
- host: reviews
  retryBudget: {percent: 25, minRetryConcurrency: 5}
  subsets:
  - {name: v1, retryBudget: {percent: {value: 12.5}}}
  - {name: v2, retryBudget: {}}
";
    let budget = |percent: f64, min: u32| RetryConcurrencyBudget {
        percent,
        min_retry_concurrency: min,
    };
    let built = MeshConfig::builder()
        .destination(
            DestinationBuilder::new("reviews")
                .retry_concurrency_budget(budget(25.0, 5))
                .subset(SubsetBuilder::new("v1").retry_concurrency_budget(budget(12.5, 3)))
                .subset(SubsetBuilder::new("v2").retry_concurrency_budget(budget(20.0, 3))),
        )
        .build()
        .unwrap();
    let from_rule = yaml(rule).unwrap();
    assert!(from_rule.warnings.is_empty(), "{:?}", from_rule.warnings);
    // The rule's subsets keep their (empty) labels; the rest is the same model.
    assert_eq!(
        from_rule.destinations[0].policy,
        built.destinations[0].policy
    );
    for (a, b) in from_rule.destinations[0]
        .subsets
        .iter()
        .zip(&built.destinations[0].subsets)
    {
        assert_eq!(a.policy, b.policy, "{}", a.name);
    }
    assert_eq!(yaml(mesh).unwrap(), built);
    assert_eq!(
        built.destinations[0].subsets[1]
            .policy
            .retry_concurrency_budget,
        Some(RetryConcurrencyBudget::default()),
        "20 % and 3 when left out, as in Istio"
    );
}

#[test]
fn istio_has_no_success_rate_and_no_budget_interval() {
    let rule = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    retryBudget: {percent: 30, budgetInterval: 10s}
    outlierDetection: {consecutive5xxErrors: 3, successRate: {minSuccessPercent: 90}}
    rateLimit: {maxTokens: 1, fillInterval: 1s}
    hedge: {percentile: p95}
    portLevelSettings:
    - port: {number: 9080}
      retryBudget: {percent: 10}
";
    let c = yaml(rule).unwrap();
    let d = "DestinationRule reviews: spec.trafficPolicy";
    let mut want = vec![
        format!("{d}.retryBudget.budgetInterval"),
        format!("{d}.outlierDetection.successRate"),
        format!("{d}.rateLimit"),
        format!("{d}.hedge"),
        format!("{d}.portLevelSettings[0].retryBudget"),
    ];
    want.sort_unstable();
    assert_eq!(paths(&c), want);
    let message = |path: &str| {
        c.warnings
            .iter()
            .find(|w| w.path == path)
            .map(|w| w.message.clone())
            .unwrap()
    };
    assert!(message(&format!("{d}.retryBudget.budgetInterval")).contains("not implemented"));
    assert!(message(&format!("{d}.outlierDetection.successRate")).contains("unknown field"));
    let p = &c.destinations[0].policy;
    assert_eq!(p.retry_concurrency_budget.map(|b| b.percent), Some(30.0));
    assert_eq!(
        p.outlier_detection.as_ref().map(|o| o.success_rate.clone()),
        Some(None)
    );
    assert_eq!(p.rate_limit, None);
    assert_eq!(p.hedge, None);
    let port = &c.destinations[1];
    assert_eq!(port.port, Some(9080));
    assert_eq!(
        port.policy.retry_concurrency_budget.map(|b| b.percent),
        Some(30.0),
        "ports have no retryBudget of their own"
    );
}

#[test]
fn invalid_retry_budgets_name_their_path() {
    let p = "DestinationRule reviews: spec.trafficPolicy.retryBudget";
    let tp = |s: &str| dr_with(&format!("trafficPolicy: {{retryBudget: {s}}}"));
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (
            tp("{percent: 101}"),
            format!("{p}.percent"),
            vec!["\"101\"", "between 0 and 100"],
        ),
        (
            tp("{percent: -0.5}"),
            format!("{p}.percent"),
            vec!["\"-0.5\""],
        ),
        (
            tp("{percent: {value: 250}}"),
            format!("{p}.percent.value"),
            vec!["\"250\""],
        ),
        (
            tp("{percent: {value: many}}"),
            format!("{p}.percent.value"),
            vec!["\"many\"", "a number"],
        ),
        (
            tp("{percent: {}}"),
            format!("{p}.percent.value"),
            vec!["is required"],
        ),
        (
            tp("{percent: twenty}"),
            format!("{p}.percent"),
            vec!["\"twenty\"", "a number"],
        ),
        (
            tp("{minRetryConcurrency: -1}"),
            format!("{p}.minRetryConcurrency"),
            vec!["\"-1\""],
        ),
        (tp("off"), p.to_owned(), vec!["\"off\"", "an object"]),
        (
            dr_with("subsets: [{name: v1, trafficPolicy: {retryBudget: {percent: 200}}}]"),
            "DestinationRule reviews: spec.subsets[0].trafficPolicy.retryBudget.percent".to_owned(),
            vec!["\"200\""],
        ),
    ];
    for (text, path, needles) in &cases {
        assert_error(text, path, needles);
    }
}
