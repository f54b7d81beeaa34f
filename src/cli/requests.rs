//! Parsed commands turned into gRPC requests. Pure: no I/O, so every mapping is unit-tested.

use prost_types::Timestamp;

use super::commands::{
    AccountCreateArgs, AccountUpdateArgs, BalanceArgs, CommitArgs, ExtendArgs, GrantCreateArgs,
    Kind, QuoteArgs, ReservationRef, ReserveArgs,
};
use super::time::add_seconds;
use crate::proto::{
    AutoTopUp, CommitRequest, CreateAccountRequest, CreateGrantRequest, ExtendRequest,
    GetBalanceRequest, GrantKind, Overage, Overrun, QuoteRequest, ReleaseRequest, ReserveRequest,
    UpdateAccountRequest,
};

/// `account create`; the billing anchor is left to the server (now).
pub fn create_account(args: AccountCreateArgs) -> CreateAccountRequest {
    CreateAccountRequest {
        account_id: args.account,
        parent_id: args.parent.unwrap_or_default(),
        plan_id: args.plan.unwrap_or_default(),
        billing_anchor: None,
        overage: Some(Overage {
            enabled: args.overage.enabled(),
            cap_micros: args.overage_cap.unwrap_or(0),
        }),
        suspended: args.suspended,
        ..Default::default()
    }
}

/// `account update`: only the options given are set.
pub fn update_account(args: AccountUpdateArgs) -> UpdateAccountRequest {
    UpdateAccountRequest {
        account_id: args.account,
        overage_enabled: args.overage.map(|o| o.enabled()),
        overage_cap_micros: args.overage_cap,
        suspended: args.suspended,
        parent_id: args.parent,
        set_thresholds: args.thresholds.is_some(),
        threshold_micros: args.thresholds.map(|l| l.0).unwrap_or_default(),
        allowance_alert_percent: args.allowance_alert,
        auto_top_up: args.top_up_threshold.zip(args.top_up_amount).map(
            |(threshold_micros, amount_micros)| AutoTopUp {
                threshold_micros,
                amount_micros,
            },
        ),
    }
}

/// `grant create`; `--expires-in` counts from `now`.
pub fn create_grant(args: GrantCreateArgs, now: &Timestamp) -> CreateGrantRequest {
    let expires_at = match (args.expires_at, args.expires_in) {
        (Some(at), _) => Some(at),
        (None, Some(seconds)) => Some(add_seconds(now, seconds)),
        (None, None) => None,
    };
    CreateGrantRequest {
        account_id: args.account,
        grant_id: args.grant,
        kind: grant_kind(args.kind) as i32,
        amount_micros: args.amount,
        priority: args.priority,
        effective_at: args.effective_at,
        expires_at,
        unit_price_micros: args.unit_price.unwrap_or(0),
    }
}

fn grant_kind(kind: Kind) -> GrantKind {
    match kind {
        Kind::Allowance => GrantKind::Allowance,
        Kind::Prepaid => GrantKind::Prepaid,
        Kind::TopUp => GrantKind::TopUp,
        Kind::Promo => GrantKind::Promo,
    }
}

/// `reserve`. A repeated `--label` key keeps its last value.
pub fn reserve(args: ReserveArgs) -> ReserveRequest {
    ReserveRequest {
        account_id: args.account,
        reservation_id: args.reservation,
        subject_id: args.subject.unwrap_or_default(),
        amount_micros: args.amount.unwrap_or(0),
        items: args.items,
        min_amount_micros: args.min_amount.unwrap_or(0),
        ttl_seconds: args.ttl.unwrap_or(0),
        labels: args.labels.into_iter().collect(),
    }
}

/// `commit`: `--capture` keeps the hold open; `--cap-overrun` is `OVERRUN_CAP`.
pub fn commit(args: CommitArgs) -> CommitRequest {
    CommitRequest {
        account_id: args.account,
        reservation_id: args.reservation,
        amount_micros: args.amount.unwrap_or(0),
        items: args.items,
        keep_open: args.capture.is_some(),
        capture_id: args.capture.unwrap_or_default(),
        overrun: if args.cap_overrun {
            Overrun::Cap
        } else {
            Overrun::Charge
        } as i32,
        cost_micros: args.cost.unwrap_or(0),
    }
}

