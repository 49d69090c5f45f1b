//! What one finished check means for a server's health, including the
//! `rabbitmq` check's "no news" (pure: [`judge`]).
//!
//! Calling contract: the check task ([`crate::checker`]) calls [`judge`]
//! once per finished check, with the result's [`CheckResult`], whether the
//! AMQP port answered while the management API was slow, the
//! `silent_since` the previous call returned (`None` before the first) and
//! the instant the check started.  It keeps the returned `silent_since`
//! for the next call, feeds [`Ruling::outcome`] to the check machine and
//! logs the "no news" line when [`Judgement::NoNews`] says `first`.  Time
//! is only what the caller passes in.

use std::time::{Duration, Instant};

use warren_health::Outcome;

/// How long a `rabbitmq` check may time out without counting as failed,
/// while the node's AMQP port still answers.
///
/// While a peer is frozen (SIGSTOP, VM pause, a black-holed link), the
/// management API of every *healthy* node blocks until net_ticktime
/// declares the peer gone (45–75 s with RabbitMQ's default net_ticktime of
/// 60 s; docs/configuration.md, the `rabbitmq` check).  Counting those timeouts as failures marked the
/// whole cluster DOWN and left clients with no server at all.  A node that
/// still completes the AMQP handshake is not the frozen one (a frozen node
/// answers neither), so its check is "no news": health stays as it was —
/// an UP server stays UP, a DOWN one stays DOWN.  The limit bounds how long
/// a node can stay UP on AMQP alone.
pub const NO_NEWS_LIMIT: Duration = Duration::from_secs(90);

/// How a check ended, as far as [`judge`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    Passed,
    /// This process could not get a socket (EMFILE ...): nothing was learnt
    /// about the server.
    LocalError,
    /// The probe timed out (at any layer).
    Timeout,
    /// Any other failure: the server answered wrongly or refused.
    OtherError,
}

/// What the check says about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Passed,
    /// A local error: health unchanged.
    HealthUnchanged,
    /// A `rabbitmq` check timed out while AMQP answers, within
    /// [`NO_NEWS_LIMIT`] of the first such timeout: health unchanged.
    /// `first` for the first timeout of a silence (log it once).
    NoNews {
        first: bool,
    },
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ruling {
    pub judgement: Judgement,
    /// Since when the management API has been timing out, if it is: pass
    /// it to the next call.
    pub silent_since: Option<Instant>,
}

impl Ruling {
    /// What the check machine is fed.
    pub fn outcome(&self) -> Outcome {
        match self.judgement {
            Judgement::Passed => Outcome::Passed,
            Judgement::HealthUnchanged | Judgement::NoNews { .. } => Outcome::Inconclusive,
            Judgement::Failed => Outcome::Failed,
        }
    }
}

/// Judges the check that started at `started`.  `rabbitmq` says the check
/// is a `rabbitmq` one (only those can be "no news"); `amqp_answered`
/// whether the node's AMQP port answered during this check.
pub fn judge(
    result: CheckResult,
    rabbitmq: bool,
    amqp_answered: bool,
    silent_since: Option<Instant>,
    started: Instant,
) -> Ruling {
    if result != CheckResult::Timeout {
        let judgement = match result {
            CheckResult::Passed => Judgement::Passed,
            CheckResult::LocalError => Judgement::HealthUnchanged,
            CheckResult::Timeout | CheckResult::OtherError => Judgement::Failed,
        };
        return Ruling {
            judgement,
            silent_since: None,
        };
    }
    if !rabbitmq {
        return Ruling {
            judgement: Judgement::Failed,
            silent_since,
        };
    }
    let since = silent_since.unwrap_or(started);
    let judgement = if started.duration_since(since) < NO_NEWS_LIMIT && amqp_answered {
        Judgement::NoNews {
            first: since == started,
        }
    } else {
        Judgement::Failed
    };
    Ruling {
        judgement,
        silent_since: Some(since),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckResult::*;

    /// (case, result, rabbitmq, AMQP answered, silent since, started,
    /// judgement, silent since after)
    type Case = (
        &'static str,
        CheckResult,
        bool,
        bool,
        Option<Instant>,
        Instant,
        Judgement,
        Option<Instant>,
    );

    #[test]
    fn judges_each_kind_of_result() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let limit = NO_NEWS_LIMIT;
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("pass", Passed, true, false, None, t0, Judgement::Passed, None),
            ("pass ends a silence", Passed, true, false, Some(t0), t0 + s(5), Judgement::Passed, None),
            ("local error", LocalError, true, true, None, t0, Judgement::HealthUnchanged, None),
            ("local error ends a silence", LocalError, true, true, Some(t0), t0 + s(5), Judgement::HealthUnchanged, None),
            ("first timeout, AMQP answers", Timeout, true, true, None, t0, Judgement::NoNews { first: true }, Some(t0)),
            ("later timeout inside the limit", Timeout, true, true, Some(t0), t0 + s(30), Judgement::NoNews { first: false }, Some(t0)),
            ("timeout past the limit", Timeout, true, true, Some(t0), t0 + limit, Judgement::Failed, Some(t0)),
            ("timeout without AMQP", Timeout, true, false, None, t0, Judgement::Failed, Some(t0)),
            ("timeout without AMQP keeps the silence", Timeout, true, false, Some(t0), t0 + s(5), Judgement::Failed, Some(t0)),
            ("timeout of another check kind", Timeout, false, true, None, t0, Judgement::Failed, None),
            ("other error", OtherError, true, true, None, t0, Judgement::Failed, None),
            ("other error ends a silence", OtherError, true, true, Some(t0), t0 + s(5), Judgement::Failed, None),
        ];
        for (case, result, rabbitmq, amqp, since, started, judgement, since_after) in cases {
            let ruling = judge(result, rabbitmq, amqp, since, started);
            assert_eq!(ruling.judgement, judgement, "{case}");
            assert_eq!(ruling.silent_since, since_after, "{case}");
        }
    }

    #[test]
    fn only_a_pass_and_a_failure_move_health() {
        let t0 = Instant::now();
        let outcome = |result, amqp| judge(result, true, amqp, None, t0).outcome();
        assert_eq!(outcome(Passed, false), Outcome::Passed);
        assert_eq!(outcome(LocalError, false), Outcome::Inconclusive);
        assert_eq!(outcome(Timeout, true), Outcome::Inconclusive);
        assert_eq!(outcome(Timeout, false), Outcome::Failed);
        assert_eq!(outcome(OtherError, false), Outcome::Failed);
    }
}
