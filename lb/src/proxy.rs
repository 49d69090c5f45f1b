//! Frontends: accept clients, pick a server, connect (with redispatch on
//! failure), then relay until either side is done or the server is marked
//! down.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warren_health::resource::{io_local_resource, LocalResource};

use crate::backend::BackendState;
use crate::client::{Client, OpenError};
use crate::config::{Frontend, SendProxy};
use crate::live::{Live, Route};
use crate::proxy_protocol;
use crate::relay::{Counters, RelayError};
use crate::resource::{accept_failure, AcceptFailure, Phase, PAUSE};
use crate::tls::Terminator;

/// Dead peers are found by TCP keepalive after about 60 s + 3 × 10 s even
/// when the application sends nothing (AMQP heartbeats usually beat it).
const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

pub async fn serve(
    listener: TcpListener,
    mut routes: watch::Receiver<Route>,
    live: Arc<Live>,
    stop: CancellationToken,
) {
    let mut maxconn = routes.borrow().frontend.maxconn;
    let mut slots = Arc::new(Semaphore::new(maxconn));
    loop {
        // Backpressure: at maxconn we stop accepting; new clients wait in
        // the kernel's backlog instead of being refused.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore is never closed"),
            changed = routes.changed() => {
                if changed.is_err() {
                    return; // the listener was removed by a reload
                }
                // A reload changed maxconn: new sessions count against a
                // fresh limit, sessions already open keep their old slot.
                let wanted = routes.borrow_and_update().frontend.maxconn;
                if wanted != maxconn {
                    maxconn = wanted;
                    slots = Arc::new(Semaphore::new(maxconn));
                }
                continue;
            }
            _ = stop.cancelled() => return,
        };
        // After a local shortage (EMFILE ...), wait for a descriptor to
        // free instead of accepting a client that cannot be served.
        let accepted = tokio::select! {
            a = async {
                live.resource_errors.pause_if_short().await;
                listener.accept().await
            } => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((client, peer)) => {
                // The route is read per client: after a reload, new clients
                // go to the new generation's backend.
                let route = routes.borrow().clone();
                live.sessions.fetch_add(1, Ordering::AcqRel);
                let open = OpenSession(live.clone());
                tokio::spawn(session(
                    client,
                    peer,
                    (route.frontend, route.tls),
                    route.backend,
                    (permit, open),
                ));
            }
            Err(e) => {
                let name = routes.borrow().frontend.name.clone();
                match accept_failure(&e) {
                    AcceptFailure::Client => debug!("frontend '{name}': accept failed: {e}"),
                    AcceptFailure::Resource(resource) => {
                        if let Some(held_back) = live.resource_errors.record(Phase::Accept) {
                            warn!(
                                event = "resource_error",
                                phase = "accept",
                                frontend = %name,
                                resource = resource.describe(),
                                "frontend '{name}': accept failed: {e}: {}; new clients wait in the backlog until a descriptor frees.{}",
                                resource.describe(),
                                held_back_text(held_back)
                            );
                        }
                    }
                    AcceptFailure::Other => {
                        // Unknown: pause too, so it cannot spin.
                        warn!("frontend '{name}': accept failed: {e}");
                        tokio::time::sleep(PAUSE).await;
                    }
                }
            }
        }
    }
}

/// Counts a client session in [`Live::sessions`] while it lives.
struct OpenSession(Arc<Live>);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The tail of a rate-limited line: how many like it were not logged.
fn held_back_text(held_back: u64) -> String {
    match held_back {
        0 => String::new(),
        n => format!(" {n} more since the last such line."),
    }
}

async fn session(
    client: TcpStream,
    peer: SocketAddr,
    frontend: (Frontend, Option<Arc<Terminator>>),
    backend: Arc<BackendState>,
    (permit, open): (OwnedSemaphorePermit, OpenSession),
) {
    let refused_short = serve_client(client, peer, &backend, frontend, &open.0).await;
    // Only now, with both sockets closed, give the slot back and tell a
    // listener paused by a shortage that descriptors are free, unless this
    // very session was refused for one (it freed only what its own accept
    // took, and waking the listener would just refuse the next client).
    drop(permit);
    if !refused_short {
        open.0.resource_errors.freed();
    }
    drop(open);
}

