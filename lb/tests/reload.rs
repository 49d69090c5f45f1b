//! Reload (in process, the same code SIGHUP runs): established sessions are
//! untouched, kept servers keep their state, removed servers drain (or are
//! cut at hard_stop_after), a failed reload changes nothing, and a reload
//! under load drops and refuses nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren_lb::server::AdminState;

mod common;
use common::config::one_backend;
use common::{closes, echo, echoes, start, who, PATIENCE};

fn config(global: &str, servers: &[(&str, SocketAddr)]) -> warren_lb::config::Config {
    let config = one_backend()
        .global(global)
        .admin()
        .backend_keys("balance = \"first\"")
        .check("");
    servers
        .iter()
        .fold(config, |config, (name, addr)| config.server(name, addr))
        .parse()
}

#[tokio::test]
async fn reload_adds_and_removes_servers_while_sessions_stay_open() {
    let (one, two, three) = (
        common::named("one").await.addr,
        common::named("two").await.addr,
        common::named("three").await.addr,
    );
    let (lb, addr) = start(config("", &[("one", one), ("two", two)])).await;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        let (name, s) = who(addr).await;
        assert_eq!(name, "one");
        sessions.push(s);
    }
    let old_one = lb.backends()[0].servers[0].clone();
    let old_two = lb.backends()[0].servers[1].clone();
    lb.backends()[0].set_admin(1, AdminState::Drain);
    let downs_before = old_two.counters.downs.load(Ordering::Relaxed);

    // one removed, two kept (drained by the operator), three new.
    let r = lb
        .reload(config("", &[("two", two), ("three", three)]))
        .await
        .unwrap();
    assert_eq!(r.generation, 2);
    assert_eq!(
        (
            r.servers_kept,
            r.servers_added,
            r.servers_removed,
            r.binds_opened,
            r.binds_closed
        ),
        (1, 1, 1, 0, 0)
    );
    assert_eq!(lb.generation(), 2);
    assert_eq!(
        lb.listening_now().await,
        vec![addr],
        "unchanged bind, same socket"
    );
    let now = lb.backends();
    assert!(
        Arc::ptr_eq(&now[0].servers[0], &old_two),
        "a kept server keeps its state object"
    );
    assert_eq!(now[0].servers[0].admin(), AdminState::Drain);
    assert_eq!(
        now[0].servers[0].counters.downs.load(Ordering::Relaxed),
        downs_before
    );
    assert!(
        now[0].servers[1].is_up(),
        "a new server starts UP (HAProxy)"
    );

    // New clients: two is drained, so three.
    assert_eq!(who(addr).await.0, "three");
    // Old sessions to the removed server keep working.
    for s in &mut sessions {
        echoes(s, b"still here").await;
    }
    assert_eq!(old_one.counters.sessions.load(Ordering::Acquire), 5);
    // The admin API and metrics follow the new generation.
    let base = format!("http://{}", lb.admin.unwrap());
    let status: serde_json::Value = reqwest::get(format!("{base}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["config_generation"], 2);
    let names: Vec<_> = status["backends"][0]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["two", "three"]);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\nwarren_lb_config_generation 2\n"));
    assert!(metrics.contains("warren_lb_config_reloads_total{result=\"ok\"} 1\n"));
    assert!(!metrics.contains("server=\"one\""));
    for mut s in sessions {
        echoes(&mut s, b"bye").await;
    }
    lb.shutdown().await;
}

#[tokio::test]
async fn hard_stop_after_closes_sessions_of_a_removed_server() {
    let (one, two) = (
        common::named("one").await.addr,
        common::named("two").await.addr,
    );
    let (lb, addr) = start(config("", &[("one", one)])).await;
    let (name, mut session) = who(addr).await;
    assert_eq!(name, "one");
    lb.reload(config(
        "[global]\nhard_stop_after = \"300ms\"",
        &[("two", two)],
    ))
    .await
    .unwrap();
    let reloaded = std::time::Instant::now();
    // Drained, not cut: the old session still works after the reload ...
    echoes(&mut session, b"alive").await;
    assert_eq!(who(addr).await.0, "two");
    closes(&mut session, "the drained session at hard_stop_after").await;
    // ... until hard_stop_after (a lower bound only: never flaky).
    assert!(
        reloaded.elapsed() >= Duration::from_millis(250),
        "cut after {:?}",
        reloaded.elapsed()
    );
    lb.shutdown().await;
}

