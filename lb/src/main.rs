//! The `warren-lb` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::{error, info};

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
    #[command(subcommand)]
    command: Option<Command>,
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
        None => run(cli.config),
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

fn run(path: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();
    let config = match warren_lb::config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let running = match warren_lb::runtime::start(config).await {
            Ok(r) => r,
            Err(e) => {
                error!("{e:#}");
                return ExitCode::FAILURE;
            }
        };
        info!(
            "warren-lb {} started with {}",
            env!("CARGO_PKG_VERSION"),
            path.display()
        );
        wait_for_stop_signal().await;
        info!("stopping");
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
