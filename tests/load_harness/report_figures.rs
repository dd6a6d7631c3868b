//! The report's figures from workers' figures: medians, ratios taken per round, CPU with a
//! proxy's share, and failures.

use serde_json::{Value, json};

use crate::cli::Options;
use crate::report::Results;
use crate::variant::Variant;

/// A worker's figures: `rps` requests per second over 1,000 requests taking `cpu_s` of CPU.
fn figures(rps: f64, p99_us: f64, cpu_s: f64) -> Value {
    json!({
        "requests": 1000,
        "requests_per_s": rps,
        "p50_us": p99_us / 2.0,
        "p99_us": p99_us,
        "p999_us": p99_us * 2.0,
        "cpu_s": cpu_s,
        "peak_rss_kib": 10240,
        "errors": 0,
        "warmup_errors": 0,
        "cut_by_deadline": false,
        "first_error": null,
        "proxy": null,
    })
}

fn options(line: &str) -> Options {
    let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    Options::parse(&args).unwrap()
}

fn row<'a>(doc: &'a Value, variant: &str) -> &'a Value {
    doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["variant"] == variant)
        .unwrap_or_else(|| panic!("no row for {variant}"))
}

fn close(v: &Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

#[test]
fn medians_over_rounds_and_ratios_taken_round_by_round() {
    let o = options("--variants mesh-default --concurrency 16 --rounds 3");
    let mut results = Results::new(&o);
    let mesh = Variant::MeshDefault;
    // Round by round, mesh-default has half of bare's throughput, whatever the machine did.
    for (bare, mesh_rps) in [(1000.0, 500.0), (4000.0, 2000.0), (2000.0, 1000.0)] {
        results.add(&Variant::Bare, 16, Ok(figures(bare, 100.0, 1.0)));
        results.add(&mesh, 16, Ok(figures(mesh_rps, 150.0, 1.25)));
    }
    let doc = results.json(&o);
    let m = row(&doc, "mesh-default");
    assert!(close(&m["median"]["requests_per_s"], 1000.0), "{m}");
    assert!(close(&m["ratio_to_bare"]["requests_per_s"], 0.5), "{m}");
    assert!(close(&m["ratio_to_bare"]["p99_us"], 1.5), "{m}");
    // 1.25 s of CPU over 1,000 requests is 125 s per 100,000.
    assert!(close(&m["median"]["cpu_s_per_100k"], 125.0), "{m}");
    assert!(close(&m["ratio_to_bare"]["cpu_s_per_100k"], 1.25), "{m}");
    assert!(close(&m["median"]["peak_rss_mib"], 10.0), "{m}");
    assert_eq!(m["rounds"].as_array().unwrap().len(), 3);
    assert!(
        m["ratio_to_bare_tls"].is_null(),
        "only mesh-full is compared with bare-tls"
    );
    let b = row(&doc, "bare");
    assert!(close(&b["median"]["requests_per_s"], 2000.0), "{b}");
    assert!(close(&b["ratio_to_bare"]["requests_per_s"], 1.0), "{b}");

    let table = results.table(&o);
    assert!(table.contains("median of 3 rounds"), "{table}");
    assert!(table.contains("1000 (0.50)"), "{table}");
    assert!(table.contains("125.00 (1.25)"), "{table}");
}

#[test]
fn an_even_number_of_rounds_takes_the_middle_twos_mean() {
    let o = options("--variants bare --concurrency 1 --rounds 2");
    let mut results = Results::new(&o);
    results.add(&Variant::Bare, 1, Ok(figures(1000.0, 100.0, 1.0)));
    results.add(&Variant::Bare, 1, Ok(figures(3000.0, 300.0, 1.0)));
    let doc = results.json(&o);
    let b = row(&doc, "bare");
    assert!(close(&b["median"]["requests_per_s"], 2000.0), "{b}");
    assert!(close(&b["median"]["p99_us"], 200.0), "{b}");
}

#[test]
fn mesh_full_is_also_compared_with_bare_tls_of_the_same_round() {
    let o = options("--variants bare-tls,mesh-full --concurrency 16 --rounds 1");
    let mut results = Results::new(&o);
    results.add(&Variant::Bare, 16, Ok(figures(4000.0, 100.0, 1.0)));
    results.add(&Variant::BareTls, 16, Ok(figures(3000.0, 120.0, 1.2)));
    results.add(&Variant::MeshFull, 16, Ok(figures(1500.0, 240.0, 2.4)));
    let doc = results.json(&o);
    let full = row(&doc, "mesh-full");
    assert!(
        close(&full["ratio_to_bare"]["requests_per_s"], 0.375),
        "{full}"
    );
    assert!(
        close(&full["ratio_to_bare_tls"]["requests_per_s"], 0.5),
        "{full}"
    );
    assert!(
        close(&full["ratio_to_bare_tls"]["cpu_s_per_100k"], 2.0),
        "{full}"
    );
    let table = results.table(&o);
    assert!(table.contains("vs bare-tls"), "{table}");
    assert!(table.contains("(0.50)"), "{table}");
}

#[test]
fn a_proxys_cpu_and_memory_count_with_its_via_rows() {
    let o = options(
        "--variants via=nginx@127.0.170.2:18081 --via-pid nginx=7 --concurrency 16 --rounds 1",
    );
    let mut results = Results::new(&o);
    let via = o.variants[1].clone();
    results.add(&Variant::Bare, 16, Ok(figures(4000.0, 100.0, 1.0)));
    let mut through = figures(2000.0, 200.0, 1.0);
    through["proxy"] = json!({"cpu_s": 0.5, "rss_kib": 5120});
    results.add(&via, 16, Ok(through));
    let doc = results.json(&o);
    let v = row(&doc, "via=nginx");
    assert!(close(&v["median"]["cpu_s_per_100k"], 150.0), "{v}");
    assert!(close(&v["median"]["peak_rss_mib"], 15.0), "{v}");
    let table = results.table(&o);
    assert!(
        table.contains("via rows of nginx: CPU and RSS include the proxy's process tree (pid 7)"),
        "{table}"
    );
}

#[test]
fn failed_rounds_and_errors_are_counted_and_named() {
    let o = options("--variants mesh-default --concurrency 16 --rounds 2");
    let mut results = Results::new(&o);
    results.add(&Variant::Bare, 16, Ok(figures(4000.0, 100.0, 1.0)));
    results.add(&Variant::Bare, 16, Ok(figures(4000.0, 100.0, 1.0)));
    let mut with_errors = figures(2000.0, 200.0, 1.0);
    with_errors["errors"] = json!(3);
    with_errors["warmup_errors"] = json!(1);
    with_errors["first_error"] = json!("connection refused");
    results.add(&Variant::MeshDefault, 16, Ok(with_errors));
    results.add(
        &Variant::MeshDefault,
        16,
        Err("worker exited with 101".to_owned()),
    );
    let doc = results.json(&o);
    let m = row(&doc, "mesh-default");
    assert_eq!(m["errors"], 4);
    assert_eq!(m["failed_rounds"], 1);
    assert_eq!(m["rounds"][1]["failed"], "worker exited with 101");
    // The median is over the round that gave figures; the ratio pairs it with its own bare.
    assert!(close(&m["median"]["requests_per_s"], 2000.0), "{m}");
    assert!(close(&m["ratio_to_bare"]["requests_per_s"], 0.5), "{m}");
    let table = results.table(&o);
    assert!(
        table.contains("4 in 1/2 rounds, 1 round(s) FAILED"),
        "{table}"
    );
    assert!(
        table.contains("problem: mesh-default at 16: first error: connection refused"),
        "{table}"
    );
}
