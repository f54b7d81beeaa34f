//! Exact decimal numbers as written in the rate card ("0.2", "1", "50", "0.0000002").
//!
//! Parsing is integer-only: the text becomes `digits / 10^scale` with `digits` a `u128`; nothing
//! is ever converted through a float. A value has no sign (money in the card is never negative),
//! no exponent, no separators, at least one digit before the point and at least one after it
//! when there is a point.

use std::fmt;
use std::str::FromStr;

/// Micro-credits in one credit.
pub const MICROS_PER_CREDIT: u64 = 1_000_000;
/// Decimal places of a credit that one micro-credit holds.
pub const MICRO_DECIMALS: u32 = 6;
/// Every amount is below this bound (Lua numbers are doubles: integers are exact below 2^53).
pub const AMOUNT_LIMIT: u64 = 1 << 53;
/// Significant digits a decimal may have (10^36 < 2^128).
const MAX_DIGITS: usize = 36;

/// A non-negative decimal number, exactly `digits / 10^scale`, normalized (no trailing zero
/// after the point, so `"2.50"` and `"2.5"` are equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    digits: u128,
    scale: u32,
}

/// Why a text is not an acceptable decimal; the caller adds the field and the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("is empty")]
    Empty,
    #[error("is negative")]
    Negative,
    #[error("is not a decimal number")]
    Malformed,
    #[error("has more than {max} decimal places")]
    TooPrecise { max: u32 },
    #[error("is too large")]
    TooLarge,
}

impl Decimal {
    pub const ZERO: Decimal = Decimal {
        digits: 0,
        scale: 0,
    };

    /// The integer `value`.
    pub fn from_integer(value: u64) -> Decimal {
        Decimal {
            digits: value as u128,
            scale: 0,
        }
    }

    /// `digits / 10^scale`, normalized.
    pub fn new(digits: u128, scale: u32) -> Decimal {
        let (mut digits, mut scale) = (digits, scale);
        while scale > 0 && digits % 10 == 0 {
            digits /= 10;
            scale -= 1;
        }
        if digits == 0 {
            scale = 0;
        }
        Decimal { digits, scale }
    }

    /// The integer numerator: the value is `digits() / 10^scale()`.
    pub fn digits(&self) -> u128 {
        self.digits
    }

    /// Decimal places (the value is `digits() / 10^scale()`).
    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn is_zero(&self) -> bool {
        self.digits == 0
    }

    /// This amount of credits as whole micro-credits, exactly: more than six decimal places is
    /// [`DecimalError::TooPrecise`], 2^53 micros or more is [`DecimalError::TooLarge`].
    pub fn to_micros(&self) -> Result<i64, DecimalError> {
        if self.scale > MICRO_DECIMALS {
            return Err(DecimalError::TooPrecise {
                max: MICRO_DECIMALS,
            });
        }
        let micros = self
            .digits
            .checked_mul(pow10(MICRO_DECIMALS - self.scale))
            .filter(|m| *m < AMOUNT_LIMIT as u128)
            .ok_or(DecimalError::TooLarge)?;
        Ok(micros as i64)
    }

    /// Refuses more than `max` decimal places.
    pub fn at_most_decimals(self, max: u32) -> Result<Decimal, DecimalError> {
        if self.scale > max {
            Err(DecimalError::TooPrecise { max })
        } else {
            Ok(self)
        }
    }
}

/// 10^exp as u128 (`exp` ≤ 38).
pub(crate) fn pow10(exp: u32) -> u128 {
    10u128.pow(exp)
}

impl FromStr for Decimal {
    type Err = DecimalError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(DecimalError::Empty);
        }
        if let Some(rest) = text.strip_prefix('-') {
            return match rest.parse::<Decimal>() {
                Ok(d) if d.is_zero() => Ok(d),
                Ok(_) => Err(DecimalError::Negative),
                Err(_) => Err(DecimalError::Malformed),
            };
        }
        let (int, frac) = match text.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(DecimalError::Malformed);
        }
        let int = int.trim_start_matches('0');
        let frac = frac.unwrap_or("").trim_end_matches('0');
        if int.len() + frac.len() > MAX_DIGITS {
            return Err(DecimalError::TooLarge);
        }
        let mut digits: u128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            digits = digits * 10 + u128::from(b - b'0');
        }
        Ok(Decimal::new(digits, frac.len() as u32))
    }
}

impl fmt::Display for Decimal {
    /// The shortest exact text: `"0.2"`, `"50"`, `"0.0000002"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = pow10(self.scale);
        let (int, frac) = (self.digits / unit, self.digits % unit);
        if self.scale == 0 {
            write!(f, "{int}")
        } else {
            write!(f, "{int}.{frac:0width$}", width = self.scale as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_exactly_and_normalizes() {
        let table = [
            ("0", 0, 0, "0"),
            ("0.2", 2, 1, "0.2"),
            ("1", 1, 0, "1"),
            ("50", 50, 0, "50"),
            ("2.50", 25, 1, "2.5"),
            ("007.100", 71, 1, "7.1"),
            ("0.0000002", 2, 7, "0.0000002"),
            ("-0", 0, 0, "0"),
            (
                "123456789.123456789",
                123_456_789_123_456_789,
                9,
                "123456789.123456789",
            ),
        ];
        for (text, digits, scale, shown) in table {
            let v = d(text);
            assert_eq!((v.digits(), v.scale()), (digits, scale), "{text}");
            assert_eq!(v.to_string(), shown, "{text}");
        }
        assert_eq!(d("2.50"), d("2.5"));
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        let table = [
            ("", DecimalError::Empty),
            ("-1", DecimalError::Negative),
            ("-0.5", DecimalError::Negative),
            ("1.2.3", DecimalError::Malformed),
            (".5", DecimalError::Malformed),
            ("5.", DecimalError::Malformed),
            ("1e3", DecimalError::Malformed),
            ("+1", DecimalError::Malformed),
            (" 1", DecimalError::Malformed),
            ("1_000", DecimalError::Malformed),
            ("1,5", DecimalError::Malformed),
            ("--1", DecimalError::Malformed),
            ("NaN", DecimalError::Malformed),
            ("١", DecimalError::Malformed),
            (
                "1234567890123456789012345678901234567",
                DecimalError::TooLarge,
            ),
        ];
        for (text, want) in table {
            assert_eq!(text.parse::<Decimal>(), Err(want), "{text:?}");
        }
    }

    #[test]
    fn credits_to_micros_is_exact() {
        let table = [
            ("0", 0),
            ("0.000001", 1),
            ("0.2", 200_000),
            ("1", 1_000_000),
            ("1.5", 1_500_000),
            ("10", 10_000_000),
            ("9007199254.740991", (1i64 << 53) - 1),
        ];
        for (text, micros) in table {
            assert_eq!(d(text).to_micros(), Ok(micros), "{text}");
        }
        assert_eq!(
            d("0.0000001").to_micros(),
            Err(DecimalError::TooPrecise { max: 6 })
        );
        assert_eq!(
            d("9007199254.740992").to_micros(),
            Err(DecimalError::TooLarge)
        );
        assert_eq!(
            d("99999999999999999999999999999999").to_micros(),
            Err(DecimalError::TooLarge)
        );
    }

    #[test]
    fn decimal_places_can_be_capped() {
        assert_eq!(d("2.5").at_most_decimals(1), Ok(d("2.5")));
        assert_eq!(
            d("2.55").at_most_decimals(1),
            Err(DecimalError::TooPrecise { max: 1 })
        );
    }
}
