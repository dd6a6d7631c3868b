//! Deadline propagation: how long a callee may work on a request, carried between services.
//!
//! A request arrives with the time its caller is still willing to wait; every outbound call
//! made while handling it gets at most what is left. Two headers carry the remaining time:
//!
//! - gRPC requests (`content-type: application/grpc...`) use the standard `grpc-timeout`
//!   header, `<1-8 digits><unit>` with unit `H`, `M`, `S`, `m`, `u` or `n`, which every gRPC
//!   library reads and writes.
//! - Other requests use [`DEADLINE_HEADER`], `x-mesh-timeout-ms`, the remaining time in whole
//!   milliseconds as a plain decimal integer (`x-mesh-timeout-ms: 1500`). Integer milliseconds
//!   are what Envoy uses for the same purpose (`x-envoy-expected-rq-timeout-ms`), need no unit
//!   parsing, and millisecond resolution is finer than any network round trip.
//!
//! Written values are rounded *down*, so a callee never gets more time than its caller has;
//! the loss is less than one unit (one millisecond, or one unit of the finest `grpc-timeout`
//! unit that fits in 8 digits). No allowance for network latency is subtracted: the callee
//! may finish its work just as the caller gives up, but subtracting a guess would make short
//! deadlines expire early on fast local networks. A caller that wants a margin can make
//! the deadline shorter before writing it.
//!
//! Time is a [`Duration`] since an origin the caller chooses; nothing here reads a clock.
//!
//! ```
//! use std::time::Duration;
//! use mesh_core::deadline::{Deadline, format_grpc_timeout, parse_grpc_timeout};
//!
//! assert_eq!(parse_grpc_timeout("1500m"), Ok(Duration::from_millis(1500)));
//! assert_eq!(format_grpc_timeout(Duration::from_millis(1500)), "1500000u");
//! let now = Duration::from_secs(10);
//! let deadline = Deadline::after(now, Duration::from_secs(2));
//! assert_eq!(deadline.bound(Some(Duration::from_secs(5)), now), Duration::from_secs(2));
//! ```

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

/// The gRPC timeout header, `grpc-timeout`.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The header carrying the remaining time of non-gRPC requests, in whole milliseconds.
pub const DEADLINE_HEADER: HeaderName = HeaderName::from_static("x-mesh-timeout-ms");

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The largest value of a `grpc-timeout`: 8 digits.
const GRPC_MAX_VALUE: u64 = 99_999_999;

/// `grpc-timeout` units from finest to coarsest, with their length in nanoseconds.
const GRPC_UNITS: [(u64, u8); 6] = [
    (1, b'n'),
    (1_000, b'u'),
    (1_000_000, b'm'),
    (1_000_000_000, b'S'),
    (60_000_000_000, b'M'),
    (3_600_000_000_000, b'H'),
];

/// Why a `grpc-timeout` value could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrpcTimeoutError {
    /// The value is empty.
    #[error("empty grpc-timeout")]
    Empty,
    /// The value ends with a digit: the unit is missing.
    #[error("missing unit (expected one of H, M, S, m, u, n)")]
    MissingUnit,
    /// The last character is not a unit.
    #[error("unknown unit {0:?} (expected one of H, M, S, m, u, n)")]
    UnknownUnit(char),
    /// Something other than 1 to 8 ASCII digits comes before the unit (a sign, a point,
    /// a space, nothing at all).
    #[error("expected 1 to 8 digits before the unit")]
    InvalidValue,
    /// More than 8 digits.
    #[error("more than 8 digits")]
    TooManyDigits,
}

/// Why the deadline of a request could not be read from its headers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeadlineError {
    /// A `grpc-timeout` header of a gRPC request is malformed.
    #[error("bad grpc-timeout {value:?}: {source}")]
    GrpcTimeout {
        /// The header value as received (lossily decoded).
        value: String,
        /// What is wrong with it.
        source: GrpcTimeoutError,
    },
    /// An `x-mesh-timeout-ms` header is not a decimal integer of milliseconds.
    #[error("bad x-mesh-timeout-ms {value:?}: expected whole milliseconds as ASCII digits")]
    TimeoutMs {
        /// The header value as received (lossily decoded).
        value: String,
    },
}

