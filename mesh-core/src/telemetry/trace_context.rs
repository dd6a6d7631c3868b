//! Trace context propagation: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin B3
//! (the `x-b3-*` headers and the single `b3` header).
//!
//! The server stack [`extract`]s the caller's context; the client stack makes a
//! [`TraceContext::child`] for its span and [`inject`]s it into outbound requests in every
//! configured [`Propagation`] style.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng;

/// The W3C `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C `tracestate` header.
pub const TRACESTATE: &str = "tracestate";
/// B3 single-header propagation.
pub const B3: &str = "b3";
/// B3 multi-header: the trace id.
pub const X_B3_TRACEID: &str = "x-b3-traceid";
/// B3 multi-header: the span id.
pub const X_B3_SPANID: &str = "x-b3-spanid";
/// B3 multi-header: the parent span id.
pub const X_B3_PARENTSPANID: &str = "x-b3-parentspanid";
/// B3 multi-header: the sampling decision.
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
/// B3 multi-header: `1` for debug (forced sampling).
pub const X_B3_FLAGS: &str = "x-b3-flags";

/// The most list members a `tracestate` may have; more and it is dropped (W3C).
pub const TRACESTATE_MAX_MEMBERS: usize = 32;
/// The longest `tracestate` kept, in bytes; longer and it is dropped.
pub const TRACESTATE_MAX_LEN: usize = 512;

/// A 128-bit trace id, never all zeros; displayed as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

/// A 64-bit span id, never all zeros; displayed as 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId([u8; 8]);

macro_rules! id_impl {
    ($ty:ident, $n:literal) => {
        impl $ty {
            /// The id of these bytes, or `None` when they are all zeros (an invalid id).
            pub fn from_bytes(bytes: [u8; $n]) -> Option<Self> {
                (bytes != [0; $n]).then_some($ty(bytes))
            }

            /// A random id from `rng`, never all zeros.
            pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
                let mut bytes = [0u8; $n];
                rng.fill_bytes(&mut bytes);
                if bytes == [0; $n] {
                    bytes[$n - 1] = 1;
                }
                $ty(bytes)
            }

            /// The id's bytes.
            pub fn to_bytes(self) -> [u8; $n] {
                self.0
            }

            /// Parses exactly the id's number of lowercase hex digits; `None` when malformed
            /// or all zeros.
            pub fn from_hex(s: &str) -> Option<Self> {
                hex::<$n>(s.as_bytes(), false).and_then(Self::from_bytes)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // One write of the whole id.
                let mut buf = [0u8; 2 * $n];
                write_hex(&self.0, &mut buf);
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }
    };
}

/// Lowercase hex digits by value.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex digits into `out`, which is twice as long: ids are written
/// on every propagated call, into fixed buffers rather than through `fmt`.
fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[usize::from(b >> 4)];
        pair[1] = HEX_DIGITS[usize::from(b & 0xf)];
    }
}

/// The length of a `traceparent` value of version `00`.
const TRACEPARENT_LEN: usize = 55;
/// The longest single `b3` value: `{32 hex}-{16 hex}-{state}-{16 hex}`.
const B3_SINGLE_MAX_LEN: usize = 68;

/// ASCII bytes as text (hex digits and dashes always are).
fn ascii_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

id_impl!(TraceId, 16);
id_impl!(SpanId, 8);

/// Hex digit values by byte: `0..=15` for `0-9` and `a-f`, `0x10 | value` for `A-F`, and
/// [`NOT_HEX`] for anything else; ids are read on every traced request, so by table.
const HEX_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 0x10 | (10 + i as u8);
        i += 1;
    }
    table
};
/// [`HEX_VALUES`] of a byte that is no hex digit.
const NOT_HEX: u8 = 0xff;

/// Decodes exactly `2 * N` hex digits; uppercase only when `upper` allows it.
fn hex<const N: usize>(s: &[u8], upper: bool) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    // Every value of the pairs or-ed together: above 15 when one is not a (lowercase) digit.
    let mut seen = 0u8;
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        seen |= hi | lo;
        *o = ((hi & 0xf) << 4) | (lo & 0xf);
    }
    let ok = if upper { seen & 0xe0 == 0 } else { seen <= 0xf };
    ok.then_some(out)
}

/// A B3 trace id: 32 hex digits, or 16 (a 64-bit id, left-padded with zeros to 128 bits).
fn b3_trace_id(s: &str) -> Option<TraceId> {
    let s = s.as_bytes();
    let bytes = match s.len() {
        32 => hex::<16>(s, true)?,
        16 => {
            let low = hex::<8>(s, true)?;
            let mut bytes = [0u8; 16];
            bytes[8..].copy_from_slice(&low);
            bytes
        }
        _ => return None,
    };
    TraceId::from_bytes(bytes)
}

fn b3_span_id(s: &str) -> Option<SpanId> {
    hex::<8>(s.as_bytes(), true).and_then(SpanId::from_bytes)
}

