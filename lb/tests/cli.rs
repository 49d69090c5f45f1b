//! The `warren-lb` command line: check-config like `haproxy -c`, and the
//! real binary's signals, logs, limits and upgrades (the lifecycle loop
//! itself is tested in process in lifecycle.rs).

mod common;
use common::process::{admin_fetch, admin_get, free_port, lb, readyz_poller, wait_for_socket, Lb};

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    std::fs::write(
        &file,
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:5672\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"rabbit1:5672\"\n",
    )
    .unwrap();
    let out = lb().arg("check-config").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn check_config_lists_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    std::fs::write(
        &file,
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:5672\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[backend.check]\nrise = 0\n[[backend.server]]\nname = \"s\"\naddress = \"rabbit1\"\n[[backend.server]]\nname = \"s\"\naddress = \"10.0.0.1:5672\"\n",
    )
    .unwrap();
    let out = lb().arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    assert!(
        err.contains(&format!(
            "{f}:8: backend[b].check.rise: 0: expected a whole number from 1 to 1000"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:11: backend[b].server[s].address")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:13: backend[b].server[s].name: duplicate")),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn check_config_names_items_in_toml_errors_as_in_value_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    std::fs::write(
        &file,
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:5672\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"10.0.0.1:5672\"\nadress = \"10.0.0.1:5672\"\n",
    )
    .unwrap();
    let out = lb().arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:10: backend[b].server[s].adress: unknown field `adress`",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn a_missing_or_malformed_file_is_a_clear_error_not_a_panic() {
    let out = lb()
        .arg("check-config")
        .arg("/nonexistent/lb.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lb.toml: cannot read the file")
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    std::fs::write(&file, "[[frontend]\n").unwrap();
    let out = lb().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:1", file.display())));
}

#[test]
fn json_logs_state_changes_and_sighup_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    // s1 refuses (bound, then closed): its first check marks it DOWN.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let alive = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let alive_addr = alive.local_addr().unwrap();
    let base = "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[backend.check]\ninter = \"100ms\"\nrise = 1\nfall = 1\n";
    std::fs::write(
        &file,
        format!("{base}[[backend.server]]\nname = \"s1\"\naddress = \"{dead_addr}\"\n"),
    )
    .unwrap();
    let mut lb = Lb::start(&file, "json");
    let down = lb.wait_json("s1 DOWN", |v| v["event"] == "server_state");
    assert_eq!(down["server"], "b/s1");
    assert_eq!(down["old"], "UP");
    assert_eq!(down["new"], "DOWN");
    assert_eq!(down["level"], "WARN");
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .starts_with("Layer4 connection problem"),
        "{down}"
    );
    assert!(down["check_duration_ms"].is_u64(), "{down}");
    let message = down["message"].as_str().unwrap();
    assert!(
        message.starts_with("Server b/s1 is DOWN, reason: Layer4 connection problem")
            && message.contains("check duration: "),
        "{message}"
    );

    // A broken file: one precise error, the old generation keeps serving.
    std::fs::write(
        &file,
        format!("{base}[[backend.server]]\nname = \"s1\"\nadress = \"x\"\n"),
    )
    .unwrap();
    lb.signal("HUP");
    let failed = lb.wait_json("failed reload", |v| v["event"] == "reload");
    assert_eq!(failed["result"], "failed");
    assert_eq!(failed["generation"], 1);
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains(&format!("{}:13", file.display())), "{error}");

    // A good file: generation 2, s1 kept (still DOWN), s2 added.
    std::fs::write(
        &file,
        format!("{base}[[backend.server]]\nname = \"s1\"\naddress = \"{dead_addr}\"\n[[backend.server]]\nname = \"s2\"\naddress = \"{alive_addr}\"\n"),
    )
    .unwrap();
    lb.signal("HUP");
    let ok = lb.wait_json("good reload", |v| v["event"] == "reload");
    assert_eq!(ok["result"], "ok", "{ok}");
    assert_eq!(ok["generation"], 2);
    assert_eq!(ok["servers_kept"], 1);
    assert_eq!(ok["servers_added"], 1);

    // SIGTERM: a clean, prompt exit.
    lb.signal("TERM");
    let status = lb.exited("after SIGTERM");
    assert!(status.success(), "{status}");
    drop(alive);
}

