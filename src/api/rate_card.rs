//! `GetRateCard`: the active rate card as a message, and the answer when there is none.

use std::collections::HashMap;
use std::time::Instant;

use tonic::{Code, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::errors::DOMAIN;
use crate::pricing::{RateCard, RateCardCell};
use crate::proto;
use crate::telemetry::metrics;

/// The `ErrorInfo.reason` when the server runs without `--pricing`.
pub const NOT_CONFIGURED: &str = "RATE_CARD_NOT_CONFIGURED";

/// The active card, or `FAILED_PRECONDITION` / `RATE_CARD_NOT_CONFIGURED`.
pub fn get(cell: &RateCardCell) -> Result<Response<proto::RateCard>, Status> {
    let started = Instant::now();
    let answer = match cell.current() {
        Some(card) => Ok(Response::new(message(&card))),
        None => Err(not_configured()),
    };
    let outcome = if answer.is_ok() {
        "ok"
    } else {
        "rate_card_not_configured"
    };
    metrics::record_rpc("get_rate_card", outcome, started.elapsed());
    answer
}

pub fn not_configured() -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(NOT_CONFIGURED, DOMAIN, HashMap::new());
    Status::with_error_details(
        Code::FailedPrecondition,
        "no rate card is configured (start creditd with --pricing FILE)",
        details,
    )
}

/// The card as `GetRateCard` returns it, SKUs and plans in file order.
pub fn message(card: &RateCard) -> proto::RateCard {
    proto::RateCard {
        version: card.version().to_string(),
        currency: card.currency().to_string(),
        top_up_increment_micros: card.top_up_increment_micros(),
        skus: card
            .skus()
            .iter()
            .map(|s| proto::RateCardSku {
                sku: s.id.clone(),
                unit: s.unit.clone(),
                price_micros: s.price.floor_micros(),
                free_quantity: s.free_quantity,
                multipliers: s
                    .multipliers
                    .iter()
                    .map(|(name, factor)| (name.clone(), factor.to_string()))
                    .collect(),
                description: s.description.clone(),
                price: s.price.to_credits().to_string(),
                price_micros_numerator: s.price.numerator(),
                price_micros_denominator: s.price.denominator(),
            })
            .collect(),
        plans: card
            .plans()
            .iter()
            .map(|p| proto::RateCardPlan {
                plan_id: p.id.clone(),
                allowance_micros: p.allowance_micros,
                description: p.description.clone(),
                monthly_price: p.monthly_price.map(|m| m.to_string()).unwrap_or_default(),
            })
            .collect(),
    }
}
