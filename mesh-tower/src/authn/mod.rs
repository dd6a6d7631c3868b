//! JWT request authentication (Istio's `RequestAuthentication`): the server stack's `authn`
//! layer.
//!
//! [`AuthnLayer`] checks the JSON Web Tokens of inbound requests against `jwtRules`, as
//! Envoy's JWT filter does for an Istio sidecar:
//!
//! * A request with no token in any location of any rule passes, with no [`RequestAuth`]:
//!   whether it may go on is for the authorization layer (`requestPrincipals`) to say.
//! * A token that is found must be valid: its `iss` must be the issuer of a rule reading the
//!   location it was found in, it must not be expired or not yet valid (60 s of skew), its
//!   `aud` must name one of the rule's `audiences` (when there are any), and its signature
//!   must verify with a key of the rule's JWKS. Otherwise the request fails with
//!   [`ServerError::Unauthenticated`], which the server stack answers with 401, the reason
//!   (Envoy's wording, such as `Jwt is expired`) and `WWW-Authenticate: Bearer ...`.
//! * A valid token adds a [`RequestAuth`] extension (principal `<iss>/<sub>` and claims),
//!   sets the rule's `outputClaimToHeaders` and `outputPayloadToHeader`, and removes the
//!   token's header unless `forwardOriginalToken` (a token in a parameter or a cookie is
//!   left where it is). Headers of the names the rules output are removed from every
//!   request first, token or not, so a client cannot send them itself.
//!
//! Only asymmetric algorithms are accepted (RS256/384/512, PS256/384/512, ES256, ES384,
//! EdDSA): `alg: none` and HMAC tokens are rejected whatever their signature.
//!
//! # JWKS
//!
//! An inline `jwks` is parsed when the layer is built; an error names the rule's issuer. A
//! `jwksUri` is fetched in the background (one task per URI, shared by the rules naming it),
//! started when the layer is built, so **the layer must be built inside a tokio runtime**.
//! The set is fetched again every `refresh` and, when a token names a `kid` the set does not
//! have (a key rotation), at once, at most once per 30 s; that request waits for the fetch.
//! A failed fetch keeps the last good set and is retried after 1 s, 2 s, 4 s ... up to
//! `refresh`. Requests arriving before the first fetch is over wait for it (at most the
//! URI's `timeout`), then fail with `Jwks remote fetch is failed` if it failed. `https` URIs
//! are verified against the roots given to [`AuthnBuilder::https_roots`], else against the
//! system's CA bundle (`SSL_CERT_FILE`, or the usual files of Linux distributions).
//!
//! # Metrics
//!
//! `mesh_jwt_rejected_total{reason}` counts rejected tokens by [`JwtError::reason`];
//! `mesh_jwks_fetches_total{uri, result="ok"|"error"}` counts JWKS fetches.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use mesh_core::config::{JwksSource, JwtRule};
//! use mesh_tower::authn::{AuthnLayer, RequestAuth};
//! use mesh_tower::server::ServerError;
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let rule = JwtRule {
//!     issuer: "https://issuer.example.com".into(),
//!     audiences: vec!["reviews".into()],
//!     keys: JwksSource::Inline(r#"{"keys":[{"kty":"OKP","crv":"Ed25519",
//!         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}"#.into()),
//!     from_headers: vec![],
//!     from_params: vec![],
//!     from_cookies: vec![],
//!     forward_original_token: false,
//!     output_claim_to_headers: vec![],
//!     output_payload_to_header: None,
//! };
//! let app = tower::service_fn(|req: http::Request<()>| async move {
//!     let who = req.extensions().get::<RequestAuth>().map(|a| a.principal.to_string());
//!     Ok::<_, ServerError>(http::Response::new(who.unwrap_or_default()))
//! });
//! let service = AuthnLayer::new(&[rule]).unwrap().layer(app);
//!
//! // No token: passes, with no principal.
//! let res = service.clone().oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(res.body(), "");
//!
//! // A token that is not valid: 401 from the server stack.
//! let req = http::Request::get("/").header("authorization", "Bearer not-a-jwt").body(()).unwrap();
//! let err = service.oneshot(req).await.unwrap_err();
//! assert_eq!(err.status(), 401);
//! assert!(err.to_string().starts_with("Jwt is not in the form of Header.Payload.Signature"));
//! # }
//! ```
//!
//! [`ServerError::Unauthenticated`]: crate::server::ServerError::Unauthenticated

use std::sync::Arc;

use mesh_core::jwt::JwtError;
use serde_json::Value;

mod keys;
mod layer;
mod remote;
#[cfg(test)]
mod tests;

pub use layer::{AuthnBuilder, AuthnFuture, AuthnLayer, AuthnService, UnixClock};

/// The request principal of a request that carried a valid token: a request extension the
/// authorization layer and the application read.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestAuth {
    /// `<iss>/<sub>`, as Istio's `request.auth.principal`; empty when the token has no
    /// `sub` (Istio then has no request principal).
    pub principal: Arc<str>,
    /// The token's claims.
    pub claims: Arc<serde_json::Value>,
}

impl RequestAuth {
    /// The `iss` claim.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The `aud` claim as a list (Istio's `request.auth.audiences`).
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self.claims.get("aud") {
            Some(Value::String(aud)) => (Some(aud.as_str()), None),
            Some(Value::Array(list)) => (None, Some(list.iter().filter_map(Value::as_str))),
            _ => (None, None),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// The `azp` claim (Istio's `request.auth.presenter`).
    pub fn presenter(&self) -> Option<&str> {
        self.claims.get("azp").and_then(Value::as_str)
    }

    /// The claim `path`, nested claims by `.` (Istio's `request.auth.claims[a][b]` is
    /// `a.b`); see [`mesh_core::jwt::claims::lookup`].
    pub fn claim(&self, path: &str) -> Option<&Value> {
        mesh_core::jwt::claims::lookup(&self.claims, path)
    }
}

/// Why an [`AuthnLayer`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthnError {
    /// A rule is not usable: the message names the rule, its issuer and what is wrong (a
    /// bad inline JWKS, header name or `jwksUri`).
    #[error("jwtRules[{index}] (issuer {issuer:?}): {reason}")]
    Rule {
        /// The rule's index.
        index: usize,
        /// The rule's issuer.
        issuer: String,
        /// What is wrong.
        reason: String,
    },
    /// A rule has a `jwksUri` but the layer is built outside a tokio runtime.
    #[error("a jwksUri is fetched in the background: build the JWT layer inside a tokio runtime")]
    NoRuntime,
}

/// Counts a rejected token.
fn count_rejection(error: &JwtError) {
    tracing::debug!(%error, "JWT rejected");
    metrics::counter!("mesh_jwt_rejected_total", "reason" => error.reason()).increment(1);
}