/// An echo server on loopback, in threads.
fn echo_server() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    addr
}

fn exchange(s: &mut std::net::TcpStream, what: &[u8]) -> std::io::Result<()> {
    use std::io::{Read, Write};
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    s.write_all(what)?;
    let mut buf = vec![0u8; what.len()];
    s.read_exact(&mut buf)?;
    assert_eq!(buf, what);
    Ok(())
}

/// `lb.toml` holding `config`, and the path for an upgrade socket, in a
/// fresh directory that lives as long as the returned guard.
fn upgrade_files(config: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    std::fs::write(&file, config).unwrap();
    let sock = dir.path().join("upgrade.sock");
    (dir, file, sock)
}

#[test]
fn upgrade_hands_the_listener_over_without_refusing_or_cutting() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let backend = echo_server();
    // With an admin API on a fixed port, as every shipped config has: the
    // new process must take it over, not bind it (issue 13, defect 2).
    let admin = free_port();
    let (_dir, file, sock) = upgrade_files(&format!("[admin]\nbind = \"{admin}\"\n[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[backend.check]\ninter = \"200ms\"\n[[backend.server]]\nname = \"s\"\naddress = \"{backend}\"\n"));
    let mut old = Lb::serving_upgrades(&file, &sock);
    let addr = old.frontend("f");
    wait_for_socket(&sock);
    assert_eq!(admin_get(admin, "/readyz"), Ok(200));
    let mut longs: Vec<_> = (0..50)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            exchange(&mut s, b"before").unwrap();
            s
        })
        .collect();

    // New connections all through the handover.
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let churners: Vec<_> = (0..4)
        .map(|_| {
            let (stop, made) = (stop.clone(), made.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = std::net::TcpStream::connect(addr)
                        .and_then(|mut s| exchange(&mut s, b"hi"));
                    if let Err(e) = r {
                        failures.push(e.to_string());
                    }
                    made.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();
    // The admin API, polled all through the handover: every request is
    // answered, and ready.
    let polls = Arc::new(AtomicU64::new(0));
    let poller = readyz_poller(admin, stop.clone(), polls.clone());
    let started = std::time::Instant::now();
    let mut new = Lb::upgrade_to(&file, &sock);
    new.wait_json("the new process taking over", |v| {
        v["event"] == "upgrade" && v["step"] == "took_over"
    });
    old.wait_json("the old process handing over", |v| {
        v["event"] == "upgrade" && v["step"] == "handed_over"
    });
    let handover = started.elapsed();
    // Keep connecting for a while against the new process alone.
    let after = made.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while made.load(Ordering::Relaxed) < after + 200 {
        assert!(std::time::Instant::now() < deadline, "churn stalled");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let polled = polls.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while polls.load(Ordering::Relaxed) < polled + 20 {
        assert!(std::time::Instant::now() < deadline, "admin polls stalled");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let admin_failures = poller.join().unwrap();
    assert!(
        admin_failures.is_empty(),
        "{} of {} admin requests failed or were not ready: {:?}",
        admin_failures.len(),
        polls.load(Ordering::Relaxed),
        admin_failures
    );
    let failures: Vec<String> = churners
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed connections: {:?}",
        failures.len(),
        failures
    );
    // The old process still serves its established session ...
    assert!(
        old.child.try_wait().unwrap().is_none(),
        "old process exited with a session open"
    );
    for s in &mut longs {
        exchange(s, b"after the handover").unwrap();
    }
    // ... and exits once they have ended.
    drop(longs);
    let status = old.exited("of the old process");
    assert!(status.success(), "{status}");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    exchange(&mut s, b"new process").unwrap();
    assert_eq!(
        admin_get(admin, "/readyz"),
        Ok(200),
        "the new process serves the admin API"
    );
    println!(
        "upgrade: handover in {handover:?}, 50 sessions kept, {} new connections, 0 refused, {} admin requests all ready",
        made.load(Ordering::Relaxed),
        polls.load(Ordering::Relaxed)
    );
    assert!(sock.exists(), "the new process serves the next upgrade");
}

/// Starts a process serving upgrades, runs `new_process` (given the
/// directory, the old configuration and the upgrade socket) as an upgrade
/// that must fail, and asserts the old process logged the abort and still
/// serves.
fn a_failed_upgrade_leaves_the_old_process_serving_after(
    new_process: impl FnOnce(&std::path::Path, &str, &std::path::Path) -> std::process::ExitStatus,
) {
    let backend = echo_server();
    let frontend = format!("[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"{backend}\"\n");
    let (dir, file, sock) = upgrade_files(&frontend);
    let mut old = Lb::serving_upgrades(&file, &sock);
    let addr = old.frontend("f");
    wait_for_socket(&sock);
    let status = new_process(dir.path(), &frontend, &sock);
    assert!(!status.success());
    let aborted = old.wait_json("the aborted upgrade", |v| {
        v["event"] == "upgrade" && v["step"] != "requested"
    });
    assert_eq!(aborted["step"], "aborted", "{aborted}");
    assert!(
        old.child.try_wait().unwrap().is_none(),
        "the old process must keep running"
    );
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    exchange(&mut s, b"still serving").unwrap();
}

#[test]
fn a_failed_upgrade_leaves_the_old_process_serving() {
    a_failed_upgrade_leaves_the_old_process_serving_after(|dir, frontend, sock| {
        // The new process gets the sockets, then cannot start: a second
        // frontend on a port that is taken.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let bad = dir.join("new.toml");
        std::fs::write(
            &bad,
            format!(
                "{frontend}[[frontend]]\nname = \"g\"\nbind = \"{}\"\nbackend = \"b\"\n",
                taken.local_addr().unwrap()
            ),
        )
        .unwrap();
        lb().arg("--config")
            .arg(&bad)
            .arg("--upgrade-from")
            .arg(sock)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
    });
}

#[test]
fn an_upgrade_whose_upgrade_socket_cannot_be_bound_leaves_the_old_process_serving() {
    a_failed_upgrade_leaves_the_old_process_serving_after(|dir, _, sock| {
        // The new process takes the sockets over and starts, then cannot
        // listen for the next upgrade: its directory does not exist.
        lb().arg("--config")
            .arg(dir.join("lb.toml"))
            .arg("--upgrade-from")
            .arg(sock)
            .arg("--upgrade-socket")
            .arg(dir.join("no-such-directory").join("upgrade.sock"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
    });
}

#[test]
fn text_logs_are_one_plain_haproxy_line_per_state_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    std::fs::write(
        &file,
        format!("[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[backend.check]\ninter = \"100ms\"\nrise = 1\nfall = 1\n[[backend.server]]\nname = \"s1\"\naddress = \"{dead_addr}\"\n"),
    )
    .unwrap();
    // Debug level shows every check, so the test can wait for several.
    // (nextest runs each test in its own process.)
    std::env::set_var("RUST_LOG", "debug");
    let mut lb = Lb::start(&file, "text");
    let line = lb.wait_text("is DOWN");
    assert!(
        line.contains(" WARN Server b/s1 is DOWN, reason: Layer4 connection problem"),
        "{line}"
    );
    assert!(line.contains("check duration: "), "{line}");
    assert!(
        !line.contains('\u{1b}'),
        "no colours off a terminal: {line:?}"
    );
    assert!(!line.contains("event="), "fields are for json: {line}");
    // Five more failed checks: still the one DOWN line (a state change,
    // not every check, is logged).
    for _ in 0..5 {
        lb.wait_text("DEBUG check b/s1: Layer4 connection problem");
    }
    lb.signal("TERM");
    let rest: Vec<String> = lb.lines.iter().collect();
    let downs = lb
        .seen
        .iter()
        .chain(&rest)
        .filter(|l| l.contains("is DOWN"))
        .count();
    assert_eq!(
        downs, 1,
        "one DOWN line for one state change: {:?}",
        lb.seen
    );
}

#[test]
fn the_open_files_limit_is_raised_to_what_maxconn_needs() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    use std::os::unix::process::CommandExt;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // maxconn x 2, a pool of maxconn / 4 pipes x 2, one listener, margin.
    let needed = 1000 * 2 + 250 * 2 + 1 + 256;
    assert!(
        hard >= needed,
        "this machine's hard limit {hard} is below {needed}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    std::fs::write(
        &file,
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\nmaxconn = 1000\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let mut command = lb();
    command
        .arg("--config")
        .arg(&file)
        .arg("--log-format")
        .arg("text");
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        command.pre_exec(move || {
            setrlimit(Resource::RLIMIT_NOFILE, 512, hard).map_err(std::io::Error::from)
        });
    }
    let mut lb = Lb::spawn(command);
    let line = lb.wait_text("open files limit");
    assert!(
        line.contains(&format!("raised from 512 to {needed}")),
        "{line}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", lb.child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().nth(3),
        Some(needed.to_string().as_str()),
        "{open_files}"
    );
}

#[test]
fn signals_are_served_while_a_handover_waits_for_the_new_process() {
    let backend = echo_server();
    let config = |server: &str| {
        format!("[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"{server}\"\naddress = \"{backend}\"\n")
    };
    let (_dir, file, sock) = upgrade_files(&config("s"));
    let mut old = Lb::serving_upgrades(&file, &sock);
    old.wait_json("start", |v| v["event"] == "start");
    // A "new process" that takes the sockets and then never says `ready`:
    // the old one waits up to a minute for it.
    let stalled = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    old.wait_json("the handover request", |v| {
        v["event"] == "upgrade" && v["step"] == "requested"
    });
    // Meanwhile a reload is served ...
    std::fs::write(&file, config("t")).unwrap();
    old.signal("HUP");
    let reloaded = old.wait_json("the reload", |v| v["event"] == "reload");
    assert_eq!(reloaded["result"], "ok", "{reloaded}");
    assert_eq!(reloaded["generation"], 2, "{reloaded}");
    // ... and so is a stop, without waiting out the handover.
    let asked = std::time::Instant::now();
    old.signal("TERM");
    let status = old.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(30),
        "the stop waited {:?} for the stalled handover",
        asked.elapsed()
    );
    drop(stalled);
}

/// A server that accepts and never answers: an `http` check of it fails
/// only when the check's `timeout` runs out.
fn silent_server() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let held: Vec<_> = l.incoming().map_while(Result::ok).collect();
        drop(held);
    });
    addr
}

