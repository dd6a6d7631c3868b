//! Why certificates could not be loaded and why a handshake failed.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use rustls::{AlertDescription, CertificateError};

use super::format_unix;
use super::verify::PeerIdentityError;

/// Why a certificate chain, private key or trust bundle could not be loaded, or a TLS
/// configuration could not be built. `what` names the part (and the file when there is one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Io {
        /// The part the file holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The text is not valid PEM (for example a file written half-way).
    #[error("{what} is not valid PEM: {reason}")]
    Pem {
        /// The part, and its file.
        what: String,
        /// What the PEM parser said.
        reason: String,
    },
    /// No `CERTIFICATE` block was found.
    #[error("{what} holds no certificate")]
    NoCertificate {
        /// The part, and its file.
        what: String,
    },
    /// No private key block (PKCS#8, PKCS#1 or SEC1) was found.
    #[error("{what} holds no private key")]
    NoKey {
        /// The part, and its file.
        what: String,
    },
    /// The private key is of a kind the crypto provider cannot sign with.
    #[error("{what} holds an unsupported private key: {reason}")]
    UnsupportedKey {
        /// The part, and its file.
        what: String,
        /// What the provider said.
        reason: String,
    },
    /// The private key is not the key of the leaf certificate.
    #[error("{what} does not match the public key of the leaf certificate")]
    KeyMismatch {
        /// The key part, and its file.
        what: String,
    },
    /// The leaf certificate is not a valid X.509 certificate.
    #[error("{what}: the leaf certificate cannot be parsed: {reason}")]
    BadCertificate {
        /// The part, and its file.
        what: String,
        /// What the parser said.
        reason: String,
    },
    /// The leaf certificate has no `spiffe://` URI SAN.
    #[error("{what}: the leaf certificate has no SPIFFE ID (a spiffe:// URI SAN)")]
    NoSpiffeId {
        /// The part, and its file.
        what: String,
    },
    /// The leaf certificate's `spiffe://` URI SAN is not a valid SPIFFE ID, or there are
    /// several.
    #[error("{what}: the leaf certificate's SPIFFE ID is invalid: {reason}")]
    InvalidSpiffeId {
        /// The part, and its file.
        what: String,
        /// Why.
        reason: String,
    },
    /// The leaf certificate's `notAfter` has passed.
    #[error("{what}: the leaf certificate expired at {}", format_unix(*not_after))]
    Expired {
        /// The part, and its file.
        what: String,
        /// `notAfter`, unix seconds.
        not_after: i64,
    },
    /// The leaf certificate's `notBefore` has not come yet.
    #[error("{what}: the leaf certificate is not valid before {}", format_unix(*not_before))]
    NotYetValid {
        /// The part, and its file.
        what: String,
        /// `notBefore`, unix seconds.
        not_before: i64,
    },
    /// The trust bundle holds a certificate that cannot be a trust anchor.
    #[error("{what} is not a valid trust bundle: {reason}")]
    InvalidTrustBundle {
        /// The part, and its file.
        what: String,
        /// Why.
        reason: String,
    },
    /// The mode needs a workload identity and none was given.
    #[error(
        "this mTLS mode needs a workload identity (certificate, key and trust bundle) and none is configured"
    )]
    NoIdentity,
    /// A client TLS setting the mode needs is missing.
    #[error("client TLS mode {mode} needs {setting}")]
    MissingSetting {
        /// The mode, by Istio's name.
        mode: &'static str,
        /// The setting, by Istio's name (such as `caCertificates`).
        setting: &'static str,
    },
    /// A TLS connector was asked for client TLS mode DISABLE.
    #[error("client TLS mode DISABLE is plaintext and has no TLS connector")]
    Disabled,
    /// rustls refused the configuration.
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
    /// A development certificate could not be generated.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
}

