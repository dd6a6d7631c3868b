//! Reading claims: the request principal and the values `outputClaimToHeaders` copies.

use serde_json::Value;

/// The request principal of a token, `<iss>/<sub>` (Istio's `request.auth.principal`);
/// none without both claims.
pub fn principal(issuer: Option<&str>, subject: Option<&str>) -> Option<String> {
    Some(format!("{}/{}", issuer?, subject?))
}

/// The claim `path` of `claims`: the top-level claim of that exact name when there is one
/// (names such as `https://example.com/roles` hold dots), else the nested claim with `.`
/// between the names (`nested.key`).
pub fn lookup<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(claims, |v, name| v.get(name))
}

/// A claim as header text: a string as it is, a number or a boolean as written, a list as
/// its items' text joined by `,`, an object as JSON; none for `null`.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => Some(value.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}
