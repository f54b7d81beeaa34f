//! Client commands that drive a running server: `creditd account|grant|reserve|commit|release|
//! extend|reservation|balance|quote|policy|access|ratecard|usage|pnl|ledger|audit`. They speak to
//! it only through the generated gRPC clients.
//!
//! Rooms: [`commands`] (what clap parses), [`credits`] (amounts typed and printed in credits),
//! [`time`] (timestamps and durations), [`requests`] (command → gRPC request), [`answer`]
//! (the reply and its exit code), [`policy`] (policy and alert syntax), [`output`] (human text), [`json`] (`--json`), [`errors`]
//! (one line per failure), [`reports`] (usage, P&L, ledger entries, audit: arguments, paging,
//! printers).

mod answer;
pub(crate) mod commands;
pub mod credits;
mod errors;
mod json;
mod output;
mod policy;
mod reports;
mod requests;
pub(crate) mod secure;
mod time;
pub mod token;

use std::process::ExitCode;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::Status;

pub use commands::ClientCommand;
use commands::{AccessCommand, AccountCommand, GrantCommand, PolicyCommand};
use reports::LedgerCommand;
pub use token::TokenArgs;

use crate::proto::credit_admin_client::CreditAdminClient;
use crate::proto::credits_client::CreditsClient;
use crate::proto::{
    GetAccountRequest, GetRateCardRequest, GetReservationRequest, GetSubjectPolicyRequest,
    ListAuditEventsRequest, ListGrantsRequest, ListLedgerEntriesRequest, VoidGrantRequest,
};
use answer::Answer;

/// How long to wait for the TCP connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for any one answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one client command: prints the answer on stdout and returns 0 (or 3 for a refusal), or
/// prints one line on stderr and returns 1.
pub async fn run(cmd: ClientCommand) -> ExitCode {
    let connection = cmd.connection().clone();
    let channel = match connect(&connection).await {
        Ok(channel) => channel,
        Err(line) => return fail(&line),
    };
    let auth = secure::BearerAuth::new(connection.token.clone());
    match execute(cmd, channel, auth).await {
        Ok(answer) => {
            let text = if connection.json {
                json::render(&answer)
            } else {
                output::render(&answer)
            };
            match write_stdout(&text) {
                Ok(()) => ExitCode::from(answer.exit_code()),
                Err(e) => fail(&format!("cannot write the answer: {e}")),
            }
        }
        Err(status) => fail(&errors::describe_status(&status, &connection.server)),
    }
}

/// Writes the answer; a reader that went away early (`creditd balance acme | head -1`) is fine.
fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn fail(line: &str) -> ExitCode {
    eprintln!("creditd: {line}");
    ExitCode::FAILURE
}

