//! Istio's standard metrics end to end: a mesh client `productpage` calls a mesh server
//! `reviews` over loopback with a known mix of answers (200, 404, 503 `UO` from the
//! connection pool, 504 `UT` from the route timeout); the admin server's
//! `/stats/prometheus` is scraped over HTTP and parsed, and both reporters' series are
//! checked label by label.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mesh::core::config::{ConnectionPool, MtlsMode};
use mesh::core::identity::SpiffeId;
use mesh::core::telemetry::labels::{ENVOY_BUCKETS, LABEL_NAMES};
use mesh::tower::MeshClient;
use mesh::tower::server::MeshServer;
use mesh::tower::telemetry::Telemetry;
use mesh::tower::tls::DevCa;
use prometheus_parse::{Sample, Scrape, Value};

use crate::support::{Mesh, Seen, bare_get, get, ip, prometheus, scrape, serve, serve_admin, uri};

/// The `istio_requests_total` samples of `reporter` whose `source_workload` is `source`.
fn requests<'a>(scrape: &'a Scrape, reporter: &str, source: &str) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "istio_requests_total")
        .filter(|s| s.labels.get("reporter") == Some(reporter))
        .filter(|s| s.labels.get("source_workload") == Some(source))
        .collect()
}

fn count(sample: &Sample) -> u64 {
    match sample.value {
        Value::Counter(n) | Value::Untyped(n) => n as u64,
        ref other => panic!("not a counter: {other:?}"),
    }
}

/// Requests by `(response_code, response_flags)`.
fn by_code(samples: &[&Sample]) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for s in samples {
        let key = (
            s.labels.get("response_code").unwrap_or("").to_owned(),
            s.labels.get("response_flags").unwrap_or("").to_owned(),
        );
        *out.entry(key).or_default() += count(s);
    }
    out
}

fn key(code: &str, flags: &str) -> (String, String) {
    (code.to_owned(), flags.to_owned())
}

/// Every label of Istio's set, and no other.
fn assert_istio_labels(sample: &Sample) {
    let mut names: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = LABEL_NAMES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "{sample:?}");
}

