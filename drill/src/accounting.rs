//! Jepsen-style accounting of a drill history. Pure: no IO, no clocks.
//!
//! A history is what the workload saw: for every message id that a publisher
//! tried to publish, when it was first sent and when (if ever) the broker
//! confirmed it; every delivery a consumer received; and the drill's own
//! events (fault injected, healed, ...). All times are microseconds since the
//! drill started.
//!
//! Every id is put in exactly one class:
//! - `ok`: published and consumed exactly once (confirmed or not),
//! - `lost`: confirmed by the broker, never consumed — the broker broke its promise,
//! - `recovered`: never confirmed (the publisher gave up or was stopped), yet consumed,
//! - `duplicated`: consumed more than once (expected after a failover: retries of
//!   unconfirmed publishes and redeliveries of unacked messages),
//! - `unexpected`: consumed, never published by this drill.
//!
//! `ok`, `recovered` and `duplicated` are disjoint here: an id consumed twice is
//! `duplicated` whatever its confirm state. Unconfirmed ids that were never
//! consumed are `in_doubt` (the broker never promised them; not a failure).

use crate::event::EventKind;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One message id as the publishers saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    pub id: u64,
    /// First time this id was sent (µs since start).
    pub first_sent_us: u64,
    /// Send time of the attempt that was confirmed.
    pub last_sent_us: u64,
    /// When the broker confirmed it (ack). `None` = never confirmed.
    pub confirmed_us: Option<u64>,
    /// How many times it was sent (retries after nack/timeout/reconnect).
    pub attempts: u32,
    /// Index in [`History::conns`] of the connection the confirm came on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<u32>,
}

/// One AMQP connection the workload opened through the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnRecord {
    /// Client-provided connection name (`warren-drill RUNID p0.3`), unique per run.
    pub name: String,
    /// Server-side node the connection landed on, from the management API
    /// (`/api/connections`); None = never seen there.
    pub node: Option<String>,
    pub opened_us: u64,
    pub closed_us: Option<u64>,
}

/// One delivery a consumer received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: u64,
    pub at_us: u64,
    pub redelivered: bool,
}

/// A deliveries of something that did not carry a parseable id of this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Foreign {
    pub at_us: u64,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_us: u64,
    pub kind: EventKind,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub publishes: Vec<Publish>,
    pub deliveries: Vec<Delivery>,
    /// Deliveries whose body was not a message of this run (counted as unexpected).
    pub foreign: Vec<Foreign>,
    pub events: Vec<Event>,
    /// Every connection the workload opened (publish `conn` indexes into it).
    #[serde(default)]
    pub conns: Vec<ConnRecord>,
}

/// A node cut off from the majority (partition fault) and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutOff {
    pub node: String,
    pub from_us: u64,
    pub to_us: u64,
}

/// Confirms the cut-off node gave while it was cut off (split brain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitBrain {
    pub node: String,
    pub from_ms: f64,
    pub to_ms: f64,
    /// Messages sent and confirmed inside the window, on any connection.
    pub confirms_in_window: usize,
    /// Of those: on a connection that landed on the cut-off node.
    pub confirms_from_cut_off_node: usize,
    /// Of those: on a connection whose node the management API never showed.
    pub confirms_node_unknown: usize,
    /// Up to 20 ids confirmed by the cut-off node.
    pub sample: Vec<u64>,
}

