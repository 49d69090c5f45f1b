//! Human summary, JSON and a self-contained HTML report with an SVG timeline.

use crate::accounting::Verdict;
use crate::drill::DrillReport;
use crate::event::EventKind;
use std::fmt::Write;

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|x| format!("{x:.1} {unit}"))
        .unwrap_or_else(|| "-".into())
}

pub fn summary(r: &DrillReport) -> String {
    let a = &r.accounting;
    let mut s = String::new();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "  {k:<38} {v}");
    };
    row(
        "drill",
        format!("{} on {} ({:?} queues)", r.fault.name(), r.target, r.mode).to_lowercase(),
    );
    row("cluster", format!("{}, {} nodes", r.cluster, r.nodes));
    row("endpoint / queue", format!("{} / {}", r.endpoint, r.queue));
    row(
        "workload",
        format!(
            "{} publishers, {} consumers, rate {}{}",
            r.publishers,
            r.consumers,
            r.rate
                .map(|x| format!("{x}/s"))
                .unwrap_or("flat out".into()),
            if r.unsafe_workload.is_empty() {
                String::new()
            } else {
                format!(", UNSAFE: {}", r.unsafe_workload.join(", "))
            }
        ),
    );
    row(
        "master before / after",
        format!(
            "{} / {}",
            r.master_before.as_deref().unwrap_or("?"),
            r.master_after.as_deref().unwrap_or("?")
        ),
    );
    row("published ids", a.published.to_string());
    row("confirmed", a.confirmed.to_string());
    row(
        "consumed ids / deliveries",
        format!("{} / {}", a.consumed_ids, a.deliveries),
    );
    row("ok", a.ok.to_string());
    row("LOST (confirmed, never consumed)", a.lost.to_string());
    if a.unsettled > 0 || a.unsettled_reason.is_some() {
        row(
            "UNSETTLED (confirmed, not consumed)",
            format!(
                "{} (the queue did not settle: {})",
                a.unsettled,
                a.unsettled_reason.as_deref().unwrap_or("?")
            ),
        );
    }
    row("recovered (unconfirmed, consumed)", a.recovered.to_string());
    row(
        "in doubt (unconfirmed, not consumed)",
        a.in_doubt.to_string(),
    );
    row(
        "duplicated",
        format!(
            "{} ids, {} extra deliveries (expected bound {}{})",
            a.duplicated,
            a.duplicate_deliveries,
            a.duplicate_bound,
            if a.duplicates_within_bound {
                ""
            } else {
                ", EXCEEDED"
            }
        ),
    );
    row("UNEXPECTED (never published)", a.unexpected.to_string());
    let fault_at = r
        .events
        .iter()
        .find(|e| e.kind == EventKind::Fault)
        .map(|e| format!(", fault at {:.1} s", e.at_us as f64 / 1e6))
        .unwrap_or_default();
    row(
        "publisher outage (longest confirm gap)",
        format!(
            "{:.0} ms (from {:.1} s{fault_at})",
            a.publisher_outage_ms,
            a.publisher_outage_from_ms / 1000.0
        ),
    );
    row(
        "consumer outage (longest delivery gap)",
        format!(
            "{:.0} ms (from {:.1} s)",
            a.consumer_outage_ms,
            a.consumer_outage_from_ms / 1000.0
        ),
    );
    row(
        "confirm latency p50/p99/max",
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            a.confirm_latency.p50_ms, a.confirm_latency.p99_ms, a.confirm_latency.max_ms
        ),
    );
    row(
        "throughput before/during/after",
        format!(
            "{} / {} / {}",
            opt(a.throughput.before, "msg/s"),
            opt(a.throughput.during, "msg/s"),
            opt(a.throughput.after, "msg/s")
        ),
    );
    if let Some(sb) = &a.split_brain {
        row(
            "split brain (confirms from cut-off node)",
            format!(
                "{} of {} confirms while {} was cut off ({:.1}-{:.1} s){}",
                sb.confirms_from_cut_off_node,
                sb.confirms_in_window,
                sb.node,
                sb.from_ms / 1000.0,
                sb.to_ms / 1000.0,
                if sb.confirms_node_unknown > 0 {
                    format!(
                        "; {} on connections of unknown node",
                        sb.confirms_node_unknown
                    )
                } else {
                    String::new()
                }
            ),
        );
    }
    row(
        "fault took effect",
        if r.fault_effect.took_effect {
            format!("yes ({})", r.fault_effect.seen)
        } else {
            format!(
                "NO: expected {}; seen {}",
                r.fault_effect.expected, r.fault_effect.seen
            )
        },
    );
    row("lb switch", r.lb_switch.clone());
    row("vip move", r.vip_move.clone());
    row(
        "cluster healed",
        format!(
            "{}{}",
            if a.cluster_healed { "yes" } else { "NO" },
            a.heal_duration_ms
                .map(|d| format!(" ({:.1} s after the heal step)", d / 1000.0))
                .unwrap_or_default()
        ),
    );
    row(
        "queue drained",
        if a.drained { "yes".into() } else { "no".into() },
    );
    row("client reconnects", r.reconnects.to_string());
    if !a.lost_sample.is_empty() {
        row("lost ids (sample)", format!("{:?}", a.lost_sample));
    }
    row("VERDICT", verdict_line(r));
    s
}

