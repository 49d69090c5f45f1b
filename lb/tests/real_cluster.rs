//! warren-lb in front of a real 3-node RabbitMQ cluster (`scripts/testbed`):
//! kill -9 of the primary's node under a confirming publisher, a frozen and
//! resumed primary that must not get clients while it is cut off from the
//! majority, and failback after the node comes back.
//!
//! Needs root (network namespaces) and Debian's rabbitmq-server.  Timing is
//! printed, and asserted only generously: the tight figures are in
//! docs/benchmarks.md.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;
use warren_lb::runtime::{self, Running};

mod common;
use common::testbed::Testbed;

const PATIENCE: Duration = Duration::from_secs(120);

/// What only these tests ask of the cluster.
impl Testbed {
    fn password(&self) -> String {
        self.field("password")
    }

    fn api(&self, n: usize, path: &str) -> Option<Value> {
        let out = Command::new("curl")
            .args(["-fsS", "-m", "3", "-u"])
            .arg(format!("admin:{}", self.password()))
            .arg(format!("http://{}:15672{path}", self.ip(n)))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// How many nodes node `n` itself sees running (None: it does not answer).
    fn sees_running(&self, n: usize) -> Option<usize> {
        let nodes = self.api(n, "/api/nodes?columns=name,running")?;
        Some(
            nodes
                .as_array()?
                .iter()
                .filter(|n| n["running"] == true)
                .count(),
        )
    }

    /// Node `n` answers and reports itself cut off: a partition, or no
    /// majority running.
    fn cut_off(&self, n: usize) -> bool {
        let Some(nodes) = self.api(n, "/api/nodes?columns=name,running,partitions") else {
            return false;
        };
        let Some(nodes) = nodes.as_array() else {
            return false;
        };
        let running = nodes.iter().filter(|n| n["running"] == true).count();
        let partitioned = nodes
            .iter()
            .any(|n| n["partitions"].as_array().is_some_and(|p| !p.is_empty()));
        partitioned || running * 2 <= nodes.len()
    }

    /// lb config: node 1 primary, nodes 2 and 3 backups, rabbitmq check.
    fn lb_config(&self, failback: &str) -> String {
        let mut c = format!(
            r#"
[[frontend]]
name = "amqp"
bind = "127.0.0.1:0"
backend = "rabbitmq"

[[backend]]
name = "rabbitmq"
balance = "first"
failback = "{failback}"

[backend.check]
type = "rabbitmq"
inter = "500ms"
fastinter = "200ms"
rise = 2
fall = 2
timeout = "1s"
username = "admin"
password = "{}"
"#,
            self.password()
        );
        for n in 1..=3 {
            let role = if n == 1 { "primary" } else { "backup" };
            c.push_str(&format!(
                "[[backend.server]]\nname = \"rabbit{n}\"\naddress = \"{}:5672\"\nrole = \"{role}\"\n",
                self.ip(n)
            ));
        }
        c
    }
}

async fn start_lb(tb: &Testbed, failback: &str) -> Running {
    // The balancer's own log (state changes, cut-off verdicts) goes with
    // the test's output, which the runner shows when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warren_lb=debug")
        .with_test_writer()
        .try_init();
    let config = warren_lb::config::parse(&tb.lb_config(failback)).expect("valid lb config");
    runtime::start(config).await.unwrap()
}

/// Samples a condition every 10 ms, far more often than checks run, until
/// stopped: how many samples held, of how many.
struct Sampler {
    watching: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u32, u32)>,
}

