//! Istio's `retryOn`: the conditions under which a try is retried.

use std::fmt;
use std::str::FromStr;

/// One `retryOn` condition, by Envoy's and Istio's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// `5xx`: any 5xx response, or no response at all (connect failure, reset, timeout).
    Http5xx,
    /// `gateway-error`: 502, 503 or 504, or no response at all.
    GatewayError,
    /// `reset`: the connection or stream broke after the request was sent, or a try timed out.
    Reset,
    /// `connect-failure`: no connection could be made; the request was never sent.
    ConnectFailure,
    /// `refused-stream`: the server refused the HTTP/2 stream; the request was never processed.
    RefusedStream,
    /// `retriable-4xx`: a 409 response.
    Retriable4xx,
    /// `retriable-status-codes`: a response whose status is in [`RetryOn::codes`].
    RetriableStatusCodes,
    /// `cancelled`: gRPC status 1.
    Cancelled,
    /// `deadline-exceeded`: gRPC status 4.
    DeadlineExceeded,
    /// `resource-exhausted`: gRPC status 8.
    ResourceExhausted,
    /// `internal`: gRPC status 13.
    Internal,
    /// `unavailable`: gRPC status 14.
    Unavailable,
}

impl Condition {
    const ALL: [Condition; 12] = [
        Condition::Http5xx,
        Condition::GatewayError,
        Condition::Reset,
        Condition::ConnectFailure,
        Condition::RefusedStream,
        Condition::Retriable4xx,
        Condition::RetriableStatusCodes,
        Condition::Cancelled,
        Condition::DeadlineExceeded,
        Condition::ResourceExhausted,
        Condition::Internal,
        Condition::Unavailable,
    ];

    /// The condition's name in `retryOn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Http5xx => "5xx",
            Condition::GatewayError => "gateway-error",
            Condition::Reset => "reset",
            Condition::ConnectFailure => "connect-failure",
            Condition::RefusedStream => "refused-stream",
            Condition::Retriable4xx => "retriable-4xx",
            Condition::RetriableStatusCodes => "retriable-status-codes",
            Condition::Cancelled => "cancelled",
            Condition::DeadlineExceeded => "deadline-exceeded",
            Condition::ResourceExhausted => "resource-exhausted",
            Condition::Internal => "internal",
            Condition::Unavailable => "unavailable",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// How one try ended, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response arrived, with its status and any `grpc-status` in its headers.
    Response {
        /// The HTTP status code.
        status: u16,
        /// The gRPC status from the response headers (a trailers-only response), if any.
        grpc_status: Option<u32>,
    },
    /// No connection could be made; the request was never sent.
    ConnectFailure,
    /// The HTTP/2 stream was refused; the request was never processed.
    RefusedStream,
    /// The connection or stream broke after the request was sent.
    Reset,
    /// The try timed out (per-try timeout).
    Timeout,
}

impl Outcome {
    /// Whether the request provably never reached the application, so any method may be retried.
    pub fn never_processed(self) -> bool {
        matches!(self, Outcome::ConnectFailure | Outcome::RefusedStream)
    }
}

/// A parsed `retryOn` value: a set of [`Condition`]s and retriable status codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryOn {
    bits: u16,
    codes: Vec<u16>,
}

/// Why a `retryOn` value could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown retryOn condition `{token}` (expected one of 5xx, gateway-error, reset, connect-failure, refused-stream, retriable-4xx, retriable-status-codes, cancelled, deadline-exceeded, resource-exhausted, internal, unavailable, or a status code 100-599)"
)]
pub struct ParseRetryOnError {
    /// The token that was not understood.
    pub token: String,
}

impl RetryOn {
    /// No condition: nothing is retried.
    pub fn none() -> Self {
        Self {
            bits: 0,
            codes: Vec::new(),
        }
    }

    /// Adds a condition.
    pub fn with(mut self, condition: Condition) -> Self {
        self.bits |= condition.bit();
        self
    }

    /// Adds a retriable status code (and the `retriable-status-codes` condition).
    pub fn with_code(mut self, code: u16) -> Self {
        self.bits |= Condition::RetriableStatusCodes.bit();
        if !self.codes.contains(&code) {
            self.codes.push(code);
            self.codes.sort_unstable();
        }
        self
    }

    /// Whether the condition is set.
    pub fn contains(&self, condition: Condition) -> bool {
        self.bits & condition.bit() != 0
    }

    /// The retriable status codes.
    pub fn codes(&self) -> &[u16] {
        &self.codes
    }

    /// Whether nothing would ever be retried.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// Whether `outcome` matches one of the conditions.
    ///
    /// `may_repeat` says whether the request may be sent twice (an idempotent method, or
    /// retries of non-idempotent requests allowed); when it is false only outcomes where the
    /// request never reached the application are retried.
    pub fn should_retry(&self, outcome: Outcome, may_repeat: bool) -> bool {
        if !may_repeat && !outcome.never_processed() {
            return false;
        }
        let has = |c: Condition| self.contains(c);
        match outcome {
            Outcome::ConnectFailure => {
                has(Condition::ConnectFailure)
                    || has(Condition::Http5xx)
                    || has(Condition::GatewayError)
            }
            Outcome::RefusedStream => {
                has(Condition::RefusedStream)
                    || has(Condition::Http5xx)
                    || has(Condition::GatewayError)
            }
            Outcome::Reset | Outcome::Timeout => {
                has(Condition::Reset) || has(Condition::Http5xx) || has(Condition::GatewayError)
            }
            Outcome::Response {
                status,
                grpc_status,
            } => {
                (has(Condition::Http5xx) && (500..600).contains(&status))
                    || (has(Condition::GatewayError) && matches!(status, 502..=504))
                    || (has(Condition::Retriable4xx) && status == 409)
                    || (has(Condition::RetriableStatusCodes) && self.codes.contains(&status))
                    || grpc_status.is_some_and(|g| self.grpc_retriable(g))
            }
        }
    }

