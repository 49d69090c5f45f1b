//! The VRRP state machine of RFC 5798 §6.4 (with the RFC 3768 v2 timer rules), sans IO.
//!
//! Each branch cites the RFC 5798 rule it implements (`// RFC 5798 §6.4.2:` ...);
//! RFC 3768 numbers the same rules the same way for v2. Where warren follows keepalived
//! instead of the RFC (the Fault state, immediate preemption, split-brain re-announce)
//! the comment says so.
//!
//! [`Machine::step`] takes an [`Event`] and the current time (a monotonic [`Duration`]
//! since any fixed origin) and returns the [`Action`]s the IO shell must perform. The
//! machine owns exactly one timer: the Adver_Timer while Master, the Master_Down_Timer
//! while Backup. Each step that (re)arms it returns [`Action::SetTimer`] with an absolute
//! deadline; the shell delivers [`Event::Timer`] at or after that deadline (stale
//! deliveries before the deadline are ignored, so a shell may over-deliver).

use std::net::Ipv4Addr;
use std::time::Duration;

use super::packet::Version;

/// Protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl State {
    /// keepalived's words, used in logs, notify hooks and the state file.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }

    /// Numeric value for metrics (keepalived SNMP-ish: 0 init, 1 backup, 2 master, 3 fault).
    pub fn code(self) -> u8 {
        match self {
            State::Initialize => 0,
            State::Backup => 1,
            State::Master => 2,
            State::Fault => 3,
        }
    }
}

/// Static parameters of one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub version: Version,
    /// Configured priority (1..=255; 255 = address owner).
    pub priority: u8,
    /// Advertisement_Interval. v2 uses whole seconds (rounded up, at least 1 s).
    pub advert_interval: Duration,
    pub preempt: bool,
    /// After entering Backup (startup or leaving Fault), do not preempt a lower-priority
    /// master for this long (keepalived `preempt_delay`).
    pub preempt_delay: Duration,
    /// Our primary IPv4 address on the interface (tie-break on equal priority).
    pub primary_addr: Ipv4Addr,
}

/// Inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The instance starts (RFC "Startup"). Also used by the shell at program start.
    Startup,
    /// A validated advertisement for our VRID (see `packet::validate_for_instance`).
    Advert {
        src: Ipv4Addr,
        priority: u8,
        /// Max advertisement interval carried in the packet (centiseconds; v2 already
        /// converted from seconds).
        adver_int_cs: u16,
    },
    /// The machine's timer deadline passed.
    Timer,
    /// Trackers changed: new effective priority (1..=254 unless owner) and whether a
    /// weight-0 tracker is failing (→ Fault).
    Track {
        priority: u8,
        fault: bool,
    },
    InterfaceUp,
    InterfaceDown,
    /// Clean shutdown (SIGTERM/SIGINT).
    Shutdown,
}

/// Outputs, to be performed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one advertisement with this priority.
    SendAdvert { priority: u8 },
    /// Add the virtual addresses to the interface.
    AddVips,
    /// Remove the virtual addresses from the interface.
    RemoveVips,
    /// Send a gratuitous-ARP burst for the virtual addresses.
    SendGarp,
    /// State changed: run notify hook, write the state file, log.
    Transition { from: State, to: State },
    /// (Re)arm the single timer at this absolute time.
    SetTimer(Duration),
    /// Disarm the timer.
    CancelTimer,
}

/// The machine.
#[derive(Debug, Clone)]
pub struct Machine {
    params: Params,
    state: State,
    /// Current effective priority (configured ± tracker weights).
    priority: u8,
    /// Interval learned from the current master (v3); = advert_interval for v2.
    master_adver_interval: Duration,
    timer: Option<Duration>,
    iface_up: bool,
    track_fault: bool,
    started: bool,
    preempt_after: Duration,
    last_reannounce: Option<Duration>,
    transitions: u64,
}

/// Minimum gap between split-brain re-announcements (advert + GARP burst).
pub const REANNOUNCE_GAP: Duration = Duration::from_secs(1);

