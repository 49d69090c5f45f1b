//! Phase 7, account and report: write the raw history, account for every
//! message id ([`crate::accounting`]), judge the fault's evidence
//! ([`crate::evidence`]) and put the report together.
//!
//! Nothing runs any more when this phase begins (the drain stopped the
//! workload, the watchers are stopped), so it only reads what the earlier
//! phases left: the history, the run's facts and the evidence.

use super::prepare::Prepared;
use super::{DrillConfig, DrillReport, Fault};
use crate::accounting::{self, Event, RunFacts};
use crate::event::EventKind;
use crate::evidence::{self, Evidence};
use crate::target::Target;
use crate::workload::Recorder;
use anyhow::{Context, Result};
use std::sync::atomic::Ordering;

/// What the earlier phases leave for the report.
pub(super) struct Outcome<'a> {
    pub cfg: &'a DrillConfig,
    pub target: &'a dyn Target,
    pub prepared: Prepared,
    pub rec: &'a Recorder,
    pub facts: RunFacts,
    /// Why the fault could not be run (the verdict is then FAIL).
    pub fault_error: Option<String>,
    pub fault_evidence: Evidence,
    pub master_after: Option<String>,
    /// Why warren-lb's switch cannot be timed (None: it can).
    pub lb_error: Option<String>,
}

pub(super) fn report(o: Outcome) -> Result<DrillReport> {
    let Outcome {
        cfg,
        target,
        prepared,
        rec,
        mut facts,
        fault_error,
        fault_evidence,
        master_after,
        lb_error,
    } = o;
    let w = &cfg.workload;
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
        cluster: prepared.cluster,
        nodes: prepared.nodes,
        publishers: w.publishers,
        consumers: w.consumers,
        rate: w.rate,
        unsafe_workload,
        duration_s: end_us as f64 / 1e6,
        master_before: prepared.master_before,
        master_after,
        lb_switch: lb_switch(lb_error, facts.fault_at_us, &history.events),
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

/// The report's "lb switch" line: time from the fault to the first
/// `lb-switch` event after it.
fn lb_switch(lb_error: Option<String>, fault_at_us: Option<u64>, events: &[Event]) -> String {
    match (lb_error, fault_at_us) {
        (Some(e), _) => format!("unavailable ({e})"),
        (None, None) => "no fault".into(),
        (None, Some(fa)) => match events
            .iter()
            .find(|e| e.kind == EventKind::LbSwitch && e.at_us >= fa)
        {
            Some(e) => format!(
                "{:.0} ms after the fault: {}",
                (e.at_us - fa) as f64 / 1000.0,
                e.detail
            ),
            None => "no switch seen (the lb kept routing to the same server)".into(),
        },
    }
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
    let Some(f) = events.iter().find(|e| e.kind == EventKind::Fault) else {
        return "not measured (no fault)".into();
    };
    match events
        .iter()
        .find(|e| e.kind == EventKind::VipMove && e.at_us >= f.at_us)
    {
        Some(e) => format!(
            "{:.0} ms after the lb host was killed: {}",
            (e.at_us - f.at_us) as f64 / 1000.0,
            e.detail
        ),
        None => "the VIP did not move to another host while the killed one was down".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_move_line() {
        let ev = |at_us: u64, kind: EventKind, detail: &str| Event {
            at_us,
            kind,
            detail: detail.into(),
        };
        let events = vec![
            ev(
                1_000_000,
                EventKind::Fault,
                "killed the active load balancer: container lb1",
            ),
            ev(1_850_000, EventKind::VipMove, "VIP held by lb2 (was lb1)"),
        ];
        let s = vip_move(Fault::LbCrash, true, &events);
        assert!(s.starts_with("850 ms after") && s.contains("lb2"), "{s}");
        assert!(vip_move(Fault::LbCrash, false, &events).contains("cannot tell"));
        assert!(vip_move(Fault::LbCrash, true, &events[..1]).contains("did not move"));
        assert_eq!(vip_move(Fault::Crash, true, &events), "no lb-crash fault");
    }

    #[test]
    fn lb_switch_line() {
        let events = vec![
            Event {
                at_us: 2_000_000,
                kind: EventKind::LbSwitch,
                detail: "warren-lb routes to rabbit2 (was rabbit1; DOWN: rabbit1)".into(),
            },
            Event {
                at_us: 3_000_000,
                kind: EventKind::LbSwitch,
                detail: "warren-lb routes to rabbit1 (was rabbit2; DOWN: none)".into(),
            },
        ];
        let s = lb_switch(None, Some(1_500_000), &events);
        assert!(
            s.starts_with("500 ms after the fault") && s.contains("to rabbit2"),
            "{s}"
        );
        assert!(lb_switch(None, Some(3_500_000), &events).starts_with("no switch seen"));
        assert_eq!(lb_switch(None, None, &events), "no fault");
        assert_eq!(
            lb_switch(Some("no answer".into()), Some(0), &events),
            "unavailable (no answer)"
        );
    }
}
