//! Istio's `connectionPool.http.maxRequestsPerConnection` on an endpoint's pooled connections.
//!
//! Each connection the endpoint's connector makes carries a use counter in its connector
//! metadata ([`Connected::extra`]). A request asks the pool which connection it was given
//! ([`capture_connection`]), counts itself on that connection as soon as the pool hands it
//! over, and the request that reaches the limit poisons the connection ([`Connected::poison`]):
//! the pool never hands it out again, and it closes once that request is done with it.
//!
//! HTTP/1.1 connections carry one request at a time, so none carries more than the limit.
//! An HTTP/2 connection is shared: requests picking it up at the same instant as the one that
//! reaches the limit may still ride it, then it drains (its streams finish, no new ones start)
//! and a new connection takes the next requests, as Envoy drains a connection after
//! `max_requests_per_connection` streams.

use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use http::{Extensions, Request};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{
    CaptureConnection, Connected, Connection, capture_connection,
};
use hyper_util::rt::TokioIo;

use crate::transport::ClientStream;

/// How many requests one connection has been given; shared by the connection's metadata.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnectionUses(Arc<AtomicU32>);

impl ConnectionUses {
    /// Counts one more request and returns the total so far.
    fn record(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }

    /// Requests counted on the connection so far.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

pin_project_lite::pin_project! {
    /// A TCP connection to an endpoint, with a use counter in its metadata when the endpoint
    /// limits requests per connection.
    #[derive(Debug)]
    pub(crate) struct CountedIo {
        #[pin]
        io: TokioIo<ClientStream>,
        uses: Option<ConnectionUses>,
    }
}

impl CountedIo {
    /// Wraps `stream`; `counted` gives it a use counter.
    pub(crate) fn new(stream: ClientStream, counted: bool) -> Self {
        Self {
            io: TokioIo::new(stream),
            uses: counted.then(ConnectionUses::default),
        }
    }
}

impl Connection for CountedIo {
    fn connected(&self) -> Connected {
        let connected = self.io.connected();
        match &self.uses {
            Some(uses) => connected.extra(uses.clone()),
            None => connected,
        }
    }
}

impl Read for CountedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl Write for CountedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
}

/// One request's watch on the connection the pool gives it, until it has counted itself there.
#[derive(Debug)]
pub(crate) struct UseTracker {
    capture: CaptureConnection,
    limit: NonZeroU32,
}

impl UseTracker {
    /// Asks the pool to report which connection `req` is sent on; at `limit` requests that
    /// connection is retired.
    pub(crate) fn attach<B>(req: &mut Request<B>, limit: NonZeroU32) -> Self {
        Self {
            capture: capture_connection(req),
            limit,
        }
    }

    /// Counts the request on its connection once the pool has given it one, poisoning the
    /// connection at the limit; `false` while the request still waits for a connection.
    ///
    /// Called after each poll of the response future: the pool hands a connection over and
    /// reports it in the same poll, before any other request can take an HTTP/1.1 connection
    /// back from the pool.
    pub(crate) fn try_count(&self) -> bool {
        let metadata = self.capture.connection_metadata();
        let Some(connected) = metadata.as_ref() else {
            return false;
        };
        let mut extras = Extensions::new();
        connected.get_extras(&mut extras);
        if let Some(uses) = extras.get::<ConnectionUses>()
            && uses.record() >= self.limit.get()
        {
            connected.poison();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpStream;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    #[tokio::test]
    async fn a_counted_connection_carries_its_counter_in_its_metadata() {
        let (client, _server) = pair().await;
        let io = CountedIo::new(ClientStream::Plain(client), true);
        let mut extras = Extensions::new();
        io.connected().get_extras(&mut extras);
        let uses = extras.get::<ConnectionUses>().expect("a use counter");
        assert_eq!(uses.record(), 1);
        assert_eq!(uses.record(), 2);
        // The metadata shares one counter, however often it is read.
        let mut again = Extensions::new();
        io.connected().get_extras(&mut again);
        assert_eq!(
            again.get::<ConnectionUses>().map(ConnectionUses::count),
            Some(2)
        );
        // The connection's addresses are still there.
        assert!(
            again
                .get::<hyper_util::client::legacy::connect::HttpInfo>()
                .is_some()
        );
    }

    #[tokio::test]
    async fn an_uncounted_connection_has_no_counter() {
        let (client, _server) = pair().await;
        let io = CountedIo::new(ClientStream::Plain(client), false);
        let mut extras = Extensions::new();
        io.connected().get_extras(&mut extras);
        assert!(extras.get::<ConnectionUses>().is_none());
    }

    #[test]
    fn a_request_not_yet_given_a_connection_is_not_counted() {
        let mut req = Request::new(());
        let tracker = UseTracker::attach(&mut req, NonZeroU32::MIN);
        assert!(!tracker.try_count());
    }
}
