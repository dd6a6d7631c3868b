//! Shared pieces of the client tests: loopback addresses, a config pointed at the test DNS
//! server (from code, or as YAML with Istio documents), services with versioned pods, and a
//! bounded closed-loop load that records every answer.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Empty};
use mesh::core::MeshConfig;
use mesh::core::config::{Format, MeshConfigBuilder};
use mesh::tower::testing::{Backend, Behavior, DnsServer};
use mesh::tower::{LocalReply, MeshClient};

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

    /// A client configured by a YAML file of `documents` (Istio's VirtualService and
    /// DestinationRule) after a mesh document pointing at this service's DNS server.
    pub(crate) fn yaml_client(&self, documents: &[&str]) -> MeshClient {
        yaml_client(&self.dns, documents)
    }

    /// `http://<name>:<port><path>`.
    pub(crate) fn uri(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.name, self.port)
    }

    /// `<name>:<port>`, as the client keys the destination's endpoints.
    pub(crate) fn authority(&self) -> String {
        format!("{}:{}", self.name, self.port)
    }
}

/// The versions (subsets) of Bookinfo's `reviews`, two pods each.
pub(crate) const REVIEWS: &[(&str, u8)] = &[("v1", 2), ("v2", 2), ("v3", 2)];

/// A service whose pods come in versions, all on one port and on `127.0.<net>.*`, named in a
/// DNS server of its own (TTL 30 s): `<name>.default.svc.cluster.local` lists every pod, and
/// `<name>-<version>.default.svc.cluster.local` the pods of one version, which is where
/// mesh sends a DestinationRule's subset of that name. Pods are named
/// `<name>-<version>-<index>` and answer with their name.
pub(crate) struct Versions {
    pub(crate) dns: DnsServer,
    pub(crate) port: u16,
    /// The pods of each version, in the order given.
    pub(crate) versions: Vec<(String, Vec<Backend>)>,
    name: String,
}

impl Versions {
    /// Starts `count` pods of each `(version, count)`.
    pub(crate) async fn start(name: &str, net: u8, versions: &[(&str, u8)]) -> Versions {
        let dns = DnsServer::start().expect("DNS server");
        let total: u8 = versions.iter().map(|(_, count)| count).sum();
        let all = ips(net, total);
        let mut groups = Vec::new();
        let mut next = 0;
        for (version, count) in versions {
            let end = next + usize::from(*count);
            groups.push((format!("{name}-{version}"), &all[next..end]));
            next = end;
        }
        let named: Vec<(&str, &[IpAddr])> = groups
            .iter()
            .map(|(prefix, ips)| (prefix.as_str(), *ips))
            .collect();
        let (port, pods) = Backend::start_groups(&named).await.expect("pods");
        dns.set_hosts(&format!("{name}.default.svc"), &all, 30)
            .expect("DNS record");
        for (prefix, ips) in &groups {
            dns.set_hosts(&format!("{prefix}.default.svc"), ips, 30)
                .expect("DNS record");
        }
        Versions {
            dns,
            port,
            versions: versions
                .iter()
                .map(|(version, _)| (*version).to_owned())
                .zip(pods)
                .collect(),
            name: name.to_owned(),
        }
    }

    /// The pods of `version`.
    pub(crate) fn pods(&self, version: &str) -> &[Backend] {
        self.versions
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, pods)| pods.as_slice())
            .unwrap_or_else(|| panic!("no version {version}"))
    }

    /// Requests the pods of `version` have received.
    pub(crate) fn hits(&self, version: &str) -> usize {
        self.pods(version).iter().map(Backend::hits).sum()
    }

    /// Requests each version's pods have received, by version.
    pub(crate) fn hits_by_version(&self) -> BTreeMap<String, usize> {
        self.versions
            .iter()
            .map(|(version, pods)| (version.clone(), pods.iter().map(Backend::hits).sum()))
            .collect()
    }

    /// Requests the pods of `version` have received, by the host they were sent to.
    pub(crate) fn hosts(&self, version: &str) -> BTreeMap<String, usize> {
        let mut hosts = BTreeMap::new();
        for pod in self.pods(version) {
            for (host, count) in pod.hosts() {
                *hosts.entry(host).or_default() += count;
            }
        }
        hosts
    }

    /// A client configured by a YAML file of `documents` after a mesh document pointing at
    /// this service's DNS server.
    pub(crate) fn client(&self, documents: &[&str]) -> MeshClient {
        yaml_client(&self.dns, documents)
    }

    /// `http://<name>:<port><path>`.
    pub(crate) fn uri(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.name, self.port)
    }

    /// `<name>:<port>`.
    pub(crate) fn authority(&self) -> String {
        format!("{}:{}", self.name, self.port)
    }

    /// A report's successful answers by version (`v1`), from the answering pods' names.
    pub(crate) fn by_version(&self, report: &Report) -> BTreeMap<String, usize> {
        let mut versions = BTreeMap::new();
        for (pod, count) in &report.by_backend {
            let version = self
                .version_of(pod)
                .unwrap_or_else(|| panic!("{pod} is no pod of {}", self.name));
            *versions.entry(version.to_owned()).or_default() += count;
        }
        versions
    }

    /// The version of the pod named `pod`, if it is one of this service's.
    pub(crate) fn version_of(&self, pod: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, pods)| pods.iter().any(|p| p.name() == pod))
            .map(|(version, _)| version.as_str())
    }
}

