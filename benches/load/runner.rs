//! The harness process: runs one worker process per (round, concurrency, variant), variants
//! alternating within a round, then reports the medians.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::cli::{Format, Options, WorkerOptions};
use crate::report::Results;

/// Time a worker may take beyond its two deadlines (warm-up and measured) before it is
/// killed: process start, certificates, servers.
const SETUP_ALLOWANCE: Duration = Duration::from_secs(30);

/// Runs every round and prints the report.
pub(crate) fn run(o: Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let limit = o.deadline * 2 + SETUP_ALLOWANCE;
    let mut results = Results::new(&o);
    for round in 0..o.rounds {
        for &concurrency in &o.concurrency {
            for variant in &o.variants {
                let worker = WorkerOptions {
                    variant: variant.clone(),
                    concurrency,
                    requests: o.requests,
                    warmup: o.warmup,
                    deadline: o.deadline,
                    threads: o.threads,
                    upstream: o.upstream,
                    trace_sampling: o.trace_sampling,
                    proxy_pid: o.proxy_pid(variant),
                };
                let figures = rt.block_on(run_worker(&exe, &worker, limit));
                eprintln!(
                    "round {}/{} concurrency {concurrency:>3} {variant:<16} {}",
                    round + 1,
                    o.rounds,
                    progress(&figures)
                );
                results.add(variant, concurrency, figures);
            }
        }
    }
    let doc = results.json(&o);
    if let Some(path) = &o.json {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    match o.format {
        Format::Table => print!("{}", results.table(&o)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        ),
    }
    Ok(())
}

/// Runs one worker, killing it past `limit`; its figures, or why there are none.
async fn run_worker(exe: &Path, worker: &WorkerOptions, limit: Duration) -> Result<Value, String> {
    let mut child = Command::new(exe)
        .args(worker.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start worker: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(format!("wait for worker: {e}")),
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("worker killed after {} s", limit.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if !status.success() {
        return Err(format!("worker failed ({status})"));
    }
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| format!("worker output {line:?}: {e}"))
}

/// One line of progress for stderr.
fn progress(figures: &Result<Value, String>) -> String {
    match figures {
        Ok(f) => format!(
            "{:>9.0} req/s  p99 {:>8.1} us  cpu {:.3} s  errors {}",
            f["requests_per_s"].as_f64().unwrap_or(0.0),
            f["p99_us"].as_f64().unwrap_or(f64::NAN),
            f["cpu_s"].as_f64().unwrap_or(0.0),
            f["errors"].as_u64().unwrap_or(0),
        ),
        Err(e) => format!("FAILED: {e}"),
    }
}
