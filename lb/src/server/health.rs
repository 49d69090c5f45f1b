//! What a server's health is made of, as one record behind one lock.
//!
//! These fields change together: a transition moves `up`, the failback
//! gate, the generation and the time of the last change at once; an
//! operator command moves the admin state, the gate and the generation; a
//! finished `rabbitmq` check moves the report, the "no news" flag, the
//! cut-off verdict and the check machine.  Each used to have a lock or an
//! atomic of its own, so a reader could see a server UP with the gate of
//! before its DOWN, or a new report with the old cut-off.  One
//! `Mutex<Health>` (mini-redis's `db.rs` shape) makes every change and
//! every read whole.  The lock is a std one: it is never held across an
//! `.await`, only while a field is read or written or the pure check
//! machine steps.

use std::time::Instant;

use warren_health::probe::NodeReport;
use warren_health::CheckMachine;

/// What an operator asked of a server (HAProxy's admin states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    /// No new sessions; existing ones continue.
    Drain,
    /// No new sessions, existing ones closed.
    Maint,
}

pub struct Health {
    /// The active and passive checks' pure state machine (warren-health).
    pub machine: CheckMachine,
    /// As of the last transition applied (the machine can be one step ahead
    /// of it until the backend has applied and logged its transition).
    pub up: bool,
    /// A primary that came back waits with this false until its failback
    /// policy allows.
    pub failed_back: bool,
    pub admin: AdminState,
    /// Bumped on every transition and operator command, so a delayed
    /// failback can tell whether the server changed in the meantime.
    pub generation: u64,
    /// Why the majority does not vouch for this node (`rabbitmq` check),
    /// if it does not.
    pub cut_off: Option<String>,
    /// The `rabbitmq` check times out while AMQP answers ("no news", see
    /// [`crate::no_news`]): health is frozen, and the node's last report
    /// is too old to judge others by.
    pub no_news: bool,
    /// What the node reported at its last passed `rabbitmq` check (see
    /// [`crate::majority`]).
    pub report: Option<NodeReport>,
    /// `report` is from the latest check (false once a check failed).
    pub report_current: bool,
    /// The last UP/DOWN transition (or the server's creation).
    pub last_change: Instant,
    /// The last check's reason and duration, published once its verdict
    /// is applied.
    pub last_check: Option<String>,
}

impl Health {
    pub fn new(machine: CheckMachine, now: Instant) -> Health {
        Health {
            up: machine.is_up(),
            machine,
            failed_back: true,
            admin: AdminState::Ready,
            generation: 0,
            cut_off: None,
            no_news: false,
            report: None,
            report_current: false,
            last_change: now,
            last_check: None,
        }
    }

    /// May take new sessions: up, failed back, not drained, and not cut off
    /// from the cluster's majority.
    pub fn is_eligible(&self) -> bool {
        self.up && self.failed_back && self.admin == AdminState::Ready && self.cut_off.is_none()
    }

    pub fn awaiting_failback(&self) -> bool {
        self.up && !self.failed_back
    }

    /// HAProxy's word for the server's state: UP, DOWN, DRAIN or MAINT
    /// (an operator state wins over health).
    pub fn state_word(&self) -> &'static str {
        match self.admin {
            AdminState::Maint => "MAINT",
            AdminState::Drain => "DRAIN",
            AdminState::Ready if self.up => "UP",
            AdminState::Ready => "DOWN",
        }
    }
}
