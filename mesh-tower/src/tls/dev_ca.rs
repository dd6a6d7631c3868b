//! A development certificate authority for local runs and tests.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use mesh_core::config::{CertificateFiles, CertificateLayout};
use mesh_core::identity::SpiffeId;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use super::error::CertError;
use super::identity::Identity;
use super::unix_now;

/// A self-signed ECDSA P-256 certificate authority that issues SPIFFE workload
/// certificates, as Istio's self-signed `istiod` CA does. For local runs and tests, not
/// production: its key lives in memory and goes with it.
pub struct DevCa {
    trust_domain: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate issued by a [`DevCa`], with its private key.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The certificate chain, PEM (the leaf; the CA is in [`DevCa::roots_pem`]).
    pub chain_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// What a [`DevCa`] puts in a certificate: tests vary these to get expired, not yet valid
/// and wrong-identity certificates.
#[derive(Clone, Debug)]
pub struct IssueOptions {
    /// The SPIFFE ID (URI SAN); `None` leaves it out.
    pub id: Option<SpiffeId>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// The start of validity.
    pub not_before: OffsetDateTime,
    /// The end of validity.
    pub not_after: OffsetDateTime,
}

impl IssueOptions {
    /// A certificate for `id`, valid from a minute ago for 24 hours, with no DNS names.
    pub fn new(id: SpiffeId) -> Self {
        let now = now();
        Self {
            id: Some(id),
            dns_names: Vec::new(),
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(24 * 3600),
        }
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix_now()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn generate(e: rcgen::Error) -> CertError {
    CertError::Generate(e.to_string())
}

impl DevCa {
    /// A new CA (a fresh key, valid from an hour ago for ten years) named after
    /// `trust_domain`.
    pub fn new(trust_domain: &str) -> Result<DevCa, CertError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, trust_domain);
        // A name of its own, so two CAs of one trust domain are told apart by name too.
        let tag: String = key
            .public_key_raw()
            .iter()
            .skip(1)
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        name.push(DnType::CommonName, format!("mesh development CA {tag}"));
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = now();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + Duration::from_secs(10 * 365 * 24 * 3600);
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(generate)?;
        Ok(DevCa {
            trust_domain: trust_domain.to_owned(),
            issuer,
        })
    }

    /// The CA certificate, PEM: the trust bundle of the workloads it issues for.
    pub fn roots_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The trust domain the CA was created for.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// A workload certificate for `id`: ECDSA P-256, the URI SAN `id`, serverAuth and
    /// clientAuth, valid from a minute ago for 24 hours.
    pub fn issue(&self, id: &SpiffeId) -> Result<IssuedCert, CertError> {
        self.issue_with(IssueOptions::new(id.clone()))
    }

    /// A workload certificate as `options` say.
    pub fn issue_with(&self, options: IssueOptions) -> Result<IssuedCert, CertError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, self.trust_domain.as_str());
        let common_name = match (&options.id, options.dns_names.first()) {
            (Some(id), _) => id.to_string(),
            (None, Some(dns)) => dns.clone(),
            (None, None) => "mesh workload".to_owned(),
        };
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        if let Some(id) = &options.id {
            params
                .subject_alt_names
                .push(SanType::URI(id.as_str().try_into().map_err(generate)?));
        }
        for dns in &options.dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns.as_str().try_into().map_err(generate)?));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = options.not_before;
        params.not_after = options.not_after;
        let cert = params.signed_by(&key, &self.issuer).map_err(generate)?;
        Ok(IssuedCert {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// An [`Identity`] for `id`, trusting this CA.
    pub fn identity(&self, id: &SpiffeId) -> Result<Identity, CertError> {
        let cert = self.issue(id)?;
        Identity::from_pem(
            cert.chain_pem.as_bytes(),
            cert.key_pem.as_bytes(),
            self.roots_pem().as_bytes(),
        )
    }
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCa")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// Writes the chain, the key and `roots_pem` into `dir` under the file names of
    /// `layout`, each atomically (a temporary file renamed over the old one), and returns
    /// the files with the default refresh interval.
    pub fn write(
        &self,
        dir: impl AsRef<Path>,
        layout: CertificateLayout,
        roots_pem: &str,
    ) -> io::Result<CertificateFiles> {
        let dir = dir.as_ref();
        let files = CertificateFiles::in_dir(dir, layout);
        write_atomically(&files.chain, self.chain_pem.as_bytes())?;
        write_atomically(&files.key, self.key_pem.as_bytes())?;
        write_atomically(&files.roots, roots_pem.as_bytes())?;
        Ok(files)
    }
}

/// Writes `contents` to a temporary file beside `path`, then renames it over `path`.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    std::fs::write(&temp, contents)?;
    std::fs::rename(&temp, path)
}
