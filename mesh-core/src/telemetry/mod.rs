//! The pure part of observability: trace context propagation (W3C and B3), `x-request-id`,
//! the peer workload metadata exchanged between mesh stacks, Istio's standard metric labels,
//! and access log lines in Istio's text and JSON formats.
//!
//! Nothing here reads a clock or does I/O: times are passed in (unix milliseconds) and
//! randomness as a [`rand::Rng`]. Every parser answers `None` or a typed error on bad input
//! and never panics.

pub mod access_log;
pub mod labels;
pub mod peer_metadata;
pub mod propagate;
pub mod request_id;
pub mod trace_context;

pub use access_log::AccessLogRecord;
pub use labels::{IstioLabels, Reporter};
pub use peer_metadata::{
    PEER_METADATA_HEADER, PEER_METADATA_NAME, PeerMetadata, PeerMetadataError,
};
pub use propagate::{Parent, Propagated};
pub use request_id::{REQUEST_ID_HEADER, REQUEST_ID_NAME};
pub use trace_context::{Propagation, PropagationSet, SpanId, TraceContext, TraceId};
