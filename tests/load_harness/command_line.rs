//! Options, variants and worker arguments: what is read, and the error naming each bad value.

use std::time::Duration;

use crate::cli::{Format, Options, WorkerOptions};
use crate::variant::Variant;

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn parse(s: &str) -> Result<Options, String> {
    Options::parse(&args(s))
}

#[test]
fn defaults_measure_every_variant_at_three_concurrencies() {
    let o = parse("--bench").unwrap();
    assert_eq!(
        o.variants,
        [
            Variant::Bare,
            Variant::BareTls,
            Variant::MeshDefault,
            Variant::MeshFull
        ]
    );
    assert_eq!(o.concurrency, [1, 16, 64]);
    assert_eq!((o.requests, o.warmup, o.rounds), (10_000, 1_000, 5));
    assert_eq!(o.deadline, Duration::from_secs(60));
    assert_eq!(o.threads, 2);
    assert_eq!(o.upstream.to_string(), "127.0.170.1:18080");
    assert_eq!(
        o.trace_sampling, 1.0,
        "mesh-full records every span unless told"
    );
    assert_eq!(o.format, Format::Table);
    assert!(o.json.is_none() && o.via_pids.is_empty());
}

#[test]
fn bare_always_runs_first_and_variants_are_not_repeated() {
    let o = parse("--variants mesh-full,bare-tls,mesh-full,via=nginx@127.0.170.2:18081").unwrap();
    assert_eq!(o.variants.len(), 4);
    assert_eq!(o.variants[0], Variant::Bare);
    assert_eq!(o.variants[1], Variant::MeshFull);
    assert_eq!(o.variants[3].via_label(), Some("nginx"));
}

#[test]
fn flags_take_their_value_after_a_space_or_an_equals_sign() {
    let o = parse(
        "--concurrency=4,32 --requests 500 --warmup=0 --rounds 3 --deadline 2.5 --threads 0 \
         --upstream 127.0.190.1:9000 --trace-sampling 0.01 --json out.json --format=json",
    )
    .unwrap();
    assert_eq!(o.concurrency, [4, 32]);
    assert_eq!((o.requests, o.warmup, o.rounds, o.threads), (500, 0, 3, 0));
    assert_eq!(o.deadline, Duration::from_millis(2500));
    assert_eq!(o.upstream.to_string(), "127.0.190.1:9000");
    assert_eq!(o.trace_sampling, 0.01);
    assert_eq!(o.json.as_deref(), Some(std::path::Path::new("out.json")));
    assert_eq!(o.format, Format::Json);
}

#[test]
fn each_bad_value_is_refused_naming_the_flag_and_the_value() {
    for (line, expected) in [
        (
            "--concurrency 0",
            "--concurrency: bad value `0`: must be at least 1",
        ),
        ("--concurrency 1,x", "--concurrency: bad value `x`"),
        ("--concurrency ,", "--concurrency: empty list"),
        ("--requests -3", "--requests: bad value `-3`"),
        ("--rounds 0", "--rounds: bad value `0`"),
        (
            "--deadline 0",
            "--deadline: bad value `0`: expected a positive",
        ),
        ("--deadline soon", "--deadline: bad value `soon`"),
        ("--upstream localhost", "--upstream: bad value `localhost`"),
        ("--format xml", "--format: `xml`: expected table or json"),
        (
            "--trace-sampling 2",
            "--trace-sampling: bad value `2`: expected a share from 0 to 1",
        ),
        (
            "--trace-sampling -0.5",
            "--trace-sampling: bad value `-0.5`",
        ),
        ("--trace-sampling NaN", "--trace-sampling: bad value `NaN`"),
        ("--trace-sampling all", "--trace-sampling: bad value `all`"),
        ("--requests", "--requests: a value is required"),
        ("--colour", "unknown option `--colour`"),
        ("stray", "unexpected argument `stray`"),
        ("--variants sidecar", "unknown variant `sidecar`"),
        ("--variants via=@127.0.0.1:1", "empty label before `@`"),
        ("--variants via=nginx@nowhere", "bad address `nowhere`"),
        ("--via-pid nginx=12", "--via-pid: no variant via=nginx@ADDR"),
        ("--via-pid twelve", "--via-pid: bad value `twelve`"),
    ] {
        let err = parse(line)
            .err()
            .unwrap_or_else(|| panic!("`{line}` was accepted"));
        assert!(err.contains(expected), "`{line}`: {err}");
    }
}

#[test]
fn a_proxy_pid_goes_to_its_labelled_variant_before_an_unlabelled_one() {
    let o = parse(
        "--variants via=nginx@127.0.170.2:18081,via=haproxy@127.0.170.3:18082,via=127.0.170.4:1 \
         --via-pid nginx=10 --via-pid 30",
    )
    .unwrap();
    let pid = |label: &str| {
        let v = o.variants.iter().find(|v| v.via_label() == Some(label));
        o.proxy_pid(v.unwrap())
    };
    assert_eq!(pid("nginx"), Some(10));
    assert_eq!(pid("haproxy"), Some(30));
    assert_eq!(pid("127.0.170.4:1"), Some(30));
    assert_eq!(o.proxy_pid(&Variant::Bare), None);
}

#[test]
fn variants_read_back_their_own_spec() {
    for spec in [
        "bare",
        "bare-tls",
        "mesh-default",
        "mesh-full",
        "via=nginx@127.0.170.2:18081",
        "via=[::1]:8080",
    ] {
        let v = Variant::parse(spec).unwrap();
        assert_eq!(Variant::parse(&v.spec()).unwrap(), v, "{spec}");
    }
    let unlabelled = Variant::parse("via=127.0.170.4:1").unwrap();
    assert_eq!(unlabelled.via_label(), Some("127.0.170.4:1"));
    assert_eq!(unlabelled.to_string(), "via=127.0.170.4:1");
}

#[test]
fn a_worker_reads_back_the_arguments_it_is_given() {
    let o = WorkerOptions {
        variant: Variant::parse("via=haproxy@127.0.170.3:18082").unwrap(),
        concurrency: 16,
        requests: 2_000,
        warmup: 200,
        deadline: Duration::from_millis(1500),
        threads: 0,
        upstream: "127.0.190.1:18080".parse().unwrap(),
        trace_sampling: 0.25,
        proxy_pid: Some(42),
    };
    let back = WorkerOptions::parse(&o.to_args()).unwrap();
    assert_eq!(back.variant, o.variant);
    assert_eq!(
        (back.concurrency, back.requests, back.warmup, back.threads),
        (16, 2_000, 200, 0)
    );
    assert_eq!(back.deadline, o.deadline);
    assert_eq!(back.upstream, o.upstream);
    assert_eq!(back.trace_sampling, 0.25);
    assert_eq!(back.proxy_pid, Some(42));

    let err = WorkerOptions::parse(&args("--worker --rounds 3")).unwrap_err();
    assert!(err.contains("worker: unknown option `--rounds`"), "{err}");
}
