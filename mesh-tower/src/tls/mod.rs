//! TLS: workload certificates and mutual TLS on both stacks, as Istio's sidecars do it.
//!
//! - [`Identity`] holds the workload's certificate chain, key and trust bundle, read from PEM
//!   files (Istio's, SPIRE's or cert-manager's layout) and reloaded when they change, so a
//!   rotation never needs a restart and a bad rewrite never breaks service.
//! - [`TlsConnector`] is the client side of a destination's `trafficPolicy.tls`:
//!   ISTIO_MUTUAL checks the server's SPIFFE ID, SIMPLE and MUTUAL check the server name or
//!   the `subjectAltNames`.
//! - [`TlsAcceptor`] is the server side of a PeerAuthentication mode: STRICT, PERMISSIVE
//!   (TLS and plaintext on one port, told apart by the first byte) or DISABLE; the client's
//!   SPIFFE ID comes out with the connection.
//! - [`DevCa`] issues certificates for local runs and tests.
//!
//! Every configuration is built on the aws-lc-rs provider explicitly, never on the process
//! default. Session resumption is off on both sides, so every connection verifies the peer
//! against the current trust bundle and presents the current certificate.

mod client;
mod dev_ca;
mod error;
mod identity;
mod server;
mod stream;
mod verify;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use client::{TlsConnector, negotiated_h2, peer_identity};
pub use dev_ca::{DevCa, IssueOptions, IssuedCert};
pub use error::{CertError, HandshakeError, HandshakeReason};
pub use identity::Identity;
pub use server::{Accepted, ServerIo, TlsAcceptor};
pub use stream::MaybeTls;

/// The counter of failed TLS handshakes, by `side` and `reason`.
pub const HANDSHAKE_FAILURES: &str = "mesh_tls_handshake_failures_total";
/// The gauge of the workload certificate's expiry (unix seconds), by `identity`.
pub const CERTIFICATE_EXPIRY: &str = "mesh_certificate_expiry_timestamp_seconds";
/// The counter of certificate file sets that could not be loaded (the old set was kept).
pub const RELOAD_FAILURES: &str = "mesh_certificate_reload_failures_total";

/// The one crypto provider of every configuration mesh builds: aws-lc-rs.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

pub(crate) use crate::clock::unix_now;

/// A unix time as `2025-01-31T12:00:00Z`, for messages.
pub(crate) fn format_unix(ts: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("unix time {ts}"),
    }
}
