//! Pricing a request (pure, no I/O): [`RateCard::price`] turns items into [`PricedLine`]s, and
//! [`apply_free_units`] takes off the free units left in the period and gives the amount due.
//!
//! Both use the rounding rule of [`super::price`]: each line's amount is its exact price
//! rounded down to a whole micro-credit.

use std::collections::BTreeMap;

use super::card::RateCard;
use super::decimal::AMOUNT_LIMIT;
use super::price::{PriceError, UnitPrice};
use crate::error::Error;

/// Largest quantity of one item: 2^53 − 1 units.
pub const MAX_QUANTITY: i64 = (1 << 53) - 1;

/// One thing a request asks for: `quantity` units of `sku`, with some of the SKU's multipliers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub sku: String,
    pub quantity: i64,
    /// Names of the SKU's multipliers to apply (each at most once), e.g. `["premium"]`.
    pub multipliers: Vec<String>,
}

impl Item {
    /// `quantity` units of `sku`, without multipliers.
    pub fn new(sku: impl Into<String>, quantity: i64) -> Item {
        Item {
            sku: sku.into(),
            quantity,
            multipliers: Vec::new(),
        }
    }

    /// The same item with these multipliers.
    pub fn with_multipliers<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Item {
        self.multipliers = names.into_iter().map(Into::into).collect();
        self
    }
}

/// An item priced by the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: String,
    pub quantity: i64,
    /// The multipliers applied, as asked.
    pub multipliers: Vec<String>,
    /// Exact micros per unit, multipliers included: `numerator / denominator` (denominator 1
    /// unless the price is finer than a micro-credit).
    pub unit_price: UnitPrice,
    /// Units of this SKU free in each billing period.
    pub free_quantity_per_period: i64,
    /// `floor(quantity × unit_price)`, before free units.
    pub amount_micros: i64,
}

/// A line after the period's free units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargedLine {
    pub line: PricedLine,
    /// Free units this line uses (0 ≤ free_applied ≤ quantity).
    pub free_applied: i64,
    /// `quantity − free_applied`.
    pub billable_quantity: i64,
    /// `floor(billable_quantity × unit_price)`.
    pub amount_due_micros: i64,
}

/// What a request costs once the free units are taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub lines: Vec<ChargedLine>,
    /// Free units used by the whole request.
    pub free_applied: i64,
    /// Sum of the lines' `amount_due_micros`.
    pub total_micros: i64,
}

impl Charge {
    /// Free units used per SKU by this request (only SKUs that used some), to add to the
    /// period's counters when the request is accepted.
    pub fn free_used_by_sku(&self) -> BTreeMap<String, i64> {
        let mut used = BTreeMap::new();
        for l in self.lines.iter().filter(|l| l.free_applied > 0) {
            *used.entry(l.line.sku.clone()).or_insert(0) += l.free_applied;
        }
        used
    }
}

/// A request the card cannot price, naming the item (`items[2].sku`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PricingError {
    pub field: String,
    pub message: String,
}

impl PricingError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> PricingError {
        PricingError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `INVALID_ARGUMENT` naming the same field.
impl From<PricingError> for Error {
    fn from(e: PricingError) -> Error {
        Error::InvalidArgument {
            field: e.field,
            message: e.message,
        }
    }
}

impl RateCard {
    /// Prices each item: unknown SKU or multiplier, a quantity outside 1 ≤ q < 2^53, or an
    /// amount of 2^53 micros or more is an error naming the item. Lines come in item order.
    pub fn price(&self, items: &[Item]) -> Result<Vec<PricedLine>, PricingError> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.price_item(i, item))
            .collect()
    }

    fn price_item(&self, i: usize, item: &Item) -> Result<PricedLine, PricingError> {
        let Some(sku) = self.sku(&item.sku) else {
            return Err(PricingError::new(
                format!("items[{i}].sku"),
                format!(
                    "{:?} is not on the rate card (version {:?})",
                    item.sku,
                    self.version()
                ),
            ));
        };
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(PricingError::new(
                format!("items[{i}].quantity"),
                format!(
                    "must be between 1 and {MAX_QUANTITY}, got {}",
                    item.quantity
                ),
            ));
        }
        let mut unit_price = sku.price;
        for (j, name) in item.multipliers.iter().enumerate() {
            let field = format!("items[{i}].multipliers[{j}]");
            let Some(factor) = sku.multipliers.get(name) else {
                return Err(PricingError::new(
                    field,
                    format!("{name:?} is not a multiplier of {:?}", sku.id),
                ));
            };
            if item.multipliers[..j].contains(name) {
                return Err(PricingError::new(field, format!("{name:?} is repeated")));
            }
            // The card checked every combination, so this cannot fail; keep the error anyway.
            unit_price = unit_price
                .times(*factor)
                .map_err(|e| PricingError::new(field, format!("the unit price {e}")))?;
        }
        let amount_micros = unit_price
            .amount_for(item.quantity)
            .map_err(|e| quantity_error(i, item.quantity, e))?;
        Ok(PricedLine {
            sku: sku.id.clone(),
            quantity: item.quantity,
            multipliers: item.multipliers.clone(),
            unit_price,
            free_quantity_per_period: sku.free_quantity,
            amount_micros,
        })
    }
}

fn quantity_error(i: usize, quantity: i64, e: PriceError) -> PricingError {
    PricingError::new(
        format!("items[{i}].quantity"),
        format!("{quantity} units {e}"),
    )
}

/// Takes the free units left this period off each line, in order. `used_this_period(sku)` is
/// how many free units of `sku` the account already used this period (before this request);
/// two lines of the same SKU share its free units, the first line first.
///
/// Per line: `free_applied = min(quantity, max(0, free_quantity − used))`, `billable =
/// quantity − free_applied`, `amount_due = floor(billable × unit_price)`; the total must stay
/// below 2^53 micros (else an error on field `items`).
pub fn apply_free_units(
    lines: &[PricedLine],
    used_this_period: impl Fn(&str) -> i64,
) -> Result<Charge, PricingError> {
    let mut used_here: BTreeMap<&str, i64> = BTreeMap::new();
    let mut charged = Vec::with_capacity(lines.len());
    let (mut free_total, mut total) = (0i64, 0i64);
    for (i, line) in lines.iter().enumerate() {
        let before = used_this_period(&line.sku).max(0);
        let here = used_here.entry(line.sku.as_str()).or_insert(0);
        let left = line
            .free_quantity_per_period
            .saturating_sub(before)
            .saturating_sub(*here)
            .max(0);
        let free_applied = line.quantity.min(left);
        *here += free_applied;
        let billable_quantity = line.quantity - free_applied;
        let amount_due_micros = line
            .unit_price
            .amount_for(billable_quantity)
            .map_err(|e| quantity_error(i, billable_quantity, e))?;
        free_total = free_total.saturating_add(free_applied);
        total += amount_due_micros;
        if total >= AMOUNT_LIMIT as i64 {
            return Err(PricingError::new(
                "items",
                format!("the lines come to {}", PriceError::AmountTooLarge),
            ));
        }
        charged.push(ChargedLine {
            line: line.clone(),
            free_applied,
            billable_quantity,
            amount_due_micros,
        });
    }
    Ok(Charge {
        lines: charged,
        free_applied: free_total,
        total_micros: total,
    })
}
