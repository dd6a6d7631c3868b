//! The registered metric handles of one metrics layer, cached by the label values that vary per
//! request, so the hot path neither builds a 25-label key nor takes a lock.
//!
//! The labels fixed for a layer (the own workload, the destination service) are computed
//! once, when the layer is built. A request's varying values (the peer's metadata header as
//! received, the verified principal and security policy, the protocol, code, gRPC status and
//! flags) are hashed and looked up in an [`ArcSwap`] map; only a combination seen for the
//! first time decodes the peer's metadata, builds the labels and registers the handles with
//! the global recorder (under a mutex, copying the map). At most [`MAX_SERIES`] combinations
//! are cached per layer; past that, handles are registered per request (correct, slower).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;
use mesh_core::telemetry::PeerMetadata;
use mesh_core::telemetry::labels::{
    ISTIO_REQUEST_BYTES, ISTIO_REQUEST_DURATION, ISTIO_REQUESTS_TOTAL, ISTIO_RESPONSE_BYTES,
    IstioLabels, RequestProtocol, SecurityPolicy,
};
use metrics::{Counter, Histogram, Label};

use super::labels;

/// Label combinations cached per layer at most.
pub(crate) const MAX_SERIES: usize = 4096;

/// The counter of peer-metadata headers that could not be decoded (their labels read
/// `unknown`): `reporter` `source` or `destination`.
pub const PEER_METADATA_MALFORMED_TOTAL: &str = "mesh_peer_metadata_malformed_total";

/// The side a layer reports for, with what it knows of itself.
#[derive(Debug)]
pub(crate) enum Side {
    /// A client leg, mutual TLS with the workload's identity or not.
    Client { mutual_tls: bool },
    /// The server stack, with the workload's own principal.
    Server { own_principal: Option<String> },
}

/// The per-request values of a request's labels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vary<'a> {
    /// The other side's [`PEER_METADATA_HEADER`](mesh_core::telemetry::PEER_METADATA_HEADER).
    pub(crate) peer: Option<&'a HeaderValue>,
    /// The caller's verified identity (server side).
    pub(crate) principal: Option<&'a str>,
    pub(crate) policy: SecurityPolicy,
    pub(crate) protocol: RequestProtocol,
    pub(crate) code: u16,
    pub(crate) grpc: Option<u32>,
    /// Envoy's response flags; empty for none.
    pub(crate) flags: &'static str,
}

impl Hash for Vary<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.peer.map(HeaderValue::as_bytes).hash(state);
        self.principal.hash(state);
        self.policy.hash(state);
        self.protocol.hash(state);
        self.code.hash(state);
        self.grpc.hash(state);
        self.flags.hash(state);
    }
}

#[derive(Debug, PartialEq, Eq)]
struct OwnedVary {
    peer: Option<HeaderValue>,
    principal: Option<Box<str>>,
    policy: SecurityPolicy,
    protocol: RequestProtocol,
    code: u16,
    grpc: Option<u32>,
    flags: &'static str,
}

impl OwnedVary {
    fn of(v: &Vary<'_>) -> Self {
        Self {
            peer: v.peer.cloned(),
            principal: v.principal.map(Box::from),
            policy: v.policy,
            protocol: v.protocol,
            code: v.code,
            grpc: v.grpc,
            flags: v.flags,
        }
    }

    fn matches(&self, v: &Vary<'_>) -> bool {
        self.peer.as_ref() == v.peer
            && self.principal.as_deref() == v.principal
            && self.policy == v.policy
            && self.protocol == v.protocol
            && self.code == v.code
            && self.grpc == v.grpc
            && self.flags == v.flags
    }
}

/// The four handles of one label combination.
#[derive(Debug)]
pub(crate) struct Handles {
    key: OwnedVary,
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
    /// Whether the peer's header could not be decoded.
    malformed: bool,
}

impl Handles {
    fn register(labels: &IstioLabels, key: OwnedVary, malformed: bool) -> Self {
        let labels: Vec<Label> = labels
            .to_labels()
            .into_iter()
            .map(|(name, value)| Label::new(name, value.into_owned()))
            .collect();
        Self {
            key,
            requests: metrics::counter!(ISTIO_REQUESTS_TOTAL, labels.clone()),
            duration: metrics::histogram!(ISTIO_REQUEST_DURATION, labels.clone()),
            request_bytes: metrics::histogram!(ISTIO_REQUEST_BYTES, labels.clone()),
            response_bytes: metrics::histogram!(ISTIO_RESPONSE_BYTES, labels),
            malformed,
        }
    }
}

