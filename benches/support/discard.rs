//! A span exporter that counts the spans it is given and drops them: the SDK's batching and
//! span building are measured, not an export. Shared by the telemetry bench and the load
//! harness.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Counts the spans exported to it (clones share the count).
#[derive(Debug, Clone, Default)]
pub(crate) struct Discard(Arc<AtomicU64>);

impl Discard {
    /// The spans exported so far.
    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl SpanExporter for Discard {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}
