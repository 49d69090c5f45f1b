//! Phase 3, inject the fault: hurt the victim (or the active load
//! balancer, or every node in turn), hold the fault for `--fault-duration`,
//! heal it.
//!
//! Guarantees to the next phase: when [`run_fault`] returns, the `fault`,
//! `in-force` and `heal` events of what it did are recorded. On success
//! every fault it injected is healed again; on an error the heals not done
//! yet are still on the [`Injector`]'s stack, and whoever handles the error
//! calls [`Injector::heal_all`], so a drill never leaves a node hurt. The
//! same stack is what Ctrl-C heals.

use super::cluster::{wait_whole, NodeRef};
use super::{DrillConfig, Fault};
use crate::event::EventKind;
use crate::mgmt::Mgmt;
use crate::target::{self, Action, Target};
use crate::workload::Recorder;
use anyhow::{bail, Context, Result};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to undo one injected fault.
enum Heal {
    Act(Action, NodeRef),
    LbRestore,
}

/// Performs the target's actions and records them; keeps the heals of the
/// faults injected and not healed yet, to undo them in reverse.
pub(super) struct Injector {
    target: Arc<dyn Target>,
    rec: Arc<Recorder>,
    pending: Mutex<Vec<Heal>>,
}

impl Injector {
    pub fn new(target: Arc<dyn Target>, rec: Arc<Recorder>) -> Injector {
        Injector {
            target,
            rec,
            pending: Mutex::default(),
        }
    }

    async fn act(&self, a: Action, node: &NodeRef) -> Result<()> {
        let t = self.target.clone();
        let h = node.handle.clone();
        let label = node.label();
        self.rec
            .event(a.event_kind(), format!("{} node {label}", a.word()));
        let res = tokio::task::spawn_blocking(move || t.act(a, &h)).await?;
        if let Err(e) = &res {
            self.rec.event(
                EventKind::Note,
                format!("{} node {label} failed: {e:#}", a.word()),
            );
        }
        res
    }

    /// Inject `a` on `node` and remember how to undo it.
    async fn inject(&self, a: Action, undo: Action, node: &NodeRef) -> Result<()> {
        self.pending
            .lock()
            .unwrap()
            .push(Heal::Act(undo, node.clone()));
        self.act(a, node).await?;
        self.rec.event(
            EventKind::InForce,
            format!("{} of node {} in force", a.word(), node.name),
        );
        Ok(())
    }

    /// Undo the fault injected last (nothing when none is pending).
    async fn undo_last(&self) -> Result<()> {
        let h = self.pending.lock().unwrap().pop();
        match h {
            Some(Heal::Act(a, n)) => self.act(a, &n).await,
            Some(Heal::LbRestore) => {
                let t = self.target.clone();
                self.rec.event(EventKind::Heal, "restore load balancer");
                tokio::task::spawn_blocking(move || t.lb_restore()).await?
            }
            None => Ok(()),
        }
    }

    /// Undo every pending fault, last first; a heal step that fails is
    /// handed to `failed` and the others are still tried.
    pub async fn heal_all(&self, mut failed: impl FnMut(anyhow::Error)) {
        while !self.pending.lock().unwrap().is_empty() {
            if let Err(e) = self.undo_last().await {
                failed(e);
            }
        }
    }
}

/// Run the fault on `victim` (rolling restart: on every node of `all`, in
/// order); returns the number of disruptions.
pub(super) async fn run_fault(
    cfg: &DrillConfig,
    inj: &Injector,
    mgmt: &Mgmt,
    victim: Option<&NodeRef>,
    all: &[NodeRef],
    nodes: usize,
) -> Result<u32> {
    let d = cfg.fault_duration;
    let victim = || victim.context("this fault needs a victim node");
    let label = || victim().map(NodeRef::label);
    // a fault on the victim: what is done, what undoes it, and the lines
    // the history gets for the fault and for its heal step
    let (action, undo, fault_line, heal_line) = match cfg.fault {
        Fault::None => return Ok(0),
        Fault::LbCrash => return crash_lb(inj, d).await,
        Fault::RollingRestart => return rolling_restart(cfg, inj, mgmt, all, nodes).await,
        Fault::Crash => {
            let m = label()?;
            (
                Action::Kill,
                Action::Start,
                format!("crash (SIGKILL) node {m}"),
                format!("restart node {m}"),
            )
        }
        Fault::Stop => {
            let m = label()?;
            (
                Action::Stop,
                Action::Start,
                format!("graceful stop of node {m}"),
                format!("start node {m}"),
            )
        }
        Fault::Freeze => {
            let m = label()?;
            (
                Action::Freeze,
                Action::Thaw,
                format!("freeze (SIGSTOP) node {m} for {d:?}"),
                format!("thaw (SIGCONT) node {m}"),
            )
        }
        Fault::Partition => {
            let m = label()?;
            (
                Action::Partition,
                Action::Heal,
                format!("partition node {m} from its peers for {d:?}"),
                format!("heal partition of node {m}"),
            )
        }
    };
    inj.rec.event(EventKind::Fault, fault_line);
    inj.inject(action, undo, victim()?).await?;
    tokio::time::sleep(d).await;
    inj.rec.event(EventKind::Heal, heal_line);
    inj.undo_last().await?;
    Ok(1)
}