/// Trims HTTP optional whitespace (spaces and tabs).
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// A trace context as received from a caller, or as sent to a callee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace all spans of one request tree share.
    pub trace_id: TraceId,
    /// The sender's span: received, the caller's span (our parent); sent, our span.
    pub span_id: SpanId,
    /// The parent of [`span_id`](Self::span_id), when known (B3 `x-b3-parentspanid`, or set by
    /// [`child`](Self::child)); only B3 carries it.
    pub parent_span_id: Option<SpanId>,
    /// The sampling decision; `None` leaves it to the receiver (B3 only: W3C always decides).
    pub sampled: Option<bool>,
    /// The W3C `tracestate` list, passed on unchanged when valid.
    pub trace_state: Option<String>,
    /// B3 debug: sample this trace whatever the sampler says.
    pub debug: bool,
}

impl TraceContext {
    /// A new trace: random trace and span ids, the given sampling decision.
    pub fn new_root<R: Rng + ?Sized>(rng: &mut R, sampled: bool) -> TraceContext {
        TraceContext {
            trace_id: TraceId::random(rng),
            span_id: SpanId::random(rng),
            parent_span_id: None,
            sampled: Some(sampled),
            trace_state: None,
            debug: false,
        }
    }

    /// The context of a new span below this one: same trace, sampling and state, a fresh
    /// random span id, and this span as its parent.
    pub fn child<R: Rng + ?Sized>(&self, rng: &mut R) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: SpanId::random(rng),
            parent_span_id: Some(self.span_id),
            sampled: self.sampled,
            trace_state: self.trace_state.clone(),
            debug: self.debug,
        }
    }

    /// Whether the trace is to be recorded: debug, or sampled.
    pub fn is_sampled(&self) -> bool {
        self.debug || self.sampled == Some(true)
    }

    /// The `traceparent` value: `00-{trace_id}-{span_id}-{flags}`, flags `01` when sampled.
    pub fn to_traceparent(&self) -> String {
        ascii_string(&self.traceparent_bytes())
    }

    /// [`to_traceparent`](Self::to_traceparent) in a fixed buffer; the trace id is at
    /// `3..35` and the span id at `36..52`.
    fn traceparent_bytes(&self) -> [u8; TRACEPARENT_LEN] {
        let mut b = [b'-'; TRACEPARENT_LEN];
        b[0] = b'0';
        b[1] = b'0';
        write_hex(&self.trace_id.0, &mut b[3..35]);
        write_hex(&self.span_id.0, &mut b[36..52]);
        b[53] = b'0';
        b[54] = if self.is_sampled() { b'1' } else { b'0' };
        b
    }

    /// The single `b3` value: `{trace}-{span}[-{1|0|d}[-{parent}]]` (the parent is only written
    /// after a sampling state, as the format requires).
    pub fn to_b3_single(&self) -> String {
        let (b, len) = self.b3_single_bytes();
        ascii_string(&b[..len])
    }

    /// [`to_b3_single`](Self::to_b3_single) in a fixed buffer, with its length.
    fn b3_single_bytes(&self) -> ([u8; B3_SINGLE_MAX_LEN], usize) {
        let mut b = [b'-'; B3_SINGLE_MAX_LEN];
        write_hex(&self.trace_id.0, &mut b[..32]);
        write_hex(&self.span_id.0, &mut b[33..49]);
        let state = if self.debug {
            Some(b'd')
        } else {
            self.sampled.map(|s| if s { b'1' } else { b'0' })
        };
        let Some(state) = state else {
            return (b, 49);
        };
        b[50] = state;
        match self.parent_span_id {
            Some(parent) => {
                write_hex(&parent.0, &mut b[52..68]);
                (b, 68)
            }
            None => (b, 51),
        }
    }
}

/// Parses a `traceparent` value. Version `00` must be exactly
/// `00-{32 hex}-{16 hex}-{2 hex}`; a higher version (not `ff`) is read by its first four
/// fields, as the specification asks. Lowercase hex only; all-zero ids are invalid. The
/// context has no `tracestate` (see [`parse_tracestate`]).
pub fn parse_traceparent(value: &str) -> Option<TraceContext> {
    let v = trim_ows(value).as_bytes();
    if v.len() < 55 {
        return None;
    }
    let version = hex::<1>(&v[0..2], false)?[0];
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::from_bytes(hex::<16>(&v[3..35], false)?)?;
    let span_id = SpanId::from_bytes(hex::<8>(&v[36..52], false)?)?;
    let flags = hex::<1>(&v[53..55], false)?[0];
    Some(TraceContext {
        trace_id,
        span_id,
        parent_span_id: None,
        sampled: Some(flags & 1 == 1),
        trace_state: None,
        debug: false,
    })
}

