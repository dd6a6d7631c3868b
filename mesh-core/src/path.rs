//! Request path normalization before authorization, as Istio's default (`BASE`) does with
//! Envoy's `normalize_path`: RFC 3986 section 6 normalization, so that `/./admin`,
//! `/x/../admin` and `/%61dmin` are all `/admin` to policies and to the application alike.

use std::borrow::Cow;

/// A path that cannot be normalized: a `%` not followed by two hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed path {path:?}: {reason}")]
pub struct PathError {
    /// The path as received (at most 200 bytes of it).
    pub path: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Normalizes an origin-form path (no query): percent-encoded unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) are decoded, other percent-encodings get upper-case hex (so `%2f`
/// stays encoded, as `%2F`), and `.` and `..` segments are removed (RFC 3986 5.2.4). Paths
/// that need none of this are returned as they are, without allocating; a path not starting
/// with `/` (such as `*`) is left alone.
///
/// ```
/// use mesh_core::path::normalize;
///
/// assert_eq!(normalize("/admin").unwrap(), "/admin");
/// assert_eq!(normalize("/./admin").unwrap(), "/admin");
/// assert_eq!(normalize("/public/../admin").unwrap(), "/admin");
/// assert_eq!(normalize("/%61dmin").unwrap(), "/admin");
/// assert_eq!(normalize("/a%2fb").unwrap(), "/a%2Fb");
/// assert_eq!(normalize("/../../etc").unwrap(), "/etc");
/// assert!(normalize("/a%zz").is_err());
/// ```
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') || (!path.contains('%') && !has_dot_segment(path)) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

/// Whether a `.` or `..` segment occurs.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            // Copy the run up to the next `%` whole, so multi-byte characters stay intact.
            let end = path[i..].find('%').map_or(bytes.len(), |j| i + j);
            out.push_str(&path[i..end]);
            i = end;
            continue;
        }
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
            return Err(PathError {
                path: path.chars().take(200).collect(),
                reason: "`%` must be followed by two hex digits",
            });
        };
        let byte = (hi * 16 + lo) as u8;
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(byte >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(byte & 0xF) as usize]));
        }
        i += 3;
    }
    Ok(out)
}

/// RFC 3986 5.2.4 on an absolute path: the result starts with `/`, and a trailing `.` or
/// `..` segment leaves a trailing `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                kept.pop();
                trailing_slash = i == last;
            }
            s => {
                kept.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dot_segments_go() {
        for (raw, want) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("/mid/content=5/../6", "/mid/6"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/..", "/"),
            ("/a//b/../c", "/a//c"),
            ("/.hidden/..x", "/.hidden/..x"),
            ("/admin/", "/admin/"),
        ] {
            assert_eq!(normalize(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_kept() {
        assert_eq!(normalize("/%7Euser/%41").unwrap(), "/~user/A");
        assert_eq!(normalize("/a%2e%2e/b").unwrap(), "/a../b");
        assert_eq!(normalize("/x/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalize("/q%3fa%20b").unwrap(), "/q%3Fa%20b");
        assert_eq!(normalize("/é%41").unwrap(), "/éA");
    }

    #[test]
    fn clean_paths_are_borrowed() {
        assert!(matches!(normalize("/reviews/0"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("*"), Ok(Cow::Borrowed("*"))));
    }

    #[test]
    fn bad_escapes_are_errors() {
        for raw in ["/%", "/%4", "/%g0", "/a%4z"] {
            let e = normalize(raw).unwrap_err();
            assert!(e.to_string().contains("two hex digits"), "{raw}: {e}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_is_idempotent(raw in "/[a-z./%0-9A-Fé~]{0,40}") {
            if let Ok(once) = normalize(&raw) {
                let once = once.into_owned();
                prop_assert!(once.starts_with('/'));
                prop_assert!(!has_dot_segment(&once), "{once}");
                let twice = normalize(&once).map(Cow::into_owned);
                // Decoding `%25` (an escaped `%`) is not done, so a second pass is the same.
                prop_assert_eq!(twice, Ok(once));
            }
        }
    }
}
