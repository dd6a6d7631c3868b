//! The workload identity: certificate chain, private key and trust bundle, swapped whole on
//! rotation.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use mesh_core::config::CertificateFiles;
use mesh_core::identity::SpiffeId;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::time::MissedTickBehavior;

use super::error::CertError;
use super::verify::LeafInfo;
use super::{CERTIFICATE_EXPIRY, RELOAD_FAILURES, format_unix, provider, unix_now};

/// A workload identity: its certificate chain (leaf first, carrying a SPIFFE ID), its
/// private key and the trust bundle its peers are verified against.
///
/// Cloning is cheap and every clone sees the same current material: a rotation (by
/// [`Identity::replace_pem`] or the reload task of [`Identity::from_files`]) applies to
/// every connector and acceptor built on it, from their next handshake on.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Material>,
}

/// One consistent set: a chain whose leaf matches the key, and a trust bundle.
pub(crate) struct Material {
    pub(crate) id: SpiffeId,
    pub(crate) certified: Arc<CertifiedKey>,
    pub(crate) roots: Arc<RootCertStore>,
    /// rustls' WebPKI client verifier on `roots`, built once per set.
    pub(crate) client_verifier: Arc<dyn ClientCertVerifier>,
    pub(crate) not_after: i64,
}

/// How the three parts are named in errors.
pub(crate) struct Names {
    chain: String,
    key: String,
    roots: String,
}

impl Names {
    fn pem() -> Self {
        Self {
            chain: "the certificate chain".to_owned(),
            key: "the private key".to_owned(),
            roots: "the trust bundle".to_owned(),
        }
    }

    fn files(files: &CertificateFiles) -> Self {
        Self {
            chain: format!("the certificate chain {}", files.chain.display()),
            key: format!("the private key {}", files.key.display()),
            roots: format!("the trust bundle {}", files.roots.display()),
        }
    }
}

/// Whether the leaf's validity dates are checked against the wall clock.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeCheck {
    Check,
    /// Only [`Identity::from_pem_any_time`] skips them.
    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    Skip,
}

/// Parses PEM certificates; `Ok` holds at least one.
pub(crate) fn parse_certs(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// Parses a PEM private key and pairs it with `chain`, checking that it is the leaf's key.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key_pem: &[u8],
    what: &str,
) -> Result<CertifiedKey, CertError> {
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => CertError::NoKey {
            what: what.to_owned(),
        },
        e => CertError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        },
    })?;
    let signing_key =
        provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertError::UnsupportedKey {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertError::KeyMismatch {
                what: what.to_owned(),
            })
        }
        Err(e) => Err(CertError::UnsupportedKey {
            what: what.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Parses a PEM trust bundle into a root store.
pub(crate) fn parse_roots(pem: &[u8], what: &str) -> Result<RootCertStore, CertError> {
    let mut store = RootCertStore::empty();
    for (i, cert) in parse_certs(pem, what)?.into_iter().enumerate() {
        store.add(cert).map_err(|e| CertError::InvalidTrustBundle {
            what: what.to_owned(),
            reason: format!("certificate {}: {e}", i + 1),
        })?;
    }
    Ok(store)
}

impl Material {
    fn load(
        chain_pem: &[u8],
        key_pem: &[u8],
        roots_pem: &[u8],
        names: &Names,
        time: TimeCheck,
    ) -> Result<Material, CertError> {
        let chain = parse_certs(chain_pem, &names.chain)?;
        let leaf = LeafInfo::parse(&chain[0]).map_err(|reason| CertError::BadCertificate {
            what: names.chain.clone(),
            reason,
        })?;
        let certified = certified_key(chain, key_pem, &names.key)?;
        let id = match leaf.spiffe_id() {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Err(CertError::NoSpiffeId {
                    what: names.chain.clone(),
                });
            }
            Err(reason) => {
                return Err(CertError::InvalidSpiffeId {
                    what: names.chain.clone(),
                    reason,
                });
            }
        };
        if time == TimeCheck::Check {
            let now = unix_now();
            if now < leaf.not_before {
                return Err(CertError::NotYetValid {
                    what: names.chain.clone(),
                    not_before: leaf.not_before,
                });
            }
            if now > leaf.not_after {
                return Err(CertError::Expired {
                    what: names.chain.clone(),
                    not_after: leaf.not_after,
                });
            }
        }
        let roots = Arc::new(parse_roots(roots_pem, &names.roots)?);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| CertError::InvalidTrustBundle {
                    what: names.roots.clone(),
                    reason: e.to_string(),
                })?;
        Ok(Material {
            id,
            certified: Arc::new(certified),
            roots,
            client_verifier,
            not_after: leaf.not_after,
        })
    }
}

