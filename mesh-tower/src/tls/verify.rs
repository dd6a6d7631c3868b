//! Certificate verifiers: rustls' WebPKI chain checks, then the SPIFFE identity.

use std::fmt;
use std::sync::Arc;

use mesh_core::identity::{SPIFFE_SCHEME, SpiffeId};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::error::{HandshakeReason, server_name_text};
use super::identity::Identity;

/// What a leaf certificate says about itself.
pub(crate) struct LeafInfo {
    /// URI SANs.
    pub(crate) uris: Vec<String>,
    /// DNS SANs.
    pub(crate) dns: Vec<String>,
    /// `notBefore`, unix seconds.
    pub(crate) not_before: i64,
    /// `notAfter`, unix seconds.
    pub(crate) not_after: i64,
}

impl LeafInfo {
    /// Parses a DER certificate.
    pub(crate) fn parse(der: &[u8]) -> Result<LeafInfo, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        let mut uris = Vec::new();
        let mut dns = Vec::new();
        if let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                    x509_parser::extensions::GeneralName::DNSName(name) => {
                        dns.push((*name).to_owned());
                    }
                    _ => {}
                }
            }
        }
        let validity = cert.validity();
        Ok(LeafInfo {
            uris,
            dns,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// The SPIFFE ID: the one `spiffe://` URI SAN. `Ok(None)` when there is none; an error
    /// when it is invalid or there are several (the SPIFFE standard allows exactly one).
    pub(crate) fn spiffe_id(&self) -> Result<Option<SpiffeId>, String> {
        let mut spiffe = self.uris.iter().filter(|u| u.starts_with(SPIFFE_SCHEME));
        let Some(first) = spiffe.next() else {
            return Ok(None);
        };
        if spiffe.next().is_some() {
            return Err("the certificate holds more than one spiffe:// URI SAN".to_owned());
        }
        first.parse().map(Some).map_err(|e| format!("{e}"))
    }
}

/// The SPIFFE ID of a peer's leaf certificate, if it has a valid one.
pub(crate) fn spiffe_id_of(der: &[u8]) -> Option<SpiffeId> {
    LeafInfo::parse(der).ok()?.spiffe_id().ok()?
}

/// An identity check of ours that failed; it travels through rustls as
/// `CertificateError::Other` and becomes a [`HandshakeReason`] again.
#[derive(Debug)]
pub(crate) enum PeerIdentityError {
    WrongIdentity {
        expected: Vec<String>,
        presented: Vec<String>,
    },
    UntrustedDomain {
        presented: String,
        trusted: Vec<String>,
    },
    NoSpiffeId,
}

impl PeerIdentityError {
    pub(crate) fn reason(&self) -> HandshakeReason {
        match self {
            PeerIdentityError::WrongIdentity {
                expected,
                presented,
            } => HandshakeReason::WrongIdentity {
                expected: expected.clone(),
                presented: presented.clone(),
            },
            PeerIdentityError::UntrustedDomain { presented, trusted } => {
                HandshakeReason::UntrustedDomain {
                    presented: presented.clone(),
                    trusted: trusted.clone(),
                }
            }
            PeerIdentityError::NoSpiffeId => HandshakeReason::NoSpiffeId,
        }
    }

    fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(self))))
    }
}

impl fmt::Display for PeerIdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reason().fmt(f)
    }
}

impl std::error::Error for PeerIdentityError {}

fn bad_encoding(_: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
}

/// The peer's SPIFFE ID, or `NoSpiffeId`.
fn require_spiffe(end_entity: &CertificateDer<'_>) -> Result<(SpiffeId, LeafInfo), rustls::Error> {
    let leaf = LeafInfo::parse(end_entity).map_err(bad_encoding)?;
    match leaf.spiffe_id() {
        Ok(Some(id)) => Ok((id, leaf)),
        _ => Err(PeerIdentityError::NoSpiffeId.into_rustls()),
    }
}