/// Reads a `grpc-timeout` value: 1 to 8 ASCII digits and a unit (`H` hours, `M` minutes,
/// `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds). A value of 0 is
/// accepted and means the deadline has passed.
pub fn parse_grpc_timeout(s: &str) -> Result<Duration, GrpcTimeoutError> {
    let Some(unit) = s.chars().next_back() else {
        return Err(GrpcTimeoutError::Empty);
    };
    if unit.is_ascii_digit() {
        return Err(GrpcTimeoutError::MissingUnit);
    }
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GrpcTimeoutError::InvalidValue);
    }
    if digits.len() > 8 {
        return Err(GrpcTimeoutError::TooManyDigits);
    }
    let nanos_per_unit = GRPC_UNITS
        .iter()
        .find(|&&(_, u)| char::from(u) == unit)
        .map(|&(ns, _)| ns)
        .ok_or(GrpcTimeoutError::UnknownUnit(unit))?;
    // At most 8 digits, so it parses; in u128 the product cannot overflow, and
    // 99999999H is about 3.6e11 seconds, well within a Duration.
    let value: u64 = digits.parse().map_err(|_| GrpcTimeoutError::InvalidValue)?;
    let nanos = u128::from(value) * u128::from(nanos_per_unit);
    Ok(Duration::new(
        (nanos / NANOS_PER_SEC) as u64,
        (nanos % NANOS_PER_SEC) as u32,
    ))
}

/// Writes `d` as a `grpc-timeout` value in the finest unit whose value fits in 8 digits,
/// rounded down so the callee never gets more time than `d`. The loss is under one unit of
/// the chosen unit (under a microsecond up to 99.99 ms, under a millisecond up to a day).
/// Durations beyond `99999999H` (over 11,000 years) are written as `99999999H`.
pub fn format_grpc_timeout(d: Duration) -> String {
    let (buf, len) = encode_grpc_timeout(d);
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// The ASCII bytes of [`format_grpc_timeout`], without allocating.
fn encode_grpc_timeout(d: Duration) -> ([u8; 9], usize) {
    let nanos = d.as_nanos();
    let (value, unit) = GRPC_UNITS
        .iter()
        .find_map(|&(ns, unit)| {
            let value = nanos / u128::from(ns);
            (value <= u128::from(GRPC_MAX_VALUE)).then_some((value as u64, unit))
        })
        .unwrap_or((GRPC_MAX_VALUE, b'H'));
    let mut buf = [0u8; 9];
    let len = write_decimal(value, &mut buf);
    buf[len] = unit;
    (buf, len + 1)
}

/// Writes `value` (at most 8 digits) in decimal at the start of `buf`; returns the length.
fn write_decimal(mut value: u64, buf: &mut [u8; 9]) -> usize {
    let mut digits = [0u8; 8];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (value % 10) as u8;
        value /= 10;
        n += 1;
        if value == 0 || n == digits.len() {
            break;
        }
    }
    for (i, d) in digits[..n].iter().rev().enumerate() {
        buf[i] = *d;
    }
    n
}

/// Reads an `x-mesh-timeout-ms` value: ASCII digits only, no sign, at most `u64::MAX`.
fn parse_timeout_ms(bytes: &[u8]) -> Option<Duration> {
    if bytes.is_empty() {
        return None;
    }
    // Digits folded by hand (as `u64::from_str` would, overflow refused): the header is read
    // on every request.
    bytes
        .iter()
        .try_fold(0u64, |ms, &b| {
            let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
            ms.checked_mul(10)?.checked_add(u64::from(digit))
        })
        .map(Duration::from_millis)
}

/// The instant by which a request must be answered, as a [`Duration`] since the caller's
/// origin. Ordered by time: the smaller deadline is the earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Duration,
}

impl Deadline {
    /// The deadline at instant `at`.
    pub fn at(at: Duration) -> Self {
        Self { at }
    }

