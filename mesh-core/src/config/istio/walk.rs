//! A path-tracking cursor over a generic document tree (`serde_json::Value`).
//!
//! Every value is reached through a [`Node`] that knows its field path, so an error can name
//! it (`spec.http[0].route[1].weight`). An [`Obj`] remembers which keys were asked for; when it
//! is [finished](Obj::finish), keys nobody asked for are unknown fields: warnings in Istio's
//! documents, errors in mesh's own format ([`Mode`]).

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::values;
use crate::config::{ConfigError, ConfigWarning};

/// How fields that mesh does not read are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Istio's documents: unknown and unimplemented fields are warnings, as Kubernetes' own
    /// (default) field validation warns about and drops unknown fields.
    Lenient,
    /// Mesh's own format: unknown and unimplemented fields are errors.
    Strict,
}

/// The document being read: its label for messages, its mode and the warnings so far.
#[derive(Debug)]
pub(crate) struct Walker {
    /// Prepended to every path: `VirtualService bookinfo/reviews: ` or empty.
    label: String,
    mode: Mode,
    /// Warnings recorded so far, paths in full.
    pub(crate) warnings: Vec<ConfigWarning>,
}

impl Walker {
    /// A walker for an Istio document labelled `label` (such as `VirtualService reviews`).
    pub(crate) fn lenient(label: &str) -> Self {
        Walker {
            label: format!("{label}: "),
            mode: Mode::Lenient,
            warnings: Vec::new(),
        }
    }

    /// A walker for a part of mesh's own format, whose paths are already complete.
    pub(crate) fn strict() -> Self {
        Walker {
            label: String::new(),
            mode: Mode::Strict,
            warnings: Vec::new(),
        }
    }

    /// Whether unknown fields are errors.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// The full path of `path`, label included.
    pub(crate) fn full(&self, path: &str) -> String {
        format!("{}{path}", self.label)
    }

    /// An invalid-value error at `path`.
    pub(crate) fn invalid(
        &self,
        path: &str,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::invalid(self.full(path), value, reason)
    }

    /// Records a warning at `path`.
    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            path: self.full(path),
            message: message.into(),
        });
    }

    /// A field that is read but not implemented: a warning, or in strict mode an error.
    pub(crate) fn unsupported(
        &mut self,
        node: &Node<'_>,
        message: &str,
    ) -> Result<(), ConfigError> {
        self.tolerate(node, message, "not supported here")
    }

    /// A deprecated field that is still read: a warning, or in strict mode an error.
    pub(crate) fn deprecated(&mut self, node: &Node<'_>, message: &str) -> Result<(), ConfigError> {
        self.tolerate(node, message, "not accepted in mesh's own format")
    }

    /// A warning about `node` in lenient mode; in strict mode an error saying `refusal`.
    fn tolerate(
        &mut self,
        node: &Node<'_>,
        message: &str,
        refusal: &str,
    ) -> Result<(), ConfigError> {
        match self.mode {
            Mode::Lenient => {
                self.warn(&node.path, message);
                Ok(())
            }
            Mode::Strict => Err(self.invalid(
                &node.path,
                shown(node.value),
                format!("{refusal}: {message}"),
            )),
        }
    }
}

/// A value as shown in messages: strings as they are, anything else as compact JSON.
pub(crate) fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `parent.key`, or `key` at the top.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// One value and its path.
#[derive(Clone, Debug)]
pub(crate) struct Node<'v> {
    /// The field path, without the walker's label.
    pub(crate) path: String,
    /// The value.
    pub(crate) value: &'v Value,
}

impl<'v> Node<'v> {
    /// The value `value` at `path`.
    pub(crate) fn new(path: impl Into<String>, value: &'v Value) -> Self {
        Node {
            path: path.into(),
            value,
        }
    }

    fn wrong_type(&self, w: &Walker, expected: &str) -> ConfigError {
        w.invalid(
            &self.path,
            shown(self.value),
            format!("expected {expected}"),
        )
    }