/// Validates a `tracestate` value (the `tracestate` headers joined by `,`): list members
/// `key=value`, at most [`TRACESTATE_MAX_MEMBERS`] and [`TRACESTATE_MAX_LEN`] bytes once
/// normalised (empty members and optional whitespace removed). `None` drops it.
pub fn parse_tracestate(value: &str) -> Option<String> {
    let mut out = String::new();
    let mut members = 0;
    for member in value.split(',').map(trim_ows).filter(|m| !m.is_empty()) {
        let (key, val) = member.split_once('=')?;
        let key_ok = !key.is_empty()
            && key.len() <= 256
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/@".contains(&b));
        let val_ok = !val.is_empty()
            && val.len() <= 256
            && val
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
            && !val.ends_with(' ');
        if !key_ok || !val_ok {
            return None;
        }
        members += 1;
        if members > TRACESTATE_MAX_MEMBERS {
            return None;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(member);
    }
    (!out.is_empty() && out.len() <= TRACESTATE_MAX_LEN).then_some(out)
}

/// The sampling decision of a B3 header that carries no ids (`b3: 0`, `1` or `d`, or
/// `x-b3-sampled` / `x-b3-flags` alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplingOnly {
    /// Sample (`1`), do not (`0`), or no decision.
    pub sampled: Option<bool>,
    /// Debug (`d`, or `x-b3-flags: 1`): sample whatever the sampler says.
    pub debug: bool,
}

/// What a B3 header set carries: a whole context, or only a sampling decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum B3Context {
    /// Trace and span ids (and possibly sampling and parent).
    Context(TraceContext),
    /// A sampling decision without ids.
    SamplingOnly(SamplingOnly),
}

fn b3_state(s: &str) -> Option<(Option<bool>, bool)> {
    match s {
        "1" => Some((Some(true), false)),
        "0" => Some((Some(false), false)),
        "d" => Some((Some(true), true)),
        _ => None,
    }
}

/// Parses a single `b3` header: `{TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`, or
/// the sampling state alone (`0`, `1`, `d`).
pub fn parse_b3_single(value: &str) -> Option<B3Context> {
    let v = trim_ows(value);
    if let Some((sampled, debug)) = b3_state(v) {
        return Some(B3Context::SamplingOnly(SamplingOnly { sampled, debug }));
    }
    let mut parts = v.split('-');
    let trace_id = b3_trace_id(parts.next()?)?;
    let span_id = b3_span_id(parts.next()?)?;
    let (sampled, debug) = match parts.next() {
        Some(state) => b3_state(state)?,
        None => (None, false),
    };
    let parent_span_id = match parts.next() {
        Some(p) => Some(b3_span_id(p)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(B3Context::Context(TraceContext {
        trace_id,
        span_id,
        parent_span_id,
        sampled,
        trace_state: None,
        debug,
    }))
}

/// The trace headers of a header map, found in one pass over its entries (comparing names,
/// not hashing them: a lookup of each of the eight names hashes it, on every request): the
/// first value of each, by index into [`NAMES`], and which are repeated.
struct Found<'h> {
    first: [Option<&'h HeaderValue>; 8],
    repeated: u8,
}

impl<'h> Found<'h> {
    fn scan(headers: &'h HeaderMap) -> Self {
        let mut found = Found {
            first: [None; 8],
            repeated: 0,
        };
        for (name, value) in headers {
            if let Some(i) = trace_header_index(name) {
                match found.first[i] {
                    Some(_) => found.repeated |= 1 << i,
                    None => found.first[i] = Some(value),
                }
            }
        }
        found
    }

    /// Whether header `i` is there at all.
    fn has(&self, i: usize) -> bool {
        self.first[i].is_some()
    }

    /// The one value of header `i`, as text: `None` when absent, repeated, or not text.
    fn single(&self, i: usize) -> Option<&'h str> {
        if self.repeated & (1 << i) != 0 {
            return None;
        }
        self.first[i]?.to_str().ok().map(trim_ows)
    }
}

/// The index into [`NAMES`] of a trace header.
fn trace_header_index(name: &HeaderName) -> Option<usize> {
    match name.as_str() {
        TRACEPARENT => Some(W3C_PARENT),
        TRACESTATE => Some(W3C_STATE),
        B3 => Some(B3_SINGLE),
        X_B3_TRACEID => Some(TRACE_ID),
        X_B3_SPANID => Some(SPAN_ID),
        X_B3_PARENTSPANID => Some(PARENT_SPAN_ID),
        X_B3_SAMPLED => Some(SAMPLED),
        X_B3_FLAGS => Some(FLAGS),
        _ => None,
    }
}

/// Parses the B3 multi headers. Trace and span ids go together (one without the other is
/// invalid); `x-b3-sampled` is `1`, `0`, `true` or `false` (anything else leaves the decision
/// open); `x-b3-flags: 1` is debug; an invalid parent span id is ignored.
pub fn parse_b3_multi(headers: &HeaderMap) -> Option<B3Context> {
    b3_multi(&Found::scan(headers))
}

fn b3_multi(found: &Found<'_>) -> Option<B3Context> {
    let sampled = match found.single(SAMPLED) {
        Some("1") | Some("true") => Some(true),
        Some("0") | Some("false") => Some(false),
        _ => None,
    };
    let debug = found.single(FLAGS) == Some("1");
    let sampled = if debug { Some(true) } else { sampled };
    if !found.has(TRACE_ID) && !found.has(SPAN_ID) {
        return (sampled.is_some() || debug)
            .then_some(B3Context::SamplingOnly(SamplingOnly { sampled, debug }));
    }
    let trace_id = b3_trace_id(found.single(TRACE_ID)?)?;
    let span_id = b3_span_id(found.single(SPAN_ID)?)?;
    let parent_span_id = found.single(PARENT_SPAN_ID).and_then(b3_span_id);
    Some(B3Context::Context(TraceContext {
        trace_id,
        span_id,
        parent_span_id,
        sampled,
        trace_state: None,
        debug,
    }))
}

/// What the inbound headers carry, from [`extract_any`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extracted {
    /// A trace context to continue.
    Context(TraceContext),
    /// Only a B3 sampling decision: start a new trace, honouring it.
    SamplingOnly(SamplingOnly),
    /// Nothing usable.
    None,
}

