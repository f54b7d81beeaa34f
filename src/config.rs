//! `creditd serve` configuration (flags with env vars). Filled in by the server work.

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {}