/// Facts about the run that the accounting needs besides the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    /// Load phase: publishers ran in [load_start_us, load_end_us).
    pub load_start_us: u64,
    pub load_end_us: u64,
    /// First fault injection and end of the last heal step (None = no fault / not healed).
    pub fault_at_us: Option<u64>,
    pub heal_at_us: Option<u64>,
    /// The first `in-force` event at or after the fault (None: the fault
    /// never took effect, or there was none): the start of a partition's
    /// cut-off and the evidence's in-force time, found once for both.
    #[serde(default)]
    pub in_force_at_us: Option<u64>,
    /// Whether the cluster was whole again before the final accounting.
    pub cluster_healed: bool,
    /// How long from the heal step until the cluster was whole (µs).
    pub heal_duration_us: Option<u64>,
    /// Number of failovers/disruptions the fault caused (rolling restart = nodes).
    pub disruptions: u32,
    /// Duplicate bound ingredients.
    pub publishers: u32,
    pub max_in_flight: u32,
    pub consumers: u32,
    pub prefetch: u32,
    /// True when the drill was interrupted (Ctrl-C): the report is partial.
    pub interrupted: bool,
    /// Whether the final drain found the queue empty.
    pub drained: bool,
    /// Set when the drain deadline passed before the queue settled (messages
    /// ready or unacknowledged, or workload connections still open on the
    /// broker): why. Missing confirmed ids are then `unsettled`, not `lost`.
    #[serde(default)]
    pub unsettled: Option<String>,
    /// Partition fault: the node cut off from its peers and when.
    #[serde(default)]
    pub cut_off: Option<CutOff>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Confirms per second in the window (None when the window is empty).
    pub before: Option<f64>,
    pub during: Option<f64>,
    pub after: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub start_ms: u64,
    pub confirms: u64,
    pub deliveries: u64,
    /// Confirm latency of the messages confirmed in this bucket (None: none confirmed).
    pub latency_p50_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// The fault did not take effect: the drill proved nothing (see
    /// [`crate::evidence`]).
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accounting {
    pub published: usize,
    pub confirmed: usize,
    pub consumed_ids: usize,
    pub deliveries: usize,
    pub ok: usize,
    pub lost: usize,
    /// Confirmed, not consumed, but the queue never settled before the drain
    /// deadline: neither proven lost nor proven kept (fails the drill).
    #[serde(default)]
    pub unsettled: usize,
    pub recovered: usize,
    pub duplicated: usize,
    /// Deliveries beyond the first, summed over duplicated ids.
    pub duplicate_deliveries: usize,
    pub unexpected: usize,
    pub in_doubt: usize,
    /// Up to 20 lost ids, for debugging.
    pub lost_sample: Vec<u64>,
    /// Expected upper bound on duplicate deliveries:
    /// (publishers × max in flight + consumers × prefetch) × disruptions.
    pub duplicate_bound: u64,
    pub duplicates_within_bound: bool,
    pub publisher_outage_ms: f64,
    /// When the longest confirm gap began (ms since start).
    pub publisher_outage_from_ms: f64,
    pub consumer_outage_ms: f64,
    pub consumer_outage_from_ms: f64,
    pub confirm_latency: Latency,
    pub throughput: Throughput,
    pub cluster_healed: bool,
    pub heal_duration_ms: Option<f64>,
    pub interrupted: bool,
    pub drained: bool,
    /// Why the drain did not settle (None = it did).
    #[serde(default)]
    pub unsettled_reason: Option<String>,
    /// Partition drills: confirms given by the cut-off node while cut off.
    #[serde(default)]
    pub split_brain: Option<SplitBrain>,
    pub verdict: Verdict,
    /// Why the verdict is what it is, one line per reason.
    pub reasons: Vec<String>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Longest gap between consecutive points of `times` inside [start, end],
/// counting the window edges as points (so "nothing at all" = the whole window).
pub fn longest_gap(times: &[u64], start: u64, end: u64) -> u64 {
    longest_gap_at(times, start, end).0
}

/// Longest gap and where it began.
pub fn longest_gap_at(times: &[u64], start: u64, end: u64) -> (u64, u64) {
    if end <= start {
        return (0, start);
    }
    let mut pts: Vec<u64> = times
        .iter()
        .copied()
        .filter(|t| *t >= start && *t <= end)
        .collect();
    pts.sort_unstable();
    let mut prev = start;
    let mut best = (0, start);
    for t in pts.into_iter().chain(std::iter::once(end)) {
        if t - prev > best.0 {
            best = (t - prev, prev);
        }
        prev = t;
    }
    best
}

fn rate(times: &[u64], from: u64, to: u64) -> Option<f64> {
    if to <= from {
        return None;
    }
    let n = times.iter().filter(|t| **t >= from && **t < to).count();
    Some(n as f64 / ((to - from) as f64 / 1e6))
}

pub fn account(h: &History, f: &RunFacts) -> Accounting {
    let mut consumed: HashMap<u64, usize> = HashMap::new();
    for d in &h.deliveries {
        *consumed.entry(d.id).or_default() += 1;
    }
    let mut published: HashMap<u64, &Publish> = HashMap::with_capacity(h.publishes.len());
    for p in &h.publishes {
        published.insert(p.id, p);
    }

    let (mut ok, mut lost, mut recovered, mut duplicated, mut dup_deliv, mut in_doubt) =
        (0, 0, 0, 0, 0, 0);
    let mut lost_ids = Vec::new();
    for p in published.values() {
        match consumed.get(&p.id).copied().unwrap_or(0) {
            0 => {
                if p.confirmed_us.is_some() {
                    lost += 1;
                    lost_ids.push(p.id);
                } else {
                    in_doubt += 1;
                }
            }
            1 => {
                if p.confirmed_us.is_some() {
                    ok += 1;
                } else {
                    recovered += 1;
                }
            }
            n => {
                duplicated += 1;
                dup_deliv += n - 1;
            }
        }
    }
    lost_ids.sort_unstable();
    lost_ids.truncate(20);
    // the queue never settled: missing confirmed ids may still sit in it
    // (e.g. unacked on a connection the broker has not dropped yet)
    let unsettled = if f.unsettled.is_some() {
        std::mem::take(&mut lost)
    } else {
        0
    };
    let unexpected = consumed
        .keys()
        .filter(|id| !published.contains_key(id))
        .count()
        + h.foreign.len();

    let confirm_times: Vec<u64> = h.publishes.iter().filter_map(|p| p.confirmed_us).collect();
    let mut lats: Vec<u64> = h
        .publishes
        .iter()
        .filter_map(|p| p.confirmed_us.map(|c| c.saturating_sub(p.first_sent_us)))
        .collect();
    lats.sort_unstable();
    let confirm_latency = Latency {
        count: lats.len(),
        p50_ms: ms(percentile(&lats, 50.0)),
        p99_ms: ms(percentile(&lats, 99.0)),
        max_ms: ms(lats.last().copied().unwrap_or(0)),
    };
    let deliv_times: Vec<u64> = h.deliveries.iter().map(|d| d.at_us).collect();

    let (ls, le) = (f.load_start_us, f.load_end_us);
    let throughput = match f.fault_at_us {
        None => Throughput {
            before: rate(&confirm_times, ls, le),
            during: None,
            after: None,
        },
        Some(fa) => {
            let fa = fa.clamp(ls, le);
            let ha = f.heal_at_us.unwrap_or(le).clamp(fa, le);
            Throughput {
                before: rate(&confirm_times, ls, fa),
                during: rate(&confirm_times, fa, ha),
                after: rate(&confirm_times, ha, le),
            }
        }
    };

    let duplicate_bound = (f.publishers as u64 * f.max_in_flight as u64
        + f.consumers as u64 * f.prefetch as u64)
        * f.disruptions.max(1) as u64;

    let pub_gap = longest_gap_at(&confirm_times, ls, le);
    let con_gap = longest_gap_at(&deliv_times, ls, le);
    let mut reasons = Vec::new();
    if lost > 0 {
        reasons.push(format!(
            "{lost} confirmed message(s) were never consumed (lost)"
        ));
    }
    if unsettled > 0 {
        reasons.push(format!(
            "{unsettled} confirmed message(s) not consumed and the queue did not settle before the drain deadline ({}): unsettled, not proven lost",
            f.unsettled.as_deref().unwrap_or("?")
        ));
    }
    if unexpected > 0 {
        reasons.push(format!(
            "{unexpected} message(s) consumed that this drill never published (unexpected)"
        ));
    }
    if !f.cluster_healed {
        reasons.push("the cluster was not whole again before the final accounting".into());
    }
    if f.interrupted {
        reasons.push("the drill was interrupted: partial history".into());
    }
    let split_brain = f.cut_off.as_ref().map(|c| split_brain(h, c));
    let verdict =
        if lost == 0 && unsettled == 0 && unexpected == 0 && f.cluster_healed && !f.interrupted {
            Verdict::Pass
        } else {
            Verdict::Fail
        };

    Accounting {
        published: published.len(),
        confirmed: confirm_times.len(),
        consumed_ids: consumed.len(),
        deliveries: h.deliveries.len(),
        ok,
        lost,
        unsettled,
        recovered,
        duplicated,
        duplicate_deliveries: dup_deliv,
        unexpected,
        in_doubt,
        lost_sample: lost_ids,
        duplicate_bound,
        duplicates_within_bound: dup_deliv as u64 <= duplicate_bound,
        publisher_outage_ms: ms(pub_gap.0),
        publisher_outage_from_ms: ms(pub_gap.1),
        consumer_outage_ms: ms(con_gap.0),
        consumer_outage_from_ms: ms(con_gap.1),
        confirm_latency,
        throughput,
        cluster_healed: f.cluster_healed,
        heal_duration_ms: f.heal_duration_us.map(ms),
        interrupted: f.interrupted,
        drained: f.drained,
        unsettled_reason: f.unsettled.clone(),
        split_brain,
        verdict,
        reasons,
    }
}

/// Messages accepted while `c.node` was cut off: the confirmed attempt was
/// sent after the cut was in force and confirmed before the heal step began,
/// split by the node the confirming connection had landed on. (A message
/// sent before the cut may have been accepted before it: not counted.)
pub fn split_brain(h: &History, c: &CutOff) -> SplitBrain {
    let (mut in_window, mut from_cut, mut unknown) = (0, 0, 0);
    let mut sample = Vec::new();
    for p in &h.publishes {
        let Some(t) = p.confirmed_us else { continue };
        if p.last_sent_us < c.from_us || t > c.to_us {
            continue;
        }
        in_window += 1;
        let node = p
            .conn
            .and_then(|i| h.conns.get(i as usize))
            .and_then(|cr| cr.node.as_deref());
        match node {
            Some(n) if n == c.node => {
                from_cut += 1;
                if sample.len() < 20 {
                    sample.push(p.id);
                }
            }
            Some(_) => {}
            None => unknown += 1,
        }
    }
    sample.sort_unstable();
    SplitBrain {
        node: c.node.clone(),
        from_ms: ms(c.from_us),
        to_ms: ms(c.to_us),
        confirms_in_window: in_window,
        confirms_from_cut_off_node: from_cut,
        confirms_node_unknown: unknown,
        sample,
    }
}

/// Per-bucket counts for the timeline plot, from 0 to `end_us`.
pub fn timeline(h: &History, bucket_ms: u64, end_us: u64) -> Vec<Bucket> {
    let bucket_ms = bucket_ms.max(1);
    let n = (end_us / 1000 / bucket_ms + 1) as usize;
    let mut buckets: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            start_ms: i as u64 * bucket_ms,
            ..Default::default()
        })
        .collect();
    let mut lats: Vec<Vec<u64>> = vec![Vec::new(); n];
    let idx = |t: u64| ((t / 1000 / bucket_ms) as usize).min(n - 1);
    for p in &h.publishes {
        if let Some(c) = p.confirmed_us {
            let i = idx(c);
            buckets[i].confirms += 1;
            lats[i].push(c.saturating_sub(p.first_sent_us));
        }
    }
    for d in &h.deliveries {
        buckets[idx(d.at_us)].deliveries += 1;
    }
    for (b, l) in buckets.iter_mut().zip(lats.iter_mut()) {
        if !l.is_empty() {
            l.sort_unstable();
            b.latency_p50_ms = Some(ms(percentile(l, 50.0)));
            b.latency_max_ms = Some(ms(*l.last().unwrap()));
        }
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publ(id: u64, sent: u64, conf: Option<u64>) -> Publish {
        Publish {
            id,
            first_sent_us: sent,
            last_sent_us: sent,
            confirmed_us: conf,
            attempts: 1,
            conn: None,
        }
    }
    fn del(id: u64, at: u64) -> Delivery {
        Delivery {
            id,
            at_us: at,
            redelivered: false,
        }
    }
    fn facts() -> RunFacts {
        RunFacts {
            load_start_us: 0,
            load_end_us: 10_000_000,
            fault_at_us: Some(4_000_000),
            heal_at_us: Some(6_000_000),
            in_force_at_us: None,
            cluster_healed: true,
            heal_duration_us: Some(1_500_000),
            disruptions: 1,
            publishers: 2,
            max_in_flight: 10,
            consumers: 2,
            prefetch: 5,
            interrupted: false,
            drained: true,
            unsettled: None,
            cut_off: None,
        }
    }
    /// Ten messages, one per second, each confirmed after 2 ms and consumed after 3 ms.
    fn clean() -> History {
        let mut h = History::default();
        for i in 0..10u64 {
            let t = i * 1_000_000;
            h.publishes.push(publ(i, t, Some(t + 2_000)));
            h.deliveries.push(del(i, t + 3_000));
        }
        h
    }

    #[test]
    fn clean_history_passes() {
        let a = account(&clean(), &facts());
        assert_eq!(a.published, 10);
        assert_eq!(a.ok, 10);
        assert_eq!(
            a.lost + a.recovered + a.duplicated + a.unexpected + a.in_doubt,
            0
        );
        assert_eq!(a.verdict, Verdict::Pass);
        assert!(a.reasons.is_empty());
        assert_eq!(a.confirm_latency.count, 10);
        assert_eq!(a.confirm_latency.p50_ms, 2.0);
        assert_eq!(a.confirm_latency.max_ms, 2.0);
        assert_eq!(a.duplicate_bound, 30);
    }

    #[test]
    fn confirmed_but_never_consumed_is_lost_and_fails() {
        let mut h = clean();
        h.deliveries.retain(|d| d.id != 7);
        let a = account(&h, &facts());
        assert_eq!(a.lost, 1);
        assert_eq!(a.lost_sample, vec![7]);
        assert_eq!(a.ok, 9);
        assert_eq!(a.verdict, Verdict::Fail);
        assert!(a.reasons[0].contains("lost"));
    }

    #[test]
    fn unsettled_queue_reports_unsettled_not_lost_and_fails() {
        let mut h = clean();
        h.deliveries.retain(|d| d.id != 7);
        let mut f = facts();
        f.unsettled = Some("queue has 1 unacknowledged".into());
        let a = account(&h, &f);
        assert_eq!(a.lost, 0);
        assert_eq!(a.unsettled, 1);
        assert_eq!(a.verdict, Verdict::Fail);
        assert!(a.reasons[0].contains("unsettled"), "{:?}", a.reasons);
        // nothing missing: an unsettled drain alone does not fail
        let a = account(&clean(), &f);
        assert_eq!((a.lost, a.unsettled), (0, 0));
        assert_eq!(a.verdict, Verdict::Pass);
    }

    #[test]
    fn split_brain_counts_confirms_from_the_cut_off_node() {
        let mut h = clean();
        let conn = |name: &str, node: Option<&str>| ConnRecord {
            name: name.into(),
            node: node.map(String::from),
            opened_us: 0,
            closed_us: None,
        };
        h.conns = vec![
            conn("p0.0", Some("rabbit@n1")),
            conn("p0.1", Some("rabbit@n2")),
            conn("p0.2", None),
        ];
        // ids 0..10 confirmed at i s + 2 ms; cut 3.5 s .. 7.5 s covers ids 4,5,6,7
        for p in h.publishes.iter_mut() {
            p.conn = Some(match p.id {
                4 | 5 => 0,
                6 => 1,
                7 => 2,
                _ => 0,
            });
        }
        // sent before the cut, confirmed in it: may have been accepted before it
        let mut early = publ(50, 3_400_000, Some(3_600_000));
        early.conn = Some(0);
        h.publishes.push(early);
        h.deliveries.push(del(50, 3_700_000));
        let mut f = facts();
        f.cut_off = Some(CutOff {
            node: "rabbit@n1".into(),
            from_us: 3_500_000,
            to_us: 7_500_000,
        });
        let a = account(&h, &f);
        let sb = a.split_brain.unwrap();
        assert_eq!(sb.confirms_in_window, 4);
        assert_eq!(sb.confirms_from_cut_off_node, 2);
        assert_eq!(sb.confirms_node_unknown, 1);
        assert_eq!(sb.sample, vec![4, 5]);
        assert_eq!(a.verdict, Verdict::Pass);
        assert!(account(&h, &facts()).split_brain.is_none());
    }

    #[test]
    fn unconfirmed_classes() {
        let mut h = clean();
        // unconfirmed but consumed -> recovered; unconfirmed, not consumed -> in doubt
        h.publishes.push(publ(100, 4_100_000, None));
        h.deliveries.push(del(100, 7_000_000));
        h.publishes.push(publ(101, 4_200_000, None));
        let a = account(&h, &facts());
        assert_eq!(a.recovered, 1);
        assert_eq!(a.in_doubt, 1);
        assert_eq!(a.lost, 0);
        assert_eq!(a.verdict, Verdict::Pass);
    }

    #[test]
    fn duplicates_are_reported_not_failed() {
        let mut h = clean();
        h.deliveries.push(del(3, 5_000_000));
        h.deliveries.push(del(3, 5_100_000));
        h.deliveries.push(del(4, 5_000_000));
        let a = account(&h, &facts());
        assert_eq!(a.duplicated, 2);
        assert_eq!(a.duplicate_deliveries, 3);
        assert_eq!(a.ok, 8);
        assert!(a.duplicates_within_bound);
        assert_eq!(a.verdict, Verdict::Pass);

        let mut f = facts();
        f.publishers = 0;
        f.consumers = 1;
        f.prefetch = 2;
        let a = account(&h, &f);
        assert!(!a.duplicates_within_bound);
        assert_eq!(a.verdict, Verdict::Pass);
    }

    #[test]
    fn unexpected_and_foreign_fail() {
        let mut h = clean();
        h.deliveries.push(del(999, 1));
        let a = account(&h, &facts());
        assert_eq!(a.unexpected, 1);
        assert_eq!(a.verdict, Verdict::Fail);

        let mut h = clean();
        h.foreign.push(Foreign {
            at_us: 5,
            what: "body without id".into(),
        });
        let a = account(&h, &facts());
        assert_eq!(a.unexpected, 1);
        assert_eq!(a.verdict, Verdict::Fail);
    }

    #[test]
    fn unhealed_or_interrupted_fails() {
        let mut f = facts();
        f.cluster_healed = false;
        let a = account(&clean(), &f);
        assert_eq!(a.verdict, Verdict::Fail);
        assert!(a.reasons[0].contains("not whole"));
        let mut f = facts();
        f.interrupted = true;
        assert_eq!(account(&clean(), &f).verdict, Verdict::Fail);
    }

    #[test]
    fn outages_and_throughput() {
        // confirms every 100 ms except a 3 s hole from 4.0 s to 7.0 s
        let mut h = History::default();
        let mut id = 0;
        let mut t = 0;
        while t < 10_000_000 {
            if !(4_000_000..7_000_000).contains(&t) {
                h.publishes.push(publ(id, t, Some(t + 1_000)));
                h.deliveries.push(del(id, t + 2_000));
                id += 1;
            }
            t += 100_000;
        }
        let a = account(&h, &facts());
        assert_eq!(a.publisher_outage_ms, 3_100.0);
        assert_eq!(a.consumer_outage_ms, 3_100.0);
        assert_eq!(a.publisher_outage_from_ms, 3_901.0);
        let tp = a.throughput;
        assert_eq!(tp.before, Some(10.0));
        assert_eq!(tp.during, Some(0.0));
        // 6.0..10.0 s: confirms at 7.0..9.9 s = 30 in 4 s
        assert_eq!(tp.after, Some(7.5));
        assert_eq!(a.verdict, Verdict::Pass);
    }

    #[test]
    fn latency_percentiles_from_first_send() {
        let mut h = History::default();
        for i in 0..100u64 {
            let mut p = publ(i, i * 10_000, Some(i * 10_000 + (i + 1) * 1_000));
            p.attempts = 1 + (i == 99) as u32;
            h.publishes.push(p);
            h.deliveries.push(del(i, i * 10_000 + 200_000));
        }
        let a = account(&h, &facts());
        assert_eq!(a.confirm_latency.p50_ms, 50.0);
        assert_eq!(a.confirm_latency.p99_ms, 99.0);
        assert_eq!(a.confirm_latency.max_ms, 100.0);
    }

    #[test]
    fn gap_and_percentile_helpers() {
        assert_eq!(longest_gap(&[], 0, 100), 100);
        assert_eq!(longest_gap(&[10, 20, 90], 0, 100), 70);
        assert_eq!(longest_gap(&[500], 0, 100), 100);
        assert_eq!(longest_gap(&[1], 5, 5), 0);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
    }

    #[test]
    fn timeline_buckets() {
        let h = clean();
        let b = timeline(&h, 1000, 10_000_000);
        assert_eq!(b.len(), 11);
        assert_eq!(b[0].confirms, 1);
        assert_eq!(b[0].deliveries, 1);
        assert_eq!(b[0].latency_p50_ms, Some(2.0));
        assert_eq!(b[10].confirms, 0);
        assert_eq!(b.iter().map(|x| x.confirms).sum::<u64>(), 10);
    }
}
