//! Live endpoint streams from DNS, or from a fixed list.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mesh_core::config::DiscoveryConfig;
use mesh_core::name::Target;
use mesh_core::{EndpointSet, Resolution};
use tokio::sync::watch;

use crate::DnsError;
use crate::refresh::refresh;
use crate::resolver::DnsResolver;

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

/// Discovery through DNS: one refresh task per watched target, shared by all its watchers.
///
/// Each task looks the target up, feeds the result to a
/// [`RefreshState`](mesh_core::discovery::RefreshState), publishes changes, and sleeps until
/// the next refresh (the answer's TTL, clamped and jittered). It stops once every receiver of
/// the target's stream is dropped. Cloning is cheap and clones share their tasks.
#[derive(Clone)]
pub struct DnsDiscovery {
    inner: Arc<Shared>,
}

/// What the refresh tasks and every clone of a [`DnsDiscovery`] share.
pub(crate) struct Shared {
    pub(crate) resolver: DnsResolver,
    pub(crate) config: DiscoveryConfig,
    watches: Mutex<HashMap<Target, watch::Sender<Resolution>>>,
}

impl DnsDiscovery {
    /// Builds discovery on a resolver asking `config.nameservers` (or the system's when
    /// empty). Fails when the system configuration cannot be read.
    pub fn new(config: &DiscoveryConfig) -> Result<Self, DnsError> {
        Ok(Self {
            inner: Arc::new(Shared {
                resolver: DnsResolver::new(config)?,
                config: config.clone(),
                watches: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The resolver used by the refresh tasks, for one-off lookups.
    pub fn resolver(&self) -> &DnsResolver {
        &self.inner.resolver
    }

    /// The configuration discovery runs with.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.inner.config
    }

    /// How many targets have a live refresh task.
    pub fn active_targets(&self) -> usize {
        self.inner
            .watches()
            .values()
            .filter(|tx| tx.sender_count() > 1)
            .count()
    }
}

impl Shared {
    fn watches(&self) -> MutexGuard<'_, HashMap<Target, watch::Sender<Resolution>>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called by a refresh task whose receivers are all gone: forgets the target and returns
    /// true, unless a new receiver subscribed meanwhile (then the task goes on).
    pub(crate) fn release(&self, target: &Target, tx: &watch::Sender<Resolution>) -> bool {
        let mut watches = self.watches();
        if tx.receiver_count() > 0 {
            return false;
        }
        if watches.get(target).is_some_and(|t| t.same_channel(tx)) {
            watches.remove(target);
        }
        true
    }
}

impl Discover for DnsDiscovery {
    fn watch(&self, target: &Target) -> EndpointWatch {
        if let Target::Addr(addr) = target {
            return fixed(*addr);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let reason = format!("discovery of {target} needs a tokio runtime");
            return watch::channel(Resolution::Unresolved(reason.into())).1;
        };
        let mut watches = self.inner.watches();
        // A live task holds the second sender; with only ours left the task is gone (its
        // runtime shut down), so a new one is started.
        if let Some(tx) = watches.get(target)
            && tx.sender_count() > 1
        {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(Resolution::Pending);
        watches.insert(target.clone(), tx.clone());
        runtime.spawn(refresh(self.inner.clone(), target.clone(), tx));
        rx
    }
}

impl fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("config", &self.inner.config)
            .field("active_targets", &self.active_targets())
            .finish()
    }
}

/// A stream that always holds the one endpoint `addr`.
fn fixed(addr: SocketAddr) -> EndpointWatch {
    fixed_endpoints(EndpointSet::from_addrs([addr]))
}

/// A stream that always holds `endpoints`, for destinations with fixed endpoints.
pub fn fixed_endpoints(endpoints: EndpointSet) -> EndpointWatch {
    watch::channel(Resolution::Resolved(endpoints)).1
}

/// Discovery from a fixed list, for local runs.
///
/// ```
/// use mesh_core::name::Target;
/// use mesh_dns::{Discover, StaticDiscovery};
///
/// let target = Target::Host { fqdn: "reviews.default.svc.cluster.local".into(), port: 9080 };
/// let discovery = StaticDiscovery::new()
///     .with_addrs(target.clone(), ["127.0.0.1:9081".parse().unwrap()]);
/// let endpoints = discovery.watch(&target);
/// assert_eq!(endpoints.borrow().endpoints().map(|set| set.len()), Some(1));
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticDiscovery {
    endpoints: HashMap<Target, EndpointSet>,
}

impl StaticDiscovery {
    /// An empty map: every target is unresolved until added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `endpoints` for `target` (replacing what it had).
    pub fn with(mut self, target: Target, endpoints: EndpointSet) -> Self {
        self.endpoints.insert(target, endpoints);
        self
    }

    /// Serves weight-1 endpoints at `addrs` for `target`.
    pub fn with_addrs(self, target: Target, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.with(target, EndpointSet::from_addrs(addrs))
    }

    /// Adds or replaces the endpoints of `target` in place.
    pub fn insert(&mut self, target: Target, endpoints: EndpointSet) {
        self.endpoints.insert(target, endpoints);
    }
}

impl Discover for StaticDiscovery {
    fn watch(&self, target: &Target) -> EndpointWatch {
        let resolution = match (self.endpoints.get(target), target) {
            (Some(set), _) => Resolution::Resolved(set.clone()),
            (None, Target::Addr(addr)) => return fixed(*addr),
            (None, _) => Resolution::Unresolved(format!("no static endpoints for {target}").into()),
        };
        watch::channel(resolution).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(fqdn: &str, port: u16) -> Target {
        Target::Host {
            fqdn: fqdn.into(),
            port,
        }
    }

    #[test]
    fn static_discovery_serves_its_map() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let d = StaticDiscovery::new()
            .with_addrs(host("a.b", 80), [a])
            .with(
                Target::Srv {
                    fqdn: "_h._tcp.a.b".into(),
                },
                EndpointSet::default(),
            );
        assert_eq!(
            *d.watch(&host("a.b", 80)).borrow(),
            Resolution::Resolved(EndpointSet::from_addrs([a]))
        );
        assert_eq!(
            *d.watch(&Target::Srv {
                fqdn: "_h._tcp.a.b".into()
            })
            .borrow(),
            Resolution::Resolved(EndpointSet::default())
        );
        let unknown = d.watch(&host("a.b", 81));
        assert_eq!(
            *unknown.borrow(),
            Resolution::Unresolved("no static endpoints for a.b:81".into())
        );
        let addr = d.watch(&Target::Addr(a));
        assert_eq!(
            *addr.borrow(),
            Resolution::Resolved(EndpointSet::from_addrs([a]))
        );
    }

    #[test]
    fn addresses_need_no_runtime_and_names_do_not_panic_without_one() {
        let config = DiscoveryConfig {
            nameservers: vec!["127.0.0.1:53".parse().unwrap()],
            ..DiscoveryConfig::default()
        };
        let d = DnsDiscovery::new(&config).unwrap();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(
            *d.watch(&Target::Addr(a)).borrow(),
            Resolution::Resolved(EndpointSet::from_addrs([a]))
        );
        let rx = d.watch(&host("a.b", 80));
        assert!(matches!(&*rx.borrow(), Resolution::Unresolved(r) if r.contains("runtime")));
        assert_eq!(d.active_targets(), 0);
    }

    #[test]
    fn system_configuration_builds_or_fails_with_a_typed_error() {
        match DnsDiscovery::new(&DiscoveryConfig::default()) {
            Ok(d) => assert!(d.config().nameservers.is_empty()),
            Err(e) => assert_eq!(e.kind(), "config", "{e}"),
        }
    }
}
