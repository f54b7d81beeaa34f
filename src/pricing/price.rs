//! Exact unit prices and line amounts, in integers only.
//!
//! A unit price is the rational `numerator / denominator` micro-credits per unit, where the
//! denominator is a power of ten: `1` for every price with at most six decimal places of a
//! credit (whole micros, the common case), up to [`MAX_PRICE_DENOMINATOR`] for finer prices
//! such as 0.0000002 credits per token (`2 / 10` micros).
//!
//! **Rounding rule.** A line's amount is `floor(units × numerator / denominator)`: the exact
//! product rounded DOWN to a whole micro-credit, once per line. So a line never costs more than
//! its exact price, and less by under one micro. When the price is whole micros there is no
//! rounding at all. An amount of 2^53 micros or more is an error, never a wrap.
//!
//! **The same arithmetic in Lua** (numbers are doubles, exact for integers below 2^53). With
//! `n`, `d` the line's unit price and `u` the billable units (`1 ≤ u < 2^53`):
//!
//! ```lua
//! local amount
//! if d == 1 then
//!   amount = u * n                       -- exact when < 2^53; >= 2^53 means overflow
//! else
//!   local a = math.floor(u / d)          -- exact: see below
//!   local b = u - a * d                  -- 0 <= b < d
//!   amount = a * n + math.floor(b * n / d)
//! end
//! if amount >= 9007199254740992 then return error("AMOUNT_TOO_LARGE") end
//! ```
//!
//! Why this is exact: the card guarantees `n < 2^53` and, when `d > 1`, `n × d < 2^53`, so
//! `b × n < 2^53` is exact; for integers `x < 2^53` the double `x / d` is within less than `1/d`
//! of the true quotient, so `floor` of it is the true floor; a product or sum that reaches 2^53
//! stays ≥ 2^53 after rounding, so the final check catches every overflow. The test
//! `lua_formula_matches_exact_arithmetic` runs this formula on doubles against this module.

use super::decimal::{pow10, Decimal, AMOUNT_LIMIT};

/// Finest unit price: a millionth of a micro-credit (12 decimal places of a credit).
pub const MAX_PRICE_DENOMINATOR: i64 = 1_000_000;
/// Decimal places of a credit a price may have.
pub const MAX_PRICE_DECIMALS: u32 = 12;

/// An exact price per unit: `numerator / denominator` micro-credits, reduced so that the
/// denominator is the smallest power of ten that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnitPrice {
    numerator: i64,
    denominator: i64,
}

/// Why a unit price or an amount is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("is finer than {MAX_PRICE_DECIMALS} decimal places of a credit")]
    TooPrecise,
    #[error("is too large (a unit price must stay below 2^53 micro-credits, and below 2^53 / denominator when finer than a micro)")]
    TooLarge,
    #[error("comes to 2^53 micro-credits or more")]
    AmountTooLarge,
}

impl UnitPrice {
    /// Free.
    pub const ZERO: UnitPrice = UnitPrice {
        numerator: 0,
        denominator: 1,
    };

    /// A whole number of micro-credits per unit.
    pub fn from_micros(micros: i64) -> Result<UnitPrice, PriceError> {
        if micros < 0 {
            return Err(PriceError::TooLarge);
        }
        UnitPrice::from_ratio(micros as u128, 1)
    }

    /// A price written in credits, exactly.
    pub fn from_credits(credits: Decimal) -> Result<UnitPrice, PriceError> {
        // credits = digits / 10^scale, so micros = digits × 10^6 / 10^scale.
        let scale = credits.scale();
        if scale > MAX_PRICE_DECIMALS {
            return Err(PriceError::TooPrecise);
        }
        if scale <= 6 {
            let num = credits
                .digits()
                .checked_mul(pow10(6 - scale))
                .ok_or(PriceError::TooLarge)?;
            UnitPrice::from_ratio(num, 1)
        } else {
            UnitPrice::from_ratio(credits.digits(), pow10(scale - 6))
        }
    }

    /// `num / den` micros, `den` a power of ten: reduced, then checked against the ranges above.
    fn from_ratio(num: u128, den: u128) -> Result<UnitPrice, PriceError> {
        let (mut num, mut den) = (num, den);
        while den > 1 && num % 10 == 0 {
            num /= 10;
            den /= 10;
        }
        if num == 0 {
            den = 1;
        }
        if den > MAX_PRICE_DENOMINATOR as u128 {
            return Err(PriceError::TooPrecise);
        }
        let limit = AMOUNT_LIMIT as u128;
        if num >= limit || (den > 1 && num * den >= limit) {
            return Err(PriceError::TooLarge);
        }
        Ok(UnitPrice {
            numerator: num as i64,
            denominator: den as i64,
        })
    }

