//! DNS refresh decisions: TTL clamping with jitter, and what a failed or NXDOMAIN answer does
//! to the last good endpoint set.
//!
//! [`RefreshState`] is fed each lookup's result with the time it arrived (a [`Duration`]
//! since an origin the caller chooses) and answers with a [`Decision`]: what to publish, if
//! anything, and when to look up again. The rules:
//!
//! - An answer with endpoints is published as [`Resolution::Resolved`] and refreshed after its
//!   TTL, clamped to `[min_ttl, max_ttl]` and shortened by a random fraction below `jitter`.
//! - A failure that says nothing about the name (timeout, server failure, I/O, bad answer)
//!   keeps whatever was published last; the next try backs off exponentially from `min_ttl`
//!   to `max_ttl` ([`failure_delay`]).
//! - NXDOMAIN, or an answer with no records (NODATA), for a name that had endpoints applies
//!   the [`NxDomainPolicy`]: `Keep { grace }` keeps the endpoints until `grace` has passed
//!   since the first such answer, `Drop` drops them at once.
//! - Dropping publishes what the latest answer says: [`Resolution::Unresolved`] with the
//!   reason after NXDOMAIN (the name no longer exists), or `Resolved` with an empty set after
//!   an empty answer (the name exists but has no endpoints). The balancer answers 503 for both.
//! - A name that never resolved publishes `Unresolved(reason)` on any failure, so that
//!   waiting requests fail fast instead of hanging in [`Resolution::Pending`].

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, RngExt};

use crate::config::{DiscoveryConfig, NxDomainPolicy};
use crate::endpoint::{EndpointSet, Resolution};

/// The shortest pause between two lookups, whatever the configuration says, so that a
/// zero `min_ttl` with a zero TTL cannot turn the refresh loop into a busy loop.
pub const MIN_REFRESH_DELAY: Duration = Duration::from_millis(100);

/// The pause before refreshing an answer of `ttl`: the TTL clamped to
/// `[min_ttl, max_ttl]`, shortened by a random fraction in `[0, jitter)` so that many clients
/// do not refresh in step.
pub fn refresh_delay<R: Rng + ?Sized>(
    ttl: Duration,
    config: &DiscoveryConfig,
    rng: &mut R,
) -> Duration {
    let (min, max) = bounds(config);
    jittered(ttl.clamp(min, max), config.jitter, rng)
}

/// The pause after `failures` consecutive failed lookups (1 for the first):
/// `min(min_ttl * 2^(failures - 1), max_ttl)`, jittered like [`refresh_delay`].
pub fn failure_delay<R: Rng + ?Sized>(
    failures: u32,
    config: &DiscoveryConfig,
    rng: &mut R,
) -> Duration {
    let (min, max) = bounds(config);
    let exponent = failures.saturating_sub(1).min(31);
    let delay = min.checked_mul(1u32 << exponent).unwrap_or(max).min(max);
    jittered(delay, config.jitter, rng)
}

/// `[min_ttl, max_ttl]`, made consistent whatever the configuration holds.
fn bounds(config: &DiscoveryConfig) -> (Duration, Duration) {
    let min = config.min_ttl;
    (min, config.max_ttl.max(min))
}

/// Shortens `delay` by a random fraction in `[0, jitter)`, never below [`MIN_REFRESH_DELAY`].
fn jittered<R: Rng + ?Sized>(delay: Duration, jitter: f64, rng: &mut R) -> Duration {
    // NaN and out-of-range fractions are clamped: jitter never lengthens nor zeroes a delay.
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 0.99)
    };
    let delay = if jitter > 0.0 {
        let cut: f64 = rng.random_range(0.0..jitter);
        Duration::try_from_secs_f64(delay.as_secs_f64() * (1.0 - cut)).unwrap_or(delay)
    } else {
        delay
    };
    delay.max(MIN_REFRESH_DELAY)
}

/// What one lookup found: endpoints and how long the answer may be cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The endpoints of the answer; an empty set means the name has no records (NODATA).
    pub endpoints: EndpointSet,
    /// The smallest TTL among the answer's records.
    pub ttl: Duration,
}

/// Why a lookup gave no answer, as far as refresh decisions care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupFailure {
    /// The name does not exist (NXDOMAIN) or has no records of the asked type (NODATA).
    NotFound(Arc<str>),
    /// Anything that says nothing about the name: timeout, server failure, I/O, bad answer.
    Failed(Arc<str>),
}

