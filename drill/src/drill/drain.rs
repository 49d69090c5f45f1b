//! Phase 6, drain: stop new publishes, let the publishers retry what is
//! unconfirmed (settle), then consume until the queue has settled
//! ([`drain_step`]), stop the workload and, unless `--keep-queue`, delete
//! the queue.
//!
//! Guarantees to the next phase: the workload has stopped, so the history
//! is final; a confirmed message that is missing now was not just late: it
//! is lost, or, when the deadline passed first, `facts.unsettled` says why
//! the queue never settled and the accountant calls it unsettled instead.

use super::cluster::leader;
use super::watch::PhaseLabel;
use super::DrillConfig;
use crate::accounting::RunFacts;
use crate::event::EventKind;
use crate::mgmt::Mgmt;
use crate::workload::{self, Phase, Recorder, Workload, WorkloadConfig};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Settle and drain; returns the queue's master/leader after the drill.
pub(super) async fn settle_and_drain(
    cfg: &DrillConfig,
    mgmt: &Mgmt,
    rec: &Recorder,
    label: &PhaseLabel,
    wl: Workload,
    facts: &mut RunFacts,
) -> Option<String> {
    let w = &cfg.workload;
    // settle: no new ids, retry the unconfirmed ones
    label.set("settle");
    let _ = wl.phase.send(Phase::Settle);
    let settle_deadline = tokio::time::Instant::now() + cfg.settle_timeout;
    for h in wl.publishers {
        let _ = tokio::time::timeout_at(settle_deadline, h).await;
    }
    rec.event(EventKind::Drain, "publishers done; draining the queue");

    // drain: until the queue has settled (see drain_step)
    label.set("drain");
    if !facts.interrupted {
        facts.unsettled = drain(cfg, mgmt, rec).await;
    }
    let _ = wl.phase.send(Phase::Stop);
    for h in wl.consumers {
        let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
    }
    facts.drained = matches!(workload::queue_depth(w).await, Ok(0));
    let master_after = leader(mgmt, w).await;
    if !cfg.keep_queue {
        let _ = workload::delete_queue(w).await;
    }
    master_after
}

/// Poll every 250 ms until [`drain_step`] calls the queue settled or the
/// drain deadline passes; returns why it did not settle.
async fn drain(cfg: &DrillConfig, mgmt: &Mgmt, rec: &Recorder) -> Option<String> {
    let drain_start = rec.now_us();
    let drain_deadline = tokio::time::Instant::now() + cfg.drain_timeout;
    let mut waited_for = String::new();
    loop {
        let passed = tokio::time::Instant::now() >= drain_deadline;
        let v = drain_view(mgmt, &cfg.workload, rec, drain_start, passed).await;
        match drain_step(&v) {
            DrainStep::Settled => {
                let took = (rec.now_us() - drain_start) as f64 / 1e6;
                rec.event(
                    EventKind::Drain,
                    if took > 5.0 {
                        format!("queue settled after {took:.1} s (last waited for: {waited_for})")
                    } else {
                        format!("queue settled after {took:.1} s")
                    },
                );
                return None;
            }
            DrainStep::Unsettled(why) => {
                rec.event(
                    EventKind::Note,
                    format!("drain deadline passed, queue NOT settled: {why}"),
                );
                return Some(why);
            }
            DrainStep::Wait(why) => waited_for = why,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
