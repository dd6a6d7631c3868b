//! The request context: what the server stack captures from an inbound request and the
//! client stack applies to every outbound call made while handling it.
//!
//! The server stack runs each handler inside [`RequestContext::scope`]; the client stack reads
//! [`RequestContext::current`] (a tokio task-local, so it costs no lookup in a map). The
//! context carries the inbound deadline (outbound calls are bounded by the time it leaves) and
//! what is propagated: the trace context of the server span, the `x-request-id`, and the
//! configured headers and cookies ([`Propagated`]), which the client stack writes on every
//! outbound call.
//!
//! A task-local does not follow `tokio::spawn`: a handler that spawns work which calls other
//! services uses [`spawn`] (or wraps the future in [`RequestContext::in_current`], or captures
//! [`RequestContext::current`] and wraps the spawned future in [`RequestContext::scope`]).
//!
//! ```
//! use std::time::Duration;
//! use mesh_tower::context::RequestContext;
//! use tokio::time::Instant;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let ctx = RequestContext::new().with_deadline(Instant::now() + Duration::from_secs(1));
//! let left = ctx
//!     .scope(async { RequestContext::current().and_then(|c| c.deadline()) })
//!     .await;
//! assert!(left.is_some());
//! assert!(RequestContext::current().is_none());
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use http::HeaderValue;
use mesh_core::telemetry::{Propagated, TraceContext};
use tokio::task::JoinHandle;
use tokio::time::Instant;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// What an inbound request hands to the outbound calls made for it. Cheap to clone (the
/// propagated part is shared).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    deadline: Option<Instant>,
    propagated: Option<Arc<Propagated>>,
}

impl RequestContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same context with the instant by which the inbound request must be answered.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The instant by which the inbound request must be answered, if it carried one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The same context carrying `propagated` (trace context, request id, headers, cookies)
    /// to outbound calls.
    pub fn with_propagated(mut self, propagated: Arc<Propagated>) -> Self {
        self.propagated = Some(propagated);
        self
    }

    /// What outbound calls carry from the inbound request, if anything.
    pub fn propagated(&self) -> Option<&Arc<Propagated>> {
        self.propagated.as_ref()
    }

    /// The trace context outbound calls continue: the server span's, when there is one.
    pub fn trace_context(&self) -> Option<&TraceContext> {
        self.propagated.as_ref()?.trace.as_ref()
    }

    /// The inbound request's `x-request-id`.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.propagated.as_ref()?.request_id.as_ref()
    }

    /// The value of a propagated header (the first, when repeated), by lowercase name.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        let p = self.propagated.as_ref()?;
        p.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of a propagated cookie, by name.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        let p = self.propagated.as_ref()?;
        p.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The context of the request the current task is handling, if any.
    pub fn current() -> Option<RequestContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The deadline of the request the current task is handling, if any (cheaper than
    /// [`current`](Self::current) when only the deadline is needed).
    pub fn current_deadline() -> Option<Instant> {
        CURRENT.try_with(|c| c.deadline).ok().flatten()
    }

    /// What the request the current task is handling propagates, if anything (cheaper than
    /// [`current`](Self::current): one reference count).
    pub fn current_propagated() -> Option<Arc<Propagated>> {
        CURRENT.try_with(|c| c.propagated.clone()).ok().flatten()
    }

    /// Runs `fut` with this context as the current one.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, fut)
    }

    /// Wraps `fut` so it runs in the current task's context, if there is one: for futures
    /// handed to `tokio::spawn` that call other services.
    pub fn in_current<F: Future>(fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(Self::current().unwrap_or_default(), fut)
    }
}

/// Spawns `fut` on the current tokio runtime inside the current task's [`RequestContext`], so
/// the calls it makes carry the inbound request's deadline, trace context, `x-request-id` and
/// propagated headers (a plain `tokio::spawn` loses them: a task-local does not cross it).
///
/// ```
/// use mesh_tower::context::{self, RequestContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = RequestContext::new().with_deadline(tokio::time::Instant::now());
/// let seen = ctx
///     .scope(async { context::spawn(async { RequestContext::current() }).await })
///     .await
///     .unwrap();
/// assert!(seen.is_some());
/// # }
/// ```
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(RequestContext::in_current(fut))
}
