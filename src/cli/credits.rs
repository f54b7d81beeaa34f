//! Credits as a human types and reads them ("1.5", "12", "0.000001") and as the API carries them
//! (integers of micro-credits). Integer arithmetic only: no float ever touches an amount.
//! Money (`--unit-price`, `--cost`) uses the same format, in micros of the deployment's currency.

/// Micro-units in one credit (or one unit of money).
pub const MICROS_PER_CREDIT: i64 = 1_000_000;

/// Every amount must stay below 2^53 micros (Redis Lua numbers are doubles).
pub const MAX_MICROS_EXCLUSIVE: i64 = 1 << 53;

/// The most decimals a credit amount can have: micro-credits are the smallest unit.
const MAX_DECIMALS: usize = 6;

/// Parses a non-negative amount of credits with at most six decimals ("1.5" → 1_500_000).
///
/// Accepted: digits, optionally followed by `.` and one to six digits. Refused: signs, exponents,
/// spaces, a bare `.`, more than six decimals, and anything at or above 2^53 micros.
pub fn parse_credits(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Err("an amount is required, e.g. 1.5".to_string());
    }
    if text.starts_with('-') {
        return Err(format!("{text:?} is negative; amounts are 0 or more"));
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text:?} is not an amount of credits; write digits with an optional decimal point, e.g. 12 or 0.5"
        ));
    }
    let fraction_micros = match fraction {
        None => 0,
        Some(digits) => parse_fraction(text, digits)?,
    };
    let too_large = || {
        format!(
            "{text:?} is too large; amounts must be below {} credits",
            format_credits(MAX_MICROS_EXCLUSIVE)
        )
    };
    let mut whole_value: i64 = 0;
    for digit in whole.bytes() {
        whole_value = whole_value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(digit - b'0')))
            .ok_or_else(too_large)?;
    }
    let micros = whole_value
        .checked_mul(MICROS_PER_CREDIT)
        .and_then(|v| v.checked_add(fraction_micros))
        .ok_or_else(too_large)?;
    if micros >= MAX_MICROS_EXCLUSIVE {
        return Err(too_large());
    }
    Ok(micros)
}

/// The micros of the digits after the decimal point: "5" → 500_000, "000001" → 1.
fn parse_fraction(text: &str, digits: &str) -> Result<i64, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text:?} is not an amount of credits; write digits with an optional decimal point, e.g. 12 or 0.5"
        ));
    }
    if digits.len() > MAX_DECIMALS {
        return Err(format!(
            "{text:?} has more than {MAX_DECIMALS} decimals; the smallest amount is 0.000001"
        ));
    }
    let mut micros: i64 = 0;
    for digit in digits.bytes() {
        micros = micros * 10 + i64::from(digit - b'0');
    }
    for _ in digits.len()..MAX_DECIMALS {
        micros *= 10;
    }
    Ok(micros)
}

/// Prints micros as credits without trailing zeros: 1_500_000 → "1.5", 12_000_000 → "12",
/// 1 → "0.000001", -3_250_000 → "-3.25" (debt and available credits can be negative).
pub fn format_credits(micros: i64) -> String {
    crate::model::credits(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_and_decimal_credits() {
        assert_eq!(parse_credits("0"), Ok(0));
        assert_eq!(parse_credits("1"), Ok(1_000_000));
        assert_eq!(parse_credits("12"), Ok(12_000_000));
        assert_eq!(parse_credits("1.5"), Ok(1_500_000));
        assert_eq!(parse_credits("0.2"), Ok(200_000));
        assert_eq!(parse_credits("0.000001"), Ok(1));
        assert_eq!(parse_credits("3.141592"), Ok(3_141_592));
        assert_eq!(parse_credits("1.500000"), Ok(1_500_000));
        assert_eq!(parse_credits("007.25"), Ok(7_250_000));
        assert_eq!(parse_credits("0.0"), Ok(0));
    }

    #[test]
    fn accepts_up_to_just_below_two_to_the_53() {
        // 2^53 micros = 9007199254.740992 credits.
        assert_eq!(
            parse_credits("9007199254.740991"),
            Ok(MAX_MICROS_EXCLUSIVE - 1)
        );
        assert!(parse_credits("9007199254.740992")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_credits("9007199255")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn refuses_overflowing_digits_without_panicking() {
        let huge = "9".repeat(40);
        assert!(parse_credits(&huge).unwrap_err().contains("too large"));
        assert!(parse_credits("9223372036854.775807")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn refuses_more_than_six_decimals() {
        let err = parse_credits("0.0000001").unwrap_err();
        assert!(err.contains("more than 6 decimals"), "{err}");
        assert!(parse_credits("1.5000000").is_err());
    }

    #[test]
    fn refuses_negatives_and_signs() {
        assert!(parse_credits("-1").unwrap_err().contains("negative"));
        assert!(parse_credits("-0.5").unwrap_err().contains("negative"));
        assert!(parse_credits("+1").is_err());
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in [
            "", ".", ".5", "1.", "1.2.3", "1e6", "1,5", " 1", "1 ", "abc", "0x10", "1_000", "½",
            "1.-5", "NaN", "inf",
        ] {
            assert!(parse_credits(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(format_credits(0), "0");
        assert_eq!(format_credits(1), "0.000001");
        assert_eq!(format_credits(10), "0.00001");
        assert_eq!(format_credits(200_000), "0.2");
        assert_eq!(format_credits(1_500_000), "1.5");
        assert_eq!(format_credits(12_000_000), "12");
        assert_eq!(format_credits(100_000_010), "100.00001");
        assert_eq!(format_credits(MAX_MICROS_EXCLUSIVE), "9007199254.740992");
    }

    #[test]
    fn formats_negative_amounts() {
        assert_eq!(format_credits(-3_250_000), "-3.25");
        assert_eq!(format_credits(-1), "-0.000001");
        assert_eq!(format_credits(-5_000_000), "-5");
        assert_eq!(format_credits(i64::MIN), "-9223372036854.775808");
        assert_eq!(format_credits(i64::MAX), "9223372036854.775807");
    }

    #[test]
    fn round_trips_exactly() {
        let samples = [
            0,
            1,
            9,
            10,
            99_999,
            100_000,
            999_999,
            1_000_000,
            1_000_001,
            1_500_000,
            123_456_789,
            987_654_321_000,
            MAX_MICROS_EXCLUSIVE - 1,
        ];
        for micros in samples {
            let text = format_credits(micros);
            assert_eq!(parse_credits(&text), Ok(micros), "via {text:?}");
        }
        for text in [
            "0",
            "1.5",
            "12",
            "0.000001",
            "42.424242",
            "9007199254.740991",
        ] {
            assert_eq!(format_credits(parse_credits(text).unwrap()), text);
        }
    }

    #[test]
    fn round_trips_a_sweep_of_small_and_large_values() {
        let mut micros = 1_i64;
        while micros < MAX_MICROS_EXCLUSIVE {
            for candidate in [micros - 1, micros, micros + 7] {
                if candidate >= MAX_MICROS_EXCLUSIVE {
                    continue;
                }
                let text = format_credits(candidate);
                assert_eq!(parse_credits(&text), Ok(candidate), "via {text:?}");
            }
            micros = micros * 3 + 1;
        }
    }
}
