//! Security settings: workload certificates, peer authentication (mTLS modes), request
//! authentication (JWT), authorization policies and the outbound traffic policy, as Istio's
//! `security.istio.io` documents and `meshConfig.outboundTrafficPolicy` describe them.
//!
//! The documents are kept as given (scoped by namespace and workload selector); the server
//! resolves which apply to its own workload with [`MeshConfig::inbound`](super::MeshConfig::inbound).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) mod check;
mod resolve;
#[cfg(test)]
mod tests;

/// The identity a destination's servers are expected to present by default: the service
/// account named like the service, in the destination's namespace and the client's trust
/// domain.
pub const DEFAULT_IDENTITY_TEMPLATE: &str = "spiffe://{trust_domain}/ns/{namespace}/sa/{service}";

/// The security part of a [`MeshConfig`](super::MeshConfig).
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityConfig {
    /// Where the workload's certificate, key and trust bundle are read from; `None` when the
    /// workload has no identity of its own (then nothing is mutual TLS unless a
    /// `MeshClientBuilder` or `MeshServer` is given an identity in code).
    pub certificates: Option<CertificateFiles>,
    /// Istio's root namespace (`istio-system`): policies there apply to every workload.
    pub root_namespace: String,
    /// Trust domains whose identities are accepted besides the workload's own (Istio's
    /// `trustDomainAliases`).
    pub trust_domain_aliases: Vec<String>,
    /// The mTLS mode when no [`PeerAuthentication`] applies: Istio's default, PERMISSIVE.
    pub default_mtls: MtlsMode,
    /// The SPIFFE ID an ISTIO_MUTUAL server is expected to present when its destination has
    /// no `subjectAltNames`, with `{trust_domain}`, `{namespace}` and `{service}` filled in
    /// ([`DEFAULT_IDENTITY_TEMPLATE`]; see [`ClientTls::expected_identity`]).
    pub identity_template: String,
    /// PeerAuthentication documents.
    pub peer_authentications: Vec<PeerAuthentication>,
    /// RequestAuthentication documents.
    pub request_authentications: Vec<RequestAuthentication>,
    /// AuthorizationPolicy documents.
    pub authorization_policies: Vec<AuthorizationPolicy>,
    /// Which destinations the client may call.
    pub outbound: OutboundTrafficPolicy,
    /// Proxies in front of the workload that append to `X-Forwarded-For` (Istio's
    /// `numTrustedProxies`, 0): authorization's `remote.ip` is the address that many hops
    /// from the right of the header; with 0 it is the connection's source.
    pub num_trusted_proxies: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            certificates: None,
            root_namespace: "istio-system".to_owned(),
            trust_domain_aliases: Vec::new(),
            default_mtls: MtlsMode::Permissive,
            identity_template: DEFAULT_IDENTITY_TEMPLATE.to_owned(),
            peer_authentications: Vec::new(),
            request_authentications: Vec::new(),
            authorization_policies: Vec::new(),
            outbound: OutboundTrafficPolicy::default(),
            num_trusted_proxies: 0,
        }
    }
}

/// The security a server applies: the documents of [`SecurityConfig`] resolved for its
/// workload by [`MeshConfig::inbound`](super::MeshConfig::inbound).
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSecurity {
    /// The mTLS mode of the server's ports (PERMISSIVE by default).
    pub mtls: MtlsMode,
    /// Ports with a mode of their own (`portLevelMtls`).
    pub port_mtls: BTreeMap<u16, MtlsMode>,
    /// Trust domains whose peer identities are accepted: the workload's own and its aliases;
    /// empty accepts any identity the trust bundle verifies.
    pub trust_domains: Vec<String>,
    /// The JWT rules of every RequestAuthentication that applies.
    pub jwt_rules: Vec<JwtRule>,
    /// Every AuthorizationPolicy that applies.
    pub authorization: Vec<AuthorizationPolicy>,
    /// [`SecurityConfig::num_trusted_proxies`].
    pub num_trusted_proxies: u32,
}

impl Default for ServerSecurity {
    fn default() -> Self {
        Self {
            mtls: MtlsMode::Permissive,
            port_mtls: BTreeMap::new(),
            trust_domains: Vec::new(),
            jwt_rules: Vec::new(),
            authorization: Vec::new(),
            num_trusted_proxies: 0,
        }
    }
}