    /// The value as an object.
    pub(crate) fn obj(self, w: &Walker) -> Result<Obj<'v>, ConfigError> {
        match self.value {
            Value::Object(map) => Ok(Obj {
                path: self.path,
                map,
                asked: Vec::new(),
            }),
            _ => Err(self.wrong_type(w, "an object")),
        }
    }

    /// The value as a list of nodes, `path[i]`.
    pub(crate) fn list(self, w: &Walker) -> Result<Vec<Node<'v>>, ConfigError> {
        match self.value {
            Value::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| Node::new(format!("{}[{i}]", self.path), v))
                .collect()),
            _ => Err(self.wrong_type(w, "a list")),
        }
    }

    /// The value as a string.
    pub(crate) fn str(&self, w: &Walker) -> Result<&'v str, ConfigError> {
        match self.value {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong_type(w, "a string")),
        }
    }

    /// A string, or a number or boolean as written (label values, header values).
    pub(crate) fn scalar_text(&self, w: &Walker) -> Result<String, ConfigError> {
        match self.value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(self.wrong_type(w, "a string")),
        }
    }

    /// The value as a list of strings.
    pub(crate) fn strings(self, w: &Walker) -> Result<Vec<String>, ConfigError> {
        self.list(w)?
            .iter()
            .map(|n| n.str(w).map(str::to_owned))
            .collect()
    }

    /// The value as a boolean.
    pub(crate) fn bool(&self, w: &Walker) -> Result<bool, ConfigError> {
        match self.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong_type(w, "true or false")),
        }
    }

    /// The value as a number.
    pub(crate) fn f64(&self, w: &Walker) -> Result<f64, ConfigError> {
        match self.value.as_f64() {
            Some(n) => Ok(n),
            None => Err(self.wrong_type(w, "a number")),
        }
    }

    /// The value as a whole number (integral floats such as `80.0` are accepted).
    pub(crate) fn int(&self, w: &Walker) -> Result<i128, ConfigError> {
        let Value::Number(n) = self.value else {
            return Err(self.wrong_type(w, "a whole number"));
        };
        if let Some(i) = n.as_i64() {
            return Ok(i128::from(i));
        }
        if let Some(u) = n.as_u64() {
            return Ok(i128::from(u));
        }
        match n.as_f64() {
            Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => Ok(f as i128),
            _ => Err(self.wrong_type(w, "a whole number")),
        }
    }

    /// A whole number from `min` to `max`.
    pub(crate) fn int_in(&self, w: &Walker, min: i128, max: i128) -> Result<i128, ConfigError> {
        let n = self.int(w)?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(w.invalid(&self.path, n, format!("must be between {min} and {max}")))
        }
    }

    /// A count that fits a `u32`.
    pub(crate) fn u32(&self, w: &Walker) -> Result<u32, ConfigError> {
        let n = self.int_in(w, 0, i128::from(u32::MAX))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// A port number, 1 to 65535.
    pub(crate) fn port(&self, w: &Walker) -> Result<u16, ConfigError> {
        let n = self.int(w)?;
        values::port(i64::try_from(n).unwrap_or(-1)).map_err(|r| w.invalid(&self.path, n, r))
    }

    /// A whole percentage, 0 to 100.
    pub(crate) fn percent(&self, w: &Walker) -> Result<u32, ConfigError> {
        let n = self.int_in(w, 0, 100)?;
        Ok(u32::try_from(n).unwrap_or(100))
    }

    /// A duration in Istio's form (`500ms`, `1m30s`).
    pub(crate) fn duration(&self, w: &Walker) -> Result<Duration, ConfigError> {
        let text = self.duration_text(w)?;
        values::duration(&text).map_err(|r| w.invalid(&self.path, &text, r))
    }

    /// A duration that must be greater than zero.
    pub(crate) fn positive_duration(&self, w: &Walker) -> Result<Duration, ConfigError> {
        let d = self.duration(w)?;
        if d.is_zero() {
            return Err(w.invalid(&self.path, shown(self.value), "must be greater than 0"));
        }
        Ok(d)
    }

    /// A timeout, where `0s` disables it.
    pub(crate) fn timeout(&self, w: &Walker) -> Result<Option<Duration>, ConfigError> {
        let text = self.duration_text(w)?;
        values::timeout(&text).map_err(|r| w.invalid(&self.path, &text, r))
    }

    /// A duration's text; a number is taken as written, so that `5` reports a missing unit.
    fn duration_text(&self, w: &Walker) -> Result<String, ConfigError> {
        match self.value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(self.wrong_type(w, "a duration such as 500ms or 2s")),
        }
    }
}

/// An object being read: which keys were asked for, so that the rest can be reported.
#[derive(Debug)]
pub(crate) struct Obj<'v> {
    path: String,
    map: &'v Map<String, Value>,
    asked: Vec<&'static str>,
}

