//! JWT request authentication (Istio's `RequestAuthentication`): the server stack's `authn`
//! layer.

use std::sync::Arc;

/// The request principal of a request that carried a valid token: a request extension the
/// authorization layer and the application read.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestAuth {
    /// `<iss>/<sub>`, as Istio's `request.auth.principal`.
    pub principal: Arc<str>,
    /// The token's claims.
    pub claims: Arc<serde_json::Value>,
}
