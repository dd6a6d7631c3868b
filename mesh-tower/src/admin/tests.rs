use std::sync::Mutex;

use http_body_util::BodyExt;
use mesh_core::config::Format;
use mesh_core::name::Target;
use mesh_core::{EndpointSet, Resolution};
use mesh_dns::{Discover, EndpointWatch};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::sync::watch;
use tower::ServiceExt;

use super::*;

/// Discovery whose answers the test publishes by hand.
#[derive(Default)]
struct Manual(Mutex<Vec<watch::Sender<Resolution>>>);

impl Discover for Manual {
    fn watch(&self, _target: &Target) -> EndpointWatch {
        let (tx, rx) = watch::channel(Resolution::Pending);
        self.0.lock().unwrap().push(tx);
        rx
    }
}

async fn get(admin: &AdminServer, uri: &str) -> (StatusCode, String, Option<String>) {
    let req = Request::get(uri).body(()).unwrap();
    let res = admin.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8(body.to_vec()).unwrap(),
        content_type,
    )
}

fn config() -> MeshConfig {
    let yaml = "workload: {service: productpage, namespace: bookinfo}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3}
";
    MeshConfig::from_str(yaml, Format::Yaml).expect("valid config")
}

#[tokio::test(start_paused = true)]
async fn readiness_waits_for_the_first_discovery_answer_and_the_application() {
    let discovery = Arc::new(Manual::default());
    let client = MeshClient::builder()
        .config(config())
        .discovery(discovery.clone())
        .build()
        .unwrap();
    let admin = AdminServer::new().client(client.clone());
    assert_eq!(
        get(&admin, "/healthz/ready").await.0,
        StatusCode::OK,
        "no destination yet"
    );

    let req = Request::get("http://reviews:9080/").body(http_body_util::Empty::<Bytes>::new());
    let pending = tokio::spawn(client.request(req.unwrap()));
    tokio::task::yield_now().await;
    let (status, body, _) = get(&admin, "/healthz/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "discovery has not answered for reviews.bookinfo.svc.cluster.local:9080\n"
    );

    // An unresolved answer is an answer: the workload is ready, the request fails.
    let tx = discovery.0.lock().unwrap().pop().unwrap();
    tx.send_replace(Resolution::Unresolved("NXDOMAIN".into()));
    let res = pending.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get(&admin, "/healthz/ready").await,
        (
            StatusCode::OK,
            "LIVE\n".to_owned(),
            Some("text/plain; charset=utf-8".to_owned())
        )
    );

    admin.set_ready(false);
    let (status, body, _) = get(&admin, "/healthz/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "the application is not ready\n");
    admin.ready_flag().set(true);
    assert_eq!(get(&admin, "/healthz/ready").await.0, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn clusters_list_endpoints_in_json_and_text() {
    let discovery = Arc::new(Manual::default());
    let client = MeshClient::builder()
        .config(config())
        .discovery(discovery.clone())
        .build()
        .unwrap();
    // Created, never answered; then resolved to two endpoints.
    drop(
        client.request(
            Request::get("http://reviews:9080/")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
        ),
    );
    let admin = AdminServer::new().client(client.clone());
    let (_, body, _) = get(&admin, "/clusters").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["clusters"][0]["discovery"], "pending");

    let addrs: Vec<std::net::SocketAddr> = vec![
        "127.0.0.1:9080".parse().unwrap(),
        "127.0.0.2:9080".parse().unwrap(),
    ];
    let tx = discovery.0.lock().unwrap().pop().unwrap();
    tx.send_replace(Resolution::Resolved(EndpointSet::from_addrs(addrs)));
    tokio::task::yield_now().await;

    let clusters = client.clusters();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0].state, DiscoveryState::Resolved);
    assert_eq!(clusters[0].endpoints.len(), 2);
    assert!(
        clusters[0]
            .endpoints
            .iter()
            .all(|e| e.healthy && !e.ejected)
    );

    let (status, body, content_type) = get(&admin, "/clusters").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cluster = &json["clusters"][0];
    assert_eq!(cluster["name"], "reviews.bookinfo.svc.cluster.local:9080");
    assert_eq!(cluster["discovery"], "resolved");
    assert_eq!(cluster["endpoints"][1]["address"], "127.0.0.2:9080");
    assert_eq!(cluster["endpoints"][1]["health"], "healthy");
    assert_eq!(cluster["endpoints"][1]["inFlight"], 0);
    assert_eq!(cluster["endpoints"][1]["weight"], 1);

    let (_, body, _) = get(&admin, "/clusters?format=text").await;
    let name = "reviews.bookinfo.svc.cluster.local:9080";
    for line in [
        format!("{name}::discovery::resolved"),
        format!("{name}::127.0.0.1:9080::health_flags::healthy"),
        format!("{name}::127.0.0.2:9080::rq_active::0"),
        format!("{name}::127.0.0.2:9080::weight::1"),
    ] {
        assert!(body.lines().any(|l| l == line), "{line} not in\n{body}");
    }
}

#[tokio::test]
async fn config_dump_summarizes_the_config() {
    let admin = AdminServer::new().config(config());
    let (status, body, content_type) = get(&admin, "/config_dump").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let dump: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dump["workload"]["service"], "productpage");
    assert_eq!(dump["workload"]["namespace"], "bookinfo");
    let dest = &dump["destinations"][0];
    assert_eq!(dest["host"], "reviews");
    assert_eq!(dest["policy"]["loadBalancer"], "ROUND_ROBIN");
    assert_eq!(
        dest["policy"]["outlierDetection"]["consecutive5xxErrors"],
        3
    );
    assert_eq!(dest["policy"]["tls"]["mode"], "AUTO");
    assert_eq!(dump["defaults"]["timeout"], "15s");
    assert_eq!(dump["defaults"]["retries"]["attempts"], 2);
    assert_eq!(dump["security"]["defaultMtls"], "PERMISSIVE");
    assert_eq!(dump["security"]["outbound"]["mode"], "ALLOW_ANY");
    assert_eq!(dump["server"]["shutdown"]["drain"], "5s");
}

