//! A fixed limit on the requests in flight, with RAII permits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// At most `max` permits out at once. Lock-free; a permit is returned when it is dropped.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    max: usize,
    in_flight: AtomicUsize,
}

impl ConcurrencyLimit {
    /// A limit of `max` requests in flight; 0 rejects every request.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// The configured limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The permits out now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A permit borrowing this limit, or `None` (reject, HTTP 503) when `max` are out.
    // Built lazily: a permit built and dropped on rejection would give back a slot.
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        self.take().then(|| Permit { limit: self })
    }

    /// A permit that owns a handle on the limit, for a response future that outlives the
    /// borrow; `None` when `max` are out.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Option<OwnedPermit> {
        self.take().then(|| OwnedPermit {
            limit: Arc::clone(self),
        })
    }

    /// Counts one more in flight unless `max` are; a compare-and-swap, so never above `max`.
    fn take(&self) -> bool {
        self.in_flight
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// One request in flight under a [`ConcurrencyLimit`]; dropping it frees the slot.
#[derive(Debug)]
#[must_use = "the slot is freed as soon as the permit is dropped"]
pub struct Permit<'a> {
    limit: &'a ConcurrencyLimit,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limit.give_back();
    }
}

/// Like [`Permit`], holding an `Arc` of the limit instead of a borrow.
#[derive(Debug)]
#[must_use = "the slot is freed as soon as the permit is dropped"]
pub struct OwnedPermit {
    limit: Arc<ConcurrencyLimit>,
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.limit.give_back();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<ConcurrencyLimit>();
        check::<Permit<'static>>();
        check::<OwnedPermit>();
    }

    #[test]
    fn limits_and_releases() {
        let limit = ConcurrencyLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let b = limit.try_acquire().unwrap();
        assert_eq!(limit.in_flight(), 2);
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert_eq!(limit.in_flight(), 1);
        let c = limit.try_acquire().unwrap();
        drop((b, c));
        assert_eq!(limit.in_flight(), 0);
        assert_eq!(limit.max(), 2);
    }

    #[test]
    fn zero_rejects_everything() {
        let limit = ConcurrencyLimit::new(0);
        assert!(limit.try_acquire().is_none());
        assert_eq!(limit.in_flight(), 0);
    }

    #[test]
    fn owned_permits_share_the_count() {
        let limit = Arc::new(ConcurrencyLimit::new(1));
        let owned = limit.try_acquire_owned().unwrap();
        assert!(limit.try_acquire().is_none());
        let moved = std::thread::spawn(move || drop(owned));
        moved.join().unwrap();
        assert_eq!(limit.in_flight(), 0);
        assert!(limit.try_acquire_owned().is_some());
    }

    #[test]
    fn never_above_max_under_concurrency() {
        let limit = ConcurrencyLimit::new(3);
        let holding = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let granted = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        if let Some(permit) = limit.try_acquire() {
                            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            granted.fetch_add(1, Ordering::Relaxed);
                            holding.fetch_sub(1, Ordering::SeqCst);
                            drop(permit);
                        }
                    }
                });
            }
        });
        assert!(peak.into_inner() <= 3);
        assert!(granted.into_inner() > 0);
        assert_eq!(limit.in_flight(), 0);
    }
}
