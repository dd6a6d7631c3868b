//! `x-request-id`: kept when the caller sent a sane one, else a fresh UUID v4, as Envoy does,
//! so one id follows a request through every service and access log.

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng;

/// The request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// [`REQUEST_ID_HEADER`] as a header name, parsed once (a lookup by `&str` parses it each
/// time, on every request).
pub static REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// The longest request id kept, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether `id` is a request id worth keeping: 1 to [`MAX_REQUEST_ID_LEN`] bytes of printable
/// ASCII (space included, but not at either end).
pub fn is_valid_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.iter().all(|b| (0x20..=0x7e).contains(b))
        && id.first() != Some(&b' ')
        && id.last() != Some(&b' ')
}

/// A random (version 4) UUID in its lowercase hyphenated form, such as
/// `0f8fad5b-d9cb-469f-a165-70867728950e`.
pub fn uuid_v4<R: Rng + ?Sized>(rng: &mut R) -> String {
    String::from_utf8_lossy(&uuid_v4_bytes(rng)).into_owned()
}

/// [`uuid_v4`] in a fixed buffer (made for every request without a request id).
fn uuid_v4_bytes<R: Rng + ?Sized>(rng: &mut R) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    // Where each byte's two digits go: groups of 8, 4, 4, 4 and 12 digits.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [b'-'; 36];
    for (byte, at) in b.iter().zip(AT) {
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

/// A new request id: a [`uuid_v4`].
fn new_request_id<R: Rng + ?Sized>(rng: &mut R) -> HeaderValue {
    // Shared bytes: the value is cloned for the request's context, a reference count.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(uuid_v4_bytes(rng)))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The request id to use: `incoming` when valid, else a new [`uuid_v4`].
pub fn request_id_or_new<R: Rng + ?Sized>(
    incoming: Option<&HeaderValue>,
    rng: &mut R,
) -> HeaderValue {
    match incoming {
        Some(v) if is_valid_request_id(v.as_bytes()) => v.clone(),
        _ => new_request_id(rng),
    }
}

/// Makes `headers` carry exactly one valid `x-request-id` (the incoming one when there is
/// exactly one and it is valid) and answers it.
pub fn ensure_request_id<R: Rng + ?Sized>(headers: &mut HeaderMap, rng: &mut R) -> HeaderValue {
    // One lookup (one hash of the name) for reading and writing.
    match headers.entry(&REQUEST_ID_NAME) {
        Entry::Occupied(mut entry) => {
            let mut all = entry.iter();
            if let (Some(v), None) = (all.next(), all.next())
                && is_valid_request_id(v.as_bytes())
            {
                // Already the one valid id: nothing to write.
                return v.clone();
            }
            let id = new_request_id(rng);
            entry.insert(id.clone());
            id
        }
        Entry::Vacant(entry) => {
            let id = new_request_id(rng);
            entry.insert(id.clone());
            id
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn is_uuid_v4(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
            })
            && b[14] == b'4'
            && b"89ab".contains(&b[19])
    }

    #[test]
    fn generates_uuid_v4() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = uuid_v4(&mut rng);
        let b = uuid_v4(&mut rng);
        assert!(is_uuid_v4(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn keeps_valid_replaces_invalid() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc 123"));
        assert_eq!(ensure_request_id(&mut h, &mut rng), "abc 123");
        assert_eq!(h[REQUEST_ID_HEADER], "abc 123");

        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static(" x"),
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
            HeaderValue::from_str(&"x".repeat(129)).unwrap(),
        ] {
            let mut h = HeaderMap::new();
            h.insert(REQUEST_ID_HEADER, bad);
            let id = ensure_request_id(&mut h, &mut rng);
            assert!(is_uuid_v4(id.to_str().unwrap()));
            assert_eq!(h.get_all(REQUEST_ID_HEADER).iter().count(), 1);
        }
        let mut h = HeaderMap::new();
        h.append(REQUEST_ID_HEADER, HeaderValue::from_static("a"));
        h.append(REQUEST_ID_HEADER, HeaderValue::from_static("b"));
        let id = ensure_request_id(&mut h, &mut rng);
        assert!(is_uuid_v4(id.to_str().unwrap()));
        assert_eq!(h.get_all(REQUEST_ID_HEADER).iter().count(), 1);
        assert!(is_valid_request_id(&[b'x'; 128]));
    }

    proptest! {
        #[test]
        fn never_panics_and_always_valid(bytes in proptest::collection::vec(any::<u8>(), 0..200), seed: u64) {
            let mut rng = StdRng::seed_from_u64(seed);
            let incoming = HeaderValue::from_bytes(&bytes).ok();
            let id = request_id_or_new(incoming.as_ref(), &mut rng);
            prop_assert!(is_valid_request_id(id.as_bytes()));
            if let Some(v) = incoming.filter(|v| is_valid_request_id(v.as_bytes())) {
                prop_assert_eq!(id, v);
            } else {
                prop_assert!(is_uuid_v4(id.to_str().unwrap()));
            }
        }
    }
}
