//! The fault witness: while the drill runs, look at the cluster from every
//! side every few hundred milliseconds and keep what was seen, for the
//! accountant in [`crate::evidence`].
//!
//! It asks, each source on its own: every node's management API for its
//! `/api/nodes` view (a short timeout, so that a frozen node shows up as
//! silent rather than slow), the queue's master/leader, the target's look
//! at the victim's process (and network, for partitions) and, for lb-crash,
//! whether the killed load balancer is alive. Every sample carries when its
//! request began and ended, so the accountant can keep only the looks taken
//! entirely while the fault was in force.

use crate::evidence::{LbSample, LeaderSample, PeerView, ProbeSample};
use crate::mgmt::Mgmt;
use crate::target::Target;
use crate::workload::Recorder;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pause between two looks of one source.
const ROUND_PAUSE: Duration = Duration::from_millis(250);
/// Timeout of one management API request: a node that does not answer
/// within it counts as silent.
pub const LOOK_TIMEOUT: Duration = Duration::from_secs(1);

/// What to look at.
pub struct Plan {
    pub mgmt: Mgmt,
    /// (management URL, full node name behind it).
    pub reporters: Vec<(String, String)>,
    pub target: Arc<dyn Target>,
    /// (full node name, target handle) of the node the fault is aimed at.
    pub victim: Option<(String, String)>,
    /// Ask the target whether the victim is cut off from its peers.
    pub ask_cut: bool,
    /// Ask the target whether the killed load balancer is alive.
    pub watch_lb: bool,
    pub vhost: String,
    pub queue: String,
}

/// Everything the witness saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub views: Vec<PeerView>,
    pub probes: Vec<ProbeSample>,
    pub leaders: Vec<LeaderSample>,
    pub lb: Vec<LbSample>,
    /// Target looks that failed (the command itself failed), with the last error.
    pub look_errors: usize,
    pub last_look_error: Option<String>,
}

/// A running witness; stops when finished or dropped.
pub struct Witness {
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Witness {
    /// One looking task per source (each node's management API, the
    /// master/leader, the target's look, the lb), so that a slow source (a
    /// management API waiting on a frozen peer) never delays the others.
    pub fn start(plan: Plan, rec: Arc<Recorder>) -> Witness {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = CancellationToken::new();
        let plan = Arc::new(plan);
        let mut tasks = Vec::new();
        let ctx = || (plan.clone(), rec.clone(), seen.clone(), stop.clone());
        for i in 0..plan.reporters.len() {
            tasks.push(tokio::spawn(look_at_reporter(ctx(), i)));
        }
        tasks.push(tokio::spawn(look_at_leader(ctx())));
        if plan.victim.is_some() {
            tasks.push(tokio::spawn(look_at_victim(ctx())));
        }
        if plan.watch_lb {
            tasks.push(tokio::spawn(look_at_lb(ctx())));
        }
        Witness { seen, stop, tasks }
    }

    /// Stop looking and hand over everything seen.
    pub async fn finish(mut self) -> Seen {
        self.stop.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Ctx = (
    Arc<Plan>,
    Arc<Recorder>,
    Arc<Mutex<Seen>>,
    CancellationToken,
);

/// Wait `d`, or less when `stop` is cancelled meanwhile: the pause between
/// two rounds of a polling task (the witness's lookers, the drill's
/// watchers), so a stop is seen at once rather than after the sleep.
pub(crate) async fn pause(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// `/api/nodes` of the `i`th management URL, or its silence.
async fn look_at_reporter((plan, rec, seen, stop): Ctx, i: usize) {
    let (url, who) = &plan.reporters[i];
    while !stop.is_cancelled() {
        let begin_us = rec.now_us();
        let answer = plan.mgmt.nodes_from(url).await.ok();
        seen.lock().unwrap().views.push(PeerView {
            begin_us,
            end_us: rec.now_us(),
            reporter: who.clone(),
            answer,
        });
        pause(&stop, ROUND_PAUSE).await;
    }
}

async fn look_at_leader((plan, rec, seen, stop): Ctx) {
    while !stop.is_cancelled() {
        let at_us = rec.now_us();
        if let Ok(q) = plan.mgmt.queue(&plan.vhost, &plan.queue).await {
            if let Some(leader) = q.leader {
                seen.lock()
                    .unwrap()
                    .leaders
                    .push(LeaderSample { at_us, leader });
            }
        }
        pause(&stop, ROUND_PAUSE).await;
    }
}

async fn look_at_victim((plan, rec, seen, stop): Ctx) {
    let Some((name, handle)) = plan.victim.clone() else {
        return;
    };
    while !stop.is_cancelled() {
        let (t, h, cut) = (plan.target.clone(), handle.clone(), plan.ask_cut);
        let begin_us = rec.now_us();
        let r = tokio::task::spawn_blocking(move || t.look(&h, cut)).await;
        let end_us = rec.now_us();
        {
            let mut s = seen.lock().unwrap();
            match r {
                Ok(Ok(l)) => s.probes.push(ProbeSample {
                    begin_us,
                    end_us,
                    node: name.clone(),
                    process: l.process,
                    cut_from_peers: l.cut_from_peers,
                }),
                Ok(Err(e)) => {
                    s.look_errors += 1;
                    s.last_look_error = Some(format!("{e:#}"));
                }
                Err(e) => {
                    s.look_errors += 1;
                    s.last_look_error = Some(e.to_string());
                }
            }
        }
        pause(&stop, ROUND_PAUSE).await;
    }
}

async fn look_at_lb((plan, rec, seen, stop): Ctx) {
    while !stop.is_cancelled() {
        let t = plan.target.clone();
        let begin_us = rec.now_us();
        if let Ok(Some(Ok(alive))) = tokio::task::spawn_blocking(move || t.lb_alive()).await {
            seen.lock().unwrap().lb.push(LbSample {
                begin_us,
                end_us: rec.now_us(),
                alive,
            });
        }
        pause(&stop, ROUND_PAUSE).await;
    }
}
