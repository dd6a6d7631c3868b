//! Medians over rounds, ratios to `bare` of the same round (and mesh-full's to `bare-tls`),
//! and the table and JSON of them.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::cli::Options;
use crate::variant::Variant;

/// The label of the line under a `mesh-full` row with its ratios to `bare-tls`.
const VS_BARE_TLS: &str = "  vs bare-tls";

/// A figure of a round: its JSON key, the table's heading, decimals, and how it is computed
/// from a worker's figures when it is not the worker's figure of the same key.
struct Metric {
    key: &'static str,
    heading: &'static str,
    decimals: usize,
    computed: Option<fn(&Value) -> Option<f64>>,
}

impl Metric {
    /// The figure in a worker's figures `f`.
    fn read(&self, f: &Value) -> Option<f64> {
        match self.computed {
            Some(compute) => compute(f),
            None => f[self.key].as_f64(),
        }
    }
}

const METRICS: [Metric; 6] = [
    Metric {
        key: "requests_per_s",
        heading: "req/s",
        decimals: 0,
        computed: None,
    },
    Metric {
        key: "p50_us",
        heading: "p50 us",
        decimals: 1,
        computed: None,
    },
    Metric {
        key: "p99_us",
        heading: "p99 us",
        decimals: 1,
        computed: None,
    },
    Metric {
        key: "p999_us",
        heading: "p99.9 us",
        decimals: 1,
        computed: None,
    },
    Metric {
        key: "cpu_s_per_100k",
        heading: "CPU s/100k",
        decimals: 2,
        computed: Some(cpu_per_100k),
    },
    Metric {
        key: "peak_rss_mib",
        heading: "RSS MiB",
        decimals: 1,
        computed: Some(rss_mib),
    },
];

/// CPU seconds per 100,000 requests: the worker's, plus the proxy's when measured.
fn cpu_per_100k(f: &Value) -> Option<f64> {
    let requests = f["requests"].as_f64().filter(|r| *r > 0.0)?;
    let cpu = f["cpu_s"].as_f64()? + f["proxy"]["cpu_s"].as_f64().unwrap_or(0.0);
    Some(cpu / requests * 1e5)
}

/// Peak RSS of the worker, plus the proxy's resident set when measured, in MiB.
fn rss_mib(f: &Value) -> Option<f64> {
    let kib = f["peak_rss_kib"].as_f64()? + f["proxy"]["rss_kib"].as_f64().unwrap_or(0.0);
    Some(kib / 1024.0)
}

/// Every round's figures of one variant at one concurrency.
struct Row {
    variant: Variant,
    concurrency: usize,
    /// Per round: the worker's figures, or why it failed.
    rounds: Vec<Result<Value, String>>,
}

/// The figures of a run.
pub(crate) struct Results {
    rows: Vec<Row>,
}

impl Results {
    /// Empty rows for every variant and concurrency of `o`, in table order.
    pub(crate) fn new(o: &Options) -> Self {
        let mut rows = Vec::new();
        for &concurrency in &o.concurrency {
            for variant in &o.variants {
                rows.push(Row {
                    variant: variant.clone(),
                    concurrency,
                    rounds: Vec::new(),
                });
            }
        }
        Self { rows }
    }

    /// Records one worker's figures (rounds in order).
    pub(crate) fn add(
        &mut self,
        variant: &Variant,
        concurrency: usize,
        figures: Result<Value, String>,
    ) {
        if let Some(row) = self
            .rows
            .iter_mut()
            .find(|r| &r.variant == variant && r.concurrency == concurrency)
        {
            row.rounds.push(figures);
        }
    }

