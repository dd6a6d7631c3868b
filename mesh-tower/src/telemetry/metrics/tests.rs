//! The layers on their own: the exchange, stripping, labels, local-reply flags, caching.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::config::TelemetryConfig;
use mesh_core::telemetry::{PEER_METADATA_HEADER, PeerMetadata};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{Layer, ServiceExt};

use super::*;
use crate::body::ResponseBody;
use crate::server::{Peer, ServerError};
use crate::telemetry::{Telemetry, Upstream};

fn workload(service: &str) -> PeerMetadata {
    PeerMetadata {
        workload: format!("{service}-v1"),
        namespace: "default".into(),
        app: service.into(),
        version: "v1".into(),
        service: service.into(),
        canonical_service: service.into(),
        canonical_revision: "v1".into(),
        cluster: "Kubernetes".into(),
        principal: Some(format!("spiffe://cluster.local/ns/default/sa/{service}")),
    }
}

fn telemetry(service: &str) -> Telemetry {
    Telemetry::new(workload(service), TelemetryConfig::default()).unwrap()
}

/// `istio_requests_total` series as sorted label lists with their counts.
fn requests(snapshotter: &Snapshotter) -> Vec<(Vec<(String, String)>, u64)> {
    let mut out = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (_, key) = key.into_parts();
        if key.name() != ISTIO_REQUESTS_TOTAL {
            continue;
        }
        if let DebugValue::Counter(n) = value {
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            out.push((labels, n));
        }
    }
    out
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no label {name}"))
}

use mesh_core::telemetry::labels::{ISTIO_REQUESTS_TOTAL, LABEL_NAMES};

#[tokio::test(start_paused = true)]
async fn server_reads_strips_and_answers() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let layer = ServerMetricsLayer::new(&telemetry("reviews"), "reviews");
    let app = tower::service_fn(|req: Request<Full<Bytes>>| async move {
        assert!(req.headers().get(PEER_METADATA_HEADER).is_none());
        tokio::time::sleep(Duration::from_millis(7)).await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    });
    let service = layer.layer(app);

    let caller = workload("productpage").encode();
    let mut req = Request::new(Full::new(Bytes::new()));
    req.headers_mut().insert(PEER_METADATA_HEADER, caller);
    let peer: SpiffeIdOpt = Some(
        "spiffe://cluster.local/ns/default/sa/productpage"
            .parse()
            .unwrap(),
    );
    req.extensions_mut().insert(Peer {
        addr: "127.0.0.1:40000".parse().unwrap(),
        local: "127.0.0.1:9080".parse().unwrap(),
        identity: peer,
        tls: true,
    });
    let response = service.clone().oneshot(req).await.unwrap();
    let answered = response.headers().get(PEER_METADATA_HEADER).unwrap();
    assert_eq!(PeerMetadata::decode(answered).unwrap(), workload("reviews"));
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "hello"
    );

    // No header, no answer; a malformed one is unknown; no Peer is policy unknown.
    let response = service
        .clone()
        .oneshot(Request::new(Full::new(Bytes::new())))
        .await
        .unwrap();
    assert!(response.headers().get(PEER_METADATA_HEADER).is_none());
    drop(response);
    let mut req = Request::new(Full::new(Bytes::new()));
    req.headers_mut()
        .insert(PEER_METADATA_HEADER, HeaderValue::from_static("!!"));
    drop(service.clone().oneshot(req).await.unwrap());

    let series = requests(&snapshotter);
    assert_eq!(series.len(), 2, "{series:?}");
    for (labels, _) in &series {
        let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, LABEL_NAMES);
        assert_eq!(label(labels, "reporter"), "destination");
        assert_eq!(label(labels, "destination_workload"), "reviews-v1");
        assert_eq!(
            label(labels, "destination_service"),
            "reviews.default.svc.cluster.local"
        );
    }
    let mtls = series
        .iter()
        .find(|(l, _)| label(l, "connection_security_policy") == "mutual_tls")
        .unwrap();
    assert_eq!(mtls.1, 1);
    assert_eq!(label(&mtls.0, "source_workload"), "productpage-v1");
    assert_eq!(
        label(&mtls.0, "source_principal"),
        "spiffe://cluster.local/ns/default/sa/productpage"
    );
    assert_eq!(
        label(&mtls.0, "destination_principal"),
        "spiffe://cluster.local/ns/default/sa/reviews"
    );
    let unknown = series
        .iter()
        .find(|(l, _)| label(l, "connection_security_policy") == "unknown")
        .unwrap();
    // The plain request and the malformed one share the unknown labels.
    assert_eq!(unknown.1, 2);
    assert_eq!(label(&unknown.0, "source_workload"), "unknown");
}

type SpiffeIdOpt = Option<mesh_core::identity::SpiffeId>;

