//! Times and durations on the command line: RFC 3339 timestamps (UTC on output) and short
//! durations such as `30d`, `12h` or `1d12h`.

use prost_types::Timestamp;

/// Parses an RFC 3339 time ("2026-12-01T00:00:00Z", "2026-12-01T09:30:00+02:00") or a bare date
/// ("2026-12-01", midnight UTC).
pub fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>().map_err(|_| {
        format!("{text:?} is not an RFC 3339 time; write e.g. 2026-12-01T00:00:00Z or 2026-12-01")
    })
}

/// Prints a time as RFC 3339 in UTC, e.g. "2026-11-22T10:00:00Z"; `missing` when unset.
pub fn format_timestamp(time: Option<&Timestamp>, missing: &str) -> String {
    match time {
        Some(time) => time.to_string(),
        None => missing.to_string(),
    }
}

/// Parses a duration as whole seconds: a bare number is seconds ("90"); otherwise one or more
/// number-unit pairs with units s, m, h, d, w ("45s", "10m", "12h", "30d", "2w", "1d12h").
/// Zero is refused: every duration the CLI takes must be positive.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let malformed =
        || format!("{text:?} is not a duration; write seconds (90) or e.g. 10m, 12h, 30d, 1d12h");
    let too_long = || format!("{text:?} is too long a duration");
    if text.is_empty() {
        return Err(malformed());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = parse_number(text).ok_or_else(too_long)?;
        return positive(seconds, text);
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(malformed)?;
        if digits_end == 0 {
            return Err(malformed());
        }
        let number = parse_number(&rest[..digits_end]).ok_or_else(too_long)?;
        let unit = rest[digits_end..].chars().next().ok_or_else(malformed)?;
        let unit_seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(malformed()),
        };
        total = number
            .checked_mul(unit_seconds)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(too_long)?;
        rest = &rest[digits_end + unit.len_utf8()..];
    }
    positive(total, text)
}

fn parse_number(digits: &str) -> Option<i64> {
    digits.parse::<i64>().ok()
}

fn positive(seconds: i64, text: &str) -> Result<i64, String> {
    if seconds > 0 {
        Ok(seconds)
    } else {
        Err(format!("{text:?} is zero; the duration must be positive"))
    }
}

/// The local clock's current time, to the whole second. Only used to turn `--expires-in` into
/// an `expires_at`.
pub fn now() -> Timestamp {
    let mut now = Timestamp::from(std::time::SystemTime::now());
    now.nanos = 0;
    now
}

/// `time` plus `seconds`, saturating rather than wrapping.
pub fn add_seconds(time: &Timestamp, seconds: i64) -> Timestamp {
    Timestamp {
        seconds: time.seconds.saturating_add(seconds),
        nanos: time.nanos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    #[test]
    fn formats_utc_rfc3339() {
        assert_eq!(format_timestamp(Some(&at(0)), "-"), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp(Some(&at(1_795_341_600)), "-"),
            "2026-11-22T10:00:00Z"
        );
        // A leap day.
        assert_eq!(
            format_timestamp(Some(&at(1_709_208_000)), "-"),
            "2024-02-29T12:00:00Z"
        );
        assert_eq!(format_timestamp(None, "never"), "never");
    }

    #[test]
    fn parses_rfc3339_with_offsets_and_bare_dates() {
        assert_eq!(
            parse_timestamp("2026-11-22T10:00:00Z"),
            Ok(at(1_795_341_600))
        );
        assert_eq!(
            parse_timestamp("2026-11-22T12:00:00+02:00"),
            Ok(at(1_795_341_600))
        );
        assert_eq!(parse_timestamp("1970-01-02"), Ok(at(86_400)));
        let text = "2024-02-29T12:00:00Z";
        assert_eq!(
            format_timestamp(Some(&parse_timestamp(text).unwrap()), "-"),
            text
        );
    }

    #[test]
    fn refuses_malformed_times() {
        for bad in [
            "",
            "tomorrow",
            "2026-13-01",
            "2026-02-30T00:00:00Z",
            "1795341600",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("45s"), Ok(45));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("1d12h"), Ok(129_600));
        assert_eq!(parse_duration("1h30m15s"), Ok(5_415));
    }

    #[test]
    fn refuses_bad_durations() {
        for bad in [
            "", "0", "0d", "d", "10x", "1.5h", "-5m", "12h ", "h12", "1d-1h", "5µ",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_duration("99999999999999999999d")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_duration("9999999999999999w")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn adds_seconds() {
        assert_eq!(add_seconds(&at(100), 86_400), at(86_500));
        assert_eq!(add_seconds(&at(i64::MAX - 1), 10).seconds, i64::MAX);
    }
}
