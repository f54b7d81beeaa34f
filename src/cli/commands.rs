//! The client commands as clap parses them. Amounts are in credits with up to six decimals
//! ("1.5"), times in RFC 3339, durations in seconds or with a unit ("90", "10m", "30d").

use clap::{ArgAction, Args, Subcommand, ValueEnum};

use std::path::PathBuf;

use super::credits::parse_credits;
use super::policy::{parse_budget, parse_percent, parse_rate_limit, parse_thresholds, Levels};
use super::reports::{AuditArgs, LedgerArgs, PnlArgs, UsageArgs};
use super::secure::{parse_token, BearerToken};
use super::time::{parse_duration, parse_timestamp};
use crate::proto::{Budget, RateLimit};

/// Exit codes, shown in `--help` of the commands that can be refused.
const DENIAL_EXIT_HELP: &str =
    "Exit status: 0 when granted, 3 when denied (a refusal is an answer, \
     nothing changed), 1 on an error, 2 on bad command-line input.";

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create, show or change an account (a shared credit pool).
    Account(AccountArgs),
    /// Give an account credits, list its grants, or void one.
    Grant(GrantArgs),
    /// Hold credits before running work; commit or release the hold afterwards.
    #[command(after_help = DENIAL_EXIT_HELP)]
    Reserve(ReserveArgs),
    /// Charge the real cost of a hold (all of it, or a partial capture with --capture).
    Commit(CommitArgs),
    /// Return the whole remaining hold to the account.
    Release(ReservationRef),
    /// Lengthen a hold: it now expires --ttl from now (a heartbeat for long jobs).
    Extend(ExtendArgs),
    /// Show a reservation: its state, holds and captures per grant.
    Reservation(ReservationRef),
    /// Show an account's available, held and granted credits, debt, overage, and grants.
    Balance(BalanceArgs),
    /// Price an amount and say whether the account could reserve it now (changes nothing).
    #[command(
        after_help = "Exit status: 0 when affordable, 3 when not, 1 on an error, \
                            2 on bad command-line input."
    )]
    Quote(QuoteArgs),
    /// Set or show a subject's policy: spending rights, budgets, frequency caps.
    Policy(PolicyArgs),
    /// Ask for spending rights on behalf of a subject (an event for the account's admins).
    Access(AccessArgs),
    /// Show the server's active rate card: SKUs and their prices, plans, top-up increment.
    Ratecard(RatecardArgs),
    /// Credits spent, by SKU, subject, label or day, from the ledger.
    Usage(UsageArgs),
    /// Revenue, provider cost and margin, for an account or every account of a parent.
    Pnl(PnlArgs),
    /// Read the double-entry ledger.
    Ledger(LedgerArgs),
    /// Every admin change of an account: who, what, before, after, when.
    Audit(AuditArgs),
}

impl ClientCommand {
    /// Where to send the command and how to print the answer.
    pub fn connection(&self) -> &Connection {
        match self {
            ClientCommand::Account(args) => &args.connection,
            ClientCommand::Grant(args) => &args.connection,
            ClientCommand::Reserve(args) => &args.connection,
            ClientCommand::Commit(args) => &args.connection,
            ClientCommand::Release(args) | ClientCommand::Reservation(args) => &args.connection,
            ClientCommand::Extend(args) => &args.connection,
            ClientCommand::Balance(args) => &args.connection,
            ClientCommand::Quote(args) => &args.connection,
            ClientCommand::Policy(args) => &args.connection,
            ClientCommand::Access(args) => &args.connection,
            ClientCommand::Ratecard(args) => &args.connection,
            ClientCommand::Usage(args) => &args.connection,
            ClientCommand::Pnl(args) => &args.connection,
            ClientCommand::Ledger(args) => &args.connection,
            ClientCommand::Audit(args) => &args.connection,
        }
    }
}

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// The creditd gRPC server (http://HOST:PORT, or https://HOST:PORT with --ca-cert; a bare
    /// HOST:PORT means http; unix:/PATH for a server on a Unix socket).
    #[arg(
        long,
        global = true,
        env = "CREDITD_SERVER",
        default_value = "http://127.0.0.1:50051",
        value_parser = parse_server_url
    )]
    pub server: String,
    /// Print the server's answer as JSON (proto field names, amounts in micros) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Bearer token sent with every call (see `creditd token hash`).
    #[arg(long, global = true, env = "CREDITD_TOKEN", hide_env_values = true, value_parser = parse_token)]
    pub token: Option<BearerToken>,
    /// CA certificate (PEM) that signed the server's certificate, for an https:// --server.
    #[arg(long, global = true, env = "CREDITD_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for a server that requires one (mTLS); needs --client-key.
    #[arg(
        long,
        global = true,
        env = "CREDITD_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(
        long,
        global = true,
        env = "CREDITD_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub command: AccountCommand,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account.
    Create(AccountCreateArgs),
    /// Show an account.
    Get {
        /// The account id.
        account: String,
    },
    /// Change an account; only the options given change.
    Update(AccountUpdateArgs),
}