    /// The deadline `remaining` after `now` (saturating at [`Duration::MAX`]).
    pub fn after(now: Duration, remaining: Duration) -> Self {
        Self {
            at: now.saturating_add(remaining),
        }
    }

    /// The instant of the deadline.
    pub fn instant(self) -> Duration {
        self.at
    }

    /// The time left at `now`; zero once the deadline has passed.
    pub fn remaining(self, now: Duration) -> Duration {
        self.at.saturating_sub(now)
    }

    /// Whether no time is left at `now` (the call should fail at once, as a timeout).
    pub fn is_expired(self, now: Duration) -> bool {
        now >= self.at
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Self) -> Self {
        Ord::min(self, other)
    }

    /// The timeout of an outbound call made at `now`: the smaller of the configured
    /// `timeout` (if any) and the time left. Zero means the deadline has passed.
    pub fn bound(self, timeout: Option<Duration>, now: Duration) -> Duration {
        let left = self.remaining(now);
        timeout.map_or(left, |t| t.min(left))
    }
}

/// The timeout of an outbound call made at `now` when the request may or may not carry a
/// deadline: the smaller of `timeout` and the time left, `None` when there is neither.
pub fn bound(
    deadline: Option<Deadline>,
    timeout: Option<Duration>,
    now: Duration,
) -> Option<Duration> {
    match deadline {
        Some(d) => Some(d.bound(timeout, now)),
        None => timeout,
    }
}

/// Whether the request is gRPC (or gRPC-Web): its (first) content type is
/// [`is_grpc_content_type`].
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| is_grpc_content_type(v.as_bytes()))
}

/// Whether a `content-type` value is gRPC's (or gRPC-Web's): it starts with
/// `application/grpc`, compared without regard to case.
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value
        .get(..GRPC.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(GRPC))
}

/// The deadline an inbound request carries, received at `now`.
///
/// A gRPC request's `grpc-timeout` is read; [`DEADLINE_HEADER`] is read for every request;
/// when both are present the smaller wins, and so does the smallest of repeated values.
/// `grpc-timeout` on a request that is not gRPC is ignored (it is not ours to interpret).
/// `Ok(None)` when the request carries no deadline; an error when a header that is read is
/// malformed.
pub fn from_headers(headers: &HeaderMap, now: Duration) -> Result<Option<Deadline>, DeadlineError> {
    let mut remaining: Option<Duration> = None;
    let mut keep = |d: Duration| remaining = Some(remaining.map_or(d, |r| r.min(d)));
    if is_grpc(headers) {
        for value in headers.get_all(GRPC_TIMEOUT) {
            let parsed = value
                .to_str()
                .map_err(|_| GrpcTimeoutError::InvalidValue)
                .and_then(parse_grpc_timeout)
                .map_err(|source| DeadlineError::GrpcTimeout {
                    value: lossy(value),
                    source,
                })?;
            keep(parsed);
        }
    }
    for value in headers.get_all(DEADLINE_HEADER) {
        let parsed =
            parse_timeout_ms(value.as_bytes()).ok_or_else(|| DeadlineError::TimeoutMs {
                value: lossy(value),
            })?;
        keep(parsed);
    }
    Ok(remaining.map(|r| Deadline::after(now, r)))
}

/// Writes the time left of `deadline` at `now` on an outbound request: `grpc-timeout` when
/// `is_grpc`, else [`DEADLINE_HEADER`], rounded down.
///
/// A value the application already set in that header is kept when it is smaller (it can
/// only shorten the deadline). Zero is written when the deadline has passed; a caller should
/// rather fail the call without sending it.
pub fn to_headers(deadline: Deadline, now: Duration, is_grpc: bool, headers: &mut HeaderMap) {
    let remaining = deadline.remaining(now);
    let (name, value) = if is_grpc {
        let (buf, len) = encode_grpc_timeout(remaining);
        (GRPC_TIMEOUT, HeaderValue::from_bytes(&buf[..len]))
    } else {
        let ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
        (DEADLINE_HEADER, Ok(HeaderValue::from(ms)))
    };
    let existing = headers.get(&name).and_then(|v| {
        if is_grpc {
            v.to_str().ok().and_then(|s| parse_grpc_timeout(s).ok())
        } else {
            parse_timeout_ms(v.as_bytes())
        }
    });
    if existing.is_some_and(|e| e <= remaining) {
        return;
    }
    // The encoded bytes are ASCII digits and a letter, always a valid header value.
    if let Ok(value) = value {
        headers.insert(name, value);
    }
}

