//! One drill: preflight, workload, fault, heal, wait for a whole cluster,
//! settle, drain, account.

use crate::accounting::{self, Accounting, Bucket, CutOff, Event, RunFacts};
use crate::evidence::{self, Evidence, FaultEffect};
use crate::mgmt::Mgmt;
use crate::target::{Action, Target};
use crate::witness::{self, Witness};
use crate::workload::{self, Phase, Recorder, Workload, WorkloadConfig};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// No fault: a baseline run.
    None,
    /// SIGKILL the node hosting the queue's master/leader, restart it after --fault-duration.
    Crash,
    /// SIGSTOP the master node for --fault-duration, then SIGCONT.
    Freeze,
    /// Stop the master node gracefully, start it after --fault-duration.
    Stop,
    /// Cut the master node from its peers for --fault-duration, then heal.
    Partition,
    /// Kill the active load balancer (the VIP must move), restore after --fault-duration.
    LbCrash,
    /// Stop and start every node in turn, waiting for the cluster to be whole in between.
    RollingRestart,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Crash => "crash",
            Fault::Freeze => "freeze",
            Fault::Stop => "stop",
            Fault::Partition => "partition",
            Fault::LbCrash => "lb-crash",
            Fault::RollingRestart => "rolling-restart",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DrillConfig {
    pub workload: WorkloadConfig,
    pub fault: Fault,
    pub duration: Duration,
    pub fault_after: Duration,
    pub fault_duration: Duration,
    pub heal_timeout: Duration,
    pub settle_timeout: Duration,
    pub drain_timeout: Duration,
    pub keep_queue: bool,
    pub progress: bool,
    /// Write the raw history (every publish, delivery and event) here.
    pub history_path: Option<std::path::PathBuf>,
    /// warren-lb admin `/status` URL, polled to time the lb's switch.
    pub lb_status: Option<String>,
}

/// From a warren-lb `/status` document: the server the first backend routes
/// new connections to (first eligible server, primaries before backups) and
/// the servers that are DOWN. A server is named `server=node` when its
/// address's host is the host of a management URL whose node is known
/// (`node_at_host`), so the lb's switch names the node it left.
pub fn lb_active(
    v: &serde_json::Value,
    node_at_host: &[(String, String)],
) -> Option<(Option<String>, Vec<String>)> {
    let servers = v
        .get("backends")?
        .as_array()?
        .first()?
        .get("servers")?
        .as_array()?;
    let name = |s: &serde_json::Value| {
        let n = s.get("name").and_then(|n| n.as_str())?;
        let host = s
            .get("address")
            .and_then(|a| a.as_str())
            .and_then(|a| a.rsplit_once(':'))
            .map(|(h, _)| h.trim_matches(['[', ']']));
        Some(
            match node_at_host.iter().find(|(h, _)| Some(h.as_str()) == host) {
                Some((_, node)) => format!("{n}={node}"),
                None => n.to_string(),
            },
        )
    };
    let eligible =
        |s: &&serde_json::Value| s.get("eligible").and_then(|e| e.as_bool()) == Some(true);
    let role = |s: &&serde_json::Value, r: &str| {
        s.get("role").and_then(|x| x.as_str()).unwrap_or("primary") == r
    };
    let active = servers
        .iter()
        .find(|s| eligible(s) && role(s, "primary"))
        .or_else(|| servers.iter().find(|s| eligible(s) && role(s, "backup")))
        .and_then(name);
    let down = servers
        .iter()
        .filter(|s| s.get("status").and_then(|x| x.as_str()) == Some("DOWN"))
        .filter_map(name)
        .collect();
    Some((active, down))
}

