//! TLS termination for browsers at the gateway: a certificate and key of the user's, or one
//! issued by a development CA for a host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh::SpiffeId;
use mesh::tower::tls::{DevCa, IssueOptions};
use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::GatewayError;

/// The certificate the gateway presents to browsers: a chain and key, PEM.
#[derive(Clone)]
pub struct GatewayTls {
    chain_pem: String,
    key_pem: String,
    ca_pem: Option<String>,
}

impl std::fmt::Debug for GatewayTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayTls")
            .field("self_issued", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl GatewayTls {
    /// A certificate chain (leaf first) and its private key, PEM.
    pub fn from_pem(chain_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        Self {
            chain_pem: chain_pem.into(),
            key_pem: key_pem.into(),
            ca_pem: None,
        }
    }

    /// Reads a certificate chain file and a key file (PEM).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, GatewayError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| GatewayError::ReadTls {
                path: PathBuf::from(path),
                source,
            })
        };
        Ok(Self::from_pem(read(cert)?, read(key)?))
    }

    /// A certificate for the DNS name `host` (such as `localhost`) from a new development
    /// CA, whose certificate [`GatewayTls::ca_pem`] gives (for `curl --cacert`).
    pub fn self_issued(host: &str) -> Result<Self, GatewayError> {
        let ca = DevCa::new("cluster.local").map_err(|e| GatewayError::Tls(e.to_string()))?;
        // The options start from a workload identity; a browser certificate has none.
        let placeholder = SpiffeId::workload("cluster.local", "istio-system", "gateway")
            .map_err(|e| GatewayError::Tls(e.to_string()))?;
        let mut options = IssueOptions::new(placeholder);
        options.id = None;
        options.dns_names = vec![host.to_owned()];
        let issued = ca
            .issue_with(options)
            .map_err(|e| GatewayError::Tls(e.to_string()))?;
        Ok(Self {
            chain_pem: issued.chain_pem,
            key_pem: issued.key_pem,
            ca_pem: Some(ca.roots_pem()),
        })
    }

    /// The issuing CA's certificate, PEM, for a [`GatewayTls::self_issued`] certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The rustls server config: TLS 1.2 and 1.3 on aws-lc-rs, no client certificates,
    /// ALPN `h2` and `http/1.1`.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, GatewayError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| GatewayError::Tls(format!("{what}: {e}"));
        let chain = CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("certificate", &e))?;
        if chain.is_empty() {
            return Err(GatewayError::Tls(
                "certificate: no PEM certificate".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| bad("private key", &e))?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| bad("protocol versions", &e))?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .map_err(|e| bad("certificate and key", &e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_issued_and_bad_pem() {
        let tls = GatewayTls::self_issued("localhost").unwrap();
        assert!(tls.server_config().is_ok());
        assert!(
            tls.ca_pem()
                .is_some_and(|pem| pem.contains("BEGIN CERTIFICATE"))
        );
        let bad = GatewayTls::from_pem("not a certificate", "not a key");
        assert!(matches!(bad.server_config(), Err(GatewayError::Tls(_))));
    }
}
