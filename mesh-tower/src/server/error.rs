//! Why the server stack answered a request itself, and with what.

use std::convert::Infallible;
use std::sync::Arc;

use http::StatusCode;
use mesh_core::deadline::DeadlineError;

use crate::BoxError;
use crate::limit::{LimitError, Limited};

/// Why the server stack answered a request itself instead of (or after) the application.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A local rate limit or concurrency limit rejected the request.
    #[error("{name}: {limited}")]
    Limited {
        /// The limit's name (the server's).
        name: Arc<str>,
        /// The limit and why.
        limited: Limited,
    },
    /// A deadline header (`x-mesh-timeout-ms`, or `grpc-timeout` of a gRPC request) is
    /// malformed; the message names the header.
    #[error(transparent)]
    BadDeadline(#[from] DeadlineError),
    /// The request's deadline had passed when it arrived.
    #[error("deadline exceeded before the request was handled")]
    DeadlineExceeded,
    /// The request's path has a malformed percent-encoding: 400.
    #[error(transparent)]
    MalformedPath(#[from] mesh_core::path::PathError),
    /// The request carried a token that is not valid (JWT request authentication): 401
    /// with the reason.
    #[error(transparent)]
    Unauthenticated(#[from] mesh_core::jwt::JwtError),
    /// An authorization policy denied the request: 403 `RBAC: access denied`.
    #[error("RBAC: access denied")]
    Forbidden {
        /// The policy that decided (`<namespace>/<name>`), when one matched; none when ALLOW
        /// policies apply and none matched.
        policy: Option<Arc<str>>,
    },
    /// The application failed instead of answering.
    #[error("application error: {0}")]
    App(#[source] BoxError),
}

impl ServerError {
    /// The status of the local reply (429 rate limited, 503 shed, 400 bad deadline header,
    /// 504 deadline passed, 400 malformed path, 401 invalid token, 403 denied, 500
    /// application error).
    pub fn status(&self) -> StatusCode {
        match self {
            ServerError::Limited {
                limited: Limited::RateLimited,
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            ServerError::Limited {
                limited: Limited::Shed { .. },
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::BadDeadline(_) | ServerError::MalformedPath(_) => StatusCode::BAD_REQUEST,
            ServerError::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ServerError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ServerError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ServerError::App(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status of the local reply to a gRPC request: UNAVAILABLE (14) for limits, as
    /// Envoy maps 429 and 503; DEADLINE_EXCEEDED (4); INTERNAL (13) for a bad header, as
    /// Envoy maps 400; UNAUTHENTICATED (16) and PERMISSION_DENIED (7); UNKNOWN (2) for an
    /// application error.
    pub fn grpc_status(&self) -> u16 {
        match self {
            ServerError::Limited { .. } => 14,
            ServerError::DeadlineExceeded => 4,
            ServerError::BadDeadline(_) | ServerError::MalformedPath(_) => 13,
            ServerError::Unauthenticated(_) => 16,
            ServerError::Forbidden { .. } => 7,
            ServerError::App(_) => 2,
        }
    }
}

/// Why a server stack could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerBuildError {
    /// A RequestAuthentication rule cannot be used (such as an inline JWKS without a usable
    /// key).
    #[error("request authentication: {0}")]
    Authn(#[from] crate::authn::AuthnError),
    /// An AuthorizationPolicy cannot be compiled.
    #[error(transparent)]
    Authz(#[from] mesh_core::authz::AuthzError),
    /// The workload's certificates cannot be used, or the mTLS mode needs certificates the
    /// server was not given.
    #[error("workload certificates: {0}")]
    Certificates(#[from] crate::tls::CertError),
    /// A reload ([`ServerPolicy::reload`](super::ServerPolicy::reload)) gives a listening
    /// port an mTLS mode it cannot serve: STRICT on a server without a workload identity.
    #[error("{field} {mode}: {source}")]
    Mtls {
        /// The field: `mtls.mode`, or `portLevelMtls[<port>].mode`.
        field: String,
        /// The mode.
        mode: mesh_core::config::MtlsMode,
        /// Why it cannot be served.
        #[source]
        source: crate::tls::CertError,
    },
    /// A telemetry setting (an access-log file) cannot be used.
    #[error("telemetry: {0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The listener's address cannot be read.
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
}

impl LimitError for ServerError {
    fn limited(name: &Arc<str>, limited: Limited) -> Self {
        ServerError::Limited {
            name: name.clone(),
            limited,
        }
    }
}

impl From<Infallible> for ServerError {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

impl From<BoxError> for ServerError {
    /// A boxed [`ServerError`] or [`Limited`] is itself again; any other error is
    /// [`ServerError::App`].
    fn from(error: BoxError) -> Self {
        let error = match error.downcast::<ServerError>() {
            Ok(error) => return *error,
            Err(error) => error,
        };
        match error.downcast_ref::<Limited>() {
            Some(&limited) => ServerError::Limited {
                name: Arc::from(super::DEFAULT_NAME),
                limited,
            },
            None => ServerError::App(error),
        }
    }
}