impl Machine {
    pub fn new(mut params: Params) -> Self {
        if params.version == Version::V2 {
            params.advert_interval = v2_interval(params.advert_interval);
        }
        let adv = params.advert_interval;
        let prio = params.priority;
        Machine {
            params,
            state: State::Initialize,
            priority: prio,
            master_adver_interval: adv,
            timer: None,
            iface_up: true,
            track_fault: false,
            started: false,
            preempt_after: Duration::ZERO,
            last_reannounce: None,
            transitions: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn priority(&self) -> u8 {
        self.priority
    }
    pub fn params(&self) -> &Params {
        &self.params
    }
    pub fn timer(&self) -> Option<Duration> {
        self.timer
    }
    pub fn transitions(&self) -> u64 {
        self.transitions
    }
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }
    /// Update the primary address (tie-break) when the interface's address changes.
    pub fn set_primary_addr(&mut self, a: Ipv4Addr) {
        self.params.primary_addr = a;
    }
    fn owner(&self) -> bool {
        self.params.priority == 255
    }

    /// Skew_Time for our current priority and the current Master_Adver_Interval
    /// (RFC 5798 §6.1).
    pub fn skew_time(&self) -> Duration {
        skew_time(
            self.params.version,
            self.priority,
            self.master_adver_interval,
        )
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time (RFC 5798 §6.1).
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_interval * 3 + self.skew_time()
    }

    /// Advance the machine.
    pub fn step(&mut self, ev: Event, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            // RFC 5798 §6.4.1: "If a Startup event is received".
            Event::Startup => {
                if !self.started {
                    self.started = true;
                    self.leave_init(now, &mut out);
                }
            }
            Event::Shutdown => self.shutdown(&mut out),
            // keepalived, not RFC 5798: an interface that is down (or a failing
            // weight-0 tracker) is the Fault state.
            Event::InterfaceDown => {
                self.iface_up = false;
                self.maybe_fault(now, &mut out);
            }
            Event::InterfaceUp => {
                self.iface_up = true;
                self.maybe_recover(now, &mut out);
            }
            Event::Track { priority, fault } => {
                let p = if self.owner() {
                    255
                } else {
                    priority.clamp(1, 254)
                };
                let changed = p != self.priority;
                self.priority = p;
                self.track_fault = fault;
                if self.faulty() {
                    self.maybe_fault(now, &mut out);
                } else if self.state == State::Fault {
                    self.maybe_recover(now, &mut out);
                } else if changed && self.state == State::Master {
                    // Not an RFC 5798 event (keepalived's tracker weights): a master whose
                    // priority changed tells backups at once, so a higher-priority backup
                    // can preempt now (§6.4.2) instead of at the next Adver_Timer.
                    out.push(Action::SendAdvert { priority: p });
                    self.arm(now + self.params.advert_interval, &mut out);
                }
            }
            // RFC 5798 §6.2: the one timer running is the Master_Down_Timer (Backup)
            // or the Adver_Timer (Master).
            Event::Timer => {
                if let Some(t) = self.timer {
                    if now >= t {
                        self.timer = None;
                        self.on_timer(now, &mut out);
                    }
                }
            }
            Event::Advert {
                src,
                priority,
                adver_int_cs,
            } => self.on_advert(src, priority, adver_int_cs, now, &mut out),
        }
        out
    }

    fn faulty(&self) -> bool {
        !self.iface_up || self.track_fault
    }

    fn arm(&mut self, at: Duration, out: &mut Vec<Action>) {
        self.timer = Some(at);
        out.push(Action::SetTimer(at));
    }

    fn cancel(&mut self, out: &mut Vec<Action>) {
        if self.timer.take().is_some() {
            out.push(Action::CancelTimer);
        }
    }

    fn go(&mut self, to: State, out: &mut Vec<Action>) {
        let from = self.state;
        if from != to {
            self.state = to;
            self.transitions += 1;
            out.push(Action::Transition { from, to });
        }
    }

