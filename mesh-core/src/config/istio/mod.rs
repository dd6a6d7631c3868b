//! Istio's documents in configuration files: `networking.istio.io` VirtualService and
//! DestinationRule (API versions `v1`, `v1beta1` and `v1alpha3`).
//!
//! A document is told from mesh's own by its `kind` (or `apiVersion`). Each is read into a
//! generic tree and walked with a path-tracking cursor ([`walk`]), so that every message names
//! the document and the field: `VirtualService bookinfo/reviews: spec.http[0].route[1].weight`.
//!
//! - Invalid values are errors ([`ConfigError::Invalid`]).
//! - Fields of Istio that mesh does not implement, and fields Istio does not know at all,
//!   are warnings ([`ConfigWarning`](super::ConfigWarning), in `MeshConfig::warnings`); the
//!   rest of the document still applies. Kubernetes itself drops unknown fields with a
//!   warning by default.
//! - Other kinds (Gateway, ServiceEntry, PeerAuthentication, Deployment, ...) are ignored with
//!   a warning, so that a whole manifest can be given. A `List` (as `kubectl get -o yaml`
//!   writes) is read item by item.

mod destination_rule;
pub(crate) mod policy;
#[cfg(test)]
mod tests;
mod virtual_service;
pub(crate) mod walk;

use serde_json::Value;

use self::walk::{Node, Walker, shown};
use super::ConfigError;
use super::builder::MeshConfigBuilder;
use super::validate::dns_label;

/// The API group of VirtualService and DestinationRule.
const NETWORKING_GROUP: &str = "networking.istio.io";

/// The versions of [`NETWORKING_GROUP`] mesh reads.
const NETWORKING_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// Whether `value` is a Kubernetes-style document (it has `kind` or `apiVersion`) rather
/// than mesh's own.
pub(crate) fn is_kubernetes(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.contains_key("kind") || m.contains_key("apiVersion"))
}

/// Applies one Kubernetes-style document to `b`; `position` (such as `documents[1]`) names
/// it in messages when it has no name.
pub(crate) fn apply_document(
    value: &Value,
    position: &str,
    b: &mut MeshConfigBuilder,
) -> Result<(), ConfigError> {
    let Some(map) = value.as_object() else {
        return Err(ConfigError::invalid(
            position,
            shown(value),
            "expected a document (an object with kind and apiVersion)",
        ));
    };
    let kind = match map.get("kind") {
        Some(Value::String(k)) if !k.is_empty() => k.as_str(),
        Some(other) => {
            return Err(ConfigError::invalid(
                format!("{position}.kind"),
                shown(other),
                "expected a kind such as VirtualService",
            ));
        }
        None => {
            return Err(ConfigError::invalid(
                format!("{position}.kind"),
                "",
                "is required with apiVersion (a document without both is mesh's own)",
            ));
        }
    };
    let metadata = map.get("metadata").and_then(Value::as_object);
    let text = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str);
    let name = text("name").filter(|n| !n.is_empty());
    let namespace = text("namespace").filter(|n| !n.is_empty());
    let label = match (name, namespace) {
        (Some(n), Some(ns)) => format!("{kind} {ns}/{n}"),
        (Some(n), None) => format!("{kind} {n}"),
        (None, _) => format!("{kind} {position}"),
    };
    let mut w = Walker::lenient(&label);
    let api = match map.get("apiVersion") {
        Some(Value::String(a)) => a.as_str(),
        Some(other) => return Err(w.invalid("apiVersion", shown(other), "expected a string")),
        None => "",
    };
    let (group, version) = api.rsplit_once('/').unwrap_or(("", api));

    match kind {
        "VirtualService" | "DestinationRule" => {
            if group != NETWORKING_GROUP || !NETWORKING_VERSIONS.contains(&version) {
                return Err(w.invalid(
                    "apiVersion",
                    api,
                    "expected networking.istio.io/v1, networking.istio.io/v1beta1 or networking.istio.io/v1alpha3",
                ));
            }
            let mut doc = Node::new("", value).obj(&w)?;
            let _ = (
                doc.field("apiVersion"),
                doc.field("kind"),
                doc.field("status"),
            );
            let mut meta = doc.required(&w, "metadata")?.obj(&w)?;
            let name_node = meta.required(&w, "name")?;
            let name = name_node.str(&w)?;
            dns_name(name).map_err(|r| w.invalid(&name_node.path, name, r))?;
            if let Some(ns) = meta.field("namespace") {
                let text = ns.str(&w)?;
                dns_label(text).map_err(|r| w.invalid(&ns.path, text, r))?;
            }
            // Other metadata (labels, annotations, uid, ...) is Kubernetes' own: not read.
            let _ = meta.entries();
            let spec = doc.required(&w, "spec")?;
            if kind == "VirtualService" {
                if let Some(vs) = virtual_service::virtual_service(name, namespace, spec, &mut w)? {
                    b.virtual_services.push(vs);
                }
            } else {
                destination_rule::destination_rule(namespace, spec, &mut w, b)?;
            }
            doc.finish(&mut w)?;
        }
        "List" if !api.contains('/') => {
            let mut doc = Node::new("", value).obj(&w)?;
            let _ = (
                doc.field("apiVersion"),
                doc.field("kind"),
                doc.field("metadata"),
            );
            if let Some(items) = doc.field("items") {
                for (i, item) in items.list(&w)?.into_iter().enumerate() {
                    apply_document(item.value, &format!("{position}.items[{i}]"), b)?;
                }
            }
            doc.finish(&mut w)?;
        }
        _ => {
            let what = if api.is_empty() {
                format!("kind {kind}")
            } else {
                format!("kind {kind} ({api})")
            };
            w.warn("kind", format!("{what} is not supported; document ignored"));
        }
    }
    b.warnings.append(&mut w.warnings);
    Ok(())
}

/// A Kubernetes object name: a DNS subdomain of lower-case labels.
fn dns_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1 to 253 characters".to_owned());
    }
    s.split('.').try_for_each(dns_label)
}