#[derive(Debug, Args)]
pub struct AccountCreateArgs {
    /// The account id (1-128 characters of A-Z a-z 0-9 . _ - ~).
    pub account: String,
    /// The parent (customer) account, for roll-ups.
    #[arg(long)]
    pub parent: Option<String>,
    /// The plan id.
    #[arg(long)]
    pub plan: Option<String>,
    /// Pay-as-you-go overage: keep spending past the grants (off by default).
    #[arg(long, value_enum, default_value_t = OnOff::Off)]
    pub overage: OnOff,
    /// Monthly cap on pay-as-you-go overage, in credits (0 = no cap).
    #[arg(long, value_name = "CREDITS", value_parser = parse_credits)]
    pub overage_cap: Option<i64>,
    /// Create the account suspended: reserves are denied with ACCOUNT_SUSPENDED.
    #[arg(long)]
    pub suspended: bool,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args([
            "overage",
            "overage_cap",
            "suspended",
            "parent",
            "thresholds",
            "allowance_alert",
            "top_up_threshold",
        ])
))]
pub struct AccountUpdateArgs {
    /// The account id.
    pub account: String,
    /// Turn pay-as-you-go overage on or off.
    #[arg(long, value_enum)]
    pub overage: Option<OnOff>,
    /// Monthly cap on pay-as-you-go overage, in credits (0 = no cap).
    #[arg(long, value_name = "CREDITS", value_parser = parse_credits)]
    pub overage_cap: Option<i64>,
    /// Suspend (true) or resume (false) the account.
    #[arg(long, value_name = "true|false", action = ArgAction::Set)]
    pub suspended: Option<bool>,
    /// The parent (customer) account.
    #[arg(long)]
    pub parent: Option<String>,
    /// Alert when available credits fall below these levels, in credits, comma-separated
    /// (e.g. 10000,5000,1000,0); `default` restores the defaults (10000,5000,1000,0).
    #[arg(long, value_name = "CREDITS,...", value_parser = parse_thresholds)]
    pub thresholds: Option<Levels>,
    /// Alert when this share of the period's allowance is used, in percent (0 = default 75).
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub allowance_alert: Option<i64>,
    /// Auto top-up: request a top-up when available credits fall to this level (with
    /// --top-up-amount).
    #[arg(long, value_name = "CREDITS", value_parser = parse_credits, requires = "top_up_amount")]
    pub top_up_threshold: Option<i64>,
    /// Auto top-up: how many credits to request, in the rate card's increments (0 = off).
    #[arg(long, value_name = "CREDITS", value_parser = parse_credits, requires = "top_up_threshold")]
    pub top_up_amount: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn enabled(self) -> bool {
        self == OnOff::On
    }
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(subcommand)]
    pub command: GrantCommand,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Give an account a block of credits. The grant id is the idempotency key (e.g. an invoice id).
    Create(GrantCreateArgs),
    /// List an account's grants.
    List {
        /// The account id.
        account: String,
    },
    /// Void a grant: its remaining credits stop counting (holds on it are kept).
    Void {
        /// The account id.
        account: String,
        /// The grant id.
        grant: String,
    },
}

#[derive(Debug, Args)]
pub struct GrantCreateArgs {
    /// The account id.
    pub account: String,
    /// The grant id (the idempotency key: the same id with the same parameters changes nothing).
    pub grant: String,
    /// allowance: the plan's monthly credits; prepaid: packs bought up front; top-up: extra
    /// capacity after the allowance; promo: bonus credits.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// How many credits, e.g. 100 or 0.5.
    #[arg(long, value_name = "CREDITS", value_parser = parse_credits)]
    pub amount: i64,
    /// Drawdown priority: lower is drawn first (default by kind).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// When the credits become usable (RFC 3339; default now).
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub effective_at: Option<prost_types::Timestamp>,
    /// When the credits expire (RFC 3339; default never).
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp, conflicts_with = "expires_in")]
    pub expires_at: Option<prost_types::Timestamp>,
    /// Expire this long from now (by this machine's clock), e.g. 30d, 12h, 1d12h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires_in: Option<i64>,
    /// What the customer paid per credit, in money with up to six decimals (for revenue and P&L).
    #[arg(long, value_name = "MONEY", value_parser = parse_credits)]
    pub unit_price: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Allowance,
    Prepaid,
    #[value(alias = "top_up")]
    TopUp,
    Promo,
}