/// One request's measures.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Measures {
    pub(crate) duration_ms: f64,
    pub(crate) request_bytes: u64,
    pub(crate) response_bytes: u64,
}

/// A hasher for keys that are hashes already: the map of cached series is keyed by
/// [`Vary`]'s xxh64, which needs no second hashing.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The metric series of one layer.
#[derive(Debug)]
pub(crate) struct Series {
    base: IstioLabels,
    side: Side,
    /// The seed of [`Vary`] hashes: xxh64 (a cache hit is checked against the key, so a
    /// collision costs a registration, never a wrong series).
    seed: u64,
    cached: ArcSwap<HashMap<u64, Arc<Handles>, BuildHasherDefault<Prehashed>>>,
    insert: Mutex<()>,
}

impl Series {
    /// The series of a layer whose fixed labels are `base`.
    pub(crate) fn new(base: IstioLabels, side: Side) -> Self {
        Self {
            base,
            side,
            seed: rand::random(),
            cached: ArcSwap::from_pointee(HashMap::default()),
            insert: Mutex::new(()),
        }
    }

    /// Records one request.
    pub(crate) fn record(&self, vary: &Vary<'_>, measures: Measures) {
        let mut hasher = xxhash_rust::xxh64::Xxh64::new(self.seed);
        vary.hash(&mut hasher);
        let hash = hasher.finish();
        // A cached series is recorded through the map's own reference: nothing shared is
        // cloned.
        if let Some(found) = self.cached.load().get(&hash)
            && found.key.matches(vary)
        {
            self.record_with(found, measures);
            return;
        }
        let handles = self.handles(vary, hash);
        self.record_with(&handles, measures);
    }

    fn record_with(&self, handles: &Handles, measures: Measures) {
        handles.requests.increment(1);
        handles.duration.record(measures.duration_ms);
        handles.request_bytes.record(measures.request_bytes as f64);
        handles
            .response_bytes
            .record(measures.response_bytes as f64);
        if handles.malformed {
            let reporter = self.base.reporter.as_str();
            metrics::counter!(PEER_METADATA_MALFORMED_TOTAL, "reporter" => reporter).increment(1);
        }
    }

    /// The handles of `vary`, whose hash is `hash` and which was not cached: registered
    /// now, and cached unless the cache is full.
    fn handles(&self, vary: &Vary<'_>, hash: u64) -> Arc<Handles> {
        let handles = Arc::new(self.register(vary));
        let _guard = self.insert.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.cached.load_full();
        if current.len() < MAX_SERIES && !current.contains_key(&hash) {
            let mut next = HashMap::clone(&current);
            next.insert(hash, handles.clone());
            self.cached.store(Arc::new(next));
        }
        handles
    }

    /// Builds the labels of `vary` and registers their handles.
    fn register(&self, vary: &Vary<'_>) -> Handles {
        let mut labels = self.base.clone();
        let decoded = vary.peer.map(PeerMetadata::decode);
        let malformed = matches!(decoded, Some(Err(_)));
        if let Some(Err(e)) = &decoded {
            tracing::debug!(error = %e, "peer metadata ignored");
        }
        let peer = decoded.and_then(Result::ok);
        match &self.side {
            Side::Client { mutual_tls } => {
                labels::client_peer(&mut labels, peer.as_ref(), *mutual_tls)
            }
            Side::Server { own_principal } => labels::server_peer(
                &mut labels,
                peer.as_ref(),
                vary.principal,
                vary.policy,
                own_principal.as_deref(),
            ),
        }
        labels.request_protocol = vary.protocol;
        labels.response_code = vary.code;
        labels.grpc_response_status = vary.grpc;
        vary.flags.clone_into(&mut labels.response_flags);
        Handles::register(&labels, OwnedVary::of(vary), malformed)
    }

    /// The number of combinations cached (for tests).
    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cached.load().len()
    }
}
