//! Brings a validated configuration to life: binds every frontend, starts a
//! check task per checked server and a resolver task per server given by
//! name, serves until stopped, and swaps in a new configuration on reload
//! without touching established sessions.
//!
//! Reload model (HAProxy's semantics, in one process):
//! * the configuration lives in a [`Generation`]; the admin API and every
//!   listener read the current one, established sessions keep the one they
//!   started with;
//! * a server that is still there (same backend, name, address) keeps its
//!   [`ServerState`]: health, operator state, sessions, counters;
//! * a frontend whose `bind` is unchanged keeps its listening socket (no
//!   connect is ever refused), new binds are opened before anything is
//!   swapped (a taken port fails the reload, nothing changes), removed
//!   binds are closed;
//! * a removed server gets no new sessions; its sessions drain, or are
//!   closed after `global.hard_stop_after` when set.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_resolver::TokioResolver;
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backend::BackendState;
use crate::config::{Address, Admin, Config, Frontend};
use crate::live::{Generation, Live, Route};
use crate::server::ServerState;
use crate::tls::{Rotations, Terminator};
use crate::upgrade::{self, Inherited, Sockets};
use crate::{admin, checker, dns, limits, proxy};

struct Listener {
    /// As written in the configuration (port 0 stays 0), which is what a
    /// reload compares.
    bind: SocketAddr,
    local: SocketAddr,
    route: watch::Sender<Route>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// A duplicate of the listening socket, to hand over on upgrade.
    dup: OwnedFd,
}

/// The admin API's listener: the configured bind (what a reload
/// compares), where it listens, and how to stop it.
struct AdminListener {
    bind: SocketAddr,
    local: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// A duplicate of the listening socket, to hand over on upgrade.
    dup: OwnedFd,
}

impl AdminListener {
    /// Binds `admin`: the fallible part, done before anything changes.
    async fn bind(admin: &Admin) -> anyhow::Result<Bound> {
        let listener = admin::bind(admin)
            .await
            .with_context(|| format!("admin: cannot listen on {}", admin.bind))?;
        Bound::new(listener)
    }

    /// The socket handed over by the process being upgraded when it was
    /// opened for the same bind, else a fresh one.
    async fn adopt_or_bind(
        admin: &Admin,
        inherited: Option<(SocketAddr, std::net::TcpListener)>,
    ) -> anyhow::Result<Bound> {
        match inherited {
            Some((bind, l)) if bind == admin.bind => {
                info!("admin API: listening socket inherited");
                Bound::inherit(l)
            }
            _ => Self::bind(admin).await,
        }
    }

    fn open(bound: Bound, bind: SocketAddr, live: &Arc<Live>, stop: &CancellationToken) -> Self {
        let Bound {
            listener,
            local,
            dup,
        } = bound;
        info!("admin API listening on {local}");
        let own_stop = stop.child_token();
        let task = tokio::spawn(admin::serve(listener, live.clone(), own_stop.clone()));
        AdminListener {
            bind,
            local,
            stop: own_stop,
            task,
            dup,
        }
    }
}

/// Said at start and at every reload that takes such a config, as HAProxy
/// repeats its configuration warnings.
fn warn_if_unprotected(admin: &Admin) {
    if admin.commands_unprotected() {
        warn!(
            "admin API on {}: reachable beyond loopback and no token is set, so anyone who reaches it can drain or disable servers; set admin.token_file",
            admin.bind
        );
    }
}

struct Inner {
    listeners: Vec<Listener>,
    admin: Option<AdminListener>,
    /// Cancels the check tasks of the current generation.
    checks: CancellationToken,
}

pub struct Running {
    pub live: Arc<Live>,
    /// Where each frontend listened at start (port 0 in the file = any
    /// free port); see [`Running::listening_now`] after a reload.
    pub listening: Vec<SocketAddr>,
    /// Where the admin API listened at start; see [`Running::admin_now`]
    /// after a reload.
    pub admin: Option<SocketAddr>,
    stop: CancellationToken,
    inner: Mutex<Inner>,
}

/// The outcome of a successful reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub generation: u64,
    pub servers_kept: usize,
    pub servers_added: usize,
    pub servers_removed: usize,
    pub binds_opened: usize,
    pub binds_closed: usize,
}

/// Binds everything first, so a taken port fails start-up before any
/// server is checked or any client accepted.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    launch(config, Inherited::default(), false).await
}

