//! The check task of one server: runs the configured probe when the check
//! machine says so and feeds the result back.
//!
//! The schedule belongs to the pure machine (`warren-health`): the next
//! check is due `inter`/`fastinter`/`downinter` after the previous one
//! *finished*, as in HAProxy.  This task only sleeps until then, or until a
//! passive error brings the next check forward.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use warren_health::config::Address;
use warren_health::probe::{self, CheckTls, HttpCheck, NodeReport, Probe, ProbeError, RabbitCheck};
use warren_health::Outcome;

use crate::backend::BackendState;
use crate::check_tls;
use crate::config::{Check, CheckKind, CheckTarget, SendProxy, Server};
use crate::no_news::{self, CheckResult, Judgement, NO_NEWS_LIMIT};
use crate::proxy_protocol;
use crate::server::ServerState;

/// Checks server `index` of `backend` for ever (the caller cancels it).
pub async fn run(backend: Arc<BackendState>, index: usize) {
    let server = backend.servers[index].clone();
    let check = &backend.config.check;
    // From this generation's config: a server kept by a reload keeps the
    // config it was added with, but its check target may have changed.
    let config = backend
        .config
        .servers
        .iter()
        .find(|s| s.name == server.config.name)
        .unwrap_or(&server.config);
    let target = config.check_target(check);
    // Read once per generation: a reload reads the files again.
    let tls = check.tls.as_ref().map(|t| check_tls::for_server(t, config));
    let tls = tls.as_ref();
    let mut due = server.machine(|m| m.first_check_at(Instant::now()));
    // Since when the management API has been timing out, if it has.
    let mut silent_since: Option<Instant> = None;
    // The broker version last refused by the `rabbitmq` check, if any.
    let mut refused_broker: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = server.reschedule.notified() => {
                due = server.machine(|m| m.next_check_at()).unwrap_or(due);
                continue;
            }
        }
        let started = Instant::now();
        let (result, amqp_answered) = if check.kind == CheckKind::Rabbitmq {
            rabbitmq_with_amqp_fallback(check, target, tls, &server).await
        } else {
            (probe_once(check, target, tls, &server).await, false)
        };
        if check.kind == CheckKind::Rabbitmq {
            server.record_report(result.clone().ok().flatten());
            note_unknown_broker(&server, &result, &mut refused_broker);
        }
        let result_kind = match &result {
            Ok(_) => CheckResult::Passed,
            Err(e) if e.is_local() => CheckResult::LocalError,
            Err(e) if e.is_timeout() => CheckResult::Timeout,
            Err(_) => CheckResult::OtherError,
        };
        let ruling = no_news::judge(
            result_kind,
            check.kind == CheckKind::Rabbitmq,
            amqp_answered,
            silent_since,
            started,
        );
        silent_since = ruling.silent_since;
        let outcome = ruling.outcome();
        let reason = match (&result, ruling.judgement) {
            (Ok(_), _) => format!("{} check passed", layer(check)),
            (Err(e), Judgement::HealthUnchanged) => format!("{e}: health unchanged"),
            (Err(e), Judgement::NoNews { first }) => {
                if first {
                    info!(
                        server = %server.id(),
                        "Server {}: management API timed out but AMQP answers: health unchanged (no news) for up to {NO_NEWS_LIMIT:?}.",
                        server.id()
                    );
                }
                format!("{e}, AMQP answers: no news")
            }
            (Err(e), Judgement::Passed | Judgement::Failed) => e.to_string(),
        };
        let finished = Instant::now();
        let took = finished - started;
        debug!(
            server = %server.id(),
            %reason,
            check_duration_ms = took.as_millis() as u64,
            "check {}: {reason}, {}ms",
            server.id(),
            took.as_millis()
        );
        if outcome == Outcome::Failed {
            server
                .counters
                .check_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        server.set_no_news(outcome == Outcome::Inconclusive);
        let rabbitmq = check.kind == CheckKind::Rabbitmq;
        if rabbitmq {
            // Judge the node's fresh report before a passed check can make
            // it UP: a resumed node must never be eligible on its own stale
            // view, not even between the transition and the cross-check.
            backend.cross_check();
        }
        let step = server.machine(|m| m.on_check(outcome, finished));
        due = step.next_check_at;
        if let Some(t) = step.transition {
            // With a `rabbitmq` check, this cross-checks again: others'
            // verdicts depend on this server being UP or DOWN.
            backend.transition(index, t, &reason, Some(took));
        }
        server.publish_check(format!("{reason}, check duration: {}ms", took.as_millis()));
    }
}

/// Logs a broker version the `rabbitmq` check does not know, once per
/// change: the check fails on it at every interval, and the DOWN transition
/// alone would not show a version that changes while the server is DOWN.
fn note_unknown_broker(
    server: &ServerState,
    result: &Result<Option<NodeReport>, ProbeError>,
    last: &mut Option<String>,
) {
    let refused = match result {
        Err(e @ ProbeError::UnknownBroker(_)) => Some(e.to_string()),
        _ => None,
    };
    if refused != *last {
        if let Some(reason) = &refused {
            warn!(
                server = %server.id(),
                "Server {}: {reason}; it stays DOWN until it reports a version the check knows.",
                server.id()
            );
        }
        *last = refused;
    }
}

