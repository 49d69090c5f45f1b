//! The pure (sans-IO) health-check state machine, with HAProxy semantics.
//!
//! Nothing here reads a clock or touches the network: check results and the
//! current time are passed in, the new status, an optional transition and the
//! time of the next check come out. The async shells (`warren-lb`,
//! `warren-vip`) run the probes and feed this machine.
//!
//! # How it matches HAProxy (and how we know)
//!
//! The behaviour follows HAProxy's `src/check.c` / `src/server.c` (read, not
//! copied; HAProxy is GPL) and `doc/configuration.txt`:
//!
//! * **Health counter.** `health` runs from `0` to `rise + fall - 1`. The
//!   values `0..rise` mean DOWN, `rise..=rise+fall-1` mean UP (HAProxy's
//!   `struct check` comment: "0 to rise-1 = bad; rise to rise+fall-1 = good").
//!   * A passed check while `health < rise + fall - 1` increments it; once it
//!     reaches `rise` it jumps to `rise + fall - 1` ("OK now"), so the server is
//!     UP *and* fully healthy at once.
//!   * A failed check while `health > 0` decrements it; if it drops below
//!     `rise` it is reset to `0` (so a DOWN server that was counting up starts
//!     over, and an UP server becomes DOWN, fully).
//!
//!   (`set_server_check_status()` in HAProxy's `src/check.c`.)
//!   Consequences: from fully UP, `fall` consecutive failures mark the server
//!   DOWN; from fully DOWN, `rise` consecutive passes mark it UP; a single
//!   failure while counting up from DOWN starts the count again.
//! * **Start-up state.** HAProxy starts every server UP with `health = rise`
//!   (`src/server.c`: `check.health = check.rise; /* up, but will fall down at
//!   first failure */`), so ONE failed check marks a freshly started server
//!   DOWN. HAProxy 3.1 made this configurable as `init-state`
//!   (`fully-up | up | down | fully-down`, default `up`); [`InitialState`]
//!   mirrors that: `fully-up` = `rise+fall-1`, `up` = `rise`, `down` =
//!   `rise-1` (one pass brings it UP), `fully-down` = `0`.
//! * **Intervals** (HAProxy's `srv_getinter()`): the next check is scheduled
//!   after the previous one *finished*:
//!   * `inter` when fully healthy (`health == rise + fall - 1`);
//!   * `downinter` when DOWN with `health == 0` (fully down);
//!   * `fastinter` otherwise (UP but not fully healthy — some failures seen —
//!     or DOWN but counting up). Note this includes HAProxy's start-up state
//!     `up` (health = `rise`) whenever `fall > 1`.
//!
//!   HAProxy falls back to `inter` when `fastinter` / `downinter` are unset;
//!   [`CheckParams`] always carries all three, so the config layer resolves
//!   "unset" to `inter` (see [`CheckParams::new`]).
//! * **Observed errors** (`observe layer4` + `on-error mark-down`): HAProxy sets
//!   `health = rise` then records a failed check, which drops it to `0`: the
//!   server is DOWN at once and fully down, whatever its previous health. We
//!   apply this on every observed error (HAProxy's `error-limit 1`). HAProxy
//!   then wakes the check task so that the pending check runs no later than
//!   `now + srv_getinter()` (i.e. `downinter`); [`CheckMachine::on_observed_error`]
//!   returns exactly that time.
//! * **First check.** HAProxy spreads the first checks of all servers over
//!   `inter` (`spread-checks`) to avoid a thundering herd. We keep it simple and
//!   deterministic: the first check runs immediately at start-up
//!   ([`CheckMachine::first_check_at`] returns `started`), so a dead server is
//!   found as soon as possible.

use std::fmt;
use std::time::{Duration, Instant};

/// Timing and thresholds of one server's check (HAProxy server keywords).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckParams {
    /// Interval between checks while fully healthy (HAProxy `inter`).
    pub inter: Duration,
    /// Interval while transitioning: UP with some failures, or DOWN counting
    /// up (HAProxy `fastinter`; unset in HAProxy means `inter`).
    pub fastinter: Duration,
    /// Interval while fully DOWN (HAProxy `downinter`; unset means `inter`).
    pub downinter: Duration,
    /// Consecutive passes needed to go from DOWN to UP (HAProxy `rise`, ≥ 1).
    pub rise: u32,
    /// Consecutive failures needed to go from fully UP to DOWN (HAProxy
    /// `fall`, ≥ 1).
    pub fall: u32,
}