fn lossy(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn parses_every_unit() {
        let cases = [
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("3S", Duration::from_secs(3)),
            ("4m", Duration::from_millis(4)),
            ("5u", Duration::from_micros(5)),
            ("6n", Duration::from_nanos(6)),
            ("0S", Duration::ZERO),
            ("00000010m", Duration::from_millis(10)),
            ("99999999H", Duration::from_secs(99_999_999 * 3600)),
        ];
        for (s, d) in cases {
            assert_eq!(parse_grpc_timeout(s), Ok(d), "{s}");
        }
    }

    #[test]
    fn rejects_bad_grpc_timeouts() {
        use GrpcTimeoutError::*;
        let cases = [
            ("", Empty),
            ("1", MissingUnit),
            ("12345678", MissingUnit),
            ("S", InvalidValue),
            ("123456789S", TooManyDigits),
            ("99999999999999999999999H", TooManyDigits),
            ("1x", UnknownUnit('x')),
            ("1s", UnknownUnit('s')),
            ("1h", UnknownUnit('h')),
            ("1é", UnknownUnit('é')),
            ("-1S", InvalidValue),
            ("+1S", InvalidValue),
            ("1.5S", InvalidValue),
            (" 1S", InvalidValue),
            ("1 S", InvalidValue),
            ("١S", InvalidValue),
        ];
        for (s, e) in cases {
            assert_eq!(parse_grpc_timeout(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn formats_in_the_finest_unit_that_fits() {
        let cases = [
            (Duration::ZERO, "0n"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_nanos(100_000_000), "100000u"),
            (Duration::from_nanos(100_000_999), "100000u"),
            (Duration::from_millis(1500), "1500000u"),
            (Duration::from_secs(100), "100000m"),
            (Duration::from_secs(99_999), "99999000m"),
            (Duration::from_secs(100_000), "100000S"),
            (Duration::from_secs(100_000_000), "1666666M"),
            (Duration::from_secs(99_999_999 * 3600), "99999999H"),
            (Duration::MAX, "99999999H"),
        ];
        for (d, s) in cases {
            assert_eq!(format_grpc_timeout(d), s, "{d:?}");
        }
    }

    #[test]
    fn deadline_arithmetic() {
        let now = Duration::from_secs(100);
        let d = Deadline::after(now, 2 * SEC);
        assert_eq!(d.instant(), 102 * SEC);
        assert_eq!(d, Deadline::at(102 * SEC));
        assert_eq!(d.remaining(now), 2 * SEC);
        assert_eq!(d.remaining(now + 1500 * MS), 500 * MS);
        assert_eq!(d.remaining(now + 3 * SEC), Duration::ZERO);
        assert!(!d.is_expired(now + 1999 * MS));
        assert!(d.is_expired(now + 2 * SEC));
        assert_eq!(Deadline::after(Duration::MAX, SEC).instant(), Duration::MAX);
        let later = Deadline::after(now, 5 * SEC);
        assert_eq!(d.min(later), d);
        assert_eq!(later.min(d), d);
    }

    #[test]
    fn bound_takes_the_smaller() {
        let now = 10 * SEC;
        let d = Deadline::after(now, 2 * SEC);
        assert_eq!(d.bound(None, now), 2 * SEC);
        assert_eq!(d.bound(Some(SEC), now), SEC);
        assert_eq!(d.bound(Some(5 * SEC), now), 2 * SEC);
        assert_eq!(d.bound(Some(5 * SEC), now + 5 * SEC), Duration::ZERO);
        assert_eq!(bound(Some(d), Some(5 * SEC), now), Some(2 * SEC));
        assert_eq!(bound(None, Some(5 * SEC), now), Some(5 * SEC));
        assert_eq!(bound(None, None, now), None);
        assert_eq!(bound(Some(d), None, now + SEC), Some(SEC));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn header_precedence() {
        let now = 50 * SEC;
        let read = |pairs: &[(&str, &str)]| {
            from_headers(&headers(pairs), now).map(|d| d.map(|d| d.remaining(now)))
        };
        let grpc = ("content-type", "application/grpc+proto");
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[grpc]), Ok(None));
        assert_eq!(read(&[grpc, ("grpc-timeout", "3S")]), Ok(Some(3 * SEC)));
        assert_eq!(
            read(&[("content-type", "Application/GRPC"), ("grpc-timeout", "3S")]),
            Ok(Some(3 * SEC))
        );
        // Not gRPC: grpc-timeout is not ours to read, even malformed.
        assert_eq!(read(&[("grpc-timeout", "3S")]), Ok(None));
        assert_eq!(read(&[("grpc-timeout", "junk")]), Ok(None));
        assert_eq!(
            read(&[
                ("content-type", "application/json"),
                ("x-mesh-timeout-ms", "1500")
            ]),
            Ok(Some(1500 * MS))
        );
        // Both: the smaller, either way round.
        let both = |g: &'static str, m: &'static str| {
            read(&[grpc, ("grpc-timeout", g), ("x-mesh-timeout-ms", m)])
        };
        assert_eq!(both("3S", "1500"), Ok(Some(1500 * MS)));
        assert_eq!(both("1S", "1500"), Ok(Some(SEC)));
        // Repeated values: the smallest.
        assert_eq!(
            read(&[("x-mesh-timeout-ms", "900"), ("x-mesh-timeout-ms", "300")]),
            Ok(Some(300 * MS))
        );
        assert_eq!(
            read(&[("x-mesh-timeout-ms", "18446744073709551615")]),
            Ok(Some(Duration::from_millis(u64::MAX)))
        );
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        let now = SEC;
        let grpc = ("content-type", "application/grpc");
        assert_eq!(
            from_headers(&headers(&[grpc, ("grpc-timeout", "1x")]), now),
            Err(DeadlineError::GrpcTimeout {
                value: "1x".to_owned(),
                source: GrpcTimeoutError::UnknownUnit('x'),
            })
        );
        for bad in ["", "-5", "1.5", "1500ms", "18446744073709551616", " 5"] {
            assert_eq!(
                from_headers(&headers(&[("x-mesh-timeout-ms", bad)]), now),
                Err(DeadlineError::TimeoutMs {
                    value: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
        let mut h = headers(&[grpc]);
        h.insert(GRPC_TIMEOUT, HeaderValue::from_bytes(b"1\xffS").unwrap());
        assert!(matches!(
            from_headers(&h, now),
            Err(DeadlineError::GrpcTimeout { .. })
        ));
        let e = from_headers(&headers(&[("x-mesh-timeout-ms", "x")]), now).unwrap_err();
        assert!(e.to_string().contains("x-mesh-timeout-ms"), "{e}");
    }

    #[test]
    fn writes_the_header_of_the_protocol() {
        let now = 10 * SEC;
        let d = Deadline::after(now, Duration::from_micros(1_500_700));
        let mut h = HeaderMap::new();
        to_headers(d, now, true, &mut h);
        assert_eq!(h[&GRPC_TIMEOUT], "1500700u");
        assert!(h.get(&DEADLINE_HEADER).is_none());
        let mut h = HeaderMap::new();
        to_headers(d, now, false, &mut h);
        assert_eq!(h[&DEADLINE_HEADER], "1500");
        assert!(h.get(&GRPC_TIMEOUT).is_none());
        // Expired: zero.
        let mut h = HeaderMap::new();
        to_headers(d, now + 5 * SEC, false, &mut h);
        assert_eq!(h[&DEADLINE_HEADER], "0");
    }

    #[test]
    fn a_smaller_value_already_set_is_kept() {
        let now = Duration::ZERO;
        let d = Deadline::after(now, 2 * SEC);
        let mut h = headers(&[("grpc-timeout", "1S"), ("x-mesh-timeout-ms", "5000")]);
        to_headers(d, now, true, &mut h);
        assert_eq!(h[&GRPC_TIMEOUT], "1S");
        to_headers(d, now, false, &mut h);
        assert_eq!(h[&DEADLINE_HEADER], "2000");
        let mut h = headers(&[("x-mesh-timeout-ms", "junk")]);
        to_headers(d, now, false, &mut h);
        assert_eq!(h[&DEADLINE_HEADER], "2000");
    }

    #[test]
    fn round_trips_through_headers() {
        let now = 7 * SEC;
        let d = Deadline::after(now, Duration::from_millis(2345));
        for grpc in [false, true] {
            let mut h = HeaderMap::new();
            if grpc {
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            }
            to_headers(d, now, grpc, &mut h);
            // The callee's clock has another origin.
            let callee_now = 1000 * SEC;
            let read = from_headers(&h, callee_now).unwrap().unwrap();
            assert_eq!(read.remaining(callee_now), Duration::from_millis(2345));
        }
    }

    /// The millisecond header's value: whole digits within `u64`, as `u64::from_str` reads
    /// them, and nothing else (no sign, space or empty value).
    fn reference_ms(s: &str) -> Option<Duration> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok().map(Duration::from_millis))
            .flatten()
    }

    #[test]
    fn timeout_ms_reads_digits_only_and_refuses_overflow() {
        for s in [
            "0",
            "007",
            "15000",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "",
            "12a",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1.5",
            "١",
        ] {
            assert_eq!(parse_timeout_ms(s.as_bytes()), reference_ms(s), "{s:?}");
        }
        assert_eq!(
            parse_timeout_ms(b"15000"),
            Some(Duration::from_millis(15_000))
        );
        assert_eq!(
            parse_timeout_ms(b"18446744073709551615"),
            Some(Duration::from_millis(u64::MAX))
        );
        assert_eq!(parse_timeout_ms(b"18446744073709551616"), None);
    }

    proptest! {
        #[test]
        fn timeout_ms_agrees_with_the_standard_parse(s in "[0-9+ a-]{0,24}") {
            prop_assert_eq!(parse_timeout_ms(s.as_bytes()), reference_ms(&s));
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = parse_grpc_timeout(&s);
        }

        #[test]
        fn parse_never_panics_on_likely_shapes(s in "[-+ 0-9]{0,12}[HMSmunx\u{e9}]?") {
            let _ = parse_grpc_timeout(&s);
        }

        #[test]
        fn format_then_parse_loses_under_one_unit(nanos in any::<u64>(), secs in any::<u64>()) {
            for d in [Duration::from_nanos(nanos), Duration::new(secs, (nanos % 1_000_000_000) as u32)] {
                let s = format_grpc_timeout(d);
                let back = parse_grpc_timeout(&s).unwrap();
                prop_assert!(back <= d, "{:?} -> {} -> {:?}", d, s, back);
                let unit = GRPC_UNITS
                    .iter()
                    .find(|&&(_, u)| s.ends_with(char::from(u)))
                    .map(|&(ns, _)| Duration::from_nanos(ns))
                    .unwrap();
                let capped = d.min(Duration::from_secs(GRPC_MAX_VALUE * 3600));
                prop_assert!(capped - back < unit, "{:?} -> {} -> {:?}", d, s, back);
                prop_assert!(s.len() <= 9);
            }
        }

        #[test]
        fn from_headers_never_panics(value in "[ -~]{0,24}", grpc in any::<bool>()) {
            let mut h = HeaderMap::new();
            if grpc {
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            }
            let v = HeaderValue::from_str(&value).unwrap();
            h.insert(GRPC_TIMEOUT, v.clone());
            h.insert(DEADLINE_HEADER, v);
            let _ = from_headers(&h, Duration::ZERO);
        }
    }
}
