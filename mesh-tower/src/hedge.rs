//! Hedged requests: when a try is slower than most, send a backup try to another endpoint and
//! take whichever answers first.
//!
//! Off unless the destination's policy has a [`HedgePolicy`]. Only idempotent requests
//! ([`is_idempotent`]) whose body is held in memory ([`RequestBody::try_clone`]) are hedged;
//! the others pass through untouched. Each hedgeable request deposits one in the
//! destination's [`HedgeBudget`] and starts its first try at once. When that try has not
//! answered after the hedge delay ([`HedgePolicy::hedge_delay`]: the tracked percentile of
//! recent tries, at least `min_delay`, and no hedging until `min_samples` are held) and the
//! budget allows ([`HedgeBudget::try_withdraw`]), one backup try goes to another endpoint
//! than the first ([`AvoidEndpoint`], learnt from the balancer through [`PickedEndpoint`]).
//!
//! The first response wins, and the other try is dropped, which cancels it. A try that fails
//! while the other still runs waits for it, so hedging never answers a failure sooner than a
//! success would have come; when both fail, the later error is the answer. A try still
//! waiting for discovery or for a connection-pool slot when its delay ends is not hedged: a
//! backup would only wait behind it.
//!
//! The latency of every hedgeable try that answers (with any status) is recorded in the
//! destination's [`LatencyTracker`]; a try that fails or is cancelled says nothing about how
//! long an answer takes and is not. The hedge delay is computed from the tracker at most
//! every 10 ms (or an eighth of the window), not per request.
//!
//! Counted in `mesh_hedges_total{destination}` (backup tries sent) and
//! `mesh_hedge_budget_exhausted_total{destination}` (hedges the budget refused). In the client
//! stack the layer sits between retries and the per-try timeout: every try the retry layer
//! makes may be hedged, and each of the two tries has its own per-try timeout.
//!
//! ```
//! use http::{Request, Response};
//! use mesh_core::hedge::HedgePolicy;
//! use mesh_tower::hedge::HedgeLayer;
//! use mesh_tower::{MeshError, RequestBody, ResponseBody};
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = HedgeLayer::new("reviews:9080", Some(HedgePolicy::default()));
//! let reviews = layer.layer(tower::service_fn(|_req: Request<RequestBody>| async {
//!     Ok::<_, MeshError>(Response::new(ResponseBody::local("ok")))
//! }));
//! let req = Request::get("http://reviews:9080/").body(RequestBody::empty()).unwrap();
//! let res = reviews.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 200);
//! // One sample is too few for a percentile: nothing is hedged yet.
//! assert_eq!(layer.delay(), None);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use mesh_core::hedge::{HedgeBudget, HedgePolicy, LatencyTracker};
use mesh_core::retry::is_idempotent;
use tokio::time::Sleep;

use crate::balance::{AvoidEndpoint, PickedEndpoint};
use crate::body::{RequestBody, ResponseBody};
use crate::clock::Clock;
use crate::error::MeshError;
use crate::retry::Template;

/// The longest a computed hedge delay is reused before the tracker is read again.
const REFRESH: Duration = Duration::from_millis(10);

/// `Shared::delay_ns` when there is no hedge delay (too few samples).
const NO_DELAY: u64 = u64::MAX;