/// Kill the active load balancer, hold for `d` (timing the VIP's move),
/// restore it.
async fn crash_lb(inj: &Injector, d: Duration) -> Result<u32> {
    inj.pending.lock().unwrap().push(Heal::LbRestore);
    let t = inj.target.clone();
    let what = tokio::task::spawn_blocking(move || t.lb_kill()).await??;
    inj.rec.event(
        EventKind::Fault,
        format!("killed the active load balancer: {what}"),
    );
    inj.rec.event(
        EventKind::InForce,
        format!("kill of the load balancer {what} in force"),
    );
    let vip_watch = watch_vip_move(inj, d);
    tokio::time::sleep(d).await;
    if let Some(h) = vip_watch {
        let _ = h.await;
    }
    inj.undo_last().await?;
    Ok(1)
}

/// Stop and start every node of `all` in turn, waiting for a whole cluster
/// after each.
async fn rolling_restart(
    cfg: &DrillConfig,
    inj: &Injector,
    mgmt: &Mgmt,
    all: &[NodeRef],
    nodes: usize,
) -> Result<u32> {
    let names: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
    inj.rec.event(
        EventKind::Fault,
        format!("rolling restart of nodes {}", names.join(",")),
    );
    for n in all {
        let label = n.label();
        inj.rec
            .event(EventKind::Note, format!("restart node {label}"));
        inj.inject(Action::Stop, Action::Start, n).await?;
        inj.undo_last().await?;
        if let Err(why) = wait_whole(mgmt, &cfg.workload, nodes, cfg.heal_timeout).await {
            bail!("after restarting node {label} the cluster did not become whole: {why}");
        }
        inj.rec
            .event(EventKind::Note, format!("node {label} back, cluster whole"));
    }
    inj.rec.event(EventKind::Heal, "rolling restart done");
    Ok(all.len() as u32)
}

/// lb-crash: time the VIP's move while the killed host is down (for at
/// most `within`), when the target can tell who holds it.
fn watch_vip_move(inj: &Injector, within: Duration) -> Option<tokio::task::JoinHandle<()>> {
    inj.target.tells_vip_holder().then(|| {
        let (t, rec) = (inj.target.clone(), inj.rec.clone());
        tokio::task::spawn_blocking(move || {
            let was = t.killed_lb_name();
            match target::wait_vip_move(
                t.as_ref(),
                was.as_deref(),
                within,
                Duration::from_millis(100),
            ) {
                Some(h) => rec.event(
                    EventKind::VipMove,
                    format!(
                        "VIP held by {h} (was {})",
                        was.as_deref().unwrap_or("the killed host")
                    ),
                ),
                None => rec.event(
                    EventKind::Note,
                    format!("the VIP did not move to another host within {within:?}"),
                ),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Scripted;

    fn injector(failing: Vec<Action>) -> (Injector, Arc<Scripted>) {
        let target = Arc::new(Scripted {
            failing,
            ..Default::default()
        });
        (Injector::new(target.clone(), Recorder::new()), target)
    }

    fn node() -> NodeRef {
        NodeRef {
            name: "rabbit@a".into(),
            handle: "1".into(),
        }
    }

    fn kinds(inj: &Injector) -> Vec<EventKind> {
        inj.rec.history_events().iter().map(|e| e.kind).collect()
    }

    #[tokio::test]
    async fn an_injected_fault_is_in_force_and_heal_all_undoes_it() {
        let (inj, target) = injector(vec![]);
        inj.inject(Action::Kill, Action::Start, &node())
            .await
            .unwrap();
        inj.heal_all(|e| panic!("no heal step fails here: {e:#}"))
            .await;
        assert_eq!(*target.done.lock().unwrap(), [Action::Kill, Action::Start]);
        assert_eq!(
            kinds(&inj),
            [EventKind::Kill, EventKind::InForce, EventKind::Start]
        );
        // nothing is pending any more: a second heal does nothing
        inj.heal_all(|_| {}).await;
        assert_eq!(target.done.lock().unwrap().len(), 2);
    }

    /// A fault command that fails may still have half worked: it is not in
    /// force, but its undo is still run.
    #[tokio::test]
    async fn a_failed_fault_is_not_in_force_and_is_still_undone() {
        let (inj, target) = injector(vec![Action::Freeze]);
        let e = inj
            .inject(Action::Freeze, Action::Thaw, &node())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("freeze refused"), "{e:#}");
        assert_eq!(kinds(&inj), [EventKind::Freeze, EventKind::Note]);
        inj.heal_all(|_| {}).await;
        assert_eq!(*target.done.lock().unwrap(), [Action::Freeze, Action::Thaw]);
    }

    #[tokio::test]
    async fn heal_all_goes_on_after_a_failed_heal_step_last_fault_first() {
        let (inj, target) = injector(vec![Action::Heal]);
        inj.inject(Action::Stop, Action::Start, &node())
            .await
            .unwrap();
        inj.inject(Action::Partition, Action::Heal, &node())
            .await
            .unwrap();
        let mut failed = Vec::new();
        inj.heal_all(|e| failed.push(e.to_string())).await;
        assert_eq!(failed, ["heal refused"]);
        assert_eq!(
            *target.done.lock().unwrap(),
            [Action::Stop, Action::Partition, Action::Heal, Action::Start]
        );
    }
}
