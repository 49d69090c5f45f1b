//! The `warren-lb` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use warren_lb::process::{self, Options};

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
        #[arg(long, env = "WARREN_LB_TOKEN", conflicts_with = "token_file")]
        token: Option<String>,
        /// File holding the bearer token (the admin's `token_file`): keeps
        /// the token out of the process list.
        #[arg(long, env = "WARREN_LB_TOKEN_FILE")]
        token_file: Option<PathBuf>,
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
            token_file,
            action,
        }) => {
            let token = match (token, token_file) {
                (Some(t), _) => Some(t),
                (None, Some(path)) => match std::fs::read_to_string(&path) {
                    Ok(text) => Some(text.trim().to_owned()),
                    Err(e) => {
                        eprintln!("cannot read the token file {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                },
                (None, None) => None,
            };
            ctl(&admin, token.as_deref(), action)
        }
        None => {
            init_logging(cli.log_format);
            process::run(Options {
                config: cli.config,
                upgrade_socket: cli.upgrade_socket,
                upgrade_from: cli.upgrade_from,
            })
        }
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

/// Log lines on stdout, in `format`, at the level `RUST_LOG` asks for
/// (info by default).
fn init_logging(format: LogFormat) {
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
}
