//! Phase 5, prove the fault happened: stop the fault witness and turn what
//! it saw, with the fault's own events, into the [`Evidence`] the
//! accountant ([`crate::evidence`]) judges.
//!
//! Guarantees to the next phase: the witness has stopped looking, its
//! failed looks are noted in the history, and the evidence holds the
//! fault's victim, the nodes, the fault, in-force and heal times, whether
//! the VIP moved (lb-crash, when the target can tell) and every sample.

use super::prepare::Prepared;
use super::{DrillConfig, Fault};
use crate::accounting::{Event, RunFacts};
use crate::event::EventKind;
use crate::evidence::Evidence;
use crate::witness::Witness;
use crate::workload::Recorder;

pub(super) async fn fault_evidence(
    cfg: &DrillConfig,
    prepared: &Prepared,
    witness: Witness,
    rec: &Recorder,
    facts: &RunFacts,
    tells_vip_holder: bool,
) -> Evidence {
    let seen = witness.finish().await;
    if seen.look_errors > 0 {
        rec.event(
            EventKind::Note,
            format!(
                "the target's look at the victim failed {} time(s): {}",
                seen.look_errors,
                seen.last_look_error.as_deref().unwrap_or("?")
            ),
        );
    }
    let victim = prepared.victim.as_ref().map(|v| v.name.clone());
    let mut evidence = Evidence::new(cfg.fault, victim);
    evidence.nodes = prepared.all_nodes.iter().map(|n| n.name.clone()).collect();
    evidence.fault_at_us = facts.fault_at_us.unwrap_or(0);
    evidence.heal_at_us = facts.heal_at_us.unwrap_or(0);
    evidence.in_force_us = facts.in_force_at_us;
    let events = rec.history_events();
    let after_fault = |e: &&Event| e.at_us >= evidence.fault_at_us;
    evidence.vip_moved = (cfg.fault == Fault::LbCrash && tells_vip_holder).then(|| {
        events
            .iter()
            .filter(after_fault)
            .any(|e| e.kind == EventKind::VipMove)
    });
    evidence.views = seen.views;
    evidence.probes = seen.probes;
    evidence.leaders = seen.leaders;
    evidence.lb = seen.lb;
    evidence
}
