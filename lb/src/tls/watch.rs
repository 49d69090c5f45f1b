//! Live rotation from the files: the certificate and key are polled every
//! [`POLL`], and a pair whose content changed is loaded into the
//! frontend's [`RotatingCert`].
//!
//! Polled, not watched with inotify: a Kubernetes Secret volume swaps a
//! symlinked directory, which a watch on the file never sees, and reading
//! two small files a second costs nothing.  The content is hashed, since a
//! rewrite within the same second keeps the mtime (and may keep the size).
//!
//! Certificate and key are two files written one after the other, so a
//! poll can see the new certificate with the old key.  [`Settle`] loads a
//! change only once the files read the same at two polls in a row, which
//! keeps that half-written moment from being logged as a failed rotation.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::rotating::RotatingCert;
use super::rotations::Rotations;
use crate::certificates as pair;
use crate::config::Tls;

/// How often the files are read.
pub const POLL: Duration = Duration::from_secs(1);

/// What one look at the files asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Nothing,
    Load,
}

/// The pure rule: given the fingerprint of the files at each poll, when
/// to load them.
///
/// Contract: call [`Settle::observe`] once per poll with
/// [`fingerprint`]'s value; on [`Step::Load`], load the files (success or
/// failure, that content is not tried again until it changes).
#[derive(Debug, Clone)]
pub struct Settle {
    /// The content last loaded (or refused).
    loaded: u64,
    /// A new content seen at the previous poll, not yet loaded.
    pending: Option<u64>,
}

impl Settle {
    /// `loaded` = the fingerprint of what is serving.
    pub fn new(loaded: u64) -> Settle {
        Settle {
            loaded,
            pending: None,
        }
    }

    pub fn observe(&mut self, now: u64) -> Step {
        if now == self.loaded {
            self.pending = None;
            return Step::Nothing;
        }
        if self.pending == Some(now) {
            self.loaded = now;
            self.pending = None;
            return Step::Load;
        }
        self.pending = Some(now);
        Step::Nothing
    }
}

/// A hash of what the certificate and key files hold now; a file that
/// cannot be read hashes as its error, so a removed file is a change too.
pub fn fingerprint(cert: &Path, key: &Path) -> u64 {
    let mut hasher = DefaultHasher::new();
    for path in [cert, key] {
        match std::fs::read(path) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(e) => e.kind().to_string().hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// Polls `tls`'s files until `stop`, installing each settled change into
/// `current`; a pair that does not load leaves the old one serving and is
/// logged once, with why.
pub async fn run(
    frontend: String,
    tls: Tls,
    current: Arc<RotatingCert>,
    mut settle: Settle,
    rotations: Arc<Rotations>,
    stop: CancellationToken,
) {
    let provider = rustls::crypto::ring::default_provider();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if settle.observe(fingerprint(&tls.cert, &tls.key)) == Step::Nothing {
            continue;
        }
        match pair::load(&tls.cert, &tls.key, &provider, pair::now()) {
            Ok(loaded) => {
                let leaf = loaded.leaf.clone();
                current.install(loaded);
                rotations.record(true);
                info!(
                    event = "tls_rotation",
                    result = "ok",
                    frontend = %frontend,
                    serial = %leaf.serial,
                    "frontend '{frontend}': new certificate from {} (serial {}, expires {}); new handshakes present it",
                    tls.cert.display(),
                    leaf.serial,
                    leaf.not_after_rfc3339()
                );
            }
            Err(e) => {
                rotations.record(false);
                warn!(
                    event = "tls_rotation",
                    result = "failed",
                    frontend = %frontend,
                    error = %e,
                    "frontend '{frontend}': changed certificate not loaded, the previous one keeps serving: {e}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_loads_once_it_reads_the_same_twice() {
        let mut settle = Settle::new(1);
        assert_eq!(settle.observe(1), Step::Nothing);
        assert_eq!(settle.observe(2), Step::Nothing, "first sight waits");
        assert_eq!(settle.observe(2), Step::Load);
        assert_eq!(settle.observe(2), Step::Nothing, "loaded once");
    }

    #[test]
    fn a_half_written_pair_is_not_loaded() {
        let mut settle = Settle::new(1);
        assert_eq!(settle.observe(2), Step::Nothing, "new cert, old key");
        assert_eq!(settle.observe(3), Step::Nothing, "new cert, new key");
        assert_eq!(settle.observe(3), Step::Load);
    }

    #[test]
    fn a_refused_content_is_not_retried_until_it_changes() {
        let mut settle = Settle::new(1);
        settle.observe(2);
        assert_eq!(settle.observe(2), Step::Load, "refused by the caller");
        for _ in 0..3 {
            assert_eq!(settle.observe(2), Step::Nothing);
        }
        settle.observe(1);
        assert_eq!(settle.observe(1), Step::Load, "back to the old files");
    }

    #[test]
    fn a_change_undone_before_it_settled_is_nothing() {
        let mut settle = Settle::new(1);
        settle.observe(2);
        assert_eq!(settle.observe(1), Step::Nothing);
        assert_eq!(settle.observe(1), Step::Nothing);
    }
}
