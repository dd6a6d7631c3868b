//! Live endpoint streams from DNS, or from a fixed list.

use std::sync::Arc;

use mesh_core::Resolution;
use mesh_core::name::Target;
use tokio::sync::watch;

/// A live stream of a destination's endpoints; the current value is always readable.
pub type EndpointWatch = watch::Receiver<Resolution>;

/// A source of endpoint streams.
pub trait Discover: Send + Sync + 'static {
    /// Starts (or joins) discovery of `target` and returns its endpoint stream. Discovery of
    /// a target stops once every receiver of its stream is dropped. Must be called within a
    /// tokio runtime.
    fn watch(&self, target: &Target) -> EndpointWatch;
}

impl<D: Discover + ?Sized> Discover for Arc<D> {
    fn watch(&self, target: &Target) -> EndpointWatch {
        (**self).watch(target)
    }
}

/// Discovery through DNS.
#[derive(Debug, Clone)]
pub struct DnsDiscovery {}

impl Discover for DnsDiscovery {
    fn watch(&self, _target: &Target) -> EndpointWatch {
        unimplemented!()
    }
}

/// Discovery from a fixed list, for local runs.
#[derive(Debug, Clone, Default)]
pub struct StaticDiscovery {}

impl Discover for StaticDiscovery {
    fn watch(&self, _target: &Target) -> EndpointWatch {
        unimplemented!()
    }
}