impl CheckParams {
    /// HAProxy's default `inter` (2 s).
    pub const DEFAULT_INTER: Duration = Duration::from_secs(2);
    /// HAProxy's default `rise`.
    pub const DEFAULT_RISE: u32 = 2;
    /// HAProxy's default `fall`.
    pub const DEFAULT_FALL: u32 = 3;

    /// Build parameters the way HAProxy resolves them: an unset `fastinter`
    /// or `downinter` means `inter`.
    pub fn new(
        inter: Duration,
        fastinter: Option<Duration>,
        downinter: Option<Duration>,
        rise: u32,
        fall: u32,
    ) -> Self {
        CheckParams {
            inter,
            fastinter: fastinter.unwrap_or(inter),
            downinter: downinter.unwrap_or(inter),
            rise,
            fall,
        }
    }

    fn sanitized(mut self) -> Self {
        self.rise = self.rise.max(1);
        self.fall = self.fall.max(1);
        self
    }
}

impl Default for CheckParams {
    /// HAProxy defaults: `inter 2s`, `rise 2`, `fall 3`, and `fastinter` /
    /// `downinter` unset (= `inter`).
    fn default() -> Self {
        CheckParams::new(
            Self::DEFAULT_INTER,
            None,
            None,
            Self::DEFAULT_RISE,
            Self::DEFAULT_FALL,
        )
    }
}

/// Whether a server may receive traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Up,
    Down,
}

impl Status {
    /// HAProxy's word for the status: "UP" / "DOWN".
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state a server starts in (HAProxy 3.1 `init-state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum InitialState {
    /// UP with `health = rise`: one failed check marks it DOWN. HAProxy's
    /// default (and its only behaviour before 3.1).
    #[default]
    Up,
    /// DOWN with `health = rise - 1`: one passed check marks it UP.
    Down,
    /// UP with `health = rise + fall - 1`: `fall` failures mark it DOWN.
    FullyUp,
    /// DOWN with `health = 0`: `rise` passes mark it UP.
    FullyDown,
}

/// Result of one active check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    /// The check could not tell either way (no news): health stays as it
    /// is, and the next check is scheduled as usual.  warren-lb uses it
    /// when a RabbitMQ node's management API times out while its AMQP
    /// port still answers (see `lb/src/no_news.rs`).
    Inconclusive,
}

/// What caused a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An active health check.
    Check,
    /// A failure observed on real traffic (`observe layer4`,
    /// `on-error mark-down`).
    ObservedError,
}

/// A change of [`Status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub cause: Cause,
}

/// What the caller must do after feeding an event to the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// `Some` when the status changed.
    pub transition: Option<Transition>,
    /// When to start the next check.
    pub next_check_at: Instant,
}

/// HAProxy-semantics check state machine for one server.
#[derive(Clone, Debug)]
pub struct CheckMachine {
    params: CheckParams,
    health: u32,
    next_check_at: Option<Instant>,
}

impl CheckMachine {
    /// A machine in the given start-up state. `rise` / `fall` of 0 are treated
    /// as 1 (config validation rejects them and zero durations, by one rule
    /// for both programs: `crate::config`'s `Validation::check_count` and
    /// `Validation::above_zero`).
    pub fn new(params: CheckParams, initial: InitialState) -> Self {
        let params = params.sanitized();
        let health = match initial {
            InitialState::Up => params.rise,
            InitialState::Down => params.rise - 1,
            InitialState::FullyUp => params.rise + params.fall - 1,
            InitialState::FullyDown => 0,
        };
        CheckMachine {
            params,
            health,
            next_check_at: None,
        }
    }

    /// The (sanitised) parameters.
    pub fn params(&self) -> &CheckParams {
        &self.params
    }

    pub fn status(&self) -> Status {
        if self.health >= self.params.rise {
            Status::Up
        } else {
            Status::Down
        }
    }

    pub fn is_up(&self) -> bool {
        self.status() == Status::Up
    }

    /// HAProxy's health counter, `0..=rise+fall-1`.
    pub fn health(&self) -> u32 {
        self.health
    }

    fn max_health(&self) -> u32 {
        self.params.rise + self.params.fall - 1
    }