impl Identity {
    fn new(material: Material) -> Self {
        set_expiry_gauge(&material);
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(material),
            }),
        }
    }

    /// An identity from PEM text: the chain (leaf first), the private key (PKCS#8, PKCS#1
    /// or SEC1) and the trust bundle. The leaf must carry a SPIFFE ID, match the key and be
    /// valid now.
    pub fn from_pem(
        chain_pem: &[u8],
        key_pem: &[u8],
        roots_pem: &[u8],
    ) -> Result<Identity, CertError> {
        Material::load(
            chain_pem,
            key_pem,
            roots_pem,
            &Names::pem(),
            TimeCheck::Check,
        )
        .map(Identity::new)
    }

    /// As [`Identity::from_pem`] without the validity dates: for tests whose peer presents
    /// an expired or not yet valid certificate (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub fn from_pem_any_time(
        chain_pem: &[u8],
        key_pem: &[u8],
        roots_pem: &[u8],
    ) -> Result<Identity, CertError> {
        Material::load(
            chain_pem,
            key_pem,
            roots_pem,
            &Names::pem(),
            TimeCheck::Skip,
        )
        .map(Identity::new)
    }

    /// An identity from the PEM files of `files`, read now.
    ///
    /// Called inside a tokio runtime, it also starts a task that reads the files again every
    /// `files.refresh` and, when their contents changed, loads the new set and swaps it in.
    /// A set that does not load (unparsable, written half-way, a key that is not the
    /// certificate's, expired, no SPIFFE ID) is logged, counted in
    /// `mesh_certificate_reload_failures_total` (once per distinct content) and the current
    /// set stays; it is tried again at every check, so the files may be rewritten in any
    /// order. The task ends when the last clone of the identity is dropped. A zero
    /// `refresh` reads the files once.
    pub fn from_files(files: &CertificateFiles) -> Result<Identity, CertError> {
        let contents = read_files(files)?;
        let material = Material::load(
            &contents[0],
            &contents[1],
            &contents[2],
            &Names::files(files),
            TimeCheck::Check,
        )?;
        let identity = Identity::new(material);
        if !files.refresh.is_zero()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(reload(
                Arc::downgrade(&identity.inner),
                files.clone(),
                contents,
            ));
        }
        Ok(identity)
    }

    /// Replaces the current set with new PEM text (checked as [`Identity::from_pem`]);
    /// on error the current set stays.
    pub fn replace_pem(
        &self,
        chain_pem: &[u8],
        key_pem: &[u8],
        roots_pem: &[u8],
    ) -> Result<(), CertError> {
        let material = Material::load(
            chain_pem,
            key_pem,
            roots_pem,
            &Names::pem(),
            TimeCheck::Check,
        )?;
        self.install(material);
        Ok(())
    }

    fn install(&self, material: Material) {
        self.inner.install(material);
    }

    /// The SPIFFE ID of the current leaf certificate.
    pub fn id(&self) -> SpiffeId {
        self.inner.current.load().id.clone()
    }

    /// The current leaf certificate's `notAfter`, unix seconds.
    pub fn not_after_unix(&self) -> i64 {
        self.inner.current.load().not_after
    }

    /// The current trust bundle.
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.inner.current.load().roots.clone()
    }

    /// The current set, for one handshake.
    pub(crate) fn material(&self) -> Arc<Material> {
        self.inner.current.load_full()
    }
}

impl Inner {
    fn install(&self, material: Material) {
        set_expiry_gauge(&material);
        self.current.store(Arc::new(material));
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.inner.current.load();
        f.debug_struct("Identity")
            .field("id", &current.id)
            .field("not_after", &format_unix(current.not_after))
            .finish()
    }
}

fn set_expiry_gauge(material: &Material) {
    // Seconds since 1970 fit an f64 exactly.
    metrics::gauge!(CERTIFICATE_EXPIRY, "identity" => material.id.to_string())
        .set(material.not_after as f64);
}

fn read_files(files: &CertificateFiles) -> Result<[Vec<u8>; 3], CertError> {
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| CertError::Io {
            what,
            path: path.to_owned(),
            source,
        })
    };
    Ok([
        read("the certificate chain", &files.chain)?,
        read("the private key", &files.key)?,
        read("the trust bundle", &files.roots)?,
    ])
}

/// The reload task of [`Identity::from_files`]. The files are small and read with
/// `std::fs` once per interval.
async fn reload(identity: Weak<Inner>, files: CertificateFiles, mut loaded: [Vec<u8>; 3]) {
    let names = Names::files(&files);
    let mut interval = tokio::time::interval(files.refresh);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval.tick().await;
    // What the last failure was about, so that a bad set is reported once, not every check.
    let mut last_failure: Option<u64> = None;
    loop {
        interval.tick().await;
        let Some(inner) = identity.upgrade() else {
            return;
        };
        let (fingerprint, err) = match read_files(&files) {
            Ok(contents) if contents == loaded => {
                last_failure = None;
                continue;
            }
            Ok(contents) => {
                match Material::load(
                    &contents[0],
                    &contents[1],
                    &contents[2],
                    &names,
                    TimeCheck::Check,
                ) {
                    Ok(material) => {
                        tracing::info!(
                            identity = %material.id,
                            not_after = %format_unix(material.not_after),
                            "workload certificate reloaded"
                        );
                        inner.install(material);
                        loaded = contents;
                        last_failure = None;
                        continue;
                    }
                    Err(e) => (fingerprint(&contents), e),
                }
            }
            Err(e) => (fingerprint(&e.to_string()), e),
        };
        if last_failure != Some(fingerprint) {
            last_failure = Some(fingerprint);
            metrics::counter!(RELOAD_FAILURES).increment(1);
            tracing::warn!("workload certificate not reloaded, the current one stays: {err}");
        }
    }
}

fn fingerprint(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Presents the identity's current certificate, on either side of a handshake.
#[derive(Debug)]
pub(crate) struct CurrentCert(pub(crate) Identity);

impl rustls::client::ResolvesClientCert for CurrentCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.material().certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::ResolvesServerCert for CurrentCert {
    fn resolve(&self, _client_hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.material().certified.clone())
    }
}