/// The new process of an upgrade: a frontend or admin API whose configured
/// bind is in `inherited` (sockets handed over by the process being
/// upgraded) uses that socket instead of binding; unused inherited sockets
/// are closed.  Nothing is accepted until every server's first check has
/// finished (at most [`upgrade::FIRST_CHECKS_LIMIT`]): until then the old
/// process, which shares the sockets, serves with health it knows.
pub async fn take_over(config: Config, inherited: Inherited) -> anyhow::Result<Running> {
    launch(config, inherited, true).await
}

async fn launch(
    config: Config,
    inherited: Inherited,
    first_checks_first: bool,
) -> anyhow::Result<Running> {
    let Inherited {
        frontends: mut inherited,
        admin: inherited_admin,
    } = inherited;
    let mut bound = Vec::new();
    for f in &config.frontends {
        match inherited.iter().position(|(b, _)| *b == f.bind) {
            Some(i) => {
                let (_, l) = inherited.swap_remove(i);
                info!("frontend '{}': listening socket inherited", f.name);
                bound.push(Bound::inherit(l)?);
            }
            None => bound.push(Bound::new(bind(f).await?)?),
        }
    }
    drop(inherited);
    if let Some(a) = &config.admin {
        warn_if_unprotected(a);
    }
    let admin_listener = match &config.admin {
        Some(a) => Some((
            AdminListener::adopt_or_bind(a, inherited_admin).await?,
            a.bind,
        )),
        None => None,
    };
    let backends: Vec<_> = config
        .backends
        .iter()
        .cloned()
        .map(BackendState::new)
        .collect();
    let stop = CancellationToken::new();
    let rotations = Arc::new(Rotations::default());
    let terminators = terminators(&config, &rotations, &stop)?;
    let live = Arc::new(Live::new(
        config.clone(),
        backends.clone(),
        terminators.clone(),
        rotations,
        limits::max_pipes(&config),
    ));
    let resolver = dns_resolver(&config)?;
    let checks = stop.child_token();
    spawn_server_tasks(&backends, &checks, resolver, &config);
    if first_checks_first {
        first_checks(&backends, upgrade::FIRST_CHECKS_LIMIT).await;
    }
    let admin = admin_listener.map(|(bound, bind)| AdminListener::open(bound, bind, &live, &stop));
    let mut listeners = Vec::new();
    for ((f, l), tls) in config.frontends.iter().zip(bound).zip(terminators) {
        listeners.push(open(l, f, tls, &backends, &live, &stop));
    }
    Ok(Running {
        listening: listeners.iter().map(|l| l.local).collect(),
        live,
        admin: admin.as_ref().map(|a| a.local),
        stop,
        inner: Mutex::new(Inner {
            listeners,
            admin,
            checks,
        }),
    })
}

async fn bind(f: &Frontend) -> anyhow::Result<TcpListener> {
    listen(f.bind, f.maxconn)
        .with_context(|| format!("frontend '{}': cannot listen on {}", f.name, f.bind))
}

/// Binds with an accept backlog of `maxconn` (HAProxy's default `backlog`),
/// capped by the kernel's `net.core.somaxconn`.  The std/tokio default of
/// 128 overflows when hundreds of AMQP clients reconnect at once after a
/// failover, and an overflowed SYN costs the client a 1 s, 3 s, 7 s ...
/// retransmit.
pub fn listen(addr: SocketAddr, maxconn: usize) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(maxconn.clamp(1024, u32::MAX as usize) as u32)
}

/// A listening socket with what serving and handing it over need; getting
/// these is the fallible part, done before anything changes.
struct Bound {
    listener: TcpListener,
    local: SocketAddr,
    dup: OwnedFd,
}

impl Bound {
    fn new(listener: TcpListener) -> anyhow::Result<Bound> {
        Ok(Bound {
            local: listener.local_addr()?,
            dup: OwnedFd::from(socket2::SockRef::from(&listener).try_clone()?),
            listener,
        })
    }

    /// A socket received in an upgrade handover.
    fn inherit(listener: std::net::TcpListener) -> anyhow::Result<Bound> {
        listener.set_nonblocking(true)?;
        Bound::new(TcpListener::from_std(listener)?)
    }
}

