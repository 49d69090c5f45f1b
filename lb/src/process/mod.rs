//! The balancer as a process, start to exit: start (or take over from the
//! process being upgraded), then serve reloads, upgrade requests and stops
//! until stopped or handed over, then drain.  The `warren-lb` binary only
//! parses its arguments and calls [`run`]; tests drive the same loop in
//! process through [`Process`] and a [`Control`] instead of signals.
//!
//! Calling contract of [`Process`]:
//! 1. load the configuration (and size the open-files limit for it, see
//!    [`size_open_files`]);
//! 2. get the [`Commands`] (install the signal handlers) *before*
//!    [`Process::start`], so a stop during start-up is not the signal's
//!    default action;
//! 3. [`Process::start`] binds (or takes the sockets over) and, when asked
//!    to, listens for upgrades; on error everything it started is stopped;
//! 4. [`Process::serve`] returns once the balancer has stopped: listeners
//!    closed, sessions drained (or cut), every task ended.

mod commands;
mod handover;
mod reload;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tracing::{error, info, warn};

pub use commands::{Commands, Control};

use crate::config::Config;
use crate::limits::{self, OpenFiles};
use crate::live::Live;
use crate::runtime::{self, Running};
use commands::Command;

/// What the command line chose for the serving process.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file, re-read on every reload.
    pub config: PathBuf,
    /// Serve listening-socket handovers on this unix socket
    /// (`--upgrade-socket`).
    pub upgrade_socket: Option<PathBuf>,
    /// Take the listening sockets over from the warren-lb serving
    /// upgrades at this path (`--upgrade-from`).
    pub upgrade_from: Option<PathBuf>,
}