#[tokio::test(start_paused = true)]
async fn both_reporters_label_every_answer_like_istio() {
    let handle = prometheus();
    let mesh = Mesh::start();

    let reviews_config = mesh.config("reviews", "v2").build().expect("config");
    let reviews_telemetry = Telemetry::from_config(&reviews_config).expect("telemetry");
    let seen = Seen::default();
    let server = MeshServer::new(reviews_config.inbound())
        .name("reviews")
        .telemetry(reviews_telemetry);
    let reviews = serve(server, ip(1), seen.clone()).await;
    mesh.name("reviews", reviews.addr.ip());
    let admin = serve_admin(handle, ip(2)).await;

    let pool = ConnectionPool {
        max_connections: Some(1),
        http1_max_pending_requests: Some(1),
        ..ConnectionPool::default()
    };
    let client_config = mesh
        .config("productpage", "v1")
        .timeout(Duration::from_secs(1))
        .connection_pool(pool)
        .build()
        .expect("config");
    let telemetry = Telemetry::from_config(&client_config).expect("telemetry");
    let client = MeshClient::builder()
        .config(client_config)
        .telemetry(telemetry)
        .build()
        .expect("client");
    let port = reviews.addr.port();

    for _ in 0..3 {
        let answer = get(&client, &uri("reviews", port, "/"), &[]).await;
        assert_eq!(answer.status, 200);
        assert!(!answer.peer_header, "the caller saw the peer metadata");
    }
    for _ in 0..2 {
        // A header the application set is replaced by the mesh's own.
        let answer = get(
            &client,
            &uri("reviews", port, "/missing"),
            &[("x-mesh-peer-metadata", "forged")],
        )
        .await;
        assert_eq!(answer.status, 404);
        assert!(!answer.peer_header);
    }

    // One connection, one pending request: a third concurrent call overflows (503 UO).
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (client, uri) = (client.clone(), uri("reviews", port, "/slow/300"));
            tokio::spawn(async move { get(&client, &uri, &[]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let overflow = get(&client, &uri("reviews", port, "/"), &[]).await;
    assert_eq!(overflow.status, 503);
    for task in slow {
        assert_eq!(task.await.expect("caller").status, 200);
    }

    // The handler takes longer than the 1 s timeout (504 UT).
    let timed_out = get(&client, &uri("reviews", port, "/slow/3000"), &[]).await;
    assert_eq!(timed_out.status, 504);

    // A malformed peer header is unknown, never an error.
    let (status, headers, body) = bare_get(
        reviews.addr,
        "/",
        &[("x-mesh-peer-metadata", "%%%not base64")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    let _ = headers;
    assert_eq!(
        seen.peer_headers.load(Ordering::SeqCst),
        0,
        "the application saw it"
    );

    let scrape = scrape(admin.addr).await;

    // reporter="source": every call, local replies included.
    let source = requests(&scrape, "source", "productpage-v1");
    assert_eq!(
        by_code(&source),
        BTreeMap::from([
            (key("200", "-"), 5),
            (key("404", "-"), 2),
            (key("503", "UO"), 1),
            (key("504", "UT"), 1),
        ]),
        "{source:#?}"
    );
    for s in &source {
        assert_istio_labels(s);
        let l = &s.labels;
        assert_eq!(l.get("source_workload_namespace"), Some("default"));
        assert_eq!(l.get("source_app"), Some("productpage"));
        assert_eq!(l.get("source_version"), Some("v1"));
        assert_eq!(l.get("source_canonical_service"), Some("productpage"));
        assert_eq!(l.get("source_canonical_revision"), Some("v1"));
        assert_eq!(l.get("source_cluster"), Some("Kubernetes"));
        assert_eq!(l.get("source_principal"), Some("unknown"));
        assert_eq!(
            l.get("destination_service"),
            Some("reviews.default.svc.cluster.local")
        );
        assert_eq!(l.get("destination_service_name"), Some("reviews"));
        assert_eq!(l.get("destination_service_namespace"), Some("default"));
        assert_eq!(l.get("request_protocol"), Some("http"));
        assert_eq!(l.get("grpc_response_status"), Some(""));
        assert_eq!(l.get("connection_security_policy"), Some("unknown"));
        let answered = l.get("response_flags") == Some("-");
        // The callee's metadata fills its labels when it answered; local replies know none.
        let (workload, version) = if answered {
            ("reviews-v2", "v2")
        } else {
            ("unknown", "unknown")
        };
        assert_eq!(l.get("destination_workload"), Some(workload), "{s:?}");
        assert_eq!(l.get("destination_version"), Some(version), "{s:?}");
        if answered {
            assert_eq!(l.get("destination_app"), Some("reviews"));
            assert_eq!(l.get("destination_workload_namespace"), Some("default"));
            assert_eq!(l.get("destination_canonical_revision"), Some("v2"));
            assert_eq!(l.get("destination_cluster"), Some("Kubernetes"));
            assert_eq!(l.get("destination_principal"), Some("unknown"));
        }
    }

    // reporter="destination": what reached the server, plus the bare caller.
    let destination = requests(&scrape, "destination", "productpage-v1");
    let codes = by_code(&destination);
    assert_eq!(codes.get(&key("200", "-")), Some(&5), "{destination:#?}");
    assert_eq!(codes.get(&key("404", "-")), Some(&2), "{destination:#?}");
    for s in &destination {
        assert_istio_labels(s);
        let l = &s.labels;
        assert_eq!(l.get("source_version"), Some("v1"));
        assert_eq!(l.get("source_principal"), Some("unknown"));
        assert_eq!(l.get("destination_workload"), Some("reviews-v2"));
        assert_eq!(l.get("destination_version"), Some("v2"));
        assert_eq!(l.get("destination_service_name"), Some("reviews"));
        assert_eq!(
            l.get("destination_service"),
            Some("reviews.default.svc.cluster.local")
        );
        assert_eq!(l.get("destination_principal"), Some("unknown"));
        assert_eq!(l.get("connection_security_policy"), Some("none"));
    }
    let unknown = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "istio_requests_total")
        .filter(|s| s.labels.get("reporter") == Some("destination"))
        .filter(|s| s.labels.get("destination_workload") == Some("reviews-v2"))
        .filter(|s| s.labels.get("source_workload") == Some("unknown"))
        .map(count)
        .sum::<u64>();
    assert!(
        unknown >= 1,
        "the bare caller's request is counted as unknown"
    );
    let malformed = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "mesh_peer_metadata_malformed_total")
        .map(count)
        .sum::<u64>();
    assert!(malformed >= 1);

    // Envoy's buckets on all three histograms, for both reporters.
    for name in [
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    ] {
        for reporter in ["source", "destination"] {
            let histogram = scrape
                .samples
                .iter()
                .find(|s| {
                    s.metric == name
                        && s.labels.get("reporter") == Some(reporter)
                        && s.labels.get("source_workload") == Some("productpage-v1")
                        && s.labels.get("response_code") == Some("200")
                })
                .unwrap_or_else(|| panic!("no {name} of {reporter}"));
            assert_istio_labels(histogram);
            let Value::Histogram(buckets) = &histogram.value else {
                panic!("{name} is not a histogram: {histogram:?}");
            };
            let bounds: Vec<f64> = buckets
                .iter()
                .map(|b| b.less_than)
                .filter(|b| b.is_finite())
                .collect();
            assert_eq!(bounds, ENVOY_BUCKETS, "{name}");
            let total = buckets.last().map_or(0.0, |b| b.count);
            assert_eq!(total, 5.0, "{name} {reporter}");
            if name != "istio_request_duration_milliseconds" {
                // Headers count: no answer is 0 bytes (nor under 0.5).
                assert_eq!(buckets[0].count, 0.0, "{name} {reporter}");
            }
        }
    }
    // The slow answers took 300 ms and more by the (paused) clock: the source saw them
    // above 250 ms, the fast ones below.
    let duration = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "istio_request_duration_milliseconds"
                && s.labels.get("reporter") == Some("source")
                && s.labels.get("source_workload") == Some("productpage-v1")
                && s.labels.get("response_code") == Some("200")
        })
        .expect("duration");
    let Value::Histogram(buckets) = &duration.value else {
        panic!("not a histogram")
    };
    let under_250 = buckets
        .iter()
        .find(|b| b.less_than == 250.0)
        .expect("le 250")
        .count;
    assert_eq!(under_250, 3.0, "{buckets:?}");
}

#[tokio::test(start_paused = true)]
async fn mutual_tls_shows_on_both_reporters() {
    let handle = prometheus();
    let mesh = Mesh::start();
    let ca = DevCa::new("cluster.local").expect("CA");
    let id = |sa: &str| SpiffeId::workload("cluster.local", "default", sa).expect("id");

    let ratings_config = mesh
        .config("ratings", "v1")
        .mtls(MtlsMode::Strict)
        .build()
        .expect("config");
    let server = MeshServer::new(ratings_config.inbound())
        .name("ratings")
        .identity(ca.identity(&id("ratings")).expect("identity"))
        .telemetry(Telemetry::from_config(&ratings_config).expect("telemetry"));
    let ratings = serve(server, ip(3), Seen::default()).await;
    mesh.name("ratings", ratings.addr.ip());
    let admin = serve_admin(handle, ip(4)).await;

    let config = mesh.config("details", "v1").build().expect("config");
    let client = MeshClient::builder()
        .telemetry(Telemetry::from_config(&config).expect("telemetry"))
        .config(config)
        .identity(ca.identity(&id("details")).expect("identity"))
        .build()
        .expect("client");
    let answer = get(&client, &uri("ratings", ratings.addr.port(), "/"), &[]).await;
    assert_eq!(answer.status, 200);

    let scrape = scrape(admin.addr).await;
    let details = "spiffe://cluster.local/ns/default/sa/details";
    let ratings_id = "spiffe://cluster.local/ns/default/sa/ratings";
    let destination = requests(&scrape, "destination", "details-v1");
    assert_eq!(destination.len(), 1, "{destination:#?}");
    let l = &destination[0].labels;
    assert_eq!(l.get("connection_security_policy"), Some("mutual_tls"));
    assert_eq!(l.get("source_principal"), Some(details));
    assert_eq!(l.get("destination_principal"), Some(ratings_id));
    let source = requests(&scrape, "source", "details-v1");
    assert_eq!(source.len(), 1, "{source:#?}");
    let l = &source[0].labels;
    assert_eq!(l.get("connection_security_policy"), Some("unknown"));
    assert_eq!(l.get("source_principal"), Some(details));
    assert_eq!(l.get("destination_principal"), Some(ratings_id));
    assert_eq!(l.get("destination_workload"), Some("ratings-v1"));
}
