//! The validated rate card: SKUs with exact unit prices, plans with their allowances, and the
//! top-up increment. [`RateCard::from_file`] and friends refuse a bad file with a [`CardError`]
//! that names the field (`skus[3].price: "1.2.3" is not a decimal number of credits`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::decimal::{Decimal, DecimalError, AMOUNT_LIMIT};
use super::file::{self, Format, RawCard, RawPlan, RawSku, Scalar};
use super::price::{PriceError, UnitPrice, MAX_PRICE_DECIMALS};
use crate::api::validate;

/// Most SKUs and plans in one card.
pub const MAX_SKUS: usize = 10_000;
pub const MAX_PLANS: usize = 1_000;
/// Most multipliers one SKU may offer (every combination is checked when the card is loaded).
pub const MAX_MULTIPLIERS: usize = 8;
/// Decimal places of a multiplier.
pub const MAX_MULTIPLIER_DECIMALS: u32 = 6;
/// Longest version, unit, currency and description texts, in characters.
pub const MAX_VERSION_CHARS: usize = 64;
pub const MAX_UNIT_CHARS: usize = 32;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// A mistake in a rate card: the field path (`skus[3].price`, or `file` for the whole file)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CardError {
    pub field: String,
    pub message: String,
}

impl CardError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> CardError {
        CardError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One thing sold: its unit and exact price per unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku {
    pub id: String,
    /// What one unit is: `row`, `run`, `call`, `image`, `second`, `1k_tokens`...
    pub unit: String,
    pub price: UnitPrice,
    /// Units free in each billing period (0 = none).
    pub free_quantity: i64,
    /// Named factors on the unit price (e.g. a model tier), by name.
    pub multipliers: BTreeMap<String, Decimal>,
    pub description: String,
}

/// A plan: the allowance its accounts receive each period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: String,
    pub allowance_micros: i64,
    pub description: String,
    /// What the plan costs per month, in the card's currency.
    pub monthly_price: Option<Decimal>,
}

/// A validated rate card. Immutable: a reload builds a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCard {
    version: String,
    currency: String,
    top_up_increment_micros: i64,
    skus: Vec<Sku>,
    plans: Vec<Plan>,
    sku_index: HashMap<String, usize>,
    plan_index: HashMap<String, usize>,
}

impl RateCard {
    /// Reads and validates a file: TOML when its name ends in `.toml`, else YAML. The error
    /// names the field; an unreadable file is field `file`.
    pub fn from_file(path: &Path) -> Result<RateCard, CardError> {
        let text = file::read(path)?;
        RateCard::parse(&text, Format::of(path))
    }

    pub fn from_yaml(text: &str) -> Result<RateCard, CardError> {
        RateCard::parse(text, Format::Yaml)
    }

    pub fn from_toml(text: &str) -> Result<RateCard, CardError> {
        RateCard::parse(text, Format::Toml)
    }

    pub fn parse(text: &str, format: Format) -> Result<RateCard, CardError> {
        validate_card(file::parse(text, format)?)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// ISO 4217 code of plan prices (empty when the card sets none).
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// Top-ups are sold in multiples of this (0 when the card sets none).
    pub fn top_up_increment_micros(&self) -> i64 {
        self.top_up_increment_micros
    }

    /// In file order.
    pub fn skus(&self) -> &[Sku] {
        &self.skus
    }

    /// In file order.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    pub fn sku(&self, id: &str) -> Option<&Sku> {
        self.sku_index.get(id).map(|i| &self.skus[*i])
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plan_index.get(id).map(|i| &self.plans[*i])
    }
}

// ---- validation ------------------------------------------------------------------------------