    fn row(&self, variant: &Variant, concurrency: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| &r.variant == variant && r.concurrency == concurrency)
    }

    /// The median of `metric` over the rounds of `row`, and the median of its per-round
    /// ratio to bare.
    fn summary(&self, row: &Row, metric: &Metric) -> (Option<f64>, Option<f64>) {
        let values: Vec<f64> = row
            .rounds
            .iter()
            .filter_map(|r| r.as_ref().ok().and_then(|f| metric.read(f)))
            .collect();
        (median(values), self.ratio(row, &Variant::Bare, metric))
    }

    /// The median of the per-round ratio of `metric` of `row` to that of `reference` at
    /// the same concurrency, when `reference` ran.
    fn ratio(&self, row: &Row, reference: &Variant, metric: &Metric) -> Option<f64> {
        let reference = self.row(reference, row.concurrency)?;
        let ratios: Vec<f64> = row
            .rounds
            .iter()
            .zip(&reference.rounds)
            .filter_map(|(r, b)| {
                let v = metric.read(r.as_ref().ok()?)?;
                let b = metric.read(b.as_ref().ok()?)?;
                (b > 0.0).then_some(v / b)
            })
            .collect();
        median(ratios)
    }

    /// `mesh-full`'s ratios to `bare-tls` (the limit with mutual TLS), for its rows when
    /// both ran.
    fn vs_bare_tls(&self, row: &Row) -> Option<Vec<Option<f64>>> {
        if row.variant != Variant::MeshFull
            || self.row(&Variant::BareTls, row.concurrency).is_none()
        {
            return None;
        }
        Some(
            METRICS
                .iter()
                .map(|m| self.ratio(row, &Variant::BareTls, m))
                .collect(),
        )
    }

    /// The table for stdout.
    pub(crate) fn table(&self, o: &Options) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "median of {} rounds of {} requests (after {} warm-up), each in its own process; \
             (x.xx) = median per-round ratio to bare at the same concurrency",
            o.rounds, o.requests, o.warmup
        );
        if o.variants.contains(&Variant::MeshFull) && o.variants.contains(&Variant::BareTls) {
            let _ = writeln!(
                out,
                "the `{}` line under mesh-full: its median per-round ratios to bare-tls (the \
                 limit with mutual TLS) at the same concurrency",
                VS_BARE_TLS.trim()
            );
        }
        let _ = write!(out, "{:<16} {:>4}", "variant", "conc");
        for m in &METRICS {
            let _ = write!(out, " {:>18}", m.heading);
        }
        let _ = writeln!(out, "  errors");
        let mut notes = Vec::new();
        for row in &self.rows {
            let _ = write!(
                out,
                "{:<16} {:>4}",
                row.variant.to_string(),
                row.concurrency
            );
            for m in &METRICS {
                let (value, ratio) = self.summary(row, m);
                let cell = match (value, ratio) {
                    (Some(v), Some(r)) => format!("{v:.*} ({r:.2})", m.decimals),
                    (Some(v), None) => format!("{v:.*}", m.decimals),
                    _ => "-".to_owned(),
                };
                let _ = write!(out, " {cell:>18}");
            }
            let _ = writeln!(out, "  {}", errors_cell(row));
            if let Some(ratios) = self.vs_bare_tls(row) {
                let _ = write!(out, "{VS_BARE_TLS:<16} {:>4}", row.concurrency);
                for r in ratios {
                    let cell = r.map_or_else(|| "-".to_owned(), |r| format!("({r:.2})"));
                    let _ = write!(out, " {cell:>18}");
                }
                let _ = writeln!(out);
            }
            if let Some(note) = first_problem(row) {
                notes.push(format!("{} at {}: {note}", row.variant, row.concurrency));
            }
        }
        for (label, pid) in &o.via_pids {
            let _ = writeln!(
                out,
                "via rows{}: CPU and RSS include the proxy's process tree (pid {pid})",
                label
                    .as_deref()
                    .map(|l| format!(" of {l}"))
                    .unwrap_or_default()
            );
        }
        if o.variants
            .iter()
            .any(|v| v.via_label().is_some() && o.proxy_pid(v).is_none())
        {
            let _ = writeln!(
                out,
                "via rows without --via-pid: CPU and RSS are the client's and server's only"
            );
        }
        for note in notes {
            let _ = writeln!(out, "problem: {note}");
        }
        out
    }

    /// The JSON document: options, and per row the medians, the ratios and every round.
    pub(crate) fn json(&self, o: &Options) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut medians = serde_json::Map::new();
                let mut ratios = serde_json::Map::new();
                for m in &METRICS {
                    let (value, ratio) = self.summary(row, m);
                    medians.insert(m.key.to_owned(), json!(value));
                    ratios.insert(m.key.to_owned(), json!(ratio));
                }
                let vs_bare_tls = self.vs_bare_tls(row).map(|ratios| {
                    METRICS
                        .iter()
                        .zip(ratios)
                        .map(|(m, r)| (m.key.to_owned(), json!(r)))
                        .collect::<serde_json::Map<_, _>>()
                });
                let rounds: Vec<Value> = row
                    .rounds
                    .iter()
                    .map(|r| match r {
                        Ok(f) => f.clone(),
                        Err(e) => json!({"failed": e}),
                    })
                    .collect();
                json!({
                    "variant": row.variant.to_string(),
                    "concurrency": row.concurrency,
                    "median": medians,
                    "ratio_to_bare": ratios,
                    "ratio_to_bare_tls": vs_bare_tls,
                    "errors": errors(row),
                    "failed_rounds": row.rounds.iter().filter(|r| r.is_err()).count(),
                    "rounds": rounds,
                })
            })
            .collect();
        json!({
            "options": {
                "variants": o.variants.iter().map(Variant::spec).collect::<Vec<_>>(),
                "concurrency": o.concurrency,
                "requests": o.requests,
                "warmup": o.warmup,
                "rounds": o.rounds,
                "deadline_s": o.deadline.as_secs_f64(),
                "threads": o.threads,
                "upstream": o.upstream.to_string(),
                "trace_sampling": o.trace_sampling,
                "via_pids": o.via_pids.iter().map(|(l, p)| json!({"label": l, "pid": p})).collect::<Vec<_>>(),
            },
            "machine": {
                "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            },
            "results": rows,
        })
    }
}

/// Failed requests over every round, warm-ups included.
fn errors(row: &Row) -> u64 {
    row.rounds
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|f| f["errors"].as_u64().unwrap_or(0) + f["warmup_errors"].as_u64().unwrap_or(0))
        .sum()
}

/// `0`, or how many requests failed in how many rounds, and rounds that failed whole.
fn errors_cell(row: &Row) -> String {
    let with_errors = row
        .rounds
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|f| {
            f["errors"].as_u64().unwrap_or(0) + f["warmup_errors"].as_u64().unwrap_or(0) > 0
                || f["cut_by_deadline"].as_bool().unwrap_or(false)
        })
        .count();
    let failed = row.rounds.iter().filter(|r| r.is_err()).count();
    let mut cell = match (errors(row), with_errors) {
        (0, 0) => "0".to_owned(),
        (n, k) => format!("{n} in {k}/{} rounds", row.rounds.len()),
    };
    if failed > 0 {
        let _ = write!(cell, ", {failed} round(s) FAILED");
    }
    cell
}

/// The first failure of a row, for the notes under the table.
fn first_problem(row: &Row) -> Option<String> {
    row.rounds.iter().find_map(|r| match r {
        Err(e) => Some(format!("round failed: {e}")),
        Ok(f) => f["first_error"]
            .as_str()
            .map(|e| format!("first error: {e}"))
            .or_else(|| {
                f["cut_by_deadline"]
                    .as_bool()
                    .filter(|c| *c)
                    .map(|_| "cut by the deadline".to_owned())
            }),
    })
}

/// The median (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}
