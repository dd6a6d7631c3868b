//! The local rate limit and the concurrency limit of a MeshServer, counted exactly, with
//! their metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use mesh::core::config::ServerConfig;
use mesh::core::ratelimit::TokenBucketConfig;
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use crate::support::{Gate, Running, app, get2, h2};

/// Statuses of `count` GETs of `path` sent at once on one h2c connection, with the body of
/// each status.
async fn burst(addr: SocketAddr, path: &str, count: usize) -> BTreeMap<u16, (usize, String)> {
    let (sender, _conn) = h2(addr).await;
    let answers = join_all((0..count).map(|_| get2(&sender, path, &[]))).await;
    let mut statuses = BTreeMap::new();
    for answer in answers {
        let entry = statuses
            .entry(answer.status.as_u16())
            .or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = answer.body;
    }
    statuses
}

/// The value of `name{side="server", name="tester"}` (or `name{name="tester"}`) since the
/// last snapshot.
fn metric(snapshotter: &Snapshotter, name: &str) -> DebugValue {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, ..)| is(key, name))
        .map(|(.., value)| value)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn is(key: &CompositeKey, name: &str) -> bool {
    let key = key.key();
    let labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
    key.name() == name
        && (labels == [("side", "server"), ("name", "tester")] || labels == [("name", "tester")])
}

#[tokio::test(start_paused = true)]
async fn rate_limit_admits_the_bucket_then_one_fill_per_interval() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let config = ServerConfig {
        rate_limit: Some(TokenBucketConfig::new(10, 5, Duration::from_secs(1))),
        ..ServerConfig::default()
    };
    let server = Running::start("127.0.0.1:0".parse().unwrap(), config, app(Arc::default())).await;

    let first = burst(server.addr, "/", 30).await;
    assert_eq!(first[&200], (10, "ok".to_owned()), "{first:?}");
    assert_eq!(
        first[&429],
        (20, "local_rate_limited".to_owned()),
        "{first:?}"
    );
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(
        metric(&snapshotter, "mesh_rate_limited_total"),
        DebugValue::Counter(20)
    );

    tokio::time::advance(Duration::from_secs(1)).await;
    let second = burst(server.addr, "/", 30).await;
    assert_eq!(second[&200].0, 5, "{second:?}");
    assert_eq!(second[&429].0, 25, "{second:?}");
    // Counted since the last snapshot.
    assert_eq!(
        metric(&snapshotter, "mesh_rate_limited_total"),
        DebugValue::Counter(25)
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_sheds_past_the_limit_with_503() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let gate = Arc::new(Gate::default());
    let config = ServerConfig {
        concurrency_limit: Some(2),
        ..ServerConfig::default()
    };
    let server = Running::start("127.0.0.1:0".parse().unwrap(), config, app(gate.clone())).await;
    let (sender, _conn) = h2(server.addr).await;

    let slow: Vec<_> = (0..5)
        .map(|_| {
            let sender = sender.clone();
            tokio::spawn(async move { get2(&sender, "/slow", &[]).await })
        })
        .collect();
    gate.wait_entered(2).await;
    // The three past the limit are answered while the two are still held.
    while slow.iter().filter(|task| task.is_finished()).count() < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(gate.entered(), 2);
    gate.open(2);
    let mut statuses = BTreeMap::<u16, usize>::new();
    for task in slow {
        let answer = task.await.unwrap();
        if answer.status == 503 {
            assert_eq!(answer.body, "overloaded");
            assert_eq!(answer.header("x-mesh-overloaded"), "true");
        }
        *statuses.entry(answer.status.as_u16()).or_default() += 1;
    }
    assert_eq!(statuses, BTreeMap::from([(200, 2), (503, 3)]));
    assert_eq!(gate.entered(), 2);
    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| is(key, name))
            .map(|(.., value)| value)
    };
    assert_eq!(value("mesh_load_shed_total"), Some(&DebugValue::Counter(3)));
    // The one h2c connection is open.
    assert_eq!(
        value("mesh_server_connections"),
        Some(&DebugValue::Gauge(1.0.into()))
    );

    // The slots are free again.
    gate.open(1);
    assert_eq!(get2(&sender, "/slow", &[]).await.status, 200);
}
