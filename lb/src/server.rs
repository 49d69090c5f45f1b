//! One server's live state: its health record, the settings a reload may
//! retune, its sessions, counters and address.
//!
//! The check task, the data path (passive `observe layer4` errors), the
//! cross-check and the operator all change health; every change goes
//! through the one lock of [`Health`] (see `server/health.rs` for why those
//! fields share it).  A transition goes through [`ServerState::apply`],
//! which records it and returns what it implies ([`crate::transition`]),
//! so every transition is logged once and acted on once by the backend.
//!
//! What may be an atomic instead: what the data path reads on every server
//! pick and changes on its own.  The settings a reload retunes (role,
//! weight, maxconn, checked) are each read alone; [`ServerState::is_eligible`]
//! is a copy of [`Health::is_eligible`], written only under the health
//! lock, so a pick never takes it; the counters ([`crate::counters`]) have
//! one writer each.

mod health;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use warren_health::probe::NodeReport;
use warren_health::{Cause, CheckMachine, InitialState, Status, Transition};

pub use self::health::{AdminState, Health};
use crate::config::{Check, CheckKind, Role, Server};
use crate::counters::ServerCounters;
use crate::resolution::{Change, Record, Resolution};
use crate::transition::{self, Action, Policy};

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
    health: Mutex<Health>,
    /// [`Health::is_eligible`] as of the last change of `health`.
    eligible: AtomicBool,
    sessions_token: Mutex<CancellationToken>,
    /// Wakes the check task when a passive error changed the schedule.
    pub reschedule: Notify,
    pub counters: ServerCounters,
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

/// The health record, locked; republishes eligibility when let go, so no
/// change of health can forget to.
struct Locked<'a> {
    health: MutexGuard<'a, Health>,
    eligible: &'a AtomicBool,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Health;
    fn deref(&self) -> &Health {
        &self.health
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Health {
        &mut self.health
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.eligible
            .store(self.health.is_eligible(), Ordering::Release);
    }
}

impl ServerState {
    pub fn new(backend: &str, config: Server, check: &Check) -> Self {
        let health = Health::new(
            CheckMachine::new(check.params, InitialState::default()),
            Instant::now(),
        );
        ServerState {
            backend: backend.to_owned(),
            checked: AtomicBool::new(check.kind != CheckKind::None),
            role: AtomicU8::new(role_code(config.role)),
            weight: AtomicU32::new(config.weight),
            maxconn: AtomicUsize::new(config.maxconn),
            eligible: AtomicBool::new(health.is_eligible()),
            health: Mutex::new(health),
            sessions_token: Mutex::new(CancellationToken::new()),
            reschedule: Notify::new(),
            counters: ServerCounters::default(),
            dns: watch::Sender::new(Record::new(&config.address)),
            config,
        }
    }

