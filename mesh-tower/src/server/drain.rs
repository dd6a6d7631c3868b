//! Connections through shutdown: the phases, `Connection: close` on HTTP/1.1 answers while
//! draining, GOAWAY on HTTP/2 connections, and the cut at the end of the grace period.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use http::header::{CONNECTION, HeaderValue};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio::sync::{Notify, watch};
use tower::util::Oneshot;

use super::Peer;
use crate::BoxError;
use crate::tls::ServerIo;

/// Where a server is in its shutdown; each phase follows the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    /// Accepting and serving.
    Serving,
    /// Not accepting; HTTP/2 connections have had GOAWAY, HTTP/1.1 answers say
    /// `Connection: close`.
    Draining,
    /// Every connection is shutting down gracefully: idle ones close, busy ones close after
    /// their requests.
    Closing,
    /// The grace period is over: whatever is left is dropped.
    Cut,
}

/// What every connection of one server shares about its shutdown.
#[derive(Debug)]
pub(super) struct Shutdown {
    /// Set once shutdown starts: read for every response, so kept apart from the channel.
    draining: AtomicBool,
    phase: watch::Sender<Phase>,
}

impl Shutdown {
    pub(super) fn new() -> Self {
        Self {
            draining: AtomicBool::new(false),
            phase: watch::Sender::new(Phase::Serving),
        }
    }

    /// Moves to `phase` and tells every connection.
    pub(super) fn enter(&self, phase: Phase) {
        if phase >= Phase::Draining {
            self.draining.store(true, Ordering::Relaxed);
        }
        self.phase.send_replace(phase);
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(super) fn executor(&self) -> StreamExecutor {
        StreamExecutor {
            phase: self.phase.subscribe(),
        }
    }
}

/// What a connection's requests tell its task: whether it speaks HTTP/2.
#[derive(Debug, Default)]
struct ConnState {
    h2: AtomicBool,
    h2_seen: Notify,
}

impl ConnState {
    fn saw_h2(&self) {
        if !self.h2.load(Ordering::Relaxed) && !self.h2.swap(true, Ordering::Relaxed) {
            self.h2_seen.notify_one();
        }
    }
}

/// Spawns hyper's HTTP/2 stream tasks so that the end of the grace period cuts them too.
#[derive(Clone, Debug)]
pub(super) struct StreamExecutor {
    phase: watch::Receiver<Phase>,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, stream: F) {
        let mut phase = self.phase.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                _ = stream => {}
                // Cut, or the server is gone.
                _ = phase.wait_for(|p| *p == Phase::Cut) => {}
            }
        });
    }
}

/// The server stack as hyper calls it on one connection: marks HTTP/1.x answers written
/// during shutdown with `Connection: close`, and tells the connection's task when it turns
/// out to be HTTP/2.
struct ConnService<S> {
    stack: S,
    shutdown: Arc<Shutdown>,
    conn: Arc<ConnState>,
    /// The connection's caller, given to every request as an extension.
    peer: Peer,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnService<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = DrainFuture<Oneshot<S, Request<Incoming>>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.peer.clone());
        let http1 = req.version() < Version::HTTP_2;
        if !http1 {
            self.conn.saw_h2();
        }
        DrainFuture {
            inner: Oneshot::new(self.stack.clone(), req),
            http1,
            shutdown: self.shutdown.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ConnService`].
    struct DrainFuture<F> {
        #[pin]
        inner: F,
        http1: bool,
        shutdown: Arc<Shutdown>,
    }
}

impl<F, B> Future for DrainFuture<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        // Decided when the answer is ready, so a request that began before shutdown and
        // ends during it closes its connection too; the caller's next request opens a new
        // connection, which goes to another endpoint.
        if *this.http1 && this.shutdown.is_draining() {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

/// Serves one accepted connection until it closes, following the shutdown phases.
pub(super) async fn connection<S, B>(
    builder: Arc<auto::Builder<StreamExecutor>>,
    stream: ServerIo,
    peer: Peer,
    stack: S,
    shutdown: Arc<Shutdown>,
) where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut phase = shutdown.phase.subscribe();
    let conn = Arc::new(ConnState::default());
    let service = ConnService {
        stack,
        shutdown,
        conn: conn.clone(),
        peer,
    };
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut h2 = false;
    let mut graceful = false;
    loop {
        let now = *phase.borrow_and_update();
        if now == Phase::Cut {
            return;
        }
        // HTTP/2 gets GOAWAY as soon as shutdown starts; HTTP/1.1 (and a connection that
        // has sent nothing yet) when the drain period ends.
        if !graceful && (now == Phase::Closing || (now == Phase::Draining && h2)) {
            connection.as_mut().graceful_shutdown();
            graceful = true;
        }
        tokio::select! {
            _ = connection.as_mut() => return,
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = conn.h2_seen.notified(), if !h2 => h2 = true,
        }
    }
}
