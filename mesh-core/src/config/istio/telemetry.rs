//! Istio's Telemetry (`telemetry.istio.io`), read for turning access logs and tracing on and
//! off.
//!
//! `accessLogging[]` with the `envoy` provider (or no provider: Istio's default) turns the
//! access logs of the stacks its `match.mode` names on, as text to standard output, and
//! `disabled: true` turns them off. `tracing[]` with `randomSamplingPercentage: 0` or
//! `disableSpanReporting: true` turns tracing off (and a positive percentage back on). The
//! rest (selectors, filters, other providers, custom tags, metric overrides) are warnings.

use super::walk::{Node, Walker};
use crate::config::builder::MeshConfigBuilder;
use crate::config::{AccessLogConfig, ConfigError};

/// Which stacks a rule applies to (Istio's `WorkloadMode`).
#[derive(Clone, Copy)]
struct Stacks {
    client: bool,
    server: bool,
}

impl Stacks {
    const BOTH: Stacks = Stacks {
        client: true,
        server: true,
    };
}

/// Reads a Telemetry's `spec` and lays its access-log and tracing switches over `b`.
pub(crate) fn telemetry(
    spec: Node<'_>,
    w: &mut Walker,
    b: &mut MeshConfigBuilder,
) -> Result<(), ConfigError> {
    let mut o = spec.obj(w)?;
    for key in ["selector", "targetRef", "targetRefs"] {
        o.unsupported(
            w,
            key,
            &format!("{key} is not implemented; the Telemetry applies to this workload"),
        )?;
    }
    if let Some(rules) = o.field("accessLogging") {
        for rule in rules.list(w)? {
            access_logging(rule, w, b)?;
        }
    }
    if let Some(rules) = o.field("tracing") {
        for rule in rules.list(w)? {
            tracing(rule, w, b)?;
        }
    }
    o.unsupported(
        w,
        "metrics",
        "metric overrides are not implemented; Istio's standard metrics are recorded as configured (telemetry.metrics)",
    )?;
    o.finish(w)
}

/// A rule's `match.mode`: CLIENT, SERVER or CLIENT_AND_SERVER (the default).
fn stacks(rule: &mut super::walk::Obj<'_>, w: &mut Walker) -> Result<Stacks, ConfigError> {
    let Some(m) = rule.field("match") else {
        return Ok(Stacks::BOTH);
    };
    let mut m = m.obj(w)?;
    let stacks = match m.field("mode") {
        Some(mode) => match mode.str(w)? {
            "CLIENT_AND_SERVER" => Stacks::BOTH,
            "CLIENT" => Stacks {
                client: true,
                server: false,
            },
            "SERVER" => Stacks {
                client: false,
                server: true,
            },
            other => {
                return Err(w.invalid(
                    &mode.path,
                    other,
                    "expected one of CLIENT_AND_SERVER, CLIENT, SERVER",
                ));
            }
        },
        None => Stacks::BOTH,
    };
    m.finish(w)?;
    Ok(stacks)
}

/// Whether a rule's `providers` name Envoy's (or no provider, Istio's default); others are
/// warnings.
fn envoy_provider(
    rule: &mut super::walk::Obj<'_>,
    w: &mut Walker,
    what: &str,
) -> Result<bool, ConfigError> {
    let Some(providers) = rule.field("providers") else {
        return Ok(true);
    };
    let mut envoy = false;
    for p in providers.list(w)? {
        let mut p = p.obj(w)?;
        let name = p.required(w, "name")?;
        let text = name.str(w)?;
        if text == "envoy" {
            envoy = true;
        } else {
            w.warn(
                &name.path,
                format!("{what} provider {text} is not implemented; only envoy's is"),
            );
        }
        p.finish(w)?;
    }
    Ok(envoy)
}

fn access_logging(
    rule: Node<'_>,
    w: &mut Walker,
    b: &mut MeshConfigBuilder,
) -> Result<(), ConfigError> {
    let mut r = rule.obj(w)?;
    let stacks = stacks(&mut r, w)?;
    let envoy = envoy_provider(&mut r, w, "the access log")?;
    let disabled = match r.field("disabled") {
        Some(d) => d.bool(w)?,
        None => false,
    };
    r.unsupported(
        w,
        "filter",
        "access-log filters are not implemented; every request is logged",
    )?;
    r.finish(w)?;
    let log = if disabled {
        None
    } else if envoy {
        Some(AccessLogConfig::default())
    } else {
        return Ok(());
    };
    let t = &mut b.telemetry;
    if stacks.client {
        t.client_access_log.clone_from(&log);
    }
    if stacks.server {
        t.server_access_log = log;
    }
    Ok(())
}

fn tracing(rule: Node<'_>, w: &mut Walker, b: &mut MeshConfigBuilder) -> Result<(), ConfigError> {
    let mut r = rule.obj(w)?;
    let mut on = None;
    if let Some(m) = r.field("match") {
        w.unsupported(
            &m,
            "a tracing rule's match is not implemented; the rule applies to both stacks",
        )?;
    }
    let _ = envoy_provider(&mut r, w, "the tracing")?;
    if let Some(p) = r.field("randomSamplingPercentage") {
        let percent = p.f64(w)?;
        if !(0.0..=100.0).contains(&percent) {
            return Err(w.invalid(&p.path, percent, "must be between 0 and 100"));
        }
        if percent == 0.0 {
            on = Some(false);
        } else {
            on = Some(true);
            if percent < 100.0 {
                w.warn(
                    &p.path,
                    "sampling a share of traces is not implemented; every request without a trace starts one",
                );
            }
        }
    }
    if let Some(d) = r.field("disableSpanReporting")
        && d.bool(w)?
    {
        on = Some(false);
    }
    for (key, what) in [
        ("customTags", "custom span tags are"),
        (
            "useRequestIdForTraceSampling",
            "request-ID based sampling is",
        ),
        ("enableIstioTags", "Istio's span tags switch is"),
    ] {
        r.unsupported(w, key, &format!("{what} not implemented; ignored"))?;
    }
    r.finish(w)?;
    if let Some(on) = on {
        b.telemetry.tracing = on;
    }
    Ok(())
}
