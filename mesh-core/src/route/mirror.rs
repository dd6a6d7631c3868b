//! The authority of mirrored requests.

use super::split_authority;

/// The authority a mirror sends with: `-shadow` appended to the host, before the port, as
/// Envoy does (`reviews:9080` becomes `reviews-shadow:9080`).
///
/// An IP literal is treated the same way (`[::1]:80` becomes `[::1]-shadow:80`): the result is
/// only a `Host` header telling the shadow service the request is a copy, never an address.
pub fn shadow_authority(authority: &str) -> String {
    let (host, port) = split_authority(authority);
    let mut out = String::with_capacity(authority.len() + 7);
    out.push_str(host);
    out.push_str("-shadow");
    if let Some(port) = port {
        out.push(':');
        out.push_str(port);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_names() {
        assert_eq!(shadow_authority("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_authority("reviews"), "reviews-shadow");
        assert_eq!(
            shadow_authority("reviews.default.svc.cluster.local:80"),
            "reviews.default.svc.cluster.local-shadow:80"
        );
        assert_eq!(shadow_authority("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadow_authority("[::1]"), "[::1]-shadow");
        assert_eq!(shadow_authority("10.0.0.1:8080"), "10.0.0.1-shadow:8080");
        // Not an authority at all, but no panic: the whole text is the host.
        assert_eq!(shadow_authority("::1"), "::1-shadow");
        assert_eq!(shadow_authority("[::1"), "[::1-shadow");
        assert_eq!(shadow_authority(""), "-shadow");
        assert_eq!(shadow_authority("reviews:"), "reviews-shadow:");
    }
}