async fn watch_lb(
    url: String,
    node_at_host: Vec<(String, String)>,
    rec: Arc<Recorder>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Option<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .ok()?;
    let mut last: Option<(Option<String>, Vec<String>)> = None;
    let mut error = None;
    let mut seen = false;
    while !stop.load(Ordering::Relaxed) {
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => match r
                .json::<serde_json::Value>()
                .await
                .ok()
                .as_ref()
                .and_then(|v| lb_active(v, &node_at_host))
            {
                Some(now) => {
                    seen = true;
                    if let Some(prev) = &last {
                        if prev.0 != now.0 {
                            rec.event(
                                "lb-switch",
                                format!(
                                    "warren-lb routes to {} (was {}; DOWN: {})",
                                    now.0.as_deref().unwrap_or("nothing"),
                                    prev.0.as_deref().unwrap_or("nothing"),
                                    if now.1.is_empty() {
                                        "none".into()
                                    } else {
                                        now.1.join(",")
                                    }
                                ),
                            );
                        }
                    }
                    last = Some(now);
                }
                None => error = Some(format!("{url}: not a warren-lb /status document")),
            },
            Ok(r) => error = Some(format!("{url}: HTTP {}", r.status())),
            Err(e) => error = Some(format!("{url}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if seen {
        None
    } else {
        error.or(Some("no answer".into()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillReport {
    pub tool: String,
    pub run_id: String,
    pub target: String,
    pub fault: Fault,
    pub mode: workload::QueueMode,
    pub endpoint: String,
    pub queue: String,
    pub cluster: String,
    pub nodes: usize,
    pub publishers: u32,
    pub consumers: u32,
    pub rate: Option<f64>,
    pub unsafe_workload: Vec<String>,
    pub duration_s: f64,
    pub master_before: Option<String>,
    pub master_after: Option<String>,
    /// warren-lb's own switch time (needs its /status endpoint).
    pub lb_switch: String,
    pub vip_move: String,
    pub reconnects: u64,
    pub last_error: String,
    /// Whether the fault took effect (the verdict is INVALID when not).
    pub fault_effect: FaultEffect,
    /// What the fault witness saw, for re-judging.
    pub fault_evidence: Evidence,
    pub accounting: Accounting,
    pub events: Vec<Event>,
    pub timeline: Vec<Bucket>,
    pub bucket_ms: u64,
}

enum Heal {
    Act(Action, NodeRef),
    LbRestore,
}

/// A node by its full name, and the target's handle for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    pub name: String,
    pub handle: String,
}

impl NodeRef {
    /// "rabbit@10.210.1.11 (1)": the name, and the handle when it differs.
    fn label(&self) -> String {
        if self.handle == self.name {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.handle)
        }
    }
}

/// Event kind recorded once a fault command has finished (the fault is in force).
pub const IN_FORCE: &str = "in-force";

/// Faults injected and not healed yet, healed in reverse on Ctrl-C.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<Heal>>>);

struct Ctx {
    target: Arc<dyn Target>,
    rec: Arc<Recorder>,
    pending: Pending,
}

impl Ctx {
    async fn act(&self, a: Action, node: &NodeRef) -> Result<()> {
        let t = self.target.clone();
        let h = node.handle.clone();
        let label = node.label();
        self.rec
            .event(a.word(), format!("{} node {label}", a.word()));
        let res = tokio::task::spawn_blocking(move || t.act(a, &h)).await?;
        if let Err(e) = &res {
            self.rec
                .event("note", format!("{} node {label} failed: {e:#}", a.word()));
        }
        res
    }
    /// Inject `a` on `node` and remember how to undo it.
    async fn inject(&self, a: Action, undo: Action, node: &NodeRef) -> Result<()> {
        self.pending
            .0
            .lock()
            .unwrap()
            .push(Heal::Act(undo, node.clone()));
        self.act(a, node).await?;
        self.rec.event(
            IN_FORCE,
            format!("{} of node {} in force", a.word(), node.name),
        );
        Ok(())
    }
    async fn undo_last(&self) -> Result<()> {
        let h = self.pending.0.lock().unwrap().pop();
        match h {
            Some(Heal::Act(a, n)) => self.act(a, &n).await,
            Some(Heal::LbRestore) => {
                let t = self.target.clone();
                self.rec.event("heal", "restore load balancer");
                tokio::task::spawn_blocking(move || t.lb_restore()).await?
            }
            None => Ok(()),
        }
    }
}

/// What the final drain sees at one poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainView {
    /// Messages the workload's (auto-ack) consumers hold unprocessed.
    pub backlog: u64,
    /// Time since the last delivery (or since the drain began).
    pub idle_ms: u64,
    /// A management API is configured: `ready`/`unacked` come from it.
    pub mgmt: bool,
    /// messages_ready / messages_unacknowledged of the queue (None = no answer).
    pub ready: Option<u64>,
    pub unacked: Option<u64>,
    /// Without management API: ready count from an AMQP passive declare.
    pub amqp_depth: Option<u64>,
    /// Workload consumer connections the broker still lists that the workload
    /// no longer holds (None = cannot list them).
    pub orphans: Option<usize>,
    /// Time since the workload last lost a consumer connection (None = never).
    pub since_consumer_loss_ms: Option<u64>,
    /// AMQP heartbeat the workload negotiates.
    pub heartbeat_ms: u64,
    pub deadline_passed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DrainStep {
    /// Not settled yet: keep consuming (why).
    Wait(String),
    /// Every message was consumed and acked; anything missing now is lost.
    Settled,
    /// The deadline passed before the queue settled (why).
    Unsettled(String),
}

/// Idle time without deliveries before the drain may end.
pub const DRAIN_IDLE_MS: u64 = 2_000;

/// When the broker has surely dropped a dead client connection: it closes a
/// connection after two missed heartbeats; plus a margin.
pub fn heartbeat_timeout_ms(heartbeat_ms: u64) -> u64 {
    2 * heartbeat_ms + 5_000
}

/// Pure decision of the final drain. Messages delivered on a connection the
/// workload lost (e.g. through a crashed lb host) stay unacknowledged on the
/// broker until it notices the dead connection (heartbeat timeout) and
/// requeues them, so "the queue is empty" is not enough: the drain ends only
/// when the queue has nothing ready AND nothing unacknowledged, the consumers
/// are idle, and no orphaned consumer connection of the workload remains on
/// the broker (or the heartbeat timeout passed since the last one was lost).
pub fn drain_step(v: &DrainView) -> DrainStep {
    let mut why: Vec<String> = Vec::new();
    if v.backlog > 0 {
        why.push(format!(
            "{} message(s) in the consumers' backlog",
            v.backlog
        ));
    }
    if v.idle_ms < DRAIN_IDLE_MS {
        why.push("deliveries still arriving".into());
    }
    if v.mgmt {
        match (v.ready, v.unacked) {
            (Some(0), Some(0)) => {}
            (Some(r), Some(u)) => why.push(format!(
                "queue has {r} ready and {u} unacknowledged message(s)"
            )),
            _ => why.push("the management API gave no queue counts".into()),
        }
    } else {
        match v.amqp_depth {
            Some(0) => {}
            Some(n) => why.push(format!("queue has {n} ready message(s)")),
            None => why.push("queue depth unknown".into()),
        }
    }
    let hb_passed = v
        .since_consumer_loss_ms
        .is_none_or(|t| t >= heartbeat_timeout_ms(v.heartbeat_ms));
    if !hb_passed {
        match v.orphans {
            Some(0) => {}
            Some(n) => why.push(format!(
                "{n} lost consumer connection(s) still open on the broker (heartbeat timeout not passed)"
            )),
            None => why.push(
                "a consumer connection was lost and the broker's connections cannot be listed: waiting for the heartbeat timeout"
                    .into(),
            ),
        }
    }
    if why.is_empty() {
        DrainStep::Settled
    } else if v.deadline_passed {
        DrainStep::Unsettled(why.join("; "))
    } else {
        DrainStep::Wait(why.join("; "))
    }
}

/// Look at the queue and the broker's connections once, for [`drain_step`].
async fn drain_view(
    mgmt: &Mgmt,
    w: &WorkloadConfig,
    rec: &Recorder,
    drain_start_us: u64,
    deadline_passed: bool,
) -> DrainView {
    let now = rec.now_us();
    let consumer_prefix = format!("{}c", workload::conn_prefix(&w.run_id));
    let mut v = DrainView {
        backlog: rec.backlog.load(Ordering::Relaxed),
        idle_ms: now.saturating_sub(rec.last_delivery_us().unwrap_or(0).max(drain_start_us)) / 1000,
        mgmt: mgmt.enabled(),
        since_consumer_loss_ms: rec
            .last_conn_close_us(&consumer_prefix)
            .map(|t| now.saturating_sub(t) / 1000),
        heartbeat_ms: w.heartbeat_s as u64 * 1000,
        deadline_passed,
        ..Default::default()
    };
    if v.mgmt {
        if let Ok((r, u)) = mgmt.queue_counts(&w.vhost, &w.queue).await {
            v.ready = Some(r);
            v.unacked = Some(u);
        }
        if let Ok(listed) = mgmt.connections(&consumer_prefix).await {
            let open = rec.open_conn_names(&consumer_prefix);
            v.orphans = Some(listed.iter().filter(|(n, _)| !open.contains(n)).count());
        }
    } else {
        v.amqp_depth = workload::queue_depth(w).await.ok().map(u64::from);
    }
    v
}

fn amqp_hint(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    if s.contains("ACCESS_REFUSED") || s.contains("403") {
        format!("wrong AMQP credentials or no access to the vhost: {s}")
    } else if s.contains("NOT_ALLOWED") {
        format!("the user has no permission on the vhost: {s}")
    } else {
        s
    }
}

/// Checks that must pass before any fault is injected.
pub async fn preflight(
    cfg: &DrillConfig,
    target: &Arc<dyn Target>,
    mgmt: &Mgmt,
) -> Result<(String, usize)> {
    let t = target.clone();
    tokio::task::spawn_blocking(move || t.preflight())
        .await?
        .with_context(|| format!("target {} is not usable", target.describe()))?;
    let cluster = mgmt
        .preflight()
        .await
        .context("management API check failed")?;
    let nodes = mgmt.nodes().await?.len();
    let w = &cfg.workload;
    let conn = workload::connect(w)
        .await
        .map_err(|e| anyhow!("AMQP endpoint {} unusable: {}", w.endpoint, amqp_hint(&e)))?;
    let ch = conn.create_channel().await?;
    workload::declare(&ch, w)
        .await
        .map_err(|e| anyhow!("cannot declare queue {}: {}", w.queue, amqp_hint(&e)))?;
    let _ = conn.close(200, "preflight").await;
    Ok((cluster, nodes))
}

async fn wait_whole(
    mgmt: &Mgmt,
    w: &WorkloadConfig,
    nodes: usize,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match mgmt.not_whole(&w.vhost, &w.queue, nodes).await {
            None => return Ok(()),
            Some(why) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(why);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn leader(mgmt: &Mgmt, w: &WorkloadConfig) -> Option<String> {
    mgmt.queue(&w.vhost, &w.queue).await.ok()?.leader
}

/// Run the fault on `victim` (rolling restart: on every node of `all`, in
/// order); returns the number of disruptions.
async fn run_fault(
    cfg: &DrillConfig,
    ctx: &Ctx,
    mgmt: &Mgmt,
    victim: &NodeRef,
    all: &[NodeRef],
    nodes: usize,
) -> Result<u32> {
    let d = cfg.fault_duration;
    let m = &victim.label();
    match cfg.fault {
        Fault::None => Ok(0),
        Fault::Crash => {
            ctx.rec.event("fault", format!("crash (SIGKILL) node {m}"));
            ctx.inject(Action::Kill, Action::Start, victim).await?;
            tokio::time::sleep(d).await;
            ctx.rec.event("heal", format!("restart node {m}"));
            ctx.undo_last().await?;
            Ok(1)
        }
        Fault::Stop => {
            ctx.rec.event("fault", format!("graceful stop of node {m}"));
            ctx.inject(Action::Stop, Action::Start, victim).await?;
            tokio::time::sleep(d).await;
            ctx.rec.event("heal", format!("start node {m}"));
            ctx.undo_last().await?;
            Ok(1)
        }
        Fault::Freeze => {
            ctx.rec
                .event("fault", format!("freeze (SIGSTOP) node {m} for {d:?}"));
            ctx.inject(Action::Freeze, Action::Thaw, victim).await?;
            tokio::time::sleep(d).await;
            ctx.rec.event("heal", format!("thaw (SIGCONT) node {m}"));
            ctx.undo_last().await?;
            Ok(1)
        }
        Fault::Partition => {
            ctx.rec.event(
                "fault",
                format!("partition node {m} from its peers for {d:?}"),
            );
            ctx.inject(Action::Partition, Action::Heal, victim).await?;
            tokio::time::sleep(d).await;
            ctx.rec.event("heal", format!("heal partition of node {m}"));
            ctx.undo_last().await?;
            Ok(1)
        }
        Fault::LbCrash => {
            ctx.pending.0.lock().unwrap().push(Heal::LbRestore);
            let t = ctx.target.clone();
            let what = tokio::task::spawn_blocking(move || t.lb_kill()).await??;
            ctx.rec
                .event("fault", format!("killed the active load balancer: {what}"));
            ctx.rec.event(
                IN_FORCE,
                format!("kill of the load balancer {what} in force"),
            );
            // time the VIP's move while the killed host is down
            let vip_watch = ctx.target.tells_vip_holder().then(|| {
                let (t, rec) = (ctx.target.clone(), ctx.rec.clone());
                tokio::task::spawn_blocking(move || {
                    let was = t.killed_lb_name();
                    match crate::target::wait_vip_move(
                        t.as_ref(),
                        was.as_deref(),
                        d,
                        Duration::from_millis(100),
                    ) {
                        Some(h) => rec.event(
                            "vip-move",
                            format!(
                                "VIP held by {h} (was {})",
                                was.as_deref().unwrap_or("the killed host")
                            ),
                        ),
                        None => rec.event(
                            "note",
                            format!("the VIP did not move to another host within {d:?}"),
                        ),
                    }
                })
            });
            tokio::time::sleep(d).await;
            if let Some(h) = vip_watch {
                let _ = h.await;
            }
            ctx.undo_last().await?;
            Ok(1)
        }
        Fault::RollingRestart => {
            let names: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
            ctx.rec.event(
                "fault",
                format!("rolling restart of nodes {}", names.join(",")),
            );
            for n in all {
                let label = n.label();
                ctx.rec.event("note", format!("restart node {label}"));
                ctx.inject(Action::Stop, Action::Start, n).await?;
                ctx.undo_last().await?;
                if let Err(why) = wait_whole(mgmt, &cfg.workload, nodes, cfg.heal_timeout).await {
                    bail!("after restarting node {label} the cluster did not become whole: {why}");
                }
                ctx.rec
                    .event("note", format!("node {label} back, cluster whole"));
            }
            ctx.rec.event("heal", "rolling restart done");
            Ok(all.len() as u32)
        }
    }
}

fn progress_line(rec: &Recorder, phase: &str) -> String {
    let e = rec.last_error.lock().unwrap().clone();
    let e: String = e.chars().take(70).collect();
    format!(
        "[{:6.1}s] {phase:<8} sent {} confirmed {} consumed {} reconnects {}{}",
        rec.start.elapsed().as_secs_f64(),
        rec.sent.load(Ordering::Relaxed),
        rec.confirmed.load(Ordering::Relaxed),
        rec.consumed.load(Ordering::Relaxed),
        rec.reconnects.load(Ordering::Relaxed),
        if e.is_empty() {
            String::new()
        } else {
            format!(" | {e}")
        }
    )
}

/// Run a drill. Preflight errors are returned before any fault is injected.
pub async fn run(cfg: DrillConfig, target: Arc<dyn Target>, mgmt: Mgmt) -> Result<DrillReport> {
    let (cluster, nodes) = preflight(&cfg, &target, &mgmt).await?;
    let w = Arc::new(cfg.workload.clone());
    if let Err(why) = wait_whole(&mgmt, &w, nodes, cfg.heal_timeout).await {
        bail!("the cluster is not whole before the drill ({why}); refusing to inject a fault");
    }
    let master_before = leader(&mgmt, &w).await;
    let node_ref = |name: String| {
        let t = target.clone();
        async move {
            let handle = tokio::task::spawn_blocking({
                let name = name.clone();
                move || t.node(&name)
            })
            .await??;
            Ok::<_, anyhow::Error>(NodeRef { name, handle })
        }
    };
    // the node the fault is aimed at, by its full name; a name the target
    // cannot map is an error before anything is hurt
    let victim = match (&master_before, cfg.fault) {
        (_, Fault::None | Fault::LbCrash | Fault::RollingRestart) => None,
        (Some(m), _) => Some(node_ref(m.clone()).await.with_context(|| {
            format!("the queue's master/leader {m} cannot be reached through the target")
        })?),
        (None, _) => bail!("cannot find the master/leader of queue {}", w.queue),
    };
    let mut all_nodes = Vec::new();
    if cfg.fault == Fault::RollingRestart {
        let mut names: Vec<String> = mgmt.nodes().await?.into_iter().map(|n| n.name).collect();
        names.sort();
        for n in names {
            all_nodes.push(node_ref(n).await?);
        }
    }
    let reporters = mgmt.identify().await;
    let node_at_host: Vec<(String, String)> = reporters
        .iter()
        .filter_map(|(u, n)| {
            let host = reqwest::Url::parse(u)
                .ok()?
                .host_str()?
                .trim_matches(['[', ']'])
                .to_string();
            Some((host, n.clone()))
        })
        .collect();

    let rec = Recorder::new();
    let ctx = Ctx {
        target: target.clone(),
        rec: rec.clone(),
        pending: Pending::default(),
    };
    rec.event(
        "note",
        format!(
            "queue {} master/leader {}",
            w.queue,
            master_before.as_deref().unwrap_or("?")
        ),
    );
    let phase_name = Arc::new(Mutex::new("load"));

    // live progress + failover watch
    let stop_bg = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bg = {
        let (rec, mgmt, w, stop, pn) = (
            rec.clone(),
            mgmt.clone(),
            w.clone(),
            stop_bg.clone(),
            phase_name.clone(),
        );
        let progress = cfg.progress;
        tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
            let mut last_leader = master_before_clone(&mgmt, &w).await;
            let mut tick = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                tick += 1;
                if let Ok(Ok(Some(l))) = tokio::time::timeout(Duration::from_secs(2), async {
                    Ok::<_, ()>(leader(&mgmt, &w).await)
                })
                .await
                {
                    if last_leader.as_deref() != Some(l.as_str()) {
                        rec.event(
                            "failover",
                            format!(
                                "master/leader {} -> {l}",
                                last_leader.as_deref().unwrap_or("?")
                            ),
                        );
                        last_leader = Some(l);
                    }
                }
                if progress && (tty || tick % 10 == 0) {
                    let line = progress_line(&rec, &pn.lock().unwrap());
                    let mut e = std::io::stderr();
                    if tty {
                        let _ = write!(e, "\r\x1b[2K{line}");
                    } else {
                        let _ = writeln!(e, "{line}");
                    }
                    let _ = e.flush();
                }
            }
            if progress && tty {
                eprintln!();
            }
        })
    };

    // which node each workload connection landed on (split-brain accounting)
    let conn_watch = mgmt.enabled().then(|| {
        let (rec, mgmt, stop) = (rec.clone(), mgmt.clone(), stop_bg.clone());
        let prefix = workload::conn_prefix(&w.run_id);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if rec.conns_without_node() > 0 {
                    if let Ok(Ok(seen)) =
                        tokio::time::timeout(Duration::from_secs(3), mgmt.connections(&prefix))
                            .await
                    {
                        rec.conn_nodes(&seen);
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    });
    let lb_watch = cfg.lb_status.clone().map(|u| {
        tokio::spawn(watch_lb(
            u,
            node_at_host.clone(),
            rec.clone(),
            stop_bg.clone(),
        ))
    });
    let witness = Witness::start(
        witness::Plan {
            mgmt: mgmt.with_timeout(witness::LOOK_TIMEOUT),
            reporters: reporters.clone(),
            target: target.clone(),
            victim: victim.as_ref().map(|v| (v.name.clone(), v.handle.clone())),
            ask_cut: cfg.fault == Fault::Partition,
            watch_lb: cfg.fault == Fault::LbCrash,
            vhost: w.vhost.clone(),
            queue: w.queue.clone(),
        },
        rec.clone(),
    );
    let no_victim = NodeRef {
        name: String::new(),
        handle: String::new(),
    };
    let load_start = rec.now_us();
    let wl = Workload::start(w.clone(), rec.clone());
    let mut facts = RunFacts {
        load_start_us: load_start,
        publishers: w.publishers,
        max_in_flight: if w.no_confirms { 0 } else { w.max_in_flight },
        consumers: w.consumers,
        prefetch: w.prefetch as u32,
        ..Default::default()
    };

    let main_flow = async {
        tokio::time::sleep(cfg.fault_after).await;
        *phase_name.lock().unwrap() = "fault";
        let fault_at = rec.now_us();
        let fault_res = run_fault(
            &cfg,
            &ctx,
            &mgmt,
            victim.as_ref().unwrap_or(&no_victim),
            &all_nodes,
            nodes,
        )
        .await;
        // the heal step began at the last "heal" event (rolling restart: its end)
        let heal_at = rec
            .history_events()
            .iter()
            .rev()
            .find(|e| e.kind == "heal" && e.at_us >= fault_at)
            .map(|e| e.at_us)
            .unwrap_or_else(|| rec.now_us());
        *phase_name.lock().unwrap() = "healing";
        let whole = wait_whole(&mgmt, &w, nodes, cfg.heal_timeout).await;
        let whole_at = rec.now_us();
        match &whole {
            Ok(()) => rec.event(
                "healed",
                format!(
                    "cluster whole {:.1}s after the heal step began",
                    (whole_at - heal_at) as f64 / 1e6
                ),
            ),
            Err(why) => rec.event("note", format!("cluster NOT whole: {why}")),
        }
        // keep loading until the planned duration, and at least 3 s after healing
        *phase_name.lock().unwrap() = "load";
        let planned_end = load_start + cfg.duration.as_micros() as u64;
        let end = planned_end.max(whole_at + 3_000_000);
        let now = rec.now_us();
        if end > now {
            tokio::time::sleep(Duration::from_micros(end - now)).await;
        }
        (fault_at, heal_at, whole_at, fault_res, whole)
    };

    let outcome = tokio::select! {
        r = main_flow => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };

    let mut fault_error = None;
    match outcome {
        Some((fault_at, heal_at, whole_at, fault_res, whole)) => {
            if cfg.fault != Fault::None {
                facts.fault_at_us = Some(fault_at);
                facts.heal_at_us = Some(heal_at);
            }
            if cfg.fault == Fault::Partition {
                let cut_at = rec
                    .history_events()
                    .iter()
                    .find(|e| e.kind == IN_FORCE && e.at_us >= fault_at)
                    .map(|e| e.at_us);
                if let (Some(node), Some(from_us)) = (&master_before, cut_at) {
                    facts.cut_off = Some(CutOff {
                        node: node.clone(),
                        from_us,
                        to_us: heal_at,
                    });
                }
            }
            match fault_res {
                Ok(n) => facts.disruptions = n,
                Err(e) => {
                    fault_error = Some(format!("{e:#}"));
                    rec.event("note", format!("fault step failed: {e:#}"));
                    // never leave a node hurt
                    while !ctx.pending.0.lock().unwrap().is_empty() {
                        let _ = ctx.undo_last().await;
                    }
                }
            }
            facts.cluster_healed = whole.is_ok() && fault_error.is_none();
            facts.heal_duration_us = Some(whole_at - heal_at);
        }
        None => {
            facts.interrupted = true;
            rec.event("note", "interrupted (Ctrl-C): healing the injected fault");
            eprintln!("\nwarren-drill: interrupted, healing the injected fault ...");
            while !ctx.pending.0.lock().unwrap().is_empty() {
                if let Err(e) = ctx.undo_last().await {
                    eprintln!("warren-drill: heal step failed: {e:#}");
                }
            }
            facts.cluster_healed = wait_whole(&mgmt, &w, nodes, Duration::from_secs(30))
                .await
                .is_ok();
        }
    }
    facts.load_end_us = rec.now_us();

    // what the witness saw of the fault, for the accountant
    let seen = witness.finish().await;
    if seen.look_errors > 0 {
        rec.event(
            "note",
            format!(
                "the target's look at the victim failed {} time(s): {}",
                seen.look_errors,
                seen.last_look_error.as_deref().unwrap_or("?")
            ),
        );
    }
    let mut fault_evidence = Evidence::new(cfg.fault, victim.as_ref().map(|v| v.name.clone()));
    fault_evidence.nodes = all_nodes.iter().map(|n| n.name.clone()).collect();
    fault_evidence.fault_at_us = facts.fault_at_us.unwrap_or(0);
    fault_evidence.heal_at_us = facts.heal_at_us.unwrap_or(0);
    let events_now = rec.history_events();
    let after_fault = |e: &&Event| e.at_us >= fault_evidence.fault_at_us;
    fault_evidence.in_force_us = events_now
        .iter()
        .filter(after_fault)
        .find(|e| e.kind == IN_FORCE)
        .map(|e| e.at_us);
    fault_evidence.vip_moved =
        (cfg.fault == Fault::LbCrash && target.tells_vip_holder()).then(|| {
            events_now
                .iter()
                .filter(after_fault)
                .any(|e| e.kind == "vip-move")
        });
    fault_evidence.views = seen.views;
    fault_evidence.probes = seen.probes;
    fault_evidence.leaders = seen.leaders;
    fault_evidence.lb = seen.lb;

    // settle: no new ids, retry the unconfirmed ones
    *phase_name.lock().unwrap() = "settle";
    let _ = wl.phase.send(Phase::Settle);
    let settle_deadline = tokio::time::Instant::now() + cfg.settle_timeout;
    for h in wl.publishers {
        let _ = tokio::time::timeout_at(settle_deadline, h).await;
    }
    rec.event("drain", "publishers done; draining the queue");

    // drain: until the queue has settled (see drain_step)
    *phase_name.lock().unwrap() = "drain";
    let drain_start = rec.now_us();
    let drain_deadline = tokio::time::Instant::now() + cfg.drain_timeout;
    if !facts.interrupted {
        let mut waited_for = String::new();
        loop {
            let passed = tokio::time::Instant::now() >= drain_deadline;
            let v = drain_view(&mgmt, &w, &rec, drain_start, passed).await;
            match drain_step(&v) {
                DrainStep::Settled => {
                    let took = (rec.now_us() - drain_start) as f64 / 1e6;
                    rec.event(
                        "drain",
                        if took > 5.0 {
                            format!(
                                "queue settled after {took:.1} s (last waited for: {waited_for})"
                            )
                        } else {
                            format!("queue settled after {took:.1} s")
                        },
                    );
                    break;
                }
                DrainStep::Unsettled(why) => {
                    rec.event(
                        "note",
                        format!("drain deadline passed, queue NOT settled: {why}"),
                    );
                    facts.unsettled = Some(why);
                    break;
                }
                DrainStep::Wait(why) => waited_for = why,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let _ = wl.phase.send(Phase::Stop);
    for h in wl.consumers {
        let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
    }
    facts.drained = matches!(workload::queue_depth(&w).await, Ok(0));
    let master_after = leader(&mgmt, &w).await;
    if !cfg.keep_queue {
        let _ = workload::delete_queue(&w).await;
    }
    stop_bg.store(true, Ordering::Relaxed);
    let _ = bg.await;
    if let Some(h) = conn_watch {
        let _ = h.await;
    }
    let lb_error = match lb_watch {
        Some(h) => h.await.ok().flatten(),
        None => Some("no --lb-status URL given".into()),
    };

    let history = rec.history();
    let end_us = rec.now_us();
    if let Some(p) = &cfg.history_path {
        std::fs::write(p, serde_json::to_vec(&history)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    // the load began with the first publish (connection setup is not load)
    if let Some(first) = history.publishes.iter().map(|p| p.first_sent_us).min() {
        facts.load_start_us = first.min(facts.load_end_us);
    }
    let mut acc = accounting::account(&history, &facts);
    if let Some(e) = fault_error {
        acc.reasons.push(format!("the fault could not be run: {e}"));
        acc.verdict = accounting::Verdict::Fail;
    }
    let fault_effect = evidence::judge(&fault_evidence);
    evidence::settle_verdict(&mut acc, &fault_effect);
    let bucket_ms = if end_us > 120_000_000 { 1000 } else { 500 };
    let last_error = rec.last_error.lock().unwrap().clone();
    let mut unsafe_workload = Vec::new();
    if w.no_confirms {
        unsafe_workload.push("no publisher confirms".into());
    }
    if w.auto_ack {
        unsafe_workload.push("auto-ack consumers".into());
    }
    Ok(DrillReport {
        tool: format!("warren-drill {}", env!("CARGO_PKG_VERSION")),
        run_id: w.run_id.clone(),
        target: target.describe(),
        fault: cfg.fault,
        mode: w.mode,
        endpoint: w.endpoint.clone(),
        queue: w.queue.clone(),
        cluster,
        nodes,
        publishers: w.publishers,
        consumers: w.consumers,
        rate: w.rate,
        unsafe_workload,
        duration_s: end_us as f64 / 1e6,
        master_before,
        master_after,
        lb_switch: match (lb_error, facts.fault_at_us) {
            (Some(e), _) => format!("unavailable ({e})"),
            (None, None) => "no fault".into(),
            (None, Some(fa)) => match history
                .events
                .iter()
                .find(|e| e.kind == "lb-switch" && e.at_us >= fa)
            {
                Some(e) => format!(
                    "{:.0} ms after the fault: {}",
                    (e.at_us - fa) as f64 / 1000.0,
                    e.detail
                ),
                None => "no switch seen (the lb kept routing to the same server)".into(),
            },
        },
        vip_move: vip_move(cfg.fault, target.tells_vip_holder(), &history.events),
        reconnects: rec.reconnects.load(Ordering::Relaxed),
        last_error,
        fault_effect,
        fault_evidence,
        accounting: acc,
        events: history.events.clone(),
        timeline: accounting::timeline(&history, bucket_ms, end_us),
        bucket_ms,
    })
}

/// The report's "vip move" line: time from the kill of the lb host (the
/// `fault` event) to the first `vip-move` event.
pub fn vip_move(fault: Fault, can_tell: bool, events: &[Event]) -> String {
    if fault != Fault::LbCrash {
        return "no lb-crash fault".into();
    }
    if !can_tell {
        return "not measured (the target cannot tell which host holds the VIP; compose with --vip can)"
            .into();
    }
    let Some(f) = events.iter().find(|e| e.kind == "fault") else {
        return "not measured (no fault)".into();
    };
    match events
        .iter()
        .find(|e| e.kind == "vip-move" && e.at_us >= f.at_us)
    {
        Some(e) => format!(
            "{:.0} ms after the lb host was killed: {}",
            (e.at_us - f.at_us) as f64 / 1000.0,
            e.detail
        ),
        None => "the VIP did not move to another host while the killed one was down".into(),
    }
}

async fn master_before_clone(mgmt: &Mgmt, w: &WorkloadConfig) -> Option<String> {
    leader(mgmt, w).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settled_view() -> DrainView {
        DrainView {
            backlog: 0,
            idle_ms: 2_500,
            mgmt: true,
            ready: Some(0),
            unacked: Some(0),
            amqp_depth: None,
            orphans: Some(0),
            since_consumer_loss_ms: None,
            heartbeat_ms: 5_000,
            deadline_passed: false,
        }
    }

    #[test]
    fn drain_settles_only_with_nothing_ready_or_unacked() {
        assert_eq!(drain_step(&settled_view()), DrainStep::Settled);
        // unacked on an orphaned connection (lb host crashed): keep waiting
        let mut v = settled_view();
        v.unacked = Some(17);
        assert!(matches!(drain_step(&v), DrainStep::Wait(w) if w.contains("17 unacknowledged")));
        v.deadline_passed = true;
        assert!(
            matches!(drain_step(&v), DrainStep::Unsettled(w) if w.contains("17 unacknowledged"))
        );
        let mut v = settled_view();
        v.ready = Some(3);
        assert!(matches!(drain_step(&v), DrainStep::Wait(_)));
        let mut v = settled_view();
        v.ready = None;
        v.unacked = None;
        assert!(matches!(drain_step(&v), DrainStep::Wait(w) if w.contains("no queue counts")));
        let mut v = settled_view();
        v.idle_ms = 100;
        assert!(matches!(drain_step(&v), DrainStep::Wait(w) if w.contains("arriving")));
        let mut v = settled_view();
        v.backlog = 4;
        assert!(matches!(drain_step(&v), DrainStep::Wait(w) if w.contains("backlog")));
    }

    #[test]
    fn drain_waits_for_orphaned_consumer_connections_until_heartbeat_timeout() {
        let mut v = settled_view();
        v.orphans = Some(2);
        // no consumer connection was ever lost: a listed leftover is a close in progress
        assert_eq!(drain_step(&v), DrainStep::Settled);
        v.since_consumer_loss_ms = Some(3_000);
        assert!(matches!(drain_step(&v), DrainStep::Wait(w) if w.contains("2 lost consumer")));
        v.since_consumer_loss_ms = Some(heartbeat_timeout_ms(5_000));
        assert_eq!(drain_step(&v), DrainStep::Settled);
        // cannot list connections: wait out the heartbeat timeout
        v.orphans = None;
        v.since_consumer_loss_ms = Some(1_000);
        assert!(matches!(drain_step(&v), DrainStep::Wait(w) if w.contains("heartbeat")));
        v.orphans = Some(0);
        assert_eq!(drain_step(&v), DrainStep::Settled);
        assert_eq!(heartbeat_timeout_ms(5_000), 15_000);
    }

    #[test]
    fn drain_without_management_api_uses_amqp_depth() {
        let mut v = settled_view();
        v.mgmt = false;
        v.ready = None;
        v.unacked = None;
        v.orphans = None;
        v.amqp_depth = Some(0);
        assert_eq!(drain_step(&v), DrainStep::Settled);
        v.amqp_depth = Some(5);
        assert!(matches!(drain_step(&v), DrainStep::Wait(_)));
        v.amqp_depth = Some(0);
        v.since_consumer_loss_ms = Some(2_000);
        assert!(matches!(drain_step(&v), DrainStep::Wait(_)));
        v.deadline_passed = true;
        assert!(matches!(drain_step(&v), DrainStep::Unsettled(_)));
    }

    #[test]
    fn vip_move_line() {
        let ev = |at_us: u64, kind: &str, detail: &str| Event {
            at_us,
            kind: kind.into(),
            detail: detail.into(),
        };
        let events = vec![
            ev(
                1_000_000,
                "fault",
                "killed the active load balancer: container lb1",
            ),
            ev(1_850_000, "vip-move", "VIP held by lb2 (was lb1)"),
        ];
        let s = vip_move(Fault::LbCrash, true, &events);
        assert!(s.starts_with("850 ms after") && s.contains("lb2"), "{s}");
        assert!(vip_move(Fault::LbCrash, false, &events).contains("cannot tell"));
        assert!(vip_move(Fault::LbCrash, true, &events[..1]).contains("did not move"));
        assert_eq!(vip_move(Fault::Crash, true, &events), "no lb-crash fault");
    }

    #[test]
    fn lb_active_server_from_status() {
        let v = json!({"backends":[{"name":"rabbitmq","servers":[
            {"name":"rabbit1","role":"primary","status":"DOWN","eligible":false},
            {"name":"rabbit2","role":"primary","status":"UP","eligible":true},
            {"name":"rabbit3","role":"backup","status":"UP","eligible":true}]}]});
        assert_eq!(
            lb_active(&v, &[]),
            Some((Some("rabbit2".into()), vec!["rabbit1".into()]))
        );
        // servers are named with the full node name behind their address
        let v = json!({"backends":[{"name":"rabbitmq","servers":[
            {"name":"rabbit1","address":"10.210.1.11:5672","role":"primary","status":"DOWN","eligible":false},
            {"name":"rabbit2","address":"10.210.1.12:5672","role":"primary","status":"UP","eligible":true}]}]});
        let hosts = [
            ("10.210.1.11".to_string(), "rabbit@10.210.1.11".to_string()),
            ("10.210.1.12".to_string(), "rabbit@10.210.1.12".to_string()),
        ];
        assert_eq!(
            lb_active(&v, &hosts),
            Some((
                Some("rabbit2=rabbit@10.210.1.12".into()),
                vec!["rabbit1=rabbit@10.210.1.11".into()]
            ))
        );
        let v = json!({"backends":[{"servers":[
            {"name":"a","role":"primary","status":"DOWN","eligible":false},
            {"name":"b","role":"backup","status":"UP","eligible":true}]}]});
        assert_eq!(lb_active(&v, &[]).unwrap().0.as_deref(), Some("b"));
        assert_eq!(lb_active(&json!({"nope":1}), &[]), None);
    }
}
