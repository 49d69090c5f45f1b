//! Brings a validated configuration to life: binds every frontend, starts a
//! check task per checked server, and serves until stopped.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::backend::BackendState;
use crate::config::Config;
use crate::{admin, checker, proxy};

pub struct Running {
    pub backends: Vec<Arc<BackendState>>,
    /// Where each frontend actually listens (port 0 in the file = any free port).
    pub listening: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds everything first, so a taken port fails start-up before any
/// server is checked or any client accepted.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let mut listeners = Vec::new();
    for f in &config.frontends {
        let l = TcpListener::bind(f.bind)
            .await
            .with_context(|| format!("frontend '{}': cannot listen on {}", f.name, f.bind))?;
        listeners.push(l);
    }
    let admin_listener = match &config.admin {
        Some(a) => Some(
            admin::bind(a)
                .await
                .with_context(|| format!("admin: cannot listen on {}", a.bind))?,
        ),
        None => None,
    };
    let backends: Vec<_> = config
        .backends
        .iter()
        .cloned()
        .map(BackendState::new)
        .collect();
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut admin_addr = None;
    if let (Some(l), Some(a)) = (admin_listener, &config.admin) {
        admin_addr = Some(l.local_addr()?);
        info!("admin API listening on {}", l.local_addr()?);
        tasks.push(tokio::spawn(admin::serve(
            l,
            a.clone(),
            Arc::new(backends.clone()),
            stop.clone(),
        )));
    }
    for b in &backends {
        for (i, s) in b.servers.iter().enumerate() {
            if s.checked {
                tasks.push(checker::spawn(b.clone(), i));
            }
        }
    }
    let mut listening = Vec::new();
    for (f, l) in config.frontends.iter().zip(listeners) {
        let addr = l.local_addr()?;
        info!(
            "frontend '{}' listening on {addr} -> backend '{}'",
            f.name, backends[f.backend].config.name
        );
        listening.push(addr);
        tasks.push(tokio::spawn(proxy::serve(
            l,
            f.clone(),
            backends[f.backend].clone(),
            stop.clone(),
        )));
    }
    Ok(Running {
        backends,
        listening,
        admin: admin_addr,
        stop,
        tasks,
    })
}

impl Running {
    /// Stops accepting and checking.  Established sessions end with the
    /// process (graceful draining belongs to reload and upgrade).
    pub async fn shutdown(self) {
        self.stop.cancel();
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}
