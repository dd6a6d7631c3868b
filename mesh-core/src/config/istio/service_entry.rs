//! Istio's ServiceEntry, read for its `hosts`: under REGISTRY_ONLY, the hosts that may be
//! called besides those of the cluster.

use super::walk::{Node, Walker};
use crate::config::ConfigError;
use crate::config::builder::MeshConfigBuilder;
use crate::config::security::check;

/// Reads a ServiceEntry's `spec` and adds its hosts to the allowed outbound hosts.
pub(crate) fn service_entry(
    spec: Node<'_>,
    w: &mut Walker,
    b: &mut MeshConfigBuilder,
) -> Result<(), ConfigError> {
    let mut o = spec.obj(w)?;
    let hosts_node = o.required(w, "hosts")?;
    let hosts_path = hosts_node.path.clone();
    let mut hosts = Vec::new();
    for n in hosts_node.list(w)? {
        let host = n.str(w)?;
        check::egress_host(host).map_err(|r| w.invalid(&n.path, host, r))?;
        hosts.push(host.to_ascii_lowercase());
    }
    if hosts.is_empty() {
        return Err(w.invalid(&hosts_path, "[]", "must list at least one host"));
    }
    if let Some(n) = o.field("location") {
        let location = n.str(w)?;
        if !matches!(location, "MESH_EXTERNAL" | "MESH_INTERNAL") {
            return Err(w.invalid(
                &n.path,
                location,
                "expected one of MESH_EXTERNAL, MESH_INTERNAL",
            ));
        }
    }
    for (key, what) in [
        ("addresses", "virtual addresses are"),
        ("ports", "port declarations are"),
        ("resolution", "the resolution mode is"),
        ("endpoints", "static endpoints are"),
        ("workloadSelector", "workload selection is"),
        ("subjectAltNames", "subject alternative names are"),
        ("exportTo", "exportTo is"),
    ] {
        o.unsupported(
            w,
            key,
            &format!(
                "{what} not implemented; the hosts are allowed as egress destinations and reached through DNS"
            ),
        )?;
    }
    o.finish(w)?;
    let allowed = &mut b.security.outbound.allowed_hosts;
    for host in hosts {
        if !allowed.contains(&host) {
            allowed.push(host);
        }
    }
    Ok(())
}
