//! The server side: a PeerAuthentication mode as an acceptor.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::config::MtlsMode;
use mesh_core::identity::SpiffeId;
use rustls::ServerConfig;
use rustls::server::NoServerSessionStorage;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::error::{CertError, HandshakeError, HandshakeReason, failed};
use super::identity::{CurrentCert, Identity};
use super::provider;
use super::stream::MaybeTls;
use super::verify::{MeshClientVerifier, spiffe_id_of};

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Accepts connections as a PeerAuthentication mode says: STRICT (mutual TLS only),
/// PERMISSIVE (mutual TLS, TLS and plaintext on one port) or DISABLE (plaintext). Cloning
/// is cheap.
#[derive(Clone)]
pub struct TlsAcceptor {
    mode: MtlsMode,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// An accepted connection.
#[derive(Debug)]
pub struct Accepted {
    /// The connection, plaintext or TLS.
    pub io: ServerIo,
    /// The client's SPIFFE ID, when it presented a certificate.
    pub identity: Option<SpiffeId>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// A server connection, plaintext or TLS.
pub type ServerIo = MaybeTls<TlsStream<TcpStream>>;

impl TlsAcceptor {
    /// An acceptor for `mode`. STRICT needs an `identity`; PERMISSIVE without one accepts
    /// plaintext only. A client certificate is verified against the identity's current
    /// trust bundle and must carry a SPIFFE ID, of one of `trust_domains` when that is not
    /// empty. `alpn` is what the server offers (such as `h2`, `http/1.1`).
    pub fn new(
        mode: MtlsMode,
        identity: Option<Identity>,
        trust_domains: Vec<String>,
        alpn: Vec<Vec<u8>>,
    ) -> Result<TlsAcceptor, CertError> {
        let identity = match (mode, identity) {
            (MtlsMode::Disable, _) | (MtlsMode::Permissive, None) => {
                return Ok(TlsAcceptor { mode, tls: None });
            }
            (MtlsMode::Strict, None) => return Err(CertError::NoIdentity),
            (_, Some(identity)) => identity,
        };
        let provider = provider();
        let verifier = Arc::new(MeshClientVerifier {
            identity: identity.clone(),
            mandatory: mode == MtlsMode::Strict,
            trust_domains,
            algs: provider.signature_verification_algorithms,
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CertError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(CurrentCert(identity)));
        config.alpn_protocols = alpn;
        // Every connection verifies the client against the current trust bundle.
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(TlsAcceptor {
            mode,
            tls: Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        })
    }

    /// The mode.
    pub fn mode(&self) -> MtlsMode {
        self.mode
    }

    /// Accepts `tcp`: plaintext under DISABLE; under PERMISSIVE, TLS when the first byte
    /// (peeked, not consumed) opens a TLS handshake and plaintext otherwise; under STRICT,
    /// TLS with a client certificate, and [`HandshakeReason::NotTls`] for anything else
    /// (the caller closes the connection). The first byte is awaited, so callers accept
    /// each connection in a task of its own. A failure is counted in
    /// `mesh_tls_handshake_failures_total` (`side="server"`), except a client that closes
    /// before sending anything.
    pub async fn accept(&self, tcp: TcpStream) -> Result<Accepted, HandshakeError> {
        let Some(tls) = &self.tls else {
            return Ok(plain(tcp));
        };
        let peer = tcp.peer_addr().ok();
        let mut first = [0u8; 1];
        let n = tcp
            .peek(&mut first)
            .await
            .map_err(|e| failed("server", peer, HandshakeReason::Io(e)))?;
        if n == 0 || first[0] != TLS_HANDSHAKE_RECORD {
            return match self.mode {
                MtlsMode::Strict if n == 0 => Err(HandshakeError {
                    peer,
                    reason: HandshakeReason::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before sending anything",
                    )),
                }),
                MtlsMode::Strict => Err(failed("server", peer, HandshakeReason::NotTls)),
                _ => Ok(plain(tcp)),
            };
        }
        let stream = tls
            .accept(tcp)
            .await
            .map_err(|e| failed("server", peer, HandshakeReason::from_io(e)))?;
        let identity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|leaf| spiffe_id_of(leaf));
        Ok(Accepted {
            io: MaybeTls::Tls(Box::new(stream)),
            identity,
            tls: true,
        })
    }
}

fn plain(tcp: TcpStream) -> Accepted {
    Accepted {
        io: MaybeTls::Plain(tcp),
        identity: None,
        tls: false,
    }
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("mode", &self.mode)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl MaybeTls<TlsStream<TcpStream>> {
    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTls::Plain(tcp) => tcp,
            MaybeTls::Tls(tls) => tls.get_ref().0,
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// The protocol agreed by ALPN (`h2`, `http/1.1`), for TLS connections.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(tls) => tls.get_ref().1.alpn_protocol(),
        }
    }
}
