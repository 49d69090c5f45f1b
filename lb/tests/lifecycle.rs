//! The process lifecycle in process: reload, stop and upgrade through
//! [`warren_lb::process`] and a [`Control`], the same loop the binary runs
//! on SIGHUP, SIGTERM and `--upgrade-from` (cli.rs proves the binary's
//! signals reach it).

use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use warren_lb::process::{Commands, Control, Drain, Options, Process, Stopped};

mod common;
use common::{echoes, eventually_async, who, PATIENCE};

/// One frontend on a free port to backend `b` with these servers (no
/// checks: the servers count as UP from the start).
fn write_config(file: &Path, global: &str, servers: &[(&str, SocketAddr)]) {
    let mut c = format!(
        "{global}\n[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\nbalance = \"first\"\n"
    );
    for (name, addr) in servers {
        c.push_str(&format!(
            "[[backend.server]]\nname = \"{name}\"\naddress = \"{addr}\"\n"
        ));
    }
    std::fs::write(file, c).unwrap();
}

/// A stop after which every session ended by itself.
const DRAINED: Stopped = Stopped {
    handed_over: false,
    drain: Drain::Complete,
};

fn options(file: &Path) -> Options {
    Options {
        config: file.to_owned(),
        upgrade_socket: None,
        upgrade_from: None,
    }
}

/// A balancer serving `options` with a [`Control`] in place of signals,
/// and where its frontend listens.
struct Served {
    control: Control,
    serving: JoinHandle<Stopped>,
    live: std::sync::Arc<warren_lb::live::Live>,
    frontend: SocketAddr,
}

async fn serve(options: Options) -> Served {
    let config = warren_lb::config::load(&options.config).unwrap();
    let process = Process::start(config, options).await.unwrap();
    let (control, commands) = Commands::control();
    Served {
        control,
        live: process.live(),
        frontend: process.listening()[0],
        serving: tokio::spawn(process.serve(commands)),
    }
}

/// A balancer (with `global` on top of its file) in front of one server,
/// and the directory its file is in.
async fn in_front_of_one(global: &str) -> (Served, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    let one = common::named("one").await;
    write_config(&file, global, &[("one", one.addr)]);
    (serve(options(&file)).await, dir)
}

impl Served {
    /// Waits for the serving loop to end, at most [`PATIENCE`].
    async fn stopped(self) -> Stopped {
        tokio::time::timeout(PATIENCE, self.serving)
            .await
            .expect("the balancer stops in time")
            .unwrap()
    }
}

/// Waits until `addr` refuses connections (its listener is closed).
async fn refused(addr: SocketAddr) {
    eventually_async("the frontend to refuse", || async move {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
}

#[tokio::test]
async fn a_reload_rereads_the_file_and_a_broken_file_keeps_the_generation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    let (one, two) = (common::named("one").await, common::named("two").await);
    write_config(&file, "", &[("one", one.addr)]);
    let lb = serve(options(&file)).await;

    // A misspelt key on line 9.
    std::fs::write(
        &file,
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"one\"\nadress = \"x\"\n",
    )
    .unwrap();
    let error = lb.control.reload().await.unwrap_err();
    assert!(
        error.contains(&format!("{}:9", file.display())),
        "the error names the file and line: {error}"
    );
    assert_eq!(lb.live.current().number, 1);
    assert_eq!(
        lb.live
            .reloads_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(who(lb.frontend).await.0, "one");

    // "two" first: new sessions follow the new generation's order.
    write_config(&file, "", &[("two", two.addr), ("one", one.addr)]);
    let reloaded = lb.control.reload().await.unwrap();
    assert_eq!(reloaded.generation, 2);
    assert_eq!((reloaded.servers_kept, reloaded.servers_added), (1, 1));
    assert_eq!(lb.live.current().number, 2);
    assert_eq!(who(lb.frontend).await.0, "two");

    lb.control.stop();
    let control = lb.control.clone();
    assert_eq!(lb.stopped().await, DRAINED);
    assert!(
        control.reload().await.is_err(),
        "a stopped balancer reloads nothing"
    );
}

#[tokio::test]
async fn a_stop_closes_the_listeners_and_waits_for_the_open_sessions() {
    let (lb, _dir) = in_front_of_one("").await;
    let (_, mut session) = who(lb.frontend).await;

    lb.control.stop();
    refused(lb.frontend).await;
    // The open session is still served, and the balancer waits for it.
    echoes(&mut session, b"while draining").await;
    assert!(!lb.serving.is_finished(), "stopped with a session open");
    drop(session);
    assert_eq!(lb.stopped().await, DRAINED);
}

#[tokio::test]
async fn a_second_stop_ends_the_drain_at_once() {
    let (lb, _dir) = in_front_of_one("").await;
    let (_, _session) = who(lb.frontend).await;

    lb.control.stop();
    refused(lb.frontend).await;
    lb.control.stop();
    assert_eq!(lb.stopped().await.drain, Drain::SecondStop);
}

#[tokio::test]
async fn hard_stop_after_ends_the_drain() {
    let (lb, _dir) = in_front_of_one("[global]\nhard_stop_after = \"200ms\"").await;
    let (_, _session) = who(lb.frontend).await;

    lb.control.stop();
    assert_eq!(lb.stopped().await.drain, Drain::HardStopAfter(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_hands_the_listener_to_the_new_process_without_cutting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    let sock = dir.path().join("upgrade.sock");
    let one = common::named("one").await;
    write_config(&file, "", &[("one", one.addr)]);
    let old = serve(Options {
        upgrade_socket: Some(sock.clone()),
        ..options(&file)
    })
    .await;
    let (_, mut established) = who(old.frontend).await;

    let new = serve(Options {
        upgrade_socket: Some(sock.clone()),
        upgrade_from: Some(sock.clone()),
        ..options(&file)
    })
    .await;
    assert_eq!(new.frontend, old.frontend, "the same listening socket");
    // The old process stops accepting once the new one is ready, and
    // serves its session until it ends.
    echoes(&mut established, b"after the handover").await;
    assert_eq!(who(new.frontend).await.0, "one");
    drop(established);
    assert_eq!(
        old.stopped().await,
        Stopped {
            handed_over: true,
            drain: Drain::Complete
        }
    );
    assert!(sock.exists(), "the new process serves the next upgrade");
    new.control.stop();
    new.stopped().await;
}

#[tokio::test]
async fn a_failed_start_closes_what_it_had_opened() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    let one = common::named("one").await;
    let bind = common::process::free_port();
    std::fs::write(
        &file,
        format!("[[frontend]]\nname = \"f\"\nbind = \"{bind}\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"one\"\naddress = \"{}\"\n", one.addr),
    )
    .unwrap();
    let config = warren_lb::config::load(&file).unwrap();
    // The frontend binds, then the upgrade socket cannot: its directory
    // is a file.
    let not_a_directory = dir.path().join("file");
    std::fs::write(&not_a_directory, "").unwrap();
    let upgrade_socket = not_a_directory.join("upgrade.sock");
    let started = Process::start(
        config,
        Options {
            upgrade_socket: Some(upgrade_socket.clone()),
            ..options(&file)
        },
    )
    .await;
    let Err(error) = started else {
        panic!("started with an upgrade socket that cannot be bound");
    };
    assert!(
        error.to_string().starts_with(&format!(
            "cannot listen for upgrades on {}: ",
            upgrade_socket.display()
        )),
        "{error}"
    );
    refused(bind).await;
}
