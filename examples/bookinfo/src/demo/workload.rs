//! One workload of the demo: its mesh config, identity, client, telemetry and admin server.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use mesh::core::config::{Format, MtlsMode, ServerConfig};
use mesh::tower::tls::DevCa;
use mesh::{Identity, MeshClient, MeshConfig, SpiffeId, Telemetry};

use super::DemoError;
use super::network::Workload;

/// The identity template of Bookinfo's service accounts: `reviews` serves as
/// `spiffe://cluster.local/ns/default/sa/bookinfo-reviews`.
pub const IDENTITY_TEMPLATE: &str = "spiffe://{trust_domain}/ns/{namespace}/sa/bookinfo-{service}";

/// The namespace every workload of the demo runs in.
pub const NAMESPACE: &str = "default";

/// What one workload is built from.
pub(super) struct Parts {
    pub(super) config: MeshConfig,
    pub(super) identity: Identity,
    pub(super) telemetry: Telemetry,
    pub(super) client: MeshClient,
}

/// Mesh's own document for `workload`: its names, the demo's DNS server, STRICT mTLS with
/// Bookinfo's identities, `end-user` and the `user` cookie propagated, a quick shutdown.
pub fn mesh_document(workload: Workload, dns: SocketAddr) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "workload: {{service: {}, namespace: {NAMESPACE}, serviceAccount: {}, podName: {}, version: {}}}",
        workload.service(),
        workload.service_account(),
        workload.pod_name(),
        workload.version(),
    );
    let _ = writeln!(text, "discovery: {{nameservers: [\"{dns}\"]}}");
    let _ = writeln!(
        text,
        "security: {{mtls: STRICT, identityTemplate: \"{IDENTITY_TEMPLATE}\"}}"
    );
    text.push_str("telemetry: {propagateHeaders: [end-user], propagateCookies: [user]}\n");
    text.push_str("server: {shutdown: {drain: 0s, grace: 5s}}\n");
    text
}

/// The Istio documents of the file `path` (YAML), read once for every workload.
pub(super) fn read_documents(path: &Path) -> Result<String, DemoError> {
    if Format::from_path(path) != Some(Format::Yaml) {
        return Err(DemoError::ConfigFormat(path.to_owned()));
    }
    std::fs::read_to_string(path).map_err(|source| DemoError::ReadConfig {
        path: path.to_owned(),
        source,
    })
}

/// `workload`'s config: its mesh document, then `documents` (Istio's, as YAML text).
pub(super) fn config(
    workload: Workload,
    dns: SocketAddr,
    documents: &str,
) -> Result<MeshConfig, DemoError> {
    let mut text = mesh_document(workload, dns);
    if !documents.is_empty() {
        text.push_str("---\n");
        text.push_str(documents);
    }
    MeshConfig::from_str(&text, Format::Yaml).map_err(DemoError::Config)
}

/// `workload`'s server settings: [`MeshConfig::inbound`] (its PeerAuthentication,
/// RequestAuthentication and AuthorizationPolicy documents), except that the gateway takes
/// traffic from outside the mesh: no PeerAuthentication applies to it, as none applies to
/// Istio's ingress gateway. Used at the start and on every reload.
pub(super) fn inbound(workload: Workload, config: &MeshConfig) -> ServerConfig {
    let mut inbound = config.inbound();
    if workload == Workload::Gateway {
        inbound.security.mtls = MtlsMode::Disable;
        inbound.security.port_mtls.clear();
    }
    inbound
}

/// Builds `workload`'s config (its mesh document, then `documents`: Istio's, as YAML text),
/// identity, telemetry and client.
pub(super) fn build(
    workload: Workload,
    dns: SocketAddr,
    documents: &str,
    ca: &DevCa,
) -> Result<Parts, DemoError> {
    let config = config(workload, dns, documents)?;
    let id = SpiffeId::workload(
        &config.workload.trust_domain,
        NAMESPACE,
        &workload.service_account(),
    )
    .map_err(|e| DemoError::Identity(e.to_string()))?;
    let identity = ca
        .identity(&id)
        .map_err(|e| DemoError::Identity(e.to_string()))?;
    let telemetry =
        Telemetry::from_config(&config).map_err(|e| DemoError::Telemetry(e.to_string()))?;
    let client = MeshClient::builder()
        .config(config.clone())
        .identity(identity.clone())
        .telemetry(telemetry.clone())
        .build()
        .map_err(|e| DemoError::Client(e.to_string()))?;
    Ok(Parts {
        config,
        identity,
        telemetry,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reviews::Version;

    #[test]
    fn the_mesh_document_is_valid_and_strict() {
        let text = mesh_document(
            Workload::Reviews(Version::V2),
            "127.0.0.1:5353".parse().unwrap(),
        );
        let config = MeshConfig::from_str(&text, Format::Yaml).unwrap();
        assert_eq!(config.workload.service, "reviews");
        assert_eq!(config.workload.version.as_deref(), Some("v2"));
        assert_eq!(config.workload.pod_name.as_deref(), Some("reviews-v2"));
        assert_eq!(config.workload.service_account, "bookinfo-reviews");
        assert_eq!(config.inbound().security.mtls, MtlsMode::Strict);
        assert_eq!(config.security.identity_template, IDENTITY_TEMPLATE);
    }
}