    /// Initialize → Master (owner) / Backup, or Fault if a fault is pending.
    fn leave_init(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.faulty() {
            // keepalived: a router that starts with a fault waits in Fault.
            self.go(State::Fault, out);
            return;
        }
        self.start_up(now, out);
    }

    /// The start-up branch of RFC 5798 §6.4.1, taken on leaving Initialize
    /// and (keepalived) on leaving Fault.
    fn start_up(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.owner() {
            // RFC 5798 §6.4.1: "If the Priority = 255" (the address owner): advertise,
            // gratuitous ARP, set the Adver_Timer, transition to {Master}.
            self.become_master(now, out);
        } else {
            // RFC 5798 §6.4.1: else Master_Adver_Interval = Advertisement_Interval, set
            // the Master_Down_Timer to Master_Down_Interval, transition to {Backup}.
            self.become_backup(now, self.params.advert_interval, out);
            self.preempt_after = now + self.params.preempt_delay;
        }
    }

    /// RFC 5798 §6.4.1 and §6.4.2: send an ADVERTISEMENT, broadcast a gratuitous ARP
    /// for each address, set the Adver_Timer to Advertisement_Interval, go {Master}.
    fn become_master(&mut self, now: Duration, out: &mut Vec<Action>) {
        out.push(Action::AddVips);
        out.push(Action::SendAdvert {
            priority: self.priority,
        });
        out.push(Action::SendGarp);
        self.go(State::Master, out);
        self.arm(now + self.params.advert_interval, out);
    }

    /// RFC 5798 §6.4.1 and §6.4.3: set Master_Adver_Interval, recompute
    /// Master_Down_Interval, set the Master_Down_Timer to it, go {Backup}.
    fn become_backup(&mut self, now: Duration, master_adv: Duration, out: &mut Vec<Action>) {
        if self.state == State::Master {
            out.push(Action::RemoveVips);
        }
        self.master_adver_interval = master_adv;
        self.go(State::Backup, out);
        self.arm(now + self.master_down_interval(), out);
    }

    /// A master steps down at once: the Adver_Timer cancelled, an
    /// ADVERTISEMENT with Priority = 0 (so a backup takes over after only
    /// Skew_Time, RFC 5798 §6.4.3 Shutdown) and the addresses released.
    fn resign(&mut self, out: &mut Vec<Action>) {
        self.cancel(out);
        out.push(Action::SendAdvert { priority: 0 });
        out.push(Action::RemoveVips);
    }

    fn shutdown(&mut self, out: &mut Vec<Action>) {
        match self.state {
            // RFC 5798 §6.4.3: "If a Shutdown event is received": cancel the Adver_Timer,
            // send an ADVERTISEMENT with Priority = 0, transition to {Initialize}.
            State::Master => self.resign(out),
            // RFC 5798 §6.4.2: "If a Shutdown event is received": cancel the
            // Master_Down_Timer, transition to {Initialize} (Fault: the same, keepalived).
            State::Backup | State::Fault => self.cancel(out),
            State::Initialize => {}
        }
        self.go(State::Initialize, out);
        self.started = false;
    }

    fn maybe_fault(&mut self, _now: Duration, out: &mut Vec<Action>) {
        match self.state {
            // keepalived: a master entering Fault resigns as on Shutdown (RFC 5798
            // §6.4.3): priority 0 lets a backup take over after only Skew_Time.
            State::Master => {
                self.resign(out);
                self.go(State::Fault, out);
            }
            State::Backup => {
                self.cancel(out);
                self.go(State::Fault, out);
            }
            State::Fault | State::Initialize => {}
        }
    }

    fn maybe_recover(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.state == State::Fault && !self.faulty() {
            // keepalived: leaving Fault is a fresh start-up, as RFC 5798 §6.4.1.
            self.master_adver_interval = self.params.advert_interval;
            self.start_up(now, out);
        }
    }

