//! The `warren-lb` command.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::{error, info, warn};
use warren_lb::limits::OpenFiles;

#[derive(Parser)]
#[command(
    name = "warren-lb",
    version,
    about = "L4 load balancer for RabbitMQ with HAProxy-style checks"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(
        short,
        long,
        default_value = "/etc/warren/lb.toml",
        env = "WARREN_LB_CONFIG"
    )]
    config: PathBuf,
    /// Log format: `text` (one human line per event) or `json` (one JSON
    /// object per line, every fact also a field).
    #[arg(long, value_enum, default_value = "text", env = "WARREN_LB_LOG_FORMAT")]
    log_format: LogFormat,
    /// Serve listening-socket handovers on this unix socket, so a new
    /// binary started with `--upgrade-from` takes over without refusing a
    /// connection (this process then drains and exits).
    #[arg(long, env = "WARREN_LB_UPGRADE_SOCKET")]
    upgrade_socket: Option<PathBuf>,
    /// Take the listening sockets over from the warren-lb serving
    /// `--upgrade-socket` at this path.
    #[arg(long)]
    upgrade_from: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file and exit (like `haproxy -c`): 0 when valid.
    CheckConfig { file: PathBuf },
    /// Talk to a running warren-lb's admin API.
    Ctl {
        /// Admin API base URL.
        #[arg(long, default_value = "http://127.0.0.1:8404", env = "WARREN_LB_ADMIN")]
        admin: String,
        /// Bearer token, when the admin API has one.
        #[arg(long, env = "WARREN_LB_TOKEN")]
        token: Option<String>,
        #[command(subcommand)]
        action: CtlAction,
    },
}

