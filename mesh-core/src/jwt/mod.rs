//! JWT request authentication with Istio's `RequestAuthentication` semantics, the pure part:
//! finding a token in a request, parsing it, and checking its claims against a rule. The
//! signature is checked in `mesh-tower`'s `authn` against the rule's JWKS.

/// Why a token was rejected: the request gets 401 with this message (Envoy's wording).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is not `header.payload.signature` of base64url JSON.
    #[error("Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections: {0}")]
    Malformed(String),
}
