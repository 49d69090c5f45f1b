//! The eligibility rule of the `rabbitmq` check: is a node *with* the
//! cluster's majority?  One pure function, [`judge`]: the nodes' reports
//! in, one [`Verdict`] per server out; [`crate::backend`] applies them.
//!
//! # The rule
//!
//! A node is **eligible** when it belongs to a set of nodes that
//! 1. mutually see each other: each member lists every other member as
//!    running and does *not* name it in its `partitions` list (a partition
//!    entry that names a member of the claimed majority makes that view
//!    inconsistent);
//! 2. is a strict majority of the cluster (of the largest `total` any
//!    report gives); and
//! 3. whose members pass their own checks: the node itself with the check
//!    that produced its report, every other member by being UP in
//!    warren-lb with a *current* report (its management API answered at its
//!    last check).
//!
//! Why each part: two strict majorities always share a node, so two
//! disjoint sides can never both be eligible.  Mutual is what catches a
//! *stale* view: a node frozen (SIGSTOP, VM pause) and resumed still
//! reports every peer running, but the peers, which were never frozen,
//! have dropped it, so the pair is not mutual and the resumed node's claim
//! counts for nothing.  A partition entry naming a node *outside* the set
//! does not matter: under `pause_minority` the majority keeps listing the
//! resumed node in its `partitions` for 30 s and more, and that must not
//! refuse the majority itself.  Only current reports testify: a stale or
//! silent ("no news") report predates whatever is going on, so it can
//! neither vouch for a node nor deny one.
//!
//! # What a server gets
//!
//! * [`Verdict::Eligible`]: such a set was found.
//! * [`Verdict::CutOff`]: none was found.  No new sessions, and its sessions
//!   are closed as on a mark-down (`on_marked_down = "shutdown-sessions"`).
//! * [`Verdict::Unjudged`]: nothing new is known, the server keeps its
//!   previous verdict.  That is the case for a server whose own report is
//!   not current (no report yet, its last check failed, or no news: its
//!   health decides; but a silent server that a majority of witnesses
//!   seeing each other all deny is cut off), and for a server *in service* (UP) whose majority
//!   only lacks confirmation from peers that are UP but silent or stale
//!   at the moment, as long as no current peer denies it.  This hold is
//!   what keeps a transient gap in the testimony (a peer's management API
//!   stalling for a check or two) from cutting off, and closing the
//!   sessions of, a node that stays inside the majority.  It never applies
//!   to a server that is DOWN: a resumed node comes back through a proof.

use std::fmt;

use warren_health::probe::NodeReport;

/// How old a server's report is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// From the server's latest check: its management API answered now.
    Current,
    /// The latest check failed: the report is from an earlier, passed one.
    Stale,
    /// The management API is silent while AMQP answers ("no news", see
    /// [`crate::no_news::NO_NEWS_LIMIT`]).
    Silent,
}

/// One server as the rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    /// The node's report from its last passed `rabbitmq` check (None
    /// before the first).
    pub report: Option<&'a NodeReport>,
    pub freshness: Freshness,
    /// warren-lb has the server UP (its own check passes, with `rise` and
    /// `fall` applied).
    pub up: bool,
}

/// What the rule says of one server; each carries a readable reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Eligible(String),
    CutOff(String),
    /// Keep the previous verdict.
    Unjudged(String),
}

impl Verdict {
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Eligible(r) | Verdict::CutOff(r) | Verdict::Unjudged(r) => r,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Verdict::Eligible(_) => "eligible",
            Verdict::CutOff(_) => "cut off",
            Verdict::Unjudged(_) => "unjudged",
        };
        write!(f, "{word}: {}", self.reason())
    }
}

/// `a`'s report lists `b` as running and not in a partition with it.
fn vouches(a: &NodeReport, b: &str) -> bool {
    a.running.iter().any(|n| n == b) && !a.partitions.iter().any(|n| n == b)
}

