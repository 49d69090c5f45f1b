//! A `warren-lb` process driven from a test: its JSON log lines, signals,
//! and plain HTTP to its admin API.

#![allow(dead_code)] // each test file uses its own subset

use std::process::Command;

/// The `warren-lb` binary built for this test run.
pub fn lb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren-lb"))
}

/// A running `warren-lb` whose stdout lines arrive on a channel; killed on drop.
pub struct Lb {
    pub child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Drop for Lb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lb {
    pub fn start(config: &std::path::Path, format: &str) -> Lb {
        Self::start_with(config, format, &[])
    }

    pub fn start_with(config: &std::path::Path, format: &str, args: &[&std::ffi::OsStr]) -> Lb {
        let mut command = lb();
        command
            .arg("--config")
            .arg(config)
            .arg("--log-format")
            .arg(format)
            .args(args);
        Self::spawn(command)
    }

    /// Starts `warren-lb` for `config` (JSON logs), serving upgrades on
    /// `sock`.
    pub fn serving_upgrades(config: &std::path::Path, sock: &std::path::Path) -> Lb {
        Self::start_with(
            config,
            "json",
            &["--upgrade-socket".as_ref(), sock.as_os_str()],
        )
    }

    /// Starts `warren-lb --upgrade-from` for `config`, serving the next
    /// upgrade on the same socket.
    pub fn upgrade_to(config: &std::path::Path, sock: &std::path::Path) -> Lb {
        Self::start_with(
            config,
            "json",
            &[
                "--upgrade-socket".as_ref(),
                sock.as_os_str(),
                "--upgrade-from".as_ref(),
                sock.as_os_str(),
            ],
        )
    }

    pub fn spawn(mut command: Command) -> Lb {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lb {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next JSON log line for which `pred` holds.
    pub fn wait_json(
        &mut self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v: serde_json::Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
                    self.seen.push(line);
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no log line for {what}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The next raw log line containing `needle`.
    pub fn wait_text(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Every JSON log line so far, those no wait has reached yet included.
    pub fn logged(&mut self) -> Vec<serde_json::Value> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"))
            })
            .collect()
    }

    /// Where frontend `name` listens, from its JSON `listening on` line.
    pub fn frontend(&mut self, name: &str) -> std::net::SocketAddr {
        let prefix = format!("frontend '{name}' listening on ");
        let line = self.wait_json(&prefix, |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&prefix))
        });
        let message = line["message"].as_str().unwrap();
        message[prefix.len()..]
            .split(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {message:?}"))
    }

    /// The exit status, once the process has exited (at most 20 s).
    pub fn exited(&mut self, what: &str) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "no exit {what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }
}

/// Waits until a process serves the upgrade socket `sock` (at most 20 s).
pub fn wait_for_socket(sock: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !sock.exists() {
        assert!(std::time::Instant::now() < deadline, "no upgrade socket");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A port that was free a moment ago, for a bind that must not be port 0
/// (an admin API both processes of an upgrade want).
pub fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET path` on the admin API: the status code, or why there was none.
pub fn admin_get(admin: std::net::SocketAddr, path: &str) -> Result<u16, String> {
    admin_fetch(admin, path).map(|(code, _)| code)
}

/// `GET path` on the admin API: the status code and the body.
pub fn admin_fetch(admin: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// Polls `GET /readyz` on the admin API from a thread until `stop`, counting
/// each answer in `polls`; the thread returns every answer that was not 200
/// (what an upgrade or reload must never show).
pub fn readyz_poller(
    admin: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    polls: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::thread::JoinHandle<Vec<String>> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match admin_get(admin, "/readyz") {
                Ok(200) => {}
                other => failures.push(format!("/readyz: {other:?}")),
            }
            polls.fetch_add(1, Ordering::Relaxed);
        }
        failures
    })
}