/// Reads the inbound context: W3C `traceparent` (with `tracestate`) first, then the single
/// `b3` header, then the B3 multi headers; the first valid one wins. A sampling-only B3
/// header is answered when no style carries a whole context.
pub fn extract_any(headers: &HeaderMap) -> Extracted {
    let found = Found::scan(headers);
    if let Some(mut ctx) = found.single(W3C_PARENT).and_then(parse_traceparent) {
        ctx.trace_state = trace_state(headers, &found);
        return Extracted::Context(ctx);
    }
    let mut sampling = None;
    for b3 in [
        found.single(B3_SINGLE).and_then(parse_b3_single),
        b3_multi(&found),
    ]
    .into_iter()
    .flatten()
    {
        match b3 {
            B3Context::Context(ctx) => return Extracted::Context(ctx),
            B3Context::SamplingOnly(s) => sampling = sampling.or(Some(s)),
        }
    }
    sampling.map_or(Extracted::None, Extracted::SamplingOnly)
}

/// The valid `tracestate` of `headers` (every `tracestate` header joined by `,`); `None`
/// when absent, invalid, or any is not text.
fn trace_state(headers: &HeaderMap, found: &Found<'_>) -> Option<String> {
    let first = found.first[W3C_STATE]?;
    if found.repeated & (1 << W3C_STATE) == 0 {
        return parse_tracestate(first.to_str().ok()?);
    }
    let mut joined = String::new();
    for value in headers.get_all(&NAMES[W3C_STATE]) {
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(value.to_str().ok()?);
    }
    parse_tracestate(&joined)
}

/// The inbound trace context to continue, if any (see [`extract_any`] for the order).
pub fn extract(headers: &HeaderMap) -> Option<TraceContext> {
    match extract_any(headers) {
        Extracted::Context(ctx) => Some(ctx),
        _ => None,
    }
}

/// One trace propagation style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Propagation {
    /// W3C Trace Context: `traceparent` and `tracestate`.
    W3c,
    /// Zipkin B3, one header per field (`x-b3-traceid` ...), as Istio's Envoy sends.
    B3Multi,
    /// Zipkin B3, the single `b3` header.
    B3Single,
}

impl Propagation {
    /// The style named as in `OTEL_PROPAGATORS`: `tracecontext`, `b3` (single), `b3multi`.
    pub fn from_otel_name(name: &str) -> Option<Propagation> {
        match name.trim() {
            "tracecontext" => Some(Propagation::W3c),
            "b3" => Some(Propagation::B3Single),
            "b3multi" => Some(Propagation::B3Multi),
            _ => None,
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Propagation::W3c => 1,
            Propagation::B3Multi => 2,
            Propagation::B3Single => 4,
        }
    }
}

/// A set of [`Propagation`] styles to inject. The default is W3C and B3 multi-header, so both
/// OpenTelemetry services and Istio's sidecars follow the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PropagationSet(u8);

impl Default for PropagationSet {
    fn default() -> Self {
        PropagationSet::EMPTY
            .with(Propagation::W3c)
            .with(Propagation::B3Multi)
    }
}

impl PropagationSet {
    /// No style: inject only removes stale trace headers.
    pub const EMPTY: PropagationSet = PropagationSet(0);

    /// Every style.
    pub const ALL: PropagationSet = PropagationSet(7);

    /// This set with `style` added.
    pub const fn with(self, style: Propagation) -> PropagationSet {
        PropagationSet(self.0 | style.bit())
    }

    /// Whether `style` is in the set.
    pub fn contains(self, style: Propagation) -> bool {
        self.0 & style.bit() != 0
    }

