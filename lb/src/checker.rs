//! The check task of one server: runs the configured probe when the check
//! machine says so and feeds the result back.
//!
//! The schedule belongs to the pure machine (`warren-health`): the next
//! check is due `inter`/`fastinter`/`downinter` after the previous one
//! *finished*, as in HAProxy.  This task only sleeps until then, or until a
//! passive error brings the next check forward.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tracing::debug;
use warren_health::probe::{self, HttpCheck, NodeReport, ProbeError, RabbitCheck};
use warren_health::Outcome;

use crate::backend::BackendState;
use crate::config::{Check, CheckKind, SendProxy, Server};
use crate::proxy_protocol;
use crate::server::ServerState;

/// Checks server `index` of `backend` for ever (the caller cancels it).
pub async fn run(backend: Arc<BackendState>, index: usize) {
    let server = backend.servers[index].clone();
    let check = &backend.config.check;
    let mut due = server.machine(|m| m.first_check_at(Instant::now()));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = server.reschedule.notified() => {
                due = server.machine(|m| m.next_check_at()).unwrap_or(due);
                continue;
            }
        }
        let started = Instant::now();
        let result = probe_once(check, &server).await;
        if let Ok(Some(report)) = &result {
            *server.cluster.lock().expect("cluster lock") = Some(report.clone());
        }
        let finished = Instant::now();
        let took = finished - started;
        let reason = match &result {
            Ok(_) => format!("{} check passed", layer(check)),
            Err(e) => e.to_string(),
        };
        let outcome = if result.is_ok() {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        debug!(
            server = %server.id(),
            %reason,
            check_duration_ms = took.as_millis() as u64,
            "check {}: {reason}, {}ms",
            server.id(),
            took.as_millis()
        );
        if result.is_err() {
            server.check_failures.fetch_add(1, Ordering::Relaxed);
        }
        *server.last_check.lock().expect("last_check lock") =
            Some(format!("{reason}, check duration: {}ms", took.as_millis()));
        let step = server.machine(|m| m.on_check(outcome, finished));
        due = step.next_check_at;
        if let Some(t) = step.transition {
            backend.transition(index, t, &reason, Some(took));
        }
        if matches!(check.kind, CheckKind::Rabbitmq) {
            backend.cross_check();
        }
    }
}

/// One run of the configured probe against one server; a passed `rabbitmq`
/// check also returns what the node reported of its cluster.
pub async fn probe_once(
    check: &Check,
    server: &ServerState,
) -> Result<Option<NodeReport>, ProbeError> {
    let port = check.port.unwrap_or(server.config.address.port());
    let password = match &check.password {
        None => None,
        Some(secret) => Some(
            secret
                .read()
                .map_err(|e| ProbeError::L7Rsp(format!("cannot read the check password: {e}")))?,
        ),
    };
    if check.kind == CheckKind::None {
        return Ok(None);
    }
    // Every kind goes to the address the resolver holds for the server
    // (see `crate::dns`), so checks and clients always agree on where the
    // server is; only a name's very first answer is waited for, within
    // the check's own timeout.
    let started = Instant::now();
    let target = tokio::time::timeout(check.timeout, server.target(port))
        .await
        .map_err(|_| ProbeError::L4Timeout)?
        .map_err(ProbeError::L4Con)?;
    let left = check.timeout.saturating_sub(started.elapsed());
    match &check.kind {
        CheckKind::None => Ok(None),
        CheckKind::Tcp | CheckKind::Amqp => {
            let version = check_send_proxy(&server.config, port);
            let header = move |local, server| proxy_protocol::header(version, local, server);
            let preamble: Option<&probe::Preamble> =
                (version != SendProxy::None).then_some(&header);
            if check.kind == CheckKind::Tcp {
                probe::tcp_with_preamble(target, left, preamble)
                    .await
                    .map(|_| None)
            } else {
                probe::amqp_with_preamble(target, left, preamble)
                    .await
                    .map(|_| None)
            }
        }
        CheckKind::Http {
            path,
            expect_status,
            expect_body,
        } => {
            let http = HttpCheck {
                url: format!("http://{target}{path}"),
                username: check.username.clone(),
                password,
                expect_status: *expect_status,
                expect_body: expect_body.clone(),
            };
            probe::http(&http, left).await.map(|_| None)
        }
        CheckKind::Rabbitmq => {
            let rabbit = RabbitCheck {
                base_url: format!("http://{target}"),
                username: check.username.clone().unwrap_or_default(),
                password: password.unwrap_or_default(),
            };
            probe::rabbitmq(&rabbit, left).await.map(Some)
        }
    }
}

/// The PROXY header a `tcp`/`amqp` check to `port` sends: the server's
/// `send_proxy` when the check goes to the server's own port, as in HAProxy
/// (where `send-proxy` covers checks unless they have their own `port`).
/// The check socket's own address is announced as the source, the server as
/// the destination.  `http`/`rabbitmq` checks never send one: they go to the
/// management port, which RabbitMQ's `proxy_protocol` does not cover.
fn check_send_proxy(server: &Server, port: u16) -> SendProxy {
    if port == server.address.port() {
        server.send_proxy
    } else {
        SendProxy::None
    }
}

/// HAProxy's layer word for a passed check of this kind.
fn layer(check: &Check) -> &'static str {
    match check.kind {
        CheckKind::None | CheckKind::Tcp => "Layer4",
        CheckKind::Amqp => "Layer6",
        CheckKind::Http { .. } | CheckKind::Rabbitmq => "Layer7",
    }
}
