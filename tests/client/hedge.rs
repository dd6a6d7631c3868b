//! Hedged requests against real pods with a slow tail: a far lower p99 for a bounded share of
//! extra requests, never for a POST, always to another pod, the losing try cancelled.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use mesh::core::config::{LoadBalancer, TrafficPolicy};
use mesh::core::hedge::HedgePolicy;
use mesh::tower::MeshClient;
use mesh::tower::testing::{DnsServer, serve_connections};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::support::{config, eventually};

const MS: Duration = Duration::from_millis(1);
const FAST: Duration = Duration::from_millis(10);
const SLOW: Duration = Duration::from_secs(1);

/// What a pod has seen.
#[derive(Debug, Default)]
struct PodState {
    /// Every `slow_every`-th request is slow (0: none, 1: all).
    slow_every: AtomicUsize,
    started: AtomicUsize,
    finished: AtomicUsize,
    /// Requests dropped before their answer was written (the client gave up on them).
    cancelled: AtomicUsize,
    /// `(x-test-id, method)` of every request, in arrival order.
    seen: Mutex<Vec<(usize, Method)>>,
}

/// An HTTP/1.1 and HTTP/2 server answering with its name after 10 ms, or after 1 s for every
/// `slow_every`-th request it receives.
struct Pod {
    name: String,
    state: Arc<PodState>,
    task: JoinHandle<()>,
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Pod {
    fn set_slow_every(&self, n: usize) {
        self.state.slow_every.store(n, Ordering::Relaxed);
    }

    fn started(&self) -> usize {
        self.state.started.load(Ordering::Relaxed)
    }

    fn finished(&self) -> usize {
        self.state.finished.load(Ordering::Relaxed)
    }

    fn cancelled(&self) -> usize {
        self.state.cancelled.load(Ordering::Relaxed)
    }

    fn seen(&self) -> Vec<(usize, Method)> {
        self.state.seen.lock().unwrap().clone()
    }
}

/// Counts a request as cancelled when its handler is dropped before it answers.
struct Unfinished(Option<Arc<PodState>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    name: Arc<str>,
    state: Arc<PodState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let n = state.started.fetch_add(1, Ordering::Relaxed) + 1;
    let id = req
        .headers()
        .get("x-test-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    state.seen.lock().unwrap().push((id, req.method().clone()));
    let mut unfinished = Unfinished(Some(state.clone()));
    let _ = req.into_body().collect().await;
    let every = state.slow_every.load(Ordering::Relaxed);
    let slow = every != 0 && n.is_multiple_of(every);
    tokio::time::sleep(if slow { SLOW } else { FAST }).await;
    unfinished.0 = None;
    state.finished.fetch_add(1, Ordering::Relaxed);
    Ok(Response::new(Full::new(Bytes::copy_from_slice(
        name.as_bytes(),
    ))))
}

async fn serve(listener: TcpListener, name: Arc<str>, state: Arc<PodState>) {
    serve_connections(listener, move || {
        let (name, state) = (name.clone(), state.clone());
        hyper::service::service_fn(move |req| answer(req, name.clone(), state.clone()))
    })
    .await;
}

/// A service `name` of pods on `127.0.82.<first>`, `127.0.82.<first + 1>`, ... sharing one
/// port, in a DNS server of its own; every pod slow once in `slow_every` requests.
struct Tail {
    dns: DnsServer,
    name: String,
    port: u16,
    pods: Vec<Pod>,
}

impl Tail {
    async fn start(name: &str, first: u8, count: u8, slow_every: usize) -> Tail {
        let ips: Vec<IpAddr> = (first..first + count)
            .map(|host| IpAddr::V4(Ipv4Addr::new(127, 0, 82, host)))
            .collect();
        let (port, listeners) = bind_all(&ips).await;
        let pods = listeners
            .into_iter()
            .enumerate()
            .map(|(i, listener)| {
                let name = format!("{name}-{i}");
                let state = Arc::new(PodState::default());
                state.slow_every.store(slow_every, Ordering::Relaxed);
                let task = tokio::spawn(serve(listener, name.as_str().into(), state.clone()));
                Pod { name, state, task }
            })
            .collect();
        let dns = DnsServer::start().expect("DNS server");
        dns.set_hosts(&format!("{name}.default.svc"), &ips, 30)
            .expect("DNS record");
        Tail {
            dns,
            name: name.to_owned(),
            port,
            pods,
        }
    }

    /// A client whose default policy is `policy` with hedging by `hedge`.
    fn client(&self, policy: TrafficPolicy, hedge: Option<HedgePolicy>) -> MeshClient {
        let policy = TrafficPolicy { hedge, ..policy };
        let config = config(&self.dns)
            .defaults(policy)
            .build()
            .expect("valid config");
        MeshClient::new(config).expect("client")
    }

    fn uri(&self) -> String {
        format!("http://{}:{}/", self.name, self.port)
    }

    fn started(&self) -> usize {
        self.pods.iter().map(Pod::started).sum()
    }

    fn cancelled(&self) -> usize {
        self.pods.iter().map(Pod::cancelled).sum()
    }

    /// The pods (by index) that received each request, by its `x-test-id`.
    fn pods_by_request(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut by_request: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, pod) in self.pods.iter().enumerate() {
            for (id, _) in pod.seen() {
                by_request.entry(id).or_default().push(i);
            }
        }
        by_request
    }
}

/// Listeners on every address in `ips`, all on one free port.
async fn bind_all(ips: &[IpAddr]) -> (u16, Vec<TcpListener>) {
    'attempt: for _ in 0..50 {
        let mut port = 0;
        let mut listeners = Vec::new();
        for ip in ips {
            match TcpListener::bind(SocketAddr::new(*ip, port)).await {
                Ok(listener) => {
                    port = listener.local_addr().expect("bound").port();
                    listeners.push(listener);
                }
                Err(_) if port != 0 => continue 'attempt,
                Err(e) => panic!("bind {ip}: {e}"),
            }
        }
        return (port, listeners);
    }
    panic!("no common free port for {ips:?}");
}

