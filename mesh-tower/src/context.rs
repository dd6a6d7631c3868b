//! The request context: what the server stack captures from an inbound request and the
//! client stack applies to every outbound call made while handling it.
//!
//! The server stack runs each handler inside [`RequestContext::scope`]; the client stack reads
//! [`RequestContext::current`] (a tokio task-local, so it costs no lookup in a map). Today the
//! context carries the inbound deadline; outbound calls are bounded by the time it leaves.
//!
//! A task-local does not follow `tokio::spawn`: a handler that spawns work which calls other
//! services passes the context along with [`RequestContext::in_current`] (or captures
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

use tokio::time::Instant;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// What an inbound request hands to the outbound calls made for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    deadline: Option<Instant>,
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

    /// The context of the request the current task is handling, if any.
    pub fn current() -> Option<RequestContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The deadline of the request the current task is handling, if any (cheaper than
    /// [`current`](Self::current) when only the deadline is needed).
    pub fn current_deadline() -> Option<Instant> {
        CURRENT.try_with(|c| c.deadline).ok().flatten()
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