    fn on_timer(&mut self, now: Duration, out: &mut Vec<Action>) {
        match self.state {
            // RFC 5798 §6.4.2: "If the Master_Down_Timer fires".
            State::Backup => self.become_master(now, out),
            // RFC 5798 §6.4.3: "If the Adver_Timer fires": send an ADVERTISEMENT, reset
            // the Adver_Timer to Advertisement_Interval.
            State::Master => {
                out.push(Action::SendAdvert {
                    priority: self.priority,
                });
                self.arm(now + self.params.advert_interval, out);
            }
            State::Initialize | State::Fault => {}
        }
    }

    fn learned_interval(&self, adver_int_cs: u16) -> Duration {
        match self.params.version {
            // RFC 5798 §6.4.2: v3 sets Master_Adver_Interval to the advert's Max Adver
            // Int (RFC 3768 v2 has no such rule: the interval is configured alike).
            Version::V3 if adver_int_cs > 0 => Duration::from_millis(u64::from(adver_int_cs) * 10),
            _ => self.params.advert_interval,
        }
    }

    fn on_advert(
        &mut self,
        src: Ipv4Addr,
        prio: u8,
        adver_int_cs: u16,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        match self.state {
            State::Backup => {
                if prio == 0 {
                    // RFC 5798 §6.4.2: "If the Priority in the ADVERTISEMENT is zero": set
                    // the Master_Down_Timer to Skew_Time.
                    self.arm(now + self.skew_time(), out);
                } else if !self.params.preempt || prio >= self.priority || now < self.preempt_after
                {
                    // RFC 5798 §6.4.2: "If Preempt_Mode is False, or if the Priority in
                    // the ADVERTISEMENT is greater than or equal to the local Priority":
                    // learn Master_Adver_Interval, reset the Master_Down_Timer
                    // (keepalived's preempt_delay holds preemption off the same way).
                    self.master_adver_interval = self.learned_interval(adver_int_cs);
                    self.arm(now + self.master_down_interval(), out);
                } else {
                    // RFC 5798 §6.4.2 says discard, and the Master_Down_Timer then fires;
                    // like keepalived, preempt a lower-priority master now instead.
                    self.become_master(now, out);
                }
            }
            State::Master => {
                if prio == 0 {
                    // RFC 5798 §6.4.3: "If the Priority in the ADVERTISEMENT is zero": send
                    // an ADVERTISEMENT, reset the Adver_Timer.
                    out.push(Action::SendAdvert {
                        priority: self.priority,
                    });
                    self.arm(now + self.params.advert_interval, out);
                } else if prio > self.priority
                    || (prio == self.priority && src > self.params.primary_addr)
                {
                    // RFC 5798 §6.4.3: a higher Priority, or an equal one from a greater
                    // primary IPvX address: cancel the Adver_Timer, learn
                    // Master_Adver_Interval, set the Master_Down_Timer, go {Backup}.
                    let learned = self.learned_interval(adver_int_cs);
                    self.become_backup(now, learned, out);
                } else {
                    // RFC 5798 §6.4.3 says discard. A lower-priority master exists (split
                    // brain healing, or a peer that missed us): like keepalived, re-assert
                    // at once and refresh ARP caches, rate-limited.
                    let due = self
                        .last_reannounce
                        .is_none_or(|t| now >= t + REANNOUNCE_GAP);
                    if due {
                        self.last_reannounce = Some(now);
                        out.push(Action::SendAdvert {
                            priority: self.priority,
                        });
                        out.push(Action::SendGarp);
                        self.arm(now + self.params.advert_interval, out);
                    }
                }
            }
            // RFC 5798 §6.4.1: Initialize waits for Startup and ignores adverts; Fault
            // (keepalived) sends and hears nothing.
            State::Initialize | State::Fault => {}
        }
    }
}

/// v2 advertisement interval: whole seconds, at least 1 s, at most 255 s (RFC 3768 §5.3.7).
pub fn v2_interval(d: Duration) -> Duration {
    let ms = d.as_millis().max(1);
    Duration::from_secs(ms.div_ceil(1000).clamp(1, 255) as u64)
}