impl ServerSecurity {
    /// The mode of a server listening on `port`.
    pub fn mtls_for_port(&self, port: u16) -> MtlsMode {
        self.port_mtls.get(&port).copied().unwrap_or(self.mtls)
    }
}

/// PEM files of a workload identity, reloaded when they change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The certificate chain, leaf first (Istio: `cert-chain.pem`; SPIRE: `svid.pem`;
    /// cert-manager: `tls.crt`).
    pub chain: PathBuf,
    /// The private key, PKCS#8, PKCS#1 or SEC1 (Istio: `key.pem`; SPIRE: `svid_key.pem`;
    /// cert-manager: `tls.key`).
    pub key: PathBuf,
    /// The trust bundle, one or more CA certificates (Istio: `root-cert.pem`; SPIRE:
    /// `bundle.pem`; cert-manager: `ca.crt`).
    pub roots: PathBuf,
    /// How often the files are checked for changes (5 s).
    pub refresh: Duration,
}

/// The known layouts of a directory of workload certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateLayout {
    /// Istio's `/etc/certs`: `cert-chain.pem`, `key.pem`, `root-cert.pem`.
    Istio,
    /// SPIRE's CSI driver / spiffe-helper: `svid.pem`, `svid_key.pem`, `bundle.pem`.
    Spire,
    /// cert-manager's CSI driver (and Kubernetes TLS secrets): `tls.crt`, `tls.key`, `ca.crt`.
    CertManager,
}

impl CertificateLayout {
    /// The file names of the chain, the key and the trust bundle.
    pub fn file_names(self) -> [&'static str; 3] {
        match self {
            CertificateLayout::Istio => ["cert-chain.pem", "key.pem", "root-cert.pem"],
            CertificateLayout::Spire => ["svid.pem", "svid_key.pem", "bundle.pem"],
            CertificateLayout::CertManager => ["tls.crt", "tls.key", "ca.crt"],
        }
    }

    /// Every layout, in the order a directory is probed.
    pub const ALL: [CertificateLayout; 3] = [
        CertificateLayout::Istio,
        CertificateLayout::Spire,
        CertificateLayout::CertManager,
    ];

    /// The layout's name in files: `istio`, `spire` or `certManager`.
    pub fn name(self) -> &'static str {
        match self {
            CertificateLayout::Istio => "istio",
            CertificateLayout::Spire => "spire",
            CertificateLayout::CertManager => "certManager",
        }
    }

    /// The layout named `name` ([`name`](Self::name)'s spelling).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The first layout, in [`ALL`](Self::ALL)'s order, whose three files all exist in
    /// `dir`; `None` when none does (or the directory cannot be read).
    pub fn detect(dir: impl AsRef<Path>) -> Option<Self> {
        let dir = dir.as_ref();
        Self::ALL
            .into_iter()
            .find(|l| l.file_names().iter().all(|f| dir.join(f).is_file()))
    }
}

impl fmt::Display for CertificateLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl CertificateFiles {
    /// The default interval at which the files are checked for changes.
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

    /// The files of `layout` in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>, layout: CertificateLayout) -> Self {
        let dir = dir.into();
        let [chain, key, roots] = layout.file_names();
        Self {
            chain: dir.join(chain),
            key: dir.join(key),
            roots: dir.join(roots),
            refresh: Self::DEFAULT_REFRESH,
        }
    }

    /// The files in `dir`, whose layout is told by which files exist
    /// ([`CertificateLayout::detect`]); the error names the directory and the file names
    /// looked for.
    pub fn detect(dir: impl Into<PathBuf>) -> Result<Self, String> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(format!("{} is not a readable directory", dir.display()));
        }
        match CertificateLayout::detect(&dir) {
            Some(layout) => Ok(Self::in_dir(dir, layout)),
            None => {
                let expected: Vec<String> = CertificateLayout::ALL
                    .iter()
                    .map(|l| format!("{} ({})", l.file_names().join(", "), l.name()))
                    .collect();
                Err(format!(
                    "{} holds no known set of certificate files; expected one of: {}",
                    dir.display(),
                    expected.join("; ")
                ))
            }
        }
    }
}

/// Peer-authentication (server-side mTLS) modes, by Istio's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MtlsMode {
    /// `STRICT`: only mutual TLS; a client certificate is required.
    Strict,
    /// `PERMISSIVE`: mutual TLS and plaintext on the same port, told apart by the first
    /// bytes.
    Permissive,
    /// `DISABLE`: plaintext only.
    Disable,
}