/// "PASS", "FAIL: reasons" or "INVALID: reasons".
pub fn verdict_line(r: &DrillReport) -> String {
    let a = &r.accounting;
    match a.verdict {
        Verdict::Pass => "PASS".to_string(),
        Verdict::Fail => format!("FAIL: {}", a.reasons.join("; ")),
        Verdict::Invalid => format!("INVALID: {}", a.reasons.join("; ")),
    }
}

/// The word for a verdict.
pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Invalid => "INVALID",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline SVG: throughput (confirms/s, deliveries/s) above, confirm latency below,
/// events as vertical lines.
pub fn svg(r: &DrillReport) -> String {
    let (w, h, left, right) = (960.0, 420.0, 60.0, 20.0);
    let (top1, h1, top2, h2) = (20.0, 160.0, 230.0, 140.0);
    let tl = &r.timeline;
    let t_end = (r.duration_s * 1000.0).max(1.0);
    let x = |ms: f64| left + (ms / t_end) * (w - left - right);
    let per_s = 1000.0 / r.bucket_ms as f64;
    let max_rate = tl
        .iter()
        .map(|b| b.confirms.max(b.deliveries) as f64 * per_s)
        .fold(1.0, f64::max);
    let max_lat = tl
        .iter()
        .filter_map(|b| b.latency_max_ms)
        .fold(1.0, f64::max);
    let y1 = |v: f64| top1 + h1 - (v / max_rate) * h1;
    let y2 = |v: f64| top2 + h2 - (v / max_lat) * h2;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" font-family="sans-serif" font-size="11">"##
    );
    for (top, hh, label, maxv, unit) in [
        (top1, h1, "throughput", max_rate, "msg/s"),
        (top2, h2, "confirm latency", max_lat, "ms"),
    ] {
        let _ = write!(
            s,
            r##"<rect x="{left}" y="{top}" width="{}" height="{hh}" fill="#fafafa" stroke="#ccc"/>"##,
            w - left - right
        );
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{maxv:.0}</text><text x="{}" y="{}" text-anchor="end">0</text><text x="{left}" y="{}">{label} ({unit})</text>"##,
            left - 4.0,
            top + 10.0,
            left - 4.0,
            top + hh,
            top - 5.0
        );
    }
    let line = |pts: Vec<(f64, f64)>, color: &str, dash: &str| -> String {
        if pts.is_empty() {
            return String::new();
        }
        let d: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        format!(
            r##"<polyline fill="none" stroke="{color}" stroke-width="1.5" {dash} points="{}"/>"##,
            d.join(" ")
        )
    };
    let mid = |b: &crate::accounting::Bucket| x(b.start_ms as f64 + r.bucket_ms as f64 / 2.0);
    s += &line(
        tl.iter()
            .map(|b| (mid(b), y1(b.confirms as f64 * per_s)))
            .collect(),
        "#1f77b4",
        "",
    );
    s += &line(
        tl.iter()
            .map(|b| (mid(b), y1(b.deliveries as f64 * per_s)))
            .collect(),
        "#2ca02c",
        r#"stroke-dasharray="4 2""#,
    );
    s += &line(
        tl.iter()
            .filter_map(|b| b.latency_max_ms.map(|v| (mid(b), y2(v))))
            .collect(),
        "#d62728",
        "",
    );
    s += &line(
        tl.iter()
            .filter_map(|b| b.latency_p50_ms.map(|v| (mid(b), y2(v))))
            .collect(),
        "#ff7f0e",
        r#"stroke-dasharray="4 2""#,
    );
    // events
    for (i, e) in r.events.iter().enumerate() {
        let color = match e.kind {
            EventKind::Fault
            | EventKind::Kill
            | EventKind::Stop
            | EventKind::Freeze
            | EventKind::Partition => "#d62728",
            EventKind::LbSwitch => "#8c564b",
            EventKind::Heal | EventKind::Start | EventKind::Thaw | EventKind::Healed => "#2ca02c",
            EventKind::Failover => "#9467bd",
            EventKind::InForce | EventKind::VipMove | EventKind::Drain | EventKind::Note => {
                continue
            }
        };
        let ex = x(e.at_us as f64 / 1000.0);
        let _ = write!(
            s,
            r##"<line x1="{ex:.1}" x2="{ex:.1}" y1="{top1}" y2="{}" stroke="{color}" stroke-width="1" stroke-dasharray="3 3"><title>{:.2}s {}: {}</title></line>"##,
            top2 + h2,
            e.at_us as f64 / 1e6,
            esc(e.kind.as_str()),
            esc(&e.detail)
        );
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{}" fill="{color}" font-size="10">{}</text>"##,
            ex + 2.0,
            top1 + 12.0 + (i % 4) as f64 * 11.0,
            esc(e.kind.as_str())
        );
    }
    // x axis ticks every ~10%
    let step = ((t_end / 10.0 / 1000.0).ceil() * 1000.0).max(1000.0);
    let mut t = 0.0;
    while t <= t_end {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{:.0}s</text>"##,
            x(t),
            top2 + h2 + 14.0,
            t / 1000.0
        );
        t += step;
    }
    let _ = write!(
        s,
        r##"<g font-size="11"><text x="{left}" y="{}" fill="#1f77b4">— confirms/s</text><text x="{}" y="{}" fill="#2ca02c">- - deliveries/s</text><text x="{}" y="{}" fill="#d62728">— latency max</text><text x="{}" y="{}" fill="#ff7f0e">- - latency p50</text></g>"##,
        h - 8.0,
        left + 120.0,
        h - 8.0,
        left + 260.0,
        h - 8.0,
        left + 380.0,
        h - 8.0
    );
    s += "</svg>";
    s
}

