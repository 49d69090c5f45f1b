//! Descriptors, with the real `warren-lb` binary: an open-files limit that
//! runs out is the balancer's problem, never the server's (issue 13,
//! defect 5), and an idle session costs two descriptors, as in HAProxy.
//!
//! The configuration is the Ansible role's `lb.toml` with its defaults
//! (admin API, `maxconn` 4096, `timeout_first_byte`, `observe layer4`,
//! `on_error = "mark-down"`, `on_marked_down = "shutdown-sessions"`,
//! `redispatch`, 1 s checks); only the check is `tcp`, the backend being a
//! plain TCP echo server rather than RabbitMQ.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::resource::{setrlimit, Resource};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::process::Lb;

const PATIENCE: Duration = Duration::from_secs(60);

fn config(backend: SocketAddr) -> String {
    format!(
        r#"[admin]
bind = "127.0.0.1:0"

[[frontend]]
name = "amqp"
bind = "127.0.0.1:0"
backend = "rabbitmq"
maxconn = 4096
timeout_first_byte = "5s"

[[backend]]
name = "rabbitmq"
balance = "first"
allbackups = false
redispatch = true
observe = "layer4"
on_error = "mark-down"
on_marked_down = "shutdown-sessions"
on_marked_up = "none"
failback = "immediate"
timeout_connect = "1s"
timeout_idle = "0s"

[backend.check]
type = "tcp"
inter = "1s"
fastinter = "200ms"
downinter = "1s"
rise = 2
fall = 2
timeout = "1s"

[[backend.server]]
name = "sink"
address = "{backend}"
role = "primary"
weight = 1
maxconn = 0
"#
    )
}

/// The balancer process ([`Lb`]: killed on drop) and where it listens.
struct Balancer {
    lb: Lb,
    frontend: SocketAddr,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Balancer {
    /// Starts warren-lb for `backend`; with `open_files`, its soft and hard
    /// RLIMIT_NOFILE are set to that before exec (it cannot raise them).
    fn start(backend: SocketAddr, open_files: Option<u64>) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lb.toml");
        std::fs::write(&file, config(backend)).unwrap();
        let mut command = common::process::lb();
        command
            .arg("--config")
            .arg(&file)
            .arg("--log-format")
            .arg("json")
            .stdin(Stdio::null());
        if let Some(limit) = open_files {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    setrlimit(Resource::RLIMIT_NOFILE, limit, limit).map_err(std::io::Error::from)
                });
            }
        }
        let mut lb = Lb::spawn(command);
        let admin = lb.wait_json("the admin API listening", |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("admin API listening on "))
        });
        let admin = format!(
            "http://{}",
            admin["message"]
                .as_str()
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
        );
        let frontend = lb.frontend("amqp");
        lb.wait_text("started with");
        Balancer {
            lb,
            frontend,
            admin,
            _dir: dir,
        }
    }

    async fn status(&self) -> Value {
        http_get(&format!("{}/status", self.admin))
            .await
            .parse()
            .unwrap()
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = http_get(&format!("{}/metrics", self.admin)).await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
            .parse()
            .unwrap()
    }

    /// Open descriptors of the process: (sockets, pipes, all).
    fn fds(&self) -> (usize, usize, usize) {
        let (mut sockets, mut pipes, mut all) = (0, 0, 0);
        for entry in std::fs::read_dir(format!("/proc/{}/fd", self.lb.child.id())).unwrap() {
            let Ok(target) = std::fs::read_link(entry.unwrap().path()) else {
                continue; // closed meanwhile
            };
            let target = target.to_string_lossy().into_owned();
            all += 1;
            sockets += usize::from(target.starts_with("socket:"));
            pipes += usize::from(target.starts_with("pipe:"));
        }
        (sockets, pipes, all)
    }
}

/// The admin API answers even when the balancer is at its limit: its
/// accept spends its descriptor reserve (lb/src/accept_reserve.rs).
async fn http_get(url: &str) -> String {
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let resp = client.get(url).send().await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.text().await.unwrap()
}

/// What became of a client.
enum Client {
    /// Relayed: its bytes came back.
    Established(TcpStream),
    /// Closed by the balancer without a byte back.
    Refused,
    /// Neither within the patience: still waiting in the backlog.
    Queued,
}

