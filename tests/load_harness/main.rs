//! The load harness's own logic, tested without sending load: its command line (options,
//! variants, the worker's arguments) and its report (medians over rounds, per-round ratios
//! to `bare` and to `bare-tls`, CPU per 100,000 requests with a proxy's share, failed rounds
//! and errors), from figures written here in the worker's JSON form.
//!
//! The harness is a bench target without a library, so its modules are compiled in here by
//! path.

#[path = "../../benches/load/cli.rs"]
mod cli;
#[path = "../../benches/load/report.rs"]
mod report;
#[path = "../../benches/load/variant.rs"]
mod variant;

mod command_line;
mod report_figures;