pub fn html(r: &DrillReport) -> String {
    let a = &r.accounting;
    let vcolor = match a.verdict {
        Verdict::Pass => "#2ca02c",
        Verdict::Fail => "#d62728",
        Verdict::Invalid => "#e67e00",
    };
    let vtext = verdict_line(r);
    let mut events = String::new();
    for e in &r.events {
        let _ = write!(
            events,
            "<tr><td>{:.2}s</td><td>{}</td><td>{}</td></tr>",
            e.at_us as f64 / 1e6,
            esc(e.kind.as_str()),
            esc(&e.detail)
        );
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>warren-drill {fault} — {verdict_short}</title>
<style>
body{{font-family:sans-serif;max-width:1000px;margin:20px auto;color:#222}}
.verdict{{font-size:22px;font-weight:bold;color:#fff;background:{vcolor};padding:8px 14px;border-radius:4px}}
pre{{background:#f4f4f4;padding:10px;overflow-x:auto}}
table{{border-collapse:collapse}} td{{padding:2px 10px;border-bottom:1px solid #eee;font-size:13px}}
</style></head><body>
<h1>warren-drill: {fault} ({mode:?} queues)</h1>
<div class="verdict">{vtext}</div>
<h2>Timeline</h2>
{svg}
<h2>Summary</h2>
<pre>{summary}</pre>
<h2>Events</h2>
<table>{events}</table>
<p style="font-size:11px;color:#888">run {run_id}, {tool}. Lost = confirmed by the broker and never consumed. Recovered = never confirmed but consumed. Duplicates are expected after a failover up to the bound shown.</p>
</body></html>
"#,
        fault = r.fault.name(),
        verdict_short = verdict_word(a.verdict),
        mode = r.mode,
        vtext = esc(&vtext),
        svg = svg(r),
        summary = esc(&summary(r)),
        run_id = esc(&r.run_id),
        tool = esc(&r.tool),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::{self, Event, History, Publish, RunFacts};
    use crate::drill::{DrillReport, Fault};
    use crate::evidence::{self, Evidence, FaultEffect};
    use crate::workload::QueueMode;

    fn report(lost: bool) -> DrillReport {
        report_with(lost, true)
    }

    fn report_with(lost: bool, took_effect: bool) -> DrillReport {
        let mut h = History::default();
        for i in 0..50u64 {
            h.publishes.push(Publish {
                id: i,
                first_sent_us: i * 100_000,
                last_sent_us: i * 100_000,
                confirmed_us: Some(i * 100_000 + 5_000),
                attempts: 1,
                conn: None,
            });
            if !(lost && i == 3) {
                h.deliveries.push(accounting::Delivery {
                    id: i,
                    at_us: i * 100_000 + 7_000,
                    redelivered: false,
                });
            }
        }
        h.events.push(Event {
            at_us: 1_000_000,
            kind: EventKind::Fault,
            detail: "crash <node 1>".into(),
        });
        let f = RunFacts {
            load_end_us: 5_000_000,
            fault_at_us: Some(1_000_000),
            heal_at_us: Some(2_000_000),
            cluster_healed: true,
            ..Default::default()
        };
        let effect = FaultEffect {
            took_effect,
            expected: "rabbit@a crashed: seen not running".into(),
            seen: "rabbit@a: not running in 0 of 4 answers".into(),
            seen_down: vec!["rabbit@b".into()],
        };
        let mut acc = accounting::account(&h, &f);
        evidence::settle_verdict(&mut acc, &effect);
        DrillReport {
            tool: "t".into(),
            run_id: "r".into(),
            target: "local".into(),
            fault: Fault::Crash,
            mode: QueueMode::Quorum,
            endpoint: "127.0.0.1:5672".into(),
            queue: "q".into(),
            cluster: "c".into(),
            nodes: 3,
            publishers: 1,
            consumers: 1,
            rate: Some(10.0),
            unsafe_workload: vec![],
            duration_s: 5.0,
            master_before: Some("rabbit@a".into()),
            master_after: Some("rabbit@b".into()),
            lb_switch: "unavailable".into(),
            vip_move: "not measured".into(),
            reconnects: 1,
            last_error: String::new(),
            fault_effect: effect.clone(),
            fault_evidence: Evidence::new(Fault::Crash, Some("rabbit@a".into())),
            accounting: acc,
            timeline: accounting::timeline(&h, 500, 5_000_000),
            events: h.events,
            bucket_ms: 500,
        }
    }

    #[test]
    fn summary_shows_verdict_and_loss() {
        let s = summary(&report(false));
        assert!(s.contains("VERDICT") && s.contains("PASS"), "{s}");
        let s = summary(&report(true));
        assert!(s.contains("FAIL") && s.contains("lost ids (sample)"), "{s}");
    }

    #[test]
    fn a_fault_that_missed_is_invalid_with_expected_and_seen() {
        let r = report_with(false, false);
        assert_eq!(r.accounting.verdict, Verdict::Invalid);
        let s = summary(&r);
        assert!(
            s.contains("VERDICT") && s.contains("INVALID: the fault did not take effect"),
            "{s}"
        );
        assert!(
            s.contains("fault took effect") && s.contains("NO: expected rabbit@a crashed"),
            "{s}"
        );
        let h = html(&r);
        assert!(
            h.contains("INVALID") && h.contains("not running in 0 of 4"),
            "{h}"
        );
        let j: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(j["accounting"]["verdict"], "invalid");
        assert_eq!(j["fault_effect"]["took_effect"], false);
        // a loss stays a FAIL even when the fault missed
        let r = report_with(true, false);
        assert_eq!(r.accounting.verdict, Verdict::Fail);
        assert!(summary(&r).contains("did not take effect"));
    }

    #[test]
    fn html_is_self_contained_with_svg_timeline() {
        let h = html(&report(true));
        assert!(h.contains("<svg") && h.contains("<polyline"));
        assert!(
            h.contains("crash &lt;node 1&gt;"),
            "event details are escaped"
        );
        assert!(!h.contains("<script") && !h.contains("src=") && !h.contains("<link"));
        assert!(h.contains("FAIL"));
    }

    #[test]
    fn json_roundtrip() {
        let r = report(false);
        let s = serde_json::to_string(&r).unwrap();
        let back: DrillReport = serde_json::from_str(&s).unwrap();
        assert_eq!(back.accounting, r.accounting);
    }
}
