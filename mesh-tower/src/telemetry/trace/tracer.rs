//! [`Tracer`]: where spans go, and the bridge between mesh-core's [`TraceContext`] and
//! OpenTelemetry's span contexts.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

use mesh_core::telemetry::trace_context::{SpanId, TraceContext, TraceId};
use opentelemetry::global::BoxedSpan;
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, Status, TraceContextExt, TraceFlags, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_sdk::trace::SdkTracer;

/// The instrumentation scope of mesh's spans.
pub const INSTRUMENTATION_SCOPE: &str = "mesh";

/// Makes spans: a tracer of an OpenTelemetry tracer provider, or none.
///
/// Spans are made only when they can go somewhere: with [`Tracer::global`] and OpenTelemetry's
/// no-op global provider (nothing installed) no span is built at all, and the trace context is
/// propagated as without a tracer.
#[derive(Clone, Debug, Default)]
pub struct Tracer {
    kind: Kind,
}

#[derive(Clone, Debug, Default)]
enum Kind {
    None,
    #[default]
    Global,
    Sdk(SdkTracer),
}

impl Tracer {
    /// Spans through the global tracer provider (whatever `opentelemetry::global` holds when
    /// a span starts; see [`init_from_env`](super::init_from_env)).
    ///
    /// Whether the global provider is OpenTelemetry's no-op one is checked once and then again
    /// every 1024 requests of a thread, so a provider installed with
    /// `opentelemetry::global::set_tracer_provider` after traffic started is picked up soon;
    /// one installed by [`init_from_env`](super::init_from_env) at once.
    pub fn global() -> Self {
        Self { kind: Kind::Global }
    }

    /// No spans; trace context, `x-request-id` and configured headers still propagate.
    pub fn none() -> Self {
        Self { kind: Kind::None }
    }

    /// Spans through `tracer`, a tracer of an SDK provider of your own (such as one per
    /// workload with its own `service.name`).
    pub fn sdk(tracer: SdkTracer) -> Self {
        Self {
            kind: Kind::Sdk(tracer),
        }
    }

    /// Whether a span started now could be recorded somewhere.
    pub(crate) fn is_active(&self) -> bool {
        match &self.kind {
            Kind::None => false,
            Kind::Sdk(_) => true,
            Kind::Global => !global_is_noop(),
        }
    }

    /// Starts a span from `builder`, a child of `parent` (`remote` when it came from another
    /// process) or a new root. `None` when the tracer makes no span (no tracer, a no-op or
    /// shut-down provider). `sample_undecided` is the sampling flag given to a B3 parent that
    /// left the decision to us.
    pub(crate) fn start(
        &self,
        builder: SpanBuilder,
        parent: Option<&TraceContext>,
        remote: bool,
        sample_undecided: bool,
    ) -> Option<ActiveSpan> {
        let cx = match parent {
            Some(p) => {
                Context::new().with_remote_span_context(to_otel(p, remote, sample_undecided))
            }
            None => Context::new(),
        };
        let span = match &self.kind {
            Kind::None => return None,
            Kind::Sdk(t) => Started::Sdk(Box::new(t.build_with_context(builder, &cx))),
            Kind::Global => Started::Boxed(
                global::tracer(INSTRUMENTATION_SCOPE).build_with_context(builder, &cx),
            ),
        };
        let sc = span.span_context();
        if !sc.is_valid() || parent.is_some_and(|p| p.span_id.to_bytes() == sc.span_id().to_bytes())
        {
            // A no-op tracer answers the parent's context (or none): no span of ours.
            return None;
        }
        let context = from_otel(sc, parent)?;
        Some(ActiveSpan { span, context })
    }
}

/// The probe's answer about the global provider.
static GLOBAL_STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const NOOP: u8 = 1;
const REAL: u8 = 2;
/// How many requests of a thread trust a "no-op" answer before probing again.
const REPROBE_EVERY: u32 = 1024;

thread_local! {
    static SINCE_PROBE: Cell<u32> = const { Cell::new(0) };
}

/// Whether the global provider is OpenTelemetry's no-op one, probed rarely.
fn global_is_noop() -> bool {
    match GLOBAL_STATE.load(Ordering::Relaxed) {
        REAL => return false,
        NOOP => {
            let n = SINCE_PROBE.with(|c| {
                let n = c.get().wrapping_add(1);
                c.set(n);
                n
            });
            if !n.is_multiple_of(REPROBE_EVERY) {
                return true;
            }
        }
        _ => {}
    }
    let noop = probe_global_is_noop();
    GLOBAL_STATE.store(if noop { NOOP } else { REAL }, Ordering::Relaxed);
    noop
}

/// Forgets the probe's answer: the next request asks again.
pub(crate) fn reset_global_probe() {
    GLOBAL_STATE.store(UNKNOWN, Ordering::Relaxed);
}

