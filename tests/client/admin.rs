//! The admin server over HTTP: `/clusters` shows a client's endpoints and their health,
//! `/healthz/ready`, `/stats/prometheus` and `/config_dump` answer as documented.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mesh::tower::admin::{AdminServer, PrometheusBuilder};
use mesh::tower::testing::Behavior;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Service, load};

const RULE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
"#;

/// One GET to the admin server: status and body.
async fn get(admin: SocketAddr, path: &str) -> (StatusCode, String) {
    let stream = TcpStream::connect(admin).await.expect("connect to admin");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(header::HOST, "admin")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.expect("admin answer");
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The endpoints of `/clusters` for the one cluster, by address: (health, inFlight).
async fn endpoints(admin: SocketAddr) -> Vec<(String, String, u64)> {
    let (status, body) = get(admin, "/clusters").await;
    assert_eq!(status, StatusCode::OK);
    let json: Value = serde_json::from_str(&body).expect("JSON");
    let clusters = json["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1, "{body}");
    assert_eq!(clusters[0]["discovery"], "resolved", "{body}");
    let mut endpoints: Vec<(String, String, u64)> = clusters[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_owned(),
                e["health"].as_str().unwrap().to_owned(),
                e["inFlight"].as_u64().unwrap(),
            )
        })
        .collect();
    endpoints.sort();
    endpoints
}

#[tokio::test(start_paused = true)]
async fn admin_shows_clusters_readiness_metrics_and_config() {
    // Metrics of this (single-threaded) test's tasks go to a recorder of its own.
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let reviews = Service::start("reviews", 97, 2).await;
    let client = reviews.yaml_client(&[RULE]);
    let listener = TcpListener::bind("127.0.97.100:0").await.unwrap();
    let admin_addr = listener.local_addr().unwrap();
    let admin = AdminServer::new().client(client.clone()).metrics(handle);
    tokio::spawn(admin.serve(listener, std::future::pending::<()>()));

    // No destination yet: ready, nothing listed.
    assert_eq!(
        get(admin_addr, "/healthz/ready").await,
        (StatusCode::OK, "LIVE\n".to_owned())
    );

    let uri = reviews.uri("/reviews/0");
    let report = load(&client, &uri, 2, 20, Arc::default()).await;
    assert_eq!(
        report.statuses.get(&200),
        Some(&40),
        "{:?}",
        report.statuses
    );
    let pods: Vec<String> = reviews
        .ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, reviews.port).to_string())
        .collect();
    assert_eq!(
        endpoints(admin_addr).await,
        vec![
            (pods[0].clone(), "healthy".to_owned(), 0),
            (pods[1].clone(), "healthy".to_owned(), 0),
        ]
    );
    assert_eq!(get(admin_addr, "/healthz/ready").await.0, StatusCode::OK);

    // The second pod fails: retried elsewhere, then ejected after 3 errors in a row.
    reviews.pods[1].set_behavior(Behavior::Status(503));
    let report = load(&client, &uri, 1, 20, Arc::default()).await;
    assert_eq!(
        report.statuses.get(&200),
        Some(&20),
        "{:?}",
        report.statuses
    );
    assert_eq!(
        endpoints(admin_addr).await,
        vec![
            (pods[0].clone(), "healthy".to_owned(), 0),
            (pods[1].clone(), "ejected".to_owned(), 0),
        ]
    );
    let (_, text) = get(admin_addr, "/clusters?format=text").await;
    let name = format!("reviews.default.svc.cluster.local:{}", reviews.port);
    let flag = format!("{name}::{}::health_flags::/failed_outlier_check", pods[1]);
    assert!(text.lines().any(|l| l == flag), "{flag} not in\n{text}");

    // The retries and the ejection are counted in the exposition.
    let (status, exposition) = get(admin_addr, "/stats/prometheus").await;
    assert_eq!(status, StatusCode::OK);
    let value = |metric: &str| -> f64 {
        exposition
            .lines()
            .filter(|l| l.starts_with(metric))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(value("mesh_retries_total") >= 3.0, "{exposition}");
    assert_eq!(value("mesh_outlier_ejections_total"), 1.0, "{exposition}");

    let (status, dump) = get(admin_addr, "/config_dump").await;
    assert_eq!(status, StatusCode::OK);
    let dump: Value = serde_json::from_str(&dump).expect("config dump is JSON");
    assert_eq!(dump["workload"]["service"], "tester");
    assert_eq!(dump["destinations"][0]["host"], "reviews");
    assert_eq!(
        dump["destinations"][0]["policy"]["outlierDetection"]["consecutive5xxErrors"],
        3
    );

    assert_eq!(get(admin_addr, "/nope").await.0, StatusCode::NOT_FOUND);
}