pub fn release(args: ReservationRef) -> ReleaseRequest {
    ReleaseRequest {
        account_id: args.account,
        reservation_id: args.reservation,
    }
}

pub fn extend(args: ExtendArgs) -> ExtendRequest {
    ExtendRequest {
        account_id: args.account,
        reservation_id: args.reservation,
        ttl_seconds: args.ttl,
    }
}

pub fn balance(args: BalanceArgs) -> GetBalanceRequest {
    GetBalanceRequest {
        account_id: args.account,
        subject_id: args.subject.unwrap_or_default(),
    }
}

pub fn quote(args: QuoteArgs) -> QuoteRequest {
    QuoteRequest {
        account_id: args.account,
        subject_id: args.subject.unwrap_or_default(),
        amount_micros: args.amount.unwrap_or(0),
        items: args.items,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::commands::{
        AccountArgs, AccountCommand, ClientCommand, GrantArgs, GrantCommand,
    };
    use super::*;

    #[derive(Debug, Parser)]
    #[command(name = "creditd")]
    struct Cli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn parse(line: &str) -> ClientCommand {
        Cli::try_parse_from(line.split_whitespace())
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
    }

    fn account_create(line: &str) -> AccountCreateArgs {
        match parse(line) {
            ClientCommand::Account(AccountArgs {
                command: AccountCommand::Create(args),
                ..
            }) => args,
            other => panic!("not an account create: {other:?}"),
        }
    }

    fn account_update(line: &str) -> AccountUpdateArgs {
        match parse(line) {
            ClientCommand::Account(AccountArgs {
                command: AccountCommand::Update(args),
                ..
            }) => args,
            other => panic!("not an account update: {other:?}"),
        }
    }

    fn grant_create(line: &str) -> GrantCreateArgs {
        match parse(line) {
            ClientCommand::Grant(GrantArgs {
                command: GrantCommand::Create(args),
                ..
            }) => args,
            other => panic!("not a grant create: {other:?}"),
        }
    }

    #[test]
    fn account_create_defaults_to_no_overage() {
        let request = create_account(account_create("creditd account create acme"));
        assert_eq!(
            request,
            CreateAccountRequest {
                account_id: "acme".into(),
                overage: Some(Overage {
                    enabled: false,
                    cap_micros: 0
                }),
                ..Default::default()
            }
        );
        let request = create_account(account_create(
            "creditd account create acme --parent corp --plan pro --overage on --overage-cap 50 --suspended",
        ));
        assert_eq!(request.parent_id, "corp");
        assert_eq!(request.plan_id, "pro");
        assert_eq!(
            request.overage,
            Some(Overage {
                enabled: true,
                cap_micros: 50_000_000
            })
        );
        assert!(request.suspended);
    }

    #[test]
    fn account_update_sets_only_what_is_given() {
        let request = update_account(account_update(
            "creditd account update acme --overage-cap 0",
        ));
        assert_eq!(
            request,
            UpdateAccountRequest {
                account_id: "acme".into(),
                overage_cap_micros: Some(0),
                ..Default::default()
            }
        );
        let request = update_account(account_update(
            "creditd account update acme --overage on --suspended true --parent corp",
        ));
        assert_eq!(request.overage_enabled, Some(true));
        assert_eq!(request.suspended, Some(true));
        assert_eq!(request.parent_id.as_deref(), Some("corp"));
        assert_eq!(request.overage_cap_micros, None);
        assert!(!request.set_thresholds, "thresholds unchanged");
        let request = update_account(account_update(
            "creditd account update acme --thresholds 10000,5000,1000,0 --allowance-alert 80 \
             --top-up-threshold 100 --top-up-amount 50",
        ));
        assert!(request.set_thresholds);
        assert_eq!(
            request.threshold_micros,
            vec![10_000_000_000, 5_000_000_000, 1_000_000_000, 0]
        );
        assert_eq!(request.allowance_alert_percent, Some(80));
        assert_eq!(
            request.auto_top_up,
            Some(AutoTopUp {
                threshold_micros: 100_000_000,
                amount_micros: 50_000_000
            })
        );
        let request = update_account(account_update(
            "creditd account update acme --thresholds default",
        ));
        assert!(request.set_thresholds && request.threshold_micros.is_empty());
    }

    #[test]
    fn grant_create_maps_kind_price_and_expiry() {
        let now = Timestamp {
            seconds: 1_000,
            nanos: 0,
        };
        let request = create_grant(
            grant_create(
                "creditd grant create acme inv-1 --kind prepaid --amount 100.5 --expires-in 1d --unit-price 0.01",
            ),
            &now,
        );
        assert_eq!(
            request,
            CreateGrantRequest {
                account_id: "acme".into(),
                grant_id: "inv-1".into(),
                kind: GrantKind::Prepaid as i32,
                amount_micros: 100_500_000,
                priority: None,
                effective_at: None,
                expires_at: Some(Timestamp {
                    seconds: 87_400,
                    nanos: 0
                }),
                unit_price_micros: 10_000,
            }
        );
        let request = create_grant(
            grant_create(
                "creditd grant create acme g2 --kind allowance --amount 1 --priority 5 \
                 --expires-at 1970-01-02T00:00:00Z",
            ),
            &now,
        );
        assert_eq!(request.kind, GrantKind::Allowance as i32);
        assert_eq!(request.priority, Some(5));
        assert_eq!(request.expires_at.map(|t| t.seconds), Some(86_400));
        let request = create_grant(
            grant_create("creditd grant create acme g3 --kind promo --amount 1"),
            &now,
        );
        assert_eq!(request.kind, GrantKind::Promo as i32);
        assert_eq!(request.expires_at, None);
        assert_eq!(request.unit_price_micros, 0);
    }

    #[test]
    fn reserve_maps_every_option() {
        let ClientCommand::Reserve(args) = parse(
            "creditd reserve acme r1 --amount 5 --min-amount 1 --subject u1 --ttl 60 \
             --label feature=grid --label feature=agent",
        ) else {
            panic!("not a reserve")
        };
        let request = reserve(args);
        assert_eq!(request.account_id, "acme");
        assert_eq!(request.reservation_id, "r1");
        assert_eq!(request.amount_micros, 5_000_000);
        assert_eq!(request.min_amount_micros, 1_000_000);
        assert_eq!(request.subject_id, "u1");
        assert_eq!(request.ttl_seconds, 60);
        assert_eq!(request.labels.len(), 1);
        assert_eq!(request.labels["feature"], "agent");

        let ClientCommand::Reserve(args) = parse("creditd reserve acme r2 --amount 0.5") else {
            panic!("not a reserve")
        };
        let request = reserve(args);
        assert_eq!(request.min_amount_micros, 0);
        assert_eq!(request.ttl_seconds, 0, "0 asks for the server's default");
        assert!(request.labels.is_empty());
    }

    #[test]
    fn commit_maps_capture_overrun_and_cost() {
        let ClientCommand::Commit(args) = parse("creditd commit acme r1 --amount 4") else {
            panic!("not a commit")
        };
        assert_eq!(
            commit(args),
            CommitRequest {
                account_id: "acme".into(),
                reservation_id: "r1".into(),
                amount_micros: 4_000_000,
                overrun: Overrun::Charge as i32,
                ..Default::default()
            }
        );
        let ClientCommand::Commit(args) =
            parse("creditd commit acme r1 --amount 2 --capture c1 --cap-overrun --cost 0.5")
        else {
            panic!("not a commit")
        };
        let request = commit(args);
        assert!(request.keep_open);
        assert_eq!(request.capture_id, "c1");
        assert_eq!(request.overrun, Overrun::Cap as i32);
        assert_eq!(request.cost_micros, 500_000);
    }

    #[test]
    fn the_small_requests() {
        let ClientCommand::Release(args) = parse("creditd release acme r1") else {
            panic!("not a release")
        };
        assert_eq!(
            release(args),
            ReleaseRequest {
                account_id: "acme".into(),
                reservation_id: "r1".into()
            }
        );
        let ClientCommand::Extend(args) = parse("creditd extend acme r1 --ttl 2m") else {
            panic!("not an extend")
        };
        assert_eq!(extend(args).ttl_seconds, 120);
        let ClientCommand::Balance(args) = parse("creditd balance acme --subject u1") else {
            panic!("not a balance")
        };
        assert_eq!(balance(args).subject_id, "u1");
        let ClientCommand::Quote(args) = parse("creditd quote acme --amount 3") else {
            panic!("not a quote")
        };
        assert_eq!(quote(args).amount_micros, 3_000_000);
    }
}
