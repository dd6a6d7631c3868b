//! Command-line options of the harness and of its worker processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::variant::Variant;

/// The harness's help text.
pub(crate) const USAGE: &str = "\
cargo bench --bench load -- [options]

  --variants LIST      comma-separated: bare, bare-tls, mesh-default, mesh-full, via=ADDR,
                       via=LABEL@ADDR (default bare,bare-tls,mesh-default,mesh-full; bare is
                       always added, as the ratios' reference; mesh-full is also compared
                       with bare-tls when both run)
  --concurrency LIST   callers in flight, comma-separated (default 1,16,64)
  --requests N         measured requests per variant, concurrency and round (default 10000)
  --warmup N           requests sent before measuring, in the same process (default 1000)
  --rounds N           rounds; variants alternate within each, medians are reported (default 5)
  --deadline SECS      a round's measured phase stops after this long; the worker process is
                       killed SECS + 30 after it starts (default 60)
  --threads N          the worker's tokio worker threads; 0: a current-thread runtime (default 2)
  --upstream ADDR      where the bare server listens, for proxies to forward to
                       (default 127.0.170.1:18080)
  --trace-sampling R   the share of new traces mesh-full samples, 0 to 1 (default 1: every
                       span recorded and exported; Istio's default would be 0.01)
  --via-pid [LABEL=]PID  a proxy's process: its CPU time (and its children's) over the measured
                       phase is added to the via rounds' CPU, its RSS to theirs; LABEL picks the
                       via variant, none applies to every via variant (repeatable)
  --json PATH          also write the results as JSON to PATH
  --format table|json  what stdout shows (default table)

Worker (run by the harness, and by benches/callgrind.sh):
  --worker --variant SPEC --concurrency N --requests N --warmup N --deadline SECS
  --threads N --upstream ADDR [--trace-sampling R] [--proxy-pid PID]
  prints one JSON line of figures.";

/// What stdout shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// The table.
    Table,
    /// The JSON document.
    Json,
}

/// The harness's options.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Variants in the order they run within a round; `bare` first.
    pub(crate) variants: Vec<Variant>,
    /// Callers in flight.
    pub(crate) concurrency: Vec<usize>,
    /// Measured requests per round.
    pub(crate) requests: usize,
    /// Warm-up requests per round.
    pub(crate) warmup: usize,
    /// Rounds.
    pub(crate) rounds: usize,
    /// A round's measured phase is cut after this.
    pub(crate) deadline: Duration,
    /// The worker's tokio worker threads (0: current thread).
    pub(crate) threads: usize,
    /// The bare server's address.
    pub(crate) upstream: SocketAddr,
    /// The share of new traces mesh-full samples (1: all).
    pub(crate) trace_sampling: f64,
    /// Proxy processes: (via label or none for all, pid).
    pub(crate) via_pids: Vec<(Option<String>, u32)>,
    /// Where to write JSON.
    pub(crate) json: Option<PathBuf>,
    /// What stdout shows.
    pub(crate) format: Format,
}

/// The default address of the bare server (127.0.170.x is the harness's range).
pub(crate) const DEFAULT_UPSTREAM: &str = "127.0.170.1:18080";

impl Options {
    /// Reads the harness's arguments (cargo's own `--bench` is ignored).
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Options {
            variants: vec![
                Variant::Bare,
                Variant::BareTls,
                Variant::MeshDefault,
                Variant::MeshFull,
            ],
            concurrency: vec![1, 16, 64],
            requests: 10_000,
            warmup: 1_000,
            rounds: 5,
            deadline: Duration::from_secs(60),
            threads: 2,
            upstream: parse_value("--upstream", DEFAULT_UPSTREAM)?,
            trace_sampling: 1.0,
            via_pids: Vec::new(),
            json: None,
            format: Format::Table,
        };
        let mut it = Args::new(args);
        while let Some(flag) = it.next_flag()? {
            match flag.as_str() {
                "--bench" => {}
                "--variants" => {
                    let mut variants = vec![Variant::Bare];
                    for spec in list(&it.value(&flag)?) {
                        let v = Variant::parse(&spec)?;
                        if !variants.contains(&v) {
                            variants.push(v);
                        }
                    }
                    o.variants = variants;
                }
                "--concurrency" => {
                    o.concurrency = list(&it.value(&flag)?)
                        .iter()
                        .map(|c| positive(&flag, c))
                        .collect::<Result<_, _>>()?;
                }
                "--requests" => o.requests = positive(&flag, &it.value(&flag)?)?,
                "--warmup" => o.warmup = parse_value(&flag, &it.value(&flag)?)?,
                "--rounds" => o.rounds = positive(&flag, &it.value(&flag)?)?,
                "--deadline" => o.deadline = seconds(&flag, &it.value(&flag)?)?,
                "--threads" => o.threads = parse_value(&flag, &it.value(&flag)?)?,
                "--upstream" => o.upstream = parse_value(&flag, &it.value(&flag)?)?,
                "--trace-sampling" => o.trace_sampling = ratio(&flag, &it.value(&flag)?)?,
                "--via-pid" => {
                    let v = it.value(&flag)?;
                    let (label, pid) = match v.split_once('=') {
                        Some((label, pid)) => (Some(label.to_owned()), pid.to_owned()),
                        None => (None, v),
                    };
                    o.via_pids.push((label, parse_value(&flag, &pid)?));
                }
                "--json" => o.json = Some(PathBuf::from(it.value(&flag)?)),
                "--format" => {
                    o.format = match it.value(&flag)?.as_str() {
                        "table" => Format::Table,
                        "json" => Format::Json,
                        other => {
                            return Err(format!("--format: `{other}`: expected table or json"));
                        }
                    }
                }
                other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
            }
        }
        if o.concurrency.is_empty() {
            return Err("--concurrency: empty list".to_owned());
        }
        for (label, _) in &o.via_pids {
            if let Some(label) = label
                && !o.variants.iter().any(|v| v.via_label() == Some(label))
            {
                return Err(format!("--via-pid: no variant via={label}@ADDR"));
            }
        }
        Ok(o)
    }

    /// The proxy process measured with `variant`, if any.
    pub(crate) fn proxy_pid(&self, variant: &Variant) -> Option<u32> {
        let label = variant.via_label()?;
        self.via_pids
            .iter()
            .find(|(l, _)| l.as_deref() == Some(label))
            .or_else(|| self.via_pids.iter().find(|(l, _)| l.is_none()))
            .map(|(_, pid)| *pid)
    }
}

