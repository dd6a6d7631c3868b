//! A counting metrics recorder for the crate's unit tests: counters by `name{k=v,...}`
//! (labels sorted), gauges and histograms ignored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

/// Counters by `name{k=v,...}`.
#[derive(Default)]
pub(crate) struct Counters {
    counts: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

struct Count(Arc<AtomicU64>);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl Counters {
    /// The recorder installed as this test binary's global one (for metrics recorded in
    /// spawned tasks); tests tell their counters apart by label values.
    pub(crate) fn global() -> &'static Counters {
        static GLOBAL: OnceLock<&'static Counters> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let counters: &'static Counters = Box::leak(Box::default());
            let _ = metrics::set_global_recorder(counters);
            counters
        })
    }

    /// The counter `key`, written `name{k=v,...}` with the labels sorted; 0 when unseen.
    pub(crate) fn get(&self, key: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(key).map_or(0, |c| c.load(Ordering::SeqCst))
    }
}

fn key_text(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl metrics::Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key_text(key)).or_default().clone();
        Counter::from_arc(Arc::new(Count(count)))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}
