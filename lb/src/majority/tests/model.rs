//! Model test: [`judge`] over generated cluster views of 3 and 5 nodes.
//!
//! # Ground truth
//!
//! The generator first draws the *true* state of the cluster, then what
//! each server's report says:
//!
//! * each node is alive or not (frozen, paused, crashed);
//! * the alive nodes fall into components (who can reach whom), and
//!   within a component a pair may be *split*: a partition RabbitMQ
//!   recorded and did not heal (`ignore`), the two databases diverged.
//!
//! Two nodes are truly *consistent* when both are alive, in the same
//! component and not split.  A *true majority* is a set of pairwise
//! consistent nodes larger than half the cluster.
//!
//! Reports: a node that is not alive cannot produce a current report (it
//! does not answer), so its freshness is stale, silent or never.  A stale,
//! silent or never-seen report can say anything at all: it predates
//! whatever happened (a frozen node's last view lists everybody).  A
//! current report can lie too, in the two ways RabbitMQ's do:
//! * a resumed node's view is stale (it still sees peers who dropped it);
//! * partition entries linger after the nodes they name left.
//!
//! What no rule can see past, and the generator therefore excludes, is a
//! cut that *neither* side has noticed: for a pair that is not consistent,
//! the two current reports never both vouch for each other.  (Right after a
//! cut, before net_ticktime, both sides may still do so; nobody can tell.)
//! And for liveness, a current report tells the truth about the nodes it is
//! consistent with: it lists them running and not partitioned.
//!
//! # Invariants
//!
//! (a) a server judged eligible is in a true majority;
//! (b) when a true majority's members are all UP with current reports, at
//!     least one of them is eligible;
//! (c) a server that is not UP is never held (a resumed node comes back
//!     through a proof), and a server a current peer in service denies is
//!     never held;
//! (d) stale and silent reports do not testify: rewriting what they say
//!     changes nobody else's eligibility;
//! (e) a silent server that every member of a true majority denies, all
//!     of them UP with current reports, is cut off (no news does not keep
//!     a node the majority has dropped in service).

use std::fmt;

use proptest::prelude::*;

use super::*;

#[derive(Clone)]
struct Truth {
    alive: Vec<bool>,
    component: Vec<u8>,
    /// `split[a][b]`, symmetric.
    split: Vec<Vec<bool>>,
}

impl Truth {
    fn size(&self) -> usize {
        self.alive.len()
    }

    fn consistent(&self, a: usize, b: usize) -> bool {
        a == b && self.alive[a]
            || self.alive[a]
                && self.alive[b]
                && self.component[a] == self.component[b]
                && !self.split[a][b]
    }

    /// Every true majority (sets of node indexes, as bitmasks).
    fn majorities(&self) -> Vec<u32> {
        let n = self.size();
        (1u32..1 << n)
            .filter(|set| set.count_ones() as usize * 2 > n)
            .filter(|set| {
                (0..n).all(|a| {
                    set & 1 << a == 0 || (0..n).all(|b| set & 1 << b == 0 || self.consistent(a, b))
                })
            })
            .collect()
    }

    fn in_a_majority(&self, node: usize) -> bool {
        self.majorities().iter().any(|m| m & 1 << node != 0)
    }
}

#[derive(Clone)]
struct Server {
    report: Option<NodeReport>,
    freshness: Freshness,
    up: bool,
}

/// A generated cluster: the truth and what warren-lb sees of it.  Printed
/// as a table when a case fails.
#[derive(Clone)]
struct ClusterView {
    truth: Truth,
    servers: Vec<Server>,
}

impl ClusterView {
    fn members(&self) -> Vec<Member<'_>> {
        self.servers
            .iter()
            .map(|s| Member {
                report: s.report.as_ref(),
                freshness: s.freshness,
                up: s.up,
            })
            .collect()
    }

    fn verdicts(&self) -> Vec<Verdict> {
        judge(&self.members())
    }
}