fn validate_card(raw: RawCard) -> Result<RateCard, CardError> {
    let version = match &raw.version {
        None => return Err(CardError::new("version", "is required")),
        Some(Scalar::Text(v)) => v.clone(),
        Some(Scalar::Integer(v)) => v.to_string(),
        Some(_) => {
            return Err(CardError::new(
                "version",
                "must be a string, e.g. \"2025-06\"",
            ))
        }
    };
    text("version", &version, MAX_VERSION_CHARS, true)?;

    let currency = raw.currency.clone().unwrap_or_default();
    let iso_code = currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase());
    if !currency.is_empty() && !iso_code {
        return Err(CardError::new(
            "currency",
            format!("{currency:?} is not a three-letter ISO 4217 code such as \"USD\""),
        ));
    }

    let top_up_increment_micros = match &raw.top_up_increment {
        None => 0,
        Some(v) => {
            let micros = credits_micros("top_up_increment", v)?;
            if micros == 0 {
                return Err(CardError::new(
                    "top_up_increment",
                    "must be more than 0 credits (leave it out if top-ups are not sold)",
                ));
            }
            micros
        }
    };

    if raw.skus.len() > MAX_SKUS {
        return Err(CardError::new(
            "skus",
            format!("at most {MAX_SKUS} SKUs, got {}", raw.skus.len()),
        ));
    }
    if raw.plans.len() > MAX_PLANS {
        return Err(CardError::new(
            "plans",
            format!("at most {MAX_PLANS} plans, got {}", raw.plans.len()),
        ));
    }

    let mut skus = Vec::with_capacity(raw.skus.len());
    let mut sku_index = HashMap::with_capacity(raw.skus.len());
    for (i, s) in raw.skus.iter().enumerate() {
        let sku = validate_sku(&format!("skus[{i}]"), s)?;
        if let Some(first) = sku_index.insert(sku.id.clone(), i) {
            return Err(CardError::new(
                format!("skus[{i}].sku"),
                format!("{:?} is already defined by skus[{first}]", sku.id),
            ));
        }
        skus.push(sku);
    }

    let mut plans = Vec::with_capacity(raw.plans.len());
    let mut plan_index = HashMap::with_capacity(raw.plans.len());
    for (i, p) in raw.plans.iter().enumerate() {
        let plan = validate_plan(&format!("plans[{i}]"), p)?;
        if plan.monthly_price.is_some() && currency.is_empty() {
            return Err(CardError::new(
                "currency",
                format!("is required because plans[{i}] has a monthly_price"),
            ));
        }
        if let Some(first) = plan_index.insert(plan.id.clone(), i) {
            return Err(CardError::new(
                format!("plans[{i}].plan_id"),
                format!("{:?} is already defined by plans[{first}]", plan.id),
            ));
        }
        plans.push(plan);
    }

    Ok(RateCard {
        version,
        currency,
        top_up_increment_micros,
        skus,
        plans,
        sku_index,
        plan_index,
    })
}

fn validate_sku(at: &str, raw: &RawSku) -> Result<Sku, CardError> {
    let id = required_id(&format!("{at}.sku"), raw.sku.as_deref())?;
    let unit = required_id(&format!("{at}.unit"), raw.unit.as_deref())?;
    if unit.chars().count() > MAX_UNIT_CHARS {
        return Err(CardError::new(
            format!("{at}.unit"),
            format!("must be at most {MAX_UNIT_CHARS} characters"),
        ));
    }
    let price_field = format!("{at}.price");
    let Some(price) = &raw.price else {
        return Err(CardError::new(
            price_field,
            "is required (a decimal string of credits per unit; \"0\" for a free feature)",
        ));
    };
    let price_decimal = decimal(&price_field, price, "credits")?;
    let price = UnitPrice::from_credits(price_decimal)
        .map_err(|e| price_error(&price_field, price_decimal, e))?;

    let free_quantity = match &raw.free_quantity {
        None => 0,
        Some(v) => whole_count(&format!("{at}.free_quantity"), v)?,
    };

    if raw.multipliers.0.len() > MAX_MULTIPLIERS {
        return Err(CardError::new(
            format!("{at}.multipliers"),
            format!(
                "at most {MAX_MULTIPLIERS} multipliers, got {}",
                raw.multipliers.0.len()
            ),
        ));
    }
    let mut multipliers = BTreeMap::new();
    for (name, value) in &raw.multipliers.0 {
        let field = format!("{at}.multipliers.{name}");
        validate::id(&field, name).map_err(|e| from_model(&field, e))?;
        let factor = decimal(&field, value, "a factor")?
            .at_most_decimals(MAX_MULTIPLIER_DECIMALS)
            .map_err(|e| decimal_error(&field, value, e, "a factor"))?;
        multipliers.insert(name.clone(), factor);
    }
    check_every_combination(at, price, &multipliers)?;

    Ok(Sku {
        id,
        unit,
        price,
        free_quantity,
        multipliers,
        description: description(&format!("{at}.description"), &raw.description)?,
    })
}

/// Every choice of multipliers must give a unit price in range, so that pricing a request can
/// only fail on the request itself (an unknown SKU, a quantity too large), never on the card.
fn check_every_combination(
    at: &str,
    price: UnitPrice,
    multipliers: &BTreeMap<String, Decimal>,
) -> Result<(), CardError> {
    let factors: Vec<(&String, &Decimal)> = multipliers.iter().collect();
    for mask in 1u32..(1 << factors.len()) {
        let mut p = price;
        let mut names = Vec::new();
        for (bit, (name, factor)) in factors.iter().enumerate() {
            if mask & (1 << bit) != 0 {
                names.push(name.as_str());
                p = p.times(**factor).map_err(|e| {
                    CardError::new(
                        format!("{at}.multipliers"),
                        format!("the price times {} {e}", names.join(" × ")),
                    )
                })?;
            }
        }
    }
    Ok(())
}

