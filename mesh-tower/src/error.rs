//! The client stack's typed errors, and how each becomes a local reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use mesh_core::breaker::Limit;
use mesh_core::retry::Outcome;
use mesh_core::route::AbortStatus;

use crate::BoxError;
use crate::limit::Limited;

/// Why the client stack could not get a response from upstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The whole request, retries included, took longer than the destination's timeout.
    #[error("upstream request timeout: {destination} did not answer within {timeout:?}")]
    Timeout {
        /// The destination, as `host:port`.
        destination: Arc<str>,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// One try took longer than the per-try timeout.
    #[error("upstream per-try timeout: {destination} did not answer within {timeout:?}")]
    PerTryTimeout {
        /// The destination, as `host:port`.
        destination: Arc<str>,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The destination has no endpoint to send to.
    #[error("no healthy upstream for {destination}: {reason}")]
    NoEndpoints {
        /// The destination, as `host:port`.
        destination: Arc<str>,
        /// Why (for example the DNS failure).
        reason: Arc<str>,
    },
    /// A connection to the endpoint could not be made; the request was never sent.
    #[error("upstream connect error: {endpoint}: {}", root_cause(.source.as_ref()))]
    Connect {
        /// The endpoint.
        endpoint: SocketAddr,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The endpoint refused the HTTP/2 stream; the request was never processed.
    #[error("upstream refused the stream: {endpoint}")]
    RefusedStream {
        /// The endpoint.
        endpoint: SocketAddr,
    },
    /// The connection or stream broke before a response arrived.
    #[error("upstream reset before response: {endpoint}: {}", root_cause(.source.as_ref()))]
    Reset {
        /// The endpoint.
        endpoint: SocketAddr,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The request itself could not be sent (its body failed, or it is malformed).
    #[error("bad request: {reason}")]
    BadRequest {
        /// What is wrong with the request.
        reason: Arc<str>,
    },
    /// The host has routes and none matched the request.
    #[error("no route matched {method} {authority}{path}")]
    NoRoute {
        /// The authority the request was for.
        authority: Arc<str>,
        /// The request's method.
        method: http::Method,
        /// The request's path.
        path: Arc<str>,
    },
    /// A connection-pool limit of the destination was reached (circuit breaking).
    #[error("upstream overflow: {destination}: {limit} limit reached")]
    Overflow {
        /// The destination, as `host:port`.
        destination: Arc<str>,
        /// The limit that tripped.
        limit: Limit,
    },
    /// A local rate limit or concurrency limit of the destination rejected the request.
    #[error("local limit: {destination}: {limited}")]
    Limited {
        /// The destination, as `host:port`.
        destination: Arc<str>,
        /// The limit and why.
        limited: Limited,
    },
    /// Fault injection aborted the request (Envoy's body says "fault filter abort").
    #[error("fault filter abort: {destination} (injected {status:?})")]
    FaultAbort {
        /// The host the route belongs to.
        destination: Arc<str>,
        /// The injected answer.
        status: AbortStatus,
    },
    /// The outbound traffic policy is REGISTRY_ONLY and the host is not in the registry
    /// (see [`mesh_core::egress`]); no connection was attempted.
    #[error("egress denied: {host} {}", mesh_core::egress::EgressDenied::REASON)]
    EgressDenied {
        /// The qualified authority called (`api.example.com:443`).
        host: Arc<str>,
    },
}

impl MeshError {
    /// How this failure counts for `retryOn`; `None` when it must not be retried.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            MeshError::Connect { .. } => Some(Outcome::ConnectFailure),
            MeshError::RefusedStream { .. } => Some(Outcome::RefusedStream),
            MeshError::Reset { .. } => Some(Outcome::Reset),
            MeshError::PerTryTimeout { .. } => Some(Outcome::Timeout),
            MeshError::Timeout { .. }
            | MeshError::NoEndpoints { .. }
            | MeshError::BadRequest { .. }
            | MeshError::NoRoute { .. }
            | MeshError::Overflow { .. }
            | MeshError::Limited { .. }
            | MeshError::FaultAbort { .. }
            | MeshError::EgressDenied { .. } => None,
        }
    }

    /// The error of a response future polled again after it completed (a caller's bug).
    pub(crate) fn polled_after_completion() -> Self {
        MeshError::BadRequest {
            reason: "response future polled after completion".into(),
        }
    }

    /// Takes the error a failed future holds, or [`polled_after_completion`] when it was
    /// taken already.
    ///
    /// [`polled_after_completion`]: Self::polled_after_completion
    pub(crate) fn take(error: &mut Option<MeshError>) -> Self {
        error.take().unwrap_or_else(Self::polled_after_completion)
    }

    /// The endpoint involved, when one was picked.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        match self {
            MeshError::Connect { endpoint, .. }
            | MeshError::RefusedStream { endpoint }
            | MeshError::Reset { endpoint, .. } => Some(*endpoint),
            _ => None,
        }
    }

    /// The status of the local reply that stands for this error (as Envoy answers).
    pub fn status(&self) -> StatusCode {
        match self {
            MeshError::Timeout { .. } | MeshError::PerTryTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            MeshError::NoEndpoints { .. }
            | MeshError::Overflow { .. }
            | MeshError::Connect { .. }
            | MeshError::RefusedStream { .. }
            | MeshError::Reset { .. } => StatusCode::SERVICE_UNAVAILABLE,
            MeshError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            MeshError::NoRoute { .. } => StatusCode::NOT_FOUND,
            MeshError::Limited { limited, .. } => match limited {
                Limited::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                Limited::Shed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            },
            MeshError::FaultAbort { status, .. } => match status {
                AbortStatus::Http(code) => {
                    StatusCode::from_u16(*code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
                }
                AbortStatus::Grpc(_) => StatusCode::OK,
            },
            MeshError::EgressDenied { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// Envoy's response flag for this failure (`UT`, `UH`, `UF`, `UC`...).
    ///
    /// An [`EgressDenied`](MeshError::EgressDenied) reply has none (`-`), as in Istio:
    /// under REGISTRY_ONLY a sidecar answers an unknown HTTP host from its catch-all
    /// `block_all` virtual host, a direct response of 502, and Envoy sets no flag for a direct
    /// response. The reply is told apart by its 502 and its body, or by the [`LocalReply`]
    /// extension; the flags that would fit by name describe other failures (`NR` is a host
    /// whose routes did not match, answered 404; `UH` and `NC` are upstream failures, 503).
    pub fn response_flag(&self) -> &'static str {
        match self {
            MeshError::Timeout { .. } | MeshError::PerTryTimeout { .. } => "UT",
            MeshError::NoEndpoints { .. } => "UH",
            MeshError::Connect { .. } => "UF",
            MeshError::RefusedStream { .. } => "UR",
            MeshError::Reset { .. } => "UC",
            MeshError::BadRequest { .. } => "DPE",
            MeshError::NoRoute { .. } => "NR",
            MeshError::Overflow { .. } => "UO",
            MeshError::Limited { limited, .. } => match limited {
                Limited::RateLimited => "RL",
                Limited::Shed { .. } => "UO",
            },
            MeshError::FaultAbort { .. } => "FI",
            MeshError::EgressDenied { .. } => "-",
        }
    }

    /// Classifies an error of hyper-util's pooled client on a try to `endpoint`.
    pub(crate) fn from_client(
        endpoint: SocketAddr,
        err: hyper_util::client::legacy::Error,
    ) -> Self {
        if err.is_connect() {
            return MeshError::Connect {
                endpoint,
                source: err.into(),
            };
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(h2) = e.downcast_ref::<h2::Error>()
                && h2.reason() == Some(h2::Reason::REFUSED_STREAM)
            {
                return MeshError::RefusedStream { endpoint };
            }
            if let Some(hyper) = e.downcast_ref::<hyper::Error>()
                && hyper.is_user()
            {
                return MeshError::BadRequest {
                    reason: format!("{endpoint}: {hyper}").into(),
                };
            }
            source = e.source();
        }
        MeshError::Reset {
            endpoint,
            source: err.into(),
        }
    }
}

/// The innermost cause of an error chain: the part that says what actually happened
/// ("Connection refused", "connection closed before message completed").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A response extension on local replies: the error the reply stands for.
#[derive(Clone, Debug)]
pub struct LocalReply {
    /// The error.
    pub error: Arc<MeshError>,
}
