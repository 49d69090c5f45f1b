//! Helpers shared by the in-process integration tests: the configs they
//! write, backends that say who they are or echo, starting a balancer in
//! process, and waiting for conditions with a deadline.

#![allow(dead_code)] // each test file uses its own subset

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub mod config;
pub mod process;
pub mod tls;

/// How long any single expected event may take before a test gives up.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A backend that greets with its name, then echoes.
pub struct Named {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

pub async fn named(name: &'static str) -> Named {
    // A backlog that holds the concurrent-client tests' bursts (the
    // default 128 overflows and costs SYN retransmits of seconds).
    let listener = warren_lb::runtime::listen("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
    named_on(listener, name)
}

pub fn named_on(listener: TcpListener, name: &'static str) -> Named {
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = s.write_all(format!("{name}\n").as_bytes()).await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Named { addr, task }
}

impl Named {
    /// Stops accepting (the port refuses) but keeps open sessions alive.
    pub fn stop_listening(&self) {
        self.task.abort();
    }
}

/// A backend that only echoes, for the life of the test.  Its backlog
/// holds the fd-limit and reload-under-load tests' bursts of clients.
pub async fn echo() -> SocketAddr {
    let listener = warren_lb::runtime::listen("127.0.0.1:0".parse().unwrap(), 4096).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Parses a test's config text; one that does not parse fails the test
/// naming every problem and showing the text.
pub fn parse(text: &str) -> warren_lb::config::Config {
    warren_lb::config::parse(text).unwrap_or_else(|p| panic!("bad test config: {p:#?}\n{text}"))
}

/// Starts a balancer in process; returns it and its first frontend's
/// address.
pub async fn start(config: warren_lb::config::Config) -> (warren_lb::runtime::Running, SocketAddr) {
    let running = warren_lb::runtime::start(config).await.unwrap();
    let addr = running.listening[0];
    (running, addr)
}

/// The base URL of a running balancer's admin API.
pub fn admin_url(lb: &warren_lb::runtime::Running) -> String {
    format!(
        "http://{}",
        lb.admin.expect("the config has an [admin] section")
    )
}

/// Connects through the balancer and returns the greeting's server name.
pub async fn who(lb: SocketAddr) -> (String, TcpStream) {
    let mut s = TcpStream::connect(lb).await.unwrap();
    let mut name = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut byte))
            .await
            .expect("greeting in time")
            .unwrap();
        if n == 0 {
            panic!(
                "connection closed before a greeting (got {:?})",
                String::from_utf8_lossy(&name)
            );
        }
        if byte[0] == b'\n' {
            return (String::from_utf8(name).unwrap(), s);
        }
        name.push(byte[0]);
    }
}

/// Sends `what` on an open session (a socket, or a TLS stream) and
/// expects it echoed back.
pub async fn echoes(
    s: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    what: &[u8],
) {
    s.write_all(what).await.unwrap();
    let mut buf = vec![0u8; what.len()];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("session still open");
    assert_eq!(buf, what);
}

/// Expects the balancer to close an open session (`what` says why it
/// should) within [`PATIENCE`], without a byte more.
pub async fn closes(s: &mut TcpStream, what: &str) {
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut byte))
        .await
        .unwrap_or_else(|_| panic!("{what}: not closed in time"));
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "{what}: expected a close, read {n:?}"
    );
}

/// Polls `cond` until it holds; fails the test after [`PATIENCE`].
pub async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    eventually_within(PATIENCE, what, cond).await
}

/// [`eventually`] with the caller's patience (a real cluster needs more).
pub async fn eventually_within(patience: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + patience;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {patience:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`], for a condition that has to await (a connect).
pub async fn eventually_async<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads an HTTP request up to the end of its head, for the fake
/// management APIs; `None` if the client closed or failed first.
pub async fn read_request_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A minimal AMQP Connection.Start (version 0-9, empty tables), as a
/// broker sends it after the client's protocol header.
pub fn connection_start() -> Vec<u8> {
    let mut p = vec![0, 10, 0, 10, 0, 9];
    p.extend_from_slice(&0u32.to_be_bytes()); // server-properties
    for long in [&b"PLAIN"[..], &b"en_US"[..]] {
        p.extend_from_slice(&(long.len() as u32).to_be_bytes());
        p.extend_from_slice(long);
    }
    let mut f = vec![1, 0, 0];
    f.extend_from_slice(&(p.len() as u32).to_be_bytes());
    f.extend_from_slice(&p);
    f.push(0xCE);
    f
}
