//! The fault witness: while the drill runs, look at the cluster from every
//! side every few hundred milliseconds and keep what was seen, for the
//! accountant in [`crate::evidence`].
//!
//! Each round asks, at the same time: every node's management API for its
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Pause between two rounds of looks.
const ROUND_PAUSE: Duration = Duration::from_millis(300);
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
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Witness {
    pub fn start(plan: Plan, rec: Arc<Recorder>) -> Witness {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(watch(plan, rec, seen.clone(), stop.clone()));
        Witness {
            seen,
            stop,
            task: Some(task),
        }
    }

    /// What was seen so far (the witness keeps looking).
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Stop looking and hand over everything seen.
    pub async fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.seen()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn watch(plan: Plan, rec: Arc<Recorder>, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let plan = Arc::new(plan);
    while !stop.load(Ordering::Relaxed) {
        let views = futures_util::future::join_all(plan.reporters.iter().map(|(url, who)| {
            let (plan, rec) = (plan.clone(), rec.clone());
            async move {
                let begin_us = rec.now_us();
                let answer = plan.mgmt.nodes_from(url).await.ok();
                PeerView {
                    begin_us,
                    end_us: rec.now_us(),
                    reporter: who.clone(),
                    answer,
                }
            }
        }));
        let leader = async {
            let at_us = rec.now_us();
            let q = plan.mgmt.queue(&plan.vhost, &plan.queue).await.ok()?;
            Some(LeaderSample {
                at_us,
                leader: q.leader?,
            })
        };
        let look = async {
            let (name, handle) = plan.victim.clone()?;
            let (t, cut) = (plan.target.clone(), plan.ask_cut);
            let begin_us = rec.now_us();
            let r = tokio::task::spawn_blocking(move || t.look(&handle, cut)).await;
            Some(match r {
                Ok(Ok(l)) => Ok(ProbeSample {
                    begin_us,
                    end_us: rec.now_us(),
                    node: name,
                    process: l.process,
                    cut_from_peers: l.cut_from_peers,
                }),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(e) => Err(e.to_string()),
            })
        };
        let lb = async {
            if !plan.watch_lb {
                return None;
            }
            let t = plan.target.clone();
            let begin_us = rec.now_us();
            match tokio::task::spawn_blocking(move || t.lb_alive()).await {
                Ok(Some(Ok(alive))) => Some(LbSample {
                    begin_us,
                    end_us: rec.now_us(),
                    alive,
                }),
                _ => None,
            }
        };
        let (views, leader, look, lb) = tokio::join!(views, leader, look, lb);
        {
            let mut s = seen.lock().unwrap();
            s.views.extend(views);
            s.leaders.extend(leader);
            match look {
                Some(Ok(p)) => s.probes.push(p),
                Some(Err(e)) => {
                    s.look_errors += 1;
                    s.last_look_error = Some(e);
                }
                None => {}
            }
            s.lb.extend(lb);
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}
