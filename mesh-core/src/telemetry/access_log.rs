//! Access log lines in Istio's two formats: Envoy's default text line as Istio configures it,
//! and Istio's JSON encoding, one line per request.
//!
//! The text format is Istio's
//! `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%`,
//! with `-` for an absent value. Unlike Envoy, values are escaped so a line cannot be forged
//! or split by request data: `\` and `"` are backslash-escaped, control characters (and spaces
//! outside quotes, and a value that is exactly `-`) become `\xHH`; [`parse_text_line`] undoes it.

use serde::Serialize;

/// One request as the access log records it. Text values are `None` when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessLogRecord {
    /// When the request started, milliseconds since the unix epoch (UTC).
    pub start_time_ms: u64,
    /// The request method.
    pub method: Option<String>,
    /// The request path (with query).
    pub path: Option<String>,
    /// The protocol, such as `HTTP/1.1` or `HTTP/2`.
    pub protocol: Option<String>,
    /// The response status; 0 when no response was sent.
    pub response_code: u16,
    /// Envoy response flags such as `UH` or `UT,URX`; empty means none (`-`).
    pub response_flags: String,
    /// Why the response has its status, such as `via_upstream`.
    pub response_code_details: Option<String>,
    /// Why the connection was closed, when mesh closed it.
    pub connection_termination_details: Option<String>,
    /// Why connecting to the upstream failed, such as a TLS error.
    pub upstream_transport_failure_reason: Option<String>,
    /// Request body bytes received.
    pub bytes_received: u64,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    /// Milliseconds from the start of the request to the end of the response.
    pub duration_ms: u64,
    /// Milliseconds the upstream took (`x-envoy-upstream-service-time`).
    pub upstream_service_time_ms: Option<u64>,
    /// The `x-forwarded-for` request header.
    pub x_forwarded_for: Option<String>,
    /// The `user-agent` request header.
    pub user_agent: Option<String>,
    /// The `x-request-id` request header.
    pub request_id: Option<String>,
    /// The request's authority (`:authority` or `host`).
    pub authority: Option<String>,
    /// The upstream endpoint's address.
    pub upstream_host: Option<String>,
    /// The upstream cluster, in Istio's form such as `outbound|9080||reviews.default.svc.cluster.local`.
    pub upstream_cluster: Option<String>,
    /// The local address of the upstream connection.
    pub upstream_local_address: Option<String>,
    /// The local address of the downstream connection.
    pub downstream_local_address: Option<String>,
    /// The remote address of the downstream connection.
    pub downstream_remote_address: Option<String>,
    /// The TLS SNI the downstream asked for.
    pub requested_server_name: Option<String>,
    /// The name of the route that matched.
    pub route_name: Option<String>,
}

/// Why [`parse_text_line`] refused a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessLogParseError {
    /// The line does not have the format's shape.
    #[error("not an access log line: {0}")]
    Shape(&'static str),
    /// A field's value is malformed.
    #[error("bad access log field {field}: {value:?}")]
    Field {
        /// The field's name (its JSON key).
        field: &'static str,
        /// The text found.
        value: String,
    },
}

const MS_PER_DAY: u64 = 86_400_000;

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds, as Envoy's `%START_TIME%`:
/// `2024-05-01T12:34:56.789Z`.
pub fn format_rfc3339_millis(unix_ms: u64) -> String {
    // u64::MAX / MS_PER_DAY fits an i64 comfortably.
    let days = i64::try_from(unix_ms / MS_PER_DAY).unwrap_or(i64::MAX / 2);
    let rem = unix_ms % MS_PER_DAY;
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, ms) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
}

/// Reads what [`format_rfc3339_millis`] writes (years 1970 to 9999): `None` when malformed.
pub fn parse_rfc3339_millis(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(r)?;
        digits.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, min, sec, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > month_days || h > 23 || min > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let ms = days * 86_400_000 + h * 3_600_000 + min * 60_000 + sec * 1000 + ms;
    u64::try_from(ms).ok()
}

