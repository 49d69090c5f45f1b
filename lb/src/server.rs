//! One server's live state: health (from the shared check machine),
//! failback gate, operator state, sessions and counters.
//!
//! The check task and the data path both change health (active checks and
//! passive `observe layer4` errors); both go through [`ServerState::apply`]
//! so every transition is logged once and acted on once
//! (`on-marked-down shutdown-sessions`, failback).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use warren_health::probe::NodeReport;
use warren_health::{Cause, CheckMachine, InitialState, Status, Transition};

use crate::config::{Check, CheckKind, Role, Server};
use crate::counters::ServerCounters;
use crate::resolution::{Change, Record, Resolution};

/// What an operator asked of a server (HAProxy's admin states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready = 0,
    /// No new sessions; existing ones continue.
    Drain = 1,
    /// No new sessions, existing ones closed.
    Maint = 2,
}

pub struct ServerState {
    pub backend: String,
    /// The server as configured when it was created.  Its identity (name,
    /// address) never changes; role, weight and maxconn may change on a
    /// reload: read them with [`ServerState::role`] and friends.
    pub config: Server,
    checked: AtomicBool,
    role: AtomicU8,
    weight: AtomicU32,
    maxconn: AtomicUsize,
    machine: Mutex<CheckMachine>,
    up: AtomicBool,
    /// A primary that came back waits here until its failback policy allows.
    failed_back: AtomicBool,
    admin: AtomicU8,
    /// Bumped on every transition, so a delayed failback can tell whether
    /// the server went down again in the meantime.
    generation: AtomicU64,
    sessions_token: Mutex<CancellationToken>,
    /// Wakes the check task when a passive error changed the schedule.
    pub reschedule: Notify,
    pub last_change: Mutex<Instant>,
    pub last_check: Mutex<Option<String>>,
    pub counters: ServerCounters,
    /// What the node reported at its last passed `rabbitmq` check (see
    /// [`crate::majority`]).
    pub cluster: Mutex<Option<NodeReport>>,
    /// `cluster` is from the latest check (false once a check failed).
    report_current: AtomicBool,
    /// The majority does not vouch for this node (`rabbitmq` check); read on
    /// every server pick, so an atomic beside the reason text.
    cut_off: AtomicBool,
    cut_off_reason: Mutex<Option<String>>,
    /// The `rabbitmq` check times out while AMQP answers ("no news", see
    /// [`crate::no_news::NO_NEWS_LIMIT`]): health is frozen, and the
    /// node's last report is too old to judge others by.
    pub no_news: AtomicBool,
    /// The address the data path and the checks use (see
    /// [`crate::resolution`], fed by [`crate::dns`]);
    /// a watch so the first connect can wait for the first answer.
    dns: watch::Sender<Record>,
}