/// How a client checks the server's certificate.
#[derive(Debug)]
pub(crate) enum ServerCheck {
    /// ISTIO_MUTUAL: chain to the identity's current trust bundle, SPIFFE ID in `expected`
    /// (any SPIFFE ID when empty); no DNS-name check.
    Spiffe {
        identity: Identity,
        expected: Vec<String>,
    },
    /// SIMPLE / MUTUAL with `subjectAltNames`: chain to `roots`, a URI or DNS SAN in
    /// `expected`.
    Sans {
        roots: Arc<RootCertStore>,
        expected: Vec<String>,
    },
    /// SIMPLE / MUTUAL: WebPKI, chain and server name.
    Name(Arc<WebPkiServerVerifier>),
    /// `insecureSkipVerify`: any certificate (the handshake signature is still checked).
    Insecure,
}

/// The client's verifier of server certificates.
#[derive(Debug)]
pub(crate) struct MeshServerVerifier {
    pub(crate) check: ServerCheck,
    pub(crate) algs: WebPkiSupportedAlgorithms,
}

fn chain_to(
    roots: &RootCertStore,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(), rustls::Error> {
    let cert = ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &cert,
        roots,
        intermediates,
        now,
        algs.all,
    )
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            ServerCheck::Spiffe { identity, expected } => {
                let material = identity.material();
                chain_to(&material.roots, end_entity, intermediates, now, &self.algs)?;
                let (id, _) = require_spiffe(end_entity)?;
                if !expected.is_empty() && !expected.iter().any(|e| e == id.as_str()) {
                    return Err(PeerIdentityError::WrongIdentity {
                        expected: expected.clone(),
                        presented: vec![id.to_string()],
                    }
                    .into_rustls());
                }
            }
            ServerCheck::Sans { roots, expected } => {
                chain_to(roots, end_entity, intermediates, now, &self.algs)?;
                let leaf = LeafInfo::parse(end_entity).map_err(bad_encoding)?;
                let uri_match = leaf.uris.iter().any(|u| expected.contains(u));
                let dns_match = leaf
                    .dns
                    .iter()
                    .any(|d| expected.iter().any(|e| e.eq_ignore_ascii_case(d)));
                if !uri_match && !dns_match {
                    return Err(PeerIdentityError::WrongIdentity {
                        expected: expected.clone(),
                        presented: leaf.uris.into_iter().chain(leaf.dns).collect(),
                    }
                    .into_rustls());
                }
            }
            ServerCheck::Name(webpki) => {
                return webpki
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                    .map_err(|e| match e {
                        rustls::Error::InvalidCertificate(
                            CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. },
                        ) => PeerIdentityError::WrongIdentity {
                            expected: vec![server_name_text(server_name)],
                            presented: LeafInfo::parse(end_entity)
                                .map(|leaf| leaf.dns)
                                .unwrap_or_default(),
                        }
                        .into_rustls(),
                        e => e,
                    });
            }
            ServerCheck::Insecure => {}
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The server's verifier of client certificates: the chain by rustls' WebPKI client
/// verifier built from the identity's current trust bundle, then a SPIFFE ID of a trusted
/// domain.
#[derive(Debug)]
pub(crate) struct MeshClientVerifier {
    pub(crate) identity: Identity,
    /// STRICT: a certificate is required; PERMISSIVE: optional.
    pub(crate) mandatory: bool,
    /// Accepted trust domains; empty accepts any.
    pub(crate) trust_domains: Vec<String>,
    pub(crate) algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for MeshClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The trust bundle changes with rotation; clients of the mesh send their one
        // certificate whatever the hints say.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let material = self.identity.material();
        material
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        let (id, _) = require_spiffe(end_entity)?;
        if !self.trust_domains.is_empty()
            && !self.trust_domains.iter().any(|td| td == id.trust_domain())
        {
            return Err(PeerIdentityError::UntrustedDomain {
                presented: id.to_string(),
                trusted: self.trust_domains.clone(),
            }
            .into_rustls());
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