/// Appends `v` escaped, `-` when absent or empty. `bare` also escapes spaces (fields outside
/// quotes, and the parts of the quoted request line).
fn push_escaped(out: &mut String, v: Option<&str>, bare: bool) {
    match v {
        None | Some("") => out.push('-'),
        Some("-") => out.push_str("\\x2d"),
        Some(v) => {
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    ' ' if bare => out.push_str("\\x20"),
                    c if c.is_ascii_control() => {
                        out.push_str(&format!("\\x{:02x}", u32::from(c)));
                    }
                    c => out.push(c),
                }
            }
        }
    }
}

impl AccessLogRecord {
    /// The line in Istio's default text format, without the trailing newline.
    pub fn to_text(&self) -> String {
        let mut o = String::with_capacity(256);
        let bare = |o: &mut String, v: &Option<String>| {
            o.push(' ');
            push_escaped(o, v.as_deref(), true);
        };
        let quoted = |o: &mut String, v: &Option<String>| {
            o.push_str(" \"");
            push_escaped(o, v.as_deref(), false);
            o.push('"');
        };
        let num = |o: &mut String, n: u64| {
            o.push(' ');
            o.push_str(&n.to_string());
        };
        o.push('[');
        o.push_str(&format_rfc3339_millis(self.start_time_ms));
        o.push_str("] \"");
        push_escaped(&mut o, self.method.as_deref(), true);
        o.push(' ');
        push_escaped(&mut o, self.path.as_deref(), true);
        o.push(' ');
        push_escaped(&mut o, self.protocol.as_deref(), true);
        o.push('"');
        num(&mut o, u64::from(self.response_code));
        o.push(' ');
        push_escaped(&mut o, Some(&self.response_flags), true);
        bare(&mut o, &self.response_code_details);
        bare(&mut o, &self.connection_termination_details);
        quoted(&mut o, &self.upstream_transport_failure_reason);
        num(&mut o, self.bytes_received);
        num(&mut o, self.bytes_sent);
        num(&mut o, self.duration_ms);
        bare(
            &mut o,
            &self.upstream_service_time_ms.map(|t| t.to_string()),
        );
        quoted(&mut o, &self.x_forwarded_for);
        quoted(&mut o, &self.user_agent);
        quoted(&mut o, &self.request_id);
        quoted(&mut o, &self.authority);
        quoted(&mut o, &self.upstream_host);
        bare(&mut o, &self.upstream_cluster);
        bare(&mut o, &self.upstream_local_address);
        bare(&mut o, &self.downstream_local_address);
        bare(&mut o, &self.downstream_remote_address);
        bare(&mut o, &self.requested_server_name);
        bare(&mut o, &self.route_name);
        o
    }

    /// The line in Istio's JSON format (its keys, in its order), without the trailing
    /// newline. Absent values are `null`; `response_flags` is `-` when none, as Envoy.
    pub fn to_json(&self) -> String {
        let start_time = format_rfc3339_millis(self.start_time_ms);
        let upstream_service_time = self.upstream_service_time_ms.map(|t| t.to_string());
        let line = JsonLine {
            start_time: &start_time,
            method: self.method.as_deref(),
            path: self.path.as_deref(),
            protocol: self.protocol.as_deref(),
            response_code: self.response_code,
            response_flags: if self.response_flags.is_empty() {
                "-"
            } else {
                &self.response_flags
            },
            response_code_details: self.response_code_details.as_deref(),
            connection_termination_details: self.connection_termination_details.as_deref(),
            upstream_transport_failure_reason: self.upstream_transport_failure_reason.as_deref(),
            bytes_received: self.bytes_received,
            bytes_sent: self.bytes_sent,
            duration: self.duration_ms,
            upstream_service_time: upstream_service_time.as_deref(),
            x_forwarded_for: self.x_forwarded_for.as_deref(),
            user_agent: self.user_agent.as_deref(),
            request_id: self.request_id.as_deref(),
            authority: self.authority.as_deref(),
            upstream_host: self.upstream_host.as_deref(),
            upstream_cluster: self.upstream_cluster.as_deref(),
            upstream_local_address: self.upstream_local_address.as_deref(),
            downstream_local_address: self.downstream_local_address.as_deref(),
            downstream_remote_address: self.downstream_remote_address.as_deref(),
            requested_server_name: self.requested_server_name.as_deref(),
            route_name: self.route_name.as_deref(),
        };
        // Serializing borrowed strings and integers cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    start_time: &'a str,
    method: Option<&'a str>,
    path: Option<&'a str>,
    protocol: Option<&'a str>,
    response_code: u16,
    response_flags: &'a str,
    response_code_details: Option<&'a str>,
    connection_termination_details: Option<&'a str>,
    upstream_transport_failure_reason: Option<&'a str>,
    bytes_received: u64,
    bytes_sent: u64,
    duration: u64,
    upstream_service_time: Option<&'a str>,
    x_forwarded_for: Option<&'a str>,
    user_agent: Option<&'a str>,
    request_id: Option<&'a str>,
    authority: Option<&'a str>,
    upstream_host: Option<&'a str>,
    upstream_cluster: Option<&'a str>,
    upstream_local_address: Option<&'a str>,
    downstream_local_address: Option<&'a str>,
    downstream_remote_address: Option<&'a str>,
    requested_server_name: Option<&'a str>,
    route_name: Option<&'a str>,
}

/// Undoes [`push_escaped`]: `-` is absent; `None` on a broken escape.
fn unescape(raw: &str) -> Option<Option<String>> {
    if raw == "-" {
        return Some(None);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            'x' => {
                let hi = chars.next()?.to_digit(16)?;
                let lo = chars.next()?.to_digit(16)?;
                out.push(char::from_u32(hi * 16 + lo)?);
            }
            _ => return None,
        }
    }
    Some(Some(out))
}

