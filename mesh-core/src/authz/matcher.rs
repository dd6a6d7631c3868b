//! Compiled value matchers: Istio's string forms, hosts, paths with templates, request
//! principals and JWT claim values. Each is built once by [`Authorizer::new`](super::Authorizer::new)
//! and matches without allocating.

use std::fmt::{self, Write as _};

use serde_json::Value;

/// A field's compiled `values` and `not` values. It matches when the attribute matches one
/// of `values` (or `values` is empty) and none of `not_values`; an absent attribute matches
/// no value, so a positive list fails and a `not` list alone passes (Envoy's `not`).
#[derive(Clone, Debug)]
pub(crate) struct Field<P> {
    values: Box<[P]>,
    not_values: Box<[P]>,
}

impl<P> Field<P> {
    pub(crate) fn new(values: Vec<P>, not_values: Vec<P>) -> Self {
        Self {
            values: values.into(),
            not_values: not_values.into(),
        }
    }

    /// Whether the attribute matches, where `hit(p)` says whether it matches pattern `p`.
    #[inline]
    pub(crate) fn check(&self, hit: impl Fn(&P) -> bool) -> bool {
        (self.values.is_empty() || self.values.iter().any(&hit))
            && !self.not_values.iter().any(&hit)
    }
}

/// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any non-empty value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StrMatch {
    /// The whole value.
    Exact(Box<str>),
    /// `prefix*`: the value starts with it (or equals it).
    Prefix(Box<str>),
    /// `*suffix`: the value ends with it (or equals it).
    Suffix(Box<str>),
    /// `*`: any non-empty value.
    Presence,
}

impl StrMatch {
    /// The matcher `pattern` stands for.
    pub(crate) fn new(pattern: &str) -> Self {
        if pattern == "*" {
            StrMatch::Presence
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            StrMatch::Suffix(suffix.into())
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            StrMatch::Prefix(prefix.into())
        } else {
            StrMatch::Exact(pattern.into())
        }
    }

    /// The matcher of `pattern` for case-insensitive use with [`matches_ignore_case`](Self::matches_ignore_case).
    pub(crate) fn new_ignore_case(pattern: &str) -> Self {
        Self::new(&pattern.to_ascii_lowercase())
    }

    #[inline]
    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            StrMatch::Exact(exact) => value == &**exact,
            StrMatch::Prefix(prefix) => value.starts_with(&**prefix),
            StrMatch::Suffix(suffix) => value.ends_with(&**suffix),
            StrMatch::Presence => !value.is_empty(),
        }
    }

    /// Like [`matches`](Self::matches), ignoring ASCII case; the pattern must be lowercase.
    #[inline]
    pub(crate) fn matches_ignore_case(&self, value: &str) -> bool {
        let value = value.as_bytes();
        match self {
            StrMatch::Exact(exact) => value.eq_ignore_ascii_case(exact.as_bytes()),
            StrMatch::Prefix(prefix) => value
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes())),
            StrMatch::Suffix(suffix) => value
                .len()
                .checked_sub(suffix.len())
                .is_some_and(|at| value[at..].eq_ignore_ascii_case(suffix.as_bytes())),
            StrMatch::Presence => !value.is_empty(),
        }
    }
}

/// A `hosts` value: case-insensitive; a value without a port also matches the host with
/// any port (Istio adds `<host>:*`).
#[derive(Clone, Debug)]
pub(crate) struct HostMatch {
    host: StrMatch,
    any_port: bool,
}

impl HostMatch {
    pub(crate) fn new(pattern: &str) -> Self {
        Self {
            host: StrMatch::new_ignore_case(pattern),
            any_port: strip_port(pattern).is_none() && !pattern.ends_with(":*"),
        }
    }

    #[inline]
    pub(crate) fn matches(&self, host: &str) -> bool {
        self.host.matches_ignore_case(host)
            || (self.any_port
                && strip_port(host).is_some_and(|name| self.host.matches_ignore_case(name)))
    }
}

/// `host` without its `:port`, when it has one (`[::1]:80` gives `[::1]`; a bare IPv6
/// address has none).
fn strip_port(host: &str) -> Option<&str> {
    let (name, port) = host.rsplit_once(':')?;
    let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let bare_ipv6 = name.contains(':') && !(name.starts_with('[') && name.ends_with(']'));
    (numeric && !bare_ipv6).then_some(name)
}

/// A `paths` value: a string match, or a template with `{*}` and `{**}` segments.
#[derive(Clone, Debug)]
pub(crate) enum PathMatch {
    /// Exact, `prefix*`, `*suffix` or `*`.
    Str(StrMatch),
    /// Segments after the leading `/`.
    Template(Box<[Segment]>),
}