    /// Whether the set has no style.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Propagation> for PropagationSet {
    fn from_iter<I: IntoIterator<Item = Propagation>>(iter: I) -> Self {
        iter.into_iter()
            .fold(PropagationSet::EMPTY, PropagationSet::with)
    }
}

/// Every header a propagation style may write; [`inject`] removes them all first.
pub const TRACE_HEADERS: [&str; 8] = [
    TRACEPARENT,
    TRACESTATE,
    B3,
    X_B3_TRACEID,
    X_B3_SPANID,
    X_B3_PARENTSPANID,
    X_B3_SAMPLED,
    X_B3_FLAGS,
];

/// [`TRACE_HEADERS`] as header names, parsed once: [`inject`] and [`extract_any`] run on
/// every call, and a lookup by `&str` parses the name each time.
static NAMES: [HeaderName; 8] = [
    HeaderName::from_static(TRACEPARENT),
    HeaderName::from_static(TRACESTATE),
    HeaderName::from_static(B3),
    HeaderName::from_static(X_B3_TRACEID),
    HeaderName::from_static(X_B3_SPANID),
    HeaderName::from_static(X_B3_PARENTSPANID),
    HeaderName::from_static(X_B3_SAMPLED),
    HeaderName::from_static(X_B3_FLAGS),
];

// Indices into [`NAMES`].
const W3C_PARENT: usize = 0;
const W3C_STATE: usize = 1;
const B3_SINGLE: usize = 2;
const TRACE_ID: usize = 3;
const SPAN_ID: usize = 4;
const PARENT_SPAN_ID: usize = 5;
const SAMPLED: usize = 6;
const FLAGS: usize = 7;