#[test]
fn an_upgrade_never_answers_readyz_before_the_new_process_has_checked() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let admin = free_port();
    // The only server fails its check, but only after the 1 s timeout: a
    // new process that answered before its first check would say ready
    // (servers start UP) for that second.
    let server = silent_server();
    let (_dir, file, sock) = upgrade_files(&format!("[admin]\nbind = \"{admin}\"\n[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"http\"\ntimeout = \"1s\"\ninter = \"10s\"\n[[backend.server]]\nname = \"s\"\naddress = \"{server}\"\n"));
    let mut old = Lb::serving_upgrades(&file, &sock);
    let down = old.wait_json("s DOWN", |v| v["event"] == "server_state");
    assert_eq!(down["new"], "DOWN", "{down}");
    wait_for_socket(&sock);
    assert_eq!(admin_get(admin, "/readyz"), Ok(503));

    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                answers.push(admin_get(admin, "/readyz"));
            }
            answers
        })
    };
    let mut new = Lb::upgrade_to(&file, &sock);
    new.wait_json("the new process taking over", |v| {
        v["event"] == "upgrade" && v["step"] == "took_over"
    });
    old.wait_json("the old process handing over", |v| {
        v["event"] == "upgrade" && v["step"] == "handed_over"
    });
    // Once the old process is gone, only the new one can answer.
    let status = old.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut answers: Vec<_> = (0..20).map(|_| admin_get(admin, "/readyz")).collect();
    stop.store(true, Ordering::Relaxed);
    answers.extend(poller.join().unwrap());
    let wrong: Vec<_> = answers.iter().filter(|a| **a != Ok(503)).collect();
    assert!(
        wrong.is_empty(),
        "{} of {} /readyz answers were not 503: {wrong:?}",
        wrong.len(),
        answers.len()
    );
    let status = admin_fetch(admin, "/status").unwrap().1;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["backends"][0]["servers"][0]["state"], "DOWN",
        "the new process answers with its own check: {status}"
    );
}

