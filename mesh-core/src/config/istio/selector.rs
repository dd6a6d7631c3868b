//! Pieces the security documents share: the workload `selector` and `targetRef(s)`.

use std::collections::BTreeMap;

use super::walk::{Obj, Walker};
use crate::config::ConfigError;
use crate::config::security::check;

/// Reads `selector: {matchLabels: {...}}`; `None` when it is absent or selects by no label
/// (Istio treats an empty selector as none).
pub(crate) fn selector(
    o: &mut Obj<'_>,
    w: &mut Walker,
) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
    let Some(node) = o.field("selector") else {
        return Ok(None);
    };
    let mut s = node.obj(w)?;
    let mut labels = BTreeMap::new();
    if let Some(m) = s.field("matchLabels") {
        for (key, v) in m.obj(w)?.entries() {
            check::label_key(key)
                .map_err(|r| w.invalid(&v.path, key, format!("label key: {r}")))?;
            let value = v.scalar_text(w)?;
            check::label_value(&value).map_err(|r| w.invalid(&v.path, &value, r))?;
            labels.insert(key.to_owned(), value);
        }
    }
    s.finish(w)?;
    Ok((!labels.is_empty()).then_some(labels))
}

/// Warns about `targetRef` and `targetRefs`, which bind a policy to a Gateway or Service
/// rather than to workloads by label.
pub(crate) fn target_refs(o: &mut Obj<'_>, w: &mut Walker) -> Result<(), ConfigError> {
    for key in ["targetRef", "targetRefs"] {
        o.unsupported(
            w,
            key,
            "policy attachment to a Gateway or Service is not implemented; the policy applies by its selector",
        )?;
    }
    Ok(())
}