/// One request with `x-test-id: id`; the answering pod's name and the latency.
async fn send(client: &MeshClient, method: Method, uri: &str, id: usize) -> (String, Duration) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-test-id", id)
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    let start = Instant::now();
    let res = client
        .request(req)
        .await
        .expect("the mesh client never fails");
    assert_eq!(res.status(), 200, "{res:?}");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let latency = start.elapsed();
    (String::from_utf8_lossy(&body).into_owned(), latency)
}

/// `callers` concurrent callers sending `per_caller` GETs each, one after the other; every
/// latency, sorted, and how long the run took.
async fn run(
    client: &MeshClient,
    uri: &str,
    callers: usize,
    per_caller: usize,
) -> (Vec<Duration>, Duration) {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for caller in 0..callers {
        let (client, uri) = (client.clone(), uri.to_owned());
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(per_caller);
            for i in 0..per_caller {
                let id = caller * per_caller + i;
                latencies.push(send(&client, Method::GET, &uri, id).await.1);
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(caller) = tasks.join_next().await {
        latencies.extend(caller.expect("caller panicked"));
    }
    latencies.sort_unstable();
    (latencies, start.elapsed())
}

/// The `p` quantile of sorted `latencies`, by nearest rank.
fn quantile(latencies: &[Duration], p: f64) -> Duration {
    let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
    latencies[rank - 1]
}

/// Counter totals by name, summed over labels, with the destinations they were counted for.
fn counters(snapshotter: &Snapshotter) -> BTreeMap<String, (u64, Vec<String>)> {
    let mut totals: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            let entry = totals.entry(key.key().name().to_owned()).or_default();
            entry.0 += n;
            entry.1.extend(
                key.key()
                    .labels()
                    .filter(|l| l.key() == "destination")
                    .map(|l| l.value().to_owned()),
            );
        }
    }
    totals
}

/// Sends GETs one at a time until the client has enough samples to hedge.
async fn warm_up(client: &MeshClient, tail: &Tail, first_id: usize) {
    for id in first_id..first_id + 40 {
        send(client, Method::GET, &tail.uri(), id).await;
    }
}

