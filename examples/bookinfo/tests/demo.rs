//! The demo end to end on loopback: the gateway's routes, mutual TLS from the gateway to
//! productpage as the metrics report it, TLS for browsers, and a clean shutdown.
//!
//! Real time: the demo's DNS lookups and TLS handshakes run on real sockets, and paused
//! time would fire their timeouts while they wait. Nothing sleeps.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bookinfo::demo::{Demo, DemoOptions, traffic};
use bookinfo::gateway::GatewayTls;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mesh::MeshClient;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use support::outside_client;

async fn get(client: &MeshClient, url: &str) -> (u16, String) {
    let req = http::Request::get(url).body(Empty::<Bytes>::new()).unwrap();
    let Ok(res) = client.request(req).await;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn options(net: u8) -> DemoOptions {
    let mut options = DemoOptions::default();
    options.gateway_addr = "127.0.0.1:0".parse().unwrap();
    options.network = Ipv4Addr::new(127, 0, net, 0);
    options.admin_port = 0;
    options
}

/// The `istio_requests_total` lines the destination (productpage) reported for calls from
/// the gateway.
fn gateway_to_productpage(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .filter(|l| l.contains("reporter=\"destination\""))
        .filter(|l| l.contains("source_workload=\"istio-ingressgateway"))
        .filter(|l| l.contains("destination_service_name=\"productpage\""))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_routes_bookinfo_paths_to_productpage_over_mutual_tls() {
    let demo = Demo::start(options(130)).await.expect("demo starts");
    let urls = demo.urls().clone();
    assert!(urls.productpage.starts_with("http://127.0.0.1:"));
    assert_eq!(urls.admins.len(), 7);
    let gateway = urls.gateway;
    let client = outside_client();

    // No route: the gateway answers 404 itself, as Envoy does.
    let (status, _) = get(&client, &format!("http://{gateway}/nope")).await;
    assert_eq!(status, 404);

    let (status, body) = get(&client, &format!("http://{gateway}/productpage")).await;
    // Through the gateway, productpage over mutual TLS, details and reviews behind it.
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("The Comedy of Errors"), "{body}");
    assert!(!body.contains("currently unavailable"), "{body}");

    // Every admin server shows the process's metrics; the gateway's.
    let admin = urls
        .admin("istio-ingressgateway-v1")
        .expect("gateway admin");
    let metrics_url = format!("http://{admin}/stats/prometheus");
    let mut lines = Vec::new();
    // The server records its answer as the body ends, which may be just after the client
    // has read it: a few reads, no sleeps.
    for _ in 0..50 {
        let (status, metrics) = get(&client, &metrics_url).await;
        assert_eq!(status, 200);
        lines = gateway_to_productpage(&metrics)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !lines.is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(!lines.is_empty(), "no gateway -> productpage series");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("connection_security_policy=\"mutual_tls\"")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("source_principal=\"spiffe://cluster.local/ns/default/sa/istio-ingressgateway-service-account\"")),
        "{lines:#?}"
    );

    // A pod's own admin server answers too, on the pod's address.
    let productpage_admin = urls.admin("productpage-v1").expect("productpage admin");
    assert_eq!(productpage_admin.ip(), Ipv4Addr::new(127, 0, 130, 1));

    // The traffic loop, bounded.
    let report = traffic::drive(gateway, 50, Some(4), false, std::future::pending()).await;
    assert_eq!(report.total(), 4);
    assert!(report.statuses.keys().all(|s| *s == 200), "{report:?}");

    demo.shutdown().await;
    // Everything is closed: the gateway refuses connections.
    assert!(tokio::net::TcpStream::connect(gateway).await.is_err());
}

/// A GET over TLS, trusting `ca_pem`, with hyper's HTTP/1.1 client.
async fn get_tls(addr: SocketAddr, ca_pem: &str, path: &str) -> u16 {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let req = http::Request::get(path)
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let _ = res.into_body().collect().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_terminates_tls_for_browsers() {
    let tls = GatewayTls::self_issued("localhost").unwrap();
    let ca = tls.ca_pem().unwrap().to_owned();
    let mut options = options(131);
    options.gateway_tls = Some(tls);
    let demo = Demo::start(options).await.expect("demo starts");
    assert!(demo.urls().productpage.starts_with("https://"));
    let gateway = demo.urls().gateway;
    assert_eq!(get_tls(gateway, &ca, "/nope").await, 404);
    assert_eq!(get_tls(gateway, &ca, "/productpage").await, 200);
    demo.shutdown().await;
}

#[tokio::test]
async fn a_config_that_is_not_yaml_is_refused() {
    let mut options = options(132);
    options.config = vec!["istio.json".into()];
    let error = Demo::start(options).await.unwrap_err();
    assert!(error.to_string().contains("YAML"), "{error}");
}

/// Bookinfo's own task files, from the workspace's fixtures.
fn istio_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/istio")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_documents_apply_to_every_workload() {
    let mut options = options(133);
    options.config = vec![
        istio_fixture("destination-rule-all.yaml"),
        istio_fixture("virtual-service-all-v1.yaml"),
    ];
    let demo = Demo::start(options).await.expect("demo starts");
    let client = outside_client();
    let gateway = demo.urls().gateway;
    let (status, body) = get(&client, &format!("http://{gateway}/productpage")).await;
    assert_eq!(status, 200, "{body}");
    // All v1: reviews v1 shows no stars.
    assert!(
        body.contains("The Comedy of Errors") && !body.contains('★'),
        "{body}"
    );
    // The gateway's call went to productpage's subset v1, found at productpage-v1.
    let admin = demo.urls().admin("istio-ingressgateway-v1").unwrap();
    let (status, clusters) = get(&client, &format!("http://{admin}/clusters")).await;
    assert_eq!(status, 200);
    assert!(
        clusters.contains("productpage.default.svc.cluster.local:9080 subset v1"),
        "{clusters}"
    );
    assert!(clusters.contains("127.0.133.1:9080"), "{clusters}");
    demo.shutdown().await;
}