/// A worker process's options: one variant, one concurrency, one round.
#[derive(Clone, Debug)]
pub(crate) struct WorkerOptions {
    /// What to measure.
    pub(crate) variant: Variant,
    /// Callers in flight.
    pub(crate) concurrency: usize,
    /// Measured requests.
    pub(crate) requests: usize,
    /// Warm-up requests.
    pub(crate) warmup: usize,
    /// The measured phase is cut after this.
    pub(crate) deadline: Duration,
    /// Tokio worker threads (0: current thread).
    pub(crate) threads: usize,
    /// The bare server's address.
    pub(crate) upstream: SocketAddr,
    /// The share of new traces mesh-full samples (1: all).
    pub(crate) trace_sampling: f64,
    /// A proxy whose CPU time and RSS are read around the measured phase.
    pub(crate) proxy_pid: Option<u32>,
}

impl WorkerOptions {
    /// Reads a worker's arguments.
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = WorkerOptions {
            variant: Variant::Bare,
            concurrency: 1,
            requests: 1_000,
            warmup: 100,
            deadline: Duration::from_secs(60),
            threads: 2,
            upstream: parse_value("--upstream", DEFAULT_UPSTREAM)?,
            trace_sampling: 1.0,
            proxy_pid: None,
        };
        let mut it = Args::new(args);
        while let Some(flag) = it.next_flag()? {
            match flag.as_str() {
                "--worker" | "--bench" => {}
                "--variant" => o.variant = Variant::parse(&it.value(&flag)?)?,
                "--concurrency" => o.concurrency = positive(&flag, &it.value(&flag)?)?,
                "--requests" => o.requests = positive(&flag, &it.value(&flag)?)?,
                "--warmup" => o.warmup = parse_value(&flag, &it.value(&flag)?)?,
                "--deadline" => o.deadline = seconds(&flag, &it.value(&flag)?)?,
                "--threads" => o.threads = parse_value(&flag, &it.value(&flag)?)?,
                "--upstream" => o.upstream = parse_value(&flag, &it.value(&flag)?)?,
                "--trace-sampling" => o.trace_sampling = ratio(&flag, &it.value(&flag)?)?,
                "--proxy-pid" => o.proxy_pid = Some(parse_value(&flag, &it.value(&flag)?)?),
                other => return Err(format!("worker: unknown option `{other}`")),
            }
        }
        Ok(o)
    }

    /// The arguments that make a worker of these options.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--worker".to_owned(),
            "--variant".to_owned(),
            self.variant.spec(),
            "--concurrency".to_owned(),
            self.concurrency.to_string(),
            "--requests".to_owned(),
            self.requests.to_string(),
            "--warmup".to_owned(),
            self.warmup.to_string(),
            "--deadline".to_owned(),
            self.deadline.as_secs_f64().to_string(),
            "--threads".to_owned(),
            self.threads.to_string(),
            "--upstream".to_owned(),
            self.upstream.to_string(),
            "--trace-sampling".to_owned(),
            self.trace_sampling.to_string(),
        ];
        if let Some(pid) = self.proxy_pid {
            args.extend(["--proxy-pid".to_owned(), pid.to_string()]);
        }
        args
    }
}

/// Flags and their values, as `--flag value` or `--flag=value`.
struct Args<'a> {
    args: std::slice::Iter<'a, String>,
    pending: Option<String>,
}

impl<'a> Args<'a> {
    fn new(args: &'a [String]) -> Self {
        Self {
            args: args.iter(),
            pending: None,
        }
    }

    fn next_flag(&mut self) -> Result<Option<String>, String> {
        let Some(arg) = self.args.next() else {
            return Ok(None);
        };
        if !arg.starts_with("--") && arg != "-h" {
            return Err(format!("unexpected argument `{arg}`"));
        }
        match arg.split_once('=') {
            Some((flag, value)) => {
                self.pending = Some(value.to_owned());
                Ok(Some(flag.to_owned()))
            }
            None => Ok(Some(arg.clone())),
        }
    }

    fn value(&mut self, flag: &str) -> Result<String, String> {
        if let Some(v) = self.pending.take() {
            return Ok(v);
        }
        self.args
            .next()
            .cloned()
            .ok_or_else(|| format!("{flag}: a value is required"))
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_value<T: std::str::FromStr>(flag: &str, s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e| format!("{flag}: bad value `{s}`: {e}"))
}

fn positive(flag: &str, s: &str) -> Result<usize, String> {
    match parse_value::<usize>(flag, s)? {
        0 => Err(format!("{flag}: bad value `{s}`: must be at least 1")),
        n => Ok(n),
    }
}

fn ratio(flag: &str, s: &str) -> Result<f64, String> {
    let r: f64 = parse_value(flag, s)?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!(
            "{flag}: bad value `{s}`: expected a share from 0 to 1"
        ))
    }
}

fn seconds(flag: &str, s: &str) -> Result<Duration, String> {
    let secs: f64 = parse_value(flag, s)?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag}: bad value `{s}`: expected a positive number of seconds"))
}
