//! The proxy against in-process backends: data path, routing and failover
//! rules, without RabbitMQ.  The real cluster is in `real_cluster.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren_lb::runtime::Running;
use warren_lb::server::AdminState;

mod common;
use common::config::{one_backend, OneBackend};
use common::{closes, eventually, named, named_on, start, who, PATIENCE};

/// Checks that mark a server that stops listening DOWN within a beat.
const FAST_TCP_CHECK: &str = "type = \"tcp\"\ntimeout = \"500ms\"";

/// `balance` over the one server `s` at `addr`, with no active check.
fn one_server(balance: &str, addr: SocketAddr) -> OneBackend {
    one_backend()
        .backend_keys(&format!("balance = \"{balance}\""))
        .server("s", addr)
}

/// `first` over the primary `p` and the backup `b`, with fast TCP checks
/// and the failover policy in `keys` (backend keys).
fn primary_and_backup(keys: &str, p: SocketAddr, b: SocketAddr) -> OneBackend {
    one_backend()
        .backend_keys(&format!("balance = \"first\"\n{keys}"))
        .check(FAST_TCP_CHECK)
        .server_with("p", p, "role = \"primary\"")
        .server_with("b", b, "role = \"backup\"")
}

#[tokio::test]
async fn large_transfer_with_half_close_in_both_directions() {
    // A backend that reads until EOF, then answers with the byte count and
    // a checksum, then closes: only works if the client's FIN is forwarded
    // while the server's direction stays open.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let (mut n, mut sum) = (0u64, 0u64);
        loop {
            let k = s.read(&mut buf).await.unwrap();
            if k == 0 {
                break;
            }
            n += k as u64;
            sum = buf[..k]
                .iter()
                .fold(sum, |a, &b| a.wrapping_mul(31).wrapping_add(b as u64));
        }
        s.write_all(format!("{n} {sum}").as_bytes()).await.unwrap();
    });
    let (lb, addr) = start(one_server("first", backend).parse()).await;
    let payload: Vec<u8> = (0..32 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let expect_sum = payload
        .iter()
        .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(b as u64));
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&payload).await.unwrap();
    c.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(PATIENCE, c.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, format!("{} {expect_sum}", payload.len()));
    let s = &lb.backends()[0].servers[0];
    assert_eq!(
        s.counters
            .bytes_in
            .load(std::sync::atomic::Ordering::Relaxed),
        payload.len() as u64
    );
    lb.shutdown().await;
}

