//! Local resource errors on the data path (HAProxy's termination state
//! `RC`: "a local resource has been exhausted (memory, sockets, source
//! ports)").
//!
//! Running out of descriptors is this process's problem, never the
//! server's: a connect that fails with EMFILE refuses that one client and
//! is counted here, it never marks the server down, never counts as an
//! `observe layer4` error and never closes a session.  After a shortage the
//! listeners pause (until a session ends and frees its descriptors, or
//! [`PAUSE`] passes) so that clients wait in the kernel's backlog instead of
//! being accepted only to be refused, and an accept that fails with EMFILE
//! does not spin.  One log line per [`LOG_EVERY`] says what ran out and how
//! often.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use tokio::sync::Notify;
use warren_health::resource::{io_local_resource, LocalResource};

/// Longest a listener waits after a shortage before it tries again when no
/// session ended meanwhile (HAProxy retries a limited listener after about
/// as long).
pub const PAUSE: Duration = Duration::from_millis(100);

/// At most one resource-error line per this interval; the next one says
/// how many were not logged.
pub const LOG_EVERY: Duration = Duration::from_secs(1);

/// Where in a session's life the shortage hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `accept()` failed: the client stays in the kernel's backlog.
    Accept,
    /// The socket to the server could not be had: the client is refused.
    Connect,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Accept => "accept",
            Phase::Connect => "connect",
        }
    }
}

/// What a listener does after `accept()` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptFailure {
    /// A local shortage: count it, log it (rate-limited), pause.
    Resource(LocalResource),
    /// That one client's connection failed before it was accepted (it
    /// reset, or a network error was pending on it): accept the next one.
    Client,
    /// Anything else: log it and pause, so an unknown error cannot spin.
    Other,
}

/// Sorts an `accept()` error (see accept(2): pending network errors of the
/// new connection are returned by accept and mean "try again").
pub fn accept_failure(e: &io::Error) -> AcceptFailure {
    if let Some(resource) = io_local_resource(e) {
        return AcceptFailure::Resource(resource);
    }
    match e.raw_os_error().map(Errno::from_raw) {
        Some(
            Errno::ECONNABORTED
            | Errno::ECONNRESET
            | Errno::EPROTO
            | Errno::ENETDOWN
            | Errno::ENOPROTOOPT
            | Errno::EHOSTDOWN
            | Errno::ENONET
            | Errno::EHOSTUNREACH
            | Errno::EOPNOTSUPP
            | Errno::ENETUNREACH
            | Errno::EINTR
            | Errno::EAGAIN,
        ) => AcceptFailure::Client,
        _ => AcceptFailure::Other,
    }
}

/// Process-wide counters and the listeners' pause signal.
#[derive(Default)]
pub struct ResourceErrors {
    accept: AtomicU64,
    connect: AtomicU64,
    /// A shortage happened since a listener last looked.
    short: AtomicBool,
    /// A session ended: its descriptors are free again.
    freed: Notify,
    log: Mutex<LogBudget>,
}

impl ResourceErrors {
    /// Counts a shortage; returns how many earlier ones went unlogged when
    /// this one may be logged, None when it must stay quiet.
    pub fn record(&self, phase: Phase) -> Option<u64> {
        match phase {
            Phase::Accept => &self.accept,
            Phase::Connect => &self.connect,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.short.store(true, Ordering::Release);
        self.log
            .lock()
            .expect("resource log lock")
            .allow(Instant::now())
    }

    pub fn count(&self, phase: Phase) -> u64 {
        match phase {
            Phase::Accept => &self.accept,
            Phase::Connect => &self.connect,
        }
        .load(Ordering::Relaxed)
    }

    /// A session ended (its descriptors are closed).
    pub fn freed(&self) {
        self.freed.notify_waiters();
    }

    /// Before accepting: after a shortage, wait until a session ends or
    /// [`PAUSE`] passes, whichever is first.
    pub async fn pause_if_short(&self) {
        let freed = self.freed.notified();
        if self.short.swap(false, Ordering::AcqRel) {
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(PAUSE) => {}
            }
        }
    }
}

/// One line per [`LOG_EVERY`], counting the ones held back.  Time is passed
/// in, so the rule is tested without a clock.
#[derive(Debug, Default)]
pub struct LogBudget {
    last: Option<Instant>,
    held_back: u64,
}

impl LogBudget {
    /// Some(lines held back since the last one) when a line may be written
    /// at `now`, None when it must be held back.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < LOG_EVERY => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accept_shortage_pauses_and_a_clients_own_failure_does_not() {
        let err = |e: Errno| io::Error::from_raw_os_error(e as i32);
        assert_eq!(
            accept_failure(&err(Errno::EMFILE)),
            AcceptFailure::Resource(LocalResource::ProcessFds)
        );
        assert_eq!(
            accept_failure(&err(Errno::ENFILE)),
            AcceptFailure::Resource(LocalResource::SystemFds)
        );
        for e in [Errno::ENOBUFS, Errno::ENOMEM] {
            assert_eq!(
                accept_failure(&err(e)),
                AcceptFailure::Resource(LocalResource::Memory)
            );
        }
        for e in [Errno::ECONNABORTED, Errno::EPROTO, Errno::ENETUNREACH] {
            assert_eq!(accept_failure(&err(e)), AcceptFailure::Client, "{e}");
        }
        for e in [Errno::EBADF, Errno::EINVAL, Errno::EPERM] {
            assert_eq!(accept_failure(&err(e)), AcceptFailure::Other, "{e}");
        }
    }

    #[test]
    fn one_line_per_interval_and_the_next_says_how_many_were_held_back() {
        let t0 = Instant::now();
        let mut budget = LogBudget::default();
        assert_eq!(budget.allow(t0), Some(0));
        assert_eq!(budget.allow(t0 + Duration::from_millis(10)), None);
        assert_eq!(budget.allow(t0 + Duration::from_millis(999)), None);
        assert_eq!(budget.allow(t0 + LOG_EVERY), Some(2));
        assert_eq!(budget.allow(t0 + LOG_EVERY), None);
        assert_eq!(budget.allow(t0 + 5 * LOG_EVERY), Some(1));
    }

    #[tokio::test]
    async fn counts_by_phase_and_pauses_only_after_a_shortage() {
        let errors = ResourceErrors::default();
        // No shortage: no pause (would hang for PAUSE otherwise; bounded
        // generously so only a real wait fails it).
        tokio::time::timeout(Duration::from_secs(5), errors.pause_if_short())
            .await
            .unwrap();
        assert_eq!(errors.record(Phase::Connect), Some(0));
        assert_eq!(errors.record(Phase::Connect), None);
        assert_eq!(errors.record(Phase::Accept), None);
        assert_eq!(errors.count(Phase::Connect), 2);
        assert_eq!(errors.count(Phase::Accept), 1);
        // After a shortage a freed session ends the pause.
        let pause = errors.pause_if_short();
        tokio::pin!(pause);
        assert!(futures_poll_once(&mut pause).await.is_pending());
        errors.freed();
        pause.await;
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(
        f: &mut F,
    ) -> std::task::Poll<F::Output> {
        std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *f).poll(cx)))
            .await
    }
}
