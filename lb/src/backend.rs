//! A backend pool at run time: its servers, selection, and the shell that
//! carries out what a server's change of state implies (HAProxy's log
//! lines and `on-marked-*` actions, warren's failback policy): what to do
//! is decided in [`crate::transition`], doing it (closing sessions,
//! logging, the failback timer, the cross-check) is here.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use warren_health::{Outcome, Transition};

use crate::balance::{self, Candidate};
use crate::config::{Backend, Failback, OnError, Role};
use crate::majority::{self, Freshness, Member, Verdict};
use crate::server::{describe_cause, AdminState, ServerState};
use crate::transition::{Action, Held, Policy};
use warren_health::probe::NodeReport;

pub struct BackendState {
    pub config: Backend,
    pub servers: Vec<Arc<ServerState>>,
    turn: AtomicUsize,
    cross_checking: std::sync::Mutex<()>,
}

impl BackendState {
    pub fn new(config: Backend) -> Arc<Self> {
        let servers = config
            .servers
            .iter()
            .map(|s| Arc::new(ServerState::new(&config.name, s.clone(), &config.check)))
            .collect();
        Self::with_servers(config, servers)
    }

    /// A backend over existing server states (reload keeps them).
    pub fn with_servers(config: Backend, servers: Vec<Arc<ServerState>>) -> Arc<Self> {
        Arc::new(BackendState {
            config,
            servers,
            turn: AtomicUsize::new(0),
            cross_checking: std::sync::Mutex::new(()),
        })
    }

    /// Picks a server for a new session, skipping those already tried.
    pub fn select(&self, client: IpAddr, skip: &[usize]) -> Option<usize> {
        let candidates: Vec<Candidate> = self
            .servers
            .iter()
            .map(|s| Candidate {
                role: s.role(),
                eligible: s.is_eligible(),
                has_slot: s.has_slot(),
                weight: s.weight(),
                sessions: s.counters.sessions.load(Ordering::Acquire),
            })
            .collect();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        balance::pick(
            self.config.balance,
            self.config.allbackups,
            &candidates,
            skip,
            turn,
            client,
        )
    }

    /// Eligible servers by role: (primaries, backups).
    pub fn eligible_counts(&self) -> (usize, usize) {
        let count = |role| {
            self.servers
                .iter()
                .filter(|s| s.role() == role && s.is_eligible())
                .count()
        };
        (count(Role::Primary), count(Role::Backup))
    }

    /// Applies the eligibility rule ([`crate::majority`]) to the nodes'
    /// latest reports (`rabbitmq` check): a node the rule cuts off from the
    /// majority is taken out of service as a mark-down would, a node it
    /// finds with the majority again is back, and a node it cannot judge
    /// now keeps its verdict.
    pub fn cross_check(&self) {
        // Every check task calls this: one at a time, so an older snapshot
        // never overwrites a newer verdict.
        let _one_at_a_time = self.cross_checking.lock().expect("cross_check lock");
        // Each server's report, freshness and state from one instant.
        let views: Vec<(Option<NodeReport>, Freshness, bool)> = self
            .servers
            .iter()
            .map(|s| {
                s.read(|h| {
                    let freshness = if h.no_news {
                        Freshness::Silent
                    } else if h.report_current {
                        Freshness::Current
                    } else {
                        Freshness::Stale
                    };
                    (h.report.clone(), freshness, h.up)
                })
            })
            .collect();
        let members: Vec<Member> = views
            .iter()
            .map(|(report, freshness, up)| Member {
                report: report.as_ref(),
                freshness: *freshness,
                up: *up,
            })
            .collect();
        for (index, verdict) in majority::judge(&members).into_iter().enumerate() {
            let server = &self.servers[index];
            match verdict {
                Verdict::Unjudged(_) => {}
                Verdict::CutOff(reason) => {
                    if !server.set_cut_off(Some(reason.clone())) {
                        continue;
                    }
                    let closed = self.close_sessions_of_a_lost_server(server);
                    warn!(
                        event = "cut_off",
                        server = %server.id(),
                        %reason,
                        sessions_closed = closed,
                        "Server {} is cut off from the cluster's majority, reason: {reason}. No new sessions; {closed} sessions closed.",
                        server.id()
                    );
                }
                Verdict::Eligible(reason) => {
                    if !server.set_cut_off(None) {
                        continue;
                    }
                    info!(
                        event = "rejoined",
                        server = %server.id(),
                        %reason,
                        "Server {} is back with the cluster's majority: {reason}.",
                        server.id()
                    );
                    if server.is_eligible() {
                        self.on_primary_back(index);
                    }
                }
            }
        }
    }

    /// `on_marked_down = "shutdown-sessions"`: returns how many were closed.
    fn close_sessions_of_a_lost_server(&self, server: &ServerState) -> usize {
        if self.config.shutdown_sessions_on_down {
            server.shutdown_sessions()
        } else {
            0
        }
    }

    /// A real connect to `server` failed (`observe layer4`).
    pub fn observed_error(self: &Arc<Self>, index: usize, reason: &str) {
        let server = &self.servers[index];
        server
            .counters
            .connect_errors
            .fetch_add(1, Ordering::Relaxed);
        let Some(on_error) = self.config.observe_layer4.filter(|_| server.checked()) else {
            return;
        };
        let now = Instant::now();
        let step = server.machine(|m| match on_error {
            OnError::MarkDown => m.on_observed_error(now),
            OnError::FailCheck => m.on_check(Outcome::Failed, now),
        });
        server.reschedule.notify_one();
        if let Some(t) = step.transition {
            self.transition(index, t, reason, None);
        }
    }