#[tokio::test]
async fn many_concurrent_clients_each_get_their_own_bytes_back() {
    let b = named("echo").await;
    let (lb, addr) = start(one_server("roundrobin", b.addr).parse()).await;
    let clients: Vec<_> = (0..300)
        .map(|i| {
            tokio::spawn(async move {
                let (_, mut s) = who(addr).await;
                let msg = format!("client {i} says hello").repeat(100);
                s.write_all(msg.as_bytes()).await.unwrap();
                s.shutdown().await.unwrap();
                let mut back = String::new();
                s.read_to_string(&mut back).await.unwrap();
                assert_eq!(back, msg);
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    lb.shutdown().await;
}

#[tokio::test]
async fn a_backend_that_does_not_read_pushes_back_on_the_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(s);
    });
    let (lb, addr) = start(one_server("first", backend).parse()).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let chunk = vec![7u8; 1 << 20];
    let mut written = 0usize;
    // Without backpressure the balancer would swallow all 1 GiB.
    while written < 1 << 30 {
        match tokio::time::timeout(Duration::from_secs(2), c.write_all(&chunk)).await {
            Ok(r) => {
                r.unwrap();
                written += chunk.len();
            }
            Err(_) => break,
        }
    }
    assert!(
        written < 128 << 20,
        "client pushed {written} bytes into a backend that reads nothing"
    );
    hold.abort();
    lb.shutdown().await;
}

#[tokio::test]
async fn backup_takes_traffic_only_when_the_primary_is_gone_and_clients_see_no_error() {
    let p = named("primary").await;
    let b = named("backup").await;
    let (lb, addr) = start(primary_and_backup("", p.addr, b.addr).parse()).await;
    for _ in 0..5 {
        assert_eq!(who(addr).await.0, "primary");
    }
    p.stop_listening();
    // The very next client is redispatched to the backup on the failed
    // connect: it gets a session, not an error.
    assert_eq!(who(addr).await.0, "backup");
    assert!(
        !lb.backends()[0].servers[0].is_up(),
        "the failed connect marked the primary down at once"
    );
    lb.shutdown().await;
}

#[tokio::test]
async fn sessions_to_a_server_marked_down_are_closed() {
    let p = named("primary").await;
    let b = named("backup").await;
    let (lb, addr) = start(primary_and_backup("", p.addr, b.addr).parse()).await;
    let (name, mut session) = who(addr).await;
    assert_eq!(name, "primary");
    p.stop_listening(); // the check now fails; the session itself is healthy
    closes(&mut session, "the session to a server marked down").await;
    lb.shutdown().await;
}

#[tokio::test]
async fn without_shutdown_sessions_a_session_outlives_its_server_being_marked_down() {
    let p = named("primary").await;
    let b = named("backup").await;
    let config = primary_and_backup("on_marked_down = \"none\"", p.addr, b.addr);
    let (lb, addr) = start(config.parse()).await;
    let (_, mut session) = who(addr).await;
    p.stop_listening();
    let primary = lb.backends()[0].servers[0].clone();
    eventually("primary marked down", || !primary.is_up()).await;
    session.write_all(b"still here").await.unwrap();
    let mut buf = [0u8; 10];
    session.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still here");
    lb.shutdown().await;
}

/// [`primary_and_backup`] with the failback `policy`, and backup sessions
/// shut down when the primary returns.
fn failback_config(policy: &str, p: SocketAddr, b: SocketAddr) -> warren_lb::config::Config {
    let policy = format!("failback = \"{policy}\"\non_marked_up = \"shutdown-backup-sessions\"");
    primary_and_backup(&policy, p, b).parse()
}

async fn failback_case(
    policy: &str,
) -> (
    Running,
    SocketAddr,
    Arc<warren_lb::server::ServerState>,
    SocketAddr,
) {
    let p = named("primary").await;
    let b = named("backup").await;
    let primary_addr = p.addr;
    let (lb, addr) = start(failback_config(policy, p.addr, b.addr)).await;
    assert_eq!(who(addr).await.0, "primary");
    p.stop_listening();
    assert_eq!(who(addr).await.0, "backup");
    let primary = lb.backends()[0].servers[0].clone();
    (lb, addr, primary, primary_addr)
}

/// The primary listening again on its old port (for the rest of the test),
/// once its check has seen it UP.
async fn primary_returns(primary_addr: SocketAddr, primary: &warren_lb::server::ServerState) {
    named_on(TcpListener::bind(primary_addr).await.unwrap(), "primary");
    eventually("primary back up", || primary.is_up()).await;
}

#[tokio::test]
async fn manual_failback_waits_for_the_operator() {
    let (lb, addr, primary, primary_addr) = failback_case("manual").await;
    let (_, mut on_backup) = who(addr).await;
    primary_returns(primary_addr, &primary).await;
    assert!(primary.awaiting_failback());
    assert_eq!(
        who(addr).await.0,
        "backup",
        "an UP primary must wait for `ready` under manual failback"
    );
    lb.backends()[0].set_admin(0, AdminState::Ready);
    assert_eq!(who(addr).await.0, "primary");
    closes(&mut on_backup, "backup sessions are closed on failback").await;
    lb.shutdown().await;
}

#[tokio::test]
async fn failback_after_a_stable_period() {
    let (lb, addr, primary, primary_addr) = failback_case("after:2s").await;
    primary_returns(primary_addr, &primary).await;
    assert_eq!(
        who(addr).await.0,
        "backup",
        "still inside the stable period"
    );
    eventually("failback", || primary.is_eligible()).await;
    assert_eq!(who(addr).await.0, "primary");
    lb.shutdown().await;
}

#[tokio::test]
async fn a_reload_holds_a_waiting_primary_under_the_new_failback_policy() {
    let (lb, addr, primary, primary_addr) = failback_case("after:1h").await;
    primary_returns(primary_addr, &primary).await;
    assert!(primary.awaiting_failback());
    let backup_addr = match &lb.backends()[0].servers[1].config.address {
        warren_lb::config::Address::Ip(a) => *a,
        other => panic!("test backends listen on IPs, not {other}"),
    };
    let reload = |policy: &str| failback_config(policy, primary_addr, backup_addr);
    // manual: still held, now until an operator says so.
    lb.reload(reload("manual")).await.unwrap();
    assert!(primary.awaiting_failback());
    assert_eq!(who(addr).await.0, "backup");
    // immediate: released by the reload itself.
    lb.reload(reload("immediate")).await.unwrap();
    assert!(primary.is_eligible());
    assert_eq!(who(addr).await.0, "primary");
    lb.shutdown().await;
}

#[tokio::test]
async fn immediate_failback_is_the_default() {
    let (lb, addr, primary, primary_addr) = failback_case("immediate").await;
    primary_returns(primary_addr, &primary).await;
    assert_eq!(who(addr).await.0, "primary");
    lb.shutdown().await;
}

#[tokio::test]
async fn silent_and_garbage_clients_do_not_affect_others() {
    let b = named("echo").await;
    let (lb, addr) = start(one_server("first", b.addr).parse()).await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(&[0xff; 4096]).await.unwrap();
    drop(garbage);
    let (name, mut s) = who(addr).await;
    assert_eq!(name, "echo");
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    lb.shutdown().await;
}

#[tokio::test]
async fn no_server_available_closes_the_client_instead_of_hanging() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let config = one_server("first", dead).check(FAST_TCP_CHECK);
    let (lb, addr) = start(config.parse()).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    closes(&mut c, "a client with no server to go to").await;
    lb.shutdown().await;
}

