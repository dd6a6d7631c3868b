//! Discovery through the test DNS server: name forms, record changes, a stopped server.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use mesh::tower::MeshClient;
use mesh::tower::testing::{Backend, Behavior, DnsServer};

use crate::support::{Service, config, eventually, get, ips, load, wait_for_count};

#[tokio::test(start_paused = true)]
async fn dns_change_moves_traffic_with_zero_failed_requests() {
    let reviews = Service::start("reviews", 10, 3).await;
    reviews.behave(Behavior::Delay(Duration::from_millis(5)));
    let (dns, ips, pods) = (&reviews.dns, &reviews.ips, &reviews.pods);
    dns.set_hosts("reviews.default.svc", &ips[..2], 1).unwrap();
    let client = reviews.client(|c| c);
    let uri = reviews.uri("/reviews/0");

    let done = Arc::new(AtomicUsize::new(0));
    let running = {
        let (client, uri, done) = (client.clone(), uri.clone(), done.clone());
        tokio::spawn(async move { load(&client, &uri, 8, 400, done).await })
    };
    wait_for_count(&done, 200).await;
    // The service's pods are replaced while requests flow.
    dns.set_hosts("reviews.default.svc", &ips[2..], 1).unwrap();
    let report = running.await.unwrap();

    assert!(report.failures.is_empty(), "failed: {:?}", report.failures);
    assert_eq!(report.total(), 3200);
    assert!(
        report.by_backend.get("reviews-2").copied().unwrap_or(0) > 0,
        "the new pod got no traffic: {:?}",
        report.by_backend
    );
    let authority = format!("reviews:{}", reviews.port);
    let new_pod = vec![pods[2].addr()];
    assert!(
        eventually(Duration::from_secs(5), || client.endpoints(&authority)
            == Some(new_pod.clone()))
        .await
    );

    // Once the change is in, the old pods get nothing more.
    let old: Vec<usize> = pods[..2].iter().map(Backend::hits).collect();
    let after = load(&client, &uri, 4, 50, Arc::default()).await;
    assert_eq!(after.by_backend.get("reviews-2"), Some(&200), "{after:?}");
    assert_eq!(old, pods[..2].iter().map(Backend::hits).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn stopped_dns_server_leaves_traffic_flowing() {
    let details = Service::start("details", 11, 2).await;
    details
        .dns
        .set_hosts("details.default.svc", &details.ips, 1)
        .unwrap();
    let client = details.client(|c| c);
    let uri = format!("http://details.default:{}/details/0", details.port);

    let before = load(&client, &uri, 4, 25, Arc::default()).await;
    assert!(before.failures.is_empty(), "{:?}", before.failures);

    details.dns.stop();
    // Many refresh intervals pass with every lookup failing.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = load(&client, &uri, 4, 25, Arc::default()).await;
    assert!(after.failures.is_empty(), "{:?}", after.failures);
    assert_eq!(
        after.by_backend.len(),
        2,
        "both pods still serve: {after:?}"
    );
    let mut endpoints = client
        .endpoints(&format!("details.default:{}", details.port))
        .unwrap();
    endpoints.sort();
    let kept: Vec<IpAddr> = endpoints.iter().map(|a| a.ip()).collect();
    assert_eq!(kept, details.ips);
}

#[tokio::test(start_paused = true)]
async fn every_name_form_reaches_the_same_destination() {
    let ratings = Service::start("ratings", 12, 1).await;
    let client = ratings.client(|c| c);
    for host in [
        "ratings",
        "ratings.default",
        "ratings.default.svc",
        "ratings.default.svc.cluster.local",
        "RATINGS.Default",
    ] {
        let uri = format!("http://{host}:{}/ratings/0", ratings.port);
        let (status, body) = get(&client, &uri).await;
        assert_eq!((status, body.as_str()), (200, "ratings-0"), "{host}");
    }
    assert_eq!(ratings.pods[0].hits(), 5);
}

#[tokio::test(start_paused = true)]
async fn srv_records_give_ports_and_weights() {
    let dns = DnsServer::start().unwrap();
    let ip = ips(13, 1)[0];
    let a = Backend::start("reviews-a", (ip, 0).into()).await.unwrap();
    let b = Backend::start("reviews-b", (ip, 0).into()).await.unwrap();
    dns.set_hosts("pod-a.reviews.default.svc", &[ip], 5)
        .unwrap();
    dns.set_hosts("pod-b.reviews.default.svc", &[ip], 5)
        .unwrap();
    dns.set_srv(
        "_http._tcp.reviews.default.svc",
        &[
            (0, 30, a.addr().port(), "pod-a.reviews.default.svc"),
            (0, 10, b.addr().port(), "pod-b.reviews.default.svc"),
        ],
        5,
    )
    .unwrap();
    let config = config(&dns)
        .load_balancer(mesh::core::config::LoadBalancer::RoundRobin)
        .build()
        .unwrap();
    let client = MeshClient::new(config).unwrap();
    let report = load(
        &client,
        "http://_http._tcp.reviews/reviews/0",
        2,
        200,
        Arc::default(),
    )
    .await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    // Weighted round robin by SRV weight: 3 to 1.
    assert_eq!(report.by_backend.get("reviews-a"), Some(&300), "{report:?}");
    assert_eq!(report.by_backend.get("reviews-b"), Some(&100), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn aaaa_records_reach_ipv6_pods() {
    let dns = DnsServer::start().unwrap();
    let Ok(backend) = Backend::start("v6", (Ipv6Addr::LOCALHOST, 0).into()).await else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    dns.set_hosts("v6.default.svc", &[IpAddr::V6(Ipv6Addr::LOCALHOST)], 5)
        .unwrap();
    let client = MeshClient::new(config(&dns).build().unwrap()).unwrap();
    let (status, body) = get(&client, &format!("http://v6:{}/", backend.addr().port())).await;
    assert_eq!((status, body.as_str()), (200, "v6"));
}

#[tokio::test(start_paused = true)]
async fn unknown_name_is_a_503_that_names_it() {
    let dns = DnsServer::start().unwrap();
    let client = MeshClient::new(config(&dns).build().unwrap()).unwrap();
    let (status, body) = get(&client, "http://nosuch:9080/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("nosuch.default.svc.cluster.local"), "{body}");
}

#[tokio::test(start_paused = true)]
async fn invalid_host_is_a_400_that_names_it() {
    let dns = DnsServer::start().unwrap();
    let client = MeshClient::new(config(&dns).build().unwrap()).unwrap();
    let (status, body) = get(&client, "http://bad..name:9080/").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad..name"), "{body}");
}
