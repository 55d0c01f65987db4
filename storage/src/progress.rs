//! How far a long maintenance call (scrub, gc) has got, for a caller to show while it runs:
//! the engine sets a phase and its total and adds what it has done; the caller polls from
//! another thread. Totals are bytes where the work is reading data, else entries.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// What a phase counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProgressUnit {
    #[default]
    Entries,
    Bytes,
}

#[derive(Debug, Default)]
pub struct Progress {
    phase: Mutex<(&'static str, ProgressUnit)>,
    /// 0: unknown (a walk whose length is not known in advance).
    total: AtomicU64,
    done: AtomicU64,
}

/// One reading of a [`Progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressReading {
    pub phase: &'static str,
    pub unit: ProgressUnit,
    pub total: u64,
    pub done: u64,
}

impl Progress {
    /// Starts a phase of `total` units (0: unknown).
    pub fn phase(&self, name: &'static str, unit: ProgressUnit, total: u64) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = (name, unit);
        self.total.store(total, Relaxed);
        self.done.store(0, Relaxed);
    }

    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Relaxed);
    }

    pub fn read(&self) -> ProgressReading {
        let (phase, unit) = *self.phase.lock().unwrap_or_else(|e| e.into_inner());
        ProgressReading {
            phase,
            unit,
            total: self.total.load(Relaxed),
            done: self.done.load(Relaxed),
        }
    }
}
