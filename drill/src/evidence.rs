//! The fault accountant: did the fault take effect? Pure: no IO, no clocks.
//!
//! A drill proves something only when its fault really hurt the node it
//! names. A target that maps the queue's master to the wrong process, a
//! command that "succeeds" without effect, or a freeze shorter than the
//! sampling can all leave a healthy cluster behind, and the message
//! accounting of such a drill comes out clean: PASS for a failover that
//! never happened. So, before any verdict, [`judge`] looks at what was
//! *observed* while the fault was in force (the surviving nodes'
//! management APIs, the target's look at the victim's process, the queue's
//! master/leader, the load balancer and the VIP) and decides whether the
//! evidence the fault calls for is there. When it is not, the verdict is
//! INVALID: neither PASS nor FAIL, the drill tested nothing.
//!
//! What each fault needs (docs/drills.md, "Did the fault happen?"):
//! - crash / stop: the victim seen down (not running per another node, or
//!   its process gone) during the fault, and the queue's master/leader seen
//!   on another node afterwards;
//! - freeze: the victim frozen (process stopped, or its management API
//!   silent) in every look taken while the freeze was in force, at least one;
//! - partition: the victim cut off from its peers in every look the target
//!   took while the cut was in force (at least one), or, when the target
//!   cannot look, the cut seen through the management API;
//! - lb-crash: the killed load balancer seen dead, and the VIP on another
//!   host when the target can see the VIP;
//! - rolling-restart: every node of the cluster seen down by another node.

use crate::accounting::{Accounting, Verdict};
use crate::drill::Fault;
use crate::mgmt::NodeInfo;
use serde::{Deserialize, Serialize};

/// A node's process as the target saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    Running,
    /// Stopped (SIGSTOP, `docker pause`): alive but not scheduled.
    Frozen,
    Gone,
}

/// One node's management API answer to `/api/nodes`, or its silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    /// When the request was sent and when it ended (µs since the drill began).
    pub begin_us: u64,
    pub end_us: u64,
    /// Full node name of the node behind the URL (its URL if it never said).
    pub reporter: String,
    /// None: no answer within the probe timeout.
    pub answer: Option<Vec<NodeInfo>>,
}

/// One look of the target at a node's process and network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSample {
    pub begin_us: u64,
    pub end_us: u64,
    /// Full node name.
    pub node: String,
    /// None: the target cannot tell.
    pub process: Option<ProcessState>,
    /// Whether the node can reach none of its peers (None: not looked at).
    pub cut_from_peers: Option<bool>,
}

/// One look at the killed load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbSample {
    pub begin_us: u64,
    pub end_us: u64,
    pub alive: bool,
}

/// The queue's master/leader as the management API named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderSample {
    pub at_us: u64,
    pub leader: String,
}

/// Everything observed about one fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub fault: Fault,
    /// Full node name of the node the fault was aimed at (the master/leader).
    pub victim: Option<String>,
    /// The cluster's nodes (full names), for rolling-restart.
    pub nodes: Vec<String>,
    /// The fault command began / finished (None: it failed) / the heal step began.
    pub fault_at_us: u64,
    pub in_force_us: Option<u64>,
    pub heal_at_us: u64,
    pub views: Vec<PeerView>,
    pub probes: Vec<ProbeSample>,
    pub leaders: Vec<LeaderSample>,
    pub lb: Vec<LbSample>,
    /// lb-crash: Some(true) the VIP moved to another host, Some(false) it did
    /// not, None the target cannot see the VIP.
    pub vip_moved: Option<bool>,
}

/// The accountant's finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEffect {
    pub took_effect: bool,
    /// What the fault needed to be seen.
    pub expected: String,
    /// What was seen.
    pub seen: String,
    /// Nodes some other node reported not running during the fault (or
    /// whose process the target saw gone): where the fault actually landed.
    pub seen_down: Vec<String>,
}