/// Skew_Time: v3 `((256 − priority) × Master_Adver_Interval) / 256` (RFC 5798 §6.1); v2
/// `(256 − priority) / 256` s (RFC 3768 §6.1).
pub fn skew_time(version: Version, priority: u8, master_adver_interval: Duration) -> Duration {
    let k = 256 - u128::from(priority);
    match version {
        Version::V3 => Duration::from_micros((k * master_adver_interval.as_micros() / 256) as u64),
        Version::V2 => Duration::from_micros((k * 1_000_000 / 256) as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(10, 220, 0, 11);
    const LOW: Ipv4Addr = Ipv4Addr::new(10, 220, 0, 5);
    const HIGH: Ipv4Addr = Ipv4Addr::new(10, 220, 0, 20);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn params(prio: u8) -> Params {
        Params {
            version: Version::V3,
            priority: prio,
            advert_interval: ms(1000),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_addr: ME,
        }
    }

    fn adv(src: Ipv4Addr, priority: u8) -> Event {
        Event::Advert {
            src,
            priority,
            adver_int_cs: 100,
        }
    }

    fn started(p: Params) -> Machine {
        let mut m = Machine::new(p);
        m.step(Event::Startup, Duration::ZERO);
        m
    }

    fn master(p: Params) -> Machine {
        let mut m = started(p);
        let t = m.timer().unwrap();
        m.step(Event::Timer, t);
        assert_eq!(m.state(), State::Master);
        m
    }

    #[test]
    fn rfc_timer_formulas() {
        // v3, 1 s, priority 100: skew = 156/256 s = 609.375 ms; MDI = 3.609375 s.
        assert_eq!(
            skew_time(Version::V3, 100, ms(1000)),
            Duration::from_micros(609_375)
        );
        // v3, 100 ms, priority 100: skew 60.9375 ms.
        assert_eq!(
            skew_time(Version::V3, 100, ms(100)),
            Duration::from_micros(60_937)
        );
        // v2: skew independent of interval.
        assert_eq!(
            skew_time(Version::V2, 100, ms(3000)),
            Duration::from_micros(609_375)
        );
        assert_eq!(
            skew_time(Version::V3, 255, ms(1000)),
            Duration::from_micros(3_906)
        );
        assert_eq!(
            skew_time(Version::V3, 1, ms(1000)),
            Duration::from_micros(996_093)
        );
        let m = Machine::new(params(100));
        assert_eq!(m.master_down_interval(), Duration::from_micros(3_609_375));
        assert_eq!(v2_interval(ms(100)), ms(1000));
        assert_eq!(v2_interval(ms(1500)), ms(2000));
        assert_eq!(v2_interval(ms(0)), ms(1000));
        assert_eq!(
            v2_interval(Duration::from_secs(1000)),
            Duration::from_secs(255)
        );
    }

    #[test]
    fn startup_to_backup_then_master_after_mdi() {
        let mut m = Machine::new(params(100));
        assert_eq!(m.state(), State::Initialize);
        let a = m.step(Event::Startup, ms(0));
        assert_eq!(
            a,
            vec![
                Action::Transition {
                    from: State::Initialize,
                    to: State::Backup
                },
                Action::SetTimer(Duration::from_micros(3_609_375))
            ]
        );
        // Early timer deliveries are ignored.
        assert!(m.step(Event::Timer, ms(3000)).is_empty());
        assert_eq!(m.state(), State::Backup);
        let a = m.step(Event::Timer, Duration::from_micros(3_609_375));
        assert_eq!(
            a,
            vec![
                Action::AddVips,
                Action::SendAdvert { priority: 100 },
                Action::SendGarp,
                Action::Transition {
                    from: State::Backup,
                    to: State::Master
                },
                Action::SetTimer(Duration::from_micros(4_609_375)),
            ]
        );
        // Second Startup is a no-op.
        assert!(m.step(Event::Startup, ms(5000)).is_empty());
    }

    #[test]
    fn owner_goes_master_immediately_and_ignores_tracker_priority() {
        let mut m = Machine::new(params(255));
        let a = m.step(Event::Startup, ms(0));
        assert_eq!(m.state(), State::Master);
        assert!(a.contains(&Action::SendAdvert { priority: 255 }));
        assert!(a.contains(&Action::AddVips));
        assert!(a.contains(&Action::SendGarp));
        m.step(
            Event::Track {
                priority: 10,
                fault: false,
            },
            ms(10),
        );
        assert_eq!(m.priority(), 255);
        // Owner still faults.
        m.step(
            Event::Track {
                priority: 10,
                fault: true,
            },
            ms(20),
        );
        assert_eq!(m.state(), State::Fault);
        m.step(
            Event::Track {
                priority: 10,
                fault: false,
            },
            ms(30),
        );
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn master_sends_periodic_adverts() {
        let mut m = master(params(100));
        let t = m.timer().unwrap();
        let a = m.step(Event::Timer, t);
        assert_eq!(
            a,
            vec![
                Action::SendAdvert { priority: 100 },
                Action::SetTimer(t + ms(1000))
            ]
        );
    }

    #[test]
    fn backup_resets_timer_on_advert_and_learns_v3_interval() {
        let mut m = started(params(100));
        let a = m.step(
            Event::Advert {
                src: HIGH,
                priority: 200,
                adver_int_cs: 10,
            },
            ms(500),
        );
        // Learned 100 ms: MDI = 300 ms + 60.9375 ms.
        assert_eq!(m.master_adver_interval(), ms(100));
        assert_eq!(
            a,
            vec![Action::SetTimer(ms(500) + Duration::from_micros(360_937))]
        );
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn v2_does_not_learn_interval() {
        let mut p = params(100);
        p.version = Version::V2;
        p.advert_interval = ms(300);
        let mut m = started(p);
        assert_eq!(m.params().advert_interval, ms(1000));
        m.step(
            Event::Advert {
                src: HIGH,
                priority: 200,
                adver_int_cs: 500,
            },
            ms(0),
        );
        assert_eq!(m.master_adver_interval(), ms(1000));
        assert_eq!(m.master_down_interval(), Duration::from_micros(3_609_375));
    }

    #[test]
    fn backup_priority_zero_means_skew_time() {
        let mut m = started(params(100));
        m.step(adv(HIGH, 200), ms(0));
        let a = m.step(adv(HIGH, 0), ms(100));
        assert_eq!(
            a,
            vec![Action::SetTimer(ms(100) + Duration::from_micros(609_375))]
        );
        let a = m.step(Event::Timer, ms(100) + Duration::from_micros(609_375));
        assert!(a.contains(&Action::AddVips));
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn backup_preempts_lower_priority_master() {
        let mut m = started(params(100));
        let a = m.step(adv(HIGH, 50), ms(10));
        assert_eq!(m.state(), State::Master);
        assert!(a.contains(&Action::SendAdvert { priority: 100 }));
    }

    #[test]
    fn nopreempt_keeps_lower_priority_master() {
        let mut p = params(100);
        p.preempt = false;
        let mut m = started(p);
        let a = m.step(adv(HIGH, 50), ms(10));
        assert_eq!(m.state(), State::Backup);
        assert_eq!(a, vec![Action::SetTimer(ms(10) + m.master_down_interval())]);
    }

    #[test]
    fn preempt_delay_holds_then_preempts() {
        let mut p = params(100);
        p.preempt_delay = ms(5000);
        let mut m = started(p);
        m.step(adv(HIGH, 50), ms(1000));
        assert_eq!(m.state(), State::Backup);
        m.step(adv(HIGH, 50), ms(4999));
        assert_eq!(m.state(), State::Backup);
        m.step(adv(HIGH, 50), ms(5000));
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn backup_accepts_equal_priority() {
        let mut m = started(params(100));
        m.step(adv(LOW, 100), ms(10));
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn master_yields_to_higher_priority() {
        let mut m = master(params(100));
        let a = m.step(adv(LOW, 101), ms(5000));
        assert_eq!(m.state(), State::Backup);
        assert!(a.contains(&Action::RemoveVips));
        assert!(a.contains(&Action::Transition {
            from: State::Master,
            to: State::Backup
        }));
        assert!(matches!(a.last(), Some(Action::SetTimer(_))));
    }

    #[test]
    fn master_tie_break_on_primary_address() {
        let mut m = master(params(100));
        m.step(adv(LOW, 100), ms(5000));
        assert_eq!(m.state(), State::Master, "lower address loses the tie");
        m.step(adv(HIGH, 100), ms(5100));
        assert_eq!(m.state(), State::Backup, "higher address wins the tie");
    }

    #[test]
    fn master_answers_priority_zero_with_advert() {
        let mut m = master(params(100));
        let a = m.step(adv(LOW, 0), ms(5000));
        assert_eq!(
            a,
            vec![
                Action::SendAdvert { priority: 100 },
                Action::SetTimer(ms(6000))
            ]
        );
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn master_reannounces_on_lower_priority_master_rate_limited() {
        let mut m = master(params(100));
        let a = m.step(adv(HIGH, 50), ms(5000));
        assert!(a.contains(&Action::SendGarp));
        assert!(a.contains(&Action::SendAdvert { priority: 100 }));
        assert!(m.step(adv(HIGH, 50), ms(5500)).is_empty());
        assert!(m.step(adv(HIGH, 50), ms(6000)).contains(&Action::SendGarp));
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn shutdown_from_master_sends_priority_zero_and_removes_vips() {
        let mut m = master(params(100));
        let a = m.step(Event::Shutdown, ms(5000));
        assert_eq!(
            a,
            vec![
                Action::CancelTimer,
                Action::SendAdvert { priority: 0 },
                Action::RemoveVips,
                Action::Transition {
                    from: State::Master,
                    to: State::Initialize
                }
            ]
        );
        assert_eq!(m.timer(), None);
        // Restart works.
        m.step(Event::Startup, ms(6000));
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn shutdown_from_backup_sends_nothing() {
        let mut m = started(params(100));
        let a = m.step(Event::Shutdown, ms(10));
        assert!(!a
            .iter()
            .any(|x| matches!(x, Action::SendAdvert { .. } | Action::RemoveVips)));
        assert_eq!(m.state(), State::Initialize);
    }

    #[test]
    fn fault_from_master_resigns_with_priority_zero() {
        let mut m = master(params(100));
        let a = m.step(
            Event::Track {
                priority: 100,
                fault: true,
            },
            ms(5000),
        );
        assert_eq!(
            a,
            vec![
                Action::CancelTimer,
                Action::SendAdvert { priority: 0 },
                Action::RemoveVips,
                Action::Transition {
                    from: State::Master,
                    to: State::Fault
                }
            ]
        );
        // Adverts and timers are ignored in Fault.
        assert!(m.step(adv(LOW, 50), ms(5100)).is_empty());
        assert!(m.step(Event::Timer, ms(99_000)).is_empty());
        let a = m.step(
            Event::Track {
                priority: 100,
                fault: false,
            },
            ms(6000),
        );
        assert_eq!(m.state(), State::Backup);
        assert!(matches!(a.last(), Some(Action::SetTimer(_))));
    }

    #[test]
    fn interface_down_and_up() {
        let mut m = started(params(100));
        m.step(Event::InterfaceDown, ms(10));
        assert_eq!(m.state(), State::Fault);
        // Tracker recovery does not clear an interface fault.
        m.step(
            Event::Track {
                priority: 100,
                fault: false,
            },
            ms(20),
        );
        assert_eq!(m.state(), State::Fault);
        m.step(Event::InterfaceUp, ms(30));
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn startup_with_interface_down_goes_fault() {
        let mut m = Machine::new(params(100));
        m.step(Event::InterfaceDown, ms(0));
        assert_eq!(m.state(), State::Initialize);
        m.step(Event::Startup, ms(0));
        assert_eq!(m.state(), State::Fault);
        m.step(Event::InterfaceUp, ms(10));
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn tracker_priority_change_while_master_advertises_immediately() {
        let mut m = master(params(100));
        let a = m.step(
            Event::Track {
                priority: 60,
                fault: false,
            },
            ms(5000),
        );
        assert_eq!(
            a,
            vec![
                Action::SendAdvert { priority: 60 },
                Action::SetTimer(ms(6000))
            ]
        );
        assert_eq!(m.priority(), 60);
        // Now a backup at 80 advertising makes us yield.
        m.step(adv(LOW, 80), ms(5100));
        assert_eq!(m.state(), State::Backup);
        // Same priority: nothing.
        assert!(m
            .step(
                Event::Track {
                    priority: 60,
                    fault: false
                },
                ms(5200)
            )
            .is_empty());
    }

    #[test]
    fn tracker_priority_clamped() {
        let mut m = started(params(100));
        m.step(
            Event::Track {
                priority: 0,
                fault: false,
            },
            ms(0),
        );
        assert_eq!(m.priority(), 1);
        m.step(
            Event::Track {
                priority: 255,
                fault: false,
            },
            ms(0),
        );
        assert_eq!(m.priority(), 254);
    }

    #[test]
    fn backup_priority_change_affects_skew() {
        let mut m = started(params(100));
        let before = m.master_down_interval();
        m.step(
            Event::Track {
                priority: 200,
                fault: false,
            },
            ms(0),
        );
        assert!(m.master_down_interval() < before);
    }

    #[test]
    fn adverts_ignored_in_initialize() {
        let mut m = Machine::new(params(100));
        assert!(m.step(adv(HIGH, 200), ms(0)).is_empty());
        assert!(m.step(Event::Timer, ms(0)).is_empty());
        assert_eq!(m.state(), State::Initialize);
    }

    #[test]
    fn transitions_counted() {
        let mut m = master(params(100));
        assert_eq!(m.transitions(), 2);
        m.step(adv(HIGH, 200), ms(5000));
        assert_eq!(m.transitions(), 3);
    }

    #[test]
    fn state_words() {
        assert_eq!(State::Master.as_str(), "MASTER");
        assert_eq!(State::Backup.as_str(), "BACKUP");
        assert_eq!(State::Fault.as_str(), "FAULT");
        assert_eq!(State::Initialize.as_str(), "INIT");
        assert_eq!(State::Fault.code(), 3);
    }

    /// Two machines wired back to back elect exactly one master (the higher priority),
    /// and the backup takes over ≈ Skew_Time after the master resigns.
    #[test]
    fn pair_simulation_election_and_resign() {
        let mut a = Machine::new(params(150));
        let mut pb = params(100);
        pb.primary_addr = HIGH;
        let mut b = Machine::new(pb);
        let mut now = Duration::ZERO;
        let mut qa = a.step(Event::Startup, now);
        let mut qb = b.step(Event::Startup, now);
        let step = ms(10);
        let mut resigned_at = None;
        let mut b_master_at = None;
        for _ in 0..2000 {
            now += step;
            // Deliver adverts across.
            for (src, acts, dst) in [(ME, &mut qa, &mut b), (HIGH, &mut qb, &mut a)] {
                for act in acts.drain(..) {
                    if let Action::SendAdvert { priority } = act {
                        let _ = dst.step(
                            Event::Advert {
                                src,
                                priority,
                                adver_int_cs: 100,
                            },
                            now,
                        );
                    }
                }
            }
            if now == ms(10_000) {
                assert_eq!(a.state(), State::Master);
                assert_eq!(b.state(), State::Backup);
                let acts = a.step(
                    Event::Track {
                        priority: 150,
                        fault: true,
                    },
                    now,
                );
                resigned_at = Some(now);
                qa.extend(acts);
            }
            qa.extend(a.step(Event::Timer, now));
            qb.extend(b.step(Event::Timer, now));
            if b.state() == State::Master && b_master_at.is_none() && resigned_at.is_some() {
                b_master_at = Some(now);
            }
            if now < ms(10_000) && now > ms(5000) {
                assert!(!(a.state() == State::Master && b.state() == State::Master));
            }
        }
        let took = b_master_at.unwrap() - resigned_at.unwrap();
        // Skew for priority 100 at 1 s = 609 ms (+ one simulation step).
        assert!(took >= ms(600) && took <= ms(630), "took {took:?}");
    }
}