    /// Micros per unit are `numerator() / denominator()`.
    pub fn numerator(&self) -> i64 {
        self.numerator
    }

    /// A power of ten: 1 when the price is whole micros.
    pub fn denominator(&self) -> i64 {
        self.denominator
    }

    /// The price in whole micros per unit, when it is one (denominator 1).
    pub fn whole_micros(&self) -> Option<i64> {
        (self.denominator == 1).then_some(self.numerator)
    }

    /// Whole micros per unit, rounded down (the exact price when [`Self::whole_micros`] is set).
    pub fn floor_micros(&self) -> i64 {
        self.numerator / self.denominator
    }

    pub fn is_zero(&self) -> bool {
        self.numerator == 0
    }

    /// The price in credits, as exact decimal text ("0.2", "0.0000002").
    pub fn to_credits(&self) -> Decimal {
        // micros = n / 10^k, so credits = n / 10^(k + 6).
        let k = self.denominator.ilog10();
        Decimal::new(self.numerator as u128, k + 6)
    }

    /// This price times a factor (a multiplier), exactly.
    pub fn times(&self, factor: Decimal) -> Result<UnitPrice, PriceError> {
        if factor.scale() > MAX_PRICE_DECIMALS {
            return Err(PriceError::TooPrecise);
        }
        let num = (self.numerator as u128)
            .checked_mul(factor.digits())
            .ok_or(PriceError::TooLarge)?;
        let den = (self.denominator as u128)
            .checked_mul(pow10(factor.scale()))
            .ok_or(PriceError::TooPrecise)?;
        UnitPrice::from_ratio(num, den)
    }