impl Evidence {
    /// An empty record for `fault` on `victim`.
    pub fn new(fault: Fault, victim: Option<String>) -> Evidence {
        Evidence {
            fault,
            victim,
            nodes: Vec::new(),
            fault_at_us: 0,
            in_force_us: None,
            heal_at_us: 0,
            views: Vec::new(),
            probes: Vec::new(),
            leaders: Vec::new(),
            lb: Vec::new(),
            vip_moved: None,
        }
    }
}

/// A look that began and ended inside [from, to].
fn inside(begin: u64, end: u64, from: u64, to: u64) -> bool {
    begin >= from && end <= to && begin <= end
}

/// Views of other nodes than `node` that answered inside [from, to].
fn others_views<'a>(
    e: &'a Evidence,
    node: &'a str,
    from: u64,
    to: u64,
) -> impl Iterator<Item = (&'a PeerView, &'a [NodeInfo])> + 'a {
    e.views
        .iter()
        .filter(move |v| v.reporter != node && inside(v.begin_us, v.end_us, from, to))
        .filter_map(|v| v.answer.as_deref().map(|a| (v, a)))
}

/// Another node listed `node` as not running inside [from, to].
fn reported_down(e: &Evidence, node: &str, from: u64, to: u64) -> bool {
    others_views(e, node, from, to).any(|(_, a)| a.iter().any(|n| n.name == node && !n.running))
}

fn probes_of<'a>(
    e: &'a Evidence,
    node: &'a str,
    from: u64,
    to: u64,
) -> impl Iterator<Item = &'a ProbeSample> + 'a {
    e.probes
        .iter()
        .filter(move |p| p.node == node && inside(p.begin_us, p.end_us, from, to))
}

fn process_gone(e: &Evidence, node: &str, from: u64, to: u64) -> bool {
    probes_of(e, node, from, to).any(|p| p.process == Some(ProcessState::Gone))
}

/// Nodes seen down inside [from, to] by another node or by the target.
fn seen_down(e: &Evidence, from: u64, to: u64) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in &e.views {
        let Some(a) = &v.answer else { continue };
        if !inside(v.begin_us, v.end_us, from, to) {
            continue;
        }
        for n in a {
            if !n.running && n.name != v.reporter && !out.contains(&n.name) {
                out.push(n.name.clone());
            }
        }
    }
    for p in &e.probes {
        if p.process == Some(ProcessState::Gone)
            && inside(p.begin_us, p.end_us, from, to)
            && !out.contains(&p.node)
        {
            out.push(p.node.clone());
        }
    }
    out.sort();
    out
}

fn count_word(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// "running in 4 of 4 answers of other nodes; process running in 3 looks".
fn describe_node(e: &Evidence, node: &str, from: u64, to: u64) -> String {
    let views: Vec<&[NodeInfo]> = others_views(e, node, from, to).map(|(_, a)| a).collect();
    let down = views
        .iter()
        .filter(|a| a.iter().any(|n| n.name == node && !n.running))
        .count();
    let mut s = format!(
        "not running in {down} of {} of other nodes",
        count_word(views.len(), "answer")
    );
    let procs: Vec<ProcessState> = probes_of(e, node, from, to)
        .filter_map(|p| p.process)
        .collect();
    if !procs.is_empty() {
        let word = |st: ProcessState| match st {
            ProcessState::Running => "running",
            ProcessState::Frozen => "frozen",
            ProcessState::Gone => "gone",
        };
        let mut parts: Vec<String> = Vec::new();
        for st in [
            ProcessState::Running,
            ProcessState::Frozen,
            ProcessState::Gone,
        ] {
            let n = procs.iter().filter(|p| **p == st).count();
            if n > 0 {
                parts.push(format!("{} {n}", word(st)));
            }
        }
        s += &format!(
            "; process in {}: {}",
            count_word(procs.len(), "look"),
            parts.join(", ")
        );
    }
    s
}

fn leaders_after(e: &Evidence, from: u64) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for l in e.leaders.iter().filter(|l| l.at_us >= from) {
        if !out.contains(&l.leader.as_str()) {
            out.push(&l.leader);
        }
    }
    out
}

