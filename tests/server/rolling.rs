//! A rolling restart under load: every pod of a service in turn leaves DNS, shuts down
//! gracefully and comes back on the same address, while MeshClient callers keep sending;
//! no request is lost.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mesh::core::MeshConfig;
use mesh::core::config::Protocol;
use mesh::tower::MeshClient;
use mesh::tower::testing::DnsServer;
use tokio::net::TcpListener;

use crate::support::{Running, config, eventually, ip, named};

/// How long each request takes in the handler (tokio time).
const PAUSE: Duration = Duration::from_millis(20);
const CALLERS: usize = 8;
const PER_CALLER: usize = 375;
/// Requests answered before each pod's restart begins.
const RESTART_AT: [usize; 3] = [300, 1100, 1900];

/// Listeners on every address of `ips`, all on one port (as pods of one service are).
async fn bind_one_port(ips: &[IpAddr]) -> (u16, Vec<TcpListener>) {
    let mut last = None;
    'attempt: for _ in 0..50 {
        let mut port = 0;
        let mut listeners = Vec::new();
        for &ip in ips {
            match TcpListener::bind(SocketAddr::new(ip, port)).await {
                Ok(listener) => {
                    port = listener.local_addr().expect("bound").port();
                    listeners.push(listener);
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    last = Some(e);
                    continue 'attempt;
                }
                Err(e) => panic!("bind {ip}: {e}"),
            }
        }
        return (port, listeners);
    }
    panic!("no common free port: {last:?}");
}

/// Answers by status, and 200s by the pod that answered.
#[derive(Debug, Default)]
struct Report {
    statuses: BTreeMap<u16, usize>,
    by_pod: BTreeMap<String, usize>,
    failures: Vec<(u16, String)>,
}

/// `CALLERS` closed-loop callers sending `PER_CALLER` POSTs each, counting answers in `done`.
async fn load(client: MeshClient, uri: String, done: Arc<AtomicUsize>) -> Report {
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let (client, uri, done) = (client.clone(), uri.clone(), done.clone());
        callers.spawn(async move {
            let mut report = Report::default();
            for _ in 0..PER_CALLER {
                // Not idempotent: a POST is retried only when it never reached a server, so
                // a request cut by a pod going away would be lost.
                let req = http::Request::post(&uri)
                    .body(Full::new(Bytes::from_static(b"order")))
                    .expect("valid request");
                let res = client
                    .request(req)
                    .await
                    .expect("the mesh client never fails");
                let status = res.status().as_u16();
                let body = res.into_body().collect().await;
                let body = body
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_else(|e| format!("body error: {e}"));
                *report.statuses.entry(status).or_default() += 1;
                if status == 200 {
                    *report.by_pod.entry(body).or_default() += 1;
                } else {
                    report.failures.push((status, body));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            report
        });
    }
    let mut report = Report::default();
    while let Some(caller) = callers.join_next().await {
        let caller = caller.expect("caller panicked");
        for (k, v) in caller.statuses {
            *report.statuses.entry(k).or_default() += v;
        }
        for (k, v) in caller.by_pod {
            *report.by_pod.entry(k).or_default() += v;
        }
        report.failures.extend(caller.failures);
    }
    report
}

async fn rolling_restart(net: u8, protocol: Protocol) {
    let dns = DnsServer::start().expect("DNS server");
    let ips: Vec<IpAddr> = (1..=3).map(|host| ip(net, host)).collect();
    let (port, listeners) = bind_one_port(&ips).await;
    let server_config = config(Duration::from_millis(1500), Duration::from_secs(10));
    let mut pods: Vec<Option<Running>> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let app = named(&format!("web-{i}"), PAUSE);
            Some(Running::on(listener, server_config.clone(), app))
        })
        .collect();
    dns.set_hosts("web.default.svc", &ips, 1)
        .expect("DNS record");
    let client_config = MeshConfig::builder()
        .service("tester")
        .namespace("default")
        .discovery(dns.config())
        .protocol(protocol)
        .build()
        .expect("valid config");
    let client = MeshClient::new(client_config).expect("client");
    let authority = format!("web:{port}");

    let done = Arc::new(AtomicUsize::new(0));
    let running = tokio::spawn(load(
        client.clone(),
        format!("http://{authority}/"),
        done.clone(),
    ));
    for (i, at) in RESTART_AT.into_iter().enumerate() {
        while done.load(Ordering::Relaxed) < at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The pod leaves the service, then shuts down gracefully while callers still
        // hold connections to it, and comes back as a new process on the same address.
        let others: Vec<IpAddr> = ips.iter().copied().filter(|&a| a != ips[i]).collect();
        dns.set_hosts("web.default.svc", &others, 1)
            .expect("DNS record");
        let mut old = pods[i].take().expect("running");
        old.shutdown();
        old.stopped().await;
        let addr = SocketAddr::new(ips[i], port);
        let app = named(&format!("web-{i}-restarted"), PAUSE);
        pods[i] = Some(Running::start(addr, server_config.clone(), app).await);
        dns.set_hosts("web.default.svc", &ips, 1)
            .expect("DNS record");
    }
    let report = running.await.expect("load panicked");

    assert!(report.failures.is_empty(), "lost: {:?}", report.failures);
    assert_eq!(
        report.statuses,
        BTreeMap::from([(200, CALLERS * PER_CALLER)])
    );
    for restarted in ["web-0-restarted", "web-1-restarted"] {
        assert!(
            report.by_pod.get(restarted).copied().unwrap_or(0) > 0,
            "{restarted} got no traffic: {:?}",
            report.by_pod
        );
    }
    let all: Vec<SocketAddr> = ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect();
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut seen = client.endpoints(&authority).unwrap_or_default();
            seen.sort();
            seen == all
        })
        .await
    );
}

#[tokio::test(start_paused = true)]
async fn rolling_restart_over_http1_loses_no_request() {
    rolling_restart(81, Protocol::Http1).await;
}

#[tokio::test(start_paused = true)]
async fn rolling_restart_over_http2_loses_no_request() {
    rolling_restart(82, Protocol::Http2).await;
}