/// Asks the global provider for a span below a marker parent with telemetry suppressed: the
/// no-op tracer answers the marker's own context, the SDK an empty one, and neither records
/// or exports anything.
fn probe_global_is_noop() -> bool {
    let marker = SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes([0x6d; 16]),
        opentelemetry::trace::SpanId::from_bytes([0x6d; 8]),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    let cx = Context::new()
        .with_remote_span_context(marker.clone())
        .with_telemetry_suppressed();
    let span = global::tracer(INSTRUMENTATION_SCOPE)
        .build_with_context(SpanBuilder::from_name("mesh.probe"), &cx);
    span.span_context() == &marker
}

/// `ctx` as an OpenTelemetry span context.
pub(crate) fn to_otel(ctx: &TraceContext, remote: bool, sample_undecided: bool) -> SpanContext {
    let sampled = ctx.debug || ctx.sampled.unwrap_or(sample_undecided);
    SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(ctx.trace_id.to_bytes()),
        opentelemetry::trace::SpanId::from_bytes(ctx.span_id.to_bytes()),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        remote,
        ctx.trace_state
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
    )
}

/// A span's context as the [`TraceContext`] written on outbound calls.
fn from_otel(sc: &SpanContext, parent: Option<&TraceContext>) -> Option<TraceContext> {
    let trace_state = sc.trace_state().header();
    Some(TraceContext {
        trace_id: TraceId::from_bytes(sc.trace_id().to_bytes())?,
        span_id: SpanId::from_bytes(sc.span_id().to_bytes())?,
        parent_span_id: parent.map(|p| p.span_id),
        sampled: Some(sc.is_sampled()),
        trace_state: (!trace_state.is_empty()).then_some(trace_state),
        debug: parent.is_some_and(|p| p.debug),
    })
}

/// A span of an SDK tracer (boxed: it is large, and response futures that carry no span
/// should stay small), or of the global provider's.
enum Started {
    Sdk(Box<opentelemetry_sdk::trace::Span>),
    Boxed(BoxedSpan),
}

impl Started {
    fn span_context(&self) -> &SpanContext {
        match self {
            Started::Sdk(s) => s.span_context(),
            Started::Boxed(s) => s.span_context(),
        }
    }
}

/// A started span with the context outbound calls carry; ends when [`end`](Self::end)ed or
/// dropped.
pub(crate) struct ActiveSpan {
    span: Started,
    context: TraceContext,
}

impl std::fmt::Debug for ActiveSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveSpan")
            .field("context", &self.context)
            .finish()
    }
}

impl ActiveSpan {
    /// The span's context: its trace, its span id, its sampling decision and trace state.
    pub(crate) fn context(&self) -> &TraceContext {
        &self.context
    }

    /// Whether attributes set now are kept.
    pub(crate) fn is_recording(&self) -> bool {
        match &self.span {
            Started::Sdk(s) => s.is_recording(),
            Started::Boxed(s) => s.is_recording(),
        }
    }

    pub(crate) fn set_attribute(&mut self, kv: KeyValue) {
        match &mut self.span {
            Started::Sdk(s) => s.set_attribute(kv),
            Started::Boxed(s) => s.set_attribute(kv),
        }
    }

    pub(crate) fn set_status(&mut self, status: Status) {
        match &mut self.span {
            Started::Sdk(s) => s.set_status(status),
            Started::Boxed(s) => s.set_status(status),
        }
    }

    pub(crate) fn end(mut self) {
        match &mut self.span {
            Started::Sdk(s) => s.end(),
            Started::Boxed(s) => s.end(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::telemetry::trace_context::parse_traceparent;

    #[test]
    fn otel_round_trip_keeps_ids_sampling_and_state() {
        let mut ctx =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        ctx.trace_state = Some("a=1,b=2".into());
        let sc = to_otel(&ctx, true, false);
        assert!(sc.is_valid() && sc.is_sampled() && sc.is_remote());
        let back = from_otel(&sc, None).unwrap();
        assert_eq!(back, ctx);
        // An undecided B3 parent takes the given default.
        ctx.sampled = None;
        assert!(!to_otel(&ctx, true, false).is_sampled());
        assert!(to_otel(&ctx, true, true).is_sampled());
    }

    #[test]
    fn none_makes_no_span_and_noop_global_is_detected() {
        assert!(!Tracer::none().is_active());
        assert!(
            Tracer::none()
                .start(SpanBuilder::from_name("x"), None, false, true)
                .is_none()
        );
        // No provider installed in this test binary: the global one is the no-op one.
        assert!(!Tracer::global().is_active());
        assert!(
            Tracer::global()
                .start(SpanBuilder::from_name("x"), None, false, true)
                .is_none()
        );
    }
}