/// One client from accept to close; its sockets are closed on return.
/// True when it was refused for a local shortage (termination state RC).
async fn serve_client(
    client: TcpStream,
    peer: SocketAddr,
    backend: &Arc<BackendState>,
    (frontend, tls): (Frontend, Option<Arc<Terminator>>),
    live: &Live,
) -> bool {
    tune(&client);
    let destination = client.local_addr().unwrap_or(peer);
    let client = match Client::open(client, tls.as_ref(), frontend.timeout_first_byte).await {
        Ok(client) => client,
        Err(e) => {
            debug!("{}: {peer} closed: {e}", frontend.name);
            if matches!(e, OpenError::NothingSent(_)) {
                live.first_byte_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        }
    };
    // The session needs the terminator no longer: a reload that replaced it
    // ends its certificate watch even while this session runs.
    drop(tls);
    let frontend = frontend.name;
    let mut tried = Vec::new();
    loop {
        let Some(index) = backend.select(peer.ip(), &tried) else {
            if tried.is_empty() {
                warn!(
                    "{frontend}: {peer} refused: backend '{}' has no server available",
                    backend.config.name
                );
            } else {
                warn!("{frontend}: {peer} refused: every eligible server of backend '{}' failed to connect", backend.config.name);
            }
            return false;
        };
        let server = backend.servers[index].clone();
        let slot = server.claim_slot();
        let token = server.sessions_token();
        match connect(backend, index).await {
            Ok(mut upstream) => {
                if server.config.send_proxy != SendProxy::None {
                    let header =
                        proxy_protocol::header(server.config.send_proxy, peer, destination);
                    if let Err(e) = upstream.write_all(&header).await {
                        debug!(
                            "{frontend}: {peer}: PROXY header to {} failed: {e}",
                            server.id()
                        );
                        return false;
                    }
                }
                debug!(
                    "{frontend}: {peer} -> {} ({})",
                    server.id(),
                    server.config.address
                );
                let counters = Counters {
                    upstream: &server.counters.bytes_in,
                    downstream: &server.counters.bytes_out,
                };
                tokio::select! {
                    r = client.relay(upstream, backend.config.timeout_idle, counters, &live.pipes) => match r {
                        Ok(()) => {}
                        Err(RelayError::Idle(d)) => info!("{frontend}: {peer} closed after {d:?} idle ({})", server.id()),
                        Err(e) => debug!("{frontend}: {peer} session to {} ended: {e}", server.id()),
                    },
                    _ = token.cancelled() => debug!("{frontend}: {peer} session to {} shut down", server.id()),
                }
                drop(slot);
                return false;
            }
            Err(ConnectError::Local { resource, error }) => {
                // This process ran out, not the server: refuse this client
                // (HAProxy's termination state RC) and blame no one else.
                drop(slot);
                if let Some(held_back) = live.resource_errors.record(Phase::Connect) {
                    warn!(
                        event = "resource_error",
                        phase = "connect",
                        frontend = %frontend,
                        server = %server.id(),
                        resource = resource.describe(),
                        "{frontend}: {peer} refused (termination state RC): cannot open a connection to {}: {error}: {}; the server is not blamed.{}",
                        server.id(),
                        resource.describe(),
                        held_back_text(held_back)
                    );
                }
                return true;
            }
            Err(ConnectError::Server(reason)) => {
                drop(slot);
                warn!(
                    "{frontend}: {peer}: connect to {} failed: {reason}",
                    server.id()
                );
                backend.observed_error(index, &reason);
                tried.push(index);
                if !backend.config.redispatch {
                    return false;
                }
                server.counters.redispatches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Why a connect to a server failed: the server's doing (judged by
/// `observe layer4`), or a shortage of this process (never the server's).
enum ConnectError {
    Server(String),
    Local {
        resource: LocalResource,
        error: std::io::Error,
    },
}

async fn connect(backend: &BackendState, index: usize) -> Result<TcpStream, ConnectError> {
    let server = &backend.servers[index];
    // `timeout_connect` covers waiting for a name's first answer too: a
    // hung resolver must not hold a client longer than a dead server would.
    let attempt = async {
        let target = server
            .target(server.config.address.port())
            .await
            .map_err(|e| ConnectError::Server(format!("Layer4 connection problem: {e}")))?;
        TcpStream::connect(target)
            .await
            .map_err(|error| match io_local_resource(&error) {
                Some(resource) => ConnectError::Local { resource, error },
                None => ConnectError::Server(format!("Layer4 connection problem: {error}")),
            })
    };
    match tokio::time::timeout(backend.config.timeout_connect, attempt).await {
        Ok(Ok(stream)) => {
            tune(&stream);
            Ok(stream)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ConnectError::Server(format!(
            "Layer4 timeout after {:?}",
            backend.config.timeout_connect
        ))),
    }
}

fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_TIME)
        .with_interval(KEEPALIVE_INTERVAL);
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}
