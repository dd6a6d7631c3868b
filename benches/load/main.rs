//! The load harness: mesh against the bare limit and against sidecar proxies, in one run.
//!
//! `cargo bench --bench load -- [options]` (`--help` lists them) drives a hyper server on
//! loopback with closed-loop callers at fixed concurrencies, for each variant:
//!
//! - `bare`: a plain hyper-util pooled client to a plain hyper server (the physical limit);
//! - `bare-tls`: the same over mutual TLS (mesh-full's rustls configurations, development CA
//!   and SPIFFE identities) to a plain hyper server behind a STRICT TLS acceptor, without
//!   any mesh layer (the physical limit with mTLS);
//! - `mesh-default`: `MeshClient` with its defaults (discovery through a DNS server the
//!   harness starts, least-request balancing, a timeout, retries) to the same server;
//! - `mesh-full`: everything on: mutual TLS both ways, a header-matched route with a weighted
//!   split between subsets, outlier detection, connection-pool limits, Prometheus metrics and
//!   sampled spans batched to a discarding exporter, and a `MeshServer` with an
//!   authorization policy;
//! - `via=[LABEL@]ADDR`: the bare client sent through a proxy at ADDR, started outside the
//!   harness, forwarding to the bare server at the fixed `--upstream` address.
//!
//! Every (round, concurrency, variant) runs in a fresh child process (the harness executes
//! itself with `--worker`), so peak RSS is per variant and CPU time is the process's own,
//! taken over the measured phase after a warm-up. Variants alternate within each round and
//! the median of the rounds is reported, with ratios to `bare` of the same round (and, for
//! `mesh-full`, to `bare-tls` of the same round).

mod bare_tls;
mod caller;
mod cli;
#[path = "../support/discard.rs"]
mod discard;
mod drive;
mod full;
#[path = "../support/ok_server.rs"]
mod ok_server;
mod report;
mod runner;
mod servers;
mod tls_connector;
mod usage;
mod variant;
mod worker;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.iter().any(|a| a == "--worker") {
        cli::WorkerOptions::parse(&args).and_then(worker::run)
    } else if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", cli::USAGE);
        return ExitCode::SUCCESS;
    } else {
        cli::Options::parse(&args).and_then(runner::run)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}