#[tokio::test]
async fn prometheus_renders_the_handle_and_unknown_routes_are_404() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("mesh_retries_total", "destination" => "reviews").increment(3);
    });
    let admin = AdminServer::new().metrics(handle);
    let (status, body, content_type) = get(&admin, "/stats/prometheus").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some(PROMETHEUS_CONTENT_TYPE));
    assert!(
        body.lines()
            .any(|l| l == "mesh_retries_total{destination=\"reviews\"} 3"),
        "{body}"
    );

    let bare = AdminServer::new();
    assert_eq!(
        get(&bare, "/stats/prometheus").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&bare, "/").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&bare, "/quitquitquit").await.0, StatusCode::NOT_FOUND);
    let post = Request::post("/healthz/ready").body(()).unwrap();
    let res = bare.clone().oneshot(post).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    // No client: nothing to list, and ready.
    let (_, body, _) = get(&bare, "/clusters").await;
    assert_eq!(body.trim(), "{\n  \"clusters\": []\n}");
    assert_eq!(get(&bare, "/healthz/ready").await.0, StatusCode::OK);
}

#[tokio::test]
async fn serves_over_loopback_and_stops_on_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(AdminServer::new().serve(listener, async {
        let _ = stopped.await;
    }));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/healthz/ready")
        .header(header::HOST, "admin")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"LIVE\n");
    drop(sender);
    stop.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn prometheus_appends_the_endpoints_of_each_destination_by_state() {
    let discovery = Arc::new(Manual::default());
    let client = MeshClient::builder()
        .config(config())
        .discovery(discovery.clone())
        .build()
        .unwrap();
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("mesh_retries_total", "destination" => "reviews").increment(1);
    });
    let admin = AdminServer::new().metrics(handle).client(client.clone());
    // No destination yet: the recorder's text alone.
    let (_, body, _) = get(&admin, "/stats/prometheus").await;
    assert!(!body.contains(ENDPOINTS_METRIC), "{body}");

    drop(
        client.request(
            Request::get("http://reviews:9080/")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
        ),
    );
    let addrs: Vec<std::net::SocketAddr> = vec![
        "127.0.0.1:9080".parse().unwrap(),
        "127.0.0.2:9080".parse().unwrap(),
    ];
    let tx = discovery.0.lock().unwrap().pop().unwrap();
    tx.send_replace(Resolution::Resolved(EndpointSet::from_addrs(addrs)));
    tokio::task::yield_now().await;

    let (status, body, content_type) = get(&admin, "/stats/prometheus").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some(PROMETHEUS_CONTENT_TYPE));
    let destination = "reviews.bookinfo.svc.cluster.local:9080";
    for line in [
        "# TYPE mesh_endpoints gauge".to_owned(),
        format!("mesh_endpoints{{destination=\"{destination}\",state=\"healthy\"}} 2"),
        format!("mesh_endpoints{{destination=\"{destination}\",state=\"ejected\"}} 0"),
        format!("mesh_endpoints{{destination=\"{destination}\",state=\"backoff\"}} 0"),
        "mesh_retries_total{destination=\"reviews\"} 1".to_owned(),
    ] {
        assert!(body.lines().any(|l| l == line), "{line} not in\n{body}");
    }
    assert!(body.contains("# HELP mesh_endpoints "), "{body}");

    // Exposition format: comments, then `name{labels} value` samples whose value parses;
    // the family's HELP and TYPE once each, before its samples.
    let mut seen_type = 0;
    for line in body.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "{line}"
            );
            if comment == "TYPE mesh_endpoints gauge" {
                seen_type += 1;
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        if series.starts_with(ENDPOINTS_METRIC) {
            assert_eq!(seen_type, 1, "TYPE before the samples: {line}");
            let labels = series
                .strip_prefix("mesh_endpoints{")
                .and_then(|l| l.strip_suffix('}'))
                .expect("labels");
            assert!(labels.starts_with("destination=\""), "{line}");
        }
    }
    assert_eq!(seen_type, 1);
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    let mut out = "x 1".to_owned();
    endpoint_gauges(&mut out, &[]);
    assert_eq!(out, "x 1", "nothing appended without destinations");
}

#[tokio::test]
async fn readiness_waits_for_the_certificates_a_config_names() {
    let mut with_certs = config();
    with_certs.security.certificates = Some(mesh_core::config::CertificateFiles::in_dir(
        "/etc/certs",
        mesh_core::config::CertificateLayout::Istio,
    ));
    let admin = AdminServer::new().config(with_certs);
    let (status, body, _) = get(&admin, "/healthz/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "the workload certificates (security.certificates) are not loaded\n"
    );

    let ca = crate::tls::DevCa::new("cluster.local").unwrap();
    let id = mesh_core::identity::SpiffeId::workload("cluster.local", "bookinfo", "productpage")
        .unwrap();
    let admin = admin.identity(ca.identity(&id).unwrap());
    assert_eq!(get(&admin, "/healthz/ready").await.0, StatusCode::OK);

    // Without certificates in the config, no identity is needed.
    let admin = AdminServer::new().config(config());
    assert_eq!(get(&admin, "/healthz/ready").await.0, StatusCode::OK);
}
