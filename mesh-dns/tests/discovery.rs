//! Discovery against a real authoritative server over loopback UDP, under paused time.
//!
//! The server runs in the test's own current-thread runtime: a loopback datagram is ready
//! as soon as it is sent, so paused time never advances past a lookup that can be answered.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mesh_core::config::{DiscoveryConfig, NxDomainPolicy};
use mesh_core::name::{Target, qualify};
use mesh_core::{Endpoint, EndpointSet, Resolution};
use mesh_dns::server::DnsServer;
use mesh_dns::{Discover, DnsDiscovery, DnsError, DnsResolver, EndpointWatch};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::time::Instant;

const FQDN: &str = "reviews.default.svc.cluster.local";
/// Bound on any wait, in paused time, so that a broken test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(3600);

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn addrs(list: &[&str]) -> EndpointSet {
    EndpointSet::from_addrs(list.iter().map(|a| a.parse::<SocketAddr>().unwrap()))
}

fn host(fqdn: &str, port: u16) -> Target {
    Target::Host {
        fqdn: fqdn.to_owned(),
        port,
    }
}

fn resolved(list: &[&str]) -> Resolution {
    Resolution::Resolved(addrs(list))
}

/// Waits (in paused time) until the watch holds a value matching `f`, and returns it.
async fn wait_for(rx: &mut EndpointWatch, f: impl FnMut(&Resolution) -> bool) -> Resolution {
    tokio::time::timeout(PATIENCE, rx.wait_for(f))
        .await
        .expect("value did not come")
        .expect("sender dropped")
        .clone()
}

/// Sums counters across snapshots (a snapshot resets them).
struct Counters {
    snapshotter: Snapshotter,
    totals: HashMap<(String, Vec<(String, String)>), u64>,
}

impl Counters {
    fn new(recorder: &DebuggingRecorder) -> Self {
        Self {
            snapshotter: recorder.snapshotter(),
            totals: HashMap::new(),
        }
    }

    fn update(&mut self) -> HashMap<(String, Vec<(String, String)>), f64> {
        let mut gauges = HashMap::new();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let (_, key) = key.into_parts();
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let id = (key.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => *self.totals.entry(id).or_default() += n,
                DebugValue::Gauge(g) => {
                    gauges.insert(id, g.into_inner());
                }
                DebugValue::Histogram(_) => {}
            }
        }
        gauges
    }

    fn get(&mut self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.update();
        let mut labels: Vec<_> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.totals
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0)
    }

    fn refreshes(&mut self, name: &str) -> u64 {
        self.get(mesh_dns::REFRESHES_TOTAL, &[("name", name)])
    }

    fn failures(&mut self, name: &str, reason: &str) -> u64 {
        self.get(
            mesh_dns::REFRESH_FAILURES_TOTAL,
            &[("name", name), ("reason", reason)],
        )
    }
}

#[tokio::test(start_paused = true)]
async fn every_name_form_resolves_to_the_same_endpoints() {
    let dns = DnsServer::start().unwrap();
    dns.set_a("reviews.default.svc", &[v4("10.0.0.1"), v4("10.0.0.2")], 30)
        .unwrap();
    dns.set_srv(
        "_http._tcp.reviews.default.svc",
        &[(0, 0, 9080, "reviews.default.svc")],
        30,
    )
    .unwrap();
    let resolver = DnsResolver::new(&dns.config()).unwrap();
    for form in [
        "reviews",
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local.",
        "REVIEWS.Default",
    ] {
        let target = qualify(form, 9080, "default", "cluster.local").unwrap();
        assert_eq!(target, host(FQDN, 9080), "{form}");
        let answer = resolver.lookup(&target).await.unwrap();
        assert_eq!(
            answer.endpoints,
            addrs(&["10.0.0.1:9080", "10.0.0.2:9080"]),
            "{form}"
        );
        assert_eq!(answer.ttl, Duration::from_secs(30));
    }
    for form in [
        "_http._tcp.reviews",
        "_http._tcp.reviews.default",
        "_http._tcp.reviews.default.svc.cluster.local",
    ] {
        let target = qualify(form, 1, "default", "cluster.local").unwrap();
        let answer = resolver.lookup(&target).await.unwrap();
        assert_eq!(
            answer.endpoints,
            addrs(&["10.0.0.1:9080", "10.0.0.2:9080"]),
            "{form}"
        );
    }
    // Through a watch as well.
    let discovery = DnsDiscovery::new(&dns.config()).unwrap();
    let mut rx = discovery.watch(&qualify("reviews", 9080, "default", "cluster.local").unwrap());
    assert_eq!(*rx.borrow(), Resolution::Pending);
    let value = wait_for(&mut rx, |r| *r != Resolution::Pending).await;
    assert_eq!(value, resolved(&["10.0.0.1:9080", "10.0.0.2:9080"]));
}