impl LookupFailure {
    /// The reason, naming the name and the error.
    pub fn reason(&self) -> &Arc<str> {
        match self {
            LookupFailure::NotFound(reason) | LookupFailure::Failed(reason) => reason,
        }
    }
}

/// What to do after a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// A new value to publish, or `None` to leave the published value as it is.
    pub publish: Option<Resolution>,
    /// How long to wait before the next lookup.
    pub refresh_in: Duration,
    /// A failed lookup left the last good endpoints in place (worth a warning).
    pub kept_stale: bool,
}

/// The refresh state of one name: what was published, since when it is missing, and how
/// many lookups failed in a row.
#[derive(Clone, Debug)]
pub struct RefreshState {
    config: DiscoveryConfig,
    published: Resolution,
    missing_since: Option<Duration>,
    failures: u32,
}

impl RefreshState {
    /// A state that has published nothing but [`Resolution::Pending`] yet.
    pub fn new(config: DiscoveryConfig) -> Self {
        Self {
            config,
            published: Resolution::Pending,
            missing_since: None,
            failures: 0,
        }
    }

    /// The value last published.
    pub fn published(&self) -> &Resolution {
        &self.published
    }

    /// How many lookups failed (or found nothing) in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Feeds the result of a lookup that finished at `now` (since the caller's origin).
    pub fn on_lookup<R: Rng + ?Sized>(
        &mut self,
        result: Result<Answer, LookupFailure>,
        now: Duration,
        rng: &mut R,
    ) -> Decision {
        match result {
            Ok(answer) if !answer.endpoints.is_empty() => {
                self.failures = 0;
                self.missing_since = None;
                let refresh_in = refresh_delay(answer.ttl, &self.config, rng);
                self.publish(Resolution::Resolved(answer.endpoints), refresh_in)
            }
            Ok(answer) => {
                // NODATA: the name exists but has no endpoints.
                self.on_missing(Resolution::Resolved(answer.endpoints), now, rng)
            }
            Err(LookupFailure::NotFound(reason)) => {
                self.on_missing(Resolution::Unresolved(reason), now, rng)
            }
            Err(LookupFailure::Failed(reason)) => {
                self.failures = self.failures.saturating_add(1);
                let refresh_in = failure_delay(self.failures, &self.config, rng);
                match self.published {
                    // Keep the last answer (with endpoints or empty) on a failure.
                    Resolution::Resolved(ref set) => Decision {
                        publish: None,
                        refresh_in,
                        kept_stale: !set.is_empty(),
                    },
                    Resolution::Pending | Resolution::Unresolved(_) => {
                        self.publish(Resolution::Unresolved(reason), refresh_in)
                    }
                }
            }
        }
    }

    /// The name is gone (NXDOMAIN) or empty (NODATA); `dropped` is what to publish for it.
    fn on_missing<R: Rng + ?Sized>(
        &mut self,
        dropped: Resolution,
        now: Duration,
        rng: &mut R,
    ) -> Decision {
        self.failures = self.failures.saturating_add(1);
        let backoff = failure_delay(self.failures, &self.config, rng);
        let has_endpoints = matches!(&self.published, Resolution::Resolved(set) if !set.is_empty());
        if !has_endpoints {
            self.missing_since = None;
            return self.publish(dropped, backoff);
        }
        match self.config.nxdomain {
            NxDomainPolicy::Drop => {
                self.missing_since = None;
                self.publish(dropped, backoff)
            }
            NxDomainPolicy::Keep { grace } => {
                let since = *self.missing_since.get_or_insert(now);
                let kept_for = now.saturating_sub(since);
                if kept_for >= grace {
                    self.missing_since = None;
                    self.publish(dropped, backoff)
                } else {
                    // Look again no later than the end of the grace period, to drop on time.
                    let remaining = (grace - kept_for).max(MIN_REFRESH_DELAY);
                    Decision {
                        publish: None,
                        refresh_in: backoff.min(remaining),
                        kept_stale: true,
                    }
                }
            }
        }
    }

