//! CPU time and memory of this process (getrusage) and of a proxy's process tree (/proc).

use std::collections::HashMap;

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeVal;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// This process's CPU seconds (user + system, all threads) and peak RSS in KiB.
pub(crate) fn own() -> (f64, u64) {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => (
            seconds(u.user_time()) + seconds(u.system_time()),
            u64::try_from(u.max_rss()).unwrap_or(0),
        ),
        Err(_) => (0.0, 0),
    }
}

fn seconds(t: TimeVal) -> f64 {
    t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6
}

/// The CPU seconds (user + system) and the resident KiB of `pid` and its descendants (a
/// proxy's workers), or `None` when `pid` is gone.
pub(crate) fn process_tree(pid: u32) -> Option<(f64, u64)> {
    let root = stat(pid)?;
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(s) = stat(p) {
                children.entry(s.ppid).or_default().push(p);
            }
        }
    }
    let (mut cpu, mut rss) = (root.cpu, resident_kib(pid));
    let mut queue = children.remove(&pid).unwrap_or_default();
    while let Some(p) = queue.pop() {
        if let Some(s) = stat(p) {
            cpu += s.cpu;
            rss += resident_kib(p);
        }
        queue.extend(children.remove(&p).unwrap_or_default());
    }
    Some((cpu, rss))
}

struct Stat {
    ppid: u32,
    cpu: f64,
}

/// utime + stime and the parent of `pid`, from `/proc/<pid>/stat` (fields after the
/// command, which may hold spaces and parentheses).
fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Stat {
        ppid,
        cpu: (utime + stime) / TICKS_PER_SECOND,
    })
}

/// VmRSS of `pid` in KiB (0 when unknown).
fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
