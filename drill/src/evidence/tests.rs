use super::*;
use proptest::prelude::*;

const FAULT: u64 = 1_000_000;
const IN_FORCE: u64 = 1_500_000;
const HEAL: u64 = 5_000_000;

fn name(i: usize) -> String {
    format!("rabbit{}@localhost", i + 1)
}

/// A view by node `by` listing nodes 1..3 with `running[i]`.
fn view(at: u64, by: usize, running: [bool; 3]) -> PeerView {
    PeerView {
        begin_us: at,
        end_us: at + 50_000,
        reporter: name(by),
        answer: Some(
            (0..3)
                .map(|i| NodeInfo {
                    name: name(i),
                    running: running[i],
                    partitions: vec![],
                })
                .collect(),
        ),
    }
}

fn silent(at: u64, by: usize) -> PeerView {
    PeerView {
        begin_us: at,
        end_us: at + 1_000_000,
        reporter: name(by),
        answer: None,
    }
}

fn probe(at: u64, node: usize, process: Option<ProcessState>, cut: Option<bool>) -> ProbeSample {
    ProbeSample {
        begin_us: at,
        end_us: at + 20_000,
        node: name(node),
        process,
        cut_from_peers: cut,
    }
}

fn leader(at: u64, node: usize) -> LeaderSample {
    LeaderSample {
        at_us: at,
        leader: name(node),
    }
}

fn evidence(fault: Fault) -> Evidence {
    let mut e = Evidence::new(fault, Some(name(1)));
    e.nodes = (0..3).map(name).collect();
    e.fault_at_us = FAULT;
    e.in_force_us = Some(IN_FORCE);
    e.heal_at_us = HEAL;
    e
}

/// The defect of issue 13: the queue's master was on rabbit2, the target
/// killed rabbit1; rabbit2 stayed running and kept the master.
#[test]
fn crash_of_another_node_than_the_master_is_invalid() {
    let mut e = evidence(Fault::Crash);
    for k in 0..6 {
        let t = 2_000_000 + k * 400_000;
        e.views.push(view(t, 2, [false, true, true]));
        e.views.push(view(t, 1, [false, true, true]));
        e.leaders.push(leader(t, 1));
    }
    let f = judge(&e);
    assert!(!f.took_effect, "{f:?}");
    assert_eq!(f.seen_down, vec![name(0)]);
    assert!(
        f.seen
            .contains("master/leader after the fault: rabbit2@localhost"),
        "{}",
        f.seen
    );
    assert!(
        f.seen.contains("not running in 0 of 6 answers"),
        "{}",
        f.seen
    );
    assert!(
        f.expected.contains("rabbit2@localhost crashed"),
        "{}",
        f.expected
    );
}

#[test]
fn crash_seen_down_and_master_moved_took_effect() {
    let mut e = evidence(Fault::Crash);
    e.views.push(view(2_000_000, 2, [true, false, true]));
    e.leaders.push(leader(900_000, 1));
    e.leaders.push(leader(2_500_000, 0));
    let f = judge(&e);
    assert!(f.took_effect, "{f:?}");
    assert_eq!(f.seen_down, vec![name(1)]);
    // down but the master never moved: not enough
    e.leaders.retain(|l| l.leader == name(1));
    assert!(!judge(&e).took_effect);
    // moved, and the process was seen gone instead of a peer's report
    let mut e = evidence(Fault::Stop);
    e.probes
        .push(probe(2_000_000, 1, Some(ProcessState::Gone), None));
    e.leaders.push(leader(6_000_000, 2));
    assert!(judge(&e).took_effect);
}

#[test]
fn the_victim_reporting_itself_does_not_count() {
    let mut e = evidence(Fault::Crash);
    e.views.push(view(2_000_000, 1, [true, false, true]));
    e.leaders.push(leader(2_500_000, 0));
    assert!(!judge(&e).took_effect);
}

#[test]
fn freeze_needs_every_look_frozen() {
    let mut e = evidence(Fault::Freeze);
    assert!(!judge(&e).took_effect, "no look at all is no evidence");
    e.probes
        .push(probe(2_000_000, 1, Some(ProcessState::Frozen), None));
    e.views.push(silent(2_000_000, 1));
    e.views.push(view(2_000_000, 0, [true, true, true]));
    let f = judge(&e);
    assert!(f.took_effect, "{f:?}");
    // a look before the freeze was in force does not contradict it
    e.probes
        .push(probe(1_200_000, 1, Some(ProcessState::Running), None));
    assert!(judge(&e).took_effect);
    // its management API answering while "frozen" does
    e.views.push(view(3_000_000, 1, [true, true, true]));
    let f = judge(&e);
    assert!(!f.took_effect);
    assert!(f.seen.contains("management API answered"), "{}", f.seen);
    // a freeze that never finished
    let mut e = evidence(Fault::Freeze);
    e.in_force_us = None;
    e.probes
        .push(probe(2_000_000, 1, Some(ProcessState::Frozen), None));
    assert!(!judge(&e).took_effect);
}