fn short(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

impl fmt::Display for ClusterView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.truth;
        let majorities: Vec<String> = t
            .majorities()
            .iter()
            .map(|m| {
                let names: Vec<String> = (0..t.size())
                    .filter(|i| m & 1 << i != 0)
                    .map(|i| format!("rabbit{}", i + 1))
                    .collect();
                format!("{{{}}}", names.join(","))
            })
            .collect();
        writeln!(
            f,
            "\n{} nodes; true majorities: {}",
            t.size(),
            if majorities.is_empty() {
                "none".into()
            } else {
                majorities.join(" ")
            }
        )?;
        let verdicts = self.verdicts();
        for (i, s) in self.servers.iter().enumerate() {
            let splits: Vec<String> = (0..t.size())
                .filter(|&j| t.split[i][j])
                .map(|j| format!("rabbit{}", j + 1))
                .collect();
            let truth = if t.alive[i] {
                format!("alive c{} split{:?}", t.component[i], splits)
            } else {
                "NOT ALIVE".into()
            };
            let report = match &s.report {
                None => "no report".into(),
                Some(r) => format!(
                    "running [{}] partitions [{}] total {}",
                    r.running
                        .iter()
                        .map(|n| short(n))
                        .collect::<Vec<_>>()
                        .join(","),
                    r.partitions
                        .iter()
                        .map(|n| short(n))
                        .collect::<Vec<_>>()
                        .join(","),
                    r.total
                ),
            };
            writeln!(
                f,
                "  rabbit{}: truth {truth:<24} | {} {:<7} {report}\n      => {}",
                i + 1,
                if s.up { "UP  " } else { "DOWN" },
                format!("{:?}", s.freshness),
                verdicts[i]
            )?;
        }
        Ok(())
    }
}

impl fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn name(i: usize) -> String {
    format!("rabbit{}@localhost", i + 1)
}

fn names_of(bits: u32, n: usize) -> Vec<String> {
    (0..n).filter(|i| bits & 1 << i != 0).map(name).collect()
}

/// Raw draws for one server, turned into a report by [`build`].
#[derive(Clone, Debug)]
struct Draw {
    freshness: u8, // 0 current, 1 stale, 2 silent, 3 never
    up: bool,
    running: u32,
    partitions: u32,
    short_total: bool,
    /// Per peer: which side gives up a mutual claim the truth forbids, and
    /// how (drop "running" or add a partition entry).
    tie: u32,
    how: u32,
}

fn draw() -> impl Strategy<Value = Draw> {
    (
        0u8..4,
        any::<bool>(),
        any::<u32>(),
        any::<u32>(),
        prop::bool::weighted(0.1),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(freshness, up, running, partitions, short_total, tie, how)| Draw {
                freshness,
                up,
                running,
                partitions,
                short_total,
                tie,
                how,
            },
        )
}

fn cluster_view() -> impl Strategy<Value = ClusterView> {
    prop_oneof![Just(3usize), Just(5usize)].prop_flat_map(|n| {
        (
            prop::collection::vec(prop::bool::weighted(0.8), n),
            prop::collection::vec(0u8..3, n),
            prop::collection::vec(prop::bool::weighted(0.15), n * n),
            prop::collection::vec(draw(), n),
        )
            .prop_map(move |(alive, component, split, draws)| {
                build(n, alive, component, split, draws)
            })
    })
}

fn build(
    n: usize,
    alive: Vec<bool>,
    component: Vec<u8>,
    split_draw: Vec<bool>,
    draws: Vec<Draw>,
) -> ClusterView {
    let mut split = vec![vec![false; n]; n];
    for a in 0..n {
        for b in a + 1..n {
            let s = split_draw[a * n + b];
            split[a][b] = s;
            split[b][a] = s;
        }
    }
    let truth = Truth {
        alive,
        component,
        split,
    };
    let mask = (1u32 << n) - 1;
    let freshness = |i: usize| match draws[i].freshness {
        0 if truth.alive[i] => Some(Freshness::Current),
        0 | 1 => Some(Freshness::Stale),
        2 => Some(Freshness::Silent),
        _ => None,
    };
    // Raw views: anything, the node itself always running.
    let mut running: Vec<u32> = (0..n).map(|i| (draws[i].running & mask) | 1 << i).collect();
    let mut partitions: Vec<u32> = (0..n)
        .map(|i| draws[i].partitions & mask & !(1 << i))
        .collect();
    let current = |i: usize| freshness(i) == Some(Freshness::Current);
    for a in 0..n {
        for b in 0..n {
            if a == b || !current(a) {
                continue;
            }
            if truth.consistent(a, b) {
                // Liveness: a current report is right about its consistent peers.
                running[a] |= 1 << b;
                partitions[a] &= !(1 << b);
            }
        }
    }
    for a in 0..n {
        for b in a + 1..n {
            let vouch = |x: usize, y: usize, running: &[u32], partitions: &[u32]| {
                running[x] & 1 << y != 0 && partitions[x] & 1 << y == 0
            };
            if current(a)
                && current(b)
                && !truth.consistent(a, b)
                && vouch(a, b, &running, &partitions)
                && vouch(b, a, &running, &partitions)
            {
                // Somebody noticed: one side drops the other.
                let (x, y) = if draws[a].tie & 1 << b != 0 {
                    (a, b)
                } else {
                    (b, a)
                };
                if draws[x].how & 1 << y != 0 {
                    partitions[x] |= 1 << y;
                } else {
                    running[x] &= !(1 << y);
                }
            }
        }
    }
    let servers = (0..n)
        .map(|i| Server {
            report: freshness(i).map(|_| NodeReport {
                node: name(i),
                cluster_name: None,
                running: names_of(running[i], n),
                partitions: names_of(partitions[i], n),
                total: if draws[i].short_total { n - 1 } else { n },
            }),
            freshness: freshness(i).unwrap_or(Freshness::Current),
            up: draws[i].up,
        })
        .collect();
    ClusterView { truth, servers }
}