#[derive(Subcommand)]
enum CtlAction {
    /// Print the JSON status of every backend and server.
    Status,
    /// Exit 0 when every backend has an eligible server.
    Ready,
    /// Stop sending new sessions to BACKEND/SERVER; existing ones continue.
    Drain { server: String },
    /// Drain BACKEND/SERVER and close its sessions.
    Maint { server: String },
    /// Return BACKEND/SERVER to service (also releases a manual failback).
    Enable { server: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => match warren_lb::config::load(&file) {
            Ok(_) => {
                println!("{}: configuration is valid", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!(
                    "{}: {} problem(s), configuration refused",
                    file.display(),
                    e.problems.len()
                );
                ExitCode::from(2)
            }
        },
        Some(Command::Ctl {
            admin,
            token,
            action,
        }) => ctl(&admin, token.as_deref(), action),
        None => run(
            cli.config,
            cli.log_format,
            cli.upgrade_socket,
            cli.upgrade_from,
        ),
    }
}

fn ctl(admin: &str, token: Option<&str>, action: CtlAction) -> ExitCode {
    let base = admin.trim_end_matches('/');
    let (method, url) = match &action {
        CtlAction::Status => (reqwest::Method::GET, format!("{base}/status")),
        CtlAction::Ready => (reqwest::Method::GET, format!("{base}/readyz")),
        CtlAction::Drain { server }
        | CtlAction::Maint { server }
        | CtlAction::Enable { server } => {
            let Some((backend, name)) = server.split_once('/') else {
                eprintln!("{server:?}: expected BACKEND/SERVER, such as rabbitmq/rabbit1");
                return ExitCode::from(2);
            };
            let command = match action {
                CtlAction::Drain { .. } => "drain",
                CtlAction::Maint { .. } => "maint",
                _ => "ready",
            };
            (
                reqwest::Method::POST,
                format!("{base}/servers/{backend}/{name}/{command}"),
            )
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut req = reqwest::Client::new().request(method, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(resp) => {
                let ok = resp.status().is_success();
                let body = resp.text().await.unwrap_or_default();
                print!("{body}");
                if !body.ends_with('\n') {
                    println!();
                }
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("cannot reach the admin API at {url}: {e}");
                ExitCode::from(2)
            }
        }
    })
}

fn run(
    path: PathBuf,
    format: LogFormat,
    upgrade_socket: Option<PathBuf>,
    upgrade_from: Option<PathBuf>,
) -> ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    match format {
        // Text: the message only (it already says everything, in HAProxy's
        // words); the structured fields are for json.  No colours unless
        // on a terminal (journald, files).
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(
                |writer, field, value| {
                    if field.name() == "message" {
                        write!(writer, "{value:?}")
                    } else {
                        Ok(())
                    }
                },
            ))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter)
            .with_target(false)
            .init(),
    }
    let config = match warren_lb::config::load(&path) {
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
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int, mut hup) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(t), Ok(i), Ok(h)) => (t, i, h),
            _ => {
                error!("cannot install the signal handlers");
                return ExitCode::FAILURE;
            }
        };
        let mut handover = None;
        if let Some(from) = &upgrade_from {
            match warren_lb::upgrade::Handover::receive(from) {
                Ok(h) => {
                    let sockets = h.sockets.frontends.len() + usize::from(h.sockets.admin.is_some());
                    info!(
                        event = "upgrade",
                        step = "received",
                        sockets,
                        "upgrade: received {sockets} listening socket(s) from {}{}; checking every server once before accepting",
                        from.display(),
                        if h.sockets.admin.is_some() { ", the admin API's included" } else { "" }
                    );
                    handover = Some(h);
                }
                Err(e) => {
                    error!(event = "upgrade", step = "failed", "upgrade: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let started = match handover.as_mut() {
            Some(h) => warren_lb::runtime::take_over(config, std::mem::take(&mut h.sockets)).await,
            None => warren_lb::runtime::start(config).await,
        };
        let running = match started {
            Ok(r) => r,
            Err(e) => {
                error!("{e:#}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(h) = handover {
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
        let upgrades = match &upgrade_socket {
            None => None,
            Some(p) => {
                let _ = std::fs::remove_file(p);
                match tokio::net::UnixListener::bind(p) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        error!("cannot listen for upgrades on {}: {e}", p.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
        };
        info!(
            event = "start",
            generation = 1u64,
            "warren-lb {} started with {} (generation 1)",
            env!("CARGO_PKG_VERSION"),
            path.display()
        );
        let mut upgraded = false;
        // A handover waits up to a minute for the new process to say
        // `ready`; signals are served meanwhile, and one handover runs at
        // a time (a second request is refused by closing it).
        let mut handing_over: Option<Pin<Box<dyn Future<Output = bool> + '_>>> = None;
        loop {
            let event = tokio::select! {
                _ = hup.recv() => Event::Reload,
                _ = term.recv() => Event::Stop,
                _ = int.recv() => Event::Stop,
                r = async {
                    match &upgrades {
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
                Event::Reload => reload(&running, &path).await,
                Event::Stop => break,
                Event::UpgradeRequest(Ok(stream)) if handing_over.is_none() => {
                    handing_over = Some(Box::pin(hand_over(&running, stream)));
                }
                Event::UpgradeRequest(Ok(_)) => warn!(
                    event = "upgrade",
                    step = "refused",
                    "upgrade: another handover is in progress; request refused"
                ),
                Event::UpgradeRequest(Err(e)) => {
                    warn!(event = "upgrade", step = "failed", "upgrade: accept failed: {e}")
                }
                Event::HandoverDone(took_over) => {
                    handing_over = None;
                    if took_over {
                        upgraded = true;
                        running.hand_off_admin().await;
                        break;
                    }
                }
            }
        }
        // A handover still waiting on the new process is abandoned: this
        // process stops accepting either way.
        drop(handing_over);
        drop(upgrades);
        if !upgraded {
            if let Some(p) = &upgrade_socket {
                let _ = std::fs::remove_file(p);
            }
        }
        let deadline = running.live.current().config.hard_stop_after;
        let open = running
            .live
            .sessions
            .load(std::sync::atomic::Ordering::Acquire);
        info!(
            event = "stop",
            sessions = open,
            "stopping: listeners closed, waiting for {open} sessions to end{}",
            match deadline {
                Some(d) => format!(" (at most {d:?}, global.hard_stop_after)"),
                None => String::new(),
            }
        );
        // A second SIGTERM/SIGINT stops at once.
        let left = tokio::select! {
            n = running.drain(deadline) => n,
            _ = term.recv() => usize::MAX,
            _ = int.recv() => usize::MAX,
        };
        if left == usize::MAX {
            info!(
                event = "stop",
                "second stop signal: closing every session now"
            );
        } else if left > 0 {
            info!(
                event = "stop",
                sessions = left,
                "hard_stop_after reached: closing {left} sessions"
            );
        }
        running.shutdown().await;
        ExitCode::SUCCESS
    });
    // Do not wait for an abandoned handover's blocking read (up to a
    // minute) to time out.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// What the main loop was woken by.
enum Event {
    Reload,
    Stop,
    UpgradeRequest(std::io::Result<tokio::net::UnixStream>),
    /// A handover finished: true when the new process took over.
    HandoverDone(bool),
}

/// Hands the listening sockets to a new process; true once it took over.
async fn hand_over(running: &warren_lb::runtime::Running, stream: tokio::net::UnixStream) -> bool {
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
        warren_lb::upgrade::hand_over(stream, &sockets)
    })
    .await;
    match result {
        Ok(Ok(true)) => {
            info!(
                event = "upgrade",
                step = "handed_over",
                "upgrade: the new process is serving; this one stops accepting and drains"
            );
            true
        }
        Ok(Ok(false)) => {
            warn!(
                event = "upgrade",
                step = "aborted",
                "upgrade aborted: the new process did not become ready; still serving"
            );
            false
        }
        Ok(Err(e)) => {
            warn!(
                event = "upgrade",
                step = "aborted",
                "upgrade aborted: {e:#}; still serving"
            );
            false
        }
        Err(e) => {
            warn!(
                event = "upgrade",
                step = "aborted",
                "upgrade aborted: {e}; still serving"
            );
            false
        }
    }
}

/// Raises the open-files limit to what `config` can hold open (see
/// [`warren_lb::limits`]), or says why it cannot.
fn size_open_files(config: &warren_lb::config::Config) {
    match warren_lb::limits::raise_open_files(warren_lb::limits::fds_needed(config)) {
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

/// SIGHUP: re-read and validate the file; swap only a valid configuration.
async fn reload(running: &warren_lb::runtime::Running, path: &std::path::Path) {
    let old = running.generation();
    let config = match warren_lb::config::load(path) {
        Ok(c) => c,
        Err(e) => {
            running.reload_refused();
            let problems: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
            error!(
                event = "reload",
                result = "failed",
                generation = old,
                error = %problems.join("; "),
                "reload failed, generation {old} keeps serving: {}",
                problems.join("; ")
            );
            return;
        }
    };
    size_open_files(&config);
    match running.reload(config).await {
        Ok(r) => info!(
            event = "reload",
            result = "ok",
            generation = r.generation,
            servers_kept = r.servers_kept,
            servers_added = r.servers_added,
            servers_removed = r.servers_removed,
            binds_opened = r.binds_opened,
            binds_closed = r.binds_closed,
            "reload ok: generation {} from {} ({} servers kept, {} added, {} removed; {} listeners opened, {} closed)",
            r.generation,
            path.display(),
            r.servers_kept,
            r.servers_added,
            r.servers_removed,
            r.binds_opened,
            r.binds_closed
        ),
        Err(e) => error!(
            event = "reload",
            result = "failed",
            generation = old,
            error = %format!("{e:#}"),
            "reload failed, generation {old} keeps serving: {e:#}"
        ),
    }
}