/// Applies [`Hedge`] with one policy, latency tracker and budget, shared by every request of
/// a destination.
#[derive(Clone)]
pub struct HedgeLayer {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    destination: Arc<str>,
    policy: HedgePolicy,
    tracker: LatencyTracker,
    budget: HedgeBudget,
    clock: Clock,
    /// How long a computed delay is reused, in nanoseconds.
    refresh_ns: u64,
    /// The hedge delay last computed, in nanoseconds; [`NO_DELAY`] for none.
    delay_ns: AtomicU64,
    /// When `delay_ns` was computed, in nanoseconds since the clock's origin, plus one
    /// (0: never).
    delay_at: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Shared {
    /// The hedge delay at `now`, read from the tracker at most every `refresh_ns`.
    fn delay(&self, now: Duration) -> Option<Duration> {
        let now_ns = nanos(now);
        let at = self.delay_at.load(Ordering::Acquire);
        let ns = if at != 0 && now_ns.saturating_sub(at - 1) < self.refresh_ns {
            self.delay_ns.load(Ordering::Relaxed)
        } else {
            let ns = self
                .policy
                .hedge_delay(&self.tracker, now)
                .map_or(NO_DELAY, nanos);
            self.delay_ns.store(ns, Ordering::Relaxed);
            self.delay_at
                .store(now_ns.saturating_add(1).max(1), Ordering::Release);
            ns
        };
        (ns != NO_DELAY).then(|| Duration::from_nanos(ns))
    }

    /// Records a try started at `started` that has just answered.
    fn record(&self, started: Duration) {
        let now = self.clock.now();
        self.tracker.record(now.saturating_sub(started), now);
    }
}

impl HedgeLayer {
    /// Hedges requests to `destination` by `policy`, with a fresh tracker and a full budget;
    /// `None` never hedges (the layer passes requests through).
    pub fn new(destination: impl Into<Arc<str>>, policy: Option<HedgePolicy>) -> Self {
        let shared = policy.map(|policy| {
            Arc::new(Shared {
                destination: destination.into(),
                tracker: policy.tracker(),
                budget: policy.budget(),
                refresh_ns: nanos(REFRESH.min(policy.window / 8)),
                policy,
                clock: Clock::new(),
                delay_ns: AtomicU64::new(NO_DELAY),
                delay_at: AtomicU64::new(0),
            })
        });
        Self { shared }
    }

    /// Whether this layer hedges at all.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// How long a try waits now before it is hedged; `None` when hedging is off or too few
    /// tries have been seen yet.
    pub fn delay(&self) -> Option<Duration> {
        let shared = self.shared.as_ref()?;
        shared
            .policy
            .hedge_delay(&shared.tracker, shared.clock.now())
    }
}

impl fmt::Debug for HedgeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("HedgeLayer");
        if let Some(shared) = &self.shared {
            s.field("destination", &shared.destination)
                .field("policy", &shared.policy);
        } else {
            s.field("policy", &None::<HedgePolicy>);
        }
        s.finish()
    }
}

impl<S> tower_layer::Layer<S> for HedgeLayer {
    type Service = Hedge<S>;

    fn layer(&self, inner: S) -> Hedge<S> {
        Hedge {
            inner,
            layer: self.clone(),
        }
    }
}

/// Sends a backup try when the first is slower than most, and answers with the first
/// response of the two.
#[derive(Clone, Debug)]
pub struct Hedge<S> {
    inner: S,
    layer: HedgeLayer,
}

impl<S> Hedge<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> tower_service::Service<Request<RequestBody>> for Hedge<S>
where
    S: tower_service::Service<
            Request<RequestBody>,
            Response = Response<ResponseBody>,
            Error = MeshError,
        > + Clone,
{
    type Response = Response<ResponseBody>;
    type Error = MeshError;
    type Future = HedgeFuture<S>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<RequestBody>) -> HedgeFuture<S> {
        let shared = match &self.layer.shared {
            Some(shared) if is_idempotent(req.method()) => shared,
            _ => return HedgeFuture::passing(self.inner.call(req)),
        };
        let Some(body) = req.body().try_clone() else {
            return HedgeFuture::passing(self.inner.call(req));
        };
        let now = shared.clock.now();
        shared.budget.deposit(now);
        let mut timer = None;
        let mut backup = None;
        if let Some(delay) = shared.delay(now) {
            let template = Template::of(&req);
            let picked = PickedEndpoint::new();
            req.extensions_mut().insert(picked.clone());
            timer = Some(Box::pin(tokio::time::sleep(delay)));
            backup = Some(Box::new(Backup {
                inner: self.inner.clone(),
                template,
                body,
                picked,
                avoid: None,
                first_sent: now,
            }));
        }
        HedgeFuture {
            first: Attempt::Running {
                future: self.inner.call(req),
                started: now,
            },
            second: None,
            timer,
            backup,
            shared: Some(shared.clone()),
        }
    }
}