#[test]
fn partition_by_target_looks_or_management_api() {
    let mut e = evidence(Fault::Partition);
    assert!(!judge(&e).took_effect);
    e.probes
        .push(probe(2_000_000, 1, Some(ProcessState::Running), Some(true)));
    e.probes
        .push(probe(3_000_000, 1, Some(ProcessState::Running), Some(true)));
    assert!(judge(&e).took_effect);
    e.probes.push(probe(4_000_000, 1, None, Some(false)));
    assert!(
        !judge(&e).took_effect,
        "reachable once = not cut for the fault's duration"
    );
    // no target looks: the survivors' partition list shows the cut
    let mut e = evidence(Fault::Partition);
    let mut v = view(3_000_000, 0, [true, true, true]);
    v.answer.as_mut().unwrap()[0].partitions = vec![name(1)];
    e.views.push(v);
    assert!(judge(&e).took_effect);
}

#[test]
fn lb_crash_needs_the_lb_dead_and_the_vip_moved_when_visible() {
    let mut e = evidence(Fault::LbCrash);
    e.victim = None;
    let look = |at, alive| LbSample {
        begin_us: at,
        end_us: at + 1_000,
        alive,
    };
    e.lb.push(look(2_000_000, true));
    assert!(!judge(&e).took_effect);
    e.lb.push(look(2_500_000, false));
    assert!(judge(&e).took_effect, "no VIP visible: the death is enough");
    e.vip_moved = Some(false);
    let f = judge(&e);
    assert!(!f.took_effect && f.seen.contains("did not move"), "{f:?}");
    e.vip_moved = Some(true);
    assert!(judge(&e).took_effect);
}

#[test]
fn rolling_restart_needs_every_node_down_once() {
    let mut e = evidence(Fault::RollingRestart);
    e.victim = None;
    e.views.push(view(2_000_000, 1, [false, true, true]));
    e.views.push(view(3_000_000, 0, [true, false, true]));
    let f = judge(&e);
    assert!(!f.took_effect);
    assert!(
        f.seen.contains("never seen down: rabbit3@localhost"),
        "{}",
        f.seen
    );
    e.views.push(view(4_000_000, 0, [true, true, false]));
    assert!(judge(&e).took_effect);
}

#[test]
fn no_fault_is_valid_and_a_missing_victim_is_not() {
    assert!(judge(&Evidence::new(Fault::None, None)).took_effect);
    let mut e = evidence(Fault::Crash);
    e.victim = None;
    assert!(judge(&e).seen.contains("no victim"));
}

// ------------------------------------------------------------ properties

fn state() -> impl Strategy<Value = Option<ProcessState>> {
    prop_oneof![
        Just(None),
        Just(Some(ProcessState::Running)),
        Just(Some(ProcessState::Frozen)),
        Just(Some(ProcessState::Gone)),
    ]
}

fn any_view() -> impl Strategy<Value = PeerView> {
    (
        0..8_000_000u64,
        0..3usize,
        proptest::option::weighted(0.8, any::<[bool; 3]>()),
    )
        .prop_map(|(at, by, r)| match r {
            Some(r) => view(at, by, r),
            None => silent(at, by),
        })
}

fn any_probe() -> impl Strategy<Value = ProbeSample> {
    (
        0..8_000_000u64,
        0..3usize,
        state(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(at, n, s, c)| probe(at, n, s, c))
}

fn any_evidence(fault: Fault) -> impl Strategy<Value = Evidence> {
    (
        proptest::collection::vec(any_view(), 0..12),
        proptest::collection::vec(any_probe(), 0..8),
        proptest::collection::vec((0..8_000_000u64, 0..3usize), 0..6),
    )
        .prop_map(move |(views, probes, leaders)| {
            let mut e = evidence(fault);
            e.views = views;
            e.probes = probes;
            e.leaders = leaders.into_iter().map(|(t, n)| leader(t, n)).collect();
            e
        })
}

fn node_fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Crash),
        Just(Fault::Stop),
        Just(Fault::Freeze),
        Just(Fault::Partition)
    ]
}