#[tokio::test]
async fn a_failed_reload_changes_nothing() {
    let one = common::named("one").await.addr;
    let (lb, addr) = start(config("", &[("one", one)])).await;
    let (_, mut session) = who(addr).await;
    // A new frontend on a port that is taken: the reload must fail whole.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let text = format!(
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[frontend]]\nname = \"g\"\nbind = \"{}\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"other\"\naddress = \"127.0.0.1:1\"\n",
        taken.local_addr().unwrap()
    );
    let err = lb
        .reload(warren_lb::config::parse(&text).unwrap())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("frontend 'g': cannot listen on"),
        "{err:#}"
    );
    assert_eq!(lb.generation(), 1);
    assert_eq!(lb.live.reloads_failed.load(Ordering::Relaxed), 1);
    assert_eq!(lb.backends()[0].servers[0].config.name, "one");
    assert_eq!(who(addr).await.0, "one");
    echoes(&mut session, b"untouched").await;
    lb.shutdown().await;
}

#[tokio::test]
async fn reload_opens_new_binds_and_closes_removed_ones() {
    let one = common::named("one").await.addr;
    let (lb, addr) = start(config("", &[("one", one)])).await;
    let (_, mut session) = who(addr).await;
    // Replace the frontend's bind: port 0 → a fixed free port.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = free.local_addr().unwrap();
    drop(free);
    let text = format!(
        "[[frontend]]\nname = \"f\"\nbind = \"{port}\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"one\"\naddress = \"{one}\"\n"
    );
    let r = lb
        .reload(warren_lb::config::parse(&text).unwrap())
        .await
        .unwrap();
    assert_eq!((r.binds_opened, r.binds_closed), (1, 1));
    assert_eq!(who(port).await.0, "one");
    let deadline = std::time::Instant::now() + PATIENCE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "old bind never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    echoes(&mut session, b"the session outlives its listener").await;
    lb.shutdown().await;
}

