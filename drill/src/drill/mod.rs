//! One drill, in phases. Each phase is a module whose doc says what it
//! guarantees to the next one; [`run`] calls them in order:
//!
//! 1. `prepare`: the target, the management API and the AMQP endpoint
//!    work, the cluster is whole and the fault's nodes are known to the
//!    target. Nothing is hurt before it succeeds: its errors end the drill.
//! 2. `baseline`: the history, the background watchers (`watch`), the
//!    fault witness and the workload start, so the load runs undisturbed
//!    for `--fault-after` before anything happens.
//! 3. `fault`: the fault is injected and healed again; nothing stays
//!    injected, also when a step fails.
//! 4. `recovery`: when the heal step began, when the cluster was whole
//!    again, and the load until the planned end; Ctrl-C during phases 3
//!    and 4 heals whatever is injected and makes the report partial.
//! 5. `proof`: what the witness saw of the fault, as the evidence the
//!    accountant judges (no proof, no verdict: INVALID).
//! 6. `drain`: the publishers finish and the queue settles, so that a
//!    confirmed message not consumed by then is lost, not late.
//! 7. `account`: the history is accounted and the report written.
//!
//! `cluster` holds what several phases ask the cluster.

mod account;
mod baseline;
mod cluster;
mod drain;
mod fault;
mod prepare;
mod proof;
mod recovery;
mod watch;

pub use account::vip_move;
pub use cluster::NodeRef;
pub use drain::{drain_step, heartbeat_timeout_ms, DrainStep, DrainView, DRAIN_IDLE_MS};
pub use prepare::preflight;
pub use watch::lb_active;

use crate::accounting::{Accounting, Bucket, Event};
use crate::evidence::{Evidence, FaultEffect};
use crate::mgmt::Mgmt;
use crate::target::Target;
use crate::workload::{self, WorkloadConfig};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
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

/// Run a drill. Preflight errors are returned before any fault is injected.
pub async fn run(cfg: DrillConfig, target: Arc<dyn Target>, mgmt: Mgmt) -> Result<DrillReport> {
    let prepared = prepare::prepare(&cfg, &target, &mgmt).await?;
    let mut running = baseline::start(&cfg, &target, &mgmt, &prepared);
    let injector = fault::Injector::new(target.clone(), running.rec.clone());
    let fault_error = recovery::disturb(&cfg, &injector, &mgmt, &prepared, &mut running).await;
    let fault_evidence = proof::fault_evidence(
        &cfg,
        &prepared,
        running.witness,
        &running.rec,
        &running.facts,
        target.tells_vip_holder(),
    )
    .await;
    let master_after = drain::settle_and_drain(
        &cfg,
        &mgmt,
        &running.rec,
        &running.label,
        running.workload,
        &mut running.facts,
    )
    .await;
    let lb_error = running.watchers.stop().await;
    account::report(account::Outcome {
        cfg: &cfg,
        target: target.as_ref(),
        prepared,
        rec: &running.rec,
        facts: running.facts,
        fault_error,
        fault_evidence,
        master_after,
        lb_error,
    })
}
