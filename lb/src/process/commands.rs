//! What asks a serving balancer to reload or stop: the process's signals
//! (SIGHUP reloads, SIGTERM and SIGINT stop, as for HAProxy), or, in a
//! test or an embedding program, a [`Control`] handle.  The lifecycle
//! loop reads one [`Commands`] and does not know which it is.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

use crate::runtime::Reloaded;

/// One request to the lifecycle loop.
pub(super) enum Command {
    /// Re-read the configuration file; the outcome goes to the reply, if
    /// someone waits for it (a signal does not).
    Reload(Option<oneshot::Sender<Result<Reloaded, String>>>),
    /// Stop accepting and drain; a second one closes every session at once.
    Stop,
}

/// Where the lifecycle loop's commands come from.
pub struct Commands(Source);

enum Source {
    Signals {
        hangup: Signal,
        terminate: Signal,
        interrupt: Signal,
    },
    Control(mpsc::UnboundedReceiver<Command>),
}

impl Commands {
    /// The process's signals.  Installing them replaces their default
    /// action (exit) for the whole process, so do it before anything that
    /// a stop should let finish.
    pub fn signals() -> std::io::Result<Commands> {
        Ok(Commands(Source::Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        }))
    }

    /// Commands sent through the returned [`Control`] instead of signals.
    pub fn control() -> (Control, Commands) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Control(tx), Commands(Source::Control(rx)))
    }

    /// The next command.  Once every [`Control`] is dropped nobody can ask
    /// anything any more, and this waits for ever (the balancer serves on,
    /// as it would with signals nobody sends).
    pub(super) async fn next(&mut self) -> Command {
        match &mut self.0 {
            Source::Signals {
                hangup,
                terminate,
                interrupt,
            } => tokio::select! {
                _ = hangup.recv() => Command::Reload(None),
                _ = terminate.recv() => Command::Stop,
                _ = interrupt.recv() => Command::Stop,
            },
            Source::Control(rx) => match rx.recv().await {
                Some(command) => command,
                None => std::future::pending().await,
            },
        }
    }

    /// The next stop; reloads asked for meanwhile are dropped (a process
    /// that is draining loads no new configuration).
    pub(super) async fn next_stop(&mut self) {
        while !matches!(self.next().await, Command::Stop) {}
    }
}

/// Asks a balancer served with [`Commands::control`] to reload or stop,
/// like SIGHUP and SIGTERM do.
#[derive(Clone)]
pub struct Control(mpsc::UnboundedSender<Command>);

impl Control {
    /// Reloads the configuration file and waits for the outcome: what
    /// changed, or why the current generation keeps serving (the same text
    /// the `reload failed` log line carries).
    pub async fn reload(&self) -> Result<Reloaded, String> {
        let (reply, outcome) = oneshot::channel();
        if self.0.send(Command::Reload(Some(reply))).is_err() {
            return Err("not reloaded: the balancer has stopped".to_owned());
        }
        outcome
            .await
            .unwrap_or_else(|_| Err("not reloaded: the balancer stopped first".to_owned()))
    }

    /// Asks for a graceful stop (a second call closes every session at
    /// once).  Returns at once; the serving future ends when it is done.
    pub fn stop(&self) {
        // A balancer that has already stopped needs no telling.
        let _ = self.0.send(Command::Stop);
    }
}