#[derive(Debug, Args)]
pub struct ReserveArgs {
    /// The account id.
    pub account: String,
    /// The reservation id (the idempotency key: a retry with the same parameters changes nothing).
    pub reservation: String,
    /// How many credits to hold, e.g. 5 or 0.25 (or give --item).
    #[arg(long, value_name = "CREDITS", value_parser = parse_credits, required_unless_present = "items")]
    pub amount: Option<i64>,
    /// An item priced by the server's rate card instead of --amount, e.g. --item grid.row=25 or
    /// --item image.standard=2:premium (SKU=QUANTITY[:MULTIPLIER,...]; repeatable).
    #[arg(long = "item", value_name = "SKU=QUANTITY", value_parser = parse_item)]
    pub items: Vec<crate::proto::Item>,

    /// Accept a smaller hold, down to this many credits (default: all or nothing).
    #[arg(long, value_name = "CREDITS", value_parser = parse_credits)]
    pub min_amount: Option<i64>,
    /// The user, API key or project inside the account that spends.
    #[arg(long)]
    pub subject: Option<String>,
    /// How long the hold lives if neither committed nor released: seconds, or e.g. 10m
    /// (default: the server's).
    #[arg(long, value_name = "SECONDS", value_parser = parse_duration)]
    pub ttl: Option<i64>,
    /// A label for usage reports, e.g. --label feature=grid (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The account id.
    pub account: String,
    /// The reservation id.
    pub reservation: String,
    /// The real cost in credits (0 charges nothing and returns the hold; or give --item).
    #[arg(long, value_name = "CREDITS", value_parser = parse_credits, required_unless_present = "items")]
    pub amount: Option<i64>,
    /// What was really used, priced at the hold's prices, e.g. --item grid.row=18 (repeatable).
    #[arg(long = "item", value_name = "SKU=QUANTITY", value_parser = parse_item)]
    pub items: Vec<crate::proto::Item>,
    /// Capture part of the hold and keep the rest open; the capture id is this capture's
    /// idempotency key.
    #[arg(long, value_name = "CAPTURE_ID")]
    pub capture: Option<String>,
    /// Never charge more than the hold: an amount above it is reported, not charged
    /// (default: charge it from available credits, then overage, then debt).
    #[arg(long)]
    pub cap_overrun: bool,
    /// What the work cost you at the provider, in money with up to six decimals (for P&L).
    #[arg(long, value_name = "MONEY", value_parser = parse_credits)]
    pub cost: Option<i64>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct ReservationRef {
    /// The account id.
    pub account: String,
    /// The reservation id.
    pub reservation: String,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The account id.
    pub account: String,
    /// The reservation id.
    pub reservation: String,
    /// The hold now expires this long from now: seconds, or e.g. 10m.
    #[arg(long, value_name = "SECONDS", value_parser = parse_duration)]
    pub ttl: i64,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// The account id.
    pub account: String,
    /// Also show this subject's budgets.
    #[arg(long)]
    pub subject: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// The account id.
    pub account: String,
    /// The amount to price, in credits (or give --item).
    #[arg(long, value_name = "CREDITS", value_parser = parse_credits, required_unless_present = "items")]
    pub amount: Option<i64>,
    /// An item priced by the server's rate card instead of --amount, e.g. --item grid.row=25 or
    /// --item image.standard=2:premium (SKU=QUANTITY[:MULTIPLIER,...]; repeatable).
    #[arg(long = "item", value_name = "SKU=QUANTITY", value_parser = parse_item)]
    pub items: Vec<crate::proto::Item>,

    /// The subject that would spend.
    #[arg(long)]
    pub subject: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Replace a subject's policy (what is not given is open: spending on, no limits).
    #[command(after_help = "\
SUBJECT is a user, API key or project id, or * for the whole account.

--budget SCOPE:PERIOD:CREDITS (read from the right; repeatable)
  SCOPE   subject | label:KEY=VALUE | sku:SKU
  PERIOD  period (the billing period) | day (a UTC day)
  e.g.    --budget subject:period:500 --budget label:project=alpha:day:50

--rate-limit SKU:COUNT:WINDOW (repeatable)
  at most COUNT units of SKU (* = every reserve) per WINDOW (seconds, or 1m, 1h, 1d)
  e.g.    --rate-limit image.standard:10:1m --rate-limit '*:100:1h'")]
    Set(PolicySetArgs),
    /// Show a subject's policy (an open one when it has none).
    Get {
        /// The account id.
        account: String,
        /// The subject id, or * for the whole account.
        subject: String,
    },
}

#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// The account id.
    pub account: String,
    /// The subject id, or * for the whole account.
    pub subject: String,
    /// May the subject spend (denied with SPENDING_DISABLED when off).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub spending: OnOff,
    /// A budget, SCOPE:PERIOD:CREDITS (repeatable; see below).
    #[arg(long = "budget", value_name = "SCOPE:PERIOD:CREDITS", value_parser = parse_budget)]
    pub budgets: Vec<Budget>,
    /// A frequency cap, SKU:COUNT:WINDOW (repeatable; see below).
    #[arg(long = "rate-limit", value_name = "SKU:COUNT:WINDOW", value_parser = parse_rate_limit)]
    pub rate_limits: Vec<RateLimit>,
}