impl MtlsMode {
    /// Istio's name: `STRICT`, `PERMISSIVE` or `DISABLE`.
    pub fn name(self) -> &'static str {
        match self {
            MtlsMode::Strict => "STRICT",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Disable => "DISABLE",
        }
    }

    /// The mode of Istio's name `name` (`UNSET` is no mode: `None`).
    pub fn from_name(name: &str) -> Option<Self> {
        [MtlsMode::Strict, MtlsMode::Permissive, MtlsMode::Disable]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

impl fmt::Display for MtlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Istio's `PeerAuthentication`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAuthentication {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` is the workload's own namespace.
    pub namespace: Option<String>,
    /// `spec.selector.matchLabels`; `None` applies to every workload of the namespace.
    pub selector: Option<BTreeMap<String, String>>,
    /// `spec.mtls.mode`; `None` is `UNSET` (inherit from the namespace, then the mesh).
    pub mode: Option<MtlsMode>,
    /// `spec.portLevelMtls`: the mode of single ports (workload-selecting documents only).
    pub port_modes: BTreeMap<u16, MtlsMode>,
}

/// Istio's `RequestAuthentication`.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestAuthentication {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` is the workload's own namespace.
    pub namespace: Option<String>,
    /// `spec.selector.matchLabels`; `None` applies to every workload of the namespace.
    pub selector: Option<BTreeMap<String, String>>,
    /// `spec.jwtRules`.
    pub jwt_rules: Vec<JwtRule>,
}

/// One of Istio's `jwtRules`: how tokens of one issuer are found and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct JwtRule {
    /// `issuer`: the `iss` claim tokens of this rule carry.
    pub issuer: String,
    /// `audiences`: one of them must be in the `aud` claim; empty accepts any audience.
    pub audiences: Vec<String>,
    /// Where the verification keys come from.
    pub keys: JwksSource,
    /// `fromHeaders`; empty means `Authorization: Bearer <token>`.
    pub from_headers: Vec<JwtHeader>,
    /// `fromParams`; empty (with no headers and no cookies either) means `access_token`.
    pub from_params: Vec<String>,
    /// `fromCookies`.
    pub from_cookies: Vec<String>,
    /// `forwardOriginalToken`: keep the token's header for the application (false: removed).
    pub forward_original_token: bool,
    /// `outputClaimToHeaders`: claims copied into request headers.
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// `outputPayloadToHeader`: a header that gets the token's payload, base64url-encoded.
    pub output_payload_to_header: Option<String>,
}

/// Where a [`JwtRule`]'s keys come from.
#[derive(Clone, Debug, PartialEq)]
pub enum JwksSource {
    /// `jwks`: a JSON Web Key Set written inline.
    Inline(String),
    /// `jwksUri`: fetched over HTTP or HTTPS, cached and refreshed.
    Remote {
        /// The URI.
        uri: String,
        /// `timeout` of one fetch (5 s).
        timeout: Duration,
        /// How often the set is fetched again (20 min, as Istio's
        /// `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`).
        refresh: Duration,
    },
}

impl JwksSource {
    /// The default `timeout` of one JWKS fetch (Istio's, 5 s).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default interval at which a remote JWKS is fetched again (Istio's, 20 min).
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(20 * 60);

    /// A remote set at `uri` with the default timeout and refresh interval.
    pub fn remote(uri: impl Into<String>) -> Self {
        JwksSource::Remote {
            uri: uri.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            refresh: Self::DEFAULT_REFRESH,
        }
    }
}

/// One of `fromHeaders`: a header and the prefix before the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtHeader {
    /// The header's name, such as `x-jwt-assertion`.
    pub name: String,
    /// The prefix before the token, such as `Bearer ` (empty: none).
    pub prefix: String,
}

/// One of `outputClaimToHeaders`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimToHeader {
    /// The request header to set.
    pub header: String,
    /// The claim whose value it gets; nested claims by `.`, such as `nested.key`.
    pub claim: String,
}

/// Istio's `AuthorizationPolicy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationPolicy {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` is the workload's own namespace.
    pub namespace: Option<String>,
    /// `spec.selector.matchLabels`; `None` applies to every workload of the namespace (or of
    /// the mesh, in the root namespace).
    pub selector: Option<BTreeMap<String, String>>,
    /// `spec.action`.
    pub action: AuthzAction,
    /// `spec.rules`. An ALLOW policy without rules allows nothing; with one empty rule, it
    /// allows everything. A DENY policy without rules denies nothing.
    pub rules: Vec<AuthzRule>,
}