/// The text of the Istio fixture `tests/fixtures/istio/<name>` (Bookinfo's task files).
pub(crate) fn istio(name: &str) -> String {
    let path = format!("{}/tests/fixtures/istio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A mesh config file for workload `tester` in `default`, resolving through `dns`: mesh's
/// own document first, then `documents` (each may hold several documents of its own), as a
/// user would write one file of mesh settings and Istio resources.
pub(crate) fn yaml_config(dns: &DnsServer, documents: &[&str]) -> String {
    let mut text = format!(
        "workload: {{service: tester, namespace: default}}\n\
         discovery: {{nameservers: [\"{}\"]}}\n",
        dns.addr()
    );
    for document in documents.iter().flat_map(|d| split_documents(d)) {
        text.push_str("---\n");
        text.push_str(document.trim_end());
        text.push('\n');
    }
    text
}

/// The documents of a YAML stream that hold more than comments and blank lines.
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else if let Some(current) = documents.last_mut() {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    documents
}

/// A client configured by [`yaml_config`].
pub(crate) fn yaml_client(dns: &DnsServer, documents: &[&str]) -> MeshClient {
    let text = yaml_config(dns, documents);
    let config = MeshConfig::from_str(&text, Format::Yaml)
        .unwrap_or_else(|e| panic!("invalid config: {e}\n{text}"));
    MeshClient::new(config).expect("client")
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
    load_with(client, uri, &[], workers, per_worker, done).await
}

/// [`load`], every request carrying `headers`.
pub(crate) async fn load_with(
    client: &MeshClient,
    uri: &str,
    headers: &[(&str, &str)],
    workers: usize,
    per_worker: usize,
    done: Arc<AtomicUsize>,
) -> Report {
    let headers = Arc::new(header_map(headers));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (client, uri, done) = (client.clone(), uri.to_owned(), done.clone());
        let headers = headers.clone();
        tasks.spawn(async move {
            let mut report = Report::default();
            for _ in 0..per_worker {
                let Answer { status, body, .. } = fetch_with(&client, &uri, &headers).await;
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
    let Answer { status, body, .. } = fetch_with(client, uri, &HeaderMap::new()).await;
    (status, body)
}

/// A whole answer to one request.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    /// The typed error, when the mesh answered locally instead of an upstream.
    pub(crate) reply: Option<LocalReply>,
}

impl Answer {
    /// A response header's value as text; `""` when absent.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The Envoy response flag of a local reply; `""` for an upstream's answer.
    pub(crate) fn response_flag(&self) -> &'static str {
        self.reply
            .as_ref()
            .map(|r| r.error.response_flag())
            .unwrap_or("")
    }
}

/// One GET carrying `headers`, answered whole.
pub(crate) async fn fetch(client: &MeshClient, uri: &str, headers: &[(&str, &str)]) -> Answer {
    fetch_with(client, uri, &header_map(headers)).await
}

async fn fetch_with(client: &MeshClient, uri: &str, headers: &HeaderMap) -> Answer {
    let mut req = http::Request::get(uri)
        .body(Empty::<Bytes>::new())
        .expect("valid request");
    req.headers_mut().extend(headers.clone());
    let res = client
        .request(req)
        .await
        .expect("the mesh client never fails");
    let status = res.status().as_u16();
    let reply = res.extensions().get::<LocalReply>().cloned();
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_else(|e| format!("body error: {e}"));
    Answer {
        status,
        headers: parts.headers,
        body,
        reply,
    }
}

fn header_map(headers: &[(&str, &str)]) -> HeaderMap {
    headers
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
                HeaderValue::from_str(value).expect("valid header value"),
            )
        })
        .collect()
}

/// Waits (in tokio time) until `done` reaches `count`, checking every millisecond.
pub(crate) async fn wait_for_count(done: &AtomicUsize, count: usize) {
    while done.load(Ordering::Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(crate) use mesh::tower::testing::eventually;