#[derive(Debug, Args)]
pub struct AccessArgs {
    #[command(subcommand)]
    pub command: AccessCommand,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Ask the account's admins to let SUBJECT spend.
    Request(AccessRequestArgs),
}

#[derive(Debug, Args)]
pub struct AccessRequestArgs {
    /// The account id.
    pub account: String,
    /// The subject that asks.
    pub subject: String,
    /// A note for the admins (up to 256 characters).
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct RatecardArgs {
    #[command(flatten)]
    pub connection: Connection,
}

/// `KEY=VALUE`, split at the first `=`; the key must not be empty.
/// `SKU=QUANTITY[:MULTIPLIER,...]`, e.g. `grid.row=25` or `image.standard=2:premium`.
fn parse_item(text: &str) -> Result<crate::proto::Item, String> {
    let usage = || format!("{text:?} is not SKU=QUANTITY[:MULTIPLIER,...], e.g. grid.row=25");
    let (sku, rest) = text.split_once('=').ok_or_else(usage)?;
    let (quantity, multipliers) = match rest.split_once(':') {
        Some((q, m)) => (q, m.split(',').map(str::to_string).collect()),
        None => (rest, Vec::new()),
    };
    let quantity: i64 = quantity.parse().map_err(|_| usage())?;
    if sku.is_empty() || quantity < 1 {
        return Err(usage());
    }
    Ok(crate::proto::Item {
        sku: sku.to_string(),
        quantity,
        multipliers,
    })
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE, e.g. feature=grid")),
    }
}