#[tokio::test]
async fn reload_moves_the_admin_api_and_a_taken_admin_port_fails_it() {
    let one = common::named("one").await.addr;
    let (lb, addr) = start(config("", &[("one", one)])).await;
    let first = lb.admin.unwrap();
    let healthz = |at: SocketAddr| async move {
        reqwest::get(format!("http://{at}/healthz"))
            .await
            .map(|r| r.status().as_u16())
            .ok()
    };
    assert_eq!(healthz(first).await, Some(200));
    let with_admin = |bind: SocketAddr| {
        let text = format!(
            "[admin]\nbind = \"{bind}\"\n[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"one\"\naddress = \"{one}\"\n"
        );
        warren_lb::config::parse(&text).unwrap()
    };

    // A port that is taken: the reload fails whole, the old API serves.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = lb
        .reload(with_admin(taken.local_addr().unwrap()))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("admin: cannot listen on"),
        "{err:#}"
    );
    assert_eq!(lb.generation(), 1);
    assert_eq!(lb.admin_now().await, Some(first));
    assert_eq!(healthz(first).await, Some(200));

    // A free port: the API moves there, the old port closes.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let moved = free.local_addr().unwrap();
    drop(free);
    lb.reload(with_admin(moved)).await.unwrap();
    assert_eq!(lb.admin_now().await, Some(moved));
    assert_eq!(healthz(moved).await, Some(200));
    common::eventually_async("the old admin port to close", || async {
        TcpStream::connect(first).await.is_err()
    })
    .await;

    // No [admin] table: no admin API.  Client traffic never noticed.
    let text = format!(
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"one\"\naddress = \"{one}\"\n"
    );
    lb.reload(warren_lb::config::parse(&text).unwrap())
        .await
        .unwrap();
    assert_eq!(lb.admin_now().await, None);
    common::eventually_async("the admin port to close", || async {
        TcpStream::connect(moved).await.is_err()
    })
    .await;
    assert_eq!(who(addr).await.0, "one");
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_drop_and_refuse_nothing() {
    const CLIENTS: usize = 200;
    const RELOADS: usize = 20;
    let (a, b, c) = (echo().await, echo().await, echo().await);
    let two = |extra: bool| {
        let mut servers = vec![("a", a), ("b", b)];
        if extra {
            servers.push(("c", c));
        }
        let mut cfg = config("", &servers);
        cfg.backends[0].balance = warren_lb::config::Balance::RoundRobin;
        cfg
    };
    let (lb, addr) = start(two(false)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let exchanges = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));

    // Long-lived clients: connected before the first reload, echoing
    // until after the last one.
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (stop, exchanges, errors) = (stop.clone(), exchanges.clone(), errors.clone());
        clients.push(tokio::spawn(async move {
            let run = async {
                let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                let payload: Vec<u8> = (0..512).map(|k| ((k + i) % 251) as u8).collect();
                let mut buf = vec![0u8; payload.len()];
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) || rounds == 0 {
                    s.write_all(&payload).await.map_err(|e| e.to_string())?;
                    tokio::time::timeout(PATIENCE, s.read_exact(&mut buf))
                        .await
                        .map_err(|_| "echo timed out".to_string())?
                        .map_err(|e| format!("round {rounds}: {e}"))?;
                    if buf != payload {
                        return Err("corrupted echo".to_string());
                    }
                    rounds += 1;
                    exchanges.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok::<u64, String>(rounds)
            };
            if let Err(e) = run.await {
                errors.lock().unwrap().push(format!("client {i}: {e}"));
            }
        }));
    }
    // Churn: new connections all through the reloads (a refused connect
    // or a session without an answer would show here).
    let mut churners = Vec::new();
    for c in 0..8 {
        let (stop, errors) = (stop.clone(), errors.clone());
        churners.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let one = async {
                    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                    s.write_all(b"hi").await.map_err(|e| e.to_string())?;
                    let mut buf = [0u8; 2];
                    tokio::time::timeout(PATIENCE, s.read_exact(&mut buf))
                        .await
                        .map_err(|_| "timed out".to_string())?
                        .map_err(|e| e.to_string())?;
                    Ok::<(), String>(())
                };
                if let Err(e) = one.await {
                    errors
                        .lock()
                        .unwrap()
                        .push(format!("churner {c}, new connection {n}: {e}"));
                }
                n += 1;
            }
            n
        }));
    }
    // Wait until every client is in, then reload repeatedly.
    let deadline = std::time::Instant::now() + PATIENCE;
    while exchanges.load(Ordering::Relaxed) < CLIENTS as u64 * 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "clients never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..RELOADS {
        lb.reload(two(i % 2 == 0)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let mut connections = 0;
    for c in churners {
        connections += c.await.unwrap();
    }
    let errors = std::mem::take(&mut *errors.lock().unwrap());
    assert!(
        errors.is_empty(),
        "{} failures: {:?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert_eq!(lb.generation(), 1 + RELOADS as u64);
    assert!(
        connections >= RELOADS as u64,
        "too few new connections ({connections}) to prove anything"
    );
    println!(
        "{CLIENTS} clients, {RELOADS} reloads: {} exchanges, {connections} new connections, 0 failures",
        exchanges.load(Ordering::Relaxed)
    );
    lb.shutdown().await;
}

#[tokio::test]
async fn graceful_stop_closes_listeners_and_waits_for_sessions() {
    let one = common::named("one").await.addr;
    let (lb, addr) = start(config("", &[("one", one)])).await;
    let (_, mut session) = who(addr).await;
    // With a deadline and a session that stays: gives up, reports it.
    let asked = std::time::Instant::now();
    let left = lb.drain(Some(Duration::from_millis(300))).await;
    assert_eq!(left, 1);
    assert!(
        asked.elapsed() >= Duration::from_millis(250),
        "gave up after {:?}",
        asked.elapsed()
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections"
    );
    echoes(&mut session, b"still served while draining").await;
    // Without a deadline: returns once the last session ends.
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(session);
    });
    let asked = std::time::Instant::now();
    let left = tokio::time::timeout(PATIENCE, lb.drain(None))
        .await
        .expect("drain ends when the sessions do");
    assert_eq!(left, 0);
    assert!(
        asked.elapsed() >= Duration::from_millis(150),
        "returned after {:?} while a session was open",
        asked.elapsed()
    );
    closer.await.unwrap();
    lb.shutdown().await;
}

#[tokio::test]
async fn a_reload_that_turns_checks_off_brings_a_down_server_back() {
    let ghost = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (lb, _) = start(config("", &[("ghost", ghost)])).await;
    let server = lb.backends()[0].servers[0].clone();
    let deadline = std::time::Instant::now() + PATIENCE;
    while server.is_up() {
        assert!(std::time::Instant::now() < deadline, "never marked down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Without checks nothing could ever bring it back, so the reload does:
    // unchecked servers are UP, as at start-up.
    let unchecked = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"ghost\"\naddress = \"{ghost}\"\n"
    );
    lb.reload(warren_lb::config::parse(&unchecked).unwrap())
        .await
        .unwrap();
    let kept = lb.backends()[0].servers[0].clone();
    assert!(Arc::ptr_eq(&kept, &server), "the same server, kept");
    assert!(kept.is_up() && kept.is_eligible());
    lb.shutdown().await;
}