/// Crash and stop: down, and the master/leader moved off the victim.
fn judge_down(e: &Evidence, victim: &str, what: &str) -> (bool, String, String) {
    let (from, to) = (e.fault_at_us, e.heal_at_us);
    let down = reported_down(e, victim, from, to) || process_gone(e, victim, from, to);
    let leaders = leaders_after(e, from);
    let moved = leaders.iter().any(|l| *l != victim);
    let expected = format!(
        "{victim} {what}: seen not running by another node or its process gone during the fault, and the queue's master/leader on another node afterwards"
    );
    let seen = format!(
        "{victim}: {}; master/leader after the fault: {}",
        describe_node(e, victim, from, to),
        if leaders.is_empty() {
            "never seen".to_string()
        } else {
            leaders.join(", ")
        }
    );
    (down && moved, expected, seen)
}

/// Freeze: every look while in force says frozen (process stopped, or the
/// victim's own management API silent), at least one look.
fn judge_freeze(e: &Evidence, victim: &str) -> (bool, String, String) {
    let expected = format!(
        "{victim} frozen (process stopped, or its management API silent) in every look taken while the freeze was in force, at least one"
    );
    let Some(from) = e.in_force_us else {
        return (false, expected, "the freeze command did not finish".into());
    };
    let to = e.heal_at_us;
    let mut frozen = 0;
    let mut not_frozen: Vec<String> = Vec::new();
    for p in probes_of(e, victim, from, to) {
        match p.process {
            Some(ProcessState::Frozen) => frozen += 1,
            Some(ProcessState::Running) => not_frozen.push("process running".into()),
            Some(ProcessState::Gone) => not_frozen.push("process gone".into()),
            None => {}
        }
    }
    for v in e
        .views
        .iter()
        .filter(|v| v.reporter == victim && inside(v.begin_us, v.end_us, from, to))
    {
        match v.answer {
            None => frozen += 1,
            Some(_) => not_frozen.push("its management API answered".into()),
        }
    }
    not_frozen.dedup();
    let seen = format!(
        "{victim}: frozen in {}, not frozen in {}{}",
        count_word(frozen, "look"),
        count_word(not_frozen.len(), "look"),
        if not_frozen.is_empty() {
            String::new()
        } else {
            format!(" ({})", not_frozen.join(", "))
        }
    );
    (frozen > 0 && not_frozen.is_empty(), expected, seen)
}

/// Partition: the target's looks (all cut, at least one), or without them
/// the management API showing the cut.
fn judge_partition(e: &Evidence, victim: &str) -> (bool, String, String) {
    let expected = format!(
        "{victim} cut off from its peers in every look the target took while the cut was in force (at least one), or the cut seen through the management API"
    );
    let Some(from) = e.in_force_us else {
        return (
            false,
            expected,
            "the partition command did not finish".into(),
        );
    };
    let to = e.heal_at_us;
    let looks: Vec<bool> = probes_of(e, victim, from, to)
        .filter_map(|p| p.cut_from_peers)
        .collect();
    let cut_looks = looks.iter().filter(|c| **c).count();
    let via_api = reported_down(e, victim, from, to)
        || others_views(e, victim, from, to).any(|(_, a)| {
            a.iter().any(|n| {
                n.partitions.iter().any(|p| p == victim)
                    || n.name == victim && !n.partitions.is_empty()
            })
        })
        || e.views.iter().any(|v| {
            v.reporter == victim
                && inside(v.begin_us, v.end_us, from, to)
                && v.answer.as_ref().is_some_and(|a| {
                    a.iter()
                        .any(|n| (n.name != victim && !n.running) || !n.partitions.is_empty())
                })
        });
    let took = if looks.is_empty() {
        via_api
    } else {
        cut_looks == looks.len()
    };
    let seen = format!(
        "{victim}: cut off in {cut_looks} of {} by the target; {} through the management API",
        count_word(looks.len(), "look"),
        if via_api { "cut seen" } else { "no cut seen" }
    );
    (took, expected, seen)
}