#[tokio::test(start_paused = true)]
async fn hedging_cuts_the_tail_within_its_budget() {
    const CALLERS: usize = 8;
    const PER_CALLER: usize = 250;
    const REQUESTS: usize = CALLERS * PER_CALLER;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    // Without hedging: one request in 20 takes a second, so the p99 is a second.
    let tail = Tail::start("details", 1, 5, 20).await;
    let client = tail.client(TrafficPolicy::default(), None);
    let (latencies, _) = run(&client, &tail.uri(), CALLERS, PER_CALLER).await;
    let p99_without = quantile(&latencies, 0.99);
    assert_eq!(tail.started(), REQUESTS);
    assert!(p99_without >= SLOW, "p99 without hedging: {p99_without:?}");
    assert!(!counters(&snapshotter).contains_key("mesh_hedges_total"));
    drop(client);
    drop(tail);

    // With hedging at the p95.
    let tail = Tail::start("details", 1, 5, 20).await;
    let policy = HedgePolicy::default();
    let client = tail.client(TrafficPolicy::default(), Some(policy));
    let (latencies, elapsed) = run(&client, &tail.uri(), CALLERS, PER_CALLER).await;
    let p50 = quantile(&latencies, 0.5);
    let p99 = quantile(&latencies, 0.99);
    let max = quantile(&latencies, 1.0);

    let counted = counters(&snapshotter);
    let hedges = counted.get("mesh_hedges_total").map_or(0, |c| c.0);
    let exhausted = counted
        .get("mesh_hedge_budget_exhausted_total")
        .map_or(0, |c| c.0);
    let tries = tail.started();
    assert!(hedges > 0, "{counted:?}");
    // Nothing failed, so nothing was retried: every extra try is a hedge.
    assert_eq!(tries, REQUESTS + hedges as usize, "{counted:?}");
    assert!(
        counted["mesh_hedges_total"]
            .1
            .iter()
            .all(|d| d.starts_with("details.default.svc.cluster.local:")),
        "{counted:?}"
    );
    // The budget: 10 % of requests, plus one a second over the run and a window's reserve.
    let bound = REQUESTS as f64 * policy.max_extra_percent / 100.0
        + f64::from(policy.min_per_second) * (elapsed + policy.window).as_secs_f64();
    println!(
        "without hedging: p99 {p99_without:?}; with hedging: p50 {p50:?}, p99 {p99:?}, \
         max {max:?}, {hedges} hedges for {REQUESTS} requests ({:.1} %), budget {bound:.0}, \
         {exhausted} refused by the budget, {} tries cancelled, {elapsed:?} elapsed",
        100.0 * hedges as f64 / REQUESTS as f64,
        tail.cancelled(),
    );
    assert!(p99 < 200 * MS, "p99 with hedging: {p99:?}");
    assert!(
        hedges as f64 <= bound,
        "{hedges} hedges for {REQUESTS} requests in {elapsed:?} exceed the budget's {bound:.0}"
    );
    // A hedge never goes to the pod its first try went to.
    for (id, pods) in tail.pods_by_request() {
        assert!(pods.len() <= 2, "request {id} went to {pods:?}");
        assert!(
            pods.len() < 2 || pods[0] != pods[1],
            "request {id} went to {pods:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_goes_to_another_pod_and_the_loser_is_cancelled() {
    let tail = Tail::start("reviews", 11, 3, 0).await;
    let client = tail.client(
        TrafficPolicy {
            load_balancer: LoadBalancer::RoundRobin,
            ..TrafficPolicy::default()
        },
        Some(HedgePolicy::default()),
    );
    warm_up(&client, &tail, 0).await;
    // Pod 0 turns slow: every request balanced to it is hedged to another pod.
    let slow = &tail.pods[0];
    slow.set_slow_every(1);
    let before: Vec<usize> = tail.pods.iter().map(Pod::started).collect();
    let finished = slow.finished();
    let requests = 9;
    for id in 100..100 + requests {
        let (pod, latency) = send(&client, Method::GET, &tail.uri(), id).await;
        assert_ne!(pod, slow.name, "request {id}");
        assert!(latency < 100 * MS, "request {id}: {latency:?}");
    }
    let to_slow = slow.started() - before[0];
    assert!(
        to_slow >= 2,
        "round robin sent {to_slow} of {requests} to pod 0"
    );
    let tries: usize = tail
        .pods
        .iter()
        .zip(&before)
        .map(|(p, b)| p.started() - b)
        .sum();
    // One hedge for each try on the slow pod, none for the others.
    assert_eq!(tries, requests + to_slow);
    for (id, pods) in tail.pods_by_request().range(100..) {
        if pods.contains(&0) {
            assert_eq!(pods.len(), 2, "request {id}: {pods:?}");
            assert_ne!(pods[1], 0, "request {id}: {pods:?}");
        } else {
            assert_eq!(pods.len(), 1, "request {id}: {pods:?}");
        }
    }
    // The slow pod's requests were dropped, not answered: the client closed them.
    assert!(
        eventually(Duration::from_secs(1), || slow.cancelled() == to_slow).await,
        "{} of {to_slow} cancelled",
        slow.cancelled()
    );
    assert_eq!(slow.finished(), finished);
}

#[tokio::test(start_paused = true)]
async fn a_post_is_never_hedged() {
    let tail = Tail::start("ratings", 21, 3, 0).await;
    let client = tail.client(
        TrafficPolicy {
            load_balancer: LoadBalancer::RoundRobin,
            ..TrafficPolicy::default()
        },
        Some(HedgePolicy::default()),
    );
    warm_up(&client, &tail, 0).await;
    let slow = &tail.pods[0];
    slow.set_slow_every(1);
    let before = tail.started();
    let requests = 6;
    let mut slow_answers = 0;
    for id in 100..100 + requests {
        let (pod, latency) = send(&client, Method::POST, &tail.uri(), id).await;
        if pod == slow.name {
            assert!(latency >= SLOW, "{latency:?}");
            slow_answers += 1;
        }
    }
    assert!(slow_answers >= 1);
    assert_eq!(tail.started() - before, requests);
    assert_eq!(tail.cancelled(), 0);
    let posts = tail
        .pods
        .iter()
        .flat_map(Pod::seen)
        .filter(|(_, m)| *m == Method::POST)
        .count();
    assert_eq!(posts, requests);

    // The same pods hedge a GET.
    let before = tail.started();
    for id in 200..203 {
        let (pod, latency) = send(&client, Method::GET, &tail.uri(), id).await;
        assert_ne!(pod, slow.name);
        assert!(latency < 100 * MS, "{latency:?}");
    }
    let hedged = tail
        .pods_by_request()
        .range(200..)
        .filter(|(_, pods)| pods.contains(&0))
        .count();
    assert!(hedged >= 1);
    assert_eq!(tail.started() - before, 3 + hedged);
}
