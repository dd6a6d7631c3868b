//! A worker process: one variant at one concurrency for one round. It starts its servers,
//! warms up, measures, and prints one JSON line of figures on stdout.

use std::sync::Arc;
use std::time::Duration;

use mesh::prelude::*;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::bare_tls::BareTls;
use crate::caller::{Caller, uri};
use crate::cli::WorkerOptions;
use crate::drive::{Outcome, drive};
use crate::full::Full;
use crate::servers;
use crate::usage;
use crate::variant::Variant;

/// Runs the worker of `o` and prints its figures.
pub(crate) fn run(o: WorkerOptions) -> Result<(), String> {
    let mut builder = if o.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(o.threads);
        b
    };
    let rt = builder
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let figures = rt.block_on(measure(&o));
    rt.shutdown_timeout(Duration::from_secs(1));
    println!("{}", figures?);
    Ok(())
}

async fn measure(o: &WorkerOptions) -> Result<Value, String> {
    if matches!(
        o.variant,
        Variant::Bare | Variant::MeshDefault | Variant::Via { .. }
    ) {
        servers::plain(o.upstream).await?;
    }
    // What the variant needs alive while it runs.
    let mut dns = None;
    let mut full = None;
    let mut bare_tls = None;
    let caller = match &o.variant {
        Variant::Bare => Caller::bare(o.upstream)?,
        Variant::BareTls => {
            let (setup, caller) = BareTls::start().await?;
            bare_tls = Some(setup);
            caller
        }
        Variant::Via { addr, .. } => Caller::bare(*addr)?,
        Variant::MeshDefault => {
            // Discovery through DNS, least-request balancing, a timeout and retries.
            let server = servers::dns("bench.default.svc", o.upstream.ip())?;
            let config = MeshConfig::builder()
                .service("load-client")
                .discovery(server.config())
                .build()
                .map_err(|e| format!("config: {e}"))?;
            let client = MeshClient::new(config).map_err(|e| format!("client: {e}"))?;
            dns = Some(server);
            Caller::Mesh {
                client,
                uri: uri(&format!("http://bench:{}/", o.upstream.port()))?,
                headers: http::HeaderMap::new(),
            }
        }
        Variant::MeshFull => {
            let (setup, caller) = Full::start(o.trace_sampling).await?;
            full = Some(setup);
            caller
        }
    };
    let caller = Arc::new(caller);

    let warmup = drive(
        &caller,
        o.concurrency,
        o.warmup,
        Instant::now() + o.deadline,
    )
    .await?;
    let proxy_before = o.proxy_pid.and_then(usage::process_tree);
    let (cpu_before, _) = usage::own();
    let run = drive(
        &caller,
        o.concurrency,
        o.requests,
        Instant::now() + o.deadline,
    )
    .await?;
    let (cpu_after, rss_kib) = usage::own();
    let proxy_after = o.proxy_pid.and_then(usage::process_tree);

    let proxy = match (o.proxy_pid, proxy_before, proxy_after) {
        (None, ..) => Value::Null,
        (Some(_), Some((before, _)), Some((after, rss))) => {
            json!({"cpu_s": after - before, "rss_kib": rss})
        }
        (Some(pid), ..) => return Err(format!("proxy process {pid} not found")),
    };
    let evidence = match (&full, &bare_tls) {
        (Some(full), _) => {
            let (spans, series) = full.evidence();
            json!({"spans_exported": spans, "istio_requests_total_series": series})
        }
        (None, Some(bare_tls)) => bare_tls.evidence(),
        (None, None) => Value::Null,
    };
    drop((dns, full, bare_tls));
    Ok(figures(
        o,
        &warmup,
        &run,
        cpu_after - cpu_before,
        rss_kib,
        proxy,
        evidence,
    ))
}

fn figures(
    o: &WorkerOptions,
    warmup: &Outcome,
    run: &Outcome,
    cpu_s: f64,
    rss_kib: u64,
    proxy: Value,
    evidence: Value,
) -> Value {
    let quantile = |q: f64| {
        if run.latency.is_empty() {
            Value::Null
        } else {
            json!(run.latency.value_at_quantile(q) as f64 / 1e3)
        }
    };
    json!({
        "variant": o.variant.to_string(),
        "concurrency": o.concurrency,
        "requests": run.ok + run.errors,
        "ok": run.ok,
        "errors": run.errors,
        "first_error": run.first_error.as_deref().or(warmup.first_error.as_deref()),
        "warmup_errors": warmup.errors,
        "cut_by_deadline": run.cut || warmup.cut,
        "elapsed_s": run.elapsed,
        "requests_per_s": if run.elapsed > 0.0 { run.ok as f64 / run.elapsed } else { 0.0 },
        "p50_us": quantile(0.5),
        "p99_us": quantile(0.99),
        "p999_us": quantile(0.999),
        "max_us": run.latency.max() as f64 / 1e3,
        "cpu_s": cpu_s,
        "peak_rss_kib": rss_kib,
        "proxy": proxy,
        "http_version": run.version.map(|v| format!("{v:?}")),
        "evidence": evidence,
    })
}
