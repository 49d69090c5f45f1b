//! Trackers: probes (from `warren-health`) run on an interval, judged by the shared
//! rise/fall `CheckMachine`; each reports its up/down status to its instance.
//!
//! A tracker address given as a host name is resolved here, at each check,
//! never in the configuration: a name that does not resolve is one failed
//! check like a refused connection, so the tracker goes down after `fall` of
//! them and comes back up once the name resolves again.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use warren_health::probe::{self, HttpCheck};
use warren_health::{CheckMachine, InitialState, Outcome};

use crate::config::{Address, Track, TrackKind};

/// A tracker status change: (tracker index, up?).
pub type Report = (usize, bool);

/// Run one probe of `kind` with `timeout`.
pub async fn probe_once(kind: &TrackKind, timeout: Duration) -> Result<(), String> {
    match kind {
        TrackKind::Tcp { address } => tcp(address, timeout).await,
        TrackKind::Http {
            url,
            username,
            password,
            expect_status,
            expect_body,
        } => {
            let c = HttpCheck {
                url: url.clone(),
                username: username.clone(),
                password: password.clone(),
                expect_status: *expect_status,
                expect_body: expect_body.clone(),
            };
            probe::http(&c, timeout).await.map_err(|e| e.to_string())
        }
        TrackKind::Exec { command } => {
            let mut cmd = tokio::process::Command::new(&command[0]);
            cmd.args(&command[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            match tokio::time::timeout(timeout, cmd.status()).await {
                Err(_) => Err("exec timeout".into()),
                Ok(Err(e)) => Err(format!("exec failed: {e}")),
                Ok(Ok(st)) if st.success() => Ok(()),
                Ok(Ok(st)) => Err(format!("exec exited with {st}")),
            }
        }
        TrackKind::Interface { name } => {
            let p = format!("/sys/class/net/{name}/operstate");
            match tokio::fs::read_to_string(&p).await {
                Ok(s) if matches!(s.trim(), "up" | "unknown") => Ok(()),
                Ok(s) => Err(format!("interface {name} is {}", s.trim())),
                Err(_) => Err(format!("interface {name} does not exist")),
            }
        }
    }
}

/// One TCP check of `address`, name resolution included, within `timeout`.
///
/// The addresses a name resolves to are tried in the resolver's order until
/// one accepts, so a dual-stack name is up while either family answers.  A
/// resolution that outlives the deadline fails the check; the resolver's own
/// thread finishes in the background (getaddrinfo cannot be cancelled).
async fn tcp(address: &Address, timeout: Duration) -> Result<(), String> {
    let (host, port) = match address {
        Address::Ip(socket) => {
            return probe::tcp(*socket, timeout)
                .await
                .map_err(|e| e.to_string())
        }
        Address::Name { host, port } => (host.as_str(), *port),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let resolved = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)));
    let sockets: Vec<_> = match resolved.await {
        Err(_) => return Err(format!("cannot resolve {host}: timeout after {timeout:?}")),
        Ok(Err(e)) => return Err(format!("cannot resolve {host}: {e}")),
        Ok(Ok(sockets)) => sockets.collect(),
    };
    if sockets.is_empty() {
        return Err(format!("cannot resolve {host}: no address"));
    }
    let mut failures = Vec::new();
    for socket in sockets {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match probe::tcp(socket, left).await {
            Ok(()) => return Ok(()),
            Err(e) => failures.push(format!("{socket}: {e}")),
        }
    }
    Err(format!("{host} ({})", failures.join("; ")))
}