/// What a matching [`AuthorizationPolicy`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthzAction {
    /// `ALLOW`.
    Allow,
    /// `DENY`.
    Deny,
    /// `AUDIT`: the request is logged and counted; the decision is unchanged.
    Audit,
}

impl AuthzAction {
    /// Istio's name: `ALLOW`, `DENY` or `AUDIT`.
    pub fn name(self) -> &'static str {
        match self {
            AuthzAction::Allow => "ALLOW",
            AuthzAction::Deny => "DENY",
            AuthzAction::Audit => "AUDIT",
        }
    }

    /// The action of Istio's name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [AuthzAction::Allow, AuthzAction::Deny, AuthzAction::Audit]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

impl fmt::Display for AuthzAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule: it matches when one of `from`, one of `to` and every `when` match (an empty
/// list matches anything).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthzRule {
    /// `from[].source`.
    pub from: Vec<AuthzSource>,
    /// `to[].operation`.
    pub to: Vec<AuthzOperation>,
    /// `when[]`.
    pub when: Vec<AuthzCondition>,
}

/// A field with its values and its `not` values; both empty is "not set". It matches when
/// the value matches one of `values` (or `values` is empty) and none of `not_values`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Matcher {
    /// The values (such as `principals`).
    pub values: Vec<String>,
    /// The `not` values (such as `notPrincipals`).
    pub not_values: Vec<String>,
}

/// `from.source`. String values use Istio's matching: exact, `prefix*`, `*suffix`, or `*`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthzSource {
    /// `principals` / `notPrincipals`: the peer's identity, `<td>/ns/<ns>/sa/<sa>`.
    pub principals: Matcher,
    /// `requestPrincipals` / `notRequestPrincipals`: the token's `<iss>/<sub>`.
    pub request_principals: Matcher,
    /// `namespaces` / `notNamespaces`: the peer identity's namespace.
    pub namespaces: Matcher,
    /// `ipBlocks` / `notIpBlocks`: the connection's source address (address or CIDR).
    pub ip_blocks: Matcher,
    /// `remoteIpBlocks` / `notRemoteIpBlocks`: the original client address
    /// (`X-Forwarded-For`, else the source address).
    pub remote_ip_blocks: Matcher,
}

/// `to.operation`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthzOperation {
    /// `hosts` / `notHosts`: the `Host` header (case-insensitive).
    pub hosts: Matcher,
    /// `ports` / `notPorts`: the server's port.
    pub ports: Matcher,
    /// `methods` / `notMethods`.
    pub methods: Matcher,
    /// `paths` / `notPaths`: exact, `prefix*`, `*suffix`, `*`, or templates with `{*}` (one
    /// segment) and `{**}` (any rest).
    pub paths: Matcher,
}

/// One of `when`: a key such as `request.headers[x-token]`,
/// `request.auth.claims[groups]`, `source.ip`, `source.principal`, `destination.port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthzCondition {
    /// The key, as Istio writes it.
    pub key: String,
    /// `values` and `notValues`.
    pub matcher: Matcher,
}

/// `meshConfig.outboundTrafficPolicy` and the ServiceEntry hosts it allows.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OutboundTrafficPolicy {
    /// `mode`.
    pub mode: OutboundMode,
    /// Hosts outside the registry that may be called under REGISTRY_ONLY (Istio's
    /// ServiceEntry `hosts`): exact names or `*.suffix`.
    pub allowed_hosts: Vec<String>,
}

/// Istio's outbound traffic modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutboundMode {
    /// `ALLOW_ANY`: any host may be called (Istio's default).
    #[default]
    AllowAny,
    /// `REGISTRY_ONLY`: only hosts of the cluster (`*.svc.<cluster domain>`), configured
    /// destinations and allowed hosts; anything else fails with 502.
    RegistryOnly,
}

impl OutboundMode {
    /// Istio's name: `ALLOW_ANY` or `REGISTRY_ONLY`.
    pub fn name(self) -> &'static str {
        match self {
            OutboundMode::AllowAny => "ALLOW_ANY",
            OutboundMode::RegistryOnly => "REGISTRY_ONLY",
        }
    }

    /// The mode of Istio's name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [OutboundMode::AllowAny, OutboundMode::RegistryOnly]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

