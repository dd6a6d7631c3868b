//! Durations in Istio's forms: `500ms`, `2s`, `1m`, `1h`, `1.5s`, `1m30s`.
//!
//! Istio takes durations in Go's `time.ParseDuration` form (a sequence of decimal numbers,
//! each with a unit) and protobuf's JSON form (`1.5s`), which is a subset of it. Both are read
//! by [`parse_duration`]; [`format_duration`] writes a form that reads back to the same value.
//!
//! ```
//! use std::time::Duration;
//! use mesh_core::duration::{format_duration, parse_duration};
//!
//! assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
//! assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
//! ```

use std::fmt::Write as _;
use std::time::Duration;

/// The units [`parse_duration`] accepts, for error messages.
const UNITS: &str = "ns, us, ms, s, m, h";

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The largest [`Duration`], in nanoseconds.
const MAX_NANOS: u128 = u64::MAX as u128 * NANOS_PER_SEC + (NANOS_PER_SEC - 1);

/// Fraction digits beyond this many are ignored (they are far below a nanosecond).
const MAX_FRACTION_DIGITS: usize = 18;

/// Why a duration could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration (expected a number and a unit, such as 500ms or 2s)")]
    Empty,
    /// The text starts with `-`.
    #[error("negative durations are not allowed")]
    Negative,
    /// A number has no unit after it (only a bare `0` may omit the unit).
    #[error("missing unit after `{number}` (expected one of {UNITS})")]
    MissingUnit {
        /// The number without a unit.
        number: String,
    },
    /// A unit is not one of `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`.
    #[error("unknown unit `{unit}` (expected one of {UNITS})")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
    },
    /// A number was expected but something else was found.
    #[error("expected a number at `{rest}`")]
    InvalidNumber {
        /// The text from the point where a number was expected.
        rest: String,
    },
    /// The duration does not fit in a [`Duration`].
    #[error("duration is too large")]
    Overflow,
}

/// Parses a duration such as `500ms`, `2s`, `1.5s`, `1m30s`, `100us`, `10ns` or `0`.
///
/// Units are `ns`, `us` (or `µs`), `ms`, `s`, `m` and `h`; numbers may have a fraction, which
/// is truncated to whole nanoseconds. Signs, spaces and a missing unit (except in `0`) are
/// errors.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let (int, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (int.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(DurationError::InvalidNumber {
                rest: rest.to_owned(),
            });
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = unit_nanos(unit, number)?;
        total = total
            .checked_add(component_nanos(int, fraction, scale)?)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or(DurationError::Overflow)?;
        rest = next;
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| DurationError::Overflow)?;
    // The remainder is below one second, so it fits in a u32.
    let nanos = (total % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, nanos))
}

/// The length of one `unit` in nanoseconds.
fn unit_nanos(unit: &str, number: &str) -> Result<u128, DurationError> {
    Ok(match unit {
        "" => {
            return Err(DurationError::MissingUnit {
                number: number.to_owned(),
            });
        }
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        _ => {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_owned(),
            });
        }
    })
}

/// The nanoseconds of one `int.fraction` number of units `scale` nanoseconds long.
fn component_nanos(int: &str, fraction: &str, scale: u128) -> Result<u128, DurationError> {
    let mut whole: u128 = 0;
    for digit in int.bytes() {
        whole = whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(u128::from(digit - b'0')))
            .filter(|w| *w <= MAX_NANOS)
            .ok_or(DurationError::Overflow)?;
    }
    let whole = whole.checked_mul(scale).ok_or(DurationError::Overflow)?;
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    for digit in fraction.bytes().take(MAX_FRACTION_DIGITS) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    // numerator < 10^18 and scale <= 3.6 * 10^12, so the product fits in a u128.
    whole
        .checked_add(numerator * scale / denominator)
        .ok_or(DurationError::Overflow)
}

/// Formats a duration so that [`parse_duration`] reads it back exactly: `250ms`, `2s`,
/// `1m30s`, `1h`, `1.5s`, `100us`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if secs == 0 {
        return match nanos {
            0 => "0s".to_owned(),
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let mut out = String::new();
    let (hours, minutes, seconds) = (secs / 3_600, secs % 3_600 / 60, secs % 60);
    // Writing to a String cannot fail.
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        let _ = write!(out, "{seconds}.{}s", fraction.trim_end_matches('0'));
    } else if seconds > 0 {
        let _ = write!(out, "{seconds}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_istio_forms() {
        let cases = [
            ("500ms", ms(500)),
            ("2s", ms(2_000)),
            ("1m", ms(60_000)),
            ("1h", ms(3_600_000)),
            ("1.5s", ms(1_500)),
            ("0.5s", ms(500)),
            (".5s", ms(500)),
            ("1.s", ms(1_000)),
            ("1m30s", ms(90_000)),
            ("1h2m3s4ms", ms(3_723_004)),
            ("100us", Duration::from_micros(100)),
            ("100µs", Duration::from_micros(100)),
            ("10ns", Duration::from_nanos(10)),
            ("1.5ns", Duration::from_nanos(1)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("0s", Duration::ZERO),
            ("0", Duration::ZERO),
            ("000ms", Duration::ZERO),
            ("2.25h", ms(8_100_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_bad_forms_with_a_reason() {
        use DurationError::*;
        let missing = |n: &str| MissingUnit {
            number: n.to_owned(),
        };
        let unit = |u: &str| UnknownUnit { unit: u.to_owned() };
        let number = |r: &str| InvalidNumber { rest: r.to_owned() };
        let cases = [
            ("", Empty),
            ("-1s", Negative),
            ("5", missing("5")),
            ("1.5", missing("1.5")),
            ("1m30", missing("30")),
            ("5x", unit("x")),
            ("5 s", unit(" s")),
            ("5sec", unit("sec")),
            ("1d", unit("d")),
            ("s", number("s")),
            (".s", number(".s")),
            ("1..5s", number("1..5s")),
            ("+1s", number("+1s")),
            (" 1s", number(" 1s")),
            ("1s ", unit("s ")),
            ("99999999999999999999999999999999999999999h", Overflow),
            ("5124095576030432h", Overflow),
            ("18446744073709551616s", Overflow),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Err(want), "{text:?}");
        }
    }

    #[test]
    fn errors_say_why() {
        let e = parse_duration("5x").unwrap_err().to_string();
        assert!(e.contains("unknown unit `x`") && e.contains("ms"), "{e}");
        let e = parse_duration("5").unwrap_err().to_string();
        assert!(e.contains("missing unit"), "{e}");
    }

    #[test]
    fn largest_duration_round_trips() {
        let text = format_duration(Duration::MAX);
        assert_eq!(parse_duration(&text), Ok(Duration::MAX));
    }

    #[test]
    fn formats_compactly() {
        let cases = [
            (Duration::ZERO, "0s"),
            (ms(250), "250ms"),
            (ms(2_000), "2s"),
            (ms(90_000), "1m30s"),
            (ms(3_600_000), "1h"),
            (ms(3_600_500), "1h0.5s"),
            (ms(1_500), "1.5s"),
            (Duration::from_micros(100), "100us"),
            (Duration::from_nanos(10), "10ns"),
            (Duration::from_nanos(1_500), "1500ns"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want);
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn small_durations_round_trip(nanos in 0u64..10_000_000_000_000) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn random_text_never_panics(s in any::<String>()) {
            let _ = parse_duration(&s);
        }

        #[test]
        fn duration_like_text_never_panics(s in "[0-9.µnumsh-]{0,40}") {
            let _ = parse_duration(&s);
        }
    }
}
