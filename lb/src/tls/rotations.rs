//! How many certificate changes the file watches picked up, by result:
//! one count for the whole process, kept outside the terminators because a
//! reload replaces those (and a counter must not go back to zero with them).
//!
//! A reload that loads a new pair is counted as a reload
//! (`warren_lb_config_reloads_total`), not here: these are the changes
//! found by the poll of `cert` and `key` alone.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Rotations {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Rotations {
    /// Counts one settled change of a frontend's files: loaded or refused.
    pub fn record(&self, loaded: bool) {
        let counter = if loaded { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (loaded, refused) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_and_refused_changes_are_counted_apart() {
        let r = Rotations::default();
        r.record(true);
        r.record(false);
        r.record(true);
        assert_eq!(r.counts(), (2, 1));
    }
}