/// A failed TLS handshake: with whom, and why.
#[derive(Debug)]
pub struct HandshakeError {
    /// The other side's address, when known.
    pub peer: Option<SocketAddr>,
    /// Why it failed.
    pub reason: HandshakeReason,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer {
            Some(peer) => write!(f, "TLS handshake with {peer} failed: {}", self.reason),
            None => write!(
                f,
                "TLS handshake with an unknown peer failed: {}",
                self.reason
            ),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            HandshakeReason::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a TLS handshake failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeReason {
    /// The peer's certificate has expired.
    CertificateExpired,
    /// The peer's certificate is not valid yet.
    CertificateNotYetValid,
    /// The peer's certificate does not chain to a trusted CA.
    UnknownIssuer,
    /// The peer's certificate names none of the expected identities.
    WrongIdentity {
        /// The SPIFFE IDs (or names) that were accepted.
        expected: Vec<String>,
        /// The SPIFFE IDs (or names) the certificate holds.
        presented: Vec<String>,
    },
    /// The client's SPIFFE ID is of a trust domain the server does not accept.
    UntrustedDomain {
        /// The client's SPIFFE ID.
        presented: String,
        /// The trust domains the server accepts.
        trusted: Vec<String>,
    },
    /// The peer's certificate has no (valid) SPIFFE ID.
    NoSpiffeId,
    /// The client sent no certificate and the server requires one.
    NoClientCertificate,
    /// The client did not start with a TLS handshake on a STRICT port.
    NotTls,
    /// The peer ended the handshake with an alert: it refused our certificate (or our
    /// settings). The text is the alert.
    RejectedByPeer(String),
    /// The connection failed.
    Io(io::Error),
    /// Anything else (a protocol error, a bad server name).
    Other(String),
}

impl HandshakeReason {
    /// A short label for metrics: `expired`, `not_yet_valid`, `unknown_issuer`,
    /// `wrong_identity`, `untrusted_domain`, `no_spiffe_id`, `no_client_certificate`,
    /// `not_tls`, `rejected_by_peer`, `io` or `other`.
    pub fn label(&self) -> &'static str {
        match self {
            HandshakeReason::CertificateExpired => "expired",
            HandshakeReason::CertificateNotYetValid => "not_yet_valid",
            HandshakeReason::UnknownIssuer => "unknown_issuer",
            HandshakeReason::WrongIdentity { .. } => "wrong_identity",
            HandshakeReason::UntrustedDomain { .. } => "untrusted_domain",
            HandshakeReason::NoSpiffeId => "no_spiffe_id",
            HandshakeReason::NoClientCertificate => "no_client_certificate",
            HandshakeReason::NotTls => "not_tls",
            HandshakeReason::RejectedByPeer(_) => "rejected_by_peer",
            HandshakeReason::Io(_) => "io",
            HandshakeReason::Other(_) => "other",
        }
    }

    /// The reason behind an I/O error of a TLS stream: the handshake's own, or a later read
    /// or write. With TLS 1.3 a client finishes its handshake before the server has checked
    /// the client certificate, so a server's refusal reaches the client on its first read;
    /// this turns that error into [`HandshakeReason::RejectedByPeer`].
    pub fn from_io(err: io::Error) -> HandshakeReason {
        let rustls_error = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match rustls_error {
            Some(e) => HandshakeReason::from_rustls(e),
            None => HandshakeReason::Io(err),
        }
    }

    /// The reason behind a rustls error.
    pub fn from_rustls(err: &rustls::Error) -> HandshakeReason {
        match err {
            rustls::Error::InvalidCertificate(cert) => HandshakeReason::from_certificate(cert),
            rustls::Error::NoCertificatesPresented => HandshakeReason::NoClientCertificate,
            rustls::Error::AlertReceived(alert) => {
                HandshakeReason::RejectedByPeer(describe_alert(*alert))
            }
            other => HandshakeReason::Other(other.to_string()),
        }
    }

    fn from_certificate(err: &CertificateError) -> HandshakeReason {
        match err {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                HandshakeReason::CertificateExpired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                HandshakeReason::CertificateNotYetValid
            }
            // A certificate signed by another key under a trusted CA's name is as untrusted.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                HandshakeReason::UnknownIssuer
            }
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => HandshakeReason::WrongIdentity {
                expected: vec![server_name_text(expected)],
                presented: presented.clone(),
            },
            CertificateError::Other(other) => match other.0.downcast_ref::<PeerIdentityError>() {
                Some(e) => e.reason(),
                None => HandshakeReason::Other(format!("invalid peer certificate: {other}")),
            },
            other => HandshakeReason::Other(format!("invalid peer certificate: {other}")),
        }
    }
}

