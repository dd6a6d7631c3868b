//! The registered metric handles of one metrics layer, cached by the label values that vary per
//! request, so the hot path neither builds a 25-label key nor takes a lock.
//!
//! The labels fixed for a layer (the own workload, the destination service) are computed
//! once, when the layer is built. A request's varying values (the peer's metadata header as
//! received, the verified principal and security policy, the protocol, code, gRPC status and
//! flags) are first compared with the combination in their front slot, chosen by the small
//! values and the lengths of the long ones (one atomic load and one comparison: the peer's
//! header is not hashed); otherwise they are hashed (xxh3 under a random secret per layer)
//! and looked up in an [`ArcSwap`] map. Only a combination seen for the first time decodes
//! the peer's metadata, builds the labels and registers the handles with the global recorder
//! (under a mutex, copying the map; the first combination of a slot takes it for good). At
//! most [`MAX_SERIES`] combinations are cached per layer; past that, handles are registered
//! per request (correct, slower).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use http::HeaderValue;
use mesh_core::telemetry::PeerMetadata;
use mesh_core::telemetry::labels::{
    ISTIO_REQUEST_BYTES, ISTIO_REQUEST_DURATION, ISTIO_REQUESTS_TOTAL, ISTIO_RESPONSE_BYTES,
    IstioLabels, RequestProtocol, SecurityPolicy,
};
use metrics::{Counter, Histogram, Label};
use xxhash_rust::xxh3::xxh3_64_with_secret;

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

impl Vary<'_> {
    /// The values' xxh3 under `secret`. The peer's header (several hundred bytes) and the
    /// principal are hashed on their own, the results packed with the small values into one
    /// buffer and hashed again: xxh3 in one shot, with no streaming state.
    fn hash(&self, secret: &Secret) -> u64 {
        /// Flags up to this long are packed as they are; longer ones by their hash.
        const FLAGS_INLINE: usize = 24;
        let secret = &secret.0;
        let mut buf = [0u8; 64];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        let text = |text: Option<&[u8]>| match text {
            Some(bytes) => (1, xxh3_64_with_secret(bytes, secret)),
            None => (0, 0),
        };
        let (tag, hash) = text(self.peer.map(HeaderValue::as_bytes));
        put(&[tag]);
        put(&hash.to_le_bytes());
        let (tag, hash) = text(self.principal.map(str::as_bytes));
        put(&[tag, self.policy as u8, self.protocol as u8]);
        put(&hash.to_le_bytes());
        put(&self.code.to_le_bytes());
        match self.grpc {
            Some(status) => {
                put(&[1]);
                put(&status.to_le_bytes());
            }
            None => put(&[0]),
        }
        let flags = self.flags.as_bytes();
        if flags.len() <= FLAGS_INLINE {
            put(&[flags.len() as u8]);
            put(flags);
        } else {
            put(&[u8::MAX]);
            put(&xxh3_64_with_secret(flags, secret).to_le_bytes());
        }
        xxh3_64_with_secret(&buf[..at], secret)
    }

    /// The front slot of these values: from their small parts and the lengths of the long
    /// ones, without reading the peer's header, so a combination in its slot is found by one
    /// comparison and no hashing.
    fn slot(&self) -> usize {
        let mut mix = self.peer.map_or(0, |p| p.len() as u64 + 1);
        mix = mix.rotate_left(16) ^ self.principal.map_or(0, |p| p.len() as u64 + 1);
        mix = mix.rotate_left(16) ^ u64::from(self.code);
        mix = mix.rotate_left(8) ^ ((self.policy as u64) << 4 | self.protocol as u64);
        mix = mix.rotate_left(8) ^ self.flags.len() as u64;
        mix = mix.rotate_left(32) ^ self.grpc.map_or(0, |g| u64::from(g) + 1);
        // Fibonacci hashing: the top bits of the product spread the mix over the slots.
        (mix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FRONT_BITS)) as usize
    }
}

/// The xxh3 secret of one layer's [`Vary`] hashes: random, so the hashes cannot be
/// predicted (a cache hit is checked against the key, so a collision costs a registration,
/// never a wrong series).
struct Secret([u8; 192]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// There are `1 << FRONT_BITS` front slots per layer.
const FRONT_BITS: u32 = 4;

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
/// [`Vary`]'s xxh3, which needs no second hashing.
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
    /// The first place a request looks: one cached combination per slot ([`Vary::slot`]),
    /// set once, read with one atomic load. Most layers see a few combinations, so most
    /// requests end here, with neither the peer's header hashed nor the map loaded.
    front: [OnceLock<Arc<Handles>>; 1 << FRONT_BITS],
    /// The secret of [`Vary`] hashes, the keys of `cached`.
    secret: Secret,
    cached: ArcSwap<HashMap<u64, Arc<Handles>, BuildHasherDefault<Prehashed>>>,
    insert: Mutex<()>,
}

impl Series {
    /// The series of a layer whose fixed labels are `base`.
    pub(crate) fn new(base: IstioLabels, side: Side) -> Self {
        Self {
            base,
            side,
            front: Default::default(),
            secret: Secret(rand::random()),
            cached: ArcSwap::from_pointee(HashMap::default()),
            insert: Mutex::new(()),
        }
    }

    /// Records one request.
    pub(crate) fn record(&self, vary: &Vary<'_>, measures: Measures) {
        if let Some(found) = self.front[vary.slot()].get()
            && found.key.matches(vary)
        {
            self.record_with(found, measures);
            return;
        }
        let hash = vary.hash(&self.secret);
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
    /// now, and cached unless the cache is full (in its front slot too while that is free).
    fn handles(&self, vary: &Vary<'_>, hash: u64) -> Arc<Handles> {
        let handles = Arc::new(self.register(vary));
        let _guard = self.insert.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.cached.load_full();
        if current.len() < MAX_SERIES && !current.contains_key(&hash) {
            let mut next = HashMap::clone(&current);
            next.insert(hash, handles.clone());
            self.cached.store(Arc::new(next));
            // Taken already: this combination is found in the map.
            let _ = self.front[vary.slot()].set(handles.clone());
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
