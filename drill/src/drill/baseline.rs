//! Phase 2, baseline: start recording and loading before anything is hurt.
//!
//! Guarantees to the next phase: the [`Recorder`]'s clock starts here (every
//! time in the history counts from it), the background watchers, the fault
//! witness and the workload run, and [`Running::facts`] holds the load's
//! start and the workload's duplicate-bound ingredients. [`super::recovery`]
//! then lets the load run `--fault-after` before the fault, so the history
//! holds undisturbed load to compare the fault's effect with.

use super::prepare::Prepared;
use super::watch::{PhaseLabel, Watchers};
use super::{DrillConfig, Fault};
use crate::accounting::RunFacts;
use crate::event::EventKind;
use crate::mgmt::Mgmt;
use crate::target::Target;
use crate::witness::{self, Witness};
use crate::workload::{Recorder, Workload, WorkloadConfig};
use std::sync::Arc;

/// Everything that runs from the baseline until the drain.
pub(super) struct Running {
    pub workload_config: Arc<WorkloadConfig>,
    pub rec: Arc<Recorder>,
    pub label: PhaseLabel,
    pub watchers: Watchers,
    pub witness: Witness,
    pub workload: Workload,
    /// Filled in by the later phases.
    pub facts: RunFacts,
}

pub(super) fn start(
    cfg: &DrillConfig,
    target: &Arc<dyn Target>,
    mgmt: &Mgmt,
    prepared: &Prepared,
) -> Running {
    let w = Arc::new(cfg.workload.clone());
    let rec = Recorder::new();
    rec.event(
        EventKind::Note,
        format!(
            "queue {} master/leader {}",
            w.queue,
            prepared.master_before.as_deref().unwrap_or("?")
        ),
    );
    let label = PhaseLabel::new("load");
    let watchers = Watchers::start(cfg, mgmt, &w, &rec, &prepared.node_at_host, &label);
    let witness = Witness::start(
        witness::Plan {
            mgmt: mgmt.with_timeout(witness::LOOK_TIMEOUT),
            reporters: prepared.reporters.clone(),
            target: target.clone(),
            victim: prepared
                .victim
                .as_ref()
                .map(|v| (v.name.clone(), v.handle.clone())),
            ask_cut: cfg.fault == Fault::Partition,
            watch_lb: cfg.fault == Fault::LbCrash,
            vhost: w.vhost.clone(),
            queue: w.queue.clone(),
        },
        rec.clone(),
    );
    let load_start = rec.now_us();
    let workload = Workload::start(w.clone(), rec.clone());
    let facts = RunFacts {
        load_start_us: load_start,
        publishers: w.publishers,
        max_in_flight: if w.no_confirms { 0 } else { w.max_in_flight },
        consumers: w.consumers,
        prefetch: w.prefetch as u32,
        ..Default::default()
    };
    Running {
        workload_config: w,
        rec,
        label,
        watchers,
        witness,
        workload,
        facts,
    }
}