    fn grpc_retriable(&self, grpc_status: u32) -> bool {
        let condition = match grpc_status {
            1 => Condition::Cancelled,
            4 => Condition::DeadlineExceeded,
            8 => Condition::ResourceExhausted,
            13 => Condition::Internal,
            14 => Condition::Unavailable,
            _ => return false,
        };
        self.contains(condition)
    }
}

impl Default for RetryOn {
    /// Istio's default (`connect-failure,refused-stream,unavailable,cancelled,503`) plus
    /// `reset`, which mesh applies to idempotent requests only.
    fn default() -> Self {
        RetryOn::none()
            .with(Condition::ConnectFailure)
            .with(Condition::RefusedStream)
            .with(Condition::Reset)
            .with(Condition::Unavailable)
            .with(Condition::Cancelled)
            .with_code(503)
    }
}

impl FromStr for RetryOn {
    type Err = ParseRetryOnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = RetryOn::none();
        for token in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if let Some(c) = Condition::ALL.iter().find(|c| c.as_str() == token) {
                out = out.with(*c);
            } else if let Ok(code) = token.parse::<u16>()
                && (100..600).contains(&code)
            {
                out = out.with_code(code);
            } else {
                return Err(ParseRetryOnError {
                    token: token.to_owned(),
                });
            }
        }
        Ok(out)
    }
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let r = if first { Ok(()) } else { f.write_str(",") };
            first = false;
            r
        };
        for c in Condition::ALL {
            // Codes imply retriable-status-codes; print them instead of the bare name.
            let implied_by_codes = c == Condition::RetriableStatusCodes && !self.codes.is_empty();
            if self.contains(c) && !implied_by_codes {
                sep(f)?;
                f.write_str(c.as_str())?;
            }
        }
        for code in &self.codes {
            sep(f)?;
            write!(f, "{code}")?;
        }
        Ok(())
    }
}

/// Whether a method is idempotent (RFC 9110 §9.2.2), so a request may be sent twice.
pub fn is_idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::TRACE
            | http::Method::PUT
            | http::Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Outcome {
        Outcome::Response {
            status,
            grpc_status: None,
        }
    }

    #[test]
    fn parses_and_prints_round_trip() {
        let r: RetryOn = "5xx, connect-failure,503,409".parse().unwrap();
        assert!(r.contains(Condition::Http5xx));
        assert!(r.contains(Condition::RetriableStatusCodes));
        assert_eq!(r.codes(), &[409, 503]);
        assert_eq!(r.to_string(), "5xx,connect-failure,409,503");
        assert_eq!(r.to_string().parse::<RetryOn>().unwrap(), r);
    }

    #[test]
    fn unknown_token_is_named() {
        let e = "5xx,bogus".parse::<RetryOn>().unwrap_err();
        assert_eq!(e.token, "bogus");
        assert!(e.to_string().contains("`bogus`"));
        assert_eq!("700".parse::<RetryOn>().unwrap_err().token, "700");
    }

    #[test]
    fn default_round_trips() {
        let d = RetryOn::default();
        assert_eq!(d.to_string().parse::<RetryOn>().unwrap(), d);
    }

    #[test]
    fn classification() {
        let r: RetryOn = "gateway-error".parse().unwrap();
        assert!(r.should_retry(status(503), true));
        assert!(!r.should_retry(status(500), true));
        assert!(r.should_retry(Outcome::Reset, true));
        assert!(r.should_retry(Outcome::ConnectFailure, false));
        let r: RetryOn = "5xx".parse().unwrap();
        assert!(r.should_retry(status(500), true));
        assert!(!r.should_retry(status(404), true));
        let r: RetryOn = "retriable-4xx".parse().unwrap();
        assert!(r.should_retry(status(409), true));
        let r: RetryOn = "unavailable".parse().unwrap();
        let grpc = Outcome::Response {
            status: 200,
            grpc_status: Some(14),
        };
        assert!(r.should_retry(grpc, true));
        assert!(!RetryOn::none().should_retry(status(503), true));
    }

    #[test]
    fn non_idempotent_only_when_never_processed() {
        let r: RetryOn = "5xx,reset,connect-failure,refused-stream".parse().unwrap();
        assert!(!r.should_retry(status(503), false));
        assert!(!r.should_retry(Outcome::Reset, false));
        assert!(!r.should_retry(Outcome::Timeout, false));
        assert!(r.should_retry(Outcome::ConnectFailure, false));
        assert!(r.should_retry(Outcome::RefusedStream, false));
    }

    #[test]
    fn idempotent_methods() {
        assert!(is_idempotent(&http::Method::GET));
        assert!(is_idempotent(&http::Method::PUT));
        assert!(!is_idempotent(&http::Method::POST));
        assert!(!is_idempotent(&http::Method::PATCH));
    }
}