/// Run a tracker forever, sending `(index, up)` whenever its status changes.
/// Starts "up" (HAProxy's default initial state): the first failure marks it down.
pub async fn run(index: usize, instance: String, t: Track, tx: mpsc::Sender<Report>) {
    let mut cm = CheckMachine::new(t.check, InitialState::Up);
    loop {
        let res = probe_once(&t.kind, t.timeout).await;
        let outcome = if res.is_ok() {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        let step = cm.on_check(outcome, Instant::now());
        if let Some(tr) = step.transition {
            let why = match &res {
                Ok(()) => "check passed".to_string(),
                Err(e) => e.clone(),
            };
            tracing::warn!(
                "({instance}) tracker {:?} is {}, reason: {why}, weight {}",
                t.name,
                tr.to,
                t.weight
            );
            if tx.send((index, cm.is_up())).await.is_err() {
                return;
            }
        }
        tokio::time::sleep_until(step.next_check_at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_health::CheckParams;

    #[tokio::test]
    async fn exec_and_interface_probes() {
        let t = Duration::from_secs(5);
        let ok = TrackKind::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), "exit 0".into()],
        };
        assert_eq!(probe_once(&ok, t).await, Ok(()));
        let bad = TrackKind::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), "exit 3".into()],
        };
        assert!(probe_once(&bad, t).await.unwrap_err().contains("exit"));
        let slow = TrackKind::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), "sleep 5".into()],
        };
        assert_eq!(
            probe_once(&slow, Duration::from_millis(100)).await,
            Err("exec timeout".into())
        );
        let missing = TrackKind::Interface {
            name: "wvipnosuch0".into(),
        };
        assert!(probe_once(&missing, t)
            .await
            .unwrap_err()
            .contains("does not exist"));
    }

    #[tokio::test]
    async fn tcp_tracker_reports_down_then_up() {
        // A listener that we close: the tracker (fall 1) reports down.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let track = Track {
            name: "t".into(),
            kind: TrackKind::Tcp {
                address: Address::Ip(addr),
            },
            check: CheckParams::new(Duration::from_millis(20), None, None, 1, 1),
            timeout: Duration::from_millis(500),
            weight: 0,
        };
        let (tx, mut rx) = mpsc::channel(4);
        drop(l);
        let h = tokio::spawn(run(0, "VI".into(), track, tx));
        let r = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert_eq!(r, Some((0, false)));
        // Listen again on the same port: reported up.
        let _l = tokio::net::TcpListener::bind(addr).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert_eq!(r, Some((0, true)));
        h.abort();
    }

    #[tokio::test]
    async fn tcp_probe_resolves_a_host_name() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let localhost = TrackKind::Tcp {
            address: Address::Name {
                host: "localhost".into(),
                port: l.local_addr().unwrap().port(),
            },
        };
        assert_eq!(probe_once(&localhost, Duration::from_secs(5)).await, Ok(()));
        drop(l);
        let refused = probe_once(&localhost, Duration::from_secs(5))
            .await
            .unwrap_err();
        // Only the IPv4 listener exists; a stock /etc/hosts (`::1 localhost`) makes
        // glibc return [::1] first, so the order of the tried addresses is not asserted.
        assert!(refused.starts_with("localhost ("), "{refused}");
        assert!(refused.contains("127.0.0.1:"), "{refused}");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_fails_the_check_naming_host_and_error() {
        // RFC 6761: .invalid never resolves.
        let kind = TrackKind::Tcp {
            address: Address::Name {
                host: "no-such-host.invalid".into(),
                port: 8404,
            },
        };
        let reason = probe_once(&kind, Duration::from_secs(10))
            .await
            .unwrap_err();
        let resolver_error = reason
            .strip_prefix("cannot resolve no-such-host.invalid: ")
            .unwrap_or_else(|| panic!("{reason}"));
        assert!(!resolver_error.is_empty(), "{reason}");

        // The tracker (fall 1) goes down on it like on any failed check.
        let track = Track {
            name: "lb".into(),
            kind,
            check: CheckParams::new(Duration::from_millis(20), None, None, 1, 1),
            timeout: Duration::from_secs(10),
            weight: 0,
        };
        let (tx, mut rx) = mpsc::channel(4);
        let h = tokio::spawn(run(0, "VI".into(), track, tx));
        let r = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap();
        assert_eq!(r, Some((0, false)));
        h.abort();
    }
}