/// Sends `what` and waits for it to come back.
async fn exchange(s: &mut TcpStream, what: &[u8]) -> std::io::Result<bool> {
    s.write_all(what).await?;
    let mut buf = vec![0u8; what.len()];
    match s.read_exact(&mut buf).await {
        Ok(_) => Ok(buf == what),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

async fn client(lb: SocketAddr, i: usize) -> Client {
    let mut s = TcpStream::connect(lb).await.unwrap();
    let hello = format!("hello {i}\n");
    match tokio::time::timeout(PATIENCE, exchange(&mut s, hello.as_bytes())).await {
        Ok(Ok(true)) => Client::Established(s),
        Ok(Ok(false)) | Ok(Err(_)) => Client::Refused,
        Err(_) => Client::Queued,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_open_files_limit_excess_clients_are_refused_and_the_server_stays_up() {
    const OPEN_FILES: u64 = 128;
    const CLIENTS: usize = 150;
    let backend = common::echo().await;
    let mut lb = Balancer::start(backend, Some(OPEN_FILES));
    // The balancer knows it cannot hold maxconn at this limit.
    assert!(
        lb.lb.logged().iter().any(|v| v["message"]
            .as_str()
            .is_some_and(|m| m.contains("open files limit is 128"))),
        "{:#?}",
        lb.lb.seen
    );
    let frontend = lb.frontend;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(frontend, i)))
        .collect();
    let mut established = Vec::new();
    let (mut refused, mut queued) = (0u64, 0u64);
    for c in clients {
        match c.await.unwrap() {
            Client::Established(s) => established.push(s),
            Client::Refused => refused += 1,
            Client::Queued => queued += 1,
        }
    }
    // The fault happened: the limit ran out, not every client got through.
    assert!(
        refused + queued > 0,
        "all {CLIENTS} sessions established: the limit was not reached"
    );
    // The server was never blamed ...
    let status = lb.status().await;
    let server = &status["backends"][0]["servers"][0];
    let log = lb.lb.logged();
    let downs: Vec<&str> = log
        .iter()
        .filter_map(|v| v["message"].as_str())
        .filter(|m| m.contains("is DOWN"))
        .collect();
    assert!(downs.is_empty(), "the server was marked down: {downs:#?}");
    assert_eq!(server["state"], "UP", "{status:#}");
    assert_eq!(server["downs"], 0, "{status:#}");
    assert_eq!(server["connect_errors"], 0, "{status:#}");
    // ... and every established session survived and still relays.
    assert!(!established.is_empty(), "no session was established");
    assert_eq!(server["sessions"], established.len(), "{status:#}");
    for (i, s) in established.iter_mut().enumerate() {
        let again = format!("again {i}\n");
        assert!(
            exchange(s, again.as_bytes()).await.unwrap(),
            "established session {i} was closed"
        );
    }
    // The balancer said what ran out (one rate-limited line) ...
    let shortage = lb
        .lb
        .logged()
        .iter()
        .find(|v| v["event"] == "resource_error")
        .cloned()
        .unwrap_or_else(|| panic!("no resource_error line in:\n{:#?}", lb.lb.seen));
    assert_eq!(
        shortage["resource"],
        "process open files limit reached (RLIMIT_NOFILE)"
    );
    // ... the excess clients were refused (or are still queued), and the
    // local-error counter says how many were refused.
    assert_eq!(established.len() as u64 + refused + queued, CLIENTS as u64);
    assert!(refused > 0, "no client was refused");
    let counted = status["resource_errors"]["connect"].as_u64().unwrap_or(0);
    assert!(
        (refused..=refused + queued).contains(&counted),
        "{counted} connect resource errors for {refused} refused and {queued} queued clients: {status:#}"
    );
    eprintln!(
        "{} established, {refused} refused, {queued} queued; resource errors {}",
        established.len(),
        status["resource_errors"]
    );
    // /status above was answered at the limit (from the admin API's
    // descriptor reserve); /metrics is read once the sessions have gone, as
    // the reserve is not yet given back while descriptors stay short.
    // Clients that gave up while queued are still in the listen backlog: the
    // balancer may accept them later and fail their connect too, so the
    // counter can only have grown by at most that many.
    drop(established);
    let connect_errors = lb
        .metric("warren_lb_process_resource_errors_total{phase=\"connect\"}")
        .await;
    assert!(
        (refused as f64..=(refused + queued) as f64).contains(&connect_errors),
        "connect resource errors {connect_errors}, expected {refused} refused \
         plus at most {queued} given-up queued clients"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_holds_two_descriptors() {
    const SESSIONS: usize = 300;
    let backend = common::echo().await;
    let lb = Balancer::start(backend, None);
    // One session first, so the pool has had its first pipes.
    let mut warm = TcpStream::connect(lb.frontend).await.unwrap();
    assert!(exchange(&mut warm, b"warm\n").await.unwrap());
    let (sockets_before, pipes_before, all_before) = lb.fds();
    let mut idle = Vec::new();
    for i in 0..SESSIONS {
        let mut s = TcpStream::connect(lb.frontend).await.unwrap();
        let hello = format!("hello {i}\n");
        assert!(exchange(&mut s, hello.as_bytes()).await.unwrap());
        idle.push(s);
    }
    let (sockets, pipes, all) = lb.fds();
    let per_session = (all - all_before) as f64 / SESSIONS as f64;
    eprintln!(
        "{SESSIONS} idle sessions: +{} sockets, +{} pipe fds, {per_session:.2} fds per session",
        sockets - sockets_before,
        pipes - pipes_before
    );
    // Client and server socket; a check's socket may be open meanwhile.
    assert!(
        sockets - sockets_before <= 2 * SESSIONS + 1,
        "+{} sockets for {SESSIONS} sessions",
        sockets - sockets_before
    );
    // Pipes belong to the shared pool, not to sessions: the sessions were
    // opened one after the other, so the pool needed a few at most.
    assert!(
        pipes - pipes_before <= 8,
        "+{} pipe fds for {SESSIONS} idle sessions",
        pipes - pipes_before
    );
    assert!(per_session <= 2.0 + 9.0 / SESSIONS as f64, "{per_session}");
    // Every pipe is back in the pool while the sessions are idle.
    assert_eq!(lb.metric("warren_lb_process_pipes_used").await, 0.0);
    drop(idle);
}