/// Splits the line after the `[start]` into its tokens: quoted ones (raw, escapes kept, quotes
/// removed) and bare ones, separated by single spaces.
fn tokens(mut rest: &str) -> Result<Vec<&str>, AccessLogParseError> {
    let mut out = Vec::with_capacity(21);
    while !rest.is_empty() {
        rest = rest.strip_prefix(' ').ok_or(AccessLogParseError::Shape(
            "fields are not separated by one space",
        ))?;
        if let Some(quoted) = rest.strip_prefix('"') {
            let bytes = quoted.as_bytes();
            let mut i = 0;
            loop {
                match bytes.get(i) {
                    None => return Err(AccessLogParseError::Shape("unterminated quote")),
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            // `i` is at an ASCII quote, so a char boundary.
            out.push(&quoted[..i]);
            rest = &quoted[i + 1..];
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            if end == 0 {
                return Err(AccessLogParseError::Shape("empty field"));
            }
            out.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    Ok(out)
}

/// Parses a line of [`AccessLogRecord::to_text`] back (a trailing newline is allowed), so tests
/// can check what a stack logged.
pub fn parse_text_line(line: &str) -> Result<AccessLogRecord, AccessLogParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let rest = line
        .strip_prefix('[')
        .ok_or(AccessLogParseError::Shape("no [start time]"))?;
    let (start, rest) = rest
        .split_once(']')
        .ok_or(AccessLogParseError::Shape("no [start time]"))?;
    let bad = |field: &'static str, value: &str| AccessLogParseError::Field {
        field,
        value: value.to_owned(),
    };
    let start_time_ms = parse_rfc3339_millis(start).ok_or_else(|| bad("start_time", start))?;
    let t = tokens(rest)?;
    let [
        request,
        code,
        flags,
        details,
        termination,
        utfr,
        received,
        sent,
        duration,
        upstream_time,
        xff,
        ua,
        request_id,
        authority,
        upstream_host,
        upstream_cluster,
        upstream_local,
        downstream_local,
        downstream_remote,
        sni,
        route,
    ] = t[..]
    else {
        return Err(AccessLogParseError::Shape("not 22 fields"));
    };
    let text = |field: &'static str, raw: &str| unescape(raw).ok_or_else(|| bad(field, raw));
    let number = |field: &'static str, raw: &str| raw.parse::<u64>().map_err(|_| bad(field, raw));
    let mut parts = request.split(' ');
    let (Some(method), Some(path), Some(protocol), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("method", request));
    };
    Ok(AccessLogRecord {
        start_time_ms,
        method: text("method", method)?,
        path: text("path", path)?,
        protocol: text("protocol", protocol)?,
        response_code: code.parse().map_err(|_| bad("response_code", code))?,
        response_flags: text("response_flags", flags)?.unwrap_or_default(),
        response_code_details: text("response_code_details", details)?,
        connection_termination_details: text("connection_termination_details", termination)?,
        upstream_transport_failure_reason: text("upstream_transport_failure_reason", utfr)?,
        bytes_received: number("bytes_received", received)?,
        bytes_sent: number("bytes_sent", sent)?,
        duration_ms: number("duration", duration)?,
        upstream_service_time_ms: match upstream_time {
            "-" => None,
            t => Some(number("upstream_service_time", t)?),
        },
        x_forwarded_for: text("x_forwarded_for", xff)?,
        user_agent: text("user_agent", ua)?,
        request_id: text("request_id", request_id)?,
        authority: text("authority", authority)?,
        upstream_host: text("upstream_host", upstream_host)?,
        upstream_cluster: text("upstream_cluster", upstream_cluster)?,
        upstream_local_address: text("upstream_local_address", upstream_local)?,
        downstream_local_address: text("downstream_local_address", downstream_local)?,
        downstream_remote_address: text("downstream_remote_address", downstream_remote)?,
        requested_server_name: text("requested_server_name", sni)?,
        route_name: text("route_name", route)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> AccessLogRecord {
        AccessLogRecord {
            start_time_ms: 1_714_566_896_789,
            method: Some("GET".into()),
            path: Some("/reviews/0".into()),
            protocol: Some("HTTP/1.1".into()),
            response_code: 200,
            response_flags: String::new(),
            response_code_details: Some("via_upstream".into()),
            connection_termination_details: None,
            upstream_transport_failure_reason: None,
            bytes_received: 0,
            bytes_sent: 358,
            duration_ms: 12,
            upstream_service_time_ms: Some(11),
            x_forwarded_for: None,
            user_agent: Some("curl/8.5.0".into()),
            request_id: Some("6a7c1a0e-5c2f-4b8e-9d7b-2f1e0c3a4b5d".into()),
            authority: Some("reviews:9080".into()),
            upstream_host: Some("10.244.0.17:9080".into()),
            upstream_cluster: Some("outbound|9080||reviews.default.svc.cluster.local".into()),
            upstream_local_address: Some("10.244.0.9:51234".into()),
            downstream_local_address: Some("10.96.12.3:9080".into()),
            downstream_remote_address: Some("10.244.0.9:40000".into()),
            requested_server_name: None,
            route_name: Some("default".into()),
        }
    }

    #[test]
    fn text_line_like_istio() {
        let line = sample().to_text();
        assert_eq!(
            line,
            "[2024-05-01T12:34:56.789Z] \"GET /reviews/0 HTTP/1.1\" 200 - via_upstream - \"-\" \
             0 358 12 11 \"-\" \"curl/8.5.0\" \"6a7c1a0e-5c2f-4b8e-9d7b-2f1e0c3a4b5d\" \
             \"reviews:9080\" \"10.244.0.17:9080\" outbound|9080||reviews.default.svc.cluster.local \
             10.244.0.9:51234 10.96.12.3:9080 10.244.0.9:40000 - default"
        );
        assert_eq!(parse_text_line(&format!("{line}\n")), Ok(sample()));
    }

    #[test]
    fn empty_record_and_escapes() {
        let empty = AccessLogRecord::default();
        assert_eq!(
            empty.to_text(),
            "[1970-01-01T00:00:00.000Z] \"- - -\" 0 - - - \"-\" 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"-\" - - - - - -"
        );
        let nasty = AccessLogRecord {
            path: Some("/a b\"c".into()),
            user_agent: Some("x\" \"y\n[1970".into()),
            route_name: Some("-".into()),
            response_flags: "UT,URX".into(),
            ..empty
        };
        let line = nasty.to_text();
        assert!(!line.contains('\n'));
        assert!(line.contains(r#""x\" \"y\x0a[1970""#), "{line}");
        assert_eq!(parse_text_line(&line), Ok(nasty));
    }

    #[test]
    fn json_line_like_istio() {
        let json = sample().to_json();
        assert!(!json.contains('\n'));
        assert!(json.starts_with(r#"{"start_time":"2024-05-01T12:34:56.789Z","method":"GET","#));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["response_code"], 200);
        assert_eq!(v["response_flags"], "-");
        assert_eq!(v["upstream_service_time"], "11");
        assert_eq!(v["duration"], 12);
        assert_eq!(v["x_forwarded_for"], serde_json::Value::Null);
        assert_eq!(v.as_object().unwrap().len(), 24);
    }

    #[test]
    fn dates() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_rfc3339_millis(253_402_300_799_999),
            "9999-12-31T23:59:59.999Z"
        );
        assert!(format_rfc3339_millis(u64::MAX).ends_with('Z'));
        for bad in [
            "2023-02-29T00:00:00.000Z",
            "2024-13-01T00:00:00.000Z",
            "2024-01-01T24:00:00.000Z",
            "2024-01-01T00:00:60.000Z",
            "1969-12-31T23:59:59.999Z",
            "2024-01-01 00:00:00.000Z",
            "+024-01-01T00:00:00.000Z",
            "2024-01-01T00:00:00.000",
        ] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejects_bad_lines() {
        let good = sample().to_text();
        for bad in [
            String::new(),
            good.replace("200", "abc"),
            good.replace("] \"GET", "]  \"GET"),
            good.replace(" default", ""),
            format!("{good} extra"),
            good.replace("\"curl/8.5.0\"", "\"curl\\q\""),
            good.replace("\"-\" 0", "\"- 0"),
        ] {
            assert!(parse_text_line(&bad).is_err(), "{bad}");
        }
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("\\PC{1,12}|[ -~]{1,12}|[\\x00-\\x1f\"\\\\ ]{1,4}")
            .prop_map(|s| s.filter(|s| !s.is_empty()))
    }

    fn record() -> impl Strategy<Value = AccessLogRecord> {
        (
            (
                0u64..=253_402_300_799_999,
                text(),
                text(),
                text(),
                any::<u16>(),
                text(),
            ),
            (
                text(),
                text(),
                text(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
            ),
            (any::<Option<u64>>(), text(), text(), text(), text(), text()),
            (text(), text(), text(), text(), text(), text()),
        )
            .prop_map(|(a, b, c, d)| AccessLogRecord {
                start_time_ms: a.0,
                method: a.1,
                path: a.2,
                protocol: a.3,
                response_code: a.4,
                response_flags: a.5.unwrap_or_default(),
                response_code_details: b.0,
                connection_termination_details: b.1,
                upstream_transport_failure_reason: b.2,
                bytes_received: b.3,
                bytes_sent: b.4,
                duration_ms: b.5,
                upstream_service_time_ms: c.0,
                x_forwarded_for: c.1,
                user_agent: c.2,
                request_id: c.3,
                authority: c.4,
                upstream_host: c.5,
                upstream_cluster: d.0,
                upstream_local_address: d.1,
                downstream_local_address: d.2,
                downstream_remote_address: d.3,
                requested_server_name: d.4,
                route_name: d.5,
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}", t in "[\\[\\]\" \\\\x0-9a-z-]{0,120}") {
            let _ = parse_text_line(&s);
            let _ = parse_text_line(&t);
            let _ = parse_text_line(&format!("[2024-05-01T12:34:56.789Z]{t}"));
            let _ = parse_rfc3339_millis(&s);
        }

        #[test]
        fn text_round_trip(r in record()) {
            let line = r.to_text();
            prop_assert!(!line.contains('\n'));
            prop_assert_eq!(parse_text_line(&line), Ok(r));
        }

        #[test]
        fn json_is_one_valid_line(r in record()) {
            let line = r.to_json();
            prop_assert!(!line.contains('\n'));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            prop_assert_eq!(v["bytes_sent"].as_u64(), Some(r.bytes_sent));
            prop_assert_eq!(v["user_agent"].as_str(), r.user_agent.as_deref());
        }

        #[test]
        fn dates_round_trip(ms in 0u64..=253_402_300_799_999) {
            prop_assert_eq!(parse_rfc3339_millis(&format_rfc3339_millis(ms)), Some(ms));
        }
    }
}
