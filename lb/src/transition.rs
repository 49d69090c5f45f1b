//! What a server's UP/DOWN transition implies (pure): the new failback
//! gate and the [`Action`]s, in the order the shell performs them.
//!
//! Calling contract: [`crate::server::ServerState::apply`] calls [`decide`]
//! under the server's health lock, with the server's role and failback gate
//! as they are when the transition is applied, records the returned
//! `failed_back`, and hands the actions to the backend
//! ([`crate::backend::BackendState::transition`]), which performs them one
//! after the other after the lock is released.  Time is only the `now` the
//! caller passes in.

use std::time::{Duration, Instant};

use warren_health::{Status, Transition};

use crate::config::{Backend, CheckKind, Failback, Role};

/// A backend's options for what follows a transition (HAProxy's
/// `on-marked-down`/`on-marked-up`, warren's failback policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub failback: Failback,
    /// `on_marked_down = "shutdown-sessions"`.
    pub shutdown_sessions_on_down: bool,
    /// `on_marked_up = "shutdown-backup-sessions"`.
    pub shutdown_backup_sessions_on_up: bool,
    /// The check is `rabbitmq`: other servers' verdicts depend on this one
    /// being UP or DOWN ([`crate::majority`]).
    pub cross_checks: bool,
}

impl Policy {
    pub fn of(backend: &Backend) -> Policy {
        Policy {
            failback: backend.failback,
            shutdown_sessions_on_down: backend.shutdown_sessions_on_down,
            shutdown_backup_sessions_on_up: backend.shutdown_backup_sessions_on_up,
            cross_checks: backend.check.kind == CheckKind::Rabbitmq,
        }
    }

    /// A primary coming back waits for its failback policy.
    fn holds_back_failback(&self) -> bool {
        self.failback != Failback::Immediate
    }

    /// A server of this role that became eligible moves clients off the
    /// backups (`on_marked_up = "shutdown-backup-sessions"`), so they all
    /// meet on the primary.
    pub fn closes_backup_sessions(&self, role: Role) -> bool {
        role == Role::Primary && self.shutdown_backup_sessions_on_up
    }
}

/// One transition as [`decide`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub transition: Transition,
    pub role: Role,
    /// The failback gate before the transition.
    pub failed_back: bool,
    /// An active check caused it (not an error observed on traffic).
    pub by_active_check: bool,
    pub now: Instant,
}

/// Why a primary that came back UP does not take sessions yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Until an operator says `ready`.
    Manual,
    /// Until it has stayed up this long.
    After(Duration),
}

/// What the shell does after a transition, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Close this server's sessions (`on-marked-down shutdown-sessions`);
    /// the DOWN line that follows counts them.
    CloseSessions,
    /// The one DOWN line (HAProxy's words).
    LogDown,
    /// The one UP line, saying whether and how failback is held.
    LogUp { held: Option<Held> },
    /// `failback = after`: open the failback gate at `until` if the server
    /// has not changed meanwhile (same generation) and is still UP; `after`
    /// is the delay, for the line that says so.
    HoldFailback { until: Instant, after: Duration },
    /// Close the sessions of every backup: this primary is back.
    CloseBackupSessions,
    /// Run the cross-check of the nodes' cluster views again.
    CrossCheck,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The failback gate after the transition.
    pub failed_back: bool,
    pub actions: Vec<Action>,
}