/// Waits until every checked server has finished its first check, at most
/// `limit`; says which are still unchecked when it gives up.
///
/// Polled: a check task publishes `last_check` once its verdict (state,
/// cut-off) is applied, and nothing else needs to hear about a first check.
async fn first_checks(backends: &[Arc<BackendState>], limit: Duration) {
    let unchecked = || -> Vec<String> {
        backends
            .iter()
            .flat_map(|b| &b.servers)
            .filter(|s| s.checked() && s.last_check().is_none())
            .map(|s| s.id())
            .collect()
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = unchecked();
        if left.is_empty() {
            info!("upgrade: every server checked once; accepting");
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(
                "upgrade: no check finished within {limit:?} for {}; accepting, these count as UP until checked",
                left.join(", ")
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The TLS side of each frontend, in file order (`None` for a plain one).
/// Loading certificates can fail, so this is done before anything changes;
/// on failure the ones already built are dropped, which ends their watches.
fn terminators(
    config: &Config,
    rotations: &Arc<Rotations>,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<Option<Arc<Terminator>>>> {
    config
        .frontends
        .iter()
        .map(|f| {
            f.tls
                .as_ref()
                .map(|tls| Terminator::start(&f.name, tls, rotations, stop).map(Arc::new))
                .transpose()
        })
        .collect()
}

fn open(
    bound: Bound,
    f: &Frontend,
    tls: Option<Arc<Terminator>>,
    backends: &[Arc<BackendState>],
    live: &Arc<Live>,
    stop: &CancellationToken,
) -> Listener {
    let Bound {
        listener,
        local,
        dup,
    } = bound;
    let backend = backends[f.backend].clone();
    info!(
        "frontend '{}' listening on {local} -> backend '{}'",
        f.name, backend.config.name
    );
    let (route, routes) = watch::channel(Route {
        frontend: f.clone(),
        backend,
        tls,
    });
    let own_stop = stop.child_token();
    let task = tokio::spawn(proxy::serve(
        listener,
        routes,
        live.clone(),
        own_stop.clone(),
    ));
    Listener {
        bind: f.bind,
        local,
        route,
        stop: own_stop,
        task,
        dup,
    }
}

fn spawn_until_cancelled(
    task: impl Future<Output = ()> + Send + 'static,
    token: &CancellationToken,
) {
    let token = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = task => {}
            _ = token.cancelled() => {}
        }
    });
}

/// A resolver for the servers given by name, if there are any.
fn dns_resolver(config: &Config) -> anyhow::Result<Option<Arc<TokioResolver>>> {
    let named = config
        .backends
        .iter()
        .flat_map(|b| &b.servers)
        .any(|s| matches!(s.address, Address::Name { .. }));
    if !named {
        return Ok(None);
    }
    let resolver = dns::resolver(&config.resolvers).context("resolvers")?;
    Ok(Some(Arc::new(resolver)))
}

/// The per-server tasks of a generation: checks, and the resolution of
/// servers given by name; `token` ends them all.
fn spawn_server_tasks(
    backends: &[Arc<BackendState>],
    token: &CancellationToken,
    resolver: Option<Arc<TokioResolver>>,
    config: &Config,
) {
    for b in backends {
        for (i, s) in b.servers.iter().enumerate() {
            if let (Some(resolver), Address::Name { .. }) = (&resolver, &s.config.address) {
                let task = dns::run(s.clone(), resolver.clone(), config.resolvers.clone());
                spawn_until_cancelled(task, token);
            }
            if s.checked() {
                spawn_until_cancelled(checker::run(b.clone(), i), token);
            }
        }
    }
}

impl Running {
    /// The backends of the current generation.
    pub fn backends(&self) -> Vec<Arc<BackendState>> {
        self.live.current().backends.clone()
    }

    pub fn generation(&self) -> u64 {
        self.live.current().number
    }

    /// Where each frontend of the current generation listens, in file order.
    pub async fn listening_now(&self) -> Vec<SocketAddr> {
        let inner = self.inner.lock().await;
        let generation = self.live.current();
        generation
            .config
            .frontends
            .iter()
            .filter_map(|f| {
                inner
                    .listeners
                    .iter()
                    .find(|l| l.bind == f.bind)
                    .map(|l| l.local)
            })
            .collect()
    }

    /// Swaps in a new (already validated) configuration.  On error nothing
    /// has changed and the old configuration keeps serving.  Either way the
    /// outcome is counted here, once (`reloads_ok` / `reloads_failed`).
    pub async fn reload(&self, config: Config) -> anyhow::Result<Reloaded> {
        let reloaded = self.swap(config).await;
        let counter = match reloaded {
            Ok(_) => &self.live.reloads_ok,
            Err(_) => &self.live.reloads_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        reloaded
    }

    /// The body of [`Running::reload`], which counts its outcome.
    async fn swap(&self, config: Config) -> anyhow::Result<Reloaded> {
        let mut inner = self.inner.lock().await;
        let old = self.live.current();
        // 1. Open the new binds first: the only step that can fail.
        let mut fresh = Vec::new();
        for f in &config.frontends {
            let known = inner.listeners.iter().any(|l| l.bind == f.bind)
                || fresh.iter().any(|(b, _)| *b == f.bind);
            if !known {
                fresh.push((f.bind, bind(f).await.and_then(Bound::new)?));
            }
        }
        let resolver = dns_resolver(&config)?;
        //    Certificates are read again: a reload presents the files'
        //    current pair to new handshakes, or fails whole.
        let mut terminators = terminators(&config, &self.live.tls_rotations, &self.stop)?;
        // The admin API moves only when its bind changed; the new one is
        // bound now, so a taken port fails the reload whole.
        let admin_bind = config.admin.as_ref().map(|a| a.bind);
        let admin_moves = admin_bind != inner.admin.as_ref().map(|a| a.bind);
        let fresh_admin = match (&config.admin, admin_moves) {
            (Some(a), true) => Some((AdminListener::bind(a).await?, a.bind)),
            _ => None,
        };
        // 2. Build the new backends, keeping the state of known servers.
        let mut kept = 0;
        let mut added = 0;
        let mut reused: Vec<*const ServerState> = Vec::new();
        let backends: Vec<Arc<BackendState>> = config
            .backends
            .iter()
            .map(|b| {
                let previous = old.backends.iter().find(|o| o.config.name == b.name);
                let servers = b
                    .servers
                    .iter()
                    .map(|s| {
                        let same = previous.and_then(|p| {
                            p.servers
                                .iter()
                                .find(|o| {
                                    o.config.name == s.name
                                        && o.config.address == s.address
                                        && o.config.send_proxy == s.send_proxy
                                })
                                .map(|o| (p, o))
                        });
                        match same {
                            Some((p, o)) => {
                                kept += 1;
                                o.retune(s, &p.config.check, &b.check);
                                reused.push(Arc::as_ptr(o));
                                o.clone()
                            }
                            None => {
                                added += 1;
                                Arc::new(ServerState::new(&b.name, s.clone(), &b.check))
                            }
                        }
                    })
                    .collect();
                BackendState::with_servers(b.clone(), servers)
            })
            .collect();
        let removed: Vec<Arc<ServerState>> = old
            .backends
            .iter()
            .flat_map(|b| b.servers.iter())
            .filter(|s| !reused.contains(&Arc::as_ptr(s)))
            .cloned()
            .collect();
        // 3. Swap.
        let generation = Arc::new(Generation {
            number: old.number + 1,
            config: config.clone(),
            backends: backends.clone(),
            tls: terminators.clone(),
        });
        self.live.install(generation.clone());
        //    A primary held back for failback is now held by the new
        //    generation's policy.
        for b in &backends {
            for i in 0..b.servers.len() {
                b.adopt_failback_hold(i);
            }
        }
        // 4. Checks follow the new generation (a known server keeps its
        //    health; its next check simply runs at once).
        inner.checks.cancel();
        inner.checks = self.stop.child_token();
        spawn_server_tasks(&backends, &inner.checks, resolver, &config);
        // 5. Listeners: re-route kept binds, close removed, open new.
        let mut listeners = Vec::new();
        let mut closed = 0;
        for l in inner.listeners.drain(..) {
            match config.frontends.iter().position(|f| f.bind == l.bind) {
                Some(i) => {
                    let f = &config.frontends[i];
                    let _ = l.route.send(Route {
                        frontend: f.clone(),
                        backend: backends[f.backend].clone(),
                        tls: terminators[i].take(),
                    });
                    listeners.push(l);
                }
                None => {
                    info!("listener {} closed by reload", l.local);
                    l.stop.cancel();
                    closed += 1;
                }
            }
        }
        let opened = fresh.len();
        for (bind, l) in fresh {
            let i = config
                .frontends
                .iter()
                .position(|f| f.bind == bind)
                .expect("bound from this config");
            let f = &config.frontends[i];
            let tls = terminators[i].take();
            listeners.push(open(l, f, tls, &backends, &self.live, &self.stop));
        }
        inner.listeners = listeners;
        if let Some(a) = &config.admin {
            warn_if_unprotected(a);
        }
        if admin_moves {
            if let Some(old) = inner.admin.take() {
                info!("admin API on {} closed by reload", old.local);
                old.stop.cancel();
            }
            if let Some((bound, bind)) = fresh_admin {
                inner.admin = Some(AdminListener::open(bound, bind, &self.live, &self.stop));
            }
        }
        // 6. Removed servers: no new sessions; drain, or cut at the deadline.
        for s in &removed {
            let open = s.counters.sessions.load(Ordering::Acquire);
            info!(
                server = %s.id(),
                sessions = open,
                "Server {} removed by reload: {open} sessions left to drain.",
                s.id()
            );
        }
        let servers_removed = removed.len();
        if let Some(deadline) = config.hard_stop_after {
            if !removed.is_empty() {
                let stop = self.stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(deadline) => {}
                        _ = stop.cancelled() => return,
                    }
                    for s in removed {
                        let n = s.shutdown_sessions();
                        if n > 0 {
                            warn!(
                                "Server {} (removed): {n} sessions closed after hard_stop_after {deadline:?}.",
                                s.id()
                            );
                        }
                    }
                });
            }
        }
        self.live.pipes.set_max(limits::max_pipes(&config));
        Ok(Reloaded {
            generation: generation.number,
            servers_kept: kept,
            servers_added: added,
            servers_removed,
            binds_opened: opened,
            binds_closed: closed,
        })
    }

    /// Where the admin API listens now (it may have moved on a reload).
    pub async fn admin_now(&self) -> Option<SocketAddr> {
        self.inner.lock().await.admin.as_ref().map(|a| a.local)
    }

    /// Duplicates of the current listening sockets (frontends and admin
    /// API) with their configured binds, for an upgrade handover.
    pub async fn handover_sockets(&self) -> std::io::Result<Sockets<OwnedFd>> {
        let inner = self.inner.lock().await;
        let frontends = inner
            .listeners
            .iter()
            .map(|l| Ok((l.bind, l.dup.try_clone()?)))
            .collect::<std::io::Result<_>>()?;
        let admin = match &inner.admin {
            Some(a) => Some((a.bind, a.dup.try_clone()?)),
            None => None,
        };
        Ok(Sockets { frontends, admin })
    }

    /// After a handover: the new process answers the admin API on the same
    /// socket, so this one stops accepting on it (requests it already
    /// accepted are still answered, see [`admin::serve`]).
    pub async fn hand_off_admin(&self) {
        if let Some(a) = self.inner.lock().await.admin.take() {
            info!("admin API on {}: handed over, no longer accepting", a.local);
            a.stop.cancel();
        }
    }

    /// Counts a reload refused before it reached [`Running::reload`]
    /// (a file that does not validate).
    pub fn reload_refused(&self) {
        self.live.reloads_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Graceful stop: close every listener, then wait for the open
    /// sessions to end, at most `deadline` (none = wait for all).
    /// Returns the sessions still open when it gave up.
    pub async fn drain(&self, deadline: Option<Duration>) -> usize {
        // Dropping the listeners (and their duplicate fds) closes the
        // sockets: new clients are refused instead of queueing unseen.
        let listeners = std::mem::take(&mut self.inner.lock().await.listeners);
        for l in listeners {
            l.stop.cancel();
            let _ = l.task.await;
        }
        let until = deadline.map(|d| tokio::time::Instant::now() + d);
        loop {
            let open = self.live.sessions.load(Ordering::Acquire);
            if open == 0 || until.is_some_and(|u| tokio::time::Instant::now() >= u) {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops accepting and checking.  Sessions still open end with the
    /// process.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let mut inner = self.inner.lock().await;
        for l in std::mem::take(&mut inner.listeners) {
            let _ = l.task.await;
        }
        if let Some(a) = inner.admin.take() {
            a.task.abort();
            let _ = a.task.await;
        }
    }
}