/// What the backup try needs, kept until it is sent or given up.
struct Backup<S> {
    /// A clone of the inner service for the backup try.
    inner: S,
    template: Template,
    body: RequestBody,
    /// Where the balancer sent the first try.
    picked: PickedEndpoint,
    /// When the first try was sent: the backup's time left is shorter by what has passed.
    first_sent: Duration,
    /// The endpoint to avoid, once the hedge is decided (budget withdrawn).
    avoid: Option<SocketAddr>,
}

pin_project_lite::pin_project! {
    #[project = AttemptProj]
    enum Attempt<F> {
        Running {
            #[pin]
            future: F,
            started: Duration,
        },
        Done,
    }
}

/// The backup try in flight (boxed: most requests never send one).
struct Second<F> {
    future: Pin<Box<F>>,
    started: Duration,
}

pin_project_lite::pin_project! {
    /// The response future of [`Hedge`].
    pub struct HedgeFuture<S>
    where
        S: tower_service::Service<Request<RequestBody>>,
    {
        #[pin]
        first: Attempt<S::Future>,
        second: Option<Second<S::Future>>,
        // Armed until the hedge is decided (boxed, as the backup: most requests never hedge
        // and the layers above move this future).
        timer: Option<Pin<Box<Sleep>>>,
        backup: Option<Box<Backup<S>>>,
        // `None` for a request passed through: nothing is recorded.
        shared: Option<Arc<Shared>>,
    }
}

impl<S> HedgeFuture<S>
where
    S: tower_service::Service<Request<RequestBody>>,
{
    fn passing(future: S::Future) -> Self {
        Self {
            first: Attempt::Running {
                future,
                started: Duration::ZERO,
            },
            second: None,
            timer: None,
            backup: None,
            shared: None,
        }
    }
}

