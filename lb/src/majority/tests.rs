//! Table tests of the exact views from issue 13 and from the frozen and
//! resumed node (docs/health-checks.md, "Why these rules"), and a model test
//! of the rule over generated cluster views.

use super::*;

fn node(i: usize) -> String {
    format!("rabbit{i}@localhost")
}

fn report(i: usize, total: usize, running: &[usize], partitions: &[usize]) -> NodeReport {
    NodeReport {
        node: node(i),
        cluster_name: None,
        running: running.iter().map(|&n| node(n)).collect(),
        partitions: partitions.iter().map(|&n| node(n)).collect(),
        total,
    }
}

/// One server of a table test: its report, how fresh it is, UP or not.
type Row = (Option<NodeReport>, Freshness, bool);

fn verdicts(rows: &[Row]) -> Vec<Verdict> {
    let members: Vec<Member> = rows
        .iter()
        .map(|(r, freshness, up)| Member {
            report: r.as_ref(),
            freshness: *freshness,
            up: *up,
        })
        .collect();
    judge(&members)
}

use Freshness::{Current, Silent, Stale};

fn is_eligible(v: &Verdict) -> bool {
    matches!(v, Verdict::Eligible(_))
}

fn is_cut_off(v: &Verdict) -> bool {
    matches!(v, Verdict::CutOff(_))
}

const ALL: &[usize] = &[1, 2, 3];

#[test]
fn a_healthy_cluster_is_eligible_everywhere() {
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, true),
        (Some(report(2, 3, ALL, &[])), Current, true),
        (Some(report(3, 3, ALL, &[])), Current, true),
    ]);
    assert!(v.iter().all(is_eligible), "{v:?}");
    assert_eq!(
        v[0].reason(),
        "rabbit1@localhost sees 3 of 3 nodes that see each other running and pass their checks: [rabbit1@localhost, rabbit2@localhost, rabbit3@localhost]"
    );
}

/// Issue 13, defect 1: after rabbit1 was frozen past net_ticktime and
/// resumed under `pause_minority`, rabbit2 and rabbit3 list `running
/// [rabbit3, rabbit2]` with `partitions [rabbit1]` for 30 s and more.  On
/// main, rabbit3's check failed ("reports partition with [rabbit1]"), and
/// rabbit2 was then cut off ("claims 2 of 3 nodes running but only 1 pass
/// their own checks"): no server at all.  Both are the majority.
#[test]
fn issue_13_a_partition_entry_naming_the_resumed_node_does_not_refuse_the_majority() {
    // rabbit1 paused itself (pause_minority): its management API refuses.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Stale, false),
        (Some(report(2, 3, &[3, 2], &[1])), Current, true),
        (Some(report(3, 3, &[3, 2], &[1])), Current, true),
    ]);
    assert!(is_eligible(&v[1]) && is_eligible(&v[2]), "{v:?}");
    assert!(matches!(v[0], Verdict::Unjudged(_)), "{v:?}");

    // rabbit1 answers again with its stale "I see everyone" view (its check
    // just passed, it is not UP yet): cut off, whatever it says itself.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, false),
        (Some(report(2, 3, &[3, 2], &[1])), Current, true),
        (Some(report(3, 3, &[3, 2], &[1])), Current, true),
    ]);
    assert!(is_eligible(&v[1]) && is_eligible(&v[2]), "{v:?}");
    assert_eq!(
        v[0],
        Verdict::CutOff("rabbit2@localhost (UP) reports a partition with rabbit1@localhost".into())
    );
}

/// Issue 13: "1.3–3.3 s with no server after the cluster was whole": the
/// management API lists rabbit1 running again before it drops the
/// partition entry.  The majority stays eligible; rabbit1 waits until the
/// entries clear.
#[test]
fn issue_13_lagging_partition_data_after_the_heal_keeps_the_majority_eligible() {
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, true),
        (Some(report(2, 3, ALL, &[1])), Current, true),
        (Some(report(3, 3, ALL, &[1])), Current, true),
    ]);
    assert!(is_eligible(&v[1]) && is_eligible(&v[2]), "{v:?}");
    assert!(is_cut_off(&v[0]), "{v:?}");
    // Once the entries clear, rabbit1 is back.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, true),
        (Some(report(2, 3, ALL, &[])), Current, true),
        (Some(report(3, 3, ALL, &[1])), Current, true),
    ]);
    assert!(v.iter().all(is_eligible), "{v:?}");
}