/// A session's claim on a server slot; releases it when dropped.
pub struct SessionSlot(Arc<ServerState>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.counters.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ServerState {
    pub fn new(backend: &str, config: Server, check: &Check) -> Self {
        let machine = CheckMachine::new(check.params, InitialState::default());
        let up = machine.is_up();
        ServerState {
            backend: backend.to_owned(),
            checked: AtomicBool::new(check.kind != CheckKind::None),
            role: AtomicU8::new(role_code(config.role)),
            weight: AtomicU32::new(config.weight),
            maxconn: AtomicUsize::new(config.maxconn),
            machine: Mutex::new(machine),
            up: AtomicBool::new(up),
            failed_back: AtomicBool::new(true),
            admin: AtomicU8::new(AdminState::Ready as u8),
            generation: AtomicU64::new(0),
            sessions_token: Mutex::new(CancellationToken::new()),
            reschedule: Notify::new(),
            last_change: Mutex::new(Instant::now()),
            last_check: Mutex::new(None),
            counters: ServerCounters::default(),
            no_news: AtomicBool::new(false),
            cluster: Mutex::new(None),
            report_current: AtomicBool::new(false),
            cut_off: AtomicBool::new(false),
            cut_off_reason: Mutex::new(None),
            dns: watch::Sender::new(Record::new(&config.address)),
            config,
        }
    }

    /// HAProxy's word for the server's state: UP, DOWN, DRAIN or MAINT
    /// (an operator state wins over health).
    pub fn state_word(&self) -> &'static str {
        match self.admin() {
            AdminState::Maint => "MAINT",
            AdminState::Drain => "DRAIN",
            AdminState::Ready if self.is_up() => "UP",
            AdminState::Ready => "DOWN",
        }
    }

    pub fn id(&self) -> String {
        format!("{}/{}", self.backend, self.config.name)
    }

    pub fn checked(&self) -> bool {
        self.checked.load(Ordering::Acquire)
    }

    pub fn role(&self) -> Role {
        if self.role.load(Ordering::Acquire) == role_code(Role::Backup) {
            Role::Backup
        } else {
            Role::Primary
        }
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Acquire)
    }

    /// 0 = unlimited.
    pub fn maxconn(&self) -> usize {
        self.maxconn.load(Ordering::Acquire)
    }

    /// Reload: the same server (backend, name, address) with possibly new
    /// role, weight, maxconn and check settings.  Health, operator state,
    /// sessions and counters stay.  When the check's rise/fall/intervals
    /// changed, the check machine restarts in the state the server is in
    /// (UP with `health = rise`, or DOWN needing `rise` passes).
    pub fn retune(&self, config: &Server, old_check: &Check, check: &Check) {
        self.role.store(role_code(config.role), Ordering::Release);
        self.weight.store(config.weight, Ordering::Release);
        self.maxconn.store(config.maxconn, Ordering::Release);
        self.checked
            .store(check.kind != CheckKind::None, Ordering::Release);
        if old_check.params != check.params {
            let mut m = self.machine.lock().expect("check machine lock");
            let initial = if m.is_up() {
                InitialState::Up
            } else {
                InitialState::FullyDown
            };
            *m = CheckMachine::new(check.params, initial);
        }
        if check.kind != CheckKind::Rabbitmq {
            // The cross-check only runs with `rabbitmq` checks: a verdict
            // left from before would never be revisited.
            self.record_report(None);
            *self.cluster.lock().expect("cluster lock") = None;
            self.set_cut_off(None);
        }
        if check.kind == CheckKind::None && !self.is_up() {
            // Unchecked servers are UP (as at start-up); nothing else
            // would ever bring this one back.
            *self.machine.lock().expect("check machine lock") =
                CheckMachine::new(check.params, InitialState::Up);
            self.up.store(true, Ordering::Release);
            self.generation.fetch_add(1, Ordering::AcqRel);
            *self.last_change.lock().expect("last_change lock") = Instant::now();
            tracing::info!(
                "Server {} is UP, reason: checks disabled by reload.",
                self.id()
            );
        }
    }

    pub fn resolution(&self) -> Resolution {
        self.dns.borrow().resolution.clone()
    }

    /// Where to connect for `port`: the server's current address, waiting
    /// (within the caller's timeout) only for a name's first answer.
    pub async fn target(&self, port: u16) -> Result<SocketAddr, String> {
        let mut rx = self.dns.subscribe();
        let record = rx
            .wait_for(|r| r.resolution != Resolution::Pending)
            .await
            .map_err(|_| "the resolver stopped".to_owned())?;
        match &record.resolution {
            Resolution::Resolved(ip) => Ok(SocketAddr::new(*ip, port)),
            Resolution::Unresolved(e) => Err(format!(
                "cannot resolve {}: {e}",
                self.config.address.host()
            )),
            Resolution::Pending => unreachable!("waited for an answer"),
        }
    }

    /// Feeds a DNS answer for the server's name; returns what changed.
    pub fn dns_answer(
        &self,
        answer: Result<Vec<std::net::IpAddr>, String>,
        now: Instant,
        hold: std::time::Duration,
    ) -> Option<Change> {
        if answer.is_err() {
            self.counters.dns_failures.fetch_add(1, Ordering::Relaxed);
        }
        let mut change = None;
        self.dns.send_if_modified(|r| {
            let before = r.resolution.clone();
            change = r.on_answer(answer, now, hold);
            r.resolution != before
        });
        change
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn admin(&self) -> AdminState {
        match self.admin.load(Ordering::Acquire) {
            0 => AdminState::Ready,
            1 => AdminState::Drain,
            _ => AdminState::Maint,
        }
    }

    /// May take new sessions: up, failed back, not drained, and not cut off
    /// from the cluster's majority.
    pub fn is_eligible(&self) -> bool {
        self.is_up()
            && self.failed_back.load(Ordering::Acquire)
            && self.admin() == AdminState::Ready
            && !self.cut_off.load(Ordering::Acquire)
    }

    /// A `rabbitmq` check finished: with the node's report when it passed
    /// (it becomes the current report), `None` when it failed (the last
    /// report is kept, as stale).
    pub fn record_report(&self, passed: Option<NodeReport>) {
        let mut cluster = self.cluster.lock().expect("cluster lock");
        self.report_current
            .store(passed.is_some(), Ordering::Release);
        if let Some(report) = passed {
            *cluster = Some(report);
        }
    }

    /// The node's last report and whether it is from the latest check.
    pub fn report(&self) -> (Option<NodeReport>, bool) {
        let cluster = self.cluster.lock().expect("cluster lock");
        (cluster.clone(), self.report_current.load(Ordering::Acquire))
    }

    /// Why the majority does not vouch for this node, if it does not.
    pub fn cut_off(&self) -> Option<String> {
        self.cut_off_reason.lock().expect("cut_off lock").clone()
    }

    /// Records the cross-check's verdict; true when it changed.
    pub fn set_cut_off(&self, verdict: Option<String>) -> bool {
        let mut reason = self.cut_off_reason.lock().expect("cut_off lock");
        let changed = self.cut_off.swap(verdict.is_some(), Ordering::AcqRel) != verdict.is_some();
        *reason = verdict;
        changed
    }

    pub fn awaiting_failback(&self) -> bool {
        self.is_up() && !self.failed_back.load(Ordering::Acquire)
    }

    pub fn has_slot(&self) -> bool {
        let maxconn = self.maxconn();
        maxconn == 0 || self.counters.sessions.load(Ordering::Acquire) < maxconn
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn machine<R>(&self, f: impl FnOnce(&mut CheckMachine) -> R) -> R {
        f(&mut self.machine.lock().expect("check machine lock"))
    }

    pub fn claim_slot(self: &Arc<Self>) -> SessionSlot {
        self.counters.sessions.fetch_add(1, Ordering::AcqRel);
        self.counters.total_sessions.fetch_add(1, Ordering::Relaxed);
        SessionSlot(self.clone())
    }

    /// Cancelled when this server's sessions must close.
    pub fn sessions_token(&self) -> CancellationToken {
        self.sessions_token.lock().expect("token lock").clone()
    }

    /// Closes every current session of this server.
    pub fn shutdown_sessions(&self) -> usize {
        let old = std::mem::replace(
            &mut *self.sessions_token.lock().expect("token lock"),
            CancellationToken::new(),
        );
        old.cancel();
        self.counters.sessions.load(Ordering::Acquire)
    }

    pub fn set_admin(&self, state: AdminState) {
        self.admin.store(state as u8, Ordering::Release);
        if state == AdminState::Ready {
            self.failed_back.store(true, Ordering::Release);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A pending `failback = after` timer (which compares generations)
    /// will find this server changed and do nothing.
    pub fn void_failback_timer(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn open_failback(&self) {
        self.failed_back.store(true, Ordering::Release);
    }

    /// Records a transition's effect on the shared flags.  Returns the
    /// transition so the caller (the backend) can log it and act on it.
    pub fn apply(&self, transition: Transition, holds_back_failback: bool) -> Transition {
        let up = transition.to == Status::Up;
        self.up.store(up, Ordering::Release);
        if up {
            self.counters.ups.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.downs.fetch_add(1, Ordering::Relaxed);
        }
        if !up && self.role() == Role::Primary && holds_back_failback {
            self.failed_back.store(false, Ordering::Release);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.last_change.lock().expect("last_change lock") = Instant::now();
        transition
    }
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Primary => 0,
        Role::Backup => 1,
    }
}

pub fn describe_cause(cause: Cause) -> &'static str {
    match cause {
        Cause::Check => "health check",
        Cause::ObservedError => "observed layer4 error",
    }
}
