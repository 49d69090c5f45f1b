//! Cross-checking the nodes' own cluster views (`rabbitmq` check only).
//!
//! Each `rabbitmq` check asks one node which cluster members *it* sees
//! running, and the node passes when it sees a majority.  That view can be
//! stale: a node frozen (SIGSTOP, VM pause) and then resumed reports every
//! peer as running for a moment, until its own net_ticktime notices that the
//! peers dropped it.  Two checks in that window (`rise = 2`) would route
//! clients into what is about to be a one-node partition.
//!
//! warren-lb checks every node of the cluster, so it can compare views.  A
//! server is *cut off* when
//! 1. another server that is UP (so it saw a majority at its last check)
//!    does not list this server's node as running — the majority has
//!    dropped it, whatever it says itself; or
//! 2. the majority it claims is made of nodes whose own servers are DOWN in
//!    warren-lb, or whose management API is silent ("no news") — the claim
//!    cannot be confirmed by the nodes themselves.
//!
//! A server in a "no news" streak is not judged (it keeps its verdict) and
//! does not testify: its last report predates whatever is going on.
//!
//! Pure: reports in, verdicts out; [`crate::backend`] applies them.

use warren_health::probe::NodeReport;

/// One server as the cross-check sees it.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    /// The node's report from its last passed `rabbitmq` check (None
    /// before the first).
    pub report: Option<&'a NodeReport>,
    /// warren-lb has the server UP.
    pub up: bool,
    /// The report is current: false while the server's management API is
    /// silent ("no news"), when the report predates whatever is going on.
    pub current: bool,
}

/// For each member: `Some(reason)` when it is cut off from the majority.
/// A member whose report is not current gets `None` here; the caller keeps
/// its previous verdict.
pub fn cut_off(members: &[Member]) -> Vec<Option<String>> {
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let report = m.report.filter(|_| m.current)?;
            dropped_by_an_up_peer(members, i, &report.node)
                .or_else(|| unconfirmed_majority(members, report))
        })
        .collect()
}

fn dropped_by_an_up_peer(members: &[Member], me: usize, node: &str) -> Option<String> {
    members.iter().enumerate().find_map(|(j, m)| {
        let peer = m.report?;
        (j != me
            && m.up
            && m.current
            && peer.node != node
            && !peer.running.iter().any(|n| n == node))
        .then(|| format!("{} (UP) does not see {node} running", peer.node))
    })
}