#[test]
fn an_upgrade_can_move_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let backend = echo_server();
    let (before, after) = (free_port(), free_port());
    let config = |admin: std::net::SocketAddr| {
        format!("[admin]\nbind = \"{admin}\"\n[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"{backend}\"\n")
    };
    let (old_file, new_file) = (dir.path().join("old.toml"), dir.path().join("new.toml"));
    std::fs::write(&old_file, config(before)).unwrap();
    std::fs::write(&new_file, config(after)).unwrap();
    let mut old = Lb::serving_upgrades(&old_file, &sock);
    wait_for_socket(&sock);
    assert_eq!(admin_get(before, "/healthz"), Ok(200));
    let mut new = Lb::upgrade_to(&new_file, &sock);
    new.wait_json("the new process taking over", |v| {
        v["event"] == "upgrade" && v["step"] == "took_over"
    });
    old.wait_json("the old process handing over", |v| {
        v["event"] == "upgrade" && v["step"] == "handed_over"
    });
    assert_eq!(admin_get(after, "/healthz"), Ok(200));
    // Nobody holds the old bind any more: neither the old process (it
    // handed it over) nor the new one (its config has another).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(before).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old admin bind still accepts"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn ctl_reads_the_token_from_a_file_and_commands_need_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token-in-a-file\n").unwrap();
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let absent = dir.path().join("absent-token");
    let (admin, backend) = (free_port(), echo_server());
    let file = dir.path().join("lb.toml");
    std::fs::write(
        &file,
        format!("[admin]\nbind = \"{admin}\"\ntoken_file = {:?}\n[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"{backend}\"\n", token.display().to_string()),
    )
    .unwrap();
    let mut running = Lb::start(&file, "json");
    running.wait_json("the admin API listening", |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("admin API listening on "))
    });
    let drain = |token_args: &[&std::ffi::OsStr]| {
        lb().arg("ctl")
            .arg("--admin")
            .arg(format!("http://{admin}"))
            .args(token_args)
            .args(["drain", "b/s"])
            .output()
            .unwrap()
    };
    for refused in [
        drain(&[]),
        drain(&["--token-file".as_ref(), wrong.as_ref()]),
    ] {
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stdout)
                .contains("expected header `Authorization: Bearer <admin token>`"),
            "{refused:?}"
        );
    }
    let unreadable = drain(&["--token-file".as_ref(), absent.as_ref()]);
    assert_eq!(unreadable.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unreadable.stderr)
            .contains(&format!("cannot read the token file {}", absent.display())),
        "{unreadable:?}"
    );
    let (_, before) = admin_fetch(admin, "/status").unwrap();
    assert!(!before.contains("DRAIN"), "{before}");
    let drained = drain(&["--token-file".as_ref(), token.as_ref()]);
    assert!(drained.status.success(), "{drained:?}");
    let (_, after) = admin_fetch(admin, "/status").unwrap();
    assert!(after.contains("\"DRAIN\""), "{after}");
}