impl<'v> Obj<'v> {
    /// The object's path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Whether the object has no keys.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The field `key`, or `None` when it is absent or null (proto's "unset").
    pub(crate) fn field(&mut self, key: &'static str) -> Option<Node<'v>> {
        self.asked.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(Node::new(join(&self.path, key), v)),
        }
    }

    /// Whether `key` is present and not null, without reading it.
    pub(crate) fn has(&self, key: &str) -> bool {
        !matches!(self.map.get(key), None | Some(Value::Null))
    }

    /// A required field: an error naming it when it is absent.
    pub(crate) fn required(
        &mut self,
        w: &Walker,
        key: &'static str,
    ) -> Result<Node<'v>, ConfigError> {
        self.field(key)
            .ok_or_else(|| w.invalid(&join(&self.path, key), "", "is required"))
    }

    /// A field mesh does not implement: a warning (or an error in strict mode) when present.
    pub(crate) fn unsupported(
        &mut self,
        w: &mut Walker,
        key: &'static str,
        message: &str,
    ) -> Result<(), ConfigError> {
        match self.field(key) {
            Some(node) => w.unsupported(&node, message),
            None => Ok(()),
        }
    }

    /// Every entry, as a map whose keys are data (header names, labels); all count as read.
    pub(crate) fn entries(self) -> Vec<(&'v str, Node<'v>)> {
        self.map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.as_str(), Node::new(join(&self.path, k), v)))
            .collect()
    }

    /// Reports keys nobody asked for: warnings in Istio's documents, errors in strict mode.
    pub(crate) fn finish(self, w: &mut Walker) -> Result<(), ConfigError> {
        for key in self.map.keys() {
            if self.asked.iter().any(|a| a == key) {
                continue;
            }
            let path = join(&self.path, key);
            match w.mode() {
                Mode::Lenient => w.warn(
                    &path,
                    "unknown field; ignored (Kubernetes drops unknown fields with a warning too)",
                ),
                Mode::Strict => {
                    let mut expected: Vec<String> =
                        self.asked.iter().map(|a| format!("`{a}`")).collect();
                    expected.dedup();
                    return Err(ConfigError::UnknownField {
                        path: w.full(&path),
                        field: key.clone(),
                        expected: format!("one of {}", expected.join(", ")),
                        line: None,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_unknown_fields() {
        let v = json!({"a": {"b": [1, "x"]}, "typo": 1, "n": null});
        let mut w = Walker::lenient("VirtualService reviews");
        let mut o = Node::new("spec", &v).obj(&w).unwrap();
        assert!(o.field("n").is_none(), "null is unset");
        let mut a = o.field("a").unwrap().obj(&w).unwrap();
        let list = a.field("b").unwrap().list(&w).unwrap();
        assert_eq!(list[1].path, "spec.a.b[1]");
        let e = list[1].u32(&w).unwrap_err();
        assert_eq!(
            e.to_string(),
            "VirtualService reviews: spec.a.b[1]: invalid value \"x\": expected a whole number"
        );
        a.finish(&mut w).unwrap();
        o.finish(&mut w).unwrap();
        assert_eq!(w.warnings.len(), 1);
        assert_eq!(w.warnings[0].path, "VirtualService reviews: spec.typo");

        let mut strict = Walker::strict();
        let mut o = Node::new("defaults.connectionPool", &v)
            .obj(&strict)
            .unwrap();
        let _ = o.field("a");
        let e = o.finish(&mut strict).unwrap_err();
        assert_eq!(e.path(), Some("defaults.connectionPool.n"));
        assert!(matches!(e, ConfigError::UnknownField { .. }), "{e}");
    }

    #[test]
    fn numbers() {
        let w = Walker::strict();
        let v = json!([80, 80.0, 80.5, -1, 4294967296u64, "80"]);
        let nodes = Node::new("w", &v).list(&w).unwrap();
        assert_eq!(nodes[0].u32(&w).unwrap(), 80);
        assert_eq!(nodes[1].u32(&w).unwrap(), 80);
        assert!(nodes[2].u32(&w).is_err());
        assert!(nodes[3].u32(&w).is_err());
        assert!(nodes[4].u32(&w).is_err());
        assert!(nodes[5].u32(&w).is_err());
        assert!(nodes[0].port(&w).is_ok());
        assert!(nodes[3].port(&w).is_err());
    }
}
