//! `creditd token hash`: the `sha256` line of a tokens file entry, for a token read from stdin
//! or a new random one (`--generate`). It needs no server.

use std::io::Read as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::api::auth::tokens::{generate_token, hash_hex};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print the `sha256 = "…"` line for the tokens file: of the token on stdin, or of a new
    /// random token (--generate), printed once as `token = "…"`.
    Hash {
        /// Generate a new random token instead of reading one from stdin.
        #[arg(long)]
        generate: bool,
    },
}

pub fn run(args: TokenArgs) -> ExitCode {
    let TokenCommand::Hash { generate } = args.command;
    let token = if generate {
        generate_token()
    } else {
        match read_stdin_token() {
            Ok(token) => token,
            Err(line) => {
                eprintln!("creditd: {line}");
                return ExitCode::FAILURE;
            }
        }
    };
    if generate {
        println!("token = {token:?}");
        eprintln!(
            "creditd: the token above is shown only once: give it to the client \
             (CREDITD_TOKEN); put only the sha256 line in the tokens file"
        );
    }
    println!("sha256 = {:?}", hash_hex(&token));
    ExitCode::SUCCESS
}

/// The token on stdin, without its trailing newline.
fn read_stdin_token() -> Result<String, String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err("no token on stdin (or use --generate)".into());
    }
    if token.chars().any(|c| !c.is_ascii_graphic()) {
        return Err("a token is printable ASCII without spaces".into());
    }
    Ok(token.to_string())
}