/// Writes `ctx` (whose `span_id` is the new, outgoing span) into `headers` in every style of
/// `styles`, after removing every trace header already there, so no stale context leaks on.
pub fn inject(ctx: &TraceContext, styles: PropagationSet, headers: &mut HeaderMap) {
    // Every id written, in one buffer the values share (one allocation, not one each): the
    // traceparent (which carries both ids, as the B3 headers write them), the parent span
    // id, then the single b3 value.
    const PARENT_AT: usize = TRACEPARENT_LEN;
    const B3_AT: usize = PARENT_AT + 16;
    let mut buf = [0u8; B3_AT + B3_SINGLE_MAX_LEN];
    buf[..TRACEPARENT_LEN].copy_from_slice(&ctx.traceparent_bytes());
    // What each trace header becomes, by index into `NAMES`; `None` is removed if there.
    let mut values: [Option<Written<'_>>; 8] = [None; 8];
    let trace_state = ctx.trace_state.as_deref();
    if styles.contains(Propagation::W3c) {
        values[W3C_PARENT] = Some(Written::Shared(0, TRACEPARENT_LEN));
        values[W3C_STATE] = trace_state.map(|s| Written::Bytes(s.as_bytes()));
    }
    if styles.contains(Propagation::B3Single) {
        let (b3, len) = ctx.b3_single_bytes();
        buf[B3_AT..B3_AT + len].copy_from_slice(&b3[..len]);
        values[B3_SINGLE] = Some(Written::Shared(B3_AT, B3_AT + len));
    }
    if styles.contains(Propagation::B3Multi) {
        values[TRACE_ID] = Some(Written::Shared(3, 35));
        values[SPAN_ID] = Some(Written::Shared(36, 52));
        if let Some(id) = ctx.parent_span_id {
            write_hex(&id.0, &mut buf[PARENT_AT..B3_AT]);
            values[PARENT_SPAN_ID] = Some(Written::Shared(PARENT_AT, B3_AT));
        }
        if ctx.debug {
            values[FLAGS] = Some(Written::Static("1"));
        } else if let Some(s) = ctx.sampled {
            values[SAMPLED] = Some(Written::Static(if s { "1" } else { "0" }));
        }
    }
    let shared = values
        .iter()
        .any(|v| matches!(v, Some(Written::Shared(..))))
        .then(|| bytes::Bytes::from_owner(buf));
    // Room for them all at once: the map then grows at most once, not at each insert.
    headers.reserve(values.iter().flatten().count());
    // The headers there already, found by name without hashing.
    let found = Found::scan(headers);
    let present: [bool; 8] = std::array::from_fn(|i| found.has(i));
    for ((name, value), present) in NAMES.iter().zip(values).zip(present) {
        let value = match value {
            Some(Written::Shared(start, end)) => shared
                .as_ref()
                .and_then(|b| HeaderValue::from_maybe_shared(b.slice(start..end)).ok()),
            Some(Written::Bytes(bytes)) => HeaderValue::from_bytes(bytes).ok(),
            Some(Written::Static(text)) => Some(HeaderValue::from_static(text)),
            None => None,
        };
        match value {
            // `insert` replaces every earlier value.
            Some(value) => {
                headers.insert(name.clone(), value);
            }
            // Stale, or not a header value (a `trace_state` set by hand): not kept.
            None if present => {
                headers.remove(name);
            }
            None => {}
        }
    }
}

/// A trace header's new value: a range of the buffer the values share, bytes to copy, or static
/// text.
#[derive(Clone, Copy)]
enum Written<'a> {
    /// A range of the shared buffer: start and end.
    Shared(usize, usize),
    Bytes(&'a [u8]),
    Static(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hex_reads_digits_by_case() {
        assert_eq!(hex::<2>(b"09af", false), Some([0x09, 0xaf]));
        assert_eq!(hex::<2>(b"09AF", false), None);
        assert_eq!(hex::<2>(b"09AF", true), Some([0x09, 0xaf]));
        assert_eq!(hex::<2>(b"0aF9", true), Some([0x0a, 0xf9]));
        for bad in [
            &b"0g00"[..],
            b"0G00",
            b"0 00",
            b"0:00",
            b"0/00",
            b"0@00",
            b"\xff000",
        ] {
            assert_eq!(hex::<2>(bad, true), None, "{bad:?}");
            assert_eq!(hex::<2>(bad, false), None, "{bad:?}");
        }
        assert_eq!(hex::<2>(b"0a0", true), None);
        // Every byte pair agrees with a plain reading.
        for a in 0..=255u8 {
            let plain = |upper: bool| {
                let d = |c: u8| match c {
                    b'0'..=b'9' => Some(c - b'0'),
                    b'a'..=b'f' => Some(c - b'a' + 10),
                    b'A'..=b'F' if upper => Some(c - b'A' + 10),
                    _ => None,
                };
                Some([(d(a)? << 4) | d(b'7')?])
            };
            assert_eq!(hex::<1>(&[a, b'7'], true), plain(true), "{a}");
            assert_eq!(hex::<1>(&[a, b'7'], false), plain(false), "{a}");
        }
    }

    #[test]
    fn traceparent_spec_example() {
        let ctx = parse_traceparent(TP).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(ctx.sampled, Some(true));
        assert_eq!(ctx.to_traceparent(), TP);
        let unsampled = parse_traceparent(&TP.replace("-01", "-00")).unwrap();
        assert_eq!(unsampled.sampled, Some(false));
        // Other flag bits are ignored.
        assert_eq!(
            parse_traceparent(&TP.replace("-01", "-03"))
                .unwrap()
                .sampled,
            Some(true)
        );
    }

    #[test]
    fn traceparent_rejects() {
        for bad in [
            "",
            "00",
            &TP.to_uppercase(),
            &TP.replace("4bf9", "4BF9"),
            &TP.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32)),
            &TP.replace("00f067aa0ba902b7", &"0".repeat(16)),
            &format!("{TP}-extra"), // version 00 has exactly four fields
            &format!("{TP}0"),
            &TP.replacen("00", "ff", 1),
            &TP.replacen("00", "0g", 1),
            &TP.replace('-', "_"),
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn traceparent_future_version() {
        let v = TP.replacen("00", "cc", 1);
        assert!(parse_traceparent(&v).is_some());
        assert!(parse_traceparent(&format!("{v}-what-ever")).is_some());
        assert!(parse_traceparent(&format!("{v}x")).is_none());
    }

    #[test]
    fn tracestate_limits() {
        assert_eq!(
            parse_tracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,,").as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert!(parse_tracestate(&members.join(",")).is_some());
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse_tracestate(&members.join(",")), None);
        let long = format!("a={},b={}", "x".repeat(256), "y".repeat(256));
        assert_eq!(parse_tracestate(&long), None);
        for bad in ["", "novalue", "=v", "K=v", "k=a=b", "k=", "k=v ,x"] {
            assert_eq!(parse_tracestate(bad), None, "{bad}");
        }
    }

    #[test]
    fn extract_w3c_with_tracestate() {
        let h = headers(&[
            (TRACEPARENT, TP),
            (TRACESTATE, "a=1"),
            (TRACESTATE, "b=2"),
            (B3, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ]);
        let ctx = extract(&h).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.trace_state.as_deref(), Some("a=1,b=2"));
    }

    #[test]
    fn extract_falls_back_to_b3() {
        let h = headers(&[
            (TRACEPARENT, "garbage"),
            (
                B3,
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90",
            ),
            (X_B3_TRACEID, "463ac35c9f6413ad48485a3953bb6124"),
            (X_B3_SPANID, "0020000000000001"),
        ]);
        let ctx = extract(&h).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(ctx.span_id.to_string(), "e457b5a2e4d86bd1");
        assert_eq!(ctx.parent_span_id.unwrap().to_string(), "05e3ac9a4f6e3b90");
        assert!(ctx.debug && ctx.sampled == Some(true));

        let h = headers(&[
            (X_B3_TRACEID, "463ac35c9f6413ad"),
            (X_B3_SPANID, "0020000000000001"),
            (X_B3_PARENTSPANID, "0020000000000002"),
            (X_B3_SAMPLED, "true"),
        ]);
        let ctx = extract(&h).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "0000000000000000463ac35c9f6413ad");
        assert_eq!(ctx.parent_span_id.unwrap().to_string(), "0020000000000002");
        assert_eq!(ctx.sampled, Some(true));
        assert!(!ctx.debug);
    }

    #[test]
    fn b3_multi_cases() {
        let base = [
            (X_B3_TRACEID, "463ac35c9f6413ad48485a3953bb6124"),
            (X_B3_SPANID, "a2fb4a1d1a96d312"),
        ];
        let ctx = |extra: &[(&'static str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            extract(&headers(&all))
        };
        assert_eq!(ctx(&[]).unwrap().sampled, None);
        assert_eq!(ctx(&[(X_B3_SAMPLED, "0")]).unwrap().sampled, Some(false));
        assert_eq!(
            ctx(&[(X_B3_SAMPLED, "false")]).unwrap().sampled,
            Some(false)
        );
        assert_eq!(ctx(&[(X_B3_SAMPLED, "1")]).unwrap().sampled, Some(true));
        assert_eq!(ctx(&[(X_B3_SAMPLED, "yes")]).unwrap().sampled, None);
        let dbg = ctx(&[(X_B3_FLAGS, "1"), (X_B3_SAMPLED, "0")]).unwrap();
        assert!(dbg.debug && dbg.is_sampled());
        // Bad parent is dropped, not fatal.
        assert_eq!(
            ctx(&[(X_B3_PARENTSPANID, "zz")]).unwrap().parent_span_id,
            None
        );
        // One id without the other, bad lengths, zero ids.
        let only_trace = headers(&[base[0]]);
        assert_eq!(extract(&only_trace), None);
        for bad in [
            "463ac35c9f6413a",
            "0000000000000000",
            "463ac35c9f6413ad48485a3953bb61245",
        ] {
            assert_eq!(extract(&headers(&[(X_B3_TRACEID, bad), base[1]])), None);
        }
        assert_eq!(
            extract_any(&headers(&[(X_B3_SAMPLED, "0")])),
            Extracted::SamplingOnly(SamplingOnly {
                sampled: Some(false),
                debug: false
            })
        );
    }

    #[test]
    fn b3_single_cases() {
        for (v, sampled, debug) in [
            ("0", Some(false), false),
            ("1", Some(true), false),
            ("d", Some(true), true),
        ] {
            assert_eq!(
                parse_b3_single(v),
                Some(B3Context::SamplingOnly(SamplingOnly { sampled, debug }))
            );
            assert_eq!(
                extract_any(&headers(&[(B3, v)])),
                Extracted::SamplingOnly(SamplingOnly { sampled, debug })
            );
        }
        let Some(B3Context::Context(c)) = parse_b3_single("a3ce929d0e0e4736-00f067aa0ba902b7")
        else {
            panic!()
        };
        assert_eq!(c.sampled, None);
        assert_eq!(c.trace_id.to_string(), "0000000000000000a3ce929d0e0e4736");
        for bad in [
            "",
            "2",
            "a3ce929d0e0e4736",
            "a3ce929d0e0e4736-00f067aa0ba902b7-x",
            "a3ce929d0e0e4736-00f067aa0ba902b7-1-00f067aa0ba902b",
            "a3ce929d0e0e4736-00f067aa0ba902b7-1-00f067aa0ba902b7-1",
            "a3ce929d0e0e4736--1",
        ] {
            assert_eq!(parse_b3_single(bad), None, "{bad}");
        }
    }

    #[test]
    fn inject_writes_styles_and_removes_stale() {
        let mut rng = StdRng::seed_from_u64(7);
        let received = parse_traceparent(TP).unwrap();
        let mut ctx = received.child(&mut rng);
        ctx.trace_state = Some("a=1".into());
        assert_eq!(ctx.trace_id, received.trace_id);
        assert_ne!(ctx.span_id, received.span_id);
        assert_eq!(ctx.parent_span_id, Some(received.span_id));

        let mut h = headers(&[(B3, "1"), (X_B3_FLAGS, "1"), (TRACESTATE, "old=1")]);
        inject(&ctx, PropagationSet::default(), &mut h);
        assert_eq!(h.get(B3), None);
        assert_eq!(h.get(X_B3_FLAGS), None);
        assert_eq!(h[TRACESTATE], "a=1");
        assert_eq!(h[TRACEPARENT], ctx.to_traceparent().as_str());
        assert_eq!(h[X_B3_SPANID], ctx.span_id.to_string().as_str());
        assert_eq!(h[X_B3_PARENTSPANID], received.span_id.to_string().as_str());
        assert_eq!(h[X_B3_SAMPLED], "1");
        // W3C wins and carries no parent span.
        let mut w3c = ctx.clone();
        w3c.parent_span_id = None;
        assert_eq!(extract(&h), Some(w3c));

        let mut h = HeaderMap::new();
        inject(
            &ctx,
            PropagationSet::EMPTY.with(Propagation::B3Single),
            &mut h,
        );
        assert_eq!(h.len(), 1);
        let mut back = extract(&h).unwrap();
        back.trace_state = ctx.trace_state.clone();
        assert_eq!(back, ctx);

        let mut h = headers(&[(TRACEPARENT, TP)]);
        inject(&ctx, PropagationSet::EMPTY, &mut h);
        assert!(h.is_empty());

        // A trace state that is no header value is not written, and the stale one goes.
        let mut odd = ctx.clone();
        odd.trace_state = Some("a=1\n".into());
        let mut h = headers(&[(TRACESTATE, "old=1"), (TRACEPARENT, TP), (TRACEPARENT, TP)]);
        inject(&odd, PropagationSet::default(), &mut h);
        assert_eq!(h.get(TRACESTATE), None);
        assert_eq!(h.get_all(TRACEPARENT).iter().count(), 1);
        assert_eq!(h[TRACEPARENT], ctx.to_traceparent().as_str());
    }

    #[test]
    fn propagation_names() {
        let set: PropagationSet = ["tracecontext", "b3", "b3multi", "jaeger"]
            .into_iter()
            .filter_map(Propagation::from_otel_name)
            .collect();
        assert_eq!(set, PropagationSet::ALL);
        assert!(!PropagationSet::default().contains(Propagation::B3Single));
        assert!(PropagationSet::EMPTY.is_empty());
    }

    #[test]
    fn random_ids_are_never_zero() {
        struct Zero;
        impl rand::TryRng for Zero {
            type Error = std::convert::Infallible;
            fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
                Ok(0)
            }
            fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
                Ok(0)
            }
            fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
                dst.fill(0);
                Ok(())
            }
        }
        assert!(TraceId::from_bytes(TraceId::random(&mut Zero).to_bytes()).is_some());
        assert!(SpanId::from_bytes(SpanId::random(&mut Zero).to_bytes()).is_some());
    }

    fn arb_ctx() -> impl Strategy<Value = TraceContext> {
        (
            any::<[u8; 16]>().prop_filter_map("zero", TraceId::from_bytes),
            any::<[u8; 8]>().prop_filter_map("zero", SpanId::from_bytes),
            proptest::option::of(any::<[u8; 8]>().prop_filter_map("zero", SpanId::from_bytes)),
            proptest::option::of(any::<bool>()),
            any::<bool>(),
            proptest::option::of("[a-z][a-z0-9_*/@-]{0,10}=[!-+--<>-~]{1,10}"),
        )
            .prop_map(
                |(trace_id, span_id, parent_span_id, sampled, debug, trace_state)| TraceContext {
                    trace_id,
                    span_id,
                    parent_span_id,
                    sampled: if debug { Some(true) } else { sampled },
                    trace_state,
                    debug,
                },
            )
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}", t in "[0-9a-fA-F-]{0,80}") {
            for v in [&s, &t] {
                let _ = parse_traceparent(v);
                let _ = parse_tracestate(v);
                let _ = parse_b3_single(v);
                if let Ok(hv) = HeaderValue::from_str(v) {
                    let mut h = HeaderMap::new();
                    for name in TRACE_HEADERS {
                        h.insert(name, hv.clone());
                    }
                    let _ = extract_any(&h);
                    h.remove(TRACEPARENT);
                    let _ = extract_any(&h);
                    h.remove(B3);
                    let _ = extract_any(&h);
                }
            }
        }

        #[test]
        fn w3c_round_trip(ctx in arb_ctx()) {
            let back = parse_traceparent(&ctx.to_traceparent()).unwrap();
            prop_assert_eq!(back.trace_id, ctx.trace_id);
            prop_assert_eq!(back.span_id, ctx.span_id);
            prop_assert_eq!(back.sampled, Some(ctx.is_sampled()));
        }

        #[test]
        fn b3_round_trip(ctx in arb_ctx()) {
            let mut h = HeaderMap::new();
            inject(&ctx, PropagationSet::EMPTY.with(Propagation::B3Multi), &mut h);
            let mut expected = ctx.clone();
            expected.trace_state = None;
            prop_assert_eq!(extract(&h), Some(expected.clone()));
            let single = parse_b3_single(&ctx.to_b3_single());
            if ctx.sampled.is_none() {
                expected.parent_span_id = None;
            }
            prop_assert_eq!(single, Some(B3Context::Context(expected)));
        }

        #[test]
        fn all_styles_round_trip(ctx in arb_ctx()) {
            let mut h = HeaderMap::new();
            inject(&ctx, PropagationSet::ALL, &mut h);
            let back = extract(&h).unwrap();
            prop_assert_eq!(back.trace_id, ctx.trace_id);
            prop_assert_eq!(back.span_id, ctx.span_id);
            prop_assert_eq!(back.trace_state, ctx.trace_state);
        }
    }
}
