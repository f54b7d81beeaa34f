//! The active rate card, shared by the services and swapped atomically on reload.
//!
//! [`RateCardFile::load`] reads `--pricing FILE` at start-up (an error stops `creditd serve`).
//! [`RateCardFile::reload`] (on SIGHUP) reads it again: a good file replaces the card in one
//! atomic swap, so a call sees either the old card or the new one, never a mix; a bad file keeps
//! the old card, logs the error and counts it in `creditd_rate_card_reload_errors_total`.
//! The active version is logged and exposed as `creditd_rate_card_info{version="..."} 1`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use super::card::{CardError, RateCard};

/// Counter: reloads that failed and kept the previous card.
pub const RELOAD_ERRORS: &str = "creditd_rate_card_reload_errors_total";
/// Counter: successful loads (start-up included).
pub const LOADS: &str = "creditd_rate_card_loads_total";
/// Gauge, label `version`: 1 for the active card, 0 for cards replaced since start-up.
pub const INFO: &str = "creditd_rate_card_info";

/// Where the services read the active rate card. Cheap to clone; empty when no pricing file is
/// configured.
#[derive(Clone, Default)]
pub struct RateCardCell(Arc<ArcSwapOption<RateCard>>);

impl RateCardCell {
    /// No rate card: priced calls and `GetRateCard` answer `RATE_CARD_NOT_CONFIGURED`.
    pub fn empty() -> RateCardCell {
        RateCardCell::default()
    }

    /// A cell holding `card` (tests and embedders; the server uses [`RateCardFile`]).
    pub fn with(card: RateCard) -> RateCardCell {
        let cell = RateCardCell::default();
        cell.replace(card);
        cell
    }

    /// The active card. Keep the `Arc` for the whole call so that one call uses one card.
    pub fn current(&self) -> Option<Arc<RateCard>> {
        self.0.load_full()
    }

    /// Makes `card` the active one; returns the card it replaced.
    pub fn replace(&self, card: RateCard) -> Option<Arc<RateCard>> {
        self.swap(Arc::new(card))
    }

    fn swap(&self, card: Arc<RateCard>) -> Option<Arc<RateCard>> {
        self.0.swap(Some(card))
    }
}

impl fmt::Debug for RateCardCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.current() {
            Some(card) => write!(f, "RateCardCell(version {:?})", card.version()),
            None => f.write_str("RateCardCell(none)"),
        }
    }
}

/// A rate card read from a file, which can be read again.
#[derive(Debug)]
pub struct RateCardFile {
    path: PathBuf,
    cell: RateCardCell,
    /// Serializes reloads, so that two SIGHUPs in a row cannot swap out of order.
    reloading: Mutex<()>,
}

impl RateCardFile {
    /// Reads and validates the file; the error names the file and the field.
    pub fn load(path: &Path) -> Result<RateCardFile, LoadError> {
        let card = read(path)?;
        let file = RateCardFile {
            path: path.to_path_buf(),
            cell: RateCardCell::empty(),
            reloading: Mutex::new(()),
        };
        activate(&file.cell, card, &file.path);
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cell the services read.
    pub fn cell(&self) -> RateCardCell {
        self.cell.clone()
    }

    /// Reads the file again. A good file becomes the active card; a bad one leaves the active
    /// card as it was, is logged, counted, and returned as the error.
    pub fn reload(&self) -> Result<Arc<RateCard>, LoadError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match read(&self.path) {
            Ok(card) => Ok(activate(&self.cell, card, &self.path)),
            Err(e) => {
                ::metrics::counter!(RELOAD_ERRORS).increment(1);
                let kept = self
                    .cell
                    .current()
                    .map(|c| c.version().to_string())
                    .unwrap_or_default();
                tracing::error!(kept_version = %kept, "rate card NOT reloaded, keeping version {kept:?}: {e}");
                Err(e)
            }
        }
    }
}

/// A rate card file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pricing file {}: {error}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub error: CardError,
}

fn read(path: &Path) -> Result<RateCard, LoadError> {
    RateCard::from_file(path).map_err(|error| LoadError {
        path: path.to_path_buf(),
        error,
    })
}

fn activate(cell: &RateCardCell, card: RateCard, path: &Path) -> Arc<RateCard> {
    let version = card.version().to_string();
    let (skus, plans) = (card.skus().len(), card.plans().len());
    let card = Arc::new(card);
    let previous = cell.swap(card.clone());
    if let Some(old) = &previous {
        if old.version() != version {
            ::metrics::gauge!(INFO, "version" => old.version().to_string()).set(0.0);
        }
    }
    ::metrics::gauge!(INFO, "version" => version.clone()).set(1.0);
    ::metrics::counter!(LOADS).increment(1);
    match previous {
        None => {
            tracing::info!(%version, skus, plans, "rate card version {version:?} loaded from {}", path.display())
        }
        Some(old) => {
            tracing::info!(%version, previous = %old.version(), skus, plans, "rate card reloaded: version {:?} -> {version:?}", old.version())
        }
    }
    card
}
