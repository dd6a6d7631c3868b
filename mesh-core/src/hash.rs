//! Consistent-hash keys: what a request hashes to under Istio's `consistentHash` policies.
//!
//! The hash is xxHash64 (seed 0), as Envoy uses. A request without the key gets no hash and
//! is balanced at random; a missing cookie with a `ttl` is generated, and the caller returns
//! it with `Set-Cookie` so the next request sticks.
//!
//! ```
//! use http::{HeaderMap, HeaderName, Uri};
//! use mesh_core::config::HashKey;
//! use mesh_core::hash::{HashInput, hash_bytes, request_hash};
//!
//! let key = HashKey::Header(HeaderName::from_static("x-user"));
//! let mut headers = HeaderMap::new();
//! headers.insert("x-user", "jason".parse().unwrap());
//! let uri = Uri::from_static("/reviews/0");
//! let input = request_hash(&key, &uri, &headers, None, 0);
//! assert_eq!(input, HashInput::Hash(hash_bytes(b"jason")));
//! ```

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Uri};

use crate::config::{HashCookie, HashKey};

/// A request's hash, carried as a request extension from the router to the balancer so
/// that every try of one request hashes alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestHash(pub u64);

/// What a request hashes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashInput {
    /// The request carries the key.
    Hash(u64),
    /// The cookie is absent and has a ttl: this value was generated for it; send
    /// `set_cookie` with the response.
    NewCookie {
        /// The hash of the generated value.
        hash: u64,
        /// The `Set-Cookie` header value to return.
        set_cookie: HeaderValue,
    },
    /// The request lacks the key.
    None,
}

/// xxHash64 (seed 0) of `bytes`: the hash of request keys and of ring entries, as in Envoy.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, 0)
}

/// What the request hashes to under `key`; `source` is the caller's address, when known.
/// `random` supplies a generated cookie's value.
///
/// A header hashes by its first value; a query parameter by its first occurrence's value,
/// percent-decoded (`+` read as a space, as in forms); the source by its IP address's text
/// (`10.0.0.1`, `::1`); a cookie by its value, unquoted, found in any `Cookie` header. An
/// empty cookie counts as absent, as in Envoy. Allocates only to decode an escaped query
/// parameter and to generate a cookie.
pub fn request_hash(
    key: &HashKey,
    uri: &Uri,
    headers: &HeaderMap,
    source: Option<IpAddr>,
    random: u64,
) -> HashInput {
    match key {
        HashKey::Header(name) => headers.get(name).map_or(HashInput::None, |v| {
            HashInput::Hash(hash_bytes(v.as_bytes()))
        }),
        HashKey::QueryParameter(name) => uri
            .query()
            .and_then(|q| crate::query::param_bytes(q, name))
            .map_or(HashInput::None, |v| HashInput::Hash(hash_bytes(&v))),
        HashKey::SourceIp => source.map_or(HashInput::None, |ip| {
            let mut text = StackText::default();
            // At most 45 bytes: `StackText` holds them all.
            let _ = write!(text, "{ip}");
            HashInput::Hash(hash_bytes(text.as_bytes()))
        }),
        HashKey::Cookie(cookie) => match cookie_value(headers, &cookie.name) {
            Some(value) if !value.is_empty() => HashInput::Hash(hash_bytes(value)),
            _ if cookie.ttl.is_some() => {
                let value = format!("{random:016x}");
                HashInput::NewCookie {
                    hash: hash_bytes(value.as_bytes()),
                    set_cookie: set_cookie(cookie, &value),
                }
            }
            _ => HashInput::None,
        },
    }
}

/// The `Set-Cookie` value for a generated hash cookie: `name=value; Path=/p; Max-Age=N;
/// HttpOnly`.
///
/// `Path` appears when set; `Max-Age` when the ttl is not zero (a zero ttl makes a session
/// cookie, as in Envoy), in whole seconds and at least 1 (so a sub-second ttl does not
/// delete the cookie at once). Bytes the cookie grammar (RFC 6265) does not allow in the
/// name, the value or the path are percent-encoded, so this never fails; lookups in
/// [`request_hash`] use the same encoded name.
pub fn set_cookie(cookie: &HashCookie, value: &str) -> HeaderValue {
    let mut text = String::with_capacity(cookie.name.len() + value.len() + 48);
    text.push_str(&encode(&cookie.name, is_token));
    text.push('=');
    text.push_str(&encode(value, is_cookie_octet));
    if let Some(path) = &cookie.path {
        text.push_str("; Path=");
        text.push_str(&encode(path, is_path_char));
    }
    if let Some(ttl) = cookie.ttl.filter(|t| !t.is_zero()) {
        let _ = write!(text, "; Max-Age={}", ttl.as_secs().max(1));
    }
    text.push_str("; HttpOnly");
    // Everything above is visible ASCII, which a header value always accepts.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("HttpOnly"))
}

