//! The async shell around one VRRP instance: sockets, timers, trackers, interface
//! watching; performs the state machine's actions.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use rtnetlink::Handle;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::Instance;
use crate::link_watch::{LinkWatch, Reading};
use crate::metrics::InstanceMetrics;
use crate::net::{garp, link, sock::VrrpSockets};
use crate::notify;
use crate::tracker;
use crate::vrrp::machine::{Action, Event, Machine, Params, State};
use crate::vrrp::packet::{self, Advert, ChecksumMode, InstanceView, VRRP_MCAST_V4};
use crate::vrrp::priority::effective_priority;

/// How often the interface (existence, up/running, addresses) is re-read.
pub const IFACE_POLL: Duration = Duration::from_millis(100);
/// While reads of the interface keep failing, one warning per this many (10 s at
/// [`IFACE_POLL`]) besides the first.
const FAILED_READS_PER_WARNING: u32 = 100;

pub struct Agent {
    inst: Instance,
    metrics: Arc<InstanceMetrics>,
    /// This instance's own netlink connection (see [`link::connect`]).
    nl: Handle,
    origin: Instant,
    machine: Machine,
    vips: Vec<Ipv4Addr>,
    mode: ChecksumMode,
    /// The last interface read that succeeded (`None`: missing or never read).
    iface: Option<link::Iface>,
    link: LinkWatch,
    socks: Option<(u32, VrrpSockets)>,
    src: Option<Ipv4Addr>,
    tracks: Vec<(i32, bool)>,
    last_garp_refresh: Instant,
}