async fn connect(connection: &commands::Connection) -> Result<Channel, String> {
    let server = connection.server.as_str();
    let mut endpoint = crate::net::endpoint(server)
        .map_err(|e| format!("invalid --server {server:?}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    if let Some(tls) = secure::tls_config(connection)? {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| errors::describe_connect_error(&e, server))?;
    }
    crate::net::connect(endpoint, server)
        .await
        .map_err(|e| errors::describe_connect_error(&e, server))
}

async fn execute(
    cmd: ClientCommand,
    channel: Channel,
    auth: secure::BearerAuth,
) -> Result<Answer, Status> {
    let mut credits = CreditsClient::with_interceptor(channel.clone(), auth.clone());
    let mut admin = CreditAdminClient::with_interceptor(channel, auth);
    let answer = match cmd {
        ClientCommand::Account(args) => match args.command {
            AccountCommand::Get { account } => Answer::Account(
                admin
                    .get_account(GetAccountRequest {
                        account_id: account,
                    })
                    .await?
                    .into_inner(),
            ),
            AccountCommand::Create(create) => Answer::Account(
                admin
                    .create_account(requests::create_account(create))
                    .await?
                    .into_inner(),
            ),
            AccountCommand::Update(update) => Answer::Account(
                admin
                    .update_account(requests::update_account(update))
                    .await?
                    .into_inner(),
            ),
        },
        ClientCommand::Grant(args) => match args.command {
            GrantCommand::Create(create) => {
                let request = requests::create_grant(create, &time::now());
                Answer::Grant(admin.create_grant(request).await?.into_inner())
            }
            GrantCommand::List { account } => Answer::Grants(
                admin
                    .list_grants(ListGrantsRequest {
                        account_id: account,
                    })
                    .await?
                    .into_inner()
                    .grants,
            ),
            GrantCommand::Void { account, grant } => Answer::Grant(
                admin
                    .void_grant(VoidGrantRequest {
                        account_id: account,
                        grant_id: grant,
                    })
                    .await?
                    .into_inner(),
            ),
        },
        ClientCommand::Reserve(args) => {
            Answer::Reserve(credits.reserve(requests::reserve(args)).await?.into_inner())
        }
        ClientCommand::Commit(args) => {
            let capture = args.capture.clone();
            let cap_overrun = args.cap_overrun;
            let response = credits.commit(requests::commit(args)).await?.into_inner();
            Answer::Commit {
                response,
                capture,
                cap_overrun,
            }
        }
        ClientCommand::Release(args) => {
            Answer::Release(credits.release(requests::release(args)).await?.into_inner())
        }
        ClientCommand::Extend(args) => {
            Answer::Extend(credits.extend(requests::extend(args)).await?.into_inner())
        }
        ClientCommand::Reservation(args) => Answer::Reservation(
            credits
                .get_reservation(GetReservationRequest {
                    account_id: args.account,
                    reservation_id: args.reservation,
                })
                .await?
                .into_inner(),
        ),
        ClientCommand::Balance(args) => Answer::Balance(
            credits
                .get_balance(requests::balance(args))
                .await?
                .into_inner(),
        ),
        ClientCommand::Quote(args) => {
            Answer::Quote(credits.quote(requests::quote(args)).await?.into_inner())
        }
        ClientCommand::Policy(args) => match args.command {
            PolicyCommand::Set(set) => {
                let account = set.account.clone();
                let request = policy::set_policy(set);
                let policy = admin.set_subject_policy(request).await?.into_inner();
                Answer::Policy { account, policy }
            }
            PolicyCommand::Get { account, subject } => {
                let request = GetSubjectPolicyRequest {
                    account_id: account.clone(),
                    subject_id: subject,
                };
                let policy = admin.get_subject_policy(request).await?.into_inner();
                Answer::Policy { account, policy }
            }
        },
        ClientCommand::Access(args) => match args.command {
            AccessCommand::Request(ask) => {
                let (account, subject) = (ask.account.clone(), ask.subject.clone());
                admin
                    .request_spending_access(policy::request_access(ask))
                    .await?;
                Answer::AccessRequested { account, subject }
            }
        },
        ClientCommand::Ratecard(_) => Answer::RateCard(
            admin
                .get_rate_card(GetRateCardRequest {})
                .await?
                .into_inner(),
        ),
        ClientCommand::Usage(args) => {
            let by = args.by.clone();
            let request = reports::usage_request(args)?;
            let response = admin.get_usage(request).await?.into_inner();
            Answer::Usage(reports::UsageReport { response, by })
        }
        ClientCommand::Pnl(args) => Answer::ProfitAndLoss(
            admin
                .get_profit_and_loss(reports::pnl_request(args))
                .await?
                .into_inner(),
        ),
        ClientCommand::Ledger(args) => match args.command {
            LedgerCommand::Entries(entries) => {
                let request = reports::entries_request(&entries);
                let listing = reports::follow(entries.limit, |page_size, page_token| {
                    let mut admin = admin.clone();
                    let request = ListLedgerEntriesRequest {
                        page_size,
                        page_token,
                        ..request.clone()
                    };
                    async move {
                        let page = admin.list_ledger_entries(request).await?.into_inner();
                        Ok((page.entries, page.next_page_token))
                    }
                })
                .await?;
                Answer::Entries(listing)
            }
        },
        ClientCommand::Audit(args) => {
            let request = reports::audit_request(&args);
            let listing = reports::follow(args.limit, |page_size, page_token| {
                let mut admin = admin.clone();
                let request = ListAuditEventsRequest {
                    page_size,
                    page_token,
                    ..request.clone()
                };
                async move {
                    let page = admin.list_audit_events(request).await?.into_inner();
                    Ok((page.events, page.next_page_token))
                }
            })
            .await?;
            Answer::Audit(listing)
        }
    };
    Ok(answer)
}
