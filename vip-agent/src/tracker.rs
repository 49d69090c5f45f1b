//! Trackers: probes (from `warren-health`) run on an interval, judged by the shared
//! rise/fall `CheckMachine`; each reports its up/down status to its instance.
//!
//! A tracker address given as a host name is resolved at each check (by
//! warren-health's `tcp` probe), never in the configuration: a name that does not resolve is one failed
//! check like a refused connection, so the tracker goes down after `fall` of
//! them and comes back up once the name resolves again.

use std::time::Instant;

use tokio::sync::mpsc;
use warren_health::probe::{self, HttpCheck, Probe};
use warren_health::{CheckMachine, InitialState, Outcome};

use crate::config::{Track, TrackKind};

/// A tracker status change: (tracker index, up?).
pub type Report = (usize, bool);

/// The probe a tracker of `kind` runs at each check.  Trackers send no
/// preamble: they check local services, never a `send-proxy` server.
fn probe_of(kind: &TrackKind) -> Probe<'static> {
    match kind {
        TrackKind::Tcp { address } => Probe::Tcp {
            address: address.clone(),
            preamble: None,
        },
        TrackKind::Http {
            url,
            username,
            password,
            expect_status,
            expect_body,
        } => Probe::Http(HttpCheck {
            url: url.clone(),
            username: username.clone(),
            password: password.clone(),
            expect_status: *expect_status,
            expect_body: expect_body.clone(),
            tls: None,
        }),
        TrackKind::Exec { command } => Probe::Exec {
            command: command.clone(),
        },
        TrackKind::Interface { name } => Probe::Interface { name: name.clone() },
    }
}

/// Run a tracker forever, sending `(index, up)` whenever its status changes.
/// Starts "up" (HAProxy's default initial state): the first failure marks it down.
pub async fn run(index: usize, instance: String, t: Track, tx: mpsc::Sender<Report>) {
    let mut cm = CheckMachine::new(t.check, InitialState::Up);
    let probe = probe_of(&t.kind);
    loop {
        let res = probe::run(&probe, t.timeout).await;
        let outcome = if res.is_ok() {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        let step = cm.on_check(outcome, Instant::now());
        if let Some(tr) = step.transition {
            let why = match &res {
                Ok(_) => "check passed".to_string(),
                Err(e) => e.to_string(),
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
    use std::time::Duration;
    use warren_health::config::Address;
    use warren_health::probe::{ProbeError, Unresolved};
    use warren_health::CheckParams;

    /// One check of a tracker of `kind`, as `run` makes it.
    async fn check(kind: TrackKind, timeout: Duration) -> Result<(), ProbeError> {
        probe::run(&probe_of(&kind), timeout).await.map(|_| ())
    }

    #[tokio::test]
    async fn exec_and_interface_trackers_run_their_probes() {
        let t = Duration::from_secs(5);
        let sh = |script: &str| TrackKind::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        };
        assert_eq!(check(sh("exit 0"), t).await, Ok(()));
        let bad = check(sh("exit 3"), t).await.unwrap_err();
        assert!(matches!(bad, ProbeError::ExecExited(_)), "{bad:?}");
        assert_eq!(
            check(sh("sleep 5"), Duration::from_millis(100)).await,
            Err(ProbeError::ExecTimeout)
        );
        let missing = TrackKind::Interface {
            name: "wvipnosuch0".into(),
        };
        assert_eq!(
            check(missing, t).await,
            Err(ProbeError::NoInterface("wvipnosuch0".into()))
        );
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
    async fn tcp_tracker_resolves_a_host_name() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let localhost = || TrackKind::Tcp {
            address: Address::Name {
                host: "localhost".into(),
                port: l.local_addr().unwrap().port(),
            },
        };
        let t = Duration::from_secs(5);
        assert_eq!(check(localhost(), t).await, Ok(()));
        let closed = localhost();
        drop(l);
        let refused = check(closed, t).await.unwrap_err();
        assert!(
            matches!(&refused, ProbeError::EveryAddress { host, .. } if host == "localhost"),
            "{refused:?}"
        );
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
        let e = check(kind.clone(), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProbeError::Unresolved { host, reason: Unresolved::Failed(_) }
                if host == "no-such-host.invalid"),
            "{e:?}"
        );

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