/// One segment of a path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// This text exactly.
    Literal(Box<str>),
    /// `{*}`: one non-empty segment.
    One,
    /// `{**}`: one or more segments, the rest of the path (always last).
    Rest,
}

impl PathMatch {
    /// Compiles `pattern`; the error says what is wrong with a template.
    pub(crate) fn new(pattern: &str) -> Result<Self, &'static str> {
        if !pattern.contains(['{', '}']) {
            return Ok(PathMatch::Str(StrMatch::new(pattern)));
        }
        let Some(rest) = pattern.strip_prefix('/') else {
            return Err("a path template must start with '/'");
        };
        let count = rest.split('/').count();
        let mut segments = Vec::with_capacity(count);
        for (i, text) in rest.split('/').enumerate() {
            let last = i + 1 == count;
            let segment = match text {
                "{*}" => Segment::One,
                "{**}" if last => Segment::Rest,
                "{**}" => return Err("{**} must be the last operator of a path template"),
                _ if text.contains(['{', '}']) => {
                    return Err("'{' or '}' outside a whole {*} or {**} segment");
                }
                _ if text.contains('*') => {
                    return Err("'*' in a literal segment of a path template");
                }
                "" if !last => return Err("an empty segment in a path template"),
                _ => Segment::Literal(text.into()),
            };
            segments.push(segment);
        }
        Ok(PathMatch::Template(segments.into()))
    }

    #[inline]
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Str(m) => m.matches(path),
            PathMatch::Template(segments) => template_matches(segments, path),
        }
    }
}

fn template_matches(segments: &[Segment], path: &str) -> bool {
    let Some(mut rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut segments = segments.iter().peekable();
    while let Some(segment) = segments.next() {
        let (head, tail) = match rest.split_once('/') {
            Some((head, tail)) => (head, Some(tail)),
            None => (rest, None),
        };
        let ok = match segment {
            Segment::Rest => return !rest.is_empty(),
            Segment::One => !head.is_empty(),
            Segment::Literal(text) => head == &**text,
        };
        if !ok {
            return false;
        }
        match (segments.peek().is_some(), tail) {
            (true, Some(tail)) => rest = tail,
            (false, None) => return true,
            _ => return false,
        }
    }
    false
}

/// A `requestPrincipals` value, split as Istio does into a match of the token's `iss` and
/// one of its `sub` at the value's last `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestPrincipalMatch {
    iss: StrMatch,
    sub: StrMatch,
}

impl RequestPrincipalMatch {
    pub(crate) fn new(value: &str) -> Self {
        let split = value.rsplit_once('/');
        let (iss, sub) = split.unwrap_or((value, ""));
        let (iss, sub) = if value == "*" {
            (StrMatch::Presence, StrMatch::Presence)
        } else if let Some(rest) = value.strip_prefix('*') {
            match split {
                Some(_) if iss == "*" => (StrMatch::Presence, StrMatch::Exact(sub.into())),
                Some(_) => (
                    StrMatch::Suffix(iss.strip_prefix('*').unwrap_or(iss).into()),
                    StrMatch::Exact(sub.into()),
                ),
                None => (StrMatch::Presence, StrMatch::Suffix(rest.into())),
            }
        } else if let Some(rest) = value.strip_suffix('*') {
            match split {
                Some(_) if sub == "*" => (StrMatch::Exact(iss.into()), StrMatch::Presence),
                Some(_) => (
                    StrMatch::Exact(iss.into()),
                    StrMatch::Prefix(sub.strip_suffix('*').unwrap_or(sub).into()),
                ),
                None => (StrMatch::Prefix(rest.into()), StrMatch::Presence),
            }
        } else {
            (StrMatch::Exact(iss.into()), StrMatch::Exact(sub.into()))
        };
        Self { iss, sub }
    }

    #[inline]
    pub(crate) fn matches(&self, (iss, sub): (&str, &str)) -> bool {
        self.iss.matches(iss) && self.sub.matches(sub)
    }
}

/// Whether a claim's value matches: a string as it is, a number or boolean as its text,
/// a list when one of its elements does.
pub(crate) fn claim_matches(value: &Value, m: &StrMatch) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| scalar_matches(item, m)),
        other => scalar_matches(other, m),
    }
}

fn scalar_matches(value: &Value, m: &StrMatch) -> bool {
    match value {
        Value::String(s) => m.matches(s),
        Value::Bool(b) => m.matches(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let mut text = StackText::default();
            write!(text, "{n}").is_ok() && m.matches(text.as_str())
        }
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

/// A number's text without a heap allocation; longer texts fail to write.
struct StackText {
    buf: [u8; 48],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        Self {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
