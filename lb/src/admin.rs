//! The admin HTTP API: liveness, readiness (what warren-vip tracks), a JSON
//! status of every pool and server, and operator commands per server.
//!
//! Bound to loopback by default; commands (POST) need the bearer token when
//! one is configured, reads do not (HAProxy's stats page model).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::accept_reserve::{self, Reserve};
use crate::backend::BackendState;
use crate::config::{Admin, CheckKind, Role};
use crate::live::{Generation, Live};
use crate::resolution::Resolution;
use crate::resource::Phase;
use crate::server::{AdminState, ServerState};

#[derive(Clone)]
struct Shared {
    live: Arc<Live>,
}

pub async fn bind(admin: &Admin) -> std::io::Result<TcpListener> {
    TcpListener::bind(admin.bind).await
}

/// How long the admin API still serves the connections it accepted after it
/// stopped accepting (an upgrade handed its socket over, or a reload moved
/// it): a client that connected just before has sent its request by then.
/// Idle keep-alive connections are closed after it, so their clients
/// reconnect to whoever listens now.
const LINGER: Duration = Duration::from_secs(1);

/// Serves until `stop`, then stops accepting at once and lets the
/// connections already accepted finish within [`LINGER`].
///
/// axum's graceful shutdown alone would close a connection accepted a
/// moment before whose request has not arrived yet; on a socket shared
/// with a new process (upgrade), that request would fail although the new
/// process was there to answer it.
pub async fn serve(listener: TcpListener, live: Arc<Live>, stop: CancellationToken) {
    let shared = Shared { live };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/servers/{backend}/{server}/{command}", post(command))
        .with_state(shared);
    let listener = UntilStopped {
        listener: Some(listener),
        reserve: Reserve::new(),
        stop: stop.clone(),
    };
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
            tokio::time::sleep(LINGER).await;
        })
        .await;
}

/// A listener that accepts until `stop`, then closes its socket: the next
/// client is accepted by the other holder of a handed-over socket, or
/// refused when there is none. At the open-files limit it spends its
/// descriptor reserve, so `/status` still answers ([`accept_reserve`]).
struct UntilStopped {
    listener: Option<TcpListener>,
    reserve: Reserve,
    stop: CancellationToken,
}

impl axum::serve::Listener for UntilStopped {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        if let Some(listener) = self.listener.as_mut() {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => {}
                accepted = accept_reserve::accept(listener, &mut self.reserve) => return accepted,
            }
        }
        self.listener = None;
        std::future::pending().await
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the admin API stopped accepting",
            )),
        }
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.live.metrics(),
    )
        .into_response()
}

/// 200 when every backend has at least one eligible server, else 503 and
/// the names of the empty backends.
async fn readyz(State(s): State<Shared>) -> Response {
    let generation = s.live.current();
    let empty: Vec<&str> = generation
        .backends
        .iter()
        .filter(|b| b.servers.iter().all(|srv| !srv.is_eligible()))
        .map(|b| b.config.name.as_str())
        .collect();
    if empty.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no eligible server in backend(s): {}\n", empty.join(", ")),
        )
            .into_response()
    }
}

async fn status(State(s): State<Shared>) -> Json<Value> {
    let generation = s.live.current();
    let backends: Vec<Value> = generation
        .backends
        .iter()
        .map(|b| backend_status(b))
        .collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": s.live.started.elapsed().as_secs_f64(),
        "config_generation": generation.number,
        "reloads_ok": s.live.reloads_ok.load(Ordering::Relaxed),
        "reloads_failed": s.live.reloads_failed.load(Ordering::Relaxed),
        "sessions": s.live.sessions.load(Ordering::Relaxed),
        "resource_errors": {
            "accept": s.live.resource_errors.count(Phase::Accept),
            "connect": s.live.resource_errors.count(Phase::Connect),
        },
        "frontends": frontends_status(&generation),
        "backends": backends,
    }))
}