#[tokio::test(start_paused = true)]
async fn a_aaaa_and_both_families() {
    let dns = DnsServer::start().unwrap();
    let v6: Ipv6Addr = "fd00::1".parse().unwrap();
    dns.set_a("v4only.default.svc", &[v4("10.0.0.1")], 10)
        .unwrap();
    dns.set_aaaa("v6only.default.svc", &[v6], 20).unwrap();
    dns.set_hosts(
        "dual.default.svc",
        &[IpAddr::V4(v4("10.0.0.3")), IpAddr::V6(v6)],
        5,
    )
    .unwrap();
    dns.set_a("mixed-ttl.default.svc", &[v4("10.0.0.4")], 7)
        .unwrap();
    dns.set_aaaa("mixed-ttl.default.svc", &[v6], 3).unwrap();
    let resolver = DnsResolver::new(&dns.config()).unwrap();

    let a = resolver
        .lookup_host("v4only.default.svc.cluster.local", 80)
        .await
        .unwrap();
    assert_eq!(a.endpoints, addrs(&["10.0.0.1:80"]));
    assert_eq!(a.ttl, Duration::from_secs(10));
    let aaaa = resolver
        .lookup_host("v6only.default.svc.cluster.local", 80)
        .await
        .unwrap();
    assert_eq!(aaaa.endpoints, addrs(&["[fd00::1]:80"]));
    assert_eq!(aaaa.ttl, Duration::from_secs(20));
    let both = resolver
        .lookup_host("dual.default.svc.cluster.local", 80)
        .await
        .unwrap();
    assert_eq!(both.endpoints, addrs(&["10.0.0.3:80", "[fd00::1]:80"]));
    let mixed = resolver
        .lookup_host("mixed-ttl.default.svc.cluster.local", 80)
        .await
        .unwrap();
    assert_eq!(
        mixed.ttl,
        Duration::from_secs(3),
        "the smallest TTL of both families"
    );

    let missing = resolver
        .lookup_host("nope.default.svc.cluster.local", 80)
        .await;
    assert_eq!(
        missing.unwrap_err(),
        DnsError::NxDomain {
            name: "nope.default.svc.cluster.local".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn srv_gives_ports_weights_and_the_lowest_priority() {
    let dns = DnsServer::start().unwrap();
    dns.set_a("pod-a.reviews.default.svc", &[v4("10.1.0.1")], 30)
        .unwrap();
    dns.set_a("pod-b.reviews.default.svc", &[v4("10.1.0.2")], 30)
        .unwrap();
    dns.set_aaaa(
        "pod-c.reviews.default.svc",
        &["fd00::3".parse().unwrap()],
        30,
    )
    .unwrap();
    dns.set_a("backup.reviews.default.svc", &[v4("10.1.0.9")], 30)
        .unwrap();
    dns.set_srv(
        "_http._tcp.reviews.default.svc",
        &[
            (10, 3, 9080, "pod-a.reviews.default.svc"),
            (10, 0, 9081, "pod-b.reviews.default.svc"),
            (10, 5, 9082, "pod-c.reviews.default.svc"),
            (20, 1, 9090, "backup.reviews.default.svc"),
        ],
        15,
    )
    .unwrap();
    let resolver = DnsResolver::new(&dns.config()).unwrap();
    let target = Target::Srv {
        fqdn: "_http._tcp.reviews.default.svc.cluster.local".into(),
    };
    let answer = resolver.lookup(&target).await.unwrap();
    let expected = EndpointSet::new([
        Endpoint::new("10.1.0.1:9080".parse().unwrap()).with_weight(3),
        Endpoint::new("10.1.0.2:9081".parse().unwrap()).with_weight(1),
        Endpoint::new("[fd00::3]:9082".parse().unwrap()).with_weight(5),
    ]);
    assert_eq!(answer.endpoints, expected);
    assert_eq!(answer.ttl, Duration::from_secs(15));

    // Only the backup priority left: it is used.
    dns.set_srv(
        "_http._tcp.reviews.default.svc",
        &[(20, 1, 9090, "backup.reviews.default.svc")],
        15,
    )
    .unwrap();
    let answer = resolver.lookup(&target).await.unwrap();
    assert_eq!(answer.endpoints, addrs(&["10.1.0.9:9090"]));

    // A target outside the zone's data does not resolve: a bad answer.
    dns.set_srv(
        "_http._tcp.reviews.default.svc",
        &[(0, 1, 9090, "gone.reviews.default.svc")],
        15,
    )
    .unwrap();
    let err = resolver.lookup(&target).await.unwrap_err();
    assert_eq!(err.kind(), "bad_answer", "{err}");
    assert!(
        err.to_string()
            .contains("gone.reviews.default.svc.cluster.local"),
        "{err}"
    );

    // A `.` target says the service is decidedly not available: an empty answer.
    dns.set_srv("_http._tcp.reviews.default.svc", &[(0, 0, 0, ".")], 15)
        .unwrap();
    let answer = resolver.lookup(&target).await.unwrap();
    assert!(answer.endpoints.is_empty());

    // No SRV records at all.
    let err = resolver
        .lookup(&Target::Srv {
            fqdn: "_grpc._tcp.reviews.default.svc.cluster.local".into(),
        })
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_record_change_is_published_after_the_ttl() {
    let dns = DnsServer::start().unwrap();
    dns.set_a("reviews.default.svc", &[v4("10.0.0.1")], 5)
        .unwrap();
    let discovery = DnsDiscovery::new(&DiscoveryConfig {
        jitter: 0.0,
        ..dns.config()
    })
    .unwrap();
    let mut rx = discovery.watch(&host(FQDN, 80));
    wait_for(&mut rx, |r| *r == resolved(&["10.0.0.1:80"])).await;
    let published = Instant::now();

    dns.set_a("reviews.default.svc", &[v4("10.0.0.1"), v4("10.0.0.2")], 5)
        .unwrap();
    // Not before the TTL has passed...
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(!rx.has_changed().unwrap());
    assert_eq!(*rx.borrow(), resolved(&["10.0.0.1:80"]));
    // ...and right after it.
    let value = wait_for(&mut rx, |r| *r != resolved(&["10.0.0.1:80"])).await;
    assert_eq!(value, resolved(&["10.0.0.1:80", "10.0.0.2:80"]));
    let waited = published.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopped_server_keeps_the_last_set_and_counts_failures() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut counters = Counters::new(&recorder);

    let dns = DnsServer::start().unwrap();
    dns.set_a("reviews.default.svc", &[v4("10.0.0.1")], 5)
        .unwrap();
    let discovery = DnsDiscovery::new(&dns.config()).unwrap();
    let mut rx = discovery.watch(&host(FQDN, 80));
    wait_for(&mut rx, |r| *r == resolved(&["10.0.0.1:80"])).await;
    let gauges = counters.update();
    let endpoints_gauge = (
        mesh_dns::ENDPOINTS.to_owned(),
        vec![("name".to_owned(), FQDN.to_owned())],
    );
    assert_eq!(gauges.get(&endpoints_gauge), Some(&1.0));
    assert_eq!(counters.refreshes(FQDN), 1);

    dns.stop();
    // Several refreshes (with back-off) fail; the set stays.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(*rx.borrow(), resolved(&["10.0.0.1:80"]));
    let failures = counters.failures(FQDN, "timeout") + counters.failures(FQDN, "io");
    assert!(failures >= 2, "failures: {failures}");
    assert!(counters.refreshes(FQDN) >= 3);
    assert_eq!(counters.failures(FQDN, "nxdomain"), 0);
}

#[tokio::test(start_paused = true)]
async fn nxdomain_keeps_the_set_for_the_grace_then_drops_it() {
    let dns = DnsServer::start().unwrap();
    dns.set_a("reviews.default.svc", &[v4("10.0.0.1")], 1)
        .unwrap();
    let grace = Duration::from_secs(20);
    let discovery = DnsDiscovery::new(&DiscoveryConfig {
        nxdomain: NxDomainPolicy::Keep { grace },
        ..dns.config()
    })
    .unwrap();
    let mut rx = discovery.watch(&host(FQDN, 80));
    wait_for(&mut rx, |r| *r == resolved(&["10.0.0.1:80"])).await;

    dns.remove("reviews.default.svc").unwrap();
    let removed = Instant::now();
    let value = wait_for(&mut rx, |r| matches!(r, Resolution::Unresolved(_))).await;
    let kept = removed.elapsed();
    // The first NXDOMAIN comes within a refresh (1 s) of the removal; the drop comes a
    // grace after it.
    assert!(
        kept >= grace && kept <= grace + Duration::from_secs(2),
        "{kept:?}"
    );
    assert_eq!(
        value,
        Resolution::Unresolved(format!("NXDOMAIN for {FQDN}").into())
    );

    // It comes back.
    dns.set_a("reviews.default.svc", &[v4("10.0.0.2")], 1)
        .unwrap();
    wait_for(&mut rx, |r| *r == resolved(&["10.0.0.2:80"])).await;
}

#[tokio::test(start_paused = true)]
async fn drop_policy_drops_at_once() {
    let dns = DnsServer::start().unwrap();
    dns.set_a("reviews.default.svc", &[v4("10.0.0.1")], 1)
        .unwrap();
    let discovery = DnsDiscovery::new(&DiscoveryConfig {
        nxdomain: NxDomainPolicy::Drop,
        ..dns.config()
    })
    .unwrap();
    let mut rx = discovery.watch(&host(FQDN, 80));
    wait_for(&mut rx, |r| *r == resolved(&["10.0.0.1:80"])).await;
    dns.remove("reviews.default.svc").unwrap();
    let removed = Instant::now();
    wait_for(&mut rx, |r| matches!(r, Resolution::Unresolved(_))).await;
    assert!(
        removed.elapsed() <= Duration::from_secs(1),
        "{:?}",
        removed.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_name_that_never_existed_is_unresolved() {
    let dns = DnsServer::start().unwrap();
    let discovery = DnsDiscovery::new(&dns.config()).unwrap();
    let mut rx = discovery.watch(&host("nope.default.svc.cluster.local", 80));
    let value = wait_for(&mut rx, |r| *r != Resolution::Pending).await;
    match value {
        Resolution::Unresolved(reason) => {
            assert!(reason.contains("NXDOMAIN"), "{reason}");
            assert!(
                reason.contains("nope.default.svc.cluster.local"),
                "{reason}"
            );
        }
        other => panic!("expected Unresolved, got {other:?}"),
    }
    // The same when the server never answers: no hanging in Pending.
    dns.stop();
    let mut rx = discovery.watch(&host("other.default.svc.cluster.local", 80));
    let value = wait_for(&mut rx, |r| *r != Resolution::Pending).await;
    assert!(
        matches!(&value, Resolution::Unresolved(r) if r.contains("other.default.svc.cluster.local")),
        "{value:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn ttl_zero_is_clamped_to_the_floor() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut counters = Counters::new(&recorder);

    let dns = DnsServer::start().unwrap();
    dns.set_a("reviews.default.svc", &[v4("10.0.0.1")], 0)
        .unwrap();
    let config = DiscoveryConfig {
        min_ttl: Duration::from_secs(2),
        ..dns.config()
    };
    let discovery = DnsDiscovery::new(&config).unwrap();
    let mut rx = discovery.watch(&host(FQDN, 80));
    wait_for(&mut rx, |r| *r == resolved(&["10.0.0.1:80"])).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    // One refresh per 1.8 to 2 s (jitter shortens by up to 10%): 10 or 11 in 20 s, plus the first.
    let refreshes = counters.refreshes(FQDN);
    assert!((10..=13).contains(&refreshes), "refreshes: {refreshes}");
}

#[tokio::test(start_paused = true)]
async fn watchers_share_one_task_which_stops_with_them() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut counters = Counters::new(&recorder);

    let dns = DnsServer::start().unwrap();
    dns.set_a("reviews.default.svc", &[v4("10.0.0.1")], 10)
        .unwrap();
    let config = DiscoveryConfig {
        jitter: 0.0,
        ..dns.config()
    };
    let discovery = DnsDiscovery::new(&config).unwrap();
    let target = host(FQDN, 80);
    let mut first = discovery.watch(&target);
    let mut second = discovery.clone().watch(&target);
    assert_eq!(discovery.active_targets(), 1);
    wait_for(&mut first, |r| *r == resolved(&["10.0.0.1:80"])).await;
    wait_for(&mut second, |r| *r == resolved(&["10.0.0.1:80"])).await;
    tokio::time::sleep(Duration::from_secs(35)).await;
    // One task: a lookup at 0, 10, 20 and 30 s.
    assert_eq!(counters.refreshes(FQDN), 4);

    drop(first);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(discovery.active_targets(), 1);
    drop(second);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(discovery.active_targets(), 0);
    let before = counters.refreshes(FQDN);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        counters.refreshes(FQDN),
        before,
        "no lookups after the last receiver left"
    );

    // Watching again starts a new task.
    let mut again = discovery.watch(&target);
    wait_for(&mut again, |r| *r == resolved(&["10.0.0.1:80"])).await;
    assert_eq!(discovery.active_targets(), 1);
}

#[tokio::test(start_paused = true)]
async fn addresses_need_no_lookup() {
    let dns = DnsServer::start().unwrap();
    let discovery = DnsDiscovery::new(&dns.config()).unwrap();
    let target = qualify("[::1]", 8080, "default", "cluster.local").unwrap();
    let rx = discovery.watch(&target);
    assert_eq!(*rx.borrow(), resolved(&["[::1]:8080"]));
    assert_eq!(discovery.active_targets(), 0);
}

#[tokio::test(start_paused = true)]
async fn server_names_and_errors() {
    let dns = DnsServer::start_with_zone("corp.internal").unwrap();
    assert_eq!(dns.origin(), "corp.internal.");
    dns.set_a("api", &[v4("10.0.0.1")], 5).unwrap();
    dns.set_a("web.corp.internal", &[v4("10.0.0.2")], 5)
        .unwrap();
    dns.set_a("db.corp.internal.", &[v4("10.0.0.3")], 5)
        .unwrap();
    assert!(dns.set_a("x.example.com.", &[v4("10.0.0.4")], 5).is_err());
    assert!(dns.set_a("bad..name", &[v4("10.0.0.4")], 5).is_err());
    assert!(dns.set_a("corp.internal.", &[v4("10.0.0.4")], 5).is_err());
    let resolver = DnsResolver::new(&dns.config()).unwrap();
    for (name, ip) in [
        ("api.corp.internal", "10.0.0.1:1"),
        ("web.corp.internal", "10.0.0.2:1"),
        ("db.corp.internal", "10.0.0.3:1"),
    ] {
        let answer = resolver.lookup_host(name, 1).await.unwrap();
        assert_eq!(answer.endpoints, addrs(&[ip]), "{name}");
    }
    // An empty set removes the records: the name is gone.
    dns.set_a("api", &[], 5).unwrap();
    let err = resolver
        .lookup_host("api.corp.internal", 1)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(!dns.is_stopped());
    dns.stop();
    assert!(dns.is_stopped());
    let err = resolver
        .lookup_host("web.corp.internal", 1)
        .await
        .unwrap_err();
    assert!(!err.is_not_found(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn srv_targets_are_watched_with_their_weights() {
    let dns = DnsServer::start().unwrap();
    dns.set_a("pod-a.reviews.default.svc", &[v4("10.1.0.1")], 5)
        .unwrap();
    dns.set_a("pod-b.reviews.default.svc", &[v4("10.1.0.2")], 5)
        .unwrap();
    dns.set_srv(
        "_http._tcp.reviews.default.svc",
        &[(0, 2, 9080, "pod-a.reviews.default.svc")],
        5,
    )
    .unwrap();
    let discovery = DnsDiscovery::new(&dns.config()).unwrap();
    let target = qualify("_http._tcp.reviews", 0, "default", "cluster.local").unwrap();
    let mut rx = discovery.watch(&target);
    let first = wait_for(&mut rx, |r| *r != Resolution::Pending).await;
    assert_eq!(
        first,
        Resolution::Resolved(EndpointSet::new([Endpoint::new(
            "10.1.0.1:9080".parse().unwrap()
        )
        .with_weight(2)]))
    );
    dns.set_srv(
        "_http._tcp.reviews.default.svc",
        &[
            (0, 2, 9080, "pod-a.reviews.default.svc"),
            (0, 6, 9080, "pod-b.reviews.default.svc"),
        ],
        5,
    )
    .unwrap();
    let second = wait_for(&mut rx, |r| *r != first).await;
    let weights: Vec<_> = second
        .endpoints()
        .unwrap()
        .endpoints()
        .iter()
        .map(|e| (e.addr.to_string(), e.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("10.1.0.1:9080".to_owned(), 2),
            ("10.1.0.2:9080".to_owned(), 6)
        ]
    );
}
