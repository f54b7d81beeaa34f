//! The text forms of subject policies and alert settings on the command line, and the requests
//! built from them:
//!
//! - `--budget SCOPE:PERIOD:CREDITS`, read from the right (a scope may contain `:`):
//!   SCOPE is `subject`, `label:KEY=VALUE` or `sku:SKU`; PERIOD is `period` (the billing period)
//!   or `day`; e.g. `subject:period:500`, `label:project=alpha:day:50`, `sku:video.export:period:200`;
//! - `--rate-limit SKU:COUNT:WINDOW`: at most COUNT units of SKU (`*` = every reserve) per WINDOW
//!   (seconds, or e.g. `1m`, `1h`, `1d`); e.g. `image.standard:10:1m`, `*:100:1h`;
//! - `--thresholds 10000,5000,1000,0`: levels in credits, or `default` for the defaults.

use super::commands::{AccessRequestArgs, PolicySetArgs};
use super::credits::parse_credits;
use super::time::parse_duration;
use crate::proto::{
    Budget, BudgetPeriod, RateLimit, RequestSpendingAccessRequest, SetSubjectPolicyRequest,
    SubjectPolicy,
};

/// `SCOPE:PERIOD:CREDITS`.
pub fn parse_budget(text: &str) -> Result<Budget, String> {
    let mut parts = text.rsplitn(3, ':');
    let (Some(credits), Some(period), Some(scope)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "{text:?} is not SCOPE:PERIOD:CREDITS, e.g. subject:period:500 or label:project=alpha:day:50"
        ));
    };
    let period = match period {
        "period" | "billing-period" | "month" => BudgetPeriod::BillingPeriod,
        "day" => BudgetPeriod::Day,
        other => return Err(format!("budget period {other:?} is not `period` or `day`")),
    };
    Ok(Budget {
        scope: scope.to_string(),
        period: period as i32,
        limit_micros: parse_credits(credits)?,
    })
}

/// `SKU:COUNT:WINDOW`.
pub fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let mut parts = text.rsplitn(3, ':');
    let (Some(window), Some(count), Some(sku)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "{text:?} is not SKU:COUNT:WINDOW, e.g. image.standard:10:1m or *:100:1h"
        ));
    };
    let max_count = count
        .parse::<i64>()
        .map_err(|_| format!("rate limit count {count:?} is not a whole number"))?;
    Ok(RateLimit {
        sku: sku.to_string(),
        max_count,
        window_seconds: parse_duration(window)?,
    })
}

/// Alert levels in micro-credits (empty: the server's defaults); one command-line value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels(pub Vec<i64>);

/// Comma-separated levels in credits, or `default` (an empty list: the server's defaults).
pub fn parse_thresholds(text: &str) -> Result<Levels, String> {
    if text == "default" {
        return Ok(Levels(Vec::new()));
    }
    text.split(',')
        .map(|level| parse_credits(level.trim()))
        .collect::<Result<_, _>>()
        .map(Levels)
}

/// A whole percentage 1..=100, or 0 for the default.
pub fn parse_percent(text: &str) -> Result<i64, String> {
    let percent = text.trim_end_matches('%');
    match percent.parse::<i64>() {
        Ok(p) if (0..=100).contains(&p) => Ok(p),
        _ => Err(format!(
            "{text:?} is not a percentage from 1 to 100 (0 = default)"
        )),
    }
}

/// `policy set`: the whole policy (what is not given is open: spending on, no limits).
pub fn set_policy(args: PolicySetArgs) -> SetSubjectPolicyRequest {
    SetSubjectPolicyRequest {
        account_id: args.account,
        policy: Some(SubjectPolicy {
            subject_id: args.subject,
            spending_enabled: args.spending.enabled(),
            budgets: args.budgets,
            rate_limits: args.rate_limits,
        }),
    }
}

pub fn request_access(args: AccessRequestArgs) -> RequestSpendingAccessRequest {
    RequestSpendingAccessRequest {
        account_id: args.account,
        subject_id: args.subject,
        note: args.note.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_from_the_right() {
        let b = parse_budget("label:project=alpha:day:50").expect("valid");
        assert_eq!(b.scope, "label:project=alpha");
        assert_eq!(b.period, BudgetPeriod::Day as i32);
        assert_eq!(b.limit_micros, 50_000_000);
        let b = parse_budget("subject:period:0.5").expect("valid");
        assert_eq!(
            (b.scope.as_str(), b.period, b.limit_micros),
            ("subject", 0, 500_000)
        );
        let b = parse_budget("sku:video.export:month:200").expect("valid");
        assert_eq!(b.scope, "sku:video.export");
        for bad in ["500", "day:500", "subject:week:5", "subject:day:x"] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limits_take_a_duration() {
        let r = parse_rate_limit("image.standard:10:1m").expect("valid");
        assert_eq!(
            (r.sku.as_str(), r.max_count, r.window_seconds),
            ("image.standard", 10, 60)
        );
        let r = parse_rate_limit("*:100:3600").expect("valid");
        assert_eq!((r.sku.as_str(), r.window_seconds), ("*", 3600));
        for bad in ["x:10", "x:ten:1m", "x:10:forever"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thresholds_and_percentages() {
        assert_eq!(
            parse_thresholds("10000, 5000,1000,0"),
            Ok(Levels(vec![
                10_000_000_000,
                5_000_000_000,
                1_000_000_000,
                0
            ]))
        );
        assert_eq!(parse_thresholds("default"), Ok(Levels(vec![])));
        assert!(parse_thresholds("10,x").is_err());
        assert_eq!(parse_percent("75"), Ok(75));
        assert_eq!(parse_percent("80%"), Ok(80));
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("-1").is_err());
    }
}