/// Make every observation of the victim (rabbit2) say it is healthy and
/// has the master: the fault landed elsewhere or nowhere.
fn victim_untouched(mut e: Evidence) -> Evidence {
    let v = name(1);
    for view in &mut e.views {
        if view.reporter == v && view.answer.is_none() {
            view.answer = Some(vec![]);
        }
        for n in view.answer.iter_mut().flatten() {
            if n.name == v {
                n.running = true;
            }
            n.partitions.clear();
            if view.reporter == v {
                n.running = true;
            }
        }
    }
    for p in &mut e.probes {
        if p.node == v {
            p.process = Some(ProcessState::Running);
            p.cut_from_peers = Some(false);
        }
    }
    for l in &mut e.leaders {
        l.leader = v.clone();
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Soundness of crash/stop: "took effect" only with a down observation
    /// of the victim by someone else inside the fault, and a master/leader
    /// seen elsewhere after it began.
    #[test]
    fn crash_took_effect_only_with_evidence(e in any_evidence(Fault::Crash)) {
        let v = name(1);
        let inside = |b: u64, en: u64| b >= FAULT && en <= HEAL;
        let down = e.views.iter().any(|w| w.reporter != v && inside(w.begin_us, w.end_us)
                && w.answer.iter().flatten().any(|n| n.name == v && !n.running))
            || e.probes.iter().any(|p| p.node == v && inside(p.begin_us, p.end_us)
                && p.process == Some(ProcessState::Gone));
        let moved = e.leaders.iter().any(|l| l.at_us >= FAULT && l.leader != v);
        prop_assert_eq!(judge(&e).took_effect, down && moved, "{:?}", e);
    }

    /// The defect, generalised: whatever happens to the other nodes, a fault
    /// aimed at a node that every look shows healthy never takes effect.
    #[test]
    fn an_untouched_victim_is_never_a_fault_that_took_effect(
        f in node_fault(),
        e in any_evidence(Fault::Crash),
    ) {
        let mut e = victim_untouched(e);
        e.fault = f;
        let j = judge(&e);
        prop_assert!(!j.took_effect, "{:?}\n{:?}", j, e);
        prop_assert!(!j.seen_down.contains(&name(1)));
    }

    /// Looks taken entirely before the fault or after the heal step began
    /// never change the finding for freeze and partition.
    #[test]
    fn looks_outside_the_fault_do_not_count(
        f in prop_oneof![Just(Fault::Freeze), Just(Fault::Partition)],
        e in any_evidence(Fault::Freeze),
        extra in proptest::collection::vec(any_probe(), 0..6),
        extra_views in proptest::collection::vec(any_view(), 0..6),
    ) {
        let mut e = e;
        e.fault = f;
        let before = judge(&e).took_effect;
        let outside = |b: u64, en: u64| en < IN_FORCE || b > HEAL;
        e.probes.extend(extra.into_iter().filter(|p| outside(p.begin_us, p.end_us)));
        e.views.extend(extra_views.into_iter().filter(|v| outside(v.begin_us, v.end_us)));
        prop_assert_eq!(judge(&e).took_effect, before);
    }

    /// One look showing the victim not frozen while the freeze was in force
    /// makes the freeze unproven, whatever else was seen.
    #[test]
    fn one_contradicting_look_voids_a_freeze(
        e in any_evidence(Fault::Freeze),
        at in IN_FORCE..(HEAL - 1_000_000),
        running in any::<bool>(),
    ) {
        let mut e = e;
        if running {
            e.probes.push(probe(at, 1, Some(ProcessState::Running), None));
        } else {
            e.views.push(view(at, 1, [true, true, true]));
        }
        prop_assert!(!judge(&e).took_effect);
    }

    /// Completeness of crash: a peer's report of the victim down and a new
    /// master make a crash count, whatever noise surrounds them.
    #[test]
    fn crash_with_evidence_always_took_effect(
        e in any_evidence(Fault::Crash),
        at in FAULT..(HEAL - 100_000),
        by in prop_oneof![Just(0usize), Just(2usize)],
        new_master in prop_oneof![Just(0usize), Just(2usize)],
    ) {
        let mut e = e;
        e.views.push(view(at, by, [true, false, true]));
        e.leaders.push(leader(at, new_master));
        let j = judge(&e);
        prop_assert!(j.took_effect, "{:?}", j);
        prop_assert!(j.seen_down.contains(&name(1)));
    }
}
