//! Phases 3 and 4 under Ctrl-C: after `--fault-after` of baseline load the
//! fault runs ([`super::fault`]), then the drill observes the recovery:
//! when the heal step began, when the cluster was whole again, and the load
//! goes on until the planned duration (at least 3 s after healing).
//!
//! Guarantees to the next phase: no fault is left injected (a failed fault
//! step heals everything pending at once, before the wait for a whole
//! cluster; Ctrl-C heals it too), and the run's facts hold
//! the fault, in-force and heal times, the partition's cut-off window, the
//! number of disruptions, whether and how fast the cluster healed, whether
//! the run was interrupted, and the end of the load.

use super::baseline::Running;
use super::cluster::wait_whole;
use super::fault::{run_fault, Injector};
use super::prepare::Prepared;
use super::{DrillConfig, Fault};
use crate::accounting::CutOff;
use crate::event::EventKind;
use crate::mgmt::Mgmt;
use crate::workload::Recorder;
use anyhow::Result;
use std::time::Duration;

/// What the fault and the recovery after it came to.
struct Disturbance {
    fault_at: u64,
    /// When the heal step began (rolling restart: when it ended).
    heal_at: u64,
    whole_at: u64,
    disruptions: Result<u32>,
    whole: std::result::Result<(), String>,
}

/// Run the fault and observe the recovery, or heal on Ctrl-C; fills
/// `running.facts`. Returns why the fault could not be run (the verdict is
/// then FAIL).
pub(super) async fn disturb(
    cfg: &DrillConfig,
    inj: &Injector,
    mgmt: &Mgmt,
    prepared: &Prepared,
    running: &mut Running,
) -> Option<String> {
    let outcome = tokio::select! {
        d = fault_then_recover(cfg, inj, mgmt, prepared, running) => Some(d),
        _ = tokio::signal::ctrl_c() => None,
    };
    let rec = &running.rec;
    let facts = &mut running.facts;
    let mut fault_error = None;
    match outcome {
        Some(d) => {
            if cfg.fault != Fault::None {
                facts.fault_at_us = Some(d.fault_at);
                facts.heal_at_us = Some(d.heal_at);
            }
            facts.in_force_at_us = first_in_force(rec, facts.fault_at_us);
            if cfg.fault == Fault::Partition {
                if let (Some(node), Some(from_us)) = (&prepared.master_before, facts.in_force_at_us)
                {
                    facts.cut_off = Some(CutOff {
                        node: node.clone(),
                        from_us,
                        to_us: d.heal_at,
                    });
                }
            }
            match d.disruptions {
                Ok(n) => facts.disruptions = n,
                Err(e) => fault_error = Some(format!("{e:#}")),
            }
            facts.cluster_healed = d.whole.is_ok() && fault_error.is_none();
            facts.heal_duration_us = Some(d.whole_at - d.heal_at);
        }
        None => {
            facts.interrupted = true;
            facts.in_force_at_us = first_in_force(rec, facts.fault_at_us);
            rec.event(
                EventKind::Note,
                "interrupted (Ctrl-C): healing the injected fault",
            );
            eprintln!("\nwarren-drill: interrupted, healing the injected fault ...");
            inj.heal_all(|e| eprintln!("warren-drill: heal step failed: {e:#}"))
                .await;
            facts.cluster_healed = wait_whole(
                mgmt,
                &running.workload_config,
                prepared.nodes,
                Duration::from_secs(30),
            )
            .await
            .is_ok();
        }
    }
    facts.load_end_us = rec.now_us();
    fault_error
}

/// The first `in-force` event at or after `fault_at` (None: the fault's
/// start was not recorded, no fault or Ctrl-C before it, so any in-force
/// event of the run counts).
fn first_in_force(rec: &Recorder, fault_at: Option<u64>) -> Option<u64> {
    let since = fault_at.unwrap_or(0);
    rec.history_events()
        .iter()
        .find(|e| e.kind == EventKind::InForce && e.at_us >= since)
        .map(|e| e.at_us)
}

async fn fault_then_recover(
    cfg: &DrillConfig,
    inj: &Injector,
    mgmt: &Mgmt,
    prepared: &Prepared,
    running: &Running,
) -> Disturbance {
    let (rec, label, w) = (&running.rec, &running.label, &running.workload_config);
    tokio::time::sleep(cfg.fault_after).await;
    label.set("fault");
    let fault_at = rec.now_us();
    let disruptions = run_fault(
        cfg,
        inj,
        mgmt,
        prepared.victim.as_ref(),
        &prepared.all_nodes,
        prepared.nodes,
    )
    .await;
    if let Err(e) = &disruptions {
        rec.event(EventKind::Note, format!("fault step failed: {e:#}"));
        // never leave a node hurt, and heal now: the wait for a whole
        // cluster below cannot end well with the fault still in place
        inj.heal_all(|_| {}).await;
    }
    // the heal step began at the last "heal" event (rolling restart: its end)
    let heal_at = rec
        .history_events()
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Heal && e.at_us >= fault_at)
        .map(|e| e.at_us)
        .unwrap_or_else(|| rec.now_us());
    label.set("healing");
    let whole = wait_whole(mgmt, w, prepared.nodes, cfg.heal_timeout).await;
    let whole_at = rec.now_us();
    match &whole {
        Ok(()) => rec.event(
            EventKind::Healed,
            format!(
                "cluster whole {:.1}s after the heal step began",
                (whole_at - heal_at) as f64 / 1e6
            ),
        ),
        Err(why) => rec.event(EventKind::Note, format!("cluster NOT whole: {why}")),
    }
    // keep loading until the planned duration, and at least 3 s after healing
    label.set("load");
    let planned_end = running.facts.load_start_us + cfg.duration.as_micros() as u64;
    let end = planned_end.max(whole_at + 3_000_000);
    let now = rec.now_us();
    if end > now {
        tokio::time::sleep(Duration::from_micros(end - now)).await;
    }
    Disturbance {
        fault_at,
        heal_at,
        whole_at,
        disruptions,
        whole,
    }
}
