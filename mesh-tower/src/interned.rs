//! Header values backed by static text.
//!
//! A header value that goes on every request (the peer metadata, the timeout a request
//! carries) is cloned into each one. A value built at run time shares one buffer, and
//! cloning it touches that buffer's reference count from every thread that sends; a value
//! backed by static text is copied without touching anything shared.

use http::HeaderValue;

/// The most values kept as static text: a process has a workload or a few, and a timeout
/// for each route or destination that sets one.
const MAX_INTERNED: usize = 256;

/// `value` backed by static text. Each distinct value is kept once for the life of the
/// process (at most [`MAX_INTERNED`]; past that, values are used as they are).
pub(crate) fn interned(value: HeaderValue) -> HeaderValue {
    static SEEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let Ok(text) = value.to_str() else {
        return value;
    };
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = seen.iter().find(|s| **s == text) {
        return HeaderValue::from_static(found);
    }
    if seen.len() >= MAX_INTERNED {
        return value;
    }
    let text: &'static str = Box::leak(text.to_owned().into_boxed_str());
    seen.push(text);
    HeaderValue::from_static(text)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::interned;

    #[test]
    fn equal_values_share_one_static_text() {
        let a = interned(HeaderValue::from(15_000u64));
        let b = interned(HeaderValue::from_static("15000"));
        assert_eq!(a, "15000");
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
    }

    #[test]
    fn a_value_that_is_not_text_is_kept_as_it_is() {
        let raw = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert_eq!(interned(raw.clone()), raw);
    }
}
