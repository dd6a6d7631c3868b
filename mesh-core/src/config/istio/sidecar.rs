//! Istio's Sidecar, read for its `outboundTrafficPolicy.mode`.

use super::walk::{Node, Walker};
use crate::config::builder::MeshConfigBuilder;
use crate::config::{ConfigError, OutboundMode};

/// Reads a Sidecar's `spec` and sets the outbound mode it gives.
pub(crate) fn sidecar(
    spec: Node<'_>,
    w: &mut Walker,
    b: &mut MeshConfigBuilder,
) -> Result<(), ConfigError> {
    let mut o = spec.obj(w)?;
    let mut mode = None;
    if let Some(n) = o.field("outboundTrafficPolicy") {
        let mut p = n.obj(w)?;
        if let Some(m) = p.field("mode") {
            let text = m.str(w)?;
            mode = Some(OutboundMode::from_name(text).ok_or_else(|| {
                w.invalid(&m.path, text, "expected one of ALLOW_ANY, REGISTRY_ONLY")
            })?);
        }
        p.unsupported(
            w,
            "egressProxy",
            "an egress proxy is not implemented; calls go to their destination directly",
        )?;
        p.finish(w)?;
    }
    o.unsupported(
        w,
        "workloadSelector",
        "workloadSelector is not implemented; the Sidecar applies to this workload whatever its labels",
    )?;
    for (key, what) in [
        ("egress", "egress listeners are"),
        ("ingress", "ingress listeners are"),
        ("inboundConnectionPool", "inbound connection pools are"),
    ] {
        o.unsupported(w, key, &format!("{what} not implemented; ignored"))?;
    }
    o.finish(w)?;
    if let Some(mode) = mode {
        b.security.outbound.mode = mode;
    }
    Ok(())
}
