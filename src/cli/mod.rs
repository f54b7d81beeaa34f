//! Client commands that drive a running server. Filled in by the CLI work.

#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {}

pub async fn run(cmd: ClientCommand) -> std::process::ExitCode {
    match cmd {}
}
