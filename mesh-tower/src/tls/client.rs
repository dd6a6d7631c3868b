//! The client side: a destination's `trafficPolicy.tls` as a connector.

use std::fmt;
use std::sync::Arc;

use mesh_core::config::{ClientTls, ClientTlsMode};
use mesh_core::identity::SpiffeId;
use rustls::ClientConfig;
use rustls::client::{ResolvesClientCert, Resumption, WebPkiServerVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::error::{CertError, HandshakeError, HandshakeReason, failed};
use super::identity::{CurrentCert, Identity, certified_key, parse_certs, parse_roots};
use super::provider;
use super::verify::{MeshServerVerifier, ServerCheck, spiffe_id_of};

/// Opens TLS connections to one destination as its `trafficPolicy.tls` says. Cloning is
/// cheap (the configuration is shared).
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    mode: ClientTlsMode,
    sni: Option<String>,
}

/// Presents one fixed certificate (MUTUAL's `clientCertificate`).
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn mode_name(mode: ClientTlsMode) -> &'static str {
    match mode {
        ClientTlsMode::Disable => "DISABLE",
        ClientTlsMode::Simple => "SIMPLE",
        ClientTlsMode::Mutual => "MUTUAL",
        ClientTlsMode::IstioMutual => "ISTIO_MUTUAL",
    }
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Io {
        what,
        path: path.to_owned(),
        source,
    })
}

impl TlsConnector {
    /// A connector for `settings`.
    ///
    /// - ISTIO_MUTUAL presents `identity`'s current certificate and verifies the server
    ///   against its current trust bundle (both read at each handshake, so a rotation
    ///   applies to new connections); the server's SPIFFE ID must be one of `expected`
    ///   (any SPIFFE ID when `expected` is empty). The server name is not checked, as with
    ///   Istio.
    /// - SIMPLE verifies the server against `caCertificates` and its name (or, when
    ///   `expected` is not empty, a URI or DNS SAN in `expected`); no client certificate.
    /// - MUTUAL is SIMPLE with `clientCertificate` and `privateKey` presented.
    /// - `insecureSkipVerify` accepts any server certificate.
    /// - DISABLE has no connector: [`CertError::Disabled`].
    ///
    /// The caller passes in `expected` the destination's `subjectAltNames`, or for
    /// ISTIO_MUTUAL without them the identity derived by
    /// [`ClientTls::expected_identity`]. `alpn` is offered as given (such as `h2`,
    /// `http/1.1`). Files are read once, here.
    pub fn new(
        settings: &ClientTls,
        identity: Option<&Identity>,
        expected: Vec<String>,
        alpn: Vec<Vec<u8>>,
    ) -> Result<TlsConnector, CertError> {
        let provider = provider();
        let mode = mode_name(settings.mode);
        let (check, client_cert): (ServerCheck, Option<Arc<dyn ResolvesClientCert>>) =
            match settings.mode {
                ClientTlsMode::Disable => return Err(CertError::Disabled),
                ClientTlsMode::IstioMutual => {
                    let identity = identity.ok_or(CertError::NoIdentity)?;
                    let check = if settings.insecure_skip_verify {
                        ServerCheck::Insecure
                    } else {
                        ServerCheck::Spiffe {
                            identity: identity.clone(),
                            expected,
                        }
                    };
                    (check, Some(Arc::new(CurrentCert(identity.clone()))))
                }
                ClientTlsMode::Simple | ClientTlsMode::Mutual => {
                    let check = if settings.insecure_skip_verify {
                        ServerCheck::Insecure
                    } else {
                        let path = settings.ca_certificates.as_deref().ok_or(
                            CertError::MissingSetting {
                                mode,
                                setting: "caCertificates",
                            },
                        )?;
                        let pem = read("the CA certificates", path)?;
                        let what = format!("the CA certificates {}", path.display());
                        let roots = Arc::new(parse_roots(&pem, &what)?);
                        if expected.is_empty() {
                            let webpki = WebPkiServerVerifier::builder_with_provider(
                                roots,
                                provider.clone(),
                            )
                            .build()
                            .map_err(|e| {
                                CertError::InvalidTrustBundle {
                                    what,
                                    reason: e.to_string(),
                                }
                            })?;
                            ServerCheck::Name(webpki)
                        } else {
                            ServerCheck::Sans { roots, expected }
                        }
                    };
                    let client_cert: Option<Arc<dyn ResolvesClientCert>> =
                        if settings.mode == ClientTlsMode::Mutual {
                            Some(Arc::new(FixedCert(Arc::new(mutual_cert(settings, mode)?))))
                        } else {
                            None
                        };
                    (check, client_cert)
                }
            };
        let verifier = Arc::new(MeshServerVerifier {
            check,
            algs: provider.signature_verification_algorithms,
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CertError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match client_cert {
            Some(resolver) => builder.with_client_cert_resolver(resolver),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn;
        // Every connection verifies the server against the current trust bundle.
        config.resumption = Resumption::disabled();
        Ok(TlsConnector {
            inner: tokio_rustls::TlsConnector::from(Arc::new(config)),
            mode: settings.mode,
            sni: settings.sni.clone(),
        })
    }

    /// The mode (ISTIO_MUTUAL presents the workload's own identity).
    pub(crate) fn mode(&self) -> ClientTlsMode {
        self.mode
    }

    /// The TLS handshake over `tcp`, sending `server_name` (or the configured `sni`) as
    /// the server name. A failure is counted in `mesh_tls_handshake_failures_total`
    /// (`side="client"`).
    ///
    /// With TLS 1.3 the client's handshake completes before the server has judged the
    /// client certificate: a refusal then shows on the first read, as an I/O error that
    /// [`HandshakeReason::from_io`] turns into [`HandshakeReason::RejectedByPeer`].
    pub async fn connect(
        &self,
        server_name: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, HandshakeError> {
        let peer = tcp.peer_addr().ok();
        let name = self.sni.as_deref().unwrap_or(server_name);
        let name = ServerName::try_from(name.to_owned()).map_err(|e| {
            failed(
                "client",
                peer,
                HandshakeReason::Other(format!("invalid server name {name:?}: {e}")),
            )
        })?;
        self.inner
            .connect(name, tcp)
            .await
            .map_err(|e| failed("client", peer, HandshakeReason::from_io(e)))
    }
}

/// MUTUAL's client certificate and key.
fn mutual_cert(settings: &ClientTls, mode: &'static str) -> Result<CertifiedKey, CertError> {
    let cert_path = settings
        .client_certificate
        .as_deref()
        .ok_or(CertError::MissingSetting {
            mode,
            setting: "clientCertificate",
        })?;
    let key_path = settings
        .private_key
        .as_deref()
        .ok_or(CertError::MissingSetting {
            mode,
            setting: "privateKey",
        })?;
    let chain = parse_certs(
        &read("the client certificate", cert_path)?,
        &format!("the client certificate {}", cert_path.display()),
    )?;
    certified_key(
        chain,
        &read("the private key", key_path)?,
        &format!("the private key {}", key_path.display()),
    )
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("mode", &self.mode)
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

/// Whether the connection negotiated HTTP/2 by ALPN (`h2`).
pub fn negotiated_h2<IO>(stream: &TlsStream<IO>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// The SPIFFE ID of the server's certificate, when it has one.
pub fn peer_identity<IO>(stream: &TlsStream<IO>) -> Option<SpiffeId> {
    let certs = stream.get_ref().1.peer_certificates()?;
    spiffe_id_of(certs.first()?)
}
