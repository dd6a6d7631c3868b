//! Where tokens are found in a request: `fromHeaders`, `fromParams`, `fromCookies`.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, HeaderName};

use crate::config::{ConfigError, JwtRule};

/// The query parameter read when a rule names no location at all.
const DEFAULT_PARAM: &str = "access_token";
/// The prefix of the `Authorization` header read when a rule names no location at all.
const DEFAULT_PREFIX: &str = "Bearer ";

/// One place a token may be.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TokenLocation {
    /// A request header, the token after `prefix` (matched ignoring ASCII case, as the
    /// `Bearer` scheme is).
    Header {
        /// The header.
        name: HeaderName,
        /// What comes before the token (may be empty).
        prefix: String,
    },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

impl TokenLocation {
    /// The header, for a header location: the one removed when a valid token is not
    /// forwarded.
    pub fn header(&self) -> Option<&HeaderName> {
        match self {
            TokenLocation::Header { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The locations of `rule`: its `fromHeaders`, `fromParams` and `fromCookies`; when
    /// it names none, `Authorization: Bearer <token>` and the `access_token` parameter, as
    /// Istio reads. A header name that is not valid is an error whose path is relative to
    /// the rule (`fromHeaders[0].name`).
    pub fn for_rule(rule: &JwtRule) -> Result<Vec<TokenLocation>, ConfigError> {
        if rule.from_headers.is_empty()
            && rule.from_params.is_empty()
            && rule.from_cookies.is_empty()
        {
            return Ok(vec![
                TokenLocation::Header {
                    name: AUTHORIZATION,
                    prefix: DEFAULT_PREFIX.to_owned(),
                },
                TokenLocation::Param(DEFAULT_PARAM.to_owned()),
            ]);
        }
        let mut out = Vec::new();
        for (i, h) in rule.from_headers.iter().enumerate() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                ConfigError::invalid(
                    format!("fromHeaders[{i}].name"),
                    &h.name,
                    "not a valid header name",
                )
            })?;
            out.push(TokenLocation::Header {
                name,
                prefix: h.prefix.clone(),
            });
        }
        for (i, p) in rule.from_params.iter().enumerate() {
            if p.is_empty() {
                return Err(ConfigError::invalid(
                    format!("fromParams[{i}]"),
                    p,
                    "a parameter name must not be empty",
                ));
            }
            out.push(TokenLocation::Param(p.clone()));
        }
        for (i, c) in rule.from_cookies.iter().enumerate() {
            if c.is_empty() || c.contains([';', '=', ' ']) {
                return Err(ConfigError::invalid(
                    format!("fromCookies[{i}]"),
                    c,
                    "not a valid cookie name",
                ));
            }
            out.push(TokenLocation::Cookie(c.clone()));
        }
        Ok(out)
    }

    /// The token at this location of a request, if there is one (an empty one is none).
    fn find<'r>(&self, headers: &'r HeaderMap, query: Option<&'r str>) -> Option<Cow<'r, str>> {
        match self {
            TokenLocation::Header { name, prefix } => headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| after_prefix(v, prefix))
                .map(Cow::Borrowed),
            TokenLocation::Param(name) => {
                crate::query::param(query?, name).filter(|t| !t.is_empty())
            }
            TokenLocation::Cookie(name) => headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| cookie(v, name))
                .map(Cow::Borrowed),
        }
    }
}

/// The token in a header value after `prefix` (ASCII case ignored): up to the first space
/// or comma, surrounding blanks trimmed.
fn after_prefix<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = value[prefix.len()..].trim_start();
    let token = rest.split([' ', '\t', ',']).next().unwrap_or("");
    (!token.is_empty()).then_some(token)
}

/// The value of cookie `name` in a `Cookie` header value (`a=1; b=2`), quotes removed.
fn cookie<'v>(header: &'v str, name: &str) -> Option<&'v str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        if k.trim() != name {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        (!v.is_empty()).then_some(v)
    })
}

/// A token found in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found<'r> {
    /// The token, as found (a query parameter percent-decoded).
    pub token: Cow<'r, str>,
    /// The index of its location in the [`Extractor`].
    pub location: usize,
}

/// Every token location of a set of rules, each once, with the rules that read it: finds
/// the tokens of a request and says which issuers a token found there may have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extractor {
    locations: Vec<(TokenLocation, Vec<usize>)>,
}

impl Extractor {
    /// The locations of `rules` (see [`TokenLocation::for_rule`]); an invalid one is an
    /// error whose path starts with `jwtRules[N]`.
    pub fn new(rules: &[JwtRule]) -> Result<Self, ConfigError> {
        let mut out = Extractor::default();
        for (i, rule) in rules.iter().enumerate() {
            let locations = TokenLocation::for_rule(rule).map_err(|e| match e {
                ConfigError::Invalid {
                    path,
                    value,
                    reason,
                } => ConfigError::invalid(format!("jwtRules[{i}].{path}"), value, reason),
                other => other,
            })?;
            for location in locations {
                match out.locations.iter_mut().find(|(l, _)| *l == location) {
                    Some((_, rules)) => {
                        if !rules.contains(&i) {
                            rules.push(i);
                        }
                    }
                    None => out.locations.push((location, vec![i])),
                }
            }
        }
        Ok(out)
    }

    /// Whether there are no locations (no rules).
    pub fn is_empty(&self) -> bool {
        self.locations.is_empty()
    }

    /// The number of locations.
    pub fn len(&self) -> usize {
        self.locations.len()
    }

    /// Location `index`.
    ///
    /// # Panics
    ///
    /// When `index` is out of range (indexes come from [`Found::location`]).
    pub fn location(&self, index: usize) -> &TokenLocation {
        &self.locations[index].0
    }

    /// The indexes of the rules that read location `index`, in the order of the rules:
    /// a token found there must have the issuer of one of them.
    ///
    /// # Panics
    ///
    /// When `index` is out of range (indexes come from [`Found::location`]).
    pub fn rules_at(&self, index: usize) -> &[usize] {
        &self.locations[index].1
    }

    /// The tokens of a request, by location: at most one per location, in the order the
    /// rules name them. Allocates nothing when there is none.
    pub fn extract<'r>(
        &'r self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> impl Iterator<Item = Found<'r>> + 'r {
        self.locations
            .iter()
            .enumerate()
            .filter_map(move |(location, (l, _))| {
                l.find(headers, query)
                    .map(|token| Found { token, location })
            })
    }
}