#[test]
fn a_resumed_node_with_a_stale_view_is_cut_off_by_the_majority() {
    // `ignore` / `autoheal` before healing: rabbit2 and rabbit3 dropped
    // rabbit1 without a partition entry; rabbit1 still sees everyone.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, true),
        (Some(report(2, 3, &[2, 3], &[])), Current, true),
        (Some(report(3, 3, &[2, 3], &[])), Current, true),
    ]);
    assert_eq!(
        v[0],
        Verdict::CutOff("rabbit2@localhost (UP) does not see rabbit1@localhost running".into())
    );
    assert!(is_eligible(&v[1]) && is_eligible(&v[2]), "{v:?}");
}

#[test]
fn ignore_after_connectivity_returns_serves_the_majority_side_only() {
    // Both sides list each other; rabbit1's own check fails (1 of 3 outside
    // a partition), the majority side sees each other.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[2, 3])), Stale, false),
        (Some(report(2, 3, ALL, &[1])), Current, true),
        (Some(report(3, 3, ALL, &[1])), Current, true),
    ]);
    assert!(is_eligible(&v[1]) && is_eligible(&v[2]), "{v:?}");
    // A three-way split has no majority: nobody.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[2, 3])), Current, true),
        (Some(report(2, 3, ALL, &[1, 3])), Current, true),
        (Some(report(3, 3, ALL, &[1, 2])), Current, true),
    ]);
    assert!(v.iter().all(is_cut_off), "{v:?}");
}

#[test]
fn a_crashed_node_leaves_the_survivors_eligible() {
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Stale, false),
        (Some(report(2, 3, &[2, 3], &[])), Current, true),
        (Some(report(3, 3, &[2, 3], &[])), Current, true),
    ]);
    assert!(is_eligible(&v[1]) && is_eligible(&v[2]), "{v:?}");
}

#[test]
fn a_stale_majority_claim_is_not_believed_when_its_peers_are_down() {
    // rabbit1 comes back claiming everyone; rabbit2 and rabbit3 fail their
    // checks (DOWN): nobody confirms it.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, false),
        (Some(report(2, 3, ALL, &[])), Stale, false),
        (Some(report(3, 3, ALL, &[])), Stale, false),
    ]);
    assert!(is_cut_off(&v[0]), "{v:?}");
    assert!(
        v[0].reason()
            .contains("the largest is [rabbit1@localhost] (1 of 3)"),
        "{v:?}"
    );
}

#[test]
fn silent_peers_neither_testify_nor_confirm() {
    // rabbit1 resumed with its stale view while rabbit2 and rabbit3 are
    // silent: their last reports (from before) would confirm it, but a
    // silent server does not testify.  rabbit1 is not UP, so no hold.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, false),
        (Some(report(2, 3, ALL, &[])), Silent, true),
        (Some(report(3, 3, ALL, &[])), Silent, true),
    ]);
    assert!(is_cut_off(&v[0]), "{v:?}");
    assert!(matches!(v[1], Verdict::Unjudged(_)) && matches!(v[2], Verdict::Unjudged(_)));
    // Nor does a silent report deny: rabbit2's (old) view without rabbit1
    // does not cut off rabbit1, which rabbit3 (current) confirms.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, true),
        (Some(report(2, 3, &[2, 3], &[1])), Silent, true),
        (Some(report(3, 3, ALL, &[])), Current, true),
    ]);
    assert!(is_eligible(&v[0]) && is_eligible(&v[2]), "{v:?}");
}

/// The freeze window: rabbit1 is frozen (DOWN), the healthy nodes'
/// management API stalls in turns.  A node in service whose majority only
/// lacks a silent peer's confirmation keeps its verdict: no cut-off, no
/// sessions closed.
#[test]
fn a_transient_gap_in_the_testimony_does_not_cut_off_a_node_in_service() {
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Stale, false),
        (Some(report(2, 3, &[2, 3], &[1])), Current, true),
        (Some(report(3, 3, ALL, &[])), Silent, true),
    ]);
    assert_eq!(
        v[1],
        Verdict::Unjudged(
            "rabbit2@localhost keeps its verdict: its majority awaits news from [rabbit3@localhost]"
                .into()
        )
    );
    // A peer within `fall` (its last check failed, still UP) is the same.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Stale, false),
        (Some(report(2, 3, &[2, 3], &[])), Current, true),
        (Some(report(3, 3, &[2, 3], &[])), Stale, true),
    ]);
    assert!(matches!(v[1], Verdict::Unjudged(_)), "{v:?}");
    // But not once the peer is DOWN: then rabbit2 is alone.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Stale, false),
        (Some(report(2, 3, &[2, 3], &[])), Current, true),
        (Some(report(3, 3, &[2, 3], &[])), Stale, false),
    ]);
    assert!(is_cut_off(&v[1]), "{v:?}");
    // And not when a current peer in service denies it.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, true),
        (Some(report(2, 3, &[2, 3], &[])), Current, true),
        (Some(report(3, 3, ALL, &[])), Silent, true),
    ]);
    assert!(is_cut_off(&v[0]), "{v:?}");
}

