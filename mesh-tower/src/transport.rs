//! The byte stream under a client connection: plain TCP, or TLS over TCP.

use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::MaybeTls;

/// A connection to an endpoint: plaintext or TLS (mutual or not).
pub(crate) type ClientStream = MaybeTls<TlsStream<TcpStream>>;

impl Connection for ClientStream {
    /// The TCP connection's metadata; a TLS connection that agreed on HTTP/2 by ALPN says so,
    /// so the pool speaks HTTP/2 on it.
    fn connected(&self) -> Connected {
        match self {
            MaybeTls::Plain(tcp) => tcp.connected(),
            MaybeTls::Tls(tls) => {
                let (tcp, session) = tls.get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}
