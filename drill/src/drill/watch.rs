//! The background watchers, running from the baseline until the report:
//! the live progress line and the queue's failovers, the node each
//! workload connection landed on (for split-brain accounting), and
//! warren-lb's routing (to time its switch). They only add events and facts
//! to the [`Recorder`]; one [`CancellationToken`] stops them all.

use super::cluster::leader;
use super::DrillConfig;
use crate::event::EventKind;
use crate::mgmt::Mgmt;
use crate::witness::pause;
use crate::workload::{self, Recorder, WorkloadConfig};
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The phase the progress line names (`load`, `fault`, `healing`, `settle`,
/// `drain`): set by the phase that runs, read by the progress watcher.
#[derive(Clone)]
pub(super) struct PhaseLabel(Arc<Mutex<&'static str>>);

impl PhaseLabel {
    pub fn new(name: &'static str) -> PhaseLabel {
        PhaseLabel(Arc::new(Mutex::new(name)))
    }
    pub fn set(&self, name: &'static str) {
        *self.0.lock().unwrap() = name;
    }
    fn get(&self) -> &'static str {
        *self.0.lock().unwrap()
    }
}

/// The running watchers.
pub(super) struct Watchers {
    stop: CancellationToken,
    progress: JoinHandle<()>,
    conn_nodes: Option<JoinHandle<()>>,
    lb: Option<JoinHandle<Option<String>>>,
}

impl Watchers {
    pub fn start(
        cfg: &DrillConfig,
        mgmt: &Mgmt,
        w: &Arc<WorkloadConfig>,
        rec: &Arc<Recorder>,
        node_at_host: &[(String, String)],
        label: &PhaseLabel,
    ) -> Watchers {
        let stop = CancellationToken::new();
        let progress = tokio::spawn(watch_progress(
            rec.clone(),
            mgmt.clone(),
            w.clone(),
            label.clone(),
            cfg.progress,
            stop.clone(),
        ));
        let conn_nodes = mgmt.enabled().then(|| {
            tokio::spawn(watch_conn_nodes(
                rec.clone(),
                mgmt.clone(),
                workload::conn_prefix(&w.run_id),
                stop.clone(),
            ))
        });
        let lb = cfg.lb_status.clone().map(|url| {
            tokio::spawn(watch_lb(
                url,
                node_at_host.to_vec(),
                rec.clone(),
                stop.clone(),
            ))
        });
        Watchers {
            stop,
            progress,
            conn_nodes,
            lb,
        }
    }

    /// Stop every watcher and wait for it; returns why warren-lb's switch
    /// cannot be timed (None: its `/status` answered).
    pub async fn stop(self) -> Option<String> {
        self.stop.cancel();
        let _ = self.progress.await;
        if let Some(h) = self.conn_nodes {
            let _ = h.await;
        }
        match self.lb {
            Some(h) => h.await.ok().flatten(),
            None => Some("no --lb-status URL given".into()),
        }
    }
}

/// Every 500 ms: record a change of the queue's master/leader, and (with
/// `--progress`) redraw the progress line, every 5 s when stderr is not a
/// terminal. A stop during the pause ends the loop before another round
/// (docs/decisions/drill-cancellation-token.md): by then the drain may have
/// deleted the queue, and one more round would ask for its leader, maybe
/// record a Failover and draw a progress line after the drill moved on.
async fn watch_progress(
    rec: Arc<Recorder>,
    mgmt: Mgmt,
    w: Arc<WorkloadConfig>,
    label: PhaseLabel,
    progress: bool,
    stop: CancellationToken,
) {
    let tty = std::io::stderr().is_terminal();
    let mut last_leader = leader(&mgmt, &w).await;
    let mut tick = 0u64;
    loop {
        pause(&stop, Duration::from_millis(500)).await;
        if stop.is_cancelled() {
            break;
        }
        tick += 1;
        if let Ok(Some(l)) = tokio::time::timeout(Duration::from_secs(2), leader(&mgmt, &w)).await {
            if last_leader.as_deref() != Some(l.as_str()) {
                rec.event(
                    EventKind::Failover,
                    format!(
                        "master/leader {} -> {l}",
                        last_leader.as_deref().unwrap_or("?")
                    ),
                );
                last_leader = Some(l);
            }
        }
        if progress && (tty || tick % 10 == 0) {
            let line = progress_line(&rec, label.get());
            let mut e = std::io::stderr();
            if tty {
                let _ = write!(e, "\r\x1b[2K{line}");
            } else {
                let _ = writeln!(e, "{line}");
            }
            let _ = e.flush();
        }
    }
    if progress && tty {
        eprintln!();
    }
}

fn progress_line(rec: &Recorder, phase: &str) -> String {
    let e = rec.last_error.lock().unwrap().clone();
    let e: String = e.chars().take(70).collect();
    format!(
        "[{:6.1}s] {phase:<8} sent {} confirmed {} consumed {} reconnects {}{}",
        rec.start.elapsed().as_secs_f64(),
        rec.sent.load(Ordering::Relaxed),
        rec.confirmed.load(Ordering::Relaxed),
        rec.consumed.load(Ordering::Relaxed),
        rec.reconnects.load(Ordering::Relaxed),
        if e.is_empty() {
            String::new()
        } else {
            format!(" | {e}")
        }
    )
}

/// While some workload connection's node is unknown, ask the management
/// API's `/api/connections` which node each one landed on.
async fn watch_conn_nodes(rec: Arc<Recorder>, mgmt: Mgmt, prefix: String, stop: CancellationToken) {
    while !stop.is_cancelled() {
        if rec.conns_without_node() > 0 {
            if let Ok(Ok(seen)) =
                tokio::time::timeout(Duration::from_secs(3), mgmt.connections(&prefix)).await
            {
                rec.conn_nodes(&seen);
            }
        }
        pause(&stop, Duration::from_millis(500)).await;
    }
}

/// From a warren-lb `/status` document: the server the first backend routes
/// new connections to (first eligible server, primaries before backups) and
/// the servers that are DOWN. A server is named `server=node` when its
/// address's host is the host of a management URL whose node is known
/// (`node_at_host`), so the lb's switch names the node it left.
pub fn lb_active(
    v: &serde_json::Value,
    node_at_host: &[(String, String)],
) -> Option<(Option<String>, Vec<String>)> {
    let servers = v
        .get("backends")?
        .as_array()?
        .first()?
        .get("servers")?
        .as_array()?;
    let name = |s: &serde_json::Value| {
        let n = s.get("name").and_then(|n| n.as_str())?;
        let host = s
            .get("address")
            .and_then(|a| a.as_str())
            .and_then(|a| a.rsplit_once(':'))
            .map(|(h, _)| h.trim_matches(['[', ']']));
        Some(
            match node_at_host.iter().find(|(h, _)| Some(h.as_str()) == host) {
                Some((_, node)) => format!("{n}={node}"),
                None => n.to_string(),
            },
        )
    };
    let eligible =
        |s: &&serde_json::Value| s.get("eligible").and_then(|e| e.as_bool()) == Some(true);
    let role = |s: &&serde_json::Value, r: &str| {
        s.get("role").and_then(|x| x.as_str()).unwrap_or("primary") == r
    };
    let active = servers
        .iter()
        .find(|s| eligible(s) && role(s, "primary"))
        .or_else(|| servers.iter().find(|s| eligible(s) && role(s, "backup")))
        .and_then(name);
    let down = servers
        .iter()
        .filter(|s| s.get("status").and_then(|x| x.as_str()) == Some("DOWN"))
        .filter_map(name)
        .collect();
    Some((active, down))
}

/// Every 200 ms: record a change of the server warren-lb's `/status` routes
/// new connections to. Returns why the switch cannot be timed (None: the
/// status was read at least once).
async fn watch_lb(
    url: String,
    node_at_host: Vec<(String, String)>,
    rec: Arc<Recorder>,
    stop: CancellationToken,
) -> Option<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .ok()?;
    let mut last: Option<(Option<String>, Vec<String>)> = None;
    let mut error = None;
    let mut seen = false;
    while !stop.is_cancelled() {
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => match r
                .json::<serde_json::Value>()
                .await
                .ok()
                .as_ref()
                .and_then(|v| lb_active(v, &node_at_host))
            {
                Some(now) => {
                    seen = true;
                    if let Some(prev) = &last {
                        if prev.0 != now.0 {
                            rec.event(
                                EventKind::LbSwitch,
                                format!(
                                    "warren-lb routes to {} (was {}; DOWN: {})",
                                    now.0.as_deref().unwrap_or("nothing"),
                                    prev.0.as_deref().unwrap_or("nothing"),
                                    if now.1.is_empty() {
                                        "none".into()
                                    } else {
                                        now.1.join(",")
                                    }
                                ),
                            );
                        }
                    }
                    last = Some(now);
                }
                None => error = Some(format!("{url}: not a warren-lb /status document")),
            },
            Ok(r) => error = Some(format!("{url}: HTTP {}", r.status())),
            Err(e) => error = Some(format!("{url}: {e}")),
        }
        pause(&stop, Duration::from_millis(200)).await;
    }
    if seen {
        None
    } else {
        error.or(Some("no answer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lb_active_server_from_status() {
        let v = json!({"backends":[{"name":"rabbitmq","servers":[
            {"name":"rabbit1","role":"primary","status":"DOWN","eligible":false},
            {"name":"rabbit2","role":"primary","status":"UP","eligible":true},
            {"name":"rabbit3","role":"backup","status":"UP","eligible":true}]}]});
        assert_eq!(
            lb_active(&v, &[]),
            Some((Some("rabbit2".into()), vec!["rabbit1".into()]))
        );
        // servers are named with the full node name behind their address
        let v = json!({"backends":[{"name":"rabbitmq","servers":[
            {"name":"rabbit1","address":"10.210.1.11:5672","role":"primary","status":"DOWN","eligible":false},
            {"name":"rabbit2","address":"10.210.1.12:5672","role":"primary","status":"UP","eligible":true}]}]});
        let hosts = [
            ("10.210.1.11".to_string(), "rabbit@10.210.1.11".to_string()),
            ("10.210.1.12".to_string(), "rabbit@10.210.1.12".to_string()),
        ];
        assert_eq!(
            lb_active(&v, &hosts),
            Some((
                Some("rabbit2=rabbit@10.210.1.12".into()),
                vec!["rabbit1=rabbit@10.210.1.11".into()]
            ))
        );
        let v = json!({"backends":[{"servers":[
            {"name":"a","role":"primary","status":"DOWN","eligible":false},
            {"name":"b","role":"backup","status":"UP","eligible":true}]}]});
        assert_eq!(lb_active(&v, &[]).unwrap().0.as_deref(), Some("b"));
        assert_eq!(lb_active(&json!({"nope":1}), &[]), None);
    }
}