fn sampler(cond: impl Fn() -> bool + Send + 'static) -> Sampler {
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let task = tokio::spawn({
        let watching = watching.clone();
        async move {
            let (mut held, mut samples) = (0u32, 0u32);
            while watching.load(Ordering::Relaxed) {
                held += u32::from(cond());
                samples += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (held, samples)
        }
    });
    Sampler { watching, task }
}

impl Sampler {
    async fn stop(self) -> (u32, u32) {
        self.watching.store(false, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    common::eventually_within(PATIENCE, what, cond).await
}

fn uri(lb: &Running, password: &str) -> String {
    format!(
        "amqp://admin:{password}@{}/%2f?heartbeat=5",
        lb.listening[0]
    )
}

async fn connect(uri: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(uri, props).await
}

/// What a confirming publisher saw: confirmed ids and when each came.
#[derive(Default)]
struct History {
    confirmed: Vec<(u64, Instant)>,
}

/// Publishes ids 0.. one at a time with publisher confirms, reconnecting
/// through the balancer and re-sending the unconfirmed id on any error,
/// until `stop` is set.
async fn publish(
    uri: String,
    queue: &'static str,
    history: Arc<Mutex<History>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok(conn) = connect(&uri).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok(ch) = conn.create_channel().await else {
            continue;
        };
        if ch
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .is_err()
        {
            continue;
        }
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        if ch
            .queue_declare(queue, durable, FieldTable::default())
            .await
            .is_err()
        {
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            let props = BasicProperties::default().with_delivery_mode(2);
            let sent = ch
                .basic_publish(
                    "",
                    queue,
                    BasicPublishOptions::default(),
                    next.to_string().as_bytes(),
                    props,
                )
                .await;
            let Ok(pending) = sent else { break };
            match tokio::time::timeout(Duration::from_secs(10), pending).await {
                Ok(Ok(c)) if c.is_ack() => {
                    history
                        .lock()
                        .unwrap()
                        .confirmed
                        .push((next, Instant::now()));
                    next += 1;
                }
                _ => break,
            }
        }
        let _ = conn.close(200, "bye").await;
    }
}

/// Every id left in the queue, read through the balancer.
async fn drain(uri: &str, queue: &str) -> std::collections::HashSet<u64> {
    let conn = connect(uri).await.expect("connect to drain");
    let ch = conn.create_channel().await.unwrap();
    let mut seen = std::collections::HashSet::new();
    while let Some(m) = ch
        .basic_get(queue, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        seen.insert(
            std::str::from_utf8(&m.delivery.data)
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    seen
}

fn longest_gap(h: &History, from: Instant) -> Duration {
    let times: Vec<Instant> = std::iter::once(from)
        .chain(h.confirmed.iter().map(|(_, t)| *t).filter(|t| *t > from))
        .collect();
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kill_primary_node_loses_no_confirmed_message_and_manual_failback_holds() {
    let tb = Testbed::up(&["--mode", "mirrored"]);
    let lb = start_lb(&tb, "manual").await;
    let servers = lb.backends()[0].servers.clone();
    eventually("all three servers eligible", || {
        servers.iter().all(|s| s.is_eligible())
    })
    .await;

    let uri = uri(&lb, &tb.password());
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = tokio::spawn(publish(
        uri.clone(),
        "lb-kill",
        history.clone(),
        stop.clone(),
    ));
    eventually("100 confirms before the fault", || {
        history.lock().unwrap().confirmed.len() >= 100
    })
    .await;

    let killed_at = Instant::now();
    tb.node("kill", 1);
    let before = history.lock().unwrap().confirmed.len();
    eventually("200 confirms after the kill", || {
        history.lock().unwrap().confirmed.len() >= before + 200
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();

    let h = std::mem::take(&mut *history.lock().unwrap());
    let outage = longest_gap(&h, killed_at);
    println!(
        "kill -9 of the primary node: publisher outage {outage:?}, {} confirmed",
        h.confirmed.len()
    );
    assert!(outage < Duration::from_secs(30), "outage {outage:?}");
    assert!(!servers[0].is_up(), "the killed node is marked down");

    // Failback is manual: the restarted node comes back UP but takes no
    // clients until an operator says so.
    tb.node("start", 1);
    eventually("rabbit1 up again", || servers[0].is_up()).await;
    assert!(servers[0].awaiting_failback() && !servers[0].is_eligible());
    assert!(servers[1].is_eligible(), "clients stay on the first backup");

    let consumed = drain(&uri, "lb-kill").await;
    let lost: Vec<u64> = h
        .confirmed
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !consumed.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} confirmed messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    lb.backends()[0].set_admin(0, warren_lb::server::AdminState::Ready);
    assert!(servers[0].is_eligible());
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_frozen_and_resumed_primary_is_not_used_while_cut_off_from_the_majority() {
    // `ignore` keeps the resumed node running as its own partition: the
    // case that fooled HAProxy in DESIGN.md.
    let tb = Testbed::up(&["--mode", "quorum", "--partition-handling", "ignore"]);
    let lb = start_lb(&tb, "immediate").await;
    let servers = lb.backends()[0].servers.clone();
    eventually("all three servers eligible", || {
        servers.iter().all(|s| s.is_eligible())
    })
    .await;

    // While rabbit1 is frozen, the healthy nodes' management API blocks
    // until net_ticktime declares rabbit1 gone; their AMQP still answers,
    // so their checks are "no news" and the backups keep serving.
    let serving = sampler({
        let servers = servers.clone();
        move || servers.iter().any(|s| s.is_eligible())
    });
    tb.node("freeze", 1);
    eventually("frozen rabbit1 marked down", || !servers[0].is_up()).await;
    eventually("the majority to notice rabbit1 is gone", || {
        // curl blocks: keep the runtime's workers free for the checks
        tokio::task::block_in_place(|| tb.sees_running(2)) == Some(2)
    })
    .await;
    let (served, samples) = serving.stop().await;
    println!("while rabbit1 was frozen: a server was eligible in {served} of {samples} samples");
    assert_eq!(
        served,
        samples,
        "no server was eligible for {} samples of 10 ms while rabbit1 was frozen",
        samples - served
    );
    // From the moment it resumes, rabbit1 must never be eligible on its own
    // word: right after SIGCONT its view is stale (it still sees every peer
    // running).  It may be eligible only while another node whose server is
    // UP, and whose management API answers, sees it running.  (With
    // `ignore`, the freeze sometimes splits rabbit2 from rabbit3 as well,
    // and rabbit1 then legitimately rejoins the majority side.)  A watcher
    // samples far more often than checks run.
    let rabbit1_node = servers[0]
        .cluster
        .lock()
        .unwrap()
        .as_ref()
        .map(|r| r.node.clone())
        .expect("rabbit1 passed a check before the freeze");
    let rabbit1_unvouched = sampler({
        let servers = servers.clone();
        move || {
            let vouched = servers[1..].iter().any(|s| {
                s.is_up()
                    && !s.no_news.load(Ordering::Acquire)
                    && s.cluster
                        .lock()
                        .unwrap()
                        .as_ref()
                        .is_some_and(|r| r.running.contains(&rabbit1_node))
            });
            servers[0].is_eligible() && !vouched
        }
    });
    tb.node("thaw", 1);
    eventually("resumed rabbit1 answering, cut off", || {
        tokio::task::block_in_place(|| tb.cut_off(1))
    })
    .await;

    // It accepts AMQP (a plain amqp/tcp check would call it healthy) ...
    let amqp = warren_health::probe::amqp(
        format!("{}:5672", tb.ip(1)).parse().unwrap(),
        Duration::from_secs(3),
    )
    .await;
    assert!(
        amqp.is_ok(),
        "the nasty case needs rabbit1 to accept AMQP: {amqp:?}"
    );
    // ... yet over many check rounds it is never used on its own word.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (unvouched, samples) = rabbit1_unvouched.stop().await;
    assert_eq!(
        unvouched, 0,
        "rabbit1 was eligible without a peer seeing it running ({unvouched} of {samples} samples of 10 ms); cut off: {:?}",
        servers[0].cut_off()
    );
    let reason = servers[0]
        .last_check
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_default();
    println!("rabbit1 while partitioned: {reason}");

    // Healing (restart the minority node, it rejoins) brings it back, and
    // immediate failback routes clients to it again.
    tb.node("stop", 1);
    tb.node("start", 1);
    eventually("rabbit1 eligible after rejoining", || {
        servers[0].is_eligible()
    })
    .await;
    lb.shutdown().await;
}
