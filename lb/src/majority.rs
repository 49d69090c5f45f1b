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
//!    warren-lb — the claim cannot be confirmed by the nodes themselves.
//!
//! Pure: views in, verdicts out; [`crate::backend`] applies them.

/// What warren-lb knows of one server for the cross-check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    /// The server's RabbitMQ node name, from its last successful check.
    pub node: Option<String>,
    /// Whether warren-lb has the server UP.
    pub up: bool,
    /// The node's own view at its last successful check: nodes it saw
    /// running, and how many cluster members it listed.
    pub view: Option<View>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub running: Vec<String>,
    pub total: usize,
}

/// For each member: `Some(reason)` when it is cut off from the majority.
pub fn cut_off(members: &[Member]) -> Vec<Option<String>> {
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let node = m.node.as_deref()?;
            dropped_by_an_up_peer(members, i, node)
                .or_else(|| unconfirmed_majority(members, m, node))
        })
        .collect()
}

fn dropped_by_an_up_peer(members: &[Member], me: usize, node: &str) -> Option<String> {
    members.iter().enumerate().find_map(|(j, peer)| {
        let view = peer.view.as_ref()?;
        let peer_node = peer.node.as_deref()?;
        (j != me && peer.up && peer_node != node && !view.running.iter().any(|n| n == node))
            .then(|| format!("{peer_node} (UP) does not see {node} running"))
    })
}

fn unconfirmed_majority(members: &[Member], me: &Member, node: &str) -> Option<String> {
    let view = me.view.as_ref()?;
    let down_here = |n: &str| {
        members
            .iter()
            .any(|m| m.node.as_deref() == Some(n) && !m.up)
    };
    let confirmed = view
        .running
        .iter()
        .filter(|n| n.as_str() == node || !down_here(n))
        .count();
    (view.running.len() * 2 > view.total && confirmed * 2 <= view.total).then(|| {
        format!(
            "{node} claims {} of {} nodes running but only {confirmed} pass their own checks",
            view.running.len(),
            view.total
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node: &str, up: bool, running: &[&str]) -> Member {
        Member {
            node: Some(node.into()),
            up,
            view: Some(View {
                running: running.iter().map(|s| s.to_string()).collect(),
                total: 3,
            }),
        }
    }

    const ALL: &[&str] = &["r1", "r2", "r3"];

    #[test]
    fn a_healthy_cluster_has_nobody_cut_off() {
        let m = [
            member("r1", true, ALL),
            member("r2", true, ALL),
            member("r3", true, ALL),
        ];
        assert_eq!(cut_off(&m), vec![None, None, None]);
    }

    #[test]
    fn a_resumed_node_with_a_stale_view_is_cut_off_by_the_majority() {
        // r1 was frozen and resumed: it still sees everyone; r2 and r3 dropped it.
        let m = [
            member("r1", true, ALL),
            member("r2", true, &["r2", "r3"]),
            member("r3", true, &["r2", "r3"]),
        ];
        let v = cut_off(&m);
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
        let m = [
            member("r1", true, ALL),
            member("r2", false, ALL),
            member("r3", false, ALL),
        ];
        let v = cut_off(&m);
        assert!(v[0].as_deref().unwrap().contains("only 1 pass"), "{v:?}");
    }

    #[test]
    fn a_crashed_node_does_not_cut_off_the_survivors() {
        let m = [
            member("r1", false, ALL),
            member("r2", true, &["r2", "r3"]),
            member("r3", true, &["r2", "r3"]),
        ];
        let v = cut_off(&m);
        assert!(v[0].is_some(), "the dead node is not with the majority");
        assert_eq!((v[1].clone(), v[2].clone()), (None, None));
    }

    #[test]
    fn one_peer_down_still_leaves_a_confirmed_majority() {
        let m = [
            member("r1", true, ALL),
            member("r2", true, ALL),
            member("r3", false, ALL),
        ];
        assert_eq!(cut_off(&m), vec![None, None, None]);
    }

    #[test]
    fn a_down_peer_does_not_veto() {
        // r2 is DOWN: its last view (without r1) is not the majority's word.
        let m = [
            member("r1", true, ALL),
            member("r2", false, &["r2", "r3"]),
            member("r3", true, ALL),
        ];
        assert_eq!(cut_off(&m)[0], None);
    }

    #[test]
    fn servers_never_checked_successfully_are_left_alone() {
        let m = [
            Member::default(),
            member("r2", true, &["r2", "r3"]),
            member("r3", true, &["r2", "r3"]),
        ];
        assert_eq!(cut_off(&m), vec![None, None, None]);
    }
}