/// Each frontend, and for a TLS one the certificate new handshakes get.
fn frontends_status(generation: &Generation) -> Vec<Value> {
    let now = crate::certificates::now();
    generation
        .frontends()
        .map(|(f, leaf)| {
            let tls = leaf.map(|leaf| {
                json!({
                    "cert": leaf.file,
                    "serial": leaf.serial,
                    "subject": leaf.subject,
                    "not_before": leaf.not_before_rfc3339(),
                    "not_after": leaf.not_after_rfc3339(),
                    "expires_in_seconds": leaf.not_after - now,
                })
            });
            json!({
                "name": f.name,
                "bind": f.bind.to_string(),
                "backend": generation.backends[f.backend].config.name,
                "tls": tls,
            })
        })
        .collect()
}

pub fn backend_status(b: &BackendState) -> Value {
    let (primaries, backups) = b.eligible_counts();
    json!({
        "name": b.config.name,
        "balance": b.config.balance.as_str(),
        "eligible_primaries": primaries,
        "eligible_backups": backups,
        "servers": b.servers.iter().map(|s| server_status(b, s)).collect::<Vec<_>>(),
    })
}

fn server_status(b: &BackendState, s: &ServerState) -> Value {
    let mut status = json!({
        "name": s.config.name,
        "address": s.config.address.to_string(),
        "resolved": match s.resolution() {
            Resolution::Resolved(ip) => Some(SocketAddr::new(ip, s.config.address.port()).to_string()),
            Resolution::Pending | Resolution::Unresolved(_) => None,
        },
        "role": match s.role() { Role::Primary => "primary", Role::Backup => "backup" },
        "status": if s.is_up() { "UP" } else { "DOWN" },
        "state": s.state_word(),
        "admin": match s.admin() { AdminState::Ready => "ready", AdminState::Drain => "drain", AdminState::Maint => "maint" },
        "eligible": s.is_eligible(),
        "cut_off": s.cut_off(),
        "no_news": s.no_news(),
        "awaiting_failback": s.awaiting_failback(),
        "check": check_name(&b.config.check.kind),
        "last_check": s.last_check(),
        "seconds_since_change": s.since_last_change().as_secs_f64(),
        "weight": s.weight(),
    });
    if let Value::Object(fields) = &mut status {
        for (counter, value) in s.counters.values() {
            fields.insert(counter.status_key.to_owned(), value.into());
        }
    }
    status
}

fn check_name(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::None => "none",
        CheckKind::Tcp => "tcp",
        CheckKind::Amqp => "amqp",
        CheckKind::Http { .. } => "http",
        CheckKind::Rabbitmq => "rabbitmq",
    }
}

/// Compares in time that depends only on the lengths, so response times
/// do not reveal how much of a guessed token was right.
fn same_secret(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

async fn command(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((backend, server, command)): Path<(String, String, String)>,
) -> Response {
    let generation = s.live.current();
    if let Some(token) = generation
        .config
        .admin
        .as_ref()
        .and_then(|a| a.token.as_ref())
    {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|given| same_secret(given, token)) {
            return (
                StatusCode::UNAUTHORIZED,
                "expected header `Authorization: Bearer <admin token>`\n",
            )
                .into_response();
        }
    }
    let state = match command.as_str() {
        "drain" => AdminState::Drain,
        "maint" => AdminState::Maint,
        "ready" => AdminState::Ready,
        other => {
            return (
                StatusCode::NOT_FOUND,
                format!("unknown command {other:?}: expected drain, maint or ready\n"),
            )
                .into_response()
        }
    };
    let Some(b) = generation
        .backends
        .iter()
        .find(|b| b.config.name == backend)
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no backend named {backend:?}\n"),
        )
            .into_response();
    };
    let Some(index) = b.servers.iter().position(|srv| srv.config.name == server) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no server named {server:?} in backend {backend:?}\n"),
        )
            .into_response();
    };
    b.set_admin(index, state);
    Json(server_status(b, &b.servers[index])).into_response()
}