#[test]
fn servers_without_a_report_are_left_alone_and_may_hold_a_majority_open() {
    // Start-up: rabbit1 answered first; the others have not been checked.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Current, true),
        (None, Current, true),
        (None, Current, true),
    ]);
    assert!(matches!(v[0], Verdict::Unjudged(_)), "{v:?}");
    assert!(matches!(v[1], Verdict::Unjudged(_)), "{v:?}");
}

#[test]
fn five_nodes_a_majority_of_three_is_enough_and_a_pair_is_not() {
    let maj: &[usize] = &[1, 2, 3];
    let min: &[usize] = &[4, 5];
    let v = verdicts(&[
        (Some(report(1, 5, maj, &[4, 5])), Current, true),
        (Some(report(2, 5, maj, &[4])), Current, true),
        (Some(report(3, 5, maj, &[])), Current, true),
        (Some(report(4, 5, min, &[1, 2, 3])), Current, true),
        (Some(report(5, 5, &[1, 2, 3, 4, 5], &[])), Current, true),
    ]);
    assert!(v[..3].iter().all(is_eligible), "{v:?}");
    assert!(v[3..].iter().all(is_cut_off), "{v:?}");
}

#[test]
fn one_node_per_name_counts() {
    // Two servers for the same node (e.g. two ports) do not make a majority.
    let v = verdicts(&[
        (Some(report(1, 3, &[1, 2], &[])), Current, true),
        (Some(report(1, 3, &[1, 2], &[])), Current, true),
        (Some(report(3, 3, &[3], &[])), Stale, false),
    ]);
    assert!(is_cut_off(&v[0]) && is_cut_off(&v[1]), "{v:?}");
}

mod model;

/// Issue 14, seen on RabbitMQ 4.0: rabbit1 partitioned by iptables under
/// `pause_minority`.  For several seconds before it pauses, its management
/// API stalls (no news) while its AMQP answers, and rabbit2 and rabbit3
/// have already dropped it.  Their current majority denies it: cut off,
/// not held on its silence.
#[test]
fn a_silent_node_that_a_majority_of_witnesses_denies_is_cut_off() {
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Silent, true),
        (Some(report(2, 3, &[2, 3], &[])), Current, true),
        (Some(report(3, 3, &[2, 3], &[])), Current, true),
    ]);
    assert!(is_cut_off(&v[0]), "{v:?}");
    assert_eq!(
        v[0].reason(),
        "no news from rabbit1@localhost's management API, and 2 nodes that see each other running do not see it running: [rabbit2@localhost, rabbit3@localhost]"
    );
    assert!(is_eligible(&v[1]) && is_eligible(&v[2]), "{v:?}");
    // A partition entry is a denial too.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Silent, true),
        (Some(report(2, 3, &[2, 3], &[1])), Current, true),
        (Some(report(3, 3, &[2, 3], &[1])), Current, true),
    ]);
    assert!(is_cut_off(&v[0]), "{v:?}");
}

#[test]
fn a_silent_node_keeps_its_verdict_without_a_denying_majority() {
    // One denier is not a majority: the other peer is silent as well.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Silent, true),
        (Some(report(2, 3, &[2, 3], &[])), Current, true),
        (Some(report(3, 3, ALL, &[])), Silent, true),
    ]);
    assert!(matches!(v[0], Verdict::Unjudged(_)), "{v:?}");
    // The deniers do not see each other: no majority of them.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Silent, true),
        (Some(report(2, 3, &[2], &[])), Current, true),
        (Some(report(3, 3, &[3], &[])), Current, true),
    ]);
    assert!(matches!(v[0], Verdict::Unjudged(_)), "{v:?}");
    // The freeze window: rabbit2 silent, the current rabbit3 sees it
    // running.  No denial, rabbit2 keeps serving.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Stale, false),
        (Some(report(2, 3, ALL, &[])), Silent, true),
        (Some(report(3, 3, &[2, 3], &[1])), Current, true),
    ]);
    assert!(matches!(v[1], Verdict::Unjudged(_)), "{v:?}");
    // A denying witness that is DOWN does not count.
    let v = verdicts(&[
        (Some(report(1, 3, ALL, &[])), Silent, true),
        (Some(report(2, 3, &[2, 3], &[])), Current, true),
        (Some(report(3, 3, &[2, 3], &[])), Current, false),
    ]);
    assert!(matches!(v[0], Verdict::Unjudged(_)), "{v:?}");
}