/// The value of the first cookie named `name` in the request's `Cookie` headers, with
/// surrounding spaces and double quotes removed.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    let name = encode(name, is_token);
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = trim(pair);
            let at = pair.iter().position(|&b| b == b'=')?;
            (trim(&pair[..at]) == name.as_bytes()).then(|| unquote(trim(&pair[at + 1..])))
        })
}

/// `s` with every byte `allowed` rejects written as `%XX`; borrowed when none is.
fn encode(s: &str, allowed: fn(u8) -> bool) -> Cow<'_, str> {
    if s.bytes().all(allowed) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if allowed(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// An HTTP token character (RFC 9110 `tchar`), as a cookie name needs.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `cookie-octet` of RFC 6265: visible ASCII but `"`, `,`, `;` and `\`.
fn is_cookie_octet(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\",;\\".contains(&b)
}

/// A character kept as is in a cookie's `Path`: visible ASCII but `;`, `,` and `"`.
fn is_path_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b";,\"".contains(&b)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

/// A short text written on the stack, so that hashing an address allocates nothing.
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use http::HeaderName;
    use proptest::prelude::*;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in pairs {
            map.append(name, HeaderValue::from_static(value));
        }
        map
    }

    fn cookie(name: &str, path: Option<&str>, ttl: Option<Duration>) -> HashCookie {
        HashCookie {
            name: name.into(),
            path: path.map(Into::into),
            ttl,
        }
    }

    fn hash_of(key: &HashKey, uri: &'static str, h: &HeaderMap) -> HashInput {
        request_hash(key, &Uri::from_static(uri), h, None, 0x1234)
    }

    #[test]
    fn hash_bytes_is_xxh64_seed_0() {
        // The reference value of xxHash64("", seed 0).
        assert_eq!(hash_bytes(b""), 0xEF46_DB37_51D8_E999);
        assert_ne!(hash_bytes(b"a"), hash_bytes(b"b"));
    }

    #[test]
    fn header_hashes_its_first_value() {
        let key = HashKey::Header(HeaderName::from_static("x-user"));
        let h = headers(&[("x-user", "jason"), ("x-user", "other")]);
        assert_eq!(
            hash_of(&key, "/", &h),
            HashInput::Hash(hash_bytes(b"jason"))
        );
        assert_eq!(hash_of(&key, "/", &HeaderMap::new()), HashInput::None);
        let empty = headers(&[("x-user", "")]);
        assert_eq!(hash_of(&key, "/", &empty), HashInput::Hash(hash_bytes(b"")));
    }

    #[test]
    fn query_parameter_is_decoded() {
        let key = HashKey::QueryParameter("user".into());
        let h = HeaderMap::new();
        let jason = HashInput::Hash(hash_bytes(b"jason"));
        assert_eq!(hash_of(&key, "/p?a=1&user=jason&user=x", &h), jason);
        assert_eq!(hash_of(&key, "/p?us%65r=ja%73on", &h), jason);
        assert_eq!(
            hash_of(&key, "/p?user=a+b%20c%2", &h),
            HashInput::Hash(hash_bytes(b"a b c%2"))
        );
        assert_eq!(
            hash_of(&key, "/p?user", &h),
            HashInput::Hash(hash_bytes(b""))
        );
        assert_eq!(hash_of(&key, "/p?users=jason", &h), HashInput::None);
        assert_eq!(hash_of(&key, "/p", &h), HashInput::None);
    }

    #[test]
    fn source_ip_hashes_its_text() {
        let h = HeaderMap::new();
        let uri = Uri::from_static("/");
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            request_hash(&HashKey::SourceIp, &uri, &h, Some(v4), 0),
            HashInput::Hash(hash_bytes(b"10.0.0.1"))
        );
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            request_hash(&HashKey::SourceIp, &uri, &h, Some(v6), 0),
            HashInput::Hash(hash_bytes(b"::1"))
        );
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        assert_eq!(
            request_hash(&HashKey::SourceIp, &uri, &h, Some(longest), 0),
            HashInput::Hash(hash_bytes(longest.to_string().as_bytes()))
        );
        assert_eq!(
            request_hash(&HashKey::SourceIp, &uri, &h, None, 0),
            HashInput::None
        );
    }

    #[test]
    fn present_cookie_is_found_in_any_cookie_header() {
        let key = HashKey::Cookie(cookie("user", None, Some(Duration::from_secs(60))));
        let jason = HashInput::Hash(hash_bytes(b"jason"));
        for h in [
            headers(&[("cookie", "user=jason")]),
            headers(&[("cookie", "a=b;  user = jason ;c=d")]),
            headers(&[("cookie", "a=b"), ("cookie", "user=\"jason\"")]),
            headers(&[("cookie", "xuser=no; user=jason; user=later")]),
        ] {
            assert_eq!(hash_of(&key, "/", &h), jason, "{h:?}");
        }
    }

    #[test]
    fn absent_cookie_is_generated_only_with_a_ttl() {
        let ttl = HashKey::Cookie(cookie("user", Some("/"), Some(Duration::from_secs(60))));
        let expected = HashInput::NewCookie {
            hash: hash_bytes(b"0000000000001234"),
            set_cookie: HeaderValue::from_static(
                "user=0000000000001234; Path=/; Max-Age=60; HttpOnly",
            ),
        };
        for h in [
            HeaderMap::new(),
            headers(&[("cookie", "other=1")]),
            headers(&[("cookie", "user=")]),
            headers(&[("cookie", "user=\"\"")]),
        ] {
            assert_eq!(hash_of(&ttl, "/", &h), expected, "{h:?}");
        }
        let no_ttl = HashKey::Cookie(cookie("user", None, None));
        assert_eq!(hash_of(&no_ttl, "/", &HeaderMap::new()), HashInput::None);
    }

    #[test]
    fn set_cookie_formats_like_envoy() {
        let value = |c: &HashCookie| set_cookie(c, "0123abcd").to_str().unwrap().to_owned();
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            value(&cookie("user", Some("/api"), secs(3600))),
            "user=0123abcd; Path=/api; Max-Age=3600; HttpOnly"
        );
        assert_eq!(
            value(&cookie("user", None, secs(5))),
            "user=0123abcd; Max-Age=5; HttpOnly"
        );
        // A zero ttl is a session cookie; a sub-second one lasts a second.
        assert_eq!(
            value(&cookie("user", None, secs(0))),
            "user=0123abcd; HttpOnly"
        );
        assert_eq!(
            value(&cookie("user", None, Some(Duration::from_millis(500)))),
            "user=0123abcd; Max-Age=1; HttpOnly"
        );
    }

    #[test]
    fn unsafe_cookie_parts_are_encoded_and_found_again() {
        let c = cookie(
            "my user;\n",
            Some("/a;b\r\nc d"),
            Some(Duration::from_secs(1)),
        );
        let header = set_cookie(&c, "v\"al;ue\u{e9}");
        assert_eq!(
            header.to_str().unwrap(),
            "my%20user%3B%0A=v%22al%3Bue%C3%A9; Path=/a%3Bb%0D%0Ac%20d; Max-Age=1; HttpOnly"
        );
        // The browser sends back the encoded name: it is recognised.
        let h = headers(&[("cookie", "my%20user%3B%0A=abc")]);
        assert_eq!(
            hash_of(&HashKey::Cookie(c), "/", &h),
            HashInput::Hash(hash_bytes(b"abc"))
        );
    }

    proptest! {
        #[test]
        fn never_panics(
            name in ".*",
            path in prop::option::of(".*"),
            ttl in prop::option::of(any::<u64>()),
            value in ".*",
            cookie_header in prop::collection::vec(any::<u8>(), 0..64),
            query in "[ -~]*",
            random in any::<u64>(),
        ) {
            let c = cookie(&name, path.as_deref(), ttl.map(Duration::from_nanos));
            let header = set_cookie(&c, &value);
            prop_assert!(header.to_str().is_ok());
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&cookie_header) {
                h.append(COOKIE, v);
            }
            let uri = format!("/p?{query}").parse::<Uri>().unwrap_or_else(|_| Uri::from_static("/"));
            let _ = request_hash(&HashKey::Cookie(c), &uri, &h, None, random);
            let _ = request_hash(&HashKey::QueryParameter(name), &uri, &h, None, random);
        }
    }
}
