//! The rate card: what each action costs, what each plan includes, how top-ups are sold.
//!
//! - [`decimal`]: exact decimal text ("0.2", "0.0000002") → integers, no floats.
//! - [`price`]: [`UnitPrice`], an exact rational of micro-credits per unit, and the rounding
//!   rule (a line's amount is rounded DOWN to a whole micro-credit), with the integer-only
//!   formula the Lua scripts use to get the same amounts.
//! - [`card`]: the validated [`RateCard`] and its [`CardError`]s naming the field.
//! - [`file`]: the YAML / TOML file format.
//! - [`lines`]: pricing a request ([`RateCard::price`]) and taking off the period's free units
//!   ([`apply_free_units`]); pure, no I/O.
//! - [`reload`]: the active card ([`RateCardCell`]) and its file ([`RateCardFile`]), reloaded
//!   atomically on SIGHUP.
//!
//! A hold keeps the prices it was reserved at: callers copy the [`PricedLine`]s (and the card's
//! version) into what they store, so a reload changes only later requests.

pub mod card;
pub mod decimal;
pub mod file;
pub mod lines;
pub mod price;
pub mod reload;

pub use card::{CardError, Plan, RateCard, Sku};
pub use decimal::Decimal;
pub use file::Format;
pub use lines::{apply_free_units, Charge, ChargedLine, Item, PricedLine, PricingError};
pub use price::UnitPrice;
pub use reload::{LoadError, RateCardCell, RateCardFile};