fn mutual(a: &NodeReport, b: &NodeReport) -> bool {
    vouches(a, &b.node) && vouches(b, &a.node)
}

/// The rule for every server of one backend (same order as `members`).
pub fn judge(members: &[Member]) -> Vec<Verdict> {
    let size = cluster_size(members);
    (0..members.len())
        .map(|me| judge_one(members, me, size))
        .collect()
}

/// The number of cluster members: the largest `total` any report gives,
/// and at least as many nodes as a current report names (a larger count
/// only ever asks for a larger majority).  What a stale or silent report
/// lists does not count: it does not testify.
fn cluster_size(members: &[Member]) -> usize {
    let totals = members.iter().filter_map(|m| m.report).map(|r| r.total);
    let named = members
        .iter()
        .filter(|m| m.freshness == Freshness::Current)
        .filter_map(|m| m.report)
        .map(|r| {
            let mut all: Vec<&String> = r.running.iter().chain(&r.partitions).collect();
            all.push(&r.node);
            all.sort();
            all.dedup();
            all.len()
        });
    totals.chain(named).max().unwrap_or(0)
}

fn is_witness(m: &Member) -> bool {
    m.up && m.freshness == Freshness::Current && m.report.is_some()
}

fn judge_one(members: &[Member], me: usize, size: usize) -> Verdict {
    let m = &members[me];
    let Some(mine) = m.report else {
        return Verdict::Unjudged("no report yet".into());
    };
    let needed = size / 2 + 1;
    let witnesses: Vec<usize> = (0..members.len())
        .filter(|&j| j != me && is_witness(&members[j]))
        .collect();
    match m.freshness {
        Freshness::Silent => return judge_silent(members, mine, &witnesses, needed),
        Freshness::Stale => return Verdict::Unjudged("its own check fails".into()),
        Freshness::Current => {}
    }

    // Proof: a mutually-seeing set of witnesses around `me`.
    let proven = largest_set(members, me, &witnesses, &|a, b| {
        mutual(report_of(members, a), report_of(members, b))
    });
    if proven.len() >= needed {
        return Verdict::Eligible(format!(
            "{} sees {} of {size} nodes that see each other running and pass their checks: {}",
            mine.node,
            proven.len(),
            names(members, &proven)
        ));
    }

    // A current peer in service that does not vouch for it denies it.
    let denial = witnesses.iter().find_map(|&j| {
        let peer = report_of(members, j);
        (peer.node != mine.node && !vouches(peer, &mine.node)).then(|| {
            if peer.partitions.contains(&mine.node) {
                format!("{} (UP) reports a partition with {}", peer.node, mine.node)
            } else {
                format!("{} (UP) does not see {} running", peer.node, mine.node)
            }
        })
    });
    if let Some(denial) = denial {
        return Verdict::CutOff(denial);
    }

    // The hold: in service, and the majority lacks only confirmations from
    // peers that are UP but not current at the moment.
    if m.up {
        let unconfirmed: Vec<usize> = (0..members.len())
            .filter(|&j| j != me && members[j].up && !is_witness(&members[j]))
            .collect();
        let candidates: Vec<usize> = witnesses.iter().chain(&unconfirmed).copied().collect();
        let possible = largest_set(members, me, &candidates, &|a, b| {
            possibly_mutual(members, a, b)
        });
        if possible.len() >= needed {
            let waiting: Vec<usize> = possible
                .iter()
                .copied()
                .filter(|j| unconfirmed.contains(j))
                .collect();
            return Verdict::Unjudged(format!(
                "{} keeps its verdict: its majority awaits news from {}",
                mine.node,
                names(members, &waiting)
            ));
        }
    }
    Verdict::CutOff(format!(
        "{} is in no set of nodes that see each other running and pass their checks with a majority of {size}: the largest is {} ({} of {size})",
        mine.node,
        names(members, &proven),
        proven.len()
    ))
}