/// The same view with every non-current report saying something else.
fn rewrite_non_current(view: &ClusterView, noise: &[(u32, u32)]) -> ClusterView {
    let n = view.truth.size();
    let mask = (1u32 << n) - 1;
    let mut out = view.clone();
    for (i, s) in out.servers.iter_mut().enumerate() {
        if s.freshness == Freshness::Current {
            continue;
        }
        if let Some(r) = &mut s.report {
            r.running = names_of((noise[i].0 & mask) | 1 << i, n);
            r.partitions = names_of(noise[i].1 & mask & !(1 << i), n);
        }
    }
    out
}

fn denied_by_a_witness(view: &ClusterView, me: usize) -> bool {
    let Some(mine) = &view.servers[me].report else {
        return false;
    };
    view.servers.iter().enumerate().any(|(j, s)| {
        j != me
            && s.up
            && s.freshness == Freshness::Current
            && s.report
                .as_ref()
                .is_some_and(|r| r.node != mine.node && !vouches(r, &mine.node))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn the_rule_holds_over_generated_cluster_views(
        view in cluster_view(),
        noise in prop::collection::vec((any::<u32>(), any::<u32>()), 5),
    ) {
        let verdicts = view.verdicts();
        for (i, v) in verdicts.iter().enumerate() {
            // (a)
            prop_assert!(
                !is_eligible(v) || view.truth.in_a_majority(i),
                "(a) rabbit{} is eligible outside every true majority{view}", i + 1
            );
            // (c)
            let held = matches!(v, Verdict::Unjudged(_))
                && view.servers[i].freshness == Freshness::Current
                && view.servers[i].report.is_some();
            prop_assert!(
                !held || (view.servers[i].up && !denied_by_a_witness(&view, i)),
                "(c) rabbit{} is held although it is DOWN or denied{view}", i + 1
            );
        }
        // (b)
        for m in view.truth.majorities() {
            let members: Vec<usize> = (0..view.truth.size()).filter(|i| m & 1 << i != 0).collect();
            let confirmable = members.iter().all(|&i| {
                let s = &view.servers[i];
                s.up && s.freshness == Freshness::Current && s.report.is_some()
            });
            prop_assert!(
                !confirmable || members.iter().any(|&i| is_eligible(&verdicts[i])),
                "(b) a true majority passes its checks and none of it is eligible{view}"
            );
        }
        // (e)
        for m in view.truth.majorities() {
            let members: Vec<usize> = (0..view.truth.size()).filter(|i| m & 1 << i != 0).collect();
            let confirmable = members.iter().all(|&i| {
                let s = &view.servers[i];
                s.up && s.freshness == Freshness::Current && s.report.is_some()
            });
            for (i, s) in view.servers.iter().enumerate() {
                let Some(mine) = s.report.as_ref().filter(|_| s.freshness == Freshness::Silent) else {
                    continue;
                };
                let denied_by_all = members.iter().all(|&j| {
                    view.servers[j]
                        .report
                        .as_ref()
                        .is_some_and(|r| r.node != mine.node && !vouches(r, &mine.node))
                });
                prop_assert!(
                    !confirmable || !denied_by_all || is_cut_off(&verdicts[i]),
                    "(e) silent rabbit{} is denied by a whole true majority yet not cut off{view}", i + 1
                );
            }
        }
        // (d)
        let rewritten = rewrite_non_current(&view, &noise);
        let again = rewritten.verdicts();
        for i in 0..view.truth.size() {
            prop_assert_eq!(
                is_eligible(&verdicts[i]),
                is_eligible(&again[i]),
                "(d) rewriting stale/silent reports changed rabbit{}'s eligibility{}{}",
                i + 1, view, rewritten
            );
        }
    }
}