#[tokio::test]
async fn idle_timeout_closes_quiet_sessions_when_set() {
    let b = named("echo").await;
    let config = one_server("first", b.addr).backend_keys("timeout_idle = \"300ms\"");
    let (lb, addr) = start(config.parse()).await;
    let (_, mut s) = who(addr).await;
    closes(&mut s, "a quiet session past timeout_idle").await;
    lb.shutdown().await;
}

#[tokio::test]
async fn frontend_maxconn_holds_new_clients_in_the_backlog() {
    let b = named("echo").await;
    let config = one_server("first", b.addr).frontend_keys("maxconn = 2");
    let (lb, addr) = start(config.parse()).await;
    let (_, first) = who(addr).await;
    let (_, _second) = who(addr).await;
    let mut third = TcpStream::connect(addr).await.unwrap(); // accepted by the kernel only
    let mut buf = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf))
            .await
            .is_err(),
        "a third session must wait while two are open"
    );
    drop(first);
    let mut greeting = [0u8; 5];
    tokio::time::timeout(PATIENCE, third.read_exact(&mut greeting))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&greeting, b"echo\n");
    lb.shutdown().await;
}

#[tokio::test]
async fn idle_clients_are_closed_after_timeout_first_byte_without_reaching_a_server() {
    // An echo backend that counts the connections it accepted.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let config =
        one_server("first", backend).frontend_keys("maxconn = 4\ntimeout_first_byte = \"300ms\"");
    let (lb, addr) = start(config.parse()).await;
    let mut established = TcpStream::connect(addr).await.unwrap();
    common::echoes(&mut established, b"AMQP\0\0\x09\x01").await;

    // A slowloris flood: connections that never send, filling maxconn.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // A real client behind them waits in the backlog, then is served once
    // the idle ones have been closed.
    let mut late = TcpStream::connect(addr).await.unwrap();
    common::echoes(&mut late, b"ping").await;
    for mut s in idle {
        closes(&mut s, "an idle client is closed, not served").await;
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "only the two clients that spoke reached the server"
    );
    assert_eq!(
        lb.live
            .first_byte_timeouts
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    common::echoes(&mut established, b"still served").await;
    lb.shutdown().await;
}

/// A backend that reads a PROXY header (v1 line or v2 binary) and answers
/// with the client address it announces, as "ip:port\n".
async fn proxy_aware() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 12];
                s.read_exact(&mut first).await.unwrap();
                let announced = if first.starts_with(b"PROXY ") {
                    let mut line = first.to_vec();
                    while !line.ends_with(b"\r\n") {
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).await.unwrap();
                        line.push(b[0]);
                    }
                    let text = String::from_utf8(line).unwrap();
                    let f: Vec<&str> = text.trim_end().split(' ').collect();
                    format!("v1 {}:{}", f[2], f[4])
                } else {
                    assert_eq!(&first, b"\r\n\r\n\0\r\nQUIT\n", "PROXY v2 signature");
                    let mut rest = [0u8; 4];
                    s.read_exact(&mut rest).await.unwrap();
                    assert_eq!(rest[0], 0x21);
                    assert_eq!(rest[1], 0x11);
                    let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
                    let mut body = vec![0u8; len];
                    s.read_exact(&mut body).await.unwrap();
                    let ip = std::net::Ipv4Addr::new(body[0], body[1], body[2], body[3]);
                    let port = u16::from_be_bytes([body[8], body[9]]);
                    format!("v2 {ip}:{port}")
                };
                s.write_all(format!("{announced}\n").as_bytes())
                    .await
                    .unwrap();
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn send_proxy_v1_and_v2_announce_the_real_client() {
    for version in ["v1", "v2"] {
        let backend = proxy_aware().await;
        let config = one_backend()
            .server_with("s", backend, &format!("send_proxy = \"{version}\""))
            .parse();
        let (lb, addr) = start(config).await;
        let (announced, mut s) = who(addr).await;
        assert_eq!(
            announced,
            format!("{version} {}", s.local_addr().unwrap()),
            "the header names the client, not the balancer"
        );
        s.write_all(b"payload after the header").await.unwrap();
        let mut buf = [0u8; 24];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"payload after the header");
        lb.shutdown().await;
    }
}