pub(crate) fn server_name_text(name: &rustls_pki_types::ServerName<'_>) -> String {
    match name {
        rustls_pki_types::ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        rustls_pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

fn describe_alert(alert: AlertDescription) -> String {
    let text = match alert {
        AlertDescription::BadCertificate => "bad certificate",
        AlertDescription::UnsupportedCertificate => "unsupported certificate",
        AlertDescription::CertificateRevoked => "certificate revoked",
        AlertDescription::CertificateExpired => "certificate expired or not yet valid",
        AlertDescription::CertificateUnknown => "certificate unknown",
        AlertDescription::UnknownCA => "unknown CA",
        AlertDescription::AccessDenied => "access denied",
        AlertDescription::CertificateRequired => "certificate required",
        AlertDescription::HandshakeFailure => "handshake failure",
        AlertDescription::NoApplicationProtocol => "no application protocol",
        AlertDescription::ProtocolVersion => "protocol version",
        AlertDescription::DecryptError => "decrypt error",
        other => return format!("{other:?}"),
    };
    text.to_owned()
}

impl fmt::Display for HandshakeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeReason::CertificateExpired => {
                f.write_str("the peer's certificate has expired")
            }
            HandshakeReason::CertificateNotYetValid => {
                f.write_str("the peer's certificate is not valid yet")
            }
            HandshakeReason::UnknownIssuer => {
                f.write_str("the peer's certificate is not issued by a trusted CA")
            }
            HandshakeReason::WrongIdentity {
                expected,
                presented,
            } => {
                if presented.is_empty() {
                    write!(
                        f,
                        "the peer's certificate names no identity; expected one of [{}]",
                        expected.join(", ")
                    )
                } else {
                    write!(
                        f,
                        "the peer presented [{}]; expected one of [{}]",
                        presented.join(", "),
                        expected.join(", ")
                    )
                }
            }
            HandshakeReason::UntrustedDomain { presented, trusted } => write!(
                f,
                "the peer's identity {presented} is not of a trusted domain [{}]",
                trusted.join(", ")
            ),
            HandshakeReason::NoSpiffeId => {
                f.write_str("the peer's certificate has no valid SPIFFE ID")
            }
            HandshakeReason::NoClientCertificate => {
                f.write_str("the client sent no certificate and mutual TLS requires one")
            }
            HandshakeReason::NotTls => {
                f.write_str("the client did not start TLS on a port that requires mutual TLS")
            }
            HandshakeReason::RejectedByPeer(alert) => {
                write!(f, "the peer refused the handshake (alert: {alert})")
            }
            HandshakeReason::Io(e) => write!(f, "I/O error: {e}"),
            HandshakeReason::Other(text) => f.write_str(text),
        }
    }
}

/// Counts a failed handshake and logs it at debug level.
pub(crate) fn failed(
    side: &'static str,
    peer: Option<SocketAddr>,
    reason: HandshakeReason,
) -> HandshakeError {
    metrics::counter!(super::HANDSHAKE_FAILURES, "side" => side, "reason" => reason.label())
        .increment(1);
    let err = HandshakeError { peer, reason };
    tracing::debug!(side, "{err}");
    err
}
