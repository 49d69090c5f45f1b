//! Reload, binary upgrade and stop with the configs the deployments ship
//! (compose, Helm, Ansible: `[admin]`, the `rabbitmq` check, their
//! timeouts and limits), against the real RabbitMQ cluster of
//! `scripts/testbed`.  Only the servers' addresses, the binds' ports and
//! the check's credentials are the test's (warren-testkit's `shipped`).
//!
//! One test per deployment, each running the whole life of a warren-lb:
//! start, SIGHUP reload, `--upgrade-from` handover to a new process, and
//! SIGTERM stop.  All along, the admin API is polled (every answer must
//! come, and say ready: warren-vip tracks /readyz) and new clients connect
//! (none refused); AMQP sessions opened before each step must still work
//! after it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

mod common;
use common::process::{admin_fetch, readyz_poller, wait_for_socket, Lb};
use warren_testkit::shipped::Shipped;
use warren_testkit::{Broker, Testbed};

/// A real cluster takes longer than the in-process tests' patience.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_compose_config_survives_reload_upgrade_and_stop() {
    lifecycle("compose").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_helm_config_survives_reload_upgrade_and_stop() {
    lifecycle("helm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_ansible_config_survives_reload_upgrade_and_stop() {
    lifecycle("ansible").await;
}

async fn lifecycle(deployment: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Shipped::render(deployment, dir.path());
    let tb = Testbed::up(Broker::V3_10, &[]);
    let (user, password) = (tb.state().user.clone(), tb.state().password.clone());
    let password_file = dir.path().join("check-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let servers: Vec<SocketAddr> = (1..=3).map(|n| tb.node(n).amqp_addr()).collect();
    let local = shipped.localize(&servers, &user, &password_file);
    let file = dir.path().join("lb.toml");
    std::fs::write(&file, &local.text).unwrap();
    let (admin, frontend) = (local.admin, local.frontends[0]);
    let uri = format!("amqp://{user}:{password}@{frontend}/%2f?heartbeat=5");
    let sock = dir.path().join("upgrade.sock");

    // Start, and wait until every server has been checked and is UP.
    let mut old = Lb::serving_upgrades(&file, &sock);
    eventually("every server checked and UP", || all_up(admin)).await;
    block(|| wait_for_socket(&sock));

    let watch = Watch::start(admin, frontend);
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(connect(&uri).await);
    }

    // Reload (SIGHUP) with the shipped file: everything kept.
    old.signal("HUP");
    let reloaded = block(|| old.wait_json("the reload", |v| v["event"] == "reload"));
    assert_eq!(reloaded["result"], "ok", "{reloaded}");
    assert_eq!(reloaded["generation"], 2, "{reloaded}");
    assert_eq!(reloaded["servers_kept"], 3, "{reloaded}");
    for s in &sessions {
        still_works(s, "after the reload").await;
    }
    watch.wait_for_more(20).await;

    // Upgrade: a new process takes every listener over, admin included.
    let upgrading = std::time::Instant::now();
    let mut new = Lb::upgrade_to(&file, &sock);
    block(|| {
        new.wait_json("the new process taking over", |v| {
            v["event"] == "upgrade" && v["step"] == "took_over"
        })
    });
    block(|| {
        old.wait_json("the old process handing over", |v| {
            v["event"] == "upgrade" && v["step"] == "handed_over"
        })
    });
    let handover = upgrading.elapsed();
    // The handover happened: the admin API is now the new process's
    // (generation 1, no reload yet), while the old one still runs.
    eventually("the new process answering the admin API", || {
        status(admin).is_some_and(|s| s["config_generation"] == 1)
    })
    .await;
    watch.wait_for_more(50).await;
    assert!(
        old.child.try_wait().unwrap().is_none(),
        "the old process exited with sessions open"
    );
    for s in &sessions {
        still_works(s, "after the upgrade").await;
    }
    // The old process exits once its sessions have ended.
    for s in sessions.drain(..) {
        s.close(200, "done").await.unwrap();
    }
    exits_cleanly(&mut old, "the old process");
    let (polls, connects) = watch.stop();
    assert!(
        new.child.try_wait().unwrap().is_none(),
        "the new process must keep serving"
    );

    // Stop (SIGTERM): listeners close, open sessions are served to the end.
    let last = connect(&uri).await;
    new.signal("TERM");
    block(|| new.wait_json("the stop", |v| v["event"] == "stop"));
    eventually("the frontend to refuse new clients", || {
        std::net::TcpStream::connect(frontend).is_err()
    })
    .await;
    still_works(&last, "while stopping").await;
    last.close(200, "done").await.unwrap();
    exits_cleanly(&mut new, "the stopped process");
    println!(
        "{deployment}: reload, upgrade (handover in {handover:?}) and stop with the shipped config: {polls} admin requests all ready, {connects} new clients all served, 5 sessions kept"
    );
}

/// Runs a blocking wait (a child's log lines) off the async workers.
fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    let mut cond = cond;
    common::eventually_within(PATIENCE, what, || block(&mut cond)).await
}

