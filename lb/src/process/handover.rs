//! Both sides of an upgrade (see [`crate::upgrade`] for the protocol), as
//! the lifecycle runs them, with their `event = "upgrade"` log lines: the
//! new process receiving the listening sockets and saying `ready`, and the
//! old one handing them over.

use std::path::Path;

use tokio::net::UnixStream;
use tracing::{error, info, warn};

use crate::runtime::Running;
use crate::upgrade::{self, Handover};

/// The new process: the listening sockets of the warren-lb serving
/// upgrades at `from`.  Blocking (a short exchange on a unix socket).
pub(super) fn receive(from: &Path) -> anyhow::Result<Handover> {
    let h = Handover::receive(from)?;
    let sockets = h.sockets.frontends.len() + usize::from(h.sockets.admin.is_some());
    info!(
        event = "upgrade",
        step = "received",
        sockets,
        "upgrade: received {sockets} listening socket(s) from {}{}; checking every server once before accepting",
        from.display(),
        if h.sockets.admin.is_some() { ", the admin API's included" } else { "" }
    );
    Ok(h)
}

/// The new process, serving: tells the old one to stop accepting.
pub(super) fn took_over(h: Handover) {
    match h.ready() {
        Ok(()) => info!(
            event = "upgrade",
            step = "took_over",
            "upgrade: serving; the old process stops accepting and drains"
        ),
        Err(e) => warn!(
            event = "upgrade",
            step = "ready_not_delivered",
            "upgrade: could not tell the old process to stop accepting ({e}); both serve until it is stopped"
        ),
    }
}

/// The old process: hands the listening sockets to a new process; true
/// once it took over.
pub(super) async fn hand_over(running: &Running, stream: UnixStream) -> bool {
    info!(
        event = "upgrade",
        step = "requested",
        "upgrade: a new process asks for the listening sockets"
    );
    let sockets = match running.handover_sockets().await {
        Ok(s) => s,
        Err(e) => {
            error!(event = "upgrade", step = "aborted", "upgrade aborted: {e}");
            return false;
        }
    };
    let result = tokio::task::spawn_blocking(move || {
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        upgrade::hand_over(stream, &sockets)
    })
    .await
    .unwrap_or_else(|e| Err(anyhow::anyhow!("handing the sockets over: {e}")));
    match result {
        Ok(true) => {
            info!(
                event = "upgrade",
                step = "handed_over",
                "upgrade: the new process is serving; this one stops accepting and drains"
            );
            true
        }
        Ok(false) => {
            warn!(
                event = "upgrade",
                step = "aborted",
                "upgrade aborted: the new process did not become ready; still serving"
            );
            false
        }
        Err(e) => {
            warn!(
                event = "upgrade",
                step = "aborted",
                "upgrade aborted: {e:#}; still serving"
            );
            false
        }
    }
}
