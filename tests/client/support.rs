//! Shared pieces of the client tests: loopback addresses, a config pointed at the test DNS
//! server, and a bounded closed-loop load that records every answer.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh::core::MeshConfig;
use mesh::core::config::MeshConfigBuilder;
use mesh::tower::MeshClient;
use mesh::tower::testing::{Backend, Behavior, DnsServer};

/// `count` loopback addresses `127.0.<net>.1`, `127.0.<net>.2`, ... (one per test, so tests
/// running side by side never share an address).
pub(crate) fn ips(net: u8, count: u8) -> Vec<IpAddr> {
    (1..=count)
        .map(|host| IpAddr::V4(Ipv4Addr::new(127, 0, net, host)))
        .collect()
}

/// A config for a workload in `default`, resolving through `dns`.
pub(crate) fn config(dns: &DnsServer) -> MeshConfigBuilder {
    MeshConfig::builder()
        .service("tester")
        .namespace("default")
        .discovery(dns.config())
}

/// A service of `count` pods on `127.0.<net>.*`, all on one port, named in a DNS server of
/// its own as `<name>.default.svc.cluster.local` (TTL 30 s).
pub(crate) struct Service {
    pub(crate) dns: DnsServer,
    pub(crate) ips: Vec<IpAddr>,
    pub(crate) port: u16,
    pub(crate) pods: Vec<Backend>,
    name: String,
}

impl Service {
    pub(crate) async fn start(name: &str, net: u8, count: u8) -> Service {
        let dns = DnsServer::start().expect("DNS server");
        let ips = ips(net, count);
        let (port, pods) = Backend::start_many(name, &ips).await.expect("pods");
        dns.set_hosts(&format!("{name}.default.svc"), &ips, 30)
            .expect("DNS record");
        Service {
            dns,
            ips,
            port,
            pods,
            name: name.to_owned(),
        }
    }

    /// Every pod answers the same way.
    pub(crate) fn behave(&self, behavior: Behavior) {
        for pod in &self.pods {
            pod.set_behavior(behavior.clone());
        }
    }

    /// A client with the test config, adjusted by `configure`.
    pub(crate) fn client(
        &self,
        configure: impl FnOnce(MeshConfigBuilder) -> MeshConfigBuilder,
    ) -> MeshClient {
        let config = configure(config(&self.dns)).build().expect("valid config");
        MeshClient::new(config).expect("client")
    }

    /// `http://<name>:<port><path>`.
    pub(crate) fn uri(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.name, self.port)
    }
}

/// What a load run saw.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Answers by status code.
    pub(crate) statuses: BTreeMap<u16, usize>,
    /// Successful answers by backend (the body names the backend).
    pub(crate) by_backend: BTreeMap<String, usize>,
    /// Every answer that was not a 200, with its body.
    pub(crate) failures: Vec<(u16, String)>,
}

impl Report {
    /// Answers received.
    pub(crate) fn total(&self) -> usize {
        self.statuses.values().sum()
    }

    fn merge(&mut self, other: Report) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.by_backend {
            *self.by_backend.entry(k).or_default() += v;
        }
        self.failures.extend(other.failures);
    }
}

/// Sends `workers x per_worker` GETs to `uri`, `workers` at a time, counting completions in
/// `done` as they happen.
pub(crate) async fn load(
    client: &MeshClient,
    uri: &str,
    workers: usize,
    per_worker: usize,
    done: Arc<AtomicUsize>,
) -> Report {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (client, uri, done) = (client.clone(), uri.to_owned(), done.clone());
        tasks.spawn(async move {
            let mut report = Report::default();
            for _ in 0..per_worker {
                let (status, body) = get(&client, &uri).await;
                *report.statuses.entry(status).or_default() += 1;
                if status == 200 {
                    *report.by_backend.entry(body).or_default() += 1;
                } else {
                    report.failures.push((status, body));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            report
        });
    }
    let mut report = Report::default();
    while let Some(worker) = tasks.join_next().await {
        report.merge(worker.expect("load worker panicked"));
    }
    report
}

/// One GET; the status and the body as text.
pub(crate) async fn get(client: &MeshClient, uri: &str) -> (u16, String) {
    let req = http::Request::get(uri)
        .body(Empty::<Bytes>::new())
        .expect("valid request");
    let res = client
        .request(req)
        .await
        .expect("the mesh client never fails");
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_else(|e| format!("body error: {e}"));
    (status, body)
}

/// Waits (in tokio time) until `done` reaches `count`, checking every millisecond.
pub(crate) async fn wait_for_count(done: &AtomicUsize, count: usize) {
    while done.load(Ordering::Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits (in tokio time, at most `limit`) until `check` holds.
pub(crate) async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
