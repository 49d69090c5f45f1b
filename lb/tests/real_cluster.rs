//! warren-lb in front of a real 3-node RabbitMQ cluster (`scripts/testbed`):
//! kill -9 of the primary's node under a confirming publisher, a frozen and
//! resumed primary that must not get clients while it is cut off from the
//! majority, a primary partitioned from its peers by iptables, and failback
//! after the node comes back.  Each runs on RabbitMQ 3.10 and again on 4.0
//! (the `_on_4_0` variants: quorum queues, as 4.x has no mirroring), with
//! one body taking the broker line; and on 4.0 with Khepri, a partitioned
//! primary that is never paused and keeps taking connections.
//!
//! Needs root (network namespaces) and Debian's rabbitmq-server (3.10; the
//! 4.0 root filesystem is built by the testbed on first use).  Timing is
//! printed, and asserted only generously: the tight figures are in
//! docs/benchmarks.md.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;
use warren_lb::runtime::{self, Running};
use warren_lb::server::ServerState;

mod common;
use common::config::rabbitmq_check;
use warren_testkit::{Broker, Testbed};

const PATIENCE: Duration = Duration::from_secs(120);

/// One node's management API as the bed's administrator: owned, so that a
/// watcher thread can take it along.
#[derive(Clone)]
struct ManagementApi {
    url: String,
    user: String,
    password: String,
}

impl ManagementApi {
    fn of(tb: &Testbed, n: usize) -> ManagementApi {
        ManagementApi {
            url: tb.node(n).management_url(),
            user: tb.state().user.clone(),
            password: tb.state().password.clone(),
        }
    }

    /// A GET of `path` (None: the node does not answer in 3 s).
    fn get(&self, path: &str) -> Option<Value> {
        let out = Command::new("curl")
            .args(["-fsS", "-m", "3", "-u"])
            .arg(format!("{}:{}", self.user, self.password))
            .arg(format!("{}{path}", self.url))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }
}

// What only these tests ask of the cluster.

/// A GET of node `n`'s management API as the bed's administrator.
fn api(tb: &Testbed, n: usize, path: &str) -> Option<Value> {
    ManagementApi::of(tb, n).get(path)
}