fn judge_lb(e: &Evidence) -> (bool, String, String) {
    let (from, to) = (e.fault_at_us, e.heal_at_us);
    let looks: Vec<&LbSample> =
        e.lb.iter()
            .filter(|l| inside(l.begin_us, l.end_us, from, to))
            .collect();
    let dead = looks.iter().filter(|l| !l.alive).count();
    let vip_ok = e.vip_moved != Some(false);
    let expected = match e.vip_moved {
        None => {
            "the killed load balancer seen dead during the fault (the target cannot see the VIP)"
        }
        Some(_) => {
            "the killed load balancer seen dead during the fault, and the VIP on another host"
        }
    }
    .to_string();
    let seen = format!(
        "load balancer dead in {dead} of {}{}",
        count_word(looks.len(), "look"),
        match e.vip_moved {
            None => String::new(),
            Some(true) => "; the VIP moved".into(),
            Some(false) => "; the VIP did not move".into(),
        }
    );
    (dead > 0 && vip_ok, expected, seen)
}

fn judge_rolling(e: &Evidence) -> (bool, String, String) {
    let (from, to) = (e.fault_at_us, e.heal_at_us);
    let missed: Vec<&str> = e
        .nodes
        .iter()
        .filter(|n| !(reported_down(e, n, from, to) || process_gone(e, n, from, to)))
        .map(String::as_str)
        .collect();
    let expected = format!(
        "every node ({}) seen not running by another node during the rolling restart",
        e.nodes.join(", ")
    );
    let seen = if e.nodes.is_empty() {
        "no nodes known".into()
    } else if missed.is_empty() {
        "every node seen down".into()
    } else {
        format!("never seen down: {}", missed.join(", "))
    };
    (!e.nodes.is_empty() && missed.is_empty(), expected, seen)
}

/// Did the fault take effect? See the module doc for the rules.
pub fn judge(e: &Evidence) -> FaultEffect {
    let seen_down = seen_down(e, e.fault_at_us, e.heal_at_us);
    let node_fault = |f: fn(&Evidence, &str) -> (bool, String, String)| match &e.victim {
        Some(v) => f(e, v),
        None => (
            false,
            "a victim node (the queue's master/leader)".into(),
            "no victim was named".into(),
        ),
    };
    let (took_effect, expected, seen) = match e.fault {
        Fault::None => (true, "no fault".into(), "no fault injected".into()),
        Fault::Crash => node_fault(|e, v| judge_down(e, v, "crashed")),
        Fault::Stop => node_fault(|e, v| judge_down(e, v, "stopped")),
        Fault::Freeze => node_fault(judge_freeze),
        Fault::Partition => node_fault(judge_partition),
        Fault::LbCrash => judge_lb(e),
        Fault::RollingRestart => judge_rolling(e),
    };
    let seen = if seen_down.is_empty() || matches!(e.fault, Fault::None | Fault::LbCrash) {
        seen
    } else {
        format!("{seen}; nodes seen down: {}", seen_down.join(", "))
    };
    FaultEffect {
        took_effect,
        expected,
        seen,
        seen_down,
    }
}

/// The verdict once the fault's effect is known. A drill that would PASS
/// but whose fault did not take effect is INVALID; a FAIL stays a FAIL (a
/// confirmed message lost is a loss whatever hit the cluster), with the
/// missed fault added to its reasons.
pub fn settle_verdict(acc: &mut Accounting, effect: &FaultEffect) {
    if effect.took_effect {
        return;
    }
    acc.reasons.push(format!(
        "the fault did not take effect: expected {}; seen {}",
        effect.expected, effect.seen
    ));
    if acc.verdict == Verdict::Pass {
        acc.verdict = Verdict::Invalid;
    }
}

#[cfg(test)]
mod tests;
