//! warren-vip: VRRP virtual-IP agent.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use anyhow::Context as _;

use warren_vip::{agent::Agent, config, metrics, notify};

#[derive(Parser)]
#[command(
    name = "warren-vip",
    version,
    about = "VRRP (v3/v2) virtual-IP agent, keepalived-compatible"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "WARREN_VIP_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a configuration file and exit.
    CheckConfig { file: PathBuf },
}

/// The file's configuration, or every problem of the file and then of its
/// notify scripts.
fn check(file: &std::path::Path) -> Result<config::Config, config::ConfigError> {
    let c = config::load(file)?;
    notify::check_scripts(file, &c)?;
    Ok(c)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,netlink_packet_route=error".into());
    let sub = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cli.log_json {
        sub.json().init();
    } else {
        sub.init();
    }
    let file = match (&cli.cmd, &cli.config) {
        (Some(Cmd::CheckConfig { file }), _) => {
            return match check(file) {
                Ok(c) => {
                    println!("{}: OK ({} instance(s))", file.display(), c.instances.len());
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        (None, Some(f)) => f.clone(),
        (None, None) => {
            eprintln!("warren-vip: --config FILE is required (or `warren-vip check-config FILE`)");
            return std::process::ExitCode::from(2);
        }
    };
    let cfg = match check(&file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let loaded_text = std::fs::read(&file).unwrap_or_default();
    match rt.block_on(run(cfg, &file, loaded_text)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(
    cfg: config::Config,
    file: &std::path::Path,
    loaded_text: Vec<u8>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut all = Vec::new();
    let mut tasks = Vec::new();
    for inst in cfg.instances {
        let m = Arc::new(metrics::InstanceMetrics::new(&inst.name, inst.vrid));
        all.push(m.clone());
        tracing::info!(
            "({}) starting: interface {}, VRID {}, priority {}, VRRPv{}, advert {:?}, {}",
            inst.name,
            inst.interface,
            inst.vrid,
            inst.priority,
            inst.version.number(),
            inst.advert_int,
            if inst.unicast_peers.is_empty() {
                "multicast".to_string()
            } else {
                format!("unicast peers {:?}", inst.unicast_peers)
            }
        );
        let name = inst.name.clone();
        let agent = Agent::new(inst, m)
            .with_context(|| format!("({name}) cannot open a netlink connection"))?;
        tasks.push((name, tokio::spawn(agent.run(stop_rx.clone()))));
    }
    if let Some(bind) = cfg.status_bind {
        let all = all.clone();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(bind, all).await {
                tracing::error!("status endpoint {bind}: {e}");
            }
        });
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: resigning and removing virtual addresses"); break }
            _ = int.recv() => { tracing::info!("SIGINT: resigning and removing virtual addresses"); break }
            _ = hup.recv() => on_hangup(file, &loaded_text),
        }
    }
    let _ = stop_tx.send(true);
    let mut left = Vec::new();
    for (name, t) in tasks {
        match t.await {
            Ok(addrs) => left.extend(addrs.iter().map(|a| format!("{name}: {a}"))),
            Err(e) => {
                tracing::error!("({name}) instance task ended abnormally: {e}");
                left.push(format!("{name}: unknown"));
            }
        }
    }
    if !left.is_empty() {
        anyhow::bail!(
            "stopped with virtual addresses not removed: {} (see the errors above)",
            left.join(", ")
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP must never end the agent (the default action would drop the VIP
/// without resigning).  Instances are not re-created in place: a changed
/// file is validated and reported, and applied by a restart, whose
/// priority-0 resign hands the VIP over within the skew time.
fn on_hangup(file: &std::path::Path, loaded_text: &[u8]) {
    match check(file) {
        Err(e) => tracing::error!("SIGHUP: {e}; the running configuration stays"),
        Ok(_) if std::fs::read(file).is_ok_and(|t| t == loaded_text) => {
            tracing::info!("SIGHUP: {} unchanged, nothing to do", file.display())
        }
        Ok(_) => tracing::warn!(
            "SIGHUP: {} changed and is valid; restart warren-vip to apply it (running configuration unchanged)",
            file.display()
        ),
    }
}
