//! A hyper-util connector that opens TCP and then mutual TLS with mesh's rustls client
//! configuration, and nothing else: the `bare-tls` client's transport.
//!
//! The TLS stream is boxed behind a trait object because its type belongs to a crate the
//! benches do not name; the cost is one indirect call per read or write of a connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use mesh::tower::tls::TlsConnector;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A byte stream a connection runs on.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A TLS connection of the client, read and written through its box.
pub(crate) struct TlsConn(Box<dyn Stream>);

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Connects to the URI's address (an IP and a port) and runs the TLS handshake, sending
/// `server_name`. Cloning is cheap.
#[derive(Clone)]
pub(crate) struct TlsConnect {
    tls: TlsConnector,
    server_name: Arc<str>,
}

impl TlsConnect {
    /// A connector with `tls`'s configuration, sending `server_name` as the server name.
    pub(crate) fn new(tls: TlsConnector, server_name: &str) -> Self {
        Self {
            tls,
            server_name: server_name.into(),
        }
    }
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<TokioIo<TlsConn>, io::Error>> + Send>>;

impl tower::Service<Uri> for TlsConnect {
    type Response = TokioIo<TlsConn>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let addr = address(&uri)?;
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let tls = this
                .tls
                .connect(&this.server_name, tcp)
                .await
                .map_err(io::Error::other)?;
            Ok(TokioIo::new(TlsConn(Box::new(tls))))
        })
    }
}

/// The socket address of a URI whose host is an IP address.
fn address(uri: &Uri) -> io::Result<SocketAddr> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("URI {uri}: no IP:port"),
        )
    };
    let host = uri.host().ok_or_else(bad)?;
    let port = uri.port_u16().ok_or_else(bad)?;
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad())?;
    Ok(SocketAddr::new(ip, port))
}