/// How many nodes node `n` itself sees running (None: it does not answer).
fn sees_running(tb: &Testbed, n: usize) -> Option<usize> {
    let nodes = api(tb, n, "/api/nodes?columns=name,running")?;
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
fn cut_off(tb: &Testbed, n: usize) -> bool {
    let Some(nodes) = api(tb, n, "/api/nodes?columns=name,running,partitions") else {
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
fn lb_config(tb: &Testbed, failback: &str) -> String {
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
{}"#,
        rabbitmq_check(&tb.state().user, &tb.state().password)
    );
    for n in 1..=3 {
        let role = if n == 1 { "primary" } else { "backup" };
        c.push_str(&format!(
            "[[backend.server]]\nname = \"rabbit{n}\"\naddress = \"{}\"\nrole = \"{role}\"\n",
            tb.node(n).amqp_addr()
        ));
    }
    c
}

async fn start_lb(tb: &Testbed, failback: &str) -> Running {
    // The balancer's own log (state changes, cut-off verdicts) goes with
    // the test's output, which the runner shows when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warren_lb=debug")
        .with_test_writer()
        .try_init();
    let config = warren_lb::config::parse(&lb_config(tb, failback)).expect("valid lb config");
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

/// The AMQP URI of the balancer's frontend, as the bed's administrator.
fn uri(lb: &Running, tb: &Testbed) -> String {
    format!(
        "amqp://{}:{}@{}/%2f?heartbeat=5",
        tb.state().user,
        tb.state().password,
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
    queue_args: FieldTable,
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
            .queue_declare(queue, durable, queue_args.clone())
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

/// Declare arguments of a queue that survives the loss of its node: a
/// classic queue that the bed's `ha-all` policy mirrors on 3.10, a quorum
/// queue on 4.0.
fn replicated_queue(broker: Broker) -> FieldTable {
    let mut args = FieldTable::default();
    if broker.replicated_mode() == "quorum" {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    args
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
    kill_primary_node_loses_no_confirmed_message_and_manual_failback_holds(Broker::V3_10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kill_primary_node_loses_no_confirmed_message_and_manual_failback_holds_on_4_0() {
    kill_primary_node_loses_no_confirmed_message_and_manual_failback_holds(Broker::V4_0).await;
}

async fn kill_primary_node_loses_no_confirmed_message_and_manual_failback_holds(broker: Broker) {
    let tb = Testbed::up(broker, &["--mode", broker.replicated_mode()]);
    let lb = start_lb(&tb, "manual").await;
    let servers = lb.backends()[0].servers.clone();
    eventually("all three servers eligible", || {
        servers.iter().all(|s| s.is_eligible())
    })
    .await;

    let uri = uri(&lb, &tb);
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = tokio::spawn(publish(
        uri.clone(),
        "lb-kill",
        replicated_queue(broker),
        history.clone(),
        stop.clone(),
    ));
    eventually("100 confirms before the fault", || {
        history.lock().unwrap().confirmed.len() >= 100
    })
    .await;

    let killed_at = Instant::now();
    tb.on_node("kill", 1);
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
        "RabbitMQ {}: kill -9 of the primary node: publisher outage {outage:?}, {} confirmed",
        tb.version(),
        h.confirmed.len()
    );
    assert!(outage < Duration::from_secs(30), "outage {outage:?}");
    assert!(!servers[0].is_up(), "the killed node is marked down");

    // Failback is manual: the restarted node comes back UP but takes no
    // clients until an operator says so.
    tb.on_node("start", 1);
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
    frozen_and_resumed_primary_is_not_used_while_cut_off_from_the_majority(Broker::V3_10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_frozen_and_resumed_primary_is_not_used_while_cut_off_from_the_majority_on_4_0() {
    frozen_and_resumed_primary_is_not_used_while_cut_off_from_the_majority(Broker::V4_0).await;
}

async fn frozen_and_resumed_primary_is_not_used_while_cut_off_from_the_majority(broker: Broker) {
    // `ignore` keeps the resumed node running as its own partition: the
    // case that fooled HAProxy (docs/health-checks.md, "Why these rules").  (4.0 still honours
    // cluster_partition_handling: its metadata store is Mnesia unless the
    // khepri_db feature flag is enabled.)
    let tb = Testbed::up(
        broker,
        &["--mode", "quorum", "--partition-handling", "ignore"],
    );
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
    tb.on_node("freeze", 1);
    eventually("frozen rabbit1 marked down", || !servers[0].is_up()).await;
    eventually("the majority to notice rabbit1 is gone", || {
        // curl blocks: keep the runtime's workers free for the checks
        tokio::task::block_in_place(|| sees_running(&tb, 2)) == Some(2)
    })
    .await;
    let (served, samples) = serving.stop().await;
    println!(
        "RabbitMQ {}: while rabbit1 was frozen: a server was eligible in {served} of {samples} samples",
        tb.version()
    );
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
        .report()
        .0
        .as_ref()
        .map(|r| r.node.clone())
        .expect("rabbit1 passed a check before the freeze");
    let rabbit1_unvouched = sampler({
        let servers = servers.clone();
        move || {
            let vouched = servers[1..].iter().any(|s| {
                s.is_up()
                    && !s.no_news()
                    && s.report()
                        .0
                        .as_ref()
                        .is_some_and(|r| r.running.contains(&rabbit1_node))
            });
            servers[0].is_eligible() && !vouched
        }
    });
    tb.on_node("thaw", 1);
    eventually("resumed rabbit1 answering, cut off", || {
        tokio::task::block_in_place(|| cut_off(&tb, 1))
    })
    .await;

    // It accepts AMQP (a plain amqp/tcp check would call it healthy) ...
    let amqp = warren_health::probe::amqp(tb.node(1).amqp_addr(), Duration::from_secs(3)).await;
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
    let reason = servers[0].last_check().unwrap_or_default();
    println!("rabbit1 while partitioned: {reason}");

    // Healing (restart the minority node, it rejoins) brings it back, and
    // immediate failback routes clients to it again.
    tb.on_node("stop", 1);
    tb.on_node("start", 1);
    eventually("rabbit1 eligible after rejoining", || {
        servers[0].is_eligible()
    })
    .await;
    lb.shutdown().await;
}

/// The lb config compose ships (`compose/lbhost/warren-lbhost render`),
/// pointed at the testbed: servers rabbit1 (primary), rabbit2, rabbit3 at
/// the testbed's addresses, the admin password from a file, and only the
/// binds moved to loopback ports of the test's own.  Everything else (the
/// `rabbitmq` check's inter 1s / fastinter 200ms / rise 2 / fall 2,
/// `shutdown-sessions`, `failback = "immediate"`, observe layer4, ...) is
/// what an operator runs.
fn shipped_lb_config(tb: &Testbed, dir: &std::path::Path) -> std::path::PathBuf {
    let password_file = dir.join("admin_password");
    std::fs::write(&password_file, tb.state().password.clone()).unwrap();
    let token_file = dir.join("lb_admin_token");
    std::fs::write(&token_file, "test-admin-token-of-this-test").unwrap();
    let ips: Vec<String> = (1..=3).map(|n| tb.node(n).ip.to_string()).collect();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/lbhost/warren-lbhost");
    let out = Command::new(script)
        .arg("render")
        .env("WARREN_RUN_DIR", dir)
        .env("WARREN_BACKENDS", ips.join(" "))
        .env("WARREN_ADMIN_PASSWORD_FILE", &password_file)
        .env("WARREN_LB_TOKEN_FILE", &token_file)
        // Only rendered into vip.toml, which this test does not use.
        .env("WARREN_VIP", "192.0.2.10")
        .output()
        .expect("run warren-lbhost render");
    assert!(
        out.status.success(),
        "warren-lbhost render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("lb.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in [
        ("bind = \"0.0.0.0:5672\"", "bind = \"127.0.0.1:0\""),
        ("bind = \"0.0.0.0:8404\"", "bind = \"127.0.0.1:0\""),
    ] {
        assert!(
            text.contains(from),
            "the shipped config has {from}:\n{text}"
        );
        text = text.replace(from, to);
    }
    for (n, ip) in ips.iter().enumerate() {
        let from = format!("name = \"{ip}\"");
        assert!(
            text.contains(&from),
            "the rendered config names {ip}:\n{text}"
        );
        text = text.replace(&from, &format!("name = \"rabbit{}\"", n + 1));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Node `n`'s Erlang VM is stopped (SIGSTOP took effect).
fn frozen(tb: &Testbed, n: usize) -> bool {
    let netns = &tb.node(n).netns;
    let Ok(out) = Command::new("ip").args(["netns", "pids", netns]).output() else {
        return false;
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            comm.trim() == "beam.smp"
                && stat
                    .rsplit(')')
                    .next()
                    .and_then(|s| s.split_whitespace().next())
                    == Some("T")
        })
}

/// The node behind `api`, by its own word: does it list `node` running
/// and not in a partition with it?  None when it does not answer.
fn vouches_for(api: &ManagementApi, node: &str) -> Option<bool> {
    let overview = api.get("/api/overview")?;
    let me = overview["node"].as_str()?.to_owned();
    let nodes = api.get("/api/nodes?columns=name,running,partitions")?;
    let nodes = nodes.as_array()?;
    let mine = nodes
        .iter()
        .find(|n| n["name"].as_str() == Some(me.as_str()))?;
    let partitioned = mine["partitions"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p.as_str() == Some(node)));
    let running = nodes
        .iter()
        .any(|n| n["name"].as_str() == Some(node) && n["running"] == true);
    Some(running && !partitioned)
}

/// The node behind `api` names `node` in a `partitions` list.
fn lists_partition_with(api: &ManagementApi, node: &str) -> bool {
    api.get("/api/nodes?columns=name,partitions")
        .and_then(|v| {
            Some(v.as_array()?.iter().any(|n| {
                n["partitions"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p.as_str() == Some(node)))
            }))
        })
        .unwrap_or(false)
}

/// One poll of the majority's own word on rabbit1: when it started and
/// ended, and whether rabbit2 or rabbit3 vouched for rabbit1 (None: neither
/// management API answered).
struct Poll {
    start: Instant,
    end: Instant,
    with_majority: Option<bool>,
}

/// One sample of the balancer: when, rabbit1 eligible, a majority server
/// eligible, a majority server cut off.
type Sample = (Instant, bool, bool, bool);

/// Watches a fault on rabbit1 from two sides until stopped: the balancer,
/// sampled every 50 ms, and the majority's (rabbit2, rabbit3) own word on
/// rabbit1, polled from a thread beside it (curl blocks while their
/// management APIs stall).
struct Watch {
    samples: Arc<Mutex<Vec<Sample>>>,
    polls: Arc<Mutex<Vec<Poll>>>,
    partition_seen: Arc<std::sync::atomic::AtomicBool>,
    watching: Arc<std::sync::atomic::AtomicBool>,
    sampling: tokio::task::JoinHandle<()>,
    polling: std::thread::JoinHandle<()>,
}

/// What a stopped [`Watch`] saw.
struct Watched {
    samples: Vec<Sample>,
    polls: Vec<Poll>,
    /// The majority named rabbit1 in a `partitions` list at some poll.
    partition_seen: bool,
}

impl Watch {
    fn start(tb: &Testbed, servers: &[Arc<ServerState>], rabbit1: &str) -> Watch {
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let polls: Arc<Mutex<Vec<Poll>>> = Arc::default();
        let partition_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampling = tokio::spawn({
            let (servers, samples, watching) =
                (servers.to_vec(), samples.clone(), watching.clone());
            async move {
                while watching.load(Ordering::Relaxed) {
                    let majority = &servers[1..];
                    samples.lock().unwrap().push((
                        Instant::now(),
                        servers[0].is_eligible(),
                        majority.iter().any(|s| s.is_eligible()),
                        majority.iter().any(|s| s.cut_off().is_some()),
                    ));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        let polling = std::thread::spawn({
            let (polls, watching, partition_seen) =
                (polls.clone(), watching.clone(), partition_seen.clone());
            let (majority, rabbit1) = (
                [ManagementApi::of(tb, 2), ManagementApi::of(tb, 3)],
                rabbit1.to_owned(),
            );
            move || {
                while watching.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let words: Vec<bool> = majority
                        .iter()
                        .filter_map(|api| vouches_for(api, &rabbit1))
                        .collect();
                    let with_majority = (!words.is_empty()).then(|| words.contains(&true));
                    if majority
                        .iter()
                        .any(|api| lists_partition_with(api, &rabbit1))
                    {
                        partition_seen.store(true, Ordering::Relaxed);
                    }
                    polls.lock().unwrap().push(Poll {
                        start,
                        end: Instant::now(),
                        with_majority,
                    });
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Watch {
            samples,
            polls,
            partition_seen,
            watching,
            sampling,
            polling,
        }
    }

    /// rabbit1 is eligible and the majority's latest word vouches for it.
    fn rabbit1_back(&self, servers: &[Arc<ServerState>]) -> bool {
        servers[0].is_eligible()
            && self
                .polls
                .lock()
                .unwrap()
                .last()
                .is_some_and(|p| p.with_majority == Some(true))
    }

    /// Samples so far with no majority server eligible.
    fn majority_gaps(&self) -> usize {
        self.samples.lock().unwrap().iter().filter(|s| !s.2).count()
    }

    async fn stop(self) -> Watched {
        self.watching.store(false, Ordering::Relaxed);
        self.sampling.await.unwrap();
        self.polling.join().unwrap();
        Watched {
            samples: std::mem::take(&mut *self.samples.lock().unwrap()),
            polls: std::mem::take(&mut *self.polls.lock().unwrap()),
            partition_seen: self.partition_seen.load(Ordering::Relaxed),
        }
    }
}

impl Watched {
    /// Moments (after `since`) when rabbit1 was eligible although two
    /// consecutive polls of the majority, one before and one after, both
    /// said it was not with them, and the majority had been saying so for
    /// longer than `grace`: the balancer would have sent clients into the
    /// minority.  `grace` is what the balancer cannot do faster: learn of
    /// the majority's word through its own next check of a majority node.
    fn minority_landings(&self, since: Instant, grace: Duration) -> Vec<Duration> {
        let denied = |i: usize| self.polls[i].with_majority == Some(false);
        (1..self.polls.len())
            .filter(|&i| denied(i - 1) && denied(i))
            .flat_map(|i| {
                let mut first = i - 1;
                while first > 0 && denied(first - 1) {
                    first -= 1;
                }
                let denied_since = self.polls[first].end;
                let (w0, w1) = (&self.polls[i - 1], &self.polls[i]);
                self.samples
                    .iter()
                    .filter(move |s| {
                        s.1 && s.0 > w0.end && s.0 < w1.start && s.0 > denied_since + grace
                    })
                    .map(move |s| s.0 - since)
            })
            .collect()
    }

    fn majority_gaps(&self) -> usize {
        self.samples.iter().filter(|s| !s.2).count()
    }

    fn majority_cut_off(&self) -> usize {
        self.samples.iter().filter(|s| s.3).count()
    }
}

/// A `pause_minority` test bed of `broker` with warren-lb running the config
/// compose ships in front of it, all three servers eligible, and the watch
/// sampling both from now on.
struct PauseMinorityScene {
    tb: Testbed,
    /// Holds the rendered lb config for the test's lifetime.
    _dir: tempfile::TempDir,
    lb: Running,
    servers: Vec<Arc<ServerState>>,
    watch: Watch,
    downs_before: Vec<u64>,
}

impl PauseMinorityScene {
    async fn start(broker: Broker) -> PauseMinorityScene {
        PauseMinorityScene::start_with(broker, &[]).await
    }

    /// The scene on a bed given `extra` `testbed up` flags too (`--khepri`).
    async fn start_with(broker: Broker, extra: &[&str]) -> PauseMinorityScene {
        let mut args = vec![
            "--mode",
            broker.replicated_mode(),
            "--partition-handling",
            "pause_minority",
        ];
        args.extend_from_slice(extra);
        let tb = Testbed::up(broker, &args);
        let dir = tempfile::tempdir().unwrap();
        let (lb, rabbit1) = start_shipped_lb(&tb, dir.path()).await;
        let servers = lb.backends()[0].servers.clone();
        let watch = Watch::start(&tb, &servers, &rabbit1);
        let downs_before = downs(&servers);
        PauseMinorityScene {
            tb,
            _dir: dir,
            lb,
            servers,
            watch,
            downs_before,
        }
    }
}

/// Waits until rabbit2's and rabbit3's own views list only the two of
/// them running: the fault took effect.
async fn majority_drops_rabbit1(tb: &Testbed) {
    eventually("the majority to drop rabbit1", || {
        tokio::task::block_in_place(|| {
            sees_running(tb, 2) == Some(2) && sees_running(tb, 3) == Some(2)
        })
    })
    .await;
}

/// rabbit1 back and eligible: on its own if it `healed_alone`, else after
/// the operator's restart (the heal with the management API's lagging
/// partition data).
async fn back_or_restarted(
    tb: &Testbed,
    watch: &Watch,
    servers: &[Arc<ServerState>],
    healed_alone: bool,
) {
    if !healed_alone {
        tokio::task::block_in_place(|| {
            tb.on_node("stop", 1);
            tb.on_node("start", 1);
        });
    }
    eventually("rabbit1 back and eligible", || watch.rabbit1_back(servers)).await;
}

/// What both pause_minority tests judge last: no majority server was cut
/// off or marked down, and the sessions opened on the majority still answer.
async fn majority_kept_serving(
    seen: &Watched,
    downs_before: &[u64],
    servers: &[Arc<ServerState>],
    sessions: &[Connection],
) {
    let cut_majority = seen.majority_cut_off();
    assert_eq!(
        cut_majority, 0,
        "{cut_majority} samples with a majority server cut off"
    );
    assert_eq!(
        downs_before,
        downs(servers),
        "a majority server was marked down"
    );
    sessions_answer(sessions).await;
}

/// Waits up to `limit` for rabbit1 to be back on its own (pause_minority may
/// heal a resumed or reconnected node by itself); whether it came back.
async fn back_within(watch: &Watch, servers: &[Arc<ServerState>], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !watch.rabbit1_back(servers) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.rabbit1_back(servers)
}

/// warren-lb running the config compose ships, in front of `tb`, with all
/// three servers checked and eligible; and rabbit1's node name.
async fn start_shipped_lb(tb: &Testbed, dir: &std::path::Path) -> (Running, String) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warren_lb=info")
        .with_test_writer()
        .try_init();
    let config = warren_lb::config::load(&shipped_lb_config(tb, dir)).expect("valid");
    let lb = runtime::start(config).await.unwrap();
    let servers = lb.backends()[0].servers.clone();
    eventually("all three servers checked and eligible", || {
        servers.iter().all(|s| s.is_eligible() && s.report().1)
    })
    .await;
    let rabbit1 = servers[0].report().0.expect("rabbit1 passed a check").node;
    (lb, rabbit1)
}

/// Four sessions through the balancer, rabbit1 being out: all on the
/// majority.
async fn sessions_on_majority(
    lb: &Running,
    tb: &Testbed,
    servers: &[Arc<ServerState>],
) -> Vec<Connection> {
    let uri = uri(lb, tb);
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(connect(&uri).await.expect("connect through warren-lb"));
    }
    let on_majority: usize = servers[1..]
        .iter()
        .map(|s| s.counters.sessions.load(Ordering::Acquire))
        .sum();
    assert_eq!(on_majority, 4, "the sessions are on rabbit2/rabbit3");
    sessions
}

/// Every session is open and answers a declaration.
async fn sessions_answer(sessions: &[Connection]) {
    for (i, conn) in sessions.iter().enumerate() {
        assert!(
            conn.status().connected(),
            "session {i} on the majority was closed"
        );
        let ch = conn
            .create_channel()
            .await
            .expect("a channel on a live session");
        ch.queue_declare("", QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("session {i} answers: {e}"));
    }
}

fn downs(servers: &[Arc<ServerState>]) -> Vec<u64> {
    servers[1..]
        .iter()
        .map(|s| s.counters.downs.load(Ordering::Relaxed))
        .collect()
}

/// Issue 13, defect 1.  Under `pause_minority`, rabbit1 (the primary) is
/// frozen past net_ticktime and resumed.  The majority (rabbit2, rabbit3)
/// may then list rabbit1 in its `partitions` for 30 s and more.  On main the
/// check failed on that entry and warren-lb refused every server for 23–41 s.
/// Judged by sampling, from the freeze until rabbit1 is back: a majority
/// server is always eligible; rabbit1 is never eligible while the
/// majority's own API says it is not with them; the sessions opened on the
/// majority are never closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_frozen_node_resumed_under_pause_minority_leaves_the_majority_serving() {
    frozen_node_resumed_under_pause_minority_leaves_the_majority_serving(Broker::V3_10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_frozen_node_resumed_under_pause_minority_leaves_the_majority_serving_on_4_0() {
    frozen_node_resumed_under_pause_minority_leaves_the_majority_serving(Broker::V4_0).await;
}

async fn frozen_node_resumed_under_pause_minority_leaves_the_majority_serving(broker: Broker) {
    let PauseMinorityScene {
        tb,
        _dir,
        lb,
        servers,
        watch,
        downs_before,
    } = PauseMinorityScene::start(broker).await;

    tb.on_node("freeze", 1);
    assert!(frozen(&tb, 1), "rabbit1's VM is stopped after SIGSTOP");
    eventually("frozen rabbit1 marked down", || !servers[0].is_up()).await;
    majority_drops_rabbit1(&tb).await;
    assert!(
        frozen(&tb, 1),
        "rabbit1 stayed frozen until the majority dropped it"
    );
    // Sessions on the majority: with rabbit1 down they land on rabbit2.
    let sessions = sessions_on_majority(&lb, &tb, &servers).await;

    let resumed_at = Instant::now();
    tb.on_node("thaw", 1);
    assert!(!frozen(&tb, 1), "rabbit1 runs again after SIGCONT");
    // pause_minority may heal on its own (rabbit1 rejoins); sometimes the
    // resumed node stays out, and the operator restarts it, which is the
    // heal with the management API's lagging partition data.  Either way,
    // once the majority vouches for it, it is eligible again (immediate
    // failback).
    let healed_alone = back_within(&watch, &servers, Duration::from_secs(60)).await;
    println!(
        "RabbitMQ {}: rabbit1 after the resume: {}; last check: {:?}; cut off: {:?}",
        tb.version(),
        if healed_alone {
            "back"
        } else {
            "still out after 60 s, restarting it"
        },
        servers[0].last_check(),
        servers[0].cut_off()
    );
    // Judged once on the window before any restart (the majority listing
    // rabbit1's partition), and again below after the heal.
    let gaps = watch.majority_gaps();
    assert_eq!(
        gaps, 0,
        "before the heal: {gaps} samples of 50 ms with no majority server eligible"
    );
    for (i, conn) in sessions.iter().enumerate() {
        assert!(
            conn.status().connected(),
            "before the heal: session {i} on the majority was closed"
        );
    }
    back_or_restarted(&tb, &watch, &servers, healed_alone).await;
    let healed_after = resumed_at.elapsed();
    let seen = watch.stop().await;

    println!(
        "resumed rabbit1 back after {healed_after:?}; partition entry seen: {}; {} samples, {} polls",
        seen.partition_seen,
        seen.samples.len(),
        seen.polls.len()
    );
    assert!(
        seen.polls
            .iter()
            .any(|p| p.with_majority == Some(false) && p.start > resumed_at),
        "the fault's second act: after the resume the majority did not vouch for rabbit1 for a while"
    );
    let gaps = seen.majority_gaps();
    assert_eq!(
        gaps, 0,
        "{gaps} samples of 50 ms with no majority server eligible"
    );
    // rabbit1 is DOWN from the freeze on: no grace.
    let into_minority = seen.minority_landings(resumed_at, Duration::ZERO);
    assert!(
        into_minority.is_empty(),
        "rabbit1 was eligible while the majority said it was not with them, at {into_minority:?} after the resume"
    );
    majority_kept_serving(&seen, &downs_before, &servers, &sessions).await;
    lb.shutdown().await;
}

/// One round of the `rabbitmq` check in the config compose ships (`inter`
/// 1 s + `timeout` 1 s, compose/lbhost/warren-lbhost).
const SHIPPED_CHECK_ROUND: Duration = Duration::from_secs(2);

/// Issue 14: rabbit1 (the primary) cut off from rabbit2 and rabbit3 by
/// iptables in its own namespace, while the balancer still reaches it: a
/// real network partition under `pause_minority`, then healed.  Judged from
/// the cut until rabbit1 is back: the majority actually dropped rabbit1 (the
/// fault happened); a majority server is always eligible; rabbit1 is never
/// eligible while the majority's own API has said for longer than one check
/// round that it is not with them; sessions opened during the partition land
/// on the majority and survive the heal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_partitioned_primary_is_never_used_and_the_majority_keeps_serving() {
    partitioned_primary_is_never_used_and_the_majority_keeps_serving(Broker::V3_10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_partitioned_primary_is_never_used_and_the_majority_keeps_serving_on_4_0() {
    partitioned_primary_is_never_used_and_the_majority_keeps_serving(Broker::V4_0).await;
}

async fn partitioned_primary_is_never_used_and_the_majority_keeps_serving(broker: Broker) {
    let PauseMinorityScene {
        tb,
        _dir,
        lb,
        servers,
        watch,
        downs_before,
    } = PauseMinorityScene::start(broker).await;

    let (cut_at, dropped_after) = partition_rabbit1(&tb, &servers).await;
    // Whether the minority node still takes AMQP connections (under
    // pause_minority it should pause and stop listening): recorded, as it
    // is what a plain TCP check would go by.
    let minority_amqp =
        warren_health::probe::amqp(tb.node(1).amqp_addr(), Duration::from_secs(3)).await;
    let sessions = sessions_on_majority(&lb, &tb, &servers).await;
    // Several check rounds with the partition in place.
    tokio::time::sleep(Duration::from_secs(6)).await;
    still_out_while_partitioned(&servers);

    let healed_at = Instant::now();
    tb.on_node("heal", 1);
    let healed_alone = back_within(&watch, &servers, Duration::from_secs(60)).await;
    println!(
        "RabbitMQ {}: majority dropped rabbit1 {dropped_after:?} after the cut; rabbit1's AMQP \
         while partitioned: {}; after the heal: {}; last check: {:?}",
        tb.version(),
        if minority_amqp.is_ok() {
            "accepted"
        } else {
            "refused"
        },
        if healed_alone {
            "back"
        } else {
            "still out after 60 s, restarting it"
        },
        servers[0].last_check(),
    );
    let gaps = watch.majority_gaps();
    assert_eq!(
        gaps, 0,
        "before the heal: {gaps} samples of 50 ms with no majority server eligible"
    );
    back_or_restarted(&tb, &watch, &servers, healed_alone).await;
    println!("rabbit1 back {:?} after the heal", healed_at.elapsed());
    let seen = watch.stop().await;
    partition_judged(&seen, cut_at);
    majority_kept_serving(&seen, &downs_before, &servers, &sessions).await;
    lb.shutdown().await;
}

/// Cuts rabbit1 off from its peers and waits until the fault took effect
/// (the majority's own views drop it) and the balancer took it out of
/// service; when the cut began and how long the majority took to drop it.
async fn partition_rabbit1(tb: &Testbed, servers: &[Arc<ServerState>]) -> (Instant, Duration) {
    let cut_at = Instant::now();
    tb.on_node("partition", 1);
    majority_drops_rabbit1(tb).await;
    let dropped_after = cut_at.elapsed();
    eventually("partitioned rabbit1 out of service", || {
        !servers[0].is_eligible()
    })
    .await;
    (cut_at, dropped_after)
}

fn still_out_while_partitioned(servers: &[Arc<ServerState>]) {
    assert!(
        !servers[0].is_eligible(),
        "rabbit1 eligible while still partitioned; last check: {:?}",
        servers[0].last_check()
    );
}

/// What both partition tests judge once the watch has stopped: the fault
/// was seen (after the cut the majority's API said rabbit1 was not with
/// them), a majority server was always eligible, and rabbit1 was never
/// eligible past one check round after the majority's word.  rabbit1 stays
/// UP and answers AMQP (until it pauses under Mnesia; for as long as the cut
/// lasts under Khepri), so the balancer learns of the majority's word only
/// through its next check of rabbit2 or rabbit3: one round of the shipped
/// check (inter 1 s + timeout 1 s) after their APIs say so.  (Without the
/// silent-denied rule rabbit1 stayed eligible 8 s past that on 4.0.)
fn partition_judged(seen: &Watched, cut_at: Instant) {
    assert!(
        seen.polls
            .iter()
            .any(|p| p.with_majority == Some(false) && p.start > cut_at),
        "the partition: the majority's API never said rabbit1 was not with them"
    );
    let gaps = seen.majority_gaps();
    assert_eq!(
        gaps, 0,
        "{gaps} samples of 50 ms with no majority server eligible"
    );
    let into_minority = seen.minority_landings(cut_at, SHIPPED_CHECK_ROUND);
    assert!(
        into_minority.is_empty(),
        "rabbit1 was eligible while the majority had said for over {SHIPPED_CHECK_ROUND:?} that it was not with them, at {into_minority:?} after the cut"
    );
}

/// What a client connecting straight to a node saw: whether the AMQP
/// connection opened, and how a queue declaration on it ended and when.
struct DirectClient {
    connected: Result<(), String>,
    declared: Result<(), String>,
    declare_took: Duration,
}

/// Connects straight to node `n` (not through warren-lb) and declares a
/// durable classic queue, giving up after `patience`.
async fn declare_directly(tb: &Testbed, n: usize, patience: Duration) -> DirectClient {
    let uri = format!(
        "amqp://{}:{}@{}/%2f?heartbeat=5",
        tb.state().user,
        tb.state().password,
        tb.node(n).amqp_addr()
    );
    let started = Instant::now();
    let conn = match tokio::time::timeout(patience, connect(&uri)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            return DirectClient {
                connected: Err(e.to_string()),
                declared: Err("not connected".into()),
                declare_took: started.elapsed(),
            }
        }
        Err(_) => {
            return DirectClient {
                connected: Err(format!("no connection in {patience:?}")),
                declared: Err("not connected".into()),
                declare_took: started.elapsed(),
            }
        }
    };
    let declare_at = Instant::now();
    let declared = tokio::time::timeout(patience, async {
        let ch = conn.create_channel().await?;
        ch.queue_declare(
            "warren-khepri-minority-probe",
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|_| ())
    })
    .await;
    let declare_took = declare_at.elapsed();
    let _ = conn.close(200, "done").await;
    DirectClient {
        connected: Ok(()),
        declared: match declared {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer in {patience:?}")),
        },
        declare_took,
    }
}

/// Issue 14: the Khepri minority.  With `khepri_db` enabled (4.0) the
/// metadata store is a Raft log and `cluster_partition_handling` no longer
/// applies: rabbit1, cut off from its peers by iptables, is not paused.  It
/// keeps its AMQP port open and takes connections, and a declaration on it
/// fails only when the metadata store's command times out (541 after 30 s
/// here).  A TCP or AMQP check would keep sending clients there.  The
/// `rabbitmq` check sees from rabbit1's own view that it is in a minority,
/// and the majority's word cuts it off too.  Judged as the Mnesia partition
/// test: the fault shown first (the majority drops rabbit1; rabbit1 takes a
/// connection and fails a declaration), then a majority server always
/// eligible, rabbit1 never eligible past one check round after the
/// majority's word, and the sessions opened meanwhile on the majority
/// answering declarations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_partitioned_primary_with_khepri_is_never_used_on_4_0() {
    let PauseMinorityScene {
        tb,
        _dir,
        lb,
        servers,
        watch,
        downs_before,
    } = PauseMinorityScene::start_with(Broker::V4_0, &["--khepri"]).await;
    assert_eq!(
        tb.state().metadata_store,
        "khepri",
        "the bed did not move the metadata store to Khepri"
    );

    let (cut_at, _) = partition_rabbit1(&tb, &servers).await;
    let minority = declare_directly(&tb, 1, Duration::from_secs(60)).await;
    println!(
        "Khepri minority rabbit1: connection {:?}; declaration {:?} after {:?}",
        minority.connected, minority.declared, minority.declare_took
    );
    assert!(
        minority.connected.is_ok(),
        "the Khepri minority case needs rabbit1 to take connections: {:?}",
        minority.connected
    );
    assert!(
        minority.declared.is_err(),
        "a declaration on the Khepri minority succeeded: rabbit1 was not cut off from the metadata majority"
    );
    let sessions = sessions_on_majority(&lb, &tb, &servers).await;
    sessions_answer(&sessions).await;
    still_out_while_partitioned(&servers);

    let healed_at = Instant::now();
    tb.on_node("heal", 1);
    let healed_alone = back_within(&watch, &servers, Duration::from_secs(60)).await;
    back_or_restarted(&tb, &watch, &servers, healed_alone).await;
    println!(
        "rabbit1 back {:?} after the heal ({})",
        healed_at.elapsed(),
        if healed_alone {
            "by itself"
        } else {
            "restarted"
        }
    );
    let seen = watch.stop().await;
    partition_judged(&seen, cut_at);
    majority_kept_serving(&seen, &downs_before, &servers, &sessions).await;
    lb.shutdown().await;
}