impl<S> Future for HedgeFuture<S>
where
    S: tower_service::Service<
            Request<RequestBody>,
            Response = Response<ResponseBody>,
            Error = MeshError,
        >,
{
    type Output = Result<Response<ResponseBody>, MeshError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let AttemptProj::Running { future, started } = this.first.as_mut().project()
                && let Poll::Ready(result) = future.poll(cx)
            {
                let started = *started;
                this.first.set(Attempt::Done);
                match result {
                    Ok(response) => {
                        if let Some(shared) = this.shared {
                            shared.record(started);
                        }
                        // Cancels the backup try, if any.
                        *this.second = None;
                        return Poll::Ready(Ok(response));
                    }
                    Err(err) => {
                        // No hedge follows a failed first try; one already sent may answer.
                        *this.backup = None;
                        *this.timer = None;
                        if this.second.is_none() {
                            return Poll::Ready(Err(err));
                        }
                    }
                }
            }
            if let Some(second) = this.second.as_mut()
                && let Poll::Ready(result) = second.future.as_mut().poll(cx)
            {
                let started = second.started;
                *this.second = None;
                let first_running = matches!(*this.first, Attempt::Running { .. });
                match result {
                    Ok(response) => {
                        if let Some(shared) = this.shared {
                            shared.record(started);
                        }
                        // Cancels the first try.
                        this.first.set(Attempt::Done);
                        return Poll::Ready(Ok(response));
                    }
                    Err(err) if !first_running => return Poll::Ready(Err(err)),
                    Err(err) => {
                        tracing::debug!(error = %err, "hedge failed; waiting for the first try");
                    }
                }
            }
            if this.second.is_none() && !matches!(*this.first, Attempt::Running { .. }) {
                return Poll::Ready(Err(MeshError::polled_after_completion()));
            }
            if let Some(sleep) = this.timer.as_mut().map(|s| s.as_mut()) {
                ready!(sleep.poll(cx));
                *this.timer = None;
                if let (Some(backup), Some(shared)) = (this.backup.as_mut(), this.shared.as_ref()) {
                    match backup.picked.get() {
                        None => {
                            tracing::debug!(
                                destination = %shared.destination,
                                "try not sent to an endpoint yet: not hedged"
                            );
                            *this.backup = None;
                        }
                        Some(_) if !shared.budget.try_withdraw(shared.clock.now()) => {
                            tracing::debug!(destination = %shared.destination, "hedge budget exhausted");
                            metrics::counter!(
                                "mesh_hedge_budget_exhausted_total",
                                "destination" => shared.destination.to_string()
                            )
                            .increment(1);
                            *this.backup = None;
                        }
                        avoid => backup.avoid = avoid,
                    }
                }
            }
            let Some(backup) = this.backup.as_mut().filter(|b| b.avoid.is_some()) else {
                return Poll::Pending;
            };
            match backup.inner.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => {
                    tracing::debug!(error = %err, "hedge not sent");
                    *this.backup = None;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) => {}
            }
            let (Some(mut backup), Some(shared)) = (this.backup.take(), this.shared.as_ref())
            else {
                return Poll::Pending;
            };
            let mut req = backup.template.build(backup.body);
            let elapsed = shared.clock.now().saturating_sub(backup.first_sent);
            crate::timeout::age_time_left(req.headers_mut(), elapsed);
            if let Some(addr) = backup.avoid {
                req.extensions_mut().insert(AvoidEndpoint(addr));
            }
            tracing::debug!(
                destination = %shared.destination,
                avoid = ?backup.avoid,
                "hedging"
            );
            metrics::counter!(
                "mesh_hedges_total",
                "destination" => shared.destination.to_string()
            )
            .increment(1);
            *this.second = Some(Second {
                future: Box::pin(backup.inner.call(req)),
                started: shared.clock.now(),
            });
            // Loop: the backup try is polled once so it can wake this future.
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use tokio::time::Instant;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// How one try of the fake destination goes.
    #[derive(Clone, Copy, Debug)]
    struct Step {
        /// The last octet of the endpoint's address.
        endpoint: u8,
        delay: Duration,
        fail: bool,
        /// Whether the balancer fills [`PickedEndpoint`] (it does not while waiting).
        picked: bool,
    }

    const FAST: Step = Step {
        endpoint: 1,
        delay: Duration::from_millis(10),
        fail: false,
        picked: true,
    };

    fn step(endpoint: u8, delay: Duration) -> Step {
        Step {
            endpoint,
            delay,
            ..FAST
        }
    }

    fn addr(endpoint: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 82, endpoint], 9080))
    }

    /// A try the fake destination was sent.
    #[derive(Debug)]
    struct Call {
        endpoint: SocketAddr,
        avoid: Option<SocketAddr>,
    }

    #[derive(Default)]
    struct Script {
        steps: VecDeque<Step>,
        calls: Vec<Call>,
    }

    /// A destination that answers each try by the next step of its script (a fast answer
    /// from endpoint 1 when the script is over), counting tries dropped before they ended.
    #[derive(Clone, Default)]
    struct Fake {
        script: Arc<Mutex<Script>>,
        cancelled: Arc<AtomicUsize>,
    }

    impl Fake {
        fn plan(&self, steps: impl IntoIterator<Item = Step>) {
            self.script.lock().unwrap().steps.extend(steps);
        }

        fn calls(&self) -> usize {
            self.script.lock().unwrap().calls.len()
        }

        fn take_calls(&self) -> Vec<Call> {
            std::mem::take(&mut self.script.lock().unwrap().calls)
        }

        fn cancelled(&self) -> usize {
            self.cancelled.load(Ordering::Relaxed)
        }
    }

    /// Counts a try as cancelled when dropped while armed.
    struct Cancel(Option<Arc<AtomicUsize>>);

    impl Drop for Cancel {
        fn drop(&mut self) {
            if let Some(count) = self.0.take() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    type FakeFuture =
        Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, MeshError>> + Send>>;

    impl Service<Request<RequestBody>> for Fake {
        type Response = Response<ResponseBody>;
        type Error = MeshError;
        type Future = FakeFuture;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<RequestBody>) -> FakeFuture {
            let mut script = self.script.lock().unwrap();
            let step = script.steps.pop_front().unwrap_or(FAST);
            let endpoint = addr(step.endpoint);
            if step.picked
                && let Some(slot) = req.extensions().get::<PickedEndpoint>()
            {
                slot.set(endpoint);
            }
            script.calls.push(Call {
                endpoint,
                avoid: req.extensions().get::<AvoidEndpoint>().map(|a| a.0),
            });
            let cancelled = self.cancelled.clone();
            Box::pin(async move {
                let mut guard = Cancel(Some(cancelled));
                tokio::time::sleep(step.delay).await;
                guard.0 = None;
                if step.fail {
                    return Err(MeshError::Reset {
                        endpoint,
                        source: "reset by the script".into(),
                    });
                }
                let mut response = Response::new(ResponseBody::empty());
                response
                    .headers_mut()
                    .insert("x-endpoint", endpoint.to_string().parse().unwrap());
                Ok(response)
            })
        }
    }

    /// When a timer of `d` fires on the paused clock: tokio's timers tick by the millisecond.
    fn on_tick(d: Duration) -> Duration {
        Duration::from_millis(u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap())
    }

    fn hedged(policy: HedgePolicy) -> (HedgeLayer, Hedge<Fake>, Fake) {
        let fake = Fake::default();
        let layer = HedgeLayer::new("reviews:9080", Some(policy));
        let service = layer.layer(fake.clone());
        (layer, service, fake)
    }

    fn get() -> Request<RequestBody> {
        Request::get("http://reviews:9080/")
            .body(RequestBody::empty())
            .unwrap()
    }

    /// Sends `req`; the endpoint that answered (or the error) and how long it took.
    async fn send(
        service: &mut Hedge<Fake>,
        req: Request<RequestBody>,
    ) -> (Result<SocketAddr, MeshError>, Duration) {
        let start = Instant::now();
        let result = service
            .ready()
            .await
            .unwrap()
            .call(req)
            .await
            .map(|r| r.headers()["x-endpoint"].to_str().unwrap().parse().unwrap());
        (result, start.elapsed())
    }

    /// Sends `n` GETs answered fast (10 ms), then lets the cached delay expire.
    async fn warm_up(service: &mut Hedge<Fake>, fake: &Fake, n: usize) {
        for _ in 0..n {
            send(service, get()).await.0.unwrap();
        }
        fake.take_calls();
        tokio::time::sleep(REFRESH).await;
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_policy_requests_pass_through() {
        let fake = Fake::default();
        let layer = HedgeLayer::new("reviews:9080", None);
        assert!(!layer.is_enabled());
        let mut service = layer.layer(fake.clone());
        for _ in 0..50 {
            send(&mut service, get()).await.0.unwrap();
        }
        fake.plan([step(2, Duration::from_secs(1))]);
        let (answer, took) = send(&mut service, get()).await;
        assert_eq!(answer.unwrap(), addr(2));
        assert_eq!(took, Duration::from_secs(1));
        assert_eq!(fake.calls(), 51);
        assert_eq!(layer.delay(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn no_hedge_until_min_samples() {
        let (layer, mut service, fake) = hedged(HedgePolicy::default());
        warm_up(&mut service, &fake, 19).await;
        assert_eq!(layer.delay(), None);
        fake.plan([step(2, Duration::from_secs(1))]);
        let (answer, took) = send(&mut service, get()).await;
        assert_eq!(answer.unwrap(), addr(2));
        assert_eq!(took, Duration::from_secs(1));
        assert_eq!(fake.calls(), 1);
        // That slow answer was the 20th sample: p95 of 19 × 10 ms and one second.
        let delay = layer.delay().unwrap();
        assert!(delay >= 10 * MS && delay < 11 * MS, "{delay:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_try_is_hedged_elsewhere_and_cancelled() {
        let (layer, mut service, fake) = hedged(HedgePolicy::default());
        warm_up(&mut service, &fake, 20).await;
        let delay = layer.delay().unwrap();
        fake.plan([step(2, Duration::from_secs(1)), step(3, 10 * MS)]);
        let (answer, took) = send(&mut service, get()).await;
        assert_eq!(answer.unwrap(), addr(3));
        assert_eq!(took, on_tick(delay) + 10 * MS);
        let calls = fake.take_calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[0].avoid, None);
        assert_eq!(calls[1].avoid, Some(addr(2)));
        assert_eq!(calls[1].endpoint, addr(3));
        // The slow first try was dropped as soon as the hedge answered.
        assert_eq!(fake.cancelled(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_answer_wins_even_after_a_hedge() {
        let (layer, mut service, fake) = hedged(HedgePolicy::default());
        warm_up(&mut service, &fake, 20).await;
        let delay = layer.delay().unwrap();
        fake.plan([step(2, 30 * MS), step(3, Duration::from_secs(1))]);
        let (answer, took) = send(&mut service, get()).await;
        assert_eq!(answer.unwrap(), addr(2));
        assert_eq!(took, 30 * MS);
        assert_eq!(fake.calls(), 2);
        assert_eq!(fake.cancelled(), 1);
        assert!(delay < 30 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_waits_for_the_other_try() {
        let (layer, mut service, fake) = hedged(HedgePolicy::default());
        // Enough fast samples that the slow answers below leave the delay as it is.
        warm_up(&mut service, &fake, 100).await;
        let delay = layer.delay().unwrap();

        // The first fails after the hedge is sent: the hedge's answer is awaited.
        let failing = Step {
            fail: true,
            ..step(2, 50 * MS)
        };
        fake.plan([failing, step(3, 200 * MS)]);
        let (answer, took) = send(&mut service, get()).await;
        assert_eq!(answer.unwrap(), addr(3));
        assert_eq!(took, on_tick(delay) + 200 * MS);

        // The hedge fails first: the first try's answer is awaited.
        fake.plan([
            step(2, 300 * MS),
            Step {
                fail: true,
                ..step(3, MS)
            },
        ]);
        let (answer, took) = send(&mut service, get()).await;
        assert_eq!(answer.unwrap(), addr(2));
        assert_eq!(took, 300 * MS);

        // Both fail: the later error is the answer.
        fake.plan([
            Step {
                fail: true,
                ..step(2, 100 * MS)
            },
            Step {
                fail: true,
                ..step(3, 200 * MS)
            },
        ]);
        let (answer, took) = send(&mut service, get()).await;
        assert!(
            matches!(answer, Err(MeshError::Reset { endpoint, .. }) if endpoint == addr(3)),
            "{answer:?}"
        );
        assert_eq!(took, on_tick(delay) + 200 * MS);
        assert_eq!(fake.cancelled(), 0);
        assert_eq!(layer.delay(), Some(delay));

        // A first try failing before its delay is answered at once, unhedged.
        fake.take_calls();
        fake.plan([Step {
            fail: true,
            ..step(2, Duration::ZERO)
        }]);
        let (answer, took) = send(&mut service, get()).await;
        assert!(answer.is_err());
        assert_eq!(took, Duration::ZERO);
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn only_idempotent_replayable_requests_are_hedged() {
        let (_layer, mut service, fake) = hedged(HedgePolicy::default());
        warm_up(&mut service, &fake, 20).await;
        let slow = step(2, Duration::from_secs(1));

        fake.plan([slow]);
        let post = Request::post("http://reviews:9080/")
            .body(RequestBody::full("rating=5"))
            .unwrap();
        let (_, took) = send(&mut service, post).await;
        assert_eq!(took, Duration::from_secs(1));
        assert_eq!(fake.take_calls().len(), 1);

        // A streamed body cannot be sent twice.
        fake.plan([slow]);
        let stream = http_body_util::StreamBody::new(futures_util::stream::iter([Ok::<
            _,
            std::convert::Infallible,
        >(
            http_body::Frame::data(bytes::Bytes::from_static(b"x")),
        )]));
        let put = Request::put("http://reviews:9080/")
            .body(RequestBody::new(stream))
            .unwrap();
        let (_, took) = send(&mut service, put).await;
        assert_eq!(took, Duration::from_secs(1));
        assert_eq!(fake.take_calls().len(), 1);

        // A buffered PUT is idempotent and replayable.
        fake.plan([slow]);
        let put = Request::put("http://reviews:9080/")
            .body(RequestBody::full("rating=5"))
            .unwrap();
        let (_, took) = send(&mut service, put).await;
        assert!(took < 30 * MS, "{took:?}");
        assert_eq!(fake.take_calls().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_caps_hedges() {
        let policy = HedgePolicy {
            max_extra_percent: 0.0,
            min_per_second: 0,
            ..HedgePolicy::default()
        };
        let (_layer, mut service, fake) = hedged(policy);
        warm_up(&mut service, &fake, 20).await;
        fake.plan([step(2, Duration::from_secs(1))]);
        let (_, took) = send(&mut service, get()).await;
        assert_eq!(took, Duration::from_secs(1));
        assert_eq!(fake.calls(), 1);

        // 10 % of requests: a hedge is allowed while hedges < 0.1 × requests.
        let policy = HedgePolicy {
            min_per_second: 0,
            ..HedgePolicy::default()
        };
        let (_layer, mut service, fake) = hedged(policy);
        warm_up(&mut service, &fake, 20).await;
        let mut slow = 0;
        for _ in 0..5 {
            fake.plan([step(2, 100 * MS)]);
            if send(&mut service, get()).await.1 == 100 * MS {
                slow += 1;
            }
        }
        // Hedged: the 21st (0 < 2.1), 22nd (1 < 2.2) and 23rd (2 < 2.3), not the 24th or 25th.
        assert_eq!(slow, 2);
        assert_eq!(fake.calls(), 5 + 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_try_not_yet_balanced_is_not_hedged() {
        let (_layer, mut service, fake) = hedged(HedgePolicy::default());
        warm_up(&mut service, &fake, 20).await;
        fake.plan([Step {
            picked: false,
            ..step(2, 100 * MS)
        }]);
        let (_, took) = send(&mut service, get()).await;
        assert_eq!(took, 100 * MS);
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_delay_follows_recent_latencies() {
        let (layer, mut service, fake) = hedged(HedgePolicy {
            min_samples: 5,
            ..HedgePolicy::default()
        });
        warm_up(&mut service, &fake, 5).await;
        let fast = layer.delay().unwrap();
        for _ in 0..200 {
            fake.plan([step(1, 40 * MS)]);
            send(&mut service, get()).await.0.unwrap();
        }
        let slower = layer.delay().unwrap();
        assert!(slower > fast && slower >= 40 * MS, "{fast:?} {slower:?}");
        // The cached delay is refreshed within 10 ms: a 41 ms try is now hedged after 40.
        fake.take_calls();
        tokio::time::sleep(REFRESH).await;
        fake.plan([step(2, 200 * MS), step(3, MS)]);
        let (answer, took) = send(&mut service, get()).await;
        assert_eq!(answer.unwrap(), addr(3));
        assert_eq!(took, on_tick(slower) + MS);
    }

    #[test]
    fn the_delay_cache_refreshes() {
        let policy = HedgePolicy {
            min_samples: 1,
            ..HedgePolicy::default()
        };
        let layer = HedgeLayer::new("reviews:9080", Some(policy));
        let shared = layer.shared.as_ref().unwrap();
        let now = Duration::from_secs(1);
        assert_eq!(shared.delay(now), None);
        shared.tracker.record(5 * MS, now);
        // Cached "none" for up to 10 ms.
        assert_eq!(shared.delay(now + 9 * MS), None);
        let delay = shared.delay(now + REFRESH).unwrap();
        assert!(delay >= 5 * MS && delay < 6 * MS, "{delay:?}");
        shared.tracker.record(Duration::from_secs(2), now);
        assert_eq!(shared.delay(now + REFRESH + 9 * MS), Some(delay));
        assert!(shared.delay(now + 2 * REFRESH).unwrap() >= Duration::from_secs(2));
    }
}