/// Why a balancer did not start.  Whatever had started is stopped again.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The sockets of the process being upgraded could not be received.
    #[error("upgrade: {0:#}")]
    Upgrade(anyhow::Error),
    /// A bind, the resolver ... (the configuration itself was valid).
    #[error("{0:#}")]
    Runtime(anyhow::Error),
    #[error("cannot listen for upgrades on {}: {source}", path.display())]
    UpgradeSocket {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The `warren-lb` daemon: loads `options.config`, serves until SIGTERM,
/// SIGINT or an upgrade, and says how it ended: 0 after a stop or a
/// handover, 2 for a configuration that does not validate (its problems on
/// stderr), 1 when it could not start.
pub fn run(options: Options) -> ExitCode {
    let config = match crate::config::load(&options.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    size_open_files(&config);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async {
        let Ok(commands) = Commands::signals() else {
            error!("cannot install the signal handlers");
            return ExitCode::FAILURE;
        };
        match Process::start(config, options).await {
            Ok(process) => {
                process.serve(commands).await;
                ExitCode::SUCCESS
            }
            Err(e @ StartError::Upgrade(_)) => {
                error!(event = "upgrade", step = "failed", "{e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        }
    });
    // Do not wait for an abandoned handover's blocking read (up to a
    // minute) to time out.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// A started balancer, ready to [`serve`](Process::serve).
pub struct Process {
    running: Running,
    options: Options,
    upgrades: Option<UnixListener>,
}

/// How [`Process::serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// A new process took the listening sockets over (an upgrade), rather
    /// than a stop.
    pub handed_over: bool,
    pub drain: Drain,
}

/// How the wait for the open sessions ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every session ended by itself.
    Complete,
    /// `global.hard_stop_after` passed with this many sessions still open;
    /// they were closed.
    HardStopAfter(usize),
    /// A second stop closed every session still open.
    SecondStop,
}

/// What the serving loop was woken by.
enum Event {
    Command(Command),
    UpgradeRequest(std::io::Result<UnixStream>),
    /// A handover finished: true when the new process took over.
    HandoverDone(bool),
}

impl Process {
    /// Starts serving `config` (loaded from `options.config`): takes the
    /// listening sockets over when `options.upgrade_from` is set, else
    /// binds, then listens for upgrades on `options.upgrade_socket`; only
    /// then does the process being upgraded hear `ready`.
    pub async fn start(config: Config, options: Options) -> Result<Process, StartError> {
        let handover = match &options.upgrade_from {
            // A blocking exchange: off the runtime's threads, so the
            // process being upgraded may even be served by this runtime.
            Some(from) => {
                let from = from.clone();
                let received = tokio::task::spawn_blocking(move || handover::receive(&from))
                    .await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("receiving the sockets: {e}")));
                Some(received.map_err(StartError::Upgrade)?)
            }
            None => None,
        };
        let (running, handover) = match handover {
            Some(mut h) => {
                let sockets = std::mem::take(&mut h.sockets);
                let running = runtime::take_over(config, sockets).await;
                (running.map_err(StartError::Runtime)?, Some(h))
            }
            None => (
                runtime::start(config).await.map_err(StartError::Runtime)?,
                None,
            ),
        };
        let upgrades = match &options.upgrade_socket {
            None => None,
            Some(path) => {
                let _ = std::fs::remove_file(path);
                match UnixListener::bind(path) {
                    Ok(l) => Some(l),
                    Err(source) => {
                        // The old process has not heard `ready` (dropping
                        // the handover tells it the upgrade failed), so it
                        // keeps serving.
                        running.shutdown().await;
                        return Err(StartError::UpgradeSocket {
                            path: path.clone(),
                            source,
                        });
                    }
                }
            }
        };
        // Only now, with nothing left to fail, is the old process told to
        // stop accepting: a failure after `ready` would leave nobody
        // serving.
        if let Some(h) = handover {
            handover::took_over(h);
        }
        info!(
            event = "start",
            generation = 1u64,
            "warren-lb {} started with {} (generation 1)",
            env!("CARGO_PKG_VERSION"),
            options.config.display()
        );
        Ok(Process {
            running,
            options,
            upgrades,
        })
    }

    /// The state the admin API shows (generation, counters), to watch the
    /// balancer while it serves.
    pub fn live(&self) -> Arc<Live> {
        self.running.live.clone()
    }

    /// Where each frontend listened at start.
    pub fn listening(&self) -> &[std::net::SocketAddr] {
        &self.running.listening
    }

    /// Serves `commands` and upgrade requests until a stop or a handover,
    /// then closes the listeners, waits for the open sessions (at most
    /// `global.hard_stop_after`, or until a second stop) and stops every
    /// task.  Sessions still open after that are not closed one by one:
    /// they end with the process (in a test, with its runtime).
    pub async fn serve(self, mut commands: Commands) -> Stopped {
        let Process {
            running,
            options,
            upgrades,
        } = self;
        let handed_over =
            serve_until_stopped(&running, &options.config, &upgrades, &mut commands).await;
        drop(upgrades);
        if !handed_over {
            if let Some(path) = &options.upgrade_socket {
                let _ = std::fs::remove_file(path);
            }
        }
        let drain = drain(&running, &mut commands).await;
        running.shutdown().await;
        Stopped { handed_over, drain }
    }
}

/// The serving loop: true when it ended with a handover, false on a stop.
///
/// A handover waits up to a minute for the new process to say `ready`;
/// commands are served meanwhile, and one handover runs at a time (a second
/// request is refused by closing it).  A handover still waiting when a stop
/// comes is abandoned: this process stops accepting either way.
async fn serve_until_stopped(
    running: &Running,
    path: &Path,
    upgrades: &Option<UnixListener>,
    commands: &mut Commands,
) -> bool {
    let mut handing_over: Option<Pin<Box<dyn Future<Output = bool> + Send + '_>>> = None;
    loop {
        let event = tokio::select! {
            command = commands.next() => Event::Command(command),
            r = async {
                match upgrades {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => Event::UpgradeRequest(r.map(|(stream, _)| stream)),
            took_over = async {
                match handing_over.as_mut() {
                    Some(h) => h.await,
                    None => std::future::pending().await,
                }
            } => Event::HandoverDone(took_over),
        };
        match event {
            Event::Command(Command::Reload(reply)) => {
                let outcome = reload::reload_file(running, path).await;
                if let Some(reply) = reply {
                    // Whoever asked may have stopped waiting.
                    let _ = reply.send(outcome);
                }
            }
            Event::Command(Command::Stop) => return false,
            Event::UpgradeRequest(Ok(stream)) if handing_over.is_none() => {
                handing_over = Some(Box::pin(handover::hand_over(running, stream)));
            }
            Event::UpgradeRequest(Ok(_)) => warn!(
                event = "upgrade",
                step = "refused",
                "upgrade: another handover is in progress; request refused"
            ),
            Event::UpgradeRequest(Err(e)) => {
                warn!(
                    event = "upgrade",
                    step = "failed",
                    "upgrade: accept failed: {e}"
                )
            }
            Event::HandoverDone(took_over) => {
                handing_over = None;
                if took_over {
                    running.hand_off_admin().await;
                    return true;
                }
            }
        }
    }
}

/// Closes the listeners and waits for the open sessions to end, at most
/// `global.hard_stop_after`; a second stop ends the wait at once.
async fn drain(running: &Running, commands: &mut Commands) -> Drain {
    let deadline = running.live.current().config.hard_stop_after;
    let open = running.live.sessions.load(Ordering::Acquire);
    info!(
        event = "stop",
        sessions = open,
        "stopping: listeners closed, waiting for {open} sessions to end{}",
        match deadline {
            Some(d) => format!(" (at most {d:?}, global.hard_stop_after)"),
            None => String::new(),
        }
    );
    let drain = tokio::select! {
        left = running.drain(deadline) => match left {
            0 => Drain::Complete,
            left => Drain::HardStopAfter(left),
        },
        _ = commands.next_stop() => Drain::SecondStop,
    };
    match drain {
        Drain::Complete => {}
        Drain::SecondStop => info!(
            event = "stop",
            "second stop signal: closing every session now"
        ),
        Drain::HardStopAfter(left) => info!(
            event = "stop",
            sessions = left,
            "hard_stop_after reached: closing {left} sessions"
        ),
    }
    drain
}

/// Raises the open-files limit to what `config` can hold open (see
/// [`crate::limits`]), or says why it cannot.
pub fn size_open_files(config: &Config) {
    match limits::raise_open_files(limits::fds_needed(config)) {
        Ok(OpenFiles::Enough(_)) => {}
        Ok(OpenFiles::Raised { from, to }) => {
            info!("open files limit raised from {from} to {to} (maxconn of every frontend x 2 + pipe pool x 2 + listeners + 256)")
        }
        Ok(OpenFiles::Short { limit, needed }) => warn!(
            "open files limit is {limit} (the hard limit), the configuration needs {needed} (maxconn of every frontend x 2 + pipe pool x 2 + listeners + 256): raise LimitNOFILE / ulimit -Hn or lower maxconn"
        ),
        Err(e) => warn!("cannot read or raise the open files limit: {e}"),
    }
}
