//! Istio's DestinationRule, merged into the config's destinations.
//!
//! The rule's `trafficPolicy` is laid over the destination with the same host and no port
//! (created when there is none); each port of `portLevelSettings` becomes (or is laid over) the
//! destination with that host and port. Subsets keep their labels; their endpoints default to
//! the DNS name `<first label of host>-<subset>`.

use std::collections::BTreeMap;

use super::policy::{PolicyPart, traffic_policy};
use super::walk::{Node, Walker};
use crate::config::ConfigError;
use crate::config::builder::{DestinationBuilder, MeshConfigBuilder, SubsetBuilder};
use crate::config::validate::dns_label;

/// One subset as the rule gives it.
struct SubsetPart {
    name: String,
    labels: BTreeMap<String, String>,
    policy: PolicyPart,
}

/// Reads a DestinationRule's `spec` and merges it into `b`. A short host (no dot) is
/// qualified with `namespace` when the document names one.
pub(crate) fn destination_rule(
    namespace: Option<&str>,
    spec: Node<'_>,
    w: &mut Walker,
    b: &mut MeshConfigBuilder,
) -> Result<(), ConfigError> {
    let mut o = spec.obj(w)?;
    let host_node = o.required(w, "host")?;
    let written = host_node.str(w)?;
    if written.is_empty() {
        return Err(w.invalid(&host_node.path, written, "must not be empty"));
    }
    let policy = match o.field("trafficPolicy") {
        Some(n) => traffic_policy(n, w)?,
        None => PolicyPart::default(),
    };
    let mut subsets: Vec<SubsetPart> = Vec::new();
    if let Some(list) = o.field("subsets") {
        for item in list.list(w)? {
            let mut s = item.obj(w)?;
            let name_node = s.required(w, "name")?;
            let name = name_node.str(w)?.to_owned();
            dns_label(&name).map_err(|r| w.invalid(&name_node.path, &name, r))?;
            if subsets.iter().any(|other| other.name == name) {
                return Err(w.invalid(&name_node.path, &name, "duplicate subset name"));
            }
            let mut labels = BTreeMap::new();
            if let Some(l) = s.field("labels") {
                for (key, v) in l.obj(w)?.entries() {
                    labels.insert(key.to_owned(), v.scalar_text(w)?);
                }
            }
            let policy = match s.field("trafficPolicy") {
                Some(n) => traffic_policy(n, w)?,
                None => PolicyPart::default(),
            };
            s.finish(w)?;
            subsets.push(SubsetPart {
                name,
                labels,
                policy,
            });
        }
    }
    o.unsupported(
        w,
        "exportTo",
        "exportTo is not implemented; the rule applies to every workload that reads it",
    )?;
    o.unsupported(
        w,
        "workloadSelector",
        "workloadSelector is not implemented; the rule applies to this workload whatever its labels",
    )?;
    o.finish(w)?;
    if written.contains('*') {
        w.warn(
            &host_node.path,
            "wildcard hosts are not supported in DestinationRules; document ignored",
        );
        return Ok(());
    }
    let host = match namespace {
        Some(ns) if !written.contains('.') => format!("{written}.{ns}"),
        _ => written.to_owned(),
    };
    merge(b, &host, &policy, &subsets);
    Ok(())
}

/// Lays the rule over `b`'s destinations for `host`.
fn merge(b: &mut MeshConfigBuilder, host: &str, policy: &PolicyPart, subsets: &[SubsetPart]) {
    let find = |b: &MeshConfigBuilder, port: Option<u16>| {
        b.destinations
            .iter()
            .position(|d| d.host == host && d.port == port)
    };
    let main = match find(b, None) {
        Some(i) => i,
        None => {
            b.destinations.push(DestinationBuilder::new(host));
            b.destinations.len() - 1
        }
    };
    let d = &mut b.destinations[main];
    d.policy = d.policy.overlay(&policy.overrides);
    for s in subsets {
        d.subsets.push(subset(s, s.policy.overrides.clone()));
    }

    let mut ports: Vec<u16> = Vec::new();
    let all_ports = policy
        .ports
        .iter()
        .chain(subsets.iter().flat_map(|s| s.policy.ports.iter()))
        .map(|(p, _)| *p);
    for port in all_ports {
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    for port in ports {
        let own = |part: &PolicyPart| {
            part.ports
                .iter()
                .find(|(p, _)| *p == port)
                .map(|(_, o)| o.clone())
                .unwrap_or_default()
        };
        match find(b, Some(port)) {
            Some(i) => {
                let d = &mut b.destinations[i];
                d.policy = d.policy.overlay(&policy.for_port(port));
                for s in subsets {
                    d.subsets.push(subset(s, s.policy.for_port(port)));
                }
            }
            None => {
                // The host's entry (rule included), with this port's settings laid over.
                let mut d = b.destinations[main].clone();
                d.port = Some(port);
                d.policy = d.policy.overlay(&own(policy));
                for sb in &mut d.subsets {
                    if let Some(s) = subsets.iter().find(|s| s.name == sb.name) {
                        sb.policy = sb.policy.overlay(&own(&s.policy));
                    }
                }
                b.destinations.push(d);
            }
        }
    }
}

fn subset(s: &SubsetPart, policy: crate::config::builder::PolicyOverrides) -> SubsetBuilder {
    let mut sb = SubsetBuilder::new(s.name.clone());
    sb.labels = s.labels.clone();
    sb.policy = policy;
    sb
}
