//! Why a DNS lookup failed, told apart the way refresh decisions and metrics need.

use std::time::Duration;

use hickory_resolver::net::{DnsError as HickoryDnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use mesh_core::discovery::LookupFailure;

/// A failed DNS lookup; every variant names the name queried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN).
    #[error("NXDOMAIN for {name}")]
    NxDomain {
        /// The name queried.
        name: String,
    },
    /// The name exists but has no records of the asked type (NOERROR with no answer: NODATA).
    #[error("no {record_type} records for {name}")]
    NoRecords {
        /// The name queried.
        name: String,
        /// The record types asked for, such as `A/AAAA` or `SRV`.
        record_type: &'static str,
    },
    /// No answer came within the lookup timeout.
    #[error("DNS lookup of {name} timed out after {timeout:?}")]
    Timeout {
        /// The name queried.
        name: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The server answered with an error code (SERVFAIL, REFUSED, ...).
    #[error("DNS server answered {rcode} for {name}")]
    ServerFailure {
        /// The name queried.
        name: String,
        /// The response code, such as `SERVFAIL` or `REFUSED`.
        rcode: &'static str,
    },
    /// The server could not be reached or the transport failed.
    #[error("I/O error looking up {name}: {message}")]
    Io {
        /// The name queried.
        name: String,
        /// What failed.
        message: String,
    },
    /// The answer could not be used (an SRV target that does not resolve, a malformed
    /// message, a mismatched query).
    #[error("bad DNS answer for {name}: {reason}")]
    BadAnswer {
        /// The name queried.
        name: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// The resolver could not be set up (unreadable system configuration, bad name).
    #[error("DNS resolver configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

impl DnsError {
    /// A short label for metrics: `nxdomain`, `nodata`, `timeout`, `servfail`, `refused`,
    /// `io`, `bad_answer` or `config`.
    pub fn kind(&self) -> &'static str {
        match self {
            DnsError::NxDomain { .. } => "nxdomain",
            DnsError::NoRecords { .. } => "nodata",
            DnsError::Timeout { .. } => "timeout",
            DnsError::ServerFailure { rcode, .. } if *rcode == "REFUSED" => "refused",
            DnsError::ServerFailure { .. } => "servfail",
            DnsError::Io { .. } => "io",
            DnsError::BadAnswer { .. } => "bad_answer",
            DnsError::Config { .. } => "config",
        }
    }

    /// Whether the answer says the name has no records (NXDOMAIN or NODATA), as opposed to a
    /// failure that says nothing about the name.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DnsError::NxDomain { .. } | DnsError::NoRecords { .. })
    }

    /// This error as the refresh state machine sees it.
    pub fn to_lookup_failure(&self) -> LookupFailure {
        let reason = self.to_string().into();
        if self.is_not_found() {
            LookupFailure::NotFound(reason)
        } else {
            LookupFailure::Failed(reason)
        }
    }

    /// Classifies a hickory error from a lookup of `name` of `record_type`.
    pub(crate) fn from_net(
        name: &str,
        record_type: &'static str,
        timeout: Duration,
        err: &NetError,
    ) -> Self {
        let name = name.to_owned();
        match err {
            NetError::Dns(HickoryDnsError::NoRecordsFound(NoRecords { response_code, .. })) => {
                match response_code {
                    ResponseCode::NXDomain => DnsError::NxDomain { name },
                    ResponseCode::NoError => DnsError::NoRecords { name, record_type },
                    code => DnsError::ServerFailure {
                        name,
                        rcode: rcode_name(*code),
                    },
                }
            }
            NetError::Dns(HickoryDnsError::ResponseCode(code)) => DnsError::ServerFailure {
                name,
                rcode: rcode_name(*code),
            },
            NetError::Dns(other) => DnsError::BadAnswer {
                name,
                reason: other.to_string(),
            },
            NetError::Timeout => DnsError::Timeout { name, timeout },
            NetError::Proto(_)
            | NetError::QueryCaseMismatch
            | NetError::ForeignClassRecord { .. }
            | NetError::Truncated => DnsError::BadAnswer {
                name,
                reason: err.to_string(),
            },
            other => DnsError::Io {
                name,
                message: other.to_string(),
            },
        }
    }
}

/// The conventional upper-case mnemonic of a response code.
fn rcode_name(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        _ => "an error code",
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use hickory_resolver::proto::op::Query;

    use super::*;

    const T: Duration = Duration::from_secs(2);

    fn no_records(code: ResponseCode) -> NetError {
        NoRecords::new(Query::default(), code).into()
    }

    #[test]
    fn classifies_hickory_errors() {
        let e = DnsError::from_net("a.b", "A/AAAA", T, &no_records(ResponseCode::NXDomain));
        assert_eq!(e, DnsError::NxDomain { name: "a.b".into() });
        assert_eq!(e.kind(), "nxdomain");
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "NXDOMAIN for a.b");

        let e = DnsError::from_net("a.b", "SRV", T, &no_records(ResponseCode::NoError));
        assert_eq!(e.kind(), "nodata");
        assert_eq!(e.to_string(), "no SRV records for a.b");
        assert!(matches!(e.to_lookup_failure(), LookupFailure::NotFound(_)));

        let e = DnsError::from_net("a.b", "A", T, &NetError::Timeout);
        assert_eq!(e.kind(), "timeout");
        assert!(!e.is_not_found());
        assert_eq!(e.to_string(), "DNS lookup of a.b timed out after 2s");
        assert!(matches!(e.to_lookup_failure(), LookupFailure::Failed(_)));

        let servfail = NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::ServFail));
        let e = DnsError::from_net("a.b", "A", T, &servfail);
        assert_eq!(e.kind(), "servfail");
        assert_eq!(e.to_string(), "DNS server answered SERVFAIL for a.b");

        let refused = NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::Refused));
        assert_eq!(
            DnsError::from_net("a.b", "A", T, &refused).kind(),
            "refused"
        );

        let io = NetError::Io(Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused)));
        let e = DnsError::from_net("a.b", "A", T, &io);
        assert_eq!(e.kind(), "io");
        assert!(e.to_string().starts_with("I/O error looking up a.b"));

        let e = DnsError::from_net("a.b", "A", T, &NetError::QueryCaseMismatch);
        assert_eq!(e.kind(), "bad_answer");
        assert_eq!(
            DnsError::from_net("a.b", "A", T, &NetError::NoConnections).kind(),
            "io"
        );
    }
}