/// The failback gate and the actions of one transition.
pub fn decide(change: Change, policy: &Policy) -> Decision {
    let mut actions = Vec::new();
    let mut failed_back = change.failed_back;
    match change.transition.to {
        Status::Down => {
            if change.role == Role::Primary && policy.holds_back_failback() {
                failed_back = false;
            }
            if policy.shutdown_sessions_on_down {
                actions.push(Action::CloseSessions);
            }
            actions.push(Action::LogDown);
        }
        Status::Up => {
            let held = match policy.failback {
                _ if change.role != Role::Primary || failed_back => None,
                Failback::Immediate => None,
                Failback::Manual => Some(Held::Manual),
                Failback::After(d) => Some(Held::After(d)),
            };
            actions.push(Action::LogUp { held });
            match held {
                Some(Held::After(after)) => actions.push(Action::HoldFailback {
                    until: change.now + after,
                    after,
                }),
                Some(Held::Manual) => {}
                None if policy.closes_backup_sessions(change.role) => {
                    actions.push(Action::CloseBackupSessions)
                }
                None => {}
            }
        }
    }
    if change.by_active_check && policy.cross_checks {
        actions.push(Action::CrossCheck);
    }
    Decision {
        failed_back,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_health::Cause;
    use Action::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn policy(failback: Failback, on_down: bool, on_up: bool, cross_checks: bool) -> Policy {
        Policy {
            failback,
            shutdown_sessions_on_down: on_down,
            shutdown_backup_sessions_on_up: on_up,
            cross_checks,
        }
    }

    fn change(to: Status, role: Role, failed_back: bool, now: Instant) -> Change {
        let from = match to {
            Status::Up => Status::Down,
            Status::Down => Status::Up,
        };
        Change {
            transition: Transition {
                from,
                to,
                cause: Cause::Check,
            },
            role,
            failed_back,
            by_active_check: false,
            now,
        }
    }

    /// (case, to, role, failed back before, failback, on-marked-down
    /// shutdown-sessions, on-marked-up shutdown-backup-sessions, failed
    /// back after, actions)
    type Case = (
        &'static str,
        Status,
        Role,
        bool,
        Failback,
        bool,
        bool,
        bool,
        Vec<Action>,
    );

    #[test]
    fn transitions_decide_the_gate_and_the_actions_in_order() {
        let now = Instant::now();
        let (immediate, manual, after) = (
            Failback::Immediate,
            Failback::Manual,
            Failback::After(MINUTE),
        );
        let (primary, backup) = (Role::Primary, Role::Backup);
        let (up, down) = (Status::Up, Status::Down);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("primary down, immediate", down, primary, true, immediate, false, false, true, vec![LogDown]),
            ("primary down, manual", down, primary, true, manual, false, false, false, vec![LogDown]),
            ("primary down, after", down, primary, true, after, false, false, false, vec![LogDown]),
            ("backup down, manual", down, backup, true, manual, false, false, true, vec![LogDown]),
            ("down, shutdown-sessions", down, primary, true, immediate, true, false, true, vec![CloseSessions, LogDown]),
            ("backup down, shutdown-sessions", down, backup, true, after, true, true, true, vec![CloseSessions, LogDown]),
            ("primary up, immediate", up, primary, true, immediate, false, false, true, vec![LogUp { held: None }]),
            ("primary up, immediate, shutdown-backup-sessions", up, primary, true, immediate, false, true, true,
                vec![LogUp { held: None }, CloseBackupSessions]),
            ("primary up, manual", up, primary, false, manual, false, true, false, vec![LogUp { held: Some(Held::Manual) }]),
            ("primary up, after", up, primary, false, after, false, true, false,
                vec![LogUp { held: Some(Held::After(MINUTE)) }, HoldFailback { until: now + MINUTE, after: MINUTE }]),
            ("primary up, manual, enabled while down", up, primary, true, manual, false, true, true,
                vec![LogUp { held: None }, CloseBackupSessions]),
            ("backup up, manual", up, backup, true, manual, false, true, true, vec![LogUp { held: None }]),
            ("backup up, after, gate shut", up, backup, false, after, false, true, false, vec![LogUp { held: None }]),
        ];
        for (case, to, role, failed_back, failback, on_down, on_up, gate, actions) in cases {
            let decision = decide(
                change(to, role, failed_back, now),
                &policy(failback, on_down, on_up, false),
            );
            assert_eq!(decision.failed_back, gate, "{case}");
            assert_eq!(decision.actions, actions, "{case}");
        }
    }

    #[test]
    fn an_active_rabbitmq_check_cross_checks_last() {
        let now = Instant::now();
        for to in [Status::Up, Status::Down] {
            for (by_active_check, cross_checks, expected) in [
                (true, true, true),
                (false, true, false),
                (true, false, false),
            ] {
                let mut change = change(to, Role::Primary, true, now);
                change.by_active_check = by_active_check;
                let decision = decide(
                    change,
                    &policy(Failback::Immediate, true, true, cross_checks),
                );
                assert_eq!(
                    decision.actions.last() == Some(&CrossCheck),
                    expected,
                    "{to:?} by check {by_active_check}, rabbitmq {cross_checks}"
                );
                assert_eq!(
                    decision
                        .actions
                        .iter()
                        .filter(|a| **a == CrossCheck)
                        .count(),
                    usize::from(expected)
                );
            }
        }
    }
}