fn status(admin: SocketAddr) -> Option<serde_json::Value> {
    match admin_fetch(admin, "/status") {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

fn all_up(admin: SocketAddr) -> bool {
    status(admin).is_some_and(|s| {
        s["backends"].as_array().is_some_and(|bs| {
            bs.iter().all(|b| {
                b["servers"].as_array().is_some_and(|ss| {
                    ss.iter()
                        .all(|s| s["state"] == "UP" && !s["last_check"].is_null())
                })
            })
        })
    })
}

async fn connect(uri: &str) -> Connection {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    tokio::time::timeout(PATIENCE, Connection::connect(uri, props))
        .await
        .expect("AMQP connect in time")
        .expect("AMQP connect through warren-lb")
}

/// A round trip to the broker on an established session.
async fn still_works(c: &Connection, when: &str) {
    let channel = tokio::time::timeout(PATIENCE, c.create_channel())
        .await
        .unwrap_or_else(|_| panic!("no channel in time {when}"))
        .unwrap_or_else(|e| panic!("the session broke {when}: {e}"));
    channel.close(200, "ok").await.unwrap();
}

fn exits_cleanly(lb: &mut Lb, what: &str) {
    let status = block(|| lb.exited(what));
    assert!(status.success(), "{what}: {status}");
}

/// The admin API and the frontend, exercised continuously from threads.
struct Watch {
    stop: Arc<AtomicBool>,
    polls: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Vec<String>>>,
    connects: Arc<AtomicU64>,
}

impl Watch {
    fn start(admin: SocketAddr, frontend: SocketAddr) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(AtomicU64::new(0));
        let connects = Arc::new(AtomicU64::new(0));
        let poller = readyz_poller(admin, stop.clone(), polls.clone());
        let connector = {
            let (stop, connects) = (stop.clone(), connects.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = greeted(frontend) {
                        failures.push(format!("new client: {e}"));
                    }
                    connects.fetch_add(1, Ordering::Relaxed);
                    // Paced: every client costs the broker a handshake.
                    std::thread::sleep(Duration::from_millis(20));
                }
                failures
            })
        };
        Watch {
            stop,
            polls,
            threads: vec![poller, connector],
            connects,
        }
    }

    /// Waits until the admin API answered `n` more requests.
    async fn wait_for_more(&self, n: u64) {
        let from = self.polls.load(Ordering::Relaxed);
        eventually("more admin requests", || {
            self.polls.load(Ordering::Relaxed) >= from + n
        })
        .await;
    }

    /// Stops the threads; fails the test with every failure they saw.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let failures: Vec<String> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert!(
            failures.is_empty(),
            "{} failures: {failures:?}",
            failures.len()
        );
        (
            self.polls.load(Ordering::Relaxed),
            self.connects.load(Ordering::Relaxed),
        )
    }
}

/// A new AMQP client: connects and gets the broker's Connection.Start.
fn greeted(frontend: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(frontend)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"AMQP\x00\x00\x09\x01")?;
    let mut frame_type = [0u8; 1];
    s.read_exact(&mut frame_type)?;
    if frame_type[0] != 1 {
        return Err(std::io::Error::other(format!(
            "expected a method frame (Connection.Start), got frame type {}",
            frame_type[0]
        )));
    }
    Ok(())
}
