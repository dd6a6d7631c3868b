//! Query strings, read as routing and hashing both need them: `name=value` pairs split on
//! `&`, `%XX` escapes and `+` (a space, as forms encode it) decoded, a `%` not followed by two
//! hex digits kept as it is, and the first occurrence of a name winning, as in Envoy.

use std::borrow::Cow;

/// The raw `(name, value)` pairs of `query` (without `?`), empty segments skipped; a
/// parameter without `=` has the value `""`.
pub(crate) fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|s| s.split_once('=').unwrap_or((s, "")))
}

/// The decoded value of the first parameter whose decoded name is `name`, as bytes.
pub(crate) fn param_bytes<'q>(query: &'q str, name: &str) -> Option<Cow<'q, [u8]>> {
    pairs(query)
        .find_map(|(k, v)| (decode_bytes(k).as_ref() == name.as_bytes()).then(|| decode_bytes(v)))
}

/// The decoded value of the first parameter whose decoded name is `name`, as text
/// (bytes that are not UTF-8 become U+FFFD).
pub(crate) fn param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    pairs(query).find_map(|(k, v)| (decode(k) == name).then(|| decode(v)))
}

/// `s` with its escapes decoded, as text; bytes that are not UTF-8 become U+FFFD.
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    match decode_bytes(s) {
        Cow::Borrowed(_) => Cow::Borrowed(s),
        Cow::Owned(bytes) => Cow::Owned(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    }
}

/// `s` with its escapes decoded, as bytes; borrowed when there is nothing to decode.
pub(crate) fn decode_bytes(s: &str) -> Cow<'_, [u8]> {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some(&[h, l]) if b == b'%' => hex(h).zip(hex(l)).map(|(h, l)| (h << 4) | l),
            _ => None,
        };
        match (b, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert!(matches!(decode("plain"), Cow::Borrowed("plain")));
        assert_eq!(decode("a%2Fb+c"), "a/b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%+1"), "% 1");
        assert_eq!(decode("%C3%A9"), "é");
        assert_eq!(decode("%FF"), "\u{FFFD}");
        assert_eq!(decode_bytes("%FF").as_ref(), [0xFF]);
    }

    #[test]
    fn first_occurrence_wins() {
        assert_eq!(param("a=1&a=2", "a").as_deref(), Some("1"));
        assert_eq!(param("&flag&x=%41", "flag").as_deref(), Some(""));
        assert_eq!(param("&flag&x=%41", "x").as_deref(), Some("A"));
        assert_eq!(param_bytes("n%61me=v", "name").as_deref(), Some(&b"v"[..]));
        assert_eq!(param("a=1", "b"), None);
    }
}