/// A `rabbitmq` check, and whether the node's AMQP port answered when the
/// management API was slow.  The AMQP probe starts at half the check's
/// timeout, beside the management request, so a frozen node (which
/// answers neither) still fails within one timeout, and a healthy node is
/// not sent an AMQP handshake at every check.  With the check's TLS, the
/// AMQP port is taken to be AMQPS too (a TLS backend's servers are 5671).
async fn rabbitmq_with_amqp_fallback(
    check: &Check,
    target: CheckTarget,
    tls: Option<&Result<CheckTls, String>>,
    server: &ServerState,
) -> (Result<Option<NodeReport>, ProbeError>, bool) {
    let management = probe_once(check, target, tls, server);
    tokio::pin!(management);
    let head_start = check.timeout / 2;
    match tokio::time::timeout(head_start, &mut management).await {
        Ok(result) => (result, false),
        Err(_) => tokio::join!(
            management,
            amqp_answers(head_start, tls.and_then(|t| t.as_ref().ok()), server)
        ),
    }
}

/// The server's AMQP port completes the protocol handshake (after the
/// server's PROXY header, if it has one) within `limit`.
async fn amqp_answers(limit: Duration, tls: Option<&CheckTls>, server: &ServerState) -> bool {
    let version = server.config.send_proxy;
    let header = move |local, server| proxy_protocol::header(version, local, server);
    let preamble: Option<&probe::Preamble> = (version != SendProxy::None).then_some(&header);
    let attempt = async {
        let address = server.target(server.config.address.port()).await.ok()?;
        probe::run(
            &Probe::Amqp {
                address,
                preamble,
                tls,
            },
            limit,
        )
        .await
        .ok()
    };
    matches!(tokio::time::timeout(limit, attempt).await, Ok(Some(_)))
}

/// One run of the configured probe against one server's check `target`;
/// a passed `rabbitmq` check also returns what the node reported of its
/// cluster.  `tls` is the check's TLS client, or why it could not be had
/// (the check fails with that).
pub async fn probe_once(
    check: &Check,
    target: CheckTarget,
    tls: Option<&Result<CheckTls, String>>,
    server: &ServerState,
) -> Result<Option<NodeReport>, ProbeError> {
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
    let tls = match tls {
        None => None,
        Some(Ok(tls)) => Some(tls),
        Some(Err(e)) => return Err(ProbeError::Tls(format!("TLS configuration: {e}"))),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Without a `check_addr`, every kind goes to the address the resolver
    // holds for the server (see `crate::dns`), so checks and clients always
    // agree on where the server is; only a name's very first answer is
    // waited for, within the check's own timeout.
    let started = Instant::now();
    let endpoint = match target.ip {
        Some(ip) => std::net::SocketAddr::new(ip, target.port),
        None => tokio::time::timeout(check.timeout, server.target(target.port))
            .await
            .map_err(|_| ProbeError::L4Timeout)?
            .map_err(ProbeError::L4Con)?,
    };
    let left = check.timeout.saturating_sub(started.elapsed());
    let version = check_send_proxy(&server.config, target);
    let header = move |local, server| proxy_protocol::header(version, local, server);
    let preamble: Option<&probe::Preamble> = (version != SendProxy::None).then_some(&header);
    let probe = match &check.kind {
        // Returned above already, before any resolution.
        CheckKind::None => return Ok(None),
        CheckKind::Tcp => Probe::Tcp {
            address: Address::Ip(endpoint),
            preamble,
        },
        CheckKind::Amqp => Probe::Amqp {
            address: endpoint,
            preamble,
            tls,
        },
        CheckKind::Http {
            path,
            expect_status,
            expect_body,
        } => Probe::Http(HttpCheck {
            url: format!("{scheme}://{endpoint}{path}"),
            username: check.username.clone(),
            password,
            expect_status: *expect_status,
            expect_body: expect_body.clone(),
            tls: tls.cloned(),
        }),
        CheckKind::Rabbitmq => Probe::Rabbitmq(RabbitCheck {
            base_url: format!("{scheme}://{endpoint}"),
            username: check.username.clone().unwrap_or_default(),
            password: password.unwrap_or_default(),
            tls: tls.cloned(),
        }),
    };
    probe::run(&probe, left).await
}

/// The PROXY header a `tcp`/`amqp` check to `target` sends: the server's
/// `send_proxy` when the check goes to the server's own address and port,
/// as in HAProxy (where `send-proxy` covers checks unless they have their
/// own `port` or `addr`).  The check socket's own address is announced as
/// the source, the server as the destination.  `http`/`rabbitmq` checks
/// never send one: they go to the management port, which RabbitMQ's
/// `proxy_protocol` does not cover.
fn check_send_proxy(server: &Server, target: CheckTarget) -> SendProxy {
    if target.is_the_server(server) {
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