async fn recv_opt(s: Option<&VrrpSockets>) -> std::io::Result<Vec<u8>> {
    match s {
        None => std::future::pending().await,
        Some(s) => {
            let mut buf = vec![0u8; 2048];
            let n = s.recv(&mut buf).await?;
            buf.truncate(n);
            Ok(buf)
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        None => std::future::pending().await,
        Some(t) => tokio::time::sleep_until(t).await,
    }
}

impl Agent {
    /// Opens the instance's own netlink connection, so it needs a tokio runtime.
    pub fn new(inst: Instance, metrics: Arc<InstanceMetrics>) -> std::io::Result<Self> {
        let nl = link::connect()?;
        let params = Params {
            version: inst.version,
            priority: inst.priority,
            advert_interval: inst.advert_int,
            preempt: inst.preempt,
            preempt_delay: inst.preempt_delay,
            primary_addr: inst.unicast_src_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        let vips = inst.vips.iter().map(|(a, _)| *a).collect();
        let tracks = inst.tracks.iter().map(|t| (t.weight, true)).collect();
        metrics.priority.store(inst.priority, Relaxed);
        Ok(Agent {
            mode: ChecksumMode {
                v3_pseudo_header: inst.v3_pseudo_header,
            },
            machine: Machine::new(params),
            inst,
            metrics,
            nl,
            origin: Instant::now(),
            vips,
            iface: None,
            link: LinkWatch::default(),
            socks: None,
            src: None,
            tracks,
            last_garp_refresh: Instant::now(),
        })
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn name(&self) -> &str {
        &self.inst.name
    }

    /// Re-read the interface; (re)open sockets when its index changes. Returns the
    /// verdict (can the instance run: interface exists, up, running, has a source
    /// address?) when it changed. A failed read changes nothing: sockets, addresses and
    /// verdict stay as they were until a read succeeds.
    async fn refresh_iface(&mut self) -> Option<bool> {
        let reading = match link::iface(&self.nl, &self.inst.interface).await {
            Ok(Some(info)) => self.use_iface(info),
            Ok(None) => {
                self.iface = None;
                self.socks = None;
                Reading::Unusable
            }
            Err(e) => {
                let n = self.link.failed_reads() + 1;
                if n == 1 || n % FAILED_READS_PER_WARNING == 0 {
                    tracing::warn!(
                        "({}) cannot read interface {} ({n} failed read(s) in a row; state unchanged, retrying every {IFACE_POLL:?}): {e:#}",
                        self.name(),
                        self.inst.interface
                    );
                }
                Reading::Failed
            }
        };
        let failed_before = self.link.failed_reads();
        let change = self.link.observe(reading);
        if failed_before > 0 && reading != Reading::Failed {
            tracing::info!(
                "({}) interface {} read again after {failed_before} failed read(s)",
                self.name(),
                self.inst.interface
            );
        }
        change
    }

    /// Adopt a successful read of the interface.
    fn use_iface(&mut self, info: link::Iface) -> Reading {
        if self.socks.as_ref().map(|(i, _)| *i) != Some(info.index) {
            match VrrpSockets::open(
                &self.inst.interface,
                info.index,
                self.inst.unicast_peers.is_empty(),
            ) {
                Ok(s) => self.socks = Some((info.index, s)),
                Err(e) => {
                    tracing::warn!(
                        "({}) cannot open VRRP sockets on {}: {e}",
                        self.name(),
                        self.inst.interface
                    );
                    self.socks = None;
                }
            }
        }
        let primary = info
            .addrs
            .iter()
            .map(|(a, _)| *a)
            .find(|a| !self.vips.contains(a));
        self.src = self.inst.unicast_src_ip.or(primary);
        if let Some(p) = self.src {
            self.machine.set_primary_addr(p);
        }
        let ok = info.up && self.socks.is_some() && self.src.is_some();
        self.iface = Some(info);
        if ok {
            Reading::Usable
        } else {
            Reading::Unusable
        }
    }

    /// Read the interface until a read succeeds (or shutdown is asked); the verdict.
    async fn first_verdict(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<bool> {
        loop {
            if let Some(up) = self.refresh_iface().await {
                return Some(up);
            }
            tokio::select! {
                _ = shutdown.changed() => return None,
                _ = tokio::time::sleep(IFACE_POLL) => {}
            }
        }
    }

    /// Run until `shutdown` flips to true; then resign and remove the VIPs. Returns the
    /// VIPs that could not be removed (empty: none of ours is left on the interface).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Vec<Ipv4Addr> {
        let (ttx, mut trx) = mpsc::channel(64);
        let mut tasks = Vec::new();
        for (i, t) in self.inst.tracks.iter().enumerate() {
            tasks.push(tokio::spawn(tracker::run(
                i,
                self.inst.name.clone(),
                t.clone(),
                ttx.clone(),
            )));
        }
        drop(ttx);
        let Some(up) = self.first_verdict(&mut shutdown).await else {
            for t in tasks {
                t.abort();
            }
            return self.remove_vips(Removal::Stop).await;
        };
        // A previous run killed with SIGKILL may have left our VIPs behind. We start as
        // Backup, and a Backup holding them would answer for the new master's addresses,
        // so they go first (keepalived does the same: "removing VIPs." before it enters
        // BACKUP).
        self.remove_vips(Removal::Leftover).await;
        if !up {
            tracing::warn!(
                "({}) interface {} missing, down or without IPv4 address: FAULT",
                self.name(),
                self.inst.interface
            );
            let a = self.machine.step(Event::InterfaceDown, self.now());
            self.perform(a).await;
        }
        let a = self.machine.step(Event::Startup, self.now());
        self.perform(a).await;
        let mut poll = tokio::time::interval(IFACE_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let timer = self.machine.timer().map(|d| self.origin + d);
            let refresh_at = match (self.machine.state(), self.inst.garp_refresh) {
                (State::Master, Some(r)) => Some(self.last_garp_refresh + r),
                _ => None,
            };
            let sock = self.socks.as_ref().map(|(_, s)| s);
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = sleep_opt(timer) => {
                    let a = self.machine.step(Event::Timer, self.now());
                    self.perform(a).await;
                }
                r = recv_opt(sock) => match r {
                    Ok(pkt) => self.on_packet(&pkt).await,
                    Err(e) => {
                        tracing::warn!("({}) receive error: {e}", self.inst.name);
                        self.socks = None;
                    }
                },
                Some((i, t_up)) = trx.recv() => {
                    self.tracks[i].1 = t_up;
                    let (priority, fault) = effective_priority(self.inst.priority, &self.tracks);
                    let a = self.machine.step(Event::Track { priority, fault }, self.now());
                    self.perform(a).await;
                }
                _ = poll.tick() => {
                    if let Some(up) = self.refresh_iface().await {
                        if up {
                            tracing::info!("({}) interface {} is up", self.inst.name, self.inst.interface);
                        } else {
                            tracing::warn!("({}) interface {} is gone or down", self.inst.name, self.inst.interface);
                        }
                        let ev = if up { Event::InterfaceUp } else { Event::InterfaceDown };
                        let a = self.machine.step(ev, self.now());
                        self.perform(a).await;
                    }
                }
                _ = sleep_opt(refresh_at) => {
                    self.last_garp_refresh = Instant::now();
                    self.garp();
                }
            }
        }
        let a = self.machine.step(Event::Shutdown, self.now());
        self.perform(a).await;
        for t in tasks {
            t.abort();
        }
        // Whatever state we were in, leave no VIP behind: a stopped agent's address
        // collides with the new master's.
        self.remove_vips(Removal::Stop).await
    }

    async fn on_packet(&mut self, pkt: &[u8]) {
        let rx = match packet::parse_ipv4(pkt, self.inst.version, self.mode) {
            Ok(rx) => rx,
            Err(r) => {
                self.metrics.count_drop(r);
                tracing::debug!("({}) dropped packet: {}", self.inst.name, r.label());
                return;
            }
        };
        let own: Vec<Ipv4Addr> = self.src.into_iter().collect();
        let view = InstanceView {
            vrid: self.inst.vrid,
            version: self.inst.version,
            adver_int_cs: (self.inst.advert_int.as_millis() / 10) as u16,
            vips: &self.vips,
            peers: &self.inst.unicast_peers,
            own: &own,
            owner: self.inst.priority == 255,
            v2_auth_type: if self.inst.auth_pass.is_some() { 1 } else { 0 },
            v2_auth_data: self.inst.auth_pass.unwrap_or([0; 8]),
        };
        if let Err(r) = packet::validate_for_instance(&rx, &view) {
            // Other VRIDs on a shared segment are normal: count, do not log loudly.
            self.metrics.count_drop(r);
            tracing::debug!(
                "({}) dropped advert from {}: {}",
                self.inst.name,
                rx.src,
                r.label()
            );
            return;
        }
        self.metrics.adverts_received.fetch_add(1, Relaxed);
        let ev = Event::Advert {
            src: rx.src,
            priority: rx.advert.priority,
            adver_int_cs: rx.advert.adver_int_cs,
        };
        let a = self.machine.step(ev, self.now());
        self.perform(a).await;
    }

    async fn perform(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SendAdvert { priority } => self.send_advert(priority),
                Action::AddVips => self.add_vips().await,
                Action::RemoveVips => {
                    self.remove_vips(Removal::Resign).await;
                }
                Action::SendGarp => {
                    self.last_garp_refresh = Instant::now();
                    self.garp();
                }
                Action::Transition { from, to } => self.on_transition(from, to),
                Action::SetTimer(_) | Action::CancelTimer => {}
            }
        }
        self.metrics
            .state
            .store(self.machine.state().code(), Relaxed);
        self.metrics
            .priority
            .store(self.machine.priority(), Relaxed);
        self.metrics
            .transitions
            .store(self.machine.transitions(), Relaxed);
    }

    fn send_advert(&mut self, priority: u8) {
        let (Some((_, socks)), Some(src)) = (&self.socks, self.src) else {
            return;
        };
        let adv = Advert {
            version: self.inst.version,
            vrid: self.inst.vrid,
            priority,
            adver_int_cs: (self.inst.advert_int.as_millis() / 10).min(4095) as u16,
            addrs: self.vips.clone(),
            auth_type: if self.inst.auth_pass.is_some() { 1 } else { 0 },
            auth_data: self.inst.auth_pass.unwrap_or([0; 8]),
        };
        let dsts: Vec<Ipv4Addr> = if self.inst.unicast_peers.is_empty() {
            vec![VRRP_MCAST_V4]
        } else {
            self.inst.unicast_peers.clone()
        };
        for dst in dsts {
            let pkt = packet::encode_ipv4(&adv, self.mode, src, dst);
            match socks.send(&pkt, dst) {
                Ok(()) => {
                    self.metrics.adverts_sent.fetch_add(1, Relaxed);
                }
                Err(e) => tracing::warn!("({}) send advert to {dst}: {e}", self.inst.name),
            }
        }
    }

    async fn add_vips(&mut self) {
        let Some(ifc) = &self.iface else { return };
        for (a, p) in &self.inst.vips {
            if let Err(e) = link::add_addr(&self.nl, ifc.index, *a, *p).await {
                tracing::error!(
                    "({}) cannot add {a}/{p} to {}: {e:#}",
                    self.inst.name,
                    self.inst.interface
                );
            }
        }
    }

    /// Remove this instance's VIPs from the interface, verified by reading it back.
    /// Returns those still there (each already logged as an error).
    async fn remove_vips(&mut self, why: Removal) -> Vec<Ipv4Addr> {
        let Some(ifc) = &self.iface else {
            // Missing interface: no address of ours can be on it.
            return Vec::new();
        };
        match link::remove_verified(&self.nl, ifc.index, &self.vips).await {
            Ok(removed) => {
                for a in removed {
                    match why {
                        Removal::Resign => {}
                        Removal::Leftover => tracing::info!(
                            "({}) removed leftover {a} from {} before starting as BACKUP",
                            self.inst.name,
                            self.inst.interface
                        ),
                        Removal::Stop => tracing::info!(
                            "({}) removed {a} from {}",
                            self.inst.name,
                            self.inst.interface
                        ),
                    }
                }
                Vec::new()
            }
            Err(e) => {
                tracing::error!(
                    "({}) cannot remove its virtual addresses from {}: {e}",
                    self.inst.name,
                    self.inst.interface
                );
                e.left
            }
        }
    }

    fn garp(&self) {
        let Some(ifc) = &self.iface else { return };
        if let Err(e) = garp::send_burst(ifc.index, ifc.mac, &self.vips, self.inst.garp_repeat) {
            tracing::warn!(
                "({}) gratuitous ARP on {}: {e}",
                self.inst.name,
                self.inst.interface
            );
        }
    }

    fn on_transition(&mut self, from: State, to: State) {
        let word = if to == State::Initialize {
            "STOP"
        } else {
            to.as_str()
        };
        tracing::warn!(
            "({}) Entering {} STATE (was {}, priority {})",
            self.inst.name,
            word,
            from.as_str(),
            self.machine.priority()
        );
        if to == State::Master {
            self.metrics.became_master.fetch_add(1, Relaxed);
        }
        if let Some(sf) = &self.inst.state_file {
            if let Err(e) = notify::write_state(sf, word) {
                tracing::warn!("({}) state file {}: {e}", self.inst.name, sf.display());
            }
        }
        if let Some(script) = &self.inst.notify {
            notify::run(
                script,
                &self.inst.name,
                self.inst.vrid,
                word,
                from.as_str(),
                self.machine.priority(),
            );
        }
    }
}

/// Why VIPs are removed, for the log line.
#[derive(Clone, Copy)]
enum Removal {
    /// Leaving Master (resign, FAULT): the state change is the log line.
    Resign,
    /// At start, from a run that could not clean up (SIGKILL).
    Leftover,
    /// On SIGTERM/SIGINT.
    Stop,
}