/// A server whose management API is silent while its AMQP answers keeps
/// its verdict ("no news"), unless a majority of witnesses that see each
/// other running all deny it.  Any majority the silent node could be in
/// shares a node with that one, and that node's current report says it is
/// not with them: so it is in none.  This is the partitioned node of
/// RabbitMQ 4.0 in the seconds before `pause_minority` pauses it: its own
/// API stalls (no news), its AMQP still answers, and the majority has
/// already dropped it; without this it kept getting new sessions.
fn judge_silent(
    members: &[Member],
    mine: &NodeReport,
    witnesses: &[usize],
    needed: usize,
) -> Verdict {
    let deniers: Vec<usize> = witnesses
        .iter()
        .copied()
        .filter(|&j| {
            let peer = report_of(members, j);
            peer.node != mine.node && !vouches(peer, &mine.node)
        })
        .collect();
    let mut denying = deniers
        .iter()
        .map(|&seed| {
            largest_set(members, seed, &deniers, &|a, b| {
                a != b && mutual(report_of(members, a), report_of(members, b))
            })
        })
        .max_by_key(Vec::len)
        .unwrap_or_default();
    denying.sort_unstable();
    if denying.len() >= needed {
        return Verdict::CutOff(format!(
            "no news from {}'s management API, and {} nodes that see each other running do not see it running: {}",
            mine.node,
            denying.len(),
            names(members, &denying)
        ));
    }
    Verdict::Unjudged("no news from its management API".into())
}

fn report_of<'a>(members: &[Member<'a>], i: usize) -> &'a NodeReport {
    members[i]
        .report
        .expect("only members with a report are searched")
}

/// `a` and `b` could turn out mutual: only current reports can deny it, a
/// server without a report could be any node.
fn possibly_mutual(members: &[Member], a: usize, b: usize) -> bool {
    let current = |i: usize| {
        members[i]
            .report
            .filter(|_| members[i].freshness == Freshness::Current)
    };
    let name = |i: usize| members[i].report.map(|r| r.node.as_str());
    let denies = |x: usize, y: usize| match (current(x), name(y)) {
        (Some(rx), Some(ny)) => !vouches(rx, ny),
        _ => false,
    };
    !denies(a, b) && !denies(b, a)
}

/// The largest set that holds `me` and members of `candidates`, pairwise
/// `linked`, one server per node name (a clique search, pruned: backends
/// have a handful of servers).
fn largest_set(
    members: &[Member],
    me: usize,
    candidates: &[usize],
    linked: &dyn Fn(usize, usize) -> bool,
) -> Vec<usize> {
    let name = |i: usize| members[i].report.map(|r| r.node.as_str());
    let open: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&j| linked(me, j) && (name(j).is_none() || name(j) != name(me)))
        .collect();
    let mut best = vec![me];
    grow(&mut vec![me], &open, linked, &name, &mut best);
    best
}

fn grow<'a>(
    set: &mut Vec<usize>,
    open: &[usize],
    linked: &dyn Fn(usize, usize) -> bool,
    name: &dyn Fn(usize) -> Option<&'a str>,
    best: &mut Vec<usize>,
) {
    if set.len() > best.len() {
        *best = set.clone();
    }
    if set.len() + open.len() <= best.len() {
        return;
    }
    for (k, &j) in open.iter().enumerate() {
        let rest: Vec<usize> = open[k + 1..]
            .iter()
            .copied()
            .filter(|&i| linked(j, i) && (name(i).is_none() || name(i) != name(j)))
            .collect();
        set.push(j);
        grow(set, &rest, linked, name, best);
        set.pop();
    }
}

fn names(members: &[Member], set: &[usize]) -> String {
    let list: Vec<&str> = set
        .iter()
        .map(|&i| members[i].report.map_or("(no report)", |r| r.node.as_str()))
        .collect();
    format!("[{}]", list.join(", "))
}

#[cfg(test)]
mod tests;