#[tokio::test(start_paused = true)]
async fn server_local_reply_flags() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let layer = ServerMetricsLayer::new(&telemetry("reviews"), "reviews");
    let app = tower::service_fn(|_req: Request<Full<Bytes>>| async move {
        Ok::<_, Infallible>(crate::server::local_reply::<Full<Bytes>>(
            ServerError::DeadlineExceeded,
            false,
        ))
    });
    let response = layer
        .layer(app)
        .oneshot(Request::new(Full::new(Bytes::new())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    drop(response);
    let series = requests(&snapshotter);
    assert_eq!(series.len(), 1);
    assert_eq!(label(&series[0].0, "response_flags"), "UT");
    assert_eq!(label(&series[0].0, "response_code"), "504");
}

#[tokio::test(start_paused = true)]
async fn client_sends_reads_and_strips() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let upstream = Upstream {
        host: Arc::from("reviews.default.svc.cluster.local"),
        port: 9080,
        subset: None,
    };
    let layer = ClientMetricsLayer::new(&telemetry("productpage"), &upstream);
    let inner = tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let sent = req.headers().get(PEER_METADATA_HEADER).unwrap();
        assert_eq!(PeerMetadata::decode(sent).unwrap(), workload("productpage"));
        let mut response = Response::new(ResponseBody::local("ok"));
        response
            .headers_mut()
            .insert(PEER_METADATA_HEADER, workload("reviews").encode());
        Ok::<_, Infallible>(response)
    });
    let service = layer.layer(inner);
    for _ in 0..3 {
        let mut req = Request::new(Full::new(Bytes::new()));
        // The application's own header is replaced.
        req.headers_mut()
            .insert(PEER_METADATA_HEADER, HeaderValue::from_static("forged"));
        let response = service.clone().oneshot(req).await.unwrap();
        assert!(response.headers().get(PEER_METADATA_HEADER).is_none());
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "ok"
        );
    }
    let series = requests(&snapshotter);
    assert_eq!(series.len(), 1);
    let (labels, count) = &series[0];
    assert_eq!(*count, 3);
    assert_eq!(label(labels, "reporter"), "source");
    assert_eq!(label(labels, "source_workload"), "productpage-v1");
    assert_eq!(label(labels, "source_principal"), "unknown");
    assert_eq!(label(labels, "destination_workload"), "reviews-v1");
    assert_eq!(label(labels, "destination_service_name"), "reviews");
    assert_eq!(label(labels, "response_flags"), "-");
    assert_eq!(label(labels, "connection_security_policy"), "unknown");
    let cached = service
        .state
        .as_ref()
        .unwrap()
        .series
        .as_ref()
        .unwrap()
        .cached();
    assert_eq!(cached, 1);
}

#[tokio::test(start_paused = true)]
async fn client_local_reply_and_disabled() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let upstream = Upstream::unknown();
    let inner = tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let timeout = crate::error::MeshError::Timeout {
            destination: "reviews:9080".into(),
            timeout: Duration::from_secs(1),
        };
        let mut response = crate::local_reply::local_reply(timeout);
        if let Some(v) = req.headers().get(PEER_METADATA_HEADER) {
            response.headers_mut().insert("x-saw-peer", v.clone());
        }
        Ok::<_, Infallible>(response)
    });
    let on = ClientMetricsLayer::new(&telemetry("productpage"), &upstream).layer(inner);
    drop(
        on.oneshot(Request::new(Full::new(Bytes::new())))
            .await
            .unwrap(),
    );
    let series = requests(&snapshotter);
    assert_eq!(label(&series[0].0, "response_flags"), "UT");
    assert_eq!(label(&series[0].0, "response_code"), "504");

    let off = ClientMetricsLayer::new(&Telemetry::disabled(), &upstream).layer(inner);
    let response = off
        .oneshot(Request::new(Full::new(Bytes::new())))
        .await
        .unwrap();
    assert!(response.headers().get("x-saw-peer").is_none());
    drop(response);
    // A snapshot resets counters: nothing counted since.
    assert!(requests(&snapshotter).iter().all(|(_, n)| *n == 0));
}

#[test]
fn prometheus_buckets() {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::histogram!("istio_request_bytes").record(3.0);
    });
    let text = handle.render();
    assert!(
        text.contains("istio_request_bytes_bucket{le=\"3600000\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("istio_request_bytes_bucket{le=\"0.5\"} 0"),
        "{text}"
    );
}

/// Combinations that share a front slot (peer headers of one length, the same small
/// values) are each counted in their own series, through the map.
#[test]
fn combinations_sharing_a_front_slot() {
    use super::series::{Measures, Series, Side, Vary};
    use mesh_core::telemetry::labels::{RequestProtocol, SecurityPolicy};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let peers = [workload("reviews").encode(), workload("ratings").encode()];
    assert_eq!(peers[0].len(), peers[1].len());
    let vary = |peer| Vary {
        peer,
        principal: None,
        policy: SecurityPolicy::Unknown,
        protocol: RequestProtocol::Http,
        code: 200,
        grpc: None,
        flags: "",
    };
    let measures = Measures {
        duration_ms: 1.0,
        request_bytes: 10,
        response_bytes: 20,
    };
    metrics::with_local_recorder(&recorder, || {
        let base = super::labels::client_base(
            &workload("productpage"),
            "reviews.default.svc.cluster.local",
            false,
        );
        let series = Series::new(base, Side::Client { mutual_tls: false });
        for _ in 0..3 {
            for peer in &peers {
                series.record(&vary(Some(peer)), measures);
            }
            series.record(&vary(None), measures);
        }
        assert_eq!(series.cached(), 3);
    });
    let mut counts: Vec<(String, u64)> = requests(&snapshotter)
        .into_iter()
        .map(|(labels, n)| (label(&labels, "destination_workload").to_owned(), n))
        .collect();
    counts.sort();
    let expected = [("ratings-v1", 3), ("reviews-v1", 3), ("unknown", 3)];
    assert_eq!(counts, expected.map(|(w, n)| (w.to_owned(), n)));
}
