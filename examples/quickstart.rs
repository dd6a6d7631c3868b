//! The quick start: a DNS server serving `cluster.local`, three `reviews` pods on loopback,
//! and a mesh client that sends a bounded burst of `GET http://reviews:<port>/reviews/0`,
//! killing one pod halfway, then prints how the requests spread and that none failed.
//!
//! Run it with `cargo run --example quickstart`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh::prelude::*;
use mesh::tower::testing::{Backend, Behavior, DnsServer};

const REQUESTS: usize = 3_000;
const CALLERS: usize = 16;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A DNS server for cluster.local, as kube-dns is to a pod.
    let dns = DnsServer::start()?;

    // Three pods of `reviews`, each on its own loopback address, all on one port.
    let pods: Vec<IpAddr> = (1..=3)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 100, i)))
        .collect();
    let (port, backends) = Backend::start_many("reviews", &pods).await?;
    for backend in &backends {
        backend.set_behavior(Behavior::Delay(Duration::from_millis(1)));
    }
    dns.set_hosts("reviews.default.svc", &pods, 5)?;
    println!(
        "DNS server on {}; reviews pods on {pods:?}, port {port}",
        dns.addr()
    );

    // The mesh client: a workload in namespace `default`, resolving through that server.
    let config = MeshConfig::builder()
        .service("quickstart")
        .namespace("default")
        .discovery(dns.config())
        .build()?;
    let client = MeshClient::new(config)?;
    let uri = format!("http://reviews:{port}/reviews/0");

    let sent = Arc::new(AtomicUsize::new(0));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let (client, uri, sent) = (client.clone(), uri.clone(), sent.clone());
        callers.spawn(async move {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            while sent.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                let req = http::Request::get(&uri).body(Empty::<Bytes>::new())?;
                let res = client.request(req).await?;
                let status = res.status();
                let body = res.into_body().collect().await?.to_bytes();
                let key = if status.is_success() {
                    String::from_utf8_lossy(&body).into_owned()
                } else {
                    format!("failed ({status})")
                };
                *seen.entry(key).or_default() += 1;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(seen)
        });
    }

    // Kill one pod halfway through the burst.
    while sent.load(Ordering::Relaxed) < REQUESTS / 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    backends[1].kill();
    println!(
        "killed {} after {} requests",
        backends[1].name(),
        REQUESTS / 2
    );

    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(caller) = callers.join_next().await {
        for (k, v) in caller?.map_err(|e| e.to_string())? {
            *spread.entry(k).or_default() += v;
        }
    }
    let failed: usize = spread
        .iter()
        .filter(|(k, _)| k.starts_with("failed"))
        .map(|(_, v)| v)
        .sum();
    println!("\n{REQUESTS} requests to {uri}:");
    for (pod, count) in &spread {
        println!(
            "  {pod:<12} {count:>6}  {:>5.1}%",
            100.0 * *count as f64 / REQUESTS as f64
        );
    }
    println!("\nfailed requests: {failed}");
    if failed > 0 {
        return Err(format!("{failed} requests failed").into());
    }
    Ok(())
}