fn validate_plan(at: &str, raw: &RawPlan) -> Result<Plan, CardError> {
    let id = required_id(&format!("{at}.plan_id"), raw.plan_id.as_deref())?;
    let field = format!("{at}.allowance");
    let Some(allowance) = &raw.allowance else {
        return Err(CardError::new(
            field,
            "is required (a decimal string of credits per period)",
        ));
    };
    let allowance_micros = credits_micros(&field, allowance)?;
    let monthly_price = match &raw.monthly_price {
        None => None,
        Some(v) => {
            let field = format!("{at}.monthly_price");
            Some(
                decimal(&field, v, "money")?
                    .at_most_decimals(6)
                    .map_err(|e| decimal_error(&field, v, e, "money"))?,
            )
        }
    };
    Ok(Plan {
        id,
        allowance_micros,
        description: description(&format!("{at}.description"), &raw.description)?,
        monthly_price,
    })
}

// ---- field rules -----------------------------------------------------------------------------

fn required_id(field: &str, value: Option<&str>) -> Result<String, CardError> {
    let value = value.unwrap_or_default();
    validate::id(field, value).map_err(|e| from_model(field, e))
}

fn from_model(field: &str, err: crate::error::Error) -> CardError {
    match err {
        crate::error::Error::InvalidArgument { message, .. } => CardError::new(field, message),
        other => CardError::new(field, other.to_string()),
    }
}

fn text(field: &str, value: &str, max: usize, required: bool) -> Result<(), CardError> {
    if required && value.trim().is_empty() {
        return Err(CardError::new(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(CardError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(CardError::new(field, "must not contain control characters"));
    }
    Ok(())
}

fn description(field: &str, value: &Option<String>) -> Result<String, CardError> {
    let value = value.clone().unwrap_or_default();
    text(field, &value, MAX_DESCRIPTION_CHARS, false)?;
    Ok(value)
}

/// A decimal of `what` ("credits", "a factor", "money"), any number of places.
fn decimal(field: &str, value: &Scalar, what: &str) -> Result<Decimal, CardError> {
    let text = value.decimal_text().map_err(|m| CardError::new(field, m))?;
    text.parse::<Decimal>()
        .map_err(|e| decimal_error(field, value, e, what))
}

fn decimal_error(field: &str, value: &Scalar, err: DecimalError, what: &str) -> CardError {
    let shown = match value.decimal_text() {
        Ok(t) => format!("{t:?}"),
        Err(_) => "the value".to_string(),
    };
    let message = match err {
        DecimalError::Empty => "is empty: write a decimal string such as \"1\"".to_string(),
        DecimalError::Malformed => format!("{shown} is not a decimal number of {what}"),
        DecimalError::Negative => format!("{shown} is negative"),
        DecimalError::TooPrecise { max } => {
            format!("{shown} has more than {max} decimal places")
        }
        DecimalError::TooLarge => format!("{shown} is too large"),
    };
    CardError::new(field, message)
}

fn price_error(field: &str, value: Decimal, err: PriceError) -> CardError {
    let message = match err {
        PriceError::TooPrecise => format!(
            "\"{value}\" has more than {MAX_PRICE_DECIMALS} decimal places (finer than a millionth of a micro-credit)"
        ),
        PriceError::TooLarge | PriceError::AmountTooLarge => {
            format!("\"{value}\" credits per unit {}", PriceError::TooLarge)
        }
    };
    CardError::new(field, message)
}

/// An amount of credits as exact micros: at most six decimal places, below 2^53 micros.
fn credits_micros(field: &str, value: &Scalar) -> Result<i64, CardError> {
    decimal(field, value, "credits")?
        .to_micros()
        .map_err(|e| match e {
            DecimalError::TooLarge => CardError::new(
                field,
                format!(
                    "{:?} credits is 2^53 micro-credits or more",
                    value.decimal_text().unwrap_or_default()
                ),
            ),
            other => decimal_error(field, value, other, "credits"),
        })
}

/// A whole number of units, 0 ≤ n < 2^53.
fn whole_count(field: &str, value: &Scalar) -> Result<i64, CardError> {
    let d = decimal(field, value, "units")?;
    if d.scale() > 0 {
        return Err(CardError::new(
            field,
            format!("\"{d}\" is not a whole number of units"),
        ));
    }
    if d.digits() >= AMOUNT_LIMIT as u128 {
        return Err(CardError::new(field, format!("\"{d}\" is 2^53 or more")));
    }
    Ok(d.digits() as i64)
}
