//! The state every part of a running balancer shares: the current
//! [`Generation`] (configuration and backends) and the process-wide
//! counters.  The listeners ([`crate::proxy`]), the admin API
//! ([`crate::admin`]) and the reload ([`crate::runtime`]) all hold an
//! `Arc<Live>`; this module depends on none of them, so none of them
//! depends on another to reach it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use crate::backend::BackendState;
use crate::certificates::Leaf;
use crate::config::{Config, Frontend};
use crate::metrics;
use crate::pipes::PipePool;
use crate::resource::{Phase, ResourceErrors};
use crate::tls::{Rotations, Terminator};

/// One loaded configuration and the run-time state built from it.
pub struct Generation {
    /// 1 at start, +1 on every successful reload.
    pub number: u64,
    pub config: Config,
    pub backends: Vec<Arc<BackendState>>,
    /// Each frontend's TLS side, in file order (`None` for a plain one):
    /// what `/status` and `/metrics` read the certificate in service from.
    pub tls: Vec<Option<Arc<Terminator>>>,
}

impl Generation {
    /// Each frontend, with the leaf of the certificate its new handshakes
    /// present now when it terminates TLS.
    pub fn frontends(&self) -> impl Iterator<Item = (&Frontend, Option<Arc<Leaf>>)> {
        self.config
            .frontends
            .iter()
            .zip(&self.tls)
            .map(|(f, t)| (f, t.as_ref().map(|t| t.leaf())))
    }

    /// Each TLS frontend's name and the leaf of its certificate in service.
    pub fn certificates(&self) -> Vec<(&str, Arc<Leaf>)> {
        self.frontends()
            .filter_map(|(f, leaf)| leaf.map(|l| (f.name.as_str(), l)))
            .collect()
    }
}

/// What the admin API, the listeners and the reload share.
pub struct Live {
    /// The one lock: a generation's number, configuration and backends
    /// change together (on reload) and are read together (a `/status`, a
    /// new session's route), so they are swapped whole behind one pointer
    /// and nobody sees generation N's configuration with N+1's backends.
    /// Readers clone the `Arc` and let go at once, so the lock is never
    /// held across an `.await` and a std lock is enough.  Everything else
    /// here changes on its own and is an atomic.
    current: RwLock<Arc<Generation>>,
    pub started: Instant,
    pub started_at: SystemTime,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Client sessions open right now, over every generation.
    pub sessions: AtomicUsize,
    /// Clients closed for sending nothing within `timeout_first_byte`.
    pub first_byte_timeouts: AtomicU64,
    /// Local shortages (EMFILE ...) on the data path; never a server's.
    pub resource_errors: ResourceErrors,
    /// The splice relay's pipes, shared by every session.
    pub pipes: PipePool,
    /// Certificate changes the TLS frontends' file watches picked up.
    pub tls_rotations: Arc<Rotations>,
}

impl Live {
    /// A process that has just started: generation 1 of `config`, with
    /// the splice pipe pool sized to at most `max_pipes`.
    pub fn new(
        config: Config,
        backends: Vec<Arc<BackendState>>,
        tls: Vec<Option<Arc<Terminator>>>,
        tls_rotations: Arc<Rotations>,
        max_pipes: usize,
    ) -> Live {
        Live {
            current: RwLock::new(Arc::new(Generation {
                number: 1,
                config,
                backends,
                tls,
            })),
            started: Instant::now(),
            started_at: SystemTime::now(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            sessions: AtomicUsize::new(0),
            first_byte_timeouts: AtomicU64::new(0),
            resource_errors: ResourceErrors::default(),
            pipes: PipePool::new(max_pipes),
            tls_rotations,
        }
    }

    pub fn current(&self) -> Arc<Generation> {
        self.current.read().expect("generation lock").clone()
    }

    /// Makes `generation` the one that new sessions and the admin API
    /// see; sessions already open keep the one they started with.
    pub fn install(&self, generation: Arc<Generation>) {
        *self.current.write().expect("generation lock") = generation;
    }

    pub fn metrics(&self) -> String {
        let generation = self.current();
        let (tls_rotations_ok, tls_rotations_failed) = self.tls_rotations.counts();
        metrics::render(
            &generation.backends,
            &generation.certificates(),
            &metrics::Process {
                uptime: self.started.elapsed(),
                started_at: self.started_at,
                generation: generation.number,
                reloads_ok: self.reloads_ok.load(Ordering::Relaxed),
                reloads_failed: self.reloads_failed.load(Ordering::Relaxed),
                sessions: self.sessions.load(Ordering::Relaxed),
                first_byte_timeouts: self.first_byte_timeouts.load(Ordering::Relaxed),
                resource_errors_accept: self.resource_errors.count(Phase::Accept),
                resource_errors_connect: self.resource_errors.count(Phase::Connect),
                pipes_used: self.pipes.used(),
                pipes_free: self.pipes.free(),
                tls_rotations_ok,
                tls_rotations_failed,
            },
        )
    }
}

/// What a listener task reads for each new client.
#[derive(Clone)]
pub struct Route {
    pub frontend: Frontend,
    pub backend: Arc<BackendState>,
    /// The frontend's TLS side for this generation, when it terminates TLS.
    pub tls: Option<Arc<Terminator>>,
}