    /// HAProxy's "x/y" progress shown in check logs: while UP, the remaining
    /// failures before DOWN out of `fall` (`health - rise + 1` / `fall`); while
    /// DOWN, the passes so far out of `rise` (`health` / `rise`).
    pub fn progress(&self) -> (u32, u32) {
        if self.is_up() {
            (self.health - self.params.rise + 1, self.params.fall)
        } else {
            (self.health, self.params.rise)
        }
    }

    /// The interval that applies in the current state (HAProxy
    /// `srv_getinter()`): `inter` when fully healthy, `downinter` when fully
    /// down, `fastinter` in between.
    pub fn interval(&self) -> Duration {
        if self.health == self.max_health() {
            self.params.inter
        } else if self.health == 0 {
            self.params.downinter
        } else {
            self.params.fastinter
        }
    }

    /// When the first check runs: immediately (`started`). HAProxy spreads
    /// first checks over `inter`; we prefer a deterministic, immediate first
    /// check (a dead server is found at once).
    pub fn first_check_at(&self, started: Instant) -> Instant {
        started
    }

    /// The next check time last returned by this machine, if any.
    pub fn next_check_at(&self) -> Option<Instant> {
        self.next_check_at
    }

    /// Feed the result of an active check that finished at `finished_at`.
    /// The next check is `finished_at + interval()` in the new state.
    pub fn on_check(&mut self, outcome: Outcome, finished_at: Instant) -> Step {
        let from = self.status();
        match outcome {
            Outcome::Passed => {
                if self.health < self.max_health() {
                    self.health += 1;
                    if self.health >= self.params.rise {
                        self.health = self.max_health();
                    }
                }
            }
            Outcome::Failed => {
                if self.health > 0 {
                    self.health -= 1;
                    if self.health < self.params.rise {
                        self.health = 0;
                    }
                }
            }
            Outcome::Inconclusive => {}
        }
        let next = finished_at + self.interval();
        self.next_check_at = Some(next);
        Step {
            transition: self.transition_from(from, Cause::Check),
            next_check_at: next,
        }
    }

    /// A failure observed on real traffic with `on-error mark-down`: DOWN at
    /// once, health to 0. The returned `next_check_at` is the earlier of the
    /// check already scheduled by this machine and `now + downinter` (HAProxy
    /// wakes the check task and only ever brings the timer forward), never
    /// before `now`. If a check is in flight, the caller may ignore it: that
    /// check's [`on_check`](Self::on_check) schedules the next one.
    pub fn on_observed_error(&mut self, now: Instant) -> Step {
        let from = self.status();
        self.health = 0;
        let mut next = now + self.interval();
        if let Some(scheduled) = self.next_check_at {
            next = next.min(scheduled.max(now));
        }
        self.next_check_at = Some(next);
        Step {
            transition: self.transition_from(from, Cause::ObservedError),
            next_check_at: next,
        }
    }