impl fmt::Display for OutboundMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Client-side TLS for one destination (Istio's `trafficPolicy.tls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    /// `mode`.
    pub mode: ClientTlsMode,
    /// `clientCertificate` (MUTUAL).
    pub client_certificate: Option<PathBuf>,
    /// `privateKey` (MUTUAL).
    pub private_key: Option<PathBuf>,
    /// `caCertificates` (SIMPLE, MUTUAL); `None` for ISTIO_MUTUAL (the workload's trust
    /// bundle).
    pub ca_certificates: Option<PathBuf>,
    /// `subjectAltNames`: the server must present one of them (a SPIFFE ID or a DNS name);
    /// empty for ISTIO_MUTUAL checks the destination's identity by convention (see
    /// [`ClientTls::expected_identity`]), for SIMPLE and MUTUAL the server name.
    pub subject_alt_names: Vec<String>,
    /// `sni`: the server name sent; the destination's host when unset.
    pub sni: Option<String>,
    /// `insecureSkipVerify`.
    pub insecure_skip_verify: bool,
}

/// Client TLS modes, by Istio's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientTlsMode {
    /// `DISABLE`: plaintext.
    Disable,
    /// `SIMPLE`: TLS, the server verified, no client certificate.
    Simple,
    /// `MUTUAL`: TLS with the client certificate and CA of the given files.
    Mutual,
    /// `ISTIO_MUTUAL`: mutual TLS with the workload identity's certificates.
    IstioMutual,
}

impl ClientTlsMode {
    /// Istio's name: `DISABLE`, `SIMPLE`, `MUTUAL` or `ISTIO_MUTUAL`.
    pub fn name(self) -> &'static str {
        match self {
            ClientTlsMode::Disable => "DISABLE",
            ClientTlsMode::Simple => "SIMPLE",
            ClientTlsMode::Mutual => "MUTUAL",
            ClientTlsMode::IstioMutual => "ISTIO_MUTUAL",
        }
    }

    /// The mode of Istio's name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            ClientTlsMode::Disable,
            ClientTlsMode::Simple,
            ClientTlsMode::Mutual,
            ClientTlsMode::IstioMutual,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
}

impl fmt::Display for ClientTlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ClientTls {
    /// Settings of `mode` with nothing else set.
    pub fn mode(mode: ClientTlsMode) -> Self {
        Self {
            mode,
            client_certificate: None,
            private_key: None,
            ca_certificates: None,
            subject_alt_names: Vec::new(),
            sni: None,
            insecure_skip_verify: false,
        }
    }

    /// The SPIFFE ID an ISTIO_MUTUAL server is expected to present when no
    /// `subjectAltNames` are configured: `template`
    /// ([`SecurityConfig::identity_template`]) with `{trust_domain}`, `{namespace}` and
    /// `{service}` (the destination host's first label) filled in.
    ///
    /// ```
    /// use mesh_core::config::{ClientTls, DEFAULT_IDENTITY_TEMPLATE};
    ///
    /// let id = ClientTls::expected_identity(DEFAULT_IDENTITY_TEMPLATE, "cluster.local", "default", "reviews");
    /// assert_eq!(id, "spiffe://cluster.local/ns/default/sa/reviews");
    /// ```
    pub fn expected_identity(
        template: &str,
        trust_domain: &str,
        namespace: &str,
        service: &str,
    ) -> String {
        template
            .replace("{trust_domain}", trust_domain)
            .replace("{namespace}", namespace)
            .replace("{service}", service)
    }
}

impl super::MeshConfig {
    /// The server stack's settings with [`ServerConfig::security`](super::ServerConfig::security)
    /// resolved for this workload from [`MeshConfig::security`](super::MeshConfig::security):
    /// the PeerAuthentication, RequestAuthentication and AuthorizationPolicy documents whose
    /// namespace and selector take in the workload.
    ///
    /// See [`SecurityConfig::server_security`] for the rules (Istio's): precedence of
    /// PeerAuthentication levels, and which RequestAuthentication and AuthorizationPolicy
    /// documents apply.
    pub fn inbound(&self) -> super::ServerConfig {
        let mut server = self.server.clone();
        server.security = self.security.server_security(&self.workload);
        server
    }
}