/// Accepts `http://host:port` (a path-less URL) or a bare `host:port`, which means http.
pub(crate) fn parse_server_url(text: &str) -> Result<String, String> {
    if text.starts_with(crate::net::UNIX_PREFIX) {
        return match crate::net::unix_path(text) {
            Some(path) => Ok(format!("{}{}", crate::net::UNIX_PREFIX, path.display())),
            None => Err(format!("{text:?} names no socket; use unix:/PATH")),
        };
    }
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "unsupported scheme {other:?}; use http://HOST:PORT or https://HOST:PORT"
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host; use http://HOST:PORT"));
    }
    Ok(with_scheme.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The client commands under a stand-in for the real `creditd` top-level command.
    #[derive(Debug, Parser)]
    #[command(name = "creditd")]
    struct Cli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn parse(line: &str) -> Result<ClientCommand, clap::Error> {
        Cli::try_parse_from(line.split_whitespace()).map(|cli| cli.command)
    }

    fn parse_ok(line: &str) -> ClientCommand {
        parse(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn items_parse_with_quantity_and_multipliers() {
        let item = parse_item("image.standard=2:premium,hd").unwrap();
        assert_eq!(item.sku, "image.standard");
        assert_eq!(item.quantity, 2);
        assert_eq!(item.multipliers, ["premium", "hd"]);
        assert_eq!(parse_item("grid.row=25").unwrap().multipliers.len(), 0);
        for bad in ["grid.row", "=3", "grid.row=0", "grid.row=x"] {
            assert!(parse_item(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn reserve_parses_amounts_ttl_and_labels() {
        let cmd = parse_ok(
            "creditd reserve acme r1 --amount 5 --min-amount 2.5 --subject u1 --ttl 10m \
             --label feature=grid --label project=a=b",
        );
        let ClientCommand::Reserve(args) = cmd else {
            panic!("not a reserve: {cmd:?}")
        };
        assert_eq!(args.account, "acme");
        assert_eq!(args.reservation, "r1");
        assert_eq!(args.amount, Some(5_000_000));
        assert_eq!(args.min_amount, Some(2_500_000));
        assert_eq!(args.subject.as_deref(), Some("u1"));
        assert_eq!(args.ttl, Some(600));
        assert_eq!(
            args.labels,
            vec![
                ("feature".to_string(), "grid".to_string()),
                ("project".to_string(), "a=b".to_string())
            ]
        );
        if std::env::var_os("CREDITD_SERVER").is_none() {
            assert_eq!(args.connection.server, "http://127.0.0.1:50051");
        }
        assert!(!args.connection.json);
    }

    #[test]
    fn bad_amounts_and_labels_are_usage_errors() {
        for line in [
            "creditd reserve acme r1 --amount -5",
            "creditd reserve acme r1 --amount 0.0000001",
            "creditd reserve acme r1 --amount 1e3",
            "creditd reserve acme r1",
            "creditd reserve acme r1 --amount 1 --label novalue",
            "creditd reserve acme r1 --amount 1 --label =x",
            "creditd reserve acme r1 --amount 1 --ttl 0",
            "creditd commit acme r1 --amount 99999999999",
            "creditd quote acme --amount 1.",
        ] {
            let err = parse(line).expect_err(line);
            assert_eq!(err.exit_code(), 2, "{line}");
        }
    }

    #[test]
    fn server_and_json_are_accepted_anywhere() {
        let cmd = parse_ok("creditd balance acme --server localhost:6000 --json");
        assert_eq!(cmd.connection().server, "http://localhost:6000");
        assert!(cmd.connection().json);

        let cmd = parse_ok("creditd account --json get acme");
        assert!(cmd.connection().json);
        let cmd = parse_ok("creditd grant list acme --server http://10.0.0.1:7000/");
        assert_eq!(cmd.connection().server, "http://10.0.0.1:7000");

        let cmd = parse_ok("creditd balance acme --server https://x:1 --ca-cert ca.pem");
        assert_eq!(cmd.connection().server, "https://x:1");
        for (given, kept) in [
            ("unix:/run/creditd.sock", "unix:/run/creditd.sock"),
            ("unix:///run/creditd.sock", "unix:/run/creditd.sock"),
        ] {
            let cmd = parse_ok(&format!("creditd balance acme --server {given}"));
            assert_eq!(cmd.connection().server, kept);
        }
        for bad in ["ftp://x:1", "http://", "unix:", "unix://"] {
            let line = format!("creditd balance acme --server {bad}");
            assert_eq!(parse(&line).expect_err(bad).exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn account_create_and_update() {
        let cmd = parse_ok(
            "creditd account create acme --parent corp --plan pro --overage on \
             --overage-cap 50.5 --suspended",
        );
        let ClientCommand::Account(AccountArgs {
            command: AccountCommand::Create(args),
            ..
        }) = cmd
        else {
            panic!("not an account create: {cmd:?}")
        };
        assert_eq!(args.account, "acme");
        assert_eq!(args.parent.as_deref(), Some("corp"));
        assert_eq!(args.plan.as_deref(), Some("pro"));
        assert_eq!(args.overage, OnOff::On);
        assert_eq!(args.overage_cap, Some(50_500_000));
        assert!(args.suspended);

        let cmd = parse_ok("creditd account update acme --suspended false --overage off");
        let ClientCommand::Account(AccountArgs {
            command: AccountCommand::Update(args),
            ..
        }) = cmd
        else {
            panic!("not an account update: {cmd:?}")
        };
        assert_eq!(args.overage, Some(OnOff::Off));
        assert_eq!(args.suspended, Some(false));
        assert_eq!(args.overage_cap, None);
        assert_eq!(args.parent, None);

        // An update that changes nothing, or a bad boolean, is a usage error.
        assert_eq!(
            parse("creditd account update acme")
                .unwrap_err()
                .exit_code(),
            2
        );
        assert!(parse("creditd account update acme --suspended maybe").is_err());
        assert!(parse("creditd account create acme --overage maybe").is_err());
    }

    #[test]
    fn grant_create_parses_kind_times_and_prices() {
        let cmd = parse_ok(
            "creditd grant create acme inv-1 --kind top-up --amount 100 --priority -1 \
             --effective-at 2026-11-01T00:00:00Z --expires-in 30d --unit-price 0.012",
        );
        let ClientCommand::Grant(GrantArgs {
            command: GrantCommand::Create(args),
            ..
        }) = cmd
        else {
            panic!("not a grant create: {cmd:?}")
        };
        assert_eq!(args.kind, Kind::TopUp);
        assert_eq!(args.amount, 100_000_000);
        assert_eq!(args.priority, Some(-1));
        assert_eq!(args.effective_at.map(|t| t.seconds), Some(1_793_491_200));
        assert_eq!(args.expires_in, Some(2_592_000));
        assert_eq!(args.expires_at, None);
        assert_eq!(args.unit_price, Some(12_000));

        assert!(parse("creditd grant create acme g --kind top_up --amount 1").is_ok());
        assert!(parse("creditd grant create acme g --kind gift --amount 1").is_err());
        assert!(parse(
            "creditd grant create acme g --kind promo --amount 1 \
             --expires-at 2027-01-01 --expires-in 30d"
        )
        .is_err());
        assert!(
            parse("creditd grant create acme g --kind promo --amount 1 --expires-at soon").is_err()
        );
    }

    #[test]
    fn commit_with_capture_cap_and_cost() {
        let cmd =
            parse_ok("creditd commit acme r1 --amount 0 --capture c1 --cap-overrun --cost 0.03");
        let ClientCommand::Commit(args) = cmd else {
            panic!("not a commit: {cmd:?}")
        };
        assert_eq!(args.amount, Some(0));
        assert_eq!(args.capture.as_deref(), Some("c1"));
        assert!(args.cap_overrun);
        assert_eq!(args.cost, Some(30_000));
    }

    #[test]
    fn the_report_commands() {
        use crate::cli::reports::{LedgerCommand, UsageBy};
        let ClientCommand::Usage(args) = parse_ok(
            "creditd usage acme --by day --by label:feature --from 2026-01-01 --subject u1",
        ) else {
            panic!("not a usage")
        };
        assert_eq!(
            args.by,
            vec![UsageBy::Day, UsageBy::Label("feature".into())]
        );
        assert_eq!(args.window.from.map(|t| t.seconds), Some(1_767_225_600));
        assert_eq!(args.window.to, None);
        assert_eq!(args.subject.as_deref(), Some("u1"));
        assert!(parse("creditd usage acme --by week").is_err());

        let ClientCommand::Pnl(args) = parse_ok("creditd pnl --parent corp --to 2026-02-01") else {
            panic!("not a pnl")
        };
        assert_eq!(args.parent.as_deref(), Some("corp"));
        assert_eq!(args.account, None);
        for bad in ["creditd pnl", "creditd pnl --account a --parent p"] {
            assert_eq!(parse(bad).expect_err(bad).exit_code(), 2, "{bad}");
        }

        let cmd = parse_ok("creditd ledger entries acme --grant @debt --limit 5 --json");
        assert!(cmd.connection().json);
        let ClientCommand::Ledger(LedgerArgs {
            command: LedgerCommand::Entries(args),
            ..
        }) = cmd
        else {
            panic!("not ledger entries")
        };
        assert_eq!((args.grant.as_deref(), args.limit), (Some("@debt"), 5));
        assert!(parse("creditd ledger entries acme --limit 0").is_err());

        let ClientCommand::Audit(args) = parse_ok("creditd audit acme") else {
            panic!("not an audit")
        };
        assert_eq!((args.account.as_str(), args.limit), ("acme", 1000));
    }

    #[test]
    fn the_small_commands() {
        assert!(matches!(
            parse_ok("creditd release acme r1"),
            ClientCommand::Release(ReservationRef { .. })
        ));
        assert!(matches!(
            parse_ok("creditd reservation acme r1"),
            ClientCommand::Reservation(ReservationRef { .. })
        ));
        let ClientCommand::Extend(args) = parse_ok("creditd extend acme r1 --ttl 120") else {
            panic!("not an extend")
        };
        assert_eq!(args.ttl, 120);
        assert!(parse("creditd extend acme r1").is_err());
        let ClientCommand::Quote(args) = parse_ok("creditd quote acme --amount 0.5") else {
            panic!("not a quote")
        };
        assert_eq!(args.amount, Some(500_000));
        assert!(matches!(
            parse_ok("creditd grant void acme g1"),
            ClientCommand::Grant(GrantArgs {
                command: GrantCommand::Void { .. },
                ..
            })
        ));
    }
}