    /// Publishes `value` unless it is what was published already.
    fn publish(&mut self, value: Resolution, refresh_in: Duration) -> Decision {
        let publish = if value == self.published {
            None
        } else {
            self.published = value.clone();
            Some(value)
        };
        Decision {
            publish,
            refresh_in,
            kept_stale: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::endpoint::Endpoint;

    const S: Duration = Duration::from_secs(1);

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    fn no_jitter() -> DiscoveryConfig {
        DiscoveryConfig {
            jitter: 0.0,
            ..DiscoveryConfig::default()
        }
    }

    fn set(addrs: &[&str]) -> EndpointSet {
        EndpointSet::new(
            addrs
                .iter()
                .map(|a| Endpoint::new(a.parse::<SocketAddr>().unwrap())),
        )
    }

    fn found(addrs: &[&str], ttl: u64) -> Result<Answer, LookupFailure> {
        Ok(Answer {
            endpoints: set(addrs),
            ttl: Duration::from_secs(ttl),
        })
    }

    fn nx() -> Result<Answer, LookupFailure> {
        Err(LookupFailure::NotFound("NXDOMAIN for a.b".into()))
    }

    fn timeout() -> Result<Answer, LookupFailure> {
        Err(LookupFailure::Failed("timeout looking up a.b".into()))
    }

    #[test]
    fn ttl_is_clamped() {
        let c = no_jitter();
        assert_eq!(refresh_delay(Duration::ZERO, &c, &mut rng()), S);
        assert_eq!(refresh_delay(30 * S, &c, &mut rng()), 30 * S);
        assert_eq!(refresh_delay(3600 * S, &c, &mut rng()), 60 * S);
    }

    #[test]
    fn jitter_only_shortens_within_the_fraction() {
        let c = DiscoveryConfig::default();
        let mut r = rng();
        for _ in 0..1000 {
            let d = refresh_delay(30 * S, &c, &mut r);
            assert!(d <= 30 * S && d > 27 * S, "{d:?}");
            let d = refresh_delay(Duration::ZERO, &c, &mut r);
            assert!(d <= S && d > S * 9 / 10, "{d:?}");
        }
    }

    #[test]
    fn odd_configurations_do_not_panic_or_busy_loop() {
        let mut c = DiscoveryConfig {
            min_ttl: Duration::ZERO,
            max_ttl: Duration::ZERO,
            jitter: f64::NAN,
            ..DiscoveryConfig::default()
        };
        assert_eq!(
            refresh_delay(Duration::ZERO, &c, &mut rng()),
            MIN_REFRESH_DELAY
        );
        c.jitter = 5.0;
        c.min_ttl = 10 * S;
        c.max_ttl = S; // inverted: min wins
        let d = refresh_delay(Duration::ZERO, &c, &mut rng());
        assert!(d >= MIN_REFRESH_DELAY && d <= 10 * S);
        c.jitter = -1.0;
        assert_eq!(failure_delay(u32::MAX, &c, &mut rng()), 10 * S);
        let huge = DiscoveryConfig {
            max_ttl: Duration::MAX,
            ..DiscoveryConfig::default()
        };
        let d = refresh_delay(Duration::MAX, &huge, &mut rng());
        assert!(d > Duration::from_secs(1 << 60));
        let d = failure_delay(u32::MAX, &huge, &mut rng());
        assert!(d > Duration::from_secs(1 << 30));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_max_ttl() {
        let c = no_jitter();
        let delays: Vec<_> = (1..=8).map(|n| failure_delay(n, &c, &mut rng())).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60].map(|s| s * S).to_vec());
        assert_eq!(failure_delay(0, &c, &mut rng()), S);
        assert_eq!(failure_delay(u32::MAX, &c, &mut rng()), 60 * S);
        let j = DiscoveryConfig::default();
        let d = failure_delay(3, &j, &mut rng());
        assert!(d <= 4 * S && d > 4 * S * 9 / 10);
    }

    #[test]
    fn first_answer_is_published() {
        let mut st = RefreshState::new(no_jitter());
        assert_eq!(st.published(), &Resolution::Pending);
        let d = st.on_lookup(found(&["10.0.0.1:80"], 5), Duration::ZERO, &mut rng());
        assert_eq!(d.publish, Some(Resolution::Resolved(set(&["10.0.0.1:80"]))));
        assert_eq!(d.refresh_in, 5 * S);
        assert!(!d.kept_stale);
    }

    #[test]
    fn same_answer_publishes_nothing_changed_answer_publishes() {
        let mut st = RefreshState::new(no_jitter());
        st.on_lookup(found(&["10.0.0.1:80"], 5), Duration::ZERO, &mut rng());
        let d = st.on_lookup(found(&["10.0.0.1:80"], 5), 5 * S, &mut rng());
        assert_eq!(d.publish, None);
        let d = st.on_lookup(
            found(&["10.0.0.1:80", "10.0.0.2:80"], 5),
            10 * S,
            &mut rng(),
        );
        assert_eq!(
            d.publish,
            Some(Resolution::Resolved(set(&["10.0.0.1:80", "10.0.0.2:80"])))
        );
    }

    #[test]
    fn failure_keeps_last_set_and_backs_off() {
        let mut st = RefreshState::new(no_jitter());
        st.on_lookup(found(&["10.0.0.1:80"], 5), Duration::ZERO, &mut rng());
        let d1 = st.on_lookup(timeout(), 5 * S, &mut rng());
        assert_eq!(d1.publish, None);
        assert!(d1.kept_stale);
        assert_eq!(d1.refresh_in, S);
        let d2 = st.on_lookup(timeout(), 6 * S, &mut rng());
        assert_eq!(d2.refresh_in, 2 * S);
        assert_eq!(st.consecutive_failures(), 2);
        assert_eq!(st.published(), &Resolution::Resolved(set(&["10.0.0.1:80"])));
        // Recovery resets the back-off.
        let d = st.on_lookup(found(&["10.0.0.1:80"], 5), 8 * S, &mut rng());
        assert_eq!(d.publish, None);
        assert_eq!(d.refresh_in, 5 * S);
        assert_eq!(st.consecutive_failures(), 0);
    }

    #[test]
    fn never_resolved_failure_publishes_unresolved_with_reason() {
        let mut st = RefreshState::new(no_jitter());
        let d = st.on_lookup(timeout(), Duration::ZERO, &mut rng());
        assert_eq!(
            d.publish,
            Some(Resolution::Unresolved("timeout looking up a.b".into()))
        );
        assert!(!d.kept_stale);
        // The same failure again publishes nothing; a different one updates the reason.
        assert_eq!(st.on_lookup(timeout(), S, &mut rng()).publish, None);
        let d = st.on_lookup(nx(), 2 * S, &mut rng());
        assert_eq!(
            d.publish,
            Some(Resolution::Unresolved("NXDOMAIN for a.b".into()))
        );
        assert_eq!(d.refresh_in, 4 * S);
        // And a first answer replaces it.
        let d = st.on_lookup(found(&["10.0.0.1:80"], 5), 3 * S, &mut rng());
        assert_eq!(d.publish, Some(Resolution::Resolved(set(&["10.0.0.1:80"]))));
    }

    #[test]
    fn never_resolved_nxdomain_publishes_unresolved() {
        let mut st = RefreshState::new(no_jitter());
        let d = st.on_lookup(nx(), Duration::ZERO, &mut rng());
        assert_eq!(
            d.publish,
            Some(Resolution::Unresolved("NXDOMAIN for a.b".into()))
        );
        assert_eq!(d.refresh_in, S);
    }

    #[test]
    fn nxdomain_keeps_for_the_grace_then_drops() {
        let c = DiscoveryConfig {
            nxdomain: NxDomainPolicy::Keep { grace: 10 * S },
            ..no_jitter()
        };
        let mut st = RefreshState::new(c);
        st.on_lookup(found(&["10.0.0.1:80"], 5), Duration::ZERO, &mut rng());
        let d = st.on_lookup(nx(), 5 * S, &mut rng());
        assert_eq!(d.publish, None);
        assert!(d.kept_stale);
        assert_eq!(d.refresh_in, S);
        // A timeout in between does not end nor restart the grace.
        let d = st.on_lookup(timeout(), 6 * S, &mut rng());
        assert_eq!(d.publish, None);
        let d = st.on_lookup(nx(), 8 * S, &mut rng());
        assert_eq!(d.publish, None);
        assert_eq!(d.refresh_in, 4 * S);
        let d = st.on_lookup(nx(), 12 * S, &mut rng());
        assert_eq!(d.publish, None);
        // Back-off (8 s) is capped by the 3 s of grace left.
        assert_eq!(d.refresh_in, 3 * S);
        let d = st.on_lookup(nx(), 15 * S, &mut rng());
        assert_eq!(
            d.publish,
            Some(Resolution::Unresolved("NXDOMAIN for a.b".into()))
        );
        assert!(!d.kept_stale);
        // Later NXDOMAINs publish nothing more.
        assert_eq!(st.on_lookup(nx(), 30 * S, &mut rng()).publish, None);
    }

    #[test]
    fn nxdomain_grace_restarts_after_the_name_comes_back() {
        let c = DiscoveryConfig {
            nxdomain: NxDomainPolicy::Keep { grace: 10 * S },
            ..no_jitter()
        };
        let mut st = RefreshState::new(c);
        st.on_lookup(found(&["10.0.0.1:80"], 5), Duration::ZERO, &mut rng());
        st.on_lookup(nx(), 5 * S, &mut rng());
        st.on_lookup(found(&["10.0.0.1:80"], 5), 8 * S, &mut rng());
        // 12 s after the first NXDOMAIN, but only 2 s after the second: kept.
        let d = st.on_lookup(nx(), 17 * S, &mut rng());
        assert_eq!(d.publish, None);
        assert!(d.kept_stale);
    }

    #[test]
    fn zero_grace_drops_at_once() {
        let c = DiscoveryConfig {
            nxdomain: NxDomainPolicy::Keep {
                grace: Duration::ZERO,
            },
            ..no_jitter()
        };
        let mut st = RefreshState::new(c);
        st.on_lookup(found(&["10.0.0.1:80"], 5), Duration::ZERO, &mut rng());
        let d = st.on_lookup(nx(), 5 * S, &mut rng());
        assert_eq!(
            d.publish,
            Some(Resolution::Unresolved("NXDOMAIN for a.b".into()))
        );
    }

    #[test]
    fn drop_policy_drops_at_once() {
        let c = DiscoveryConfig {
            nxdomain: NxDomainPolicy::Drop,
            ..no_jitter()
        };
        let mut st = RefreshState::new(c);
        st.on_lookup(found(&["10.0.0.1:80"], 5), Duration::ZERO, &mut rng());
        let d = st.on_lookup(nx(), 5 * S, &mut rng());
        assert_eq!(
            d.publish,
            Some(Resolution::Unresolved("NXDOMAIN for a.b".into()))
        );
        assert!(!d.kept_stale);
        assert_eq!(d.refresh_in, S);
    }

    #[test]
    fn empty_answer_is_missing_and_drops_to_an_empty_set() {
        let c = DiscoveryConfig {
            nxdomain: NxDomainPolicy::Keep { grace: 10 * S },
            ..no_jitter()
        };
        let mut st = RefreshState::new(c);
        st.on_lookup(found(&["10.0.0.1:80"], 5), Duration::ZERO, &mut rng());
        let d = st.on_lookup(found(&[], 5), 5 * S, &mut rng());
        assert_eq!(d.publish, None);
        assert!(d.kept_stale);
        let d = st.on_lookup(found(&[], 5), 15 * S, &mut rng());
        assert_eq!(
            d.publish,
            Some(Resolution::Resolved(EndpointSet::default()))
        );
        // A timeout keeps the empty set, without a stale warning.
        let d = st.on_lookup(timeout(), 16 * S, &mut rng());
        assert_eq!(d.publish, None);
        assert!(!d.kept_stale);
    }

    #[test]
    fn never_resolved_empty_answer_publishes_an_empty_set() {
        let mut st = RefreshState::new(no_jitter());
        let d = st.on_lookup(found(&[], 5), Duration::ZERO, &mut rng());
        assert_eq!(
            d.publish,
            Some(Resolution::Resolved(EndpointSet::default()))
        );
    }

    #[test]
    fn after_a_drop_new_endpoints_publish_again() {
        let c = DiscoveryConfig {
            nxdomain: NxDomainPolicy::Drop,
            ..no_jitter()
        };
        let mut st = RefreshState::new(c);
        st.on_lookup(found(&["10.0.0.1:80"], 5), Duration::ZERO, &mut rng());
        st.on_lookup(nx(), 5 * S, &mut rng());
        let d = st.on_lookup(found(&["10.0.0.2:80"], 5), 6 * S, &mut rng());
        assert_eq!(d.publish, Some(Resolution::Resolved(set(&["10.0.0.2:80"]))));
        assert_eq!(st.consecutive_failures(), 0);
    }

    #[test]
    fn failure_reason_accessor() {
        let f = LookupFailure::Failed("x".into());
        assert_eq!(&**f.reason(), "x");
        let f = LookupFailure::NotFound("y".into());
        assert_eq!(&**f.reason(), "y");
    }
}