    /// `floor(units × price)` micro-credits: the rounding rule of this module. `units` must be
    /// non-negative; 2^53 micros or more is [`PriceError::AmountTooLarge`].
    pub fn amount_for(&self, units: i64) -> Result<i64, PriceError> {
        let units = u128::try_from(units).map_err(|_| PriceError::AmountTooLarge)?;
        let amount = units * self.numerator as u128 / self.denominator as u128;
        if amount >= AMOUNT_LIMIT as u128 {
            return Err(PriceError::AmountTooLarge);
        }
        Ok(amount as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: i64 = 1 << 53;

    fn credits(text: &str) -> UnitPrice {
        UnitPrice::from_credits(text.parse().expect("decimal")).expect("price")
    }

    #[test]
    fn prices_in_credits_become_exact_rationals_of_micros() {
        let table = [
            ("0", 0, 1),
            ("1", 1_000_000, 1),
            ("0.2", 200_000, 1),
            ("50", 50_000_000, 1),
            ("0.000001", 1, 1),
            ("0.0002", 200, 1),
            ("0.00002", 20, 1),
            ("0.0000002", 2, 10),
            ("0.0000015", 15, 10),
            ("0.000000000001", 1, 1_000_000),
            ("1.0000005", 10_000_005, 10),
        ];
        for (text, num, den) in table {
            let p = credits(text);
            assert_eq!((p.numerator(), p.denominator()), (num, den), "{text}");
            assert_eq!(p.to_credits().to_string(), text, "{text} back to credits");
        }
        assert_eq!(credits("0.2").whole_micros(), Some(200_000));
        assert_eq!(credits("0.0000015").whole_micros(), None);
        assert_eq!(credits("0.0000015").floor_micros(), 1);
    }

    #[test]
    fn out_of_range_prices_are_refused() {
        let d = |t: &str| t.parse::<Decimal>().expect("decimal");
        assert_eq!(
            UnitPrice::from_credits(d("0.0000000000001")),
            Err(PriceError::TooPrecise)
        );
        // 2^53 micros = 9007199254.740992 credits.
        assert_eq!(
            UnitPrice::from_credits(d("9007199254.740992")),
            Err(PriceError::TooLarge)
        );
        assert!(UnitPrice::from_credits(d("9007199254.740991")).is_ok());
        // Finer than a micro: numerator × denominator must stay below 2^53.
        assert_eq!(
            UnitPrice::from_credits(d("900719925.4740993")),
            Err(PriceError::TooLarge)
        );
        assert_eq!(UnitPrice::from_micros(-1), Err(PriceError::TooLarge));
        assert_eq!(UnitPrice::from_micros(LIMIT), Err(PriceError::TooLarge));
    }

    #[test]
    fn multipliers_apply_exactly() {
        let d = |t: &str| t.parse::<Decimal>().expect("decimal");
        assert_eq!(credits("0.2").times(d("2.5")), Ok(credits("0.5")));
        assert_eq!(credits("5").times(d("0.333333")), Ok(credits("1.666665")));
        assert_eq!(credits("0.0000002").times(d("5")), Ok(credits("0.000001")));
        assert_eq!(
            credits("0.0000002").times(d("1.5")),
            Ok(credits("0.0000003"))
        );
        assert_eq!(credits("1").times(d("0")), Ok(UnitPrice::ZERO));
        assert_eq!(
            credits("0.000000000001").times(d("0.1")),
            Err(PriceError::TooPrecise)
        );
        assert_eq!(
            credits("9000000000").times(d("2")),
            Err(PriceError::TooLarge)
        );
    }

    #[test]
    fn amounts_round_down_once_per_line() {
        // 0.2 credits per 1k tokens: whole micros, no rounding.
        assert_eq!(credits("0.2").amount_for(3), Ok(600_000));
        // 0.0000002 credits per token = 0.2 micros: 7 tokens = 1.4 micros → 1.
        let per_token = credits("0.0000002");
        assert_eq!(per_token.amount_for(7), Ok(1));
        assert_eq!(per_token.amount_for(4), Ok(0));
        assert_eq!(per_token.amount_for(5), Ok(1));
        assert_eq!(per_token.amount_for(1_000_000), Ok(200_000));
        // Never more than the exact price, and less by under one micro.
        let p = credits("0.0000015");
        for units in 0..1_000i64 {
            let amount = p.amount_for(units).expect("amount") as i128;
            let exact_times_den = units as i128 * 15;
            assert!(amount * 10 <= exact_times_den, "{units}");
            assert!(exact_times_den < (amount + 1) * 10, "{units}");
        }
    }

    #[test]
    fn huge_quantities_are_exact_up_to_the_limit_and_then_refused() {
        let one = UnitPrice::from_micros(1).expect("price");
        assert_eq!(one.amount_for(LIMIT - 1), Ok(LIMIT - 1));
        assert_eq!(one.amount_for(LIMIT), Err(PriceError::AmountTooLarge));
        let tenth = credits("0.0000001");
        assert_eq!(tenth.amount_for(LIMIT - 1), Ok((LIMIT - 1) / 10));
        let million = credits("1");
        assert_eq!(
            million.amount_for(LIMIT - 1),
            Err(PriceError::AmountTooLarge)
        );
        assert_eq!(million.amount_for(9_007_199_254), Ok(9_007_199_254_000_000));
        assert_eq!(
            million.amount_for(9_007_199_255),
            Err(PriceError::AmountTooLarge)
        );
        assert_eq!(
            million.amount_for(i64::MAX),
            Err(PriceError::AmountTooLarge)
        );
        assert_eq!(million.amount_for(-1), Err(PriceError::AmountTooLarge));
    }

    /// The Lua formula of the module doc, run on doubles as Redis' Lua would (test-only floats).
    fn lua_amount(u: i64, n: i64, d: i64) -> Option<i64> {
        let (u, n, d) = (u as f64, n as f64, d as f64);
        let amount = if d == 1.0 {
            u * n
        } else {
            let a = (u / d).floor();
            let b = u - a * d;
            a * n + (b * n / d).floor()
        };
        (amount < 9_007_199_254_740_992.0).then_some(amount as i64)
    }

    proptest::proptest! {
        #[test]
        fn lua_formula_matches_exact_arithmetic(
            num in 0i64..(1 << 53),
            scale in 0u32..=6,
            units in 0i64..(1 << 53),
            small_units in 0i64..1_000_000,
        ) {
            let den = 10i64.pow(scale);
            let num = if den > 1 { num % ((1i64 << 53) / den) } else { num };
            if let Ok(price) = UnitPrice::from_ratio(num as u128, den as u128) {
                for u in [units, small_units, (1 << 53) - 1 - small_units] {
                    let rust = price.amount_for(u).ok();
                    let lua = lua_amount(u, price.numerator(), price.denominator());
                    proptest::prop_assert_eq!(rust, lua, "u={} price={:?}", u, price);
                }
            }
        }
    }
}
