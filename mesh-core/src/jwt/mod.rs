//! JWT request authentication with Istio's `RequestAuthentication` semantics, the pure part:
//! finding a token in a request ([`Extractor`]), parsing it ([`Jwt::parse`]), checking its
//! time and audience claims ([`Jwt::check_time`], [`Jwt::check_audiences`]) and reading
//! claims for headers and principals ([`claims`]). The signature is checked in
//! `mesh-tower`'s `authn` against the rule's JWKS.
//!
//! Nothing here reads a clock: "now" is passed in as unix seconds.
//!
//! ```
//! use mesh_core::jwt::{Jwt, JwtError};
//!
//! // `{"alg":"none"}.{"iss":"a"}.` : unsigned tokens are never accepted.
//! let err = Jwt::parse("eyJhbGciOiJub25lIn0.eyJpc3MiOiJhIn0.").unwrap_err();
//! assert!(matches!(err, JwtError::UnsupportedAlg(_)));
//! assert_eq!(err.to_string(),
//!     "Jwt algorithm is not supported: none (unsigned tokens are never accepted)");
//! ```

pub mod claims;
mod extract;
mod token;

#[cfg(test)]
mod tests;

pub use extract::{Extractor, Found, TokenLocation};
pub use token::{Jwt, JwtAlg, KeyType};

/// The clock skew allowed on `exp` and `nbf`, in seconds (Envoy's default, 60 s).
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Why a token was rejected: the request gets 401 with this message (Envoy's wording).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is not `header.payload.signature` of base64url JSON.
    #[error("Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections: {0}")]
    Malformed(String),
    /// The header part is not base64url.
    #[error("Jwt header is an invalid Base64")]
    HeaderNotBase64,
    /// The header part is not a JSON object.
    #[error("Jwt header is an invalid JSON")]
    HeaderNotJson,
    /// The header has no `alg`, or it is not a string.
    #[error("Jwt header [alg] field is required and must be a string")]
    AlgMissing,
    /// The header's `alg` is not one mesh verifies: `none`, HMAC (`HS256`...) or an unknown
    /// name (the name, shortened to 32 characters).
    #[error("Jwt algorithm is not supported: {}", unsupported_detail(.0))]
    UnsupportedAlg(String),
    /// The header's `kid` is not a string.
    #[error("Jwt header [kid] field is not a string")]
    KidNotString,
    /// The payload part is not base64url.
    #[error("Jwt payload is an invalid Base64")]
    PayloadNotBase64,
    /// The payload part is not a JSON object.
    #[error("Jwt payload is an invalid JSON")]
    PayloadNotJson,
    /// The signature part is empty or not base64url.
    #[error("Jwt signature is an invalid Base64")]
    SignatureNotBase64,
    /// A registered claim (`iss`, `sub`, `aud`, `exp`, `nbf`, `azp`) has the wrong JSON type.
    #[error("Jwt {0} claim has a wrong type")]
    ClaimType(&'static str),
    /// The token's `iss` is missing, or is not the issuer of a rule that reads the location
    /// the token was found in.
    #[error("Jwt issuer is not configured")]
    UnknownIssuer,
    /// `exp` has passed (with the clock skew).
    #[error("Jwt is expired")]
    Expired,
    /// `nbf` has not come yet (with the clock skew).
    #[error("Jwt not yet valid")]
    NotYetValid,
    /// The rule lists audiences and none of them is in `aud`.
    #[error("Audiences in Jwt are not allowed")]
    AudienceNotAllowed,
    /// No key of the JWKS fits the token's `kid` and `alg`.
    #[error("Jwks doesn't have key to match kid or alg from Jwt")]
    NoMatchingKey,
    /// No fitting key verifies the signature.
    #[error("Jwt verification fails")]
    VerificationFailed,
    /// The rule's remote JWKS has never been fetched successfully.
    #[error("Jwks remote fetch is failed")]
    JwksFetchFailed,
}

impl JwtError {
    /// A short label for metrics (`mesh_jwt_rejected_total{reason}`): `malformed`,
    /// `bad_header`, `bad_payload`, `unsupported_alg`, `bad_claim`, `unknown_issuer`,
    /// `expired`, `not_yet_valid`, `audience`, `unknown_kid`, `bad_signature`,
    /// `jwks_fetch_failed`.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Malformed(_) | JwtError::SignatureNotBase64 => "malformed",
            JwtError::HeaderNotBase64
            | JwtError::HeaderNotJson
            | JwtError::AlgMissing
            | JwtError::KidNotString => "bad_header",
            JwtError::PayloadNotBase64 | JwtError::PayloadNotJson => "bad_payload",
            JwtError::UnsupportedAlg(_) => "unsupported_alg",
            JwtError::ClaimType(_) => "bad_claim",
            JwtError::UnknownIssuer => "unknown_issuer",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::AudienceNotAllowed => "audience",
            JwtError::NoMatchingKey => "unknown_kid",
            JwtError::VerificationFailed => "bad_signature",
            JwtError::JwksFetchFailed => "jwks_fetch_failed",
        }
    }
}

/// The message detail of [`JwtError::UnsupportedAlg`]: why `none` and HMAC never pass.
fn unsupported_detail(alg: &str) -> String {
    if alg.eq_ignore_ascii_case("none") {
        format!("{alg} (unsigned tokens are never accepted)")
    } else if matches!(alg, "HS256" | "HS384" | "HS512") {
        format!("{alg} (mesh accepts only asymmetric keys)")
    } else {
        alg.to_owned()
    }
}