    fn health(&self) -> Locked<'_> {
        Locked {
            health: self.health.lock().expect("health lock"),
            eligible: &self.eligible,
        }
    }

    /// Reads the health record whole.
    pub fn read<R>(&self, f: impl FnOnce(&Health) -> R) -> R {
        f(&self.health.lock().expect("health lock"))
    }

    /// HAProxy's word for the server's state: UP, DOWN, DRAIN or MAINT
    /// (an operator state wins over health).
    pub fn state_word(&self) -> &'static str {
        self.read(Health::state_word)
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
        let mut health = self.health();
        if old_check.params != check.params {
            let initial = if health.machine.is_up() {
                InitialState::Up
            } else {
                InitialState::FullyDown
            };
            health.machine = CheckMachine::new(check.params, initial);
        }
        if check.kind != CheckKind::Rabbitmq {
            // The cross-check only runs with `rabbitmq` checks: a verdict
            // left from before would never be revisited.
            health.report = None;
            health.report_current = false;
            health.cut_off = None;
        }
        if check.kind == CheckKind::None && !health.up {
            // Unchecked servers are UP (as at start-up); nothing else
            // would ever bring this one back.
            health.machine = CheckMachine::new(check.params, InitialState::Up);
            health.up = true;
            health.generation += 1;
            health.last_change = Instant::now();
            drop(health);
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
        self.read(|h| h.up)
    }

    pub fn admin(&self) -> AdminState {
        self.read(|h| h.admin)
    }

    /// May take new sessions ([`Health::is_eligible`]); read on every
    /// server pick, so without the lock.
    pub fn is_eligible(&self) -> bool {
        self.eligible.load(Ordering::Acquire)
    }

    /// A `rabbitmq` check finished: with the node's report when it passed
    /// (it becomes the current report), `None` when it failed (the last
    /// report is kept, as stale).
    pub fn record_report(&self, passed: Option<NodeReport>) {
        let mut health = self.health();
        health.report_current = passed.is_some();
        if let Some(report) = passed {
            health.report = Some(report);
        }
    }

    /// The node's last report and whether it is from the latest check.
    pub fn report(&self) -> (Option<NodeReport>, bool) {
        self.read(|h| (h.report.clone(), h.report_current))
    }

    /// Why the majority does not vouch for this node, if it does not.
    pub fn cut_off(&self) -> Option<String> {
        self.read(|h| h.cut_off.clone())
    }

    /// Records the cross-check's verdict; true when it changed (cut off
    /// or not: a new reason alone is no change).
    pub fn set_cut_off(&self, verdict: Option<String>) -> bool {
        let mut health = self.health();
        let changed = health.cut_off.is_some() != verdict.is_some();
        health.cut_off = verdict;
        changed
    }

    /// The last check was "no news" ([`crate::no_news`]).
    pub fn no_news(&self) -> bool {
        self.read(|h| h.no_news)
    }

    /// Records whether the check that just finished was "no news", before
    /// the cross-check reads it.
    pub fn set_no_news(&self, no_news: bool) {
        self.health().no_news = no_news;
    }

    /// Publishes a finished check's reason and duration once its verdict
    /// is applied: `/status` shows it, and an upgrade's new process reads
    /// it as "this server's health is known" (runtime.rs).
    pub fn publish_check(&self, last_check: String) {
        self.health().last_check = Some(last_check);
    }

    /// The last check's reason and duration; `None` before the first.
    pub fn last_check(&self) -> Option<String> {
        self.read(|h| h.last_check.clone())
    }

    /// Since the last UP/DOWN transition (or the server's creation).
    pub fn since_last_change(&self) -> Duration {
        self.read(|h| h.last_change.elapsed())
    }

    pub fn awaiting_failback(&self) -> bool {
        self.read(Health::awaiting_failback)
    }

    pub fn has_slot(&self) -> bool {
        let maxconn = self.maxconn();
        maxconn == 0 || self.counters.sessions.load(Ordering::Acquire) < maxconn
    }

    pub fn generation(&self) -> u64 {
        self.read(|h| h.generation)
    }

    /// Steps the check machine, under the health lock.
    pub fn machine<R>(&self, f: impl FnOnce(&mut CheckMachine) -> R) -> R {
        f(&mut self.health().machine)
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

    /// Records an operator command; `ready` also opens the failback gate.
    /// Returns whether the server was eligible before and is now.
    pub fn set_admin(&self, state: AdminState) -> (bool, bool) {
        let mut health = self.health();
        let was_eligible = health.is_eligible();
        health.admin = state;
        if state == AdminState::Ready {
            health.failed_back = true;
        }
        health.generation += 1;
        (was_eligible, health.is_eligible())
    }

    /// A pending `failback = after` timer (which compares generations)
    /// will find this server changed and do nothing.
    pub fn void_failback_timer(&self) {
        self.health().generation += 1;
    }

    /// Opens the failback gate.
    pub fn open_failback(&self) {
        self.health().failed_back = true;
    }

    /// Opens the failback gate if the server is still UP and unchanged
    /// since `generation` (a `failback = after` timer ran out); true when
    /// it did.
    pub fn open_failback_since(&self, generation: u64) -> bool {
        let mut health = self.health();
        let unchanged = health.generation == generation && health.up;
        if unchanged {
            health.failed_back = true;
        }
        unchanged
    }

    /// Records a transition and returns what it implies, for the backend
    /// to perform in order ([`crate::transition`]).  `by_active_check` is
    /// false for an error observed on traffic.  Also returns the
    /// generation the transition made, for a failback timer.
    pub fn apply(
        &self,
        transition: Transition,
        policy: &Policy,
        by_active_check: bool,
    ) -> (Vec<Action>, u64) {
        let now = Instant::now();
        let up = transition.to == Status::Up;
        let mut health = self.health();
        let decision = transition::decide(
            transition::Change {
                transition,
                role: self.role(),
                failed_back: health.failed_back,
                by_active_check,
                now,
            },
            policy,
        );
        health.up = up;
        health.failed_back = decision.failed_back;
        health.generation += 1;
        health.last_change = now;
        let generation = health.generation;
        drop(health);
        if up {
            self.counters.ups.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.downs.fetch_add(1, Ordering::Relaxed);
        }
        (decision.actions, generation)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Failback;

    fn primary(failback: &str) -> (ServerState, Policy) {
        // One primary, checked, with the failback policy under test.
        let config = crate::config::parse(&format!(
            r#"
frontend = [{{ name = "amqp", bind = "127.0.0.1:0", backend = "rabbitmq" }}]
[[backend]]
name = "rabbitmq"
failback = "{failback}"
check = {{ type = "tcp" }}
server = [{{ name = "rabbit1", address = "127.0.0.1:5672" }}]
"#
        ))
        .expect("a valid config");
        let backend = &config.backends[0];
        let server = ServerState::new(&backend.name, backend.servers[0].clone(), &backend.check);
        (server, Policy::of(backend))
    }

    fn transition(from: Status, to: Status) -> Transition {
        Transition {
            from,
            to,
            cause: Cause::Check,
        }
    }

    #[test]
    fn eligibility_follows_every_change_of_health() {
        let (server, policy) = primary("manual");
        assert_eq!(policy.failback, Failback::Manual);
        assert!(server.is_eligible(), "starts UP and ready");
        server.apply(transition(Status::Up, Status::Down), &policy, true);
        assert!(!server.is_eligible() && !server.is_up());
        server.apply(transition(Status::Down, Status::Up), &policy, true);
        assert!(server.is_up() && server.awaiting_failback());
        assert!(!server.is_eligible(), "held by the manual failback");
        assert_eq!(server.set_admin(AdminState::Ready), (false, true));
        assert!(server.is_eligible());
        assert!(server.set_cut_off(Some("no majority".into())));
        assert!(!server.is_eligible());
        assert!(!server.set_cut_off(Some("still no majority".into())));
        assert_eq!(server.cut_off().as_deref(), Some("still no majority"));
        assert!(server.set_cut_off(None));
        assert!(server.is_eligible());
        assert_eq!(server.set_admin(AdminState::Drain), (true, false));
        assert_eq!(server.state_word(), "DRAIN");
    }

    #[test]
    fn a_failback_timer_opens_only_an_unchanged_server() {
        let (server, policy) = primary("after:30s");
        server.apply(transition(Status::Up, Status::Down), &policy, true);
        let (actions, generation) =
            server.apply(transition(Status::Down, Status::Up), &policy, true);
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::HoldFailback { .. })));
        server.void_failback_timer();
        assert!(!server.open_failback_since(generation), "changed since");
        assert!(!server.is_eligible());
        assert!(server.open_failback_since(server.generation()));
        assert!(server.is_eligible());
    }
}
