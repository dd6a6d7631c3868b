//! Istio's documents in configuration files: `networking.istio.io` VirtualService,
//! DestinationRule, ServiceEntry and Sidecar (API versions `v1`, `v1beta1` and `v1alpha3`),
//! `security.istio.io` PeerAuthentication, RequestAuthentication and AuthorizationPolicy
//! (API versions `v1` and `v1beta1`), and `telemetry.istio.io` Telemetry (`v1`, `v1alpha1`).
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
//! - Other kinds (Gateway, WorkloadEntry, Deployment, ...) are ignored with a warning, so
//!   that a whole manifest can be given. A `List` (as `kubectl get -o yaml`
//!   writes) is read item by item.

mod authorization_policy;
mod destination_rule;
mod peer_authentication;
pub(crate) mod policy;
mod request_authentication;
#[cfg(test)]
mod security_tests;
mod selector;
mod service_entry;
mod sidecar;
mod telemetry;
#[cfg(test)]
mod tests;
mod virtual_service;
pub(crate) mod walk;

use serde_json::Value;

use self::walk::{Node, Walker, shown};
use super::ConfigError;
use super::builder::MeshConfigBuilder;
use super::validate::dns_label;

/// The API group of VirtualService, DestinationRule, ServiceEntry and Sidecar.
const NETWORKING_GROUP: &str = "networking.istio.io";

/// The versions of [`NETWORKING_GROUP`] mesh reads.
const NETWORKING_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];

/// The API group of PeerAuthentication, RequestAuthentication and AuthorizationPolicy.
const SECURITY_GROUP: &str = "security.istio.io";

/// The versions of [`SECURITY_GROUP`] mesh reads.
const SECURITY_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// The API group of Telemetry.
const TELEMETRY_GROUP: &str = "telemetry.istio.io";

/// The versions of [`TELEMETRY_GROUP`] mesh reads.
const TELEMETRY_VERSIONS: &[&str] = &["v1", "v1alpha1"];

/// A kind mesh reads: its API group and versions, and whether `spec` is required.
struct Kind {
    kind: &'static str,
    group: &'static str,
    versions: &'static [&'static str],
    spec_required: bool,
}

/// Every kind mesh reads.
const KINDS: [Kind; 8] = [
    Kind {
        kind: "VirtualService",
        group: NETWORKING_GROUP,
        versions: NETWORKING_VERSIONS,
        spec_required: true,
    },
    Kind {
        kind: "DestinationRule",
        group: NETWORKING_GROUP,
        versions: NETWORKING_VERSIONS,
        spec_required: true,
    },
    Kind {
        kind: "ServiceEntry",
        group: NETWORKING_GROUP,
        versions: NETWORKING_VERSIONS,
        spec_required: true,
    },
    Kind {
        kind: "Sidecar",
        group: NETWORKING_GROUP,
        versions: NETWORKING_VERSIONS,
        spec_required: false,
    },
    Kind {
        kind: "PeerAuthentication",
        group: SECURITY_GROUP,
        versions: SECURITY_VERSIONS,
        spec_required: false,
    },
    Kind {
        kind: "RequestAuthentication",
        group: SECURITY_GROUP,
        versions: SECURITY_VERSIONS,
        spec_required: false,
    },
    Kind {
        kind: "Telemetry",
        group: TELEMETRY_GROUP,
        versions: TELEMETRY_VERSIONS,
        spec_required: false,
    },
    Kind {
        kind: "AuthorizationPolicy",
        group: SECURITY_GROUP,
        versions: SECURITY_VERSIONS,
        spec_required: false,
    },
];

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

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

    if kind == "List" && !api.contains('/') {
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
        b.warnings.append(&mut w.warnings);
        return Ok(());
    }
    let Some(known) = KINDS.iter().find(|k| k.kind == kind) else {
        let what = if api.is_empty() {
            format!("kind {kind}")
        } else {
            format!("kind {kind} ({api})")
        };
        w.warn("kind", format!("{what} is not supported; document ignored"));
        b.warnings.append(&mut w.warnings);
        return Ok(());
    };
    if group != known.group || !known.versions.contains(&version) {
        let expected: Vec<String> = known
            .versions
            .iter()
            .map(|v| format!("{}/{v}", known.group))
            .collect();
        return Err(w.invalid(
            "apiVersion",
            api,
            format!("expected {}", or_list(&expected)),
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
    // Security documents and Sidecars may leave `spec` out (Istio's "allow nothing" policy
    // is `spec: {}`); VirtualServices, DestinationRules and ServiceEntries need one.
    let empty = Value::Object(serde_json::Map::new());
    let spec = match doc.field("spec") {
        Some(spec) => spec,
        None if known.spec_required => return Err(w.invalid("spec", "", "is required")),
        None => Node::new("spec", &empty),
    };
    let doc_namespace = namespace.map(str::to_owned);
    match kind {
        "VirtualService" => {
            if let Some(vs) = virtual_service::virtual_service(name, namespace, spec, &mut w)? {
                b.virtual_services.push(vs);
            }
        }
        "DestinationRule" => destination_rule::destination_rule(namespace, spec, &mut w, b)?,
        "ServiceEntry" => service_entry::service_entry(spec, &mut w, b)?,
        "Sidecar" => sidecar::sidecar(spec, &mut w, b)?,
        "Telemetry" => telemetry::telemetry(spec, &mut w, b)?,
        "PeerAuthentication" => {
            let pa = peer_authentication::peer_authentication(name, doc_namespace, spec, &mut w)?;
            b.security.peer_authentications.push(pa);
        }
        "RequestAuthentication" => {
            let ra =
                request_authentication::request_authentication(name, doc_namespace, spec, &mut w)?;
            b.security.request_authentications.push(ra);
        }
        // AuthorizationPolicy, the last of KINDS.
        _ => {
            let ap = authorization_policy::authorization_policy(name, doc_namespace, spec, &mut w)?;
            b.security.authorization_policies.push(ap);
        }
    }
    doc.finish(&mut w)?;
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