fn unconfirmed_majority(members: &[Member], me: &NodeReport) -> Option<String> {
    // A peer confirms only if it is UP and its management API answers now:
    // a silent peer cannot vouch for anybody's view of the cluster.
    let unconfirming = |n: &str| {
        members
            .iter()
            .any(|m| (!m.up || !m.current) && m.report.is_some_and(|r| r.node == n))
    };
    let confirmed = me
        .running
        .iter()
        .filter(|n| **n == me.node || !unconfirming(n))
        .count();
    (me.running.len() * 2 > me.total && confirmed * 2 <= me.total).then(|| {
        format!(
            "{} claims {} of {} nodes running but only {confirmed} pass their own checks",
            me.node,
            me.running.len(),
            me.total
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, running: &[&str]) -> NodeReport {
        NodeReport {
            node: node.into(),
            cluster_name: None,
            running: running.iter().map(|s| s.to_string()).collect(),
            total: 3,
        }
    }

    /// A server: its node, whether it is UP, what its node sees running.
    type Server<'a> = (&'a str, bool, &'a [&'a str]);

    fn verdicts(servers: &[Server]) -> Vec<Option<String>> {
        let reports: Vec<NodeReport> = servers.iter().map(|(n, _, r)| report(n, r)).collect();
        let members: Vec<Member> = reports
            .iter()
            .zip(servers)
            .map(|(r, s)| Member {
                report: Some(r),
                up: s.1,
                current: true,
            })
            .collect();
        cut_off(&members)
    }

    const ALL: &[&str] = &["r1", "r2", "r3"];

    #[test]
    fn a_healthy_cluster_has_nobody_cut_off() {
        let m: [Server; 3] = [("r1", true, ALL), ("r2", true, ALL), ("r3", true, ALL)];
        assert_eq!(verdicts(&m), vec![None, None, None]);
    }

    #[test]
    fn a_resumed_node_with_a_stale_view_is_cut_off_by_the_majority() {
        // r1 was frozen and resumed: it still sees everyone; r2 and r3 dropped it.
        let m: [Server; 3] = [
            ("r1", true, ALL),
            ("r2", true, &["r2", "r3"]),
            ("r3", true, &["r2", "r3"]),
        ];
        let v = verdicts(&m);
        assert!(
            v[0].as_deref().unwrap().contains("does not see r1 running"),
            "{v:?}"
        );
        assert_eq!(v[1], None);
        assert_eq!(v[2], None);
    }

    #[test]
    fn a_stale_majority_claim_is_not_believed_when_its_peers_fail_their_checks() {
        // r2 and r3 are DOWN here (their management API hangs while the
        // cluster sorts itself out); r1 claims all three running.
        let m: [Server; 3] = [("r1", true, ALL), ("r2", false, ALL), ("r3", false, ALL)];
        let v = verdicts(&m);
        assert!(v[0].as_deref().unwrap().contains("only 1 pass"), "{v:?}");
    }

    #[test]
    fn a_crashed_node_does_not_cut_off_the_survivors() {
        let m: [Server; 3] = [
            ("r1", false, ALL),
            ("r2", true, &["r2", "r3"]),
            ("r3", true, &["r2", "r3"]),
        ];
        let v = verdicts(&m);
        assert!(v[0].is_some(), "the dead node is not with the majority");
        assert_eq!((v[1].clone(), v[2].clone()), (None, None));
    }

    #[test]
    fn one_peer_down_still_leaves_a_confirmed_majority() {
        let m: [Server; 3] = [("r1", true, ALL), ("r2", true, ALL), ("r3", false, ALL)];
        assert_eq!(verdicts(&m), vec![None, None, None]);
    }

    #[test]
    fn a_down_peer_does_not_veto() {
        // r2 is DOWN: its last view (without r1) is not the majority's word.
        let m: [Server; 3] = [
            ("r1", true, ALL),
            ("r2", false, &["r2", "r3"]),
            ("r3", true, ALL),
        ];
        assert_eq!(verdicts(&m)[0], None);
    }

    #[test]
    fn servers_never_checked_successfully_are_left_alone() {
        let (r2, r3) = (report("r2", &["r2", "r3"]), report("r3", &["r2", "r3"]));
        let member = |report| Member {
            report,
            up: true,
            current: true,
        };
        let members = [member(None), member(Some(&r2)), member(Some(&r3))];
        assert_eq!(cut_off(&members), vec![None, None, None]);
    }

    #[test]
    fn a_silent_peer_neither_testifies_nor_confirms_nor_is_judged() {
        // r2's report is from before its management API went silent: it
        // must not veto r1 (rule 1), it cannot confirm r1's claim (rule 2),
        // and it gets no new verdict itself.
        let (r1, r2, r3) = (
            report("r1", ALL),
            report("r2", &["r2", "r3"]),
            report("r3", ALL),
        );
        let members = [
            Member {
                report: Some(&r1),
                up: true,
                current: true,
            },
            Member {
                report: Some(&r2),
                up: true,
                current: false,
            },
            Member {
                report: Some(&r3),
                up: false,
                current: true,
            },
        ];
        let v = cut_off(&members);
        // r1 claims all three, but r2 is silent and r3 DOWN: unconfirmed.
        assert!(v[0].as_deref().unwrap().contains("only 1 pass"), "{v:?}");
        assert_eq!(v[1], None, "a silent server gets no verdict");
        assert_eq!(v[2], None, "r3's claim is confirmed by r1");
        // The same r2, current, vetoes r1 outright.
        let mut current = members;
        current[1].current = true;
        let v = cut_off(&current);
        assert!(
            v[0].as_deref().unwrap().contains("r2 (UP) does not see r1"),
            "{v:?}"
        );
    }
}