    /// Applies a transition and performs what it implies
    /// ([`crate::transition::decide`]), in order: exactly one log line
    /// (HAProxy's words, with the same facts as structured fields), the
    /// `on-marked-*` session shutdowns, the failback hold, the
    /// cross-check.  `check_duration` is set when an active check caused it.
    pub fn transition(
        self: &Arc<Self>,
        index: usize,
        t: Transition,
        reason: &str,
        check_duration: Option<Duration>,
    ) {
        let server = &self.servers[index];
        let (actions, generation) =
            server.apply(t, &Policy::of(&self.config), check_duration.is_some());
        let (primaries, backups) = self.eligible_counts();
        let id = server.id();
        let cause = describe_cause(t.cause);
        let duration_ms = check_duration.map(|d| d.as_millis() as u64);
        let duration_text = match duration_ms {
            Some(ms) => format!(", check duration: {ms}ms"),
            None => String::new(),
        };
        let (old, new) = (t.from.as_str(), t.to.as_str());
        let mut closed = 0;
        for action in actions {
            match action {
                Action::CloseSessions => closed = server.shutdown_sessions(),
                Action::LogDown => {
                    let empty = if primaries + backups == 0 {
                        format!(" backend '{}' has no server available!", self.config.name)
                    } else {
                        String::new()
                    };
                    warn!(
                        event = "server_state",
                        server = %id,
                        old,
                        new,
                        reason,
                        cause,
                        check_duration_ms = duration_ms,
                        active = primaries,
                        backup = backups,
                        sessions_closed = closed,
                        "Server {id} is DOWN, reason: {reason} ({cause}){duration_text}. {primaries} active and {backups} backup servers left. {closed} sessions closed.{empty}",
                    );
                }
                Action::LogUp { held } => {
                    let wait = match held {
                        None => String::new(),
                        Some(Held::Manual) => {
                            format!(" Waiting for manual failback (`warren-lb ctl enable {id}`).")
                        }
                        Some(Held::After(d)) => format!(" Failback in {d:?} if it stays up."),
                    };
                    info!(
                        event = "server_state",
                        server = %id,
                        old,
                        new,
                        reason,
                        cause,
                        check_duration_ms = duration_ms,
                        active = primaries,
                        backup = backups,
                        awaiting_failback = held.is_some(),
                        "Server {id} is UP, reason: {reason} ({cause}){duration_text}. {primaries} active and {backups} backup servers online.{wait}",
                    );
                }
                Action::HoldFailback { until, after } => {
                    self.failback_at(index, generation, until, after)
                }
                Action::CloseBackupSessions => self.close_backup_sessions(index),
                Action::CrossCheck => self.cross_check(),
            }
        }
    }

    /// Reload: a primary that was held back by the old generation's
    /// failback policy is held by this generation's instead (the old
    /// generation's timer is void): `immediate` releases it now, `after`
    /// starts a fresh wait, `manual` keeps waiting for the operator.
    pub fn adopt_failback_hold(self: &Arc<Self>, index: usize) {
        let server = &self.servers[index];
        if !server.awaiting_failback() {
            return;
        }
        server.void_failback_timer();
        match self.config.failback {
            Failback::Immediate => {
                server.open_failback();
                info!(
                    "Server {} failed back: the reloaded failback policy is immediate.",
                    server.id()
                );
                self.on_primary_back(index);
            }
            Failback::After(after) => {
                self.failback_at(index, server.generation(), Instant::now() + after, after)
            }
            // The UP line already said it is held back.
            Failback::Manual => {}
        }
    }

    /// `failback = after`: at `until`, a primary still UP and unchanged
    /// since `generation` fails back.
    fn failback_at(
        self: &Arc<Self>,
        index: usize,
        generation: u64,
        until: Instant,
        after: Duration,
    ) {
        let backend = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(until.into()).await;
            let server = &backend.servers[index];
            if server.open_failback_since(generation) {
                info!("Server {} failed back after {after:?} up.", server.id());
                backend.on_primary_back(index);
            }
        });
    }

    /// Operator command: drain / maint / ready (HAProxy's `set server state`).
    /// `ready` also releases a primary held back by the failback policy.
    pub fn set_admin(&self, index: usize, state: AdminState) {
        let server = &self.servers[index];
        let (was_eligible, eligible) = server.set_admin(state);
        match state {
            AdminState::Ready => {
                info!("Server {} is READY (operator).", server.id());
                if !was_eligible && eligible {
                    self.on_primary_back(index);
                }
            }
            AdminState::Drain => info!(
                "Server {} is DRAIN (operator): no new sessions.",
                server.id()
            ),
            AdminState::Maint => {
                let n = server.shutdown_sessions();
                info!(
                    "Server {} is MAINT (operator): {n} sessions closed.",
                    server.id()
                );
            }
        }
    }

    /// A server became eligible again: if it is a primary and
    /// `on_marked_up = "shutdown-backup-sessions"`, the backups' sessions
    /// close ([`Policy::closes_backup_sessions`]).
    pub fn on_primary_back(&self, index: usize) {
        if Policy::of(&self.config).closes_backup_sessions(self.servers[index].role()) {
            self.close_backup_sessions(index);
        }
    }

    /// Moves clients off the backups so they all meet on the primary
    /// `index`, which is back.
    fn close_backup_sessions(&self, index: usize) {
        for backup in self.servers.iter().filter(|s| s.role() == Role::Backup) {
            let n = backup.shutdown_sessions();
            if n > 0 {
                info!(
                    "Server {}: {n} sessions closed, primary {} is back.",
                    backup.id(),
                    self.servers[index].id()
                );
            }
        }
    }
}
