//! Consistent-hash keys: what a request hashes to under Istio's `consistentHash` policies.
//!
//! The hash is xxHash64, as Envoy uses. A request without the key gets no hash and is
//! balanced at random; a missing cookie with a `ttl` is generated, and the caller returns
//! it with `Set-Cookie` so the next request sticks.

use std::net::IpAddr;

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

#[allow(clippy::todo, unused_variables)]
mod contract {
    use super::*;

    /// xxHash64 (seed 0) of `bytes`.
    pub fn hash_bytes(bytes: &[u8]) -> u64 {
        todo!()
    }

    /// What the request hashes to under `key`; `source` is the caller's address, when known.
    /// `random` supplies a generated cookie's value.
    pub fn request_hash(
        key: &HashKey,
        uri: &Uri,
        headers: &HeaderMap,
        source: Option<IpAddr>,
        random: u64,
    ) -> HashInput {
        todo!()
    }

    /// The `Set-Cookie` value for a generated hash cookie.
    pub fn set_cookie(cookie: &HashCookie, value: &str) -> HeaderValue {
        todo!()
    }
}

pub use contract::{hash_bytes, request_hash, set_cookie};
