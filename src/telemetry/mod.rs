//! Logging, metrics and health.
//!
//! - [`init_tracing`]: the log subscriber (`RUST_LOG` filter, default `info`; text or JSON lines).
//! - [`metrics`]: the Prometheus recorder and the names of every metric creditd exports.
//! - [`health`]: the component map (store reachable, shutting down) behind gRPC health and `/readyz`.

pub mod health;
mod json;
pub mod metrics;

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

pub use health::{Health, HealthState};

use crate::config::LogFormat;

type FormatLayer = Box<dyn Layer<Registry> + Send + Sync>;

static FORMAT_HANDLE: OnceLock<reload::Handle<FormatLayer, Registry>> = OnceLock::new();

/// Installs the global log subscriber. The level comes from `RUST_LOG` (default `info`); the
/// format from `CREDITD_LOG_FORMAT` (`text` or `json`) until [`set_log_format`] changes it.
/// Calling it again does nothing.
pub fn init_tracing() {
    let format = match std::env::var("CREDITD_LOG_FORMAT") {
        Ok(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(format_layer(format));
    if tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init()
        .is_ok()
    {
        let _ = FORMAT_HANDLE.set(handle);
    }
}

/// Switches the log format (the `--log-format` flag, known only once the flags are parsed).
pub fn set_log_format(format: LogFormat) {
    if let Some(handle) = FORMAT_HANDLE.get() {
        if let Err(e) = handle.reload(format_layer(format)) {
            tracing::warn!("could not switch the log format: {e}");
        }
    }
}

fn format_layer(format: LogFormat) -> FormatLayer {
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(json::JsonLines)
            .boxed(),
    }
}
