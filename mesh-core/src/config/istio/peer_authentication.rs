//! Istio's PeerAuthentication: the mTLS mode of a workload's server.

use std::collections::BTreeMap;

use super::selector::selector;
use super::walk::{Node, Walker, shown};
use crate::config::security::check;
use crate::config::{ConfigError, MtlsMode, PeerAuthentication};

/// Reads a PeerAuthentication's `spec`.
pub(crate) fn peer_authentication(
    name: &str,
    namespace: Option<String>,
    spec: Node<'_>,
    w: &mut Walker,
) -> Result<PeerAuthentication, ConfigError> {
    let mut o = spec.obj(w)?;
    let selector = selector(&mut o, w)?;
    let mode = match o.field("mtls") {
        Some(m) => mtls(m, w)?,
        None => None,
    };
    let mut port_modes = BTreeMap::new();
    if let Some(ports) = o.field("portLevelMtls") {
        let (path, value) = (ports.path.clone(), shown(ports.value));
        let entries = ports.obj(w)?.entries();
        if selector.is_none() && !entries.is_empty() {
            return Err(w.invalid(
                &path,
                value,
                "portLevelMtls applies only to a policy with a workload selector (selector.matchLabels)",
            ));
        }
        for (key, node) in entries {
            let port = check::port_text(key).map_err(|r| w.invalid(&node.path, key, r))?;
            if let Some(mode) = mtls(node, w)? {
                port_modes.insert(port, mode);
            }
        }
    }
    o.finish(w)?;
    Ok(PeerAuthentication {
        name: name.to_owned(),
        namespace,
        selector,
        mode,
        port_modes,
    })
}

/// Reads `{mode: ...}`; `None` for UNSET (or no mode).
fn mtls(node: Node<'_>, w: &mut Walker) -> Result<Option<MtlsMode>, ConfigError> {
    let mut m = node.obj(w)?;
    let mode = match m.field("mode") {
        Some(n) => {
            let text = n.str(w)?;
            if text == "UNSET" {
                None
            } else {
                Some(MtlsMode::from_name(text).ok_or_else(|| {
                    w.invalid(
                        &n.path,
                        text,
                        "expected one of UNSET, DISABLE, PERMISSIVE, STRICT",
                    )
                })?)
            }
        }
        None => None,
    };
    m.finish(w)?;
    Ok(mode)
}