    fn transition_from(&self, from: Status, cause: Cause) -> Option<Transition> {
        let to = self.status();
        (to != from).then_some(Transition { from, to, cause })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn params(rise: u32, fall: u32) -> CheckParams {
        CheckParams {
            inter: 1000 * MS,
            fastinter: 200 * MS,
            downinter: 3000 * MS,
            rise,
            fall,
        }
    }

    fn machine_with_health(p: CheckParams, health: u32) -> CheckMachine {
        let mut m = CheckMachine::new(p, InitialState::FullyDown);
        m.health = health;
        m
    }

    #[test]
    fn an_inconclusive_check_changes_no_health_and_keeps_the_schedule() {
        let t0 = Instant::now();
        for health in 0..=3 {
            let mut m = machine_with_health(params(2, 2), health);
            let before = m.status();
            let step = m.on_check(Outcome::Inconclusive, t0);
            assert_eq!(m.health, health);
            assert_eq!(m.status(), before);
            assert_eq!(step.transition, None);
            assert_eq!(step.next_check_at, t0 + m.interval());
        }
        // Between failures it neither helps nor hurts: a server one failure
        // from DOWN is still one failure from DOWN.
        let mut m = machine_with_health(params(2, 2), 3);
        assert!(m.on_check(Outcome::Failed, t0).transition.is_none());
        m.on_check(Outcome::Inconclusive, t0);
        m.on_check(Outcome::Inconclusive, t0);
        assert!(m.is_up());
        assert!(m.on_check(Outcome::Failed, t0).transition.is_some());
        assert!(!m.is_up());
    }

    #[test]
    fn defaults_are_haproxy_defaults() {
        let p = CheckParams::default();
        assert_eq!(p.inter, Duration::from_secs(2));
        assert_eq!(p.fastinter, Duration::from_secs(2));
        assert_eq!(p.downinter, Duration::from_secs(2));
        assert_eq!((p.rise, p.fall), (2, 3));
        assert_eq!(InitialState::default(), InitialState::Up);
    }

    #[test]
    fn new_resolves_unset_intervals_to_inter() {
        let p = CheckParams::new(500 * MS, None, Some(7 * MS), 1, 1);
        assert_eq!(p.fastinter, 500 * MS);
        assert_eq!(p.downinter, 7 * MS);
    }

    #[test]
    fn zero_rise_and_fall_never_underflow() {
        // Config validation refuses them; the machine itself still copes.
        let m = CheckMachine::new(params(0, 0), InitialState::Down);
        assert_eq!(m.health(), 0);
        assert!(!m.is_up());
    }

    #[test]
    fn initial_states() {
        let p = params(2, 3);
        let cases = [
            (InitialState::Up, 2, Status::Up),
            (InitialState::Down, 1, Status::Down),
            (InitialState::FullyUp, 4, Status::Up),
            (InitialState::FullyDown, 0, Status::Down),
        ];
        for (init, health, status) in cases {
            let m = CheckMachine::new(p, init);
            assert_eq!(m.health(), health, "{init:?}");
            assert_eq!(m.status(), status, "{init:?}");
        }
    }

    #[test]
    fn default_start_one_failure_marks_down() {
        // HAProxy: "up, but will fall down at first failure".
        let t0 = Instant::now();
        let mut m = CheckMachine::new(CheckParams::default(), InitialState::default());
        assert!(m.is_up());
        assert_eq!(m.first_check_at(t0), t0);
        let s = m.on_check(Outcome::Failed, t0);
        assert_eq!(
            s.transition,
            Some(Transition {
                from: Status::Up,
                to: Status::Down,
                cause: Cause::Check
            })
        );
        assert_eq!(m.health(), 0);
    }

    #[test]
    fn default_start_one_pass_makes_fully_up() {
        let t0 = Instant::now();
        let p = params(2, 3);
        let mut m = CheckMachine::new(p, InitialState::Up);
        // Start-up state is UP but not fully healthy: fastinter.
        assert_eq!(m.interval(), p.fastinter);
        let s = m.on_check(Outcome::Passed, t0);
        assert_eq!(s.transition, None);
        assert_eq!(m.health(), 4);
        assert_eq!(s.next_check_at, t0 + p.inter);
    }

    #[test]
    fn down_state_one_pass_marks_up() {
        let t0 = Instant::now();
        let mut m = CheckMachine::new(params(3, 2), InitialState::Down);
        let s = m.on_check(Outcome::Passed, t0);
        assert_eq!(s.transition.map(|t| t.to), Some(Status::Up));
        assert_eq!(m.health(), 4);
    }

    /// Every (health, outcome) pair for a few (rise, fall) shapes, against the
    /// expected (health, status, interval) written out by hand.
    #[test]
    fn table_every_state_and_outcome() {
        use Outcome::*;
        use Status::*;
        // rise 2, fall 3: health 0..=4; 0,1 DOWN; 2,3,4 UP.
        let p = params(2, 3);
        #[rustfmt::skip]
        let table: &[(u32, Outcome, u32, Status, Duration)] = &[
            // from health, outcome, to health, to status, next interval
            (0, Passed, 1, Down, p.fastinter), // DOWN, counting up
            (0, Failed, 0, Down, p.downinter), // fully down stays
            (1, Passed, 4, Up,   p.inter),     // reaches rise -> jumps to full
            (1, Failed, 0, Down, p.downinter), // counting up starts over
            (2, Passed, 4, Up,   p.inter),     // start-up state -> full
            (2, Failed, 0, Down, p.downinter), // start-up state: one failure
            (3, Passed, 4, Up,   p.inter),     // recovering -> full
            (3, Failed, 2, Up,   p.fastinter), // second failure: still UP
            (4, Passed, 4, Up,   p.inter),     // full stays full
            (4, Failed, 3, Up,   p.fastinter), // first failure: still UP, fast
        ];
        check_table(p, table);

        // rise 1, fall 1: health 0..=1.
        let p = params(1, 1);
        #[rustfmt::skip]
        let table: &[(u32, Outcome, u32, Status, Duration)] = &[
            (0, Passed, 1, Up,   p.inter),
            (0, Failed, 0, Down, p.downinter),
            (1, Passed, 1, Up,   p.inter),
            (1, Failed, 0, Down, p.downinter),
        ];
        check_table(p, table);

        // rise 3, fall 2: health 0..=4; 0,1,2 DOWN; 3,4 UP.
        let p = params(3, 2);
        #[rustfmt::skip]
        let table: &[(u32, Outcome, u32, Status, Duration)] = &[
            (0, Passed, 1, Down, p.fastinter),
            (0, Failed, 0, Down, p.downinter),
            (1, Passed, 2, Down, p.fastinter),
            (1, Failed, 0, Down, p.downinter),
            (2, Passed, 4, Up,   p.inter),
            (2, Failed, 0, Down, p.downinter),
            (3, Passed, 4, Up,   p.inter),
            (3, Failed, 0, Down, p.downinter),
            (4, Passed, 4, Up,   p.inter),
            (4, Failed, 3, Up,   p.fastinter),
        ];
        check_table(p, table);
    }

    fn check_table(p: CheckParams, table: &[(u32, Outcome, u32, Status, Duration)]) {
        let t0 = Instant::now();
        // Every reachable health value appears for both outcomes.
        for h in 0..p.rise + p.fall {
            for o in [Outcome::Passed, Outcome::Failed] {
                assert!(
                    table.iter().any(|r| r.0 == h && r.1 == o),
                    "table misses ({h}, {o:?}) for {p:?}"
                );
            }
        }
        for &(h, o, h2, st, iv) in table {
            let mut m = machine_with_health(p, h);
            let from = m.status();
            let step = m.on_check(o, t0);
            let ctx = format!("{p:?}: health {h} + {o:?}");
            assert_eq!(m.health(), h2, "{ctx}");
            assert_eq!(m.status(), st, "{ctx}");
            assert_eq!(step.next_check_at, t0 + iv, "{ctx}");
            assert_eq!(m.next_check_at(), Some(t0 + iv), "{ctx}");
            let expected = (from != st).then_some(Transition {
                from,
                to: st,
                cause: Cause::Check,
            });
            assert_eq!(step.transition, expected, "{ctx}");
        }
    }

    #[test]
    fn table_observed_error_from_every_state() {
        let t0 = Instant::now();
        let p = params(2, 3);
        for h in 0..p.rise + p.fall {
            let mut m = machine_with_health(p, h);
            let from = m.status();
            let step = m.on_observed_error(t0);
            assert_eq!(m.health(), 0);
            assert_eq!(m.status(), Status::Down);
            // Nothing scheduled before: now + downinter.
            assert_eq!(step.next_check_at, t0 + p.downinter);
            let expected = (from == Status::Up).then_some(Transition {
                from: Status::Up,
                to: Status::Down,
                cause: Cause::ObservedError,
            });
            assert_eq!(step.transition, expected, "health {h}");
        }
    }

    #[test]
    fn observed_error_only_brings_the_next_check_forward() {
        let t0 = Instant::now();
        let p = params(2, 3);
        // Scheduled check sooner than now + downinter: keep it.
        let mut m = CheckMachine::new(p, InitialState::FullyUp);
        let s = m.on_check(Outcome::Passed, t0); // next at t0 + inter (1s)
        assert_eq!(s.next_check_at, t0 + p.inter);
        let s = m.on_observed_error(t0 + 100 * MS);
        assert_eq!(s.next_check_at, t0 + p.inter);
        // Scheduled check later than now + downinter: bring it forward.
        let mut p2 = p;
        p2.inter = 10_000 * MS;
        let mut m = CheckMachine::new(p2, InitialState::FullyUp);
        m.on_check(Outcome::Passed, t0);
        let s = m.on_observed_error(t0 + 100 * MS);
        assert_eq!(s.next_check_at, t0 + 100 * MS + p2.downinter);
        // A scheduled time already in the past (check in flight): never before now.
        let mut m = CheckMachine::new(p, InitialState::FullyUp);
        m.on_check(Outcome::Passed, t0);
        let now = t0 + 5000 * MS;
        assert_eq!(m.on_observed_error(now).next_check_at, now);
    }

    #[test]
    fn observed_error_then_recovery_needs_rise_passes() {
        let t0 = Instant::now();
        let p = params(2, 2);
        let mut m = CheckMachine::new(p, InitialState::FullyUp);
        m.on_observed_error(t0);
        assert!(!m.is_up());
        assert_eq!(m.on_check(Outcome::Passed, t0).transition, None);
        let s = m.on_check(Outcome::Passed, t0);
        assert_eq!(
            s.transition,
            Some(Transition {
                from: Status::Down,
                to: Status::Up,
                cause: Cause::Check
            })
        );
    }

    #[test]
    fn progress_matches_haproxy_log_figures() {
        let p = params(2, 3);
        assert_eq!(machine_with_health(p, 4).progress(), (3, 3));
        assert_eq!(machine_with_health(p, 3).progress(), (2, 3));
        assert_eq!(machine_with_health(p, 2).progress(), (1, 3));
        assert_eq!(machine_with_health(p, 1).progress(), (1, 2));
        assert_eq!(machine_with_health(p, 0).progress(), (0, 2));
    }

    #[test]
    fn status_words() {
        assert_eq!(Status::Up.to_string(), "UP");
        assert_eq!(Status::Down.to_string(), "DOWN");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Independent oracle: HAProxy behaviour described as "UP until `fall`
        /// consecutive failures since the last time it was fully healthy; DOWN
        /// until `rise` consecutive passes", plus the start-up states and
        /// observed errors. It tracks streaks, not the health counter.
        #[derive(Debug)]
        struct Oracle {
            up: bool,
            fails_since_full: u32, // while UP
            passes: u32,           // while DOWN
            rise: u32,
            fall: u32,
        }

        impl Oracle {
            fn new(rise: u32, fall: u32, init: InitialState) -> Self {
                let (up, fails_since_full, passes) = match init {
                    // health = rise: fall - 1 failures already "used".
                    InitialState::Up => (true, fall - 1, 0),
                    InitialState::FullyUp => (true, 0, 0),
                    InitialState::Down => (false, 0, rise - 1),
                    InitialState::FullyDown => (false, 0, 0),
                };
                Oracle {
                    up,
                    fails_since_full,
                    passes,
                    rise,
                    fall,
                }
            }
            fn event(&mut self, e: Event) {
                match (self.up, e) {
                    (true, Event::Check(Outcome::Passed)) => self.fails_since_full = 0,
                    (true, Event::Check(Outcome::Failed)) => {
                        self.fails_since_full += 1;
                        if self.fails_since_full >= self.fall {
                            self.up = false;
                            self.passes = 0;
                        }
                    }
                    (false, Event::Check(Outcome::Passed)) => {
                        self.passes += 1;
                        if self.passes >= self.rise {
                            self.up = true;
                            self.fails_since_full = 0;
                        }
                    }
                    (false, Event::Check(Outcome::Failed)) => self.passes = 0,
                    (_, Event::Check(Outcome::Inconclusive)) => {}
                    (_, Event::Observed) => {
                        self.up = false;
                        self.passes = 0;
                    }
                }
            }
            /// Which interval applies: fully healthy → inter, fully down →
            /// downinter, otherwise fastinter.
            fn interval(&self, p: &CheckParams) -> Duration {
                if self.up && self.fails_since_full == 0 {
                    p.inter
                } else if !self.up && self.passes == 0 {
                    p.downinter
                } else {
                    p.fastinter
                }
            }
        }

        #[derive(Clone, Copy, Debug)]
        enum Event {
            Check(Outcome),
            Observed,
        }

        fn event() -> impl Strategy<Value = Event> {
            prop_oneof![
                4 => Just(Event::Check(Outcome::Passed)),
                4 => Just(Event::Check(Outcome::Failed)),
                2 => Just(Event::Check(Outcome::Inconclusive)),
                1 => Just(Event::Observed),
            ]
        }

        fn init() -> impl Strategy<Value = InitialState> {
            prop_oneof![
                Just(InitialState::Up),
                Just(InitialState::Down),
                Just(InitialState::FullyUp),
                Just(InitialState::FullyDown),
            ]
        }

        fn distinct_params(rise: u32, fall: u32) -> CheckParams {
            // Distinct intervals so the interval identifies the state.
            CheckParams {
                inter: 1000 * MS,
                fastinter: 100 * MS,
                downinter: 5000 * MS,
                rise,
                fall,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn machine_agrees_with_oracle(
                rise in 1u32..6,
                fall in 1u32..6,
                init in init(),
                events in proptest::collection::vec(event(), 0..80),
            ) {
                let p = distinct_params(rise, fall);
                let mut m = CheckMachine::new(p, init);
                let mut o = Oracle::new(rise, fall, init);
                prop_assert_eq!(m.is_up(), o.up);
                let mut now = Instant::now();
                for e in events {
                    now += 10 * MS;
                    let before = m.status();
                    let step = match e {
                        Event::Check(out) => m.on_check(out, now),
                        Event::Observed => m.on_observed_error(now),
                    };
                    o.event(e);
                    prop_assert_eq!(m.is_up(), o.up, "after {:?}: {:?} vs {:?}", e, m, o);
                    prop_assert!(m.health() < rise + fall);
                    prop_assert_eq!(m.is_up(), m.health() >= rise);
                    // Transition reported exactly when the status changed.
                    match step.transition {
                        Some(t) => {
                            prop_assert_ne!(before, m.status());
                            prop_assert_eq!(t.from, before);
                            prop_assert_eq!(t.to, m.status());
                            let cause = match e {
                                Event::Check(_) => Cause::Check,
                                Event::Observed => Cause::ObservedError,
                            };
                            prop_assert_eq!(t.cause, cause);
                        }
                        None => prop_assert_eq!(before, m.status()),
                    }
                    // Interval chosen by state.
                    if let Event::Check(_) = e {
                        prop_assert_eq!(step.next_check_at, now + o.interval(&p));
                    } else {
                        prop_assert!(step.next_check_at >= now);
                        prop_assert!(step.next_check_at <= now + p.downinter);
                    }
                    prop_assert!([p.inter, p.fastinter, p.downinter].contains(&m.interval()));
                }
            }

            #[test]
            fn fall_failures_from_fully_up_mark_down(
                rise in 1u32..8,
                fall in 1u32..8,
                prefix in proptest::collection::vec(event(), 0..40),
            ) {
                let p = distinct_params(rise, fall);
                let mut m = CheckMachine::new(p, InitialState::FullyDown);
                let now = Instant::now();
                for e in prefix {
                    match e {
                        Event::Check(out) => m.on_check(out, now),
                        Event::Observed => m.on_observed_error(now),
                    };
                }
                // Bring to fully up.
                for _ in 0..rise {
                    m.on_check(Outcome::Passed, now);
                }
                prop_assert!(m.is_up());
                prop_assert_eq!(m.health(), rise + fall - 1);
                for i in 0..fall {
                    prop_assert!(m.is_up());
                    let s = m.on_check(Outcome::Failed, now);
                    if i + 1 < fall {
                        prop_assert_eq!(s.transition, None);
                        prop_assert_eq!(s.next_check_at, now + p.fastinter);
                    } else {
                        prop_assert_eq!(s.transition.map(|t| t.to), Some(Status::Down));
                        prop_assert_eq!(s.next_check_at, now + p.downinter);
                    }
                }
                prop_assert!(!m.is_up());
            }

            #[test]
            fn rise_passes_from_down_mark_up(
                rise in 1u32..8,
                fall in 1u32..8,
                init in init(),
                prefix in proptest::collection::vec(event(), 0..40),
            ) {
                let p = distinct_params(rise, fall);
                let mut m = CheckMachine::new(p, init);
                let now = Instant::now();
                for e in prefix {
                    match e {
                        Event::Check(out) => m.on_check(out, now),
                        Event::Observed => m.on_observed_error(now),
                    };
                }
                if m.is_up() {
                    m.on_observed_error(now);
                }
                prop_assert!(!m.is_up());
                for _ in 0..rise {
                    m.on_check(Outcome::Passed, now);
                }
                prop_assert!(m.is_up());
                prop_assert_eq!(m.health(), rise + fall - 1);
            }
        }
    }
}
