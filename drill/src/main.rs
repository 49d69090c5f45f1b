use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use warren_drill::accounting::Verdict;
use warren_drill::drill::{self, DrillConfig, Fault};
use warren_drill::mgmt::Mgmt;
use warren_drill::report;
use warren_drill::ssh::SshOptions;
use warren_drill::target::{self, Target, Testbed};
use warren_drill::tls::{endpoint_host, DrillTls, TlsFiles};
use warren_drill::workload::{QueueMode, WorkloadConfig};

#[derive(Parser)]
#[command(
    name = "warren-drill",
    version,
    about = "Failover drills for RabbitMQ: workload + fault + accounting of every confirmed message"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one drill. Exit 0 only when the verdict is PASS (1 = FAIL, 2 = could
    /// not run, 3 = INVALID: the fault did not take effect).
    Run(Box<RunArgs>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    /// No fault injection: a workload-only smoke (only with --fault none).
    None,
    Local,
    Compose,
    Kubernetes,
    Ssh,
}

fn dur(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// AMQP endpoint the workload connects through: the VIP or the load balancer (HOST:PORT).
    #[arg(long)]
    endpoint: String,
    /// Management API base URL(s), comma separated (local: default from testbed.json).
    #[arg(long, value_delimiter = ',')]
    mgmt: Vec<String>,
    /// User for AMQP and the management API (local: default from testbed.json).
    #[arg(long)]
    user: Option<String>,
    #[arg(long, conflicts_with = "password_file")]
    password: Option<String>,
    #[arg(long)]
    password_file: Option<PathBuf>,
    #[arg(long, default_value = "/")]
    vhost: String,
    /// Speak AMQPS to --endpoint (its TLS port, 5671); https --mgmt URLs use the same CA.
    #[arg(long)]
    tls: bool,
    /// With --tls: PEM CAs the endpoint's certificate must chain to (only these are trusted).
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_ca: Option<PathBuf>,
    /// With --tls: client certificate (PEM chain) for mTLS, with --tls-key.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// With --tls: the private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    tls_key: Option<PathBuf>,
    /// With --tls: the name the endpoint's certificate must be for (default: the host of --endpoint).
    #[arg(long, value_name = "NAME", requires = "tls")]
    tls_server_name: Option<String>,

    /// Where the nodes run: local (scripts/testbed), compose, kubernetes, ssh;
    /// none = workload only (with --fault none).
    #[arg(long, value_enum, default_value = "none")]
    target: TargetKind,
    /// local: the test bed directory (holds testbed.json).
    #[arg(long)]
    testbed_dir: Option<PathBuf>,
    /// local: path of scripts/testbed (default: $WARREN_TESTBED or ./scripts/testbed).
    #[arg(long)]
    testbed_script: Option<PathBuf>,
    /// local lb-crash: pid of the active load balancer.
    #[arg(long)]
    lb_pid: Option<i32>,
    /// local lb-crash: file holding the pid of the active load balancer.
    #[arg(long)]
    lb_pidfile: Option<PathBuf>,
    /// local lb-crash: shell command that restarts the load balancer afterwards.
    #[arg(long)]
    lb_restart: Option<String>,
    /// compose: the compose project name.
    #[arg(long)]
    project: Option<String>,
    /// compose: network to disconnect a node from for `partition` (default: its first).
    #[arg(long)]
    network: Option<String>,
    /// compose lb-crash: the container to kill (else: the one holding --vip).
    #[arg(long)]
    lb_container: Option<String>,
    /// compose lb-crash: the VIP; the container holding it is killed.
    #[arg(long)]
    vip: Option<String>,
    /// kubernetes: namespace of the RabbitMQ pods.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// kubernetes: label selector of the RabbitMQ pods (rolling-restart order).
    #[arg(long, default_value = "app.kubernetes.io/name=rabbitmq")]
    selector: String,
    /// ssh: NODE=DEST, repeatable: the node with full name NODE (or
    /// rabbit@NODE for a bare host) is reached by `ssh DEST`.
    #[arg(long = "ssh-host")]
    ssh_hosts: Vec<String>,
    /// ssh: private key file, passed to ssh as `-i FILE`.
    #[arg(long)]
    ssh_identity: Option<PathBuf>,
    /// ssh: known_hosts file, passed to ssh as `-o UserKnownHostsFile=FILE`.
    #[arg(long)]
    ssh_known_hosts: Option<PathBuf>,
    /// ssh: an ssh_config option KEY=VALUE, passed to ssh as `-o OPT` (repeatable).
    #[arg(long = "ssh-option")]
    ssh_options: Vec<String>,
    /// ssh: systemd unit of the broker.
    #[arg(long, default_value = "rabbitmq-server")]
    service: String,
    /// ssh lb-crash: host running the active load balancer.
    #[arg(long)]
    lb_host: Option<String>,
    /// ssh lb-crash: systemd unit of the load balancer.
    #[arg(long, default_value = "warren-lb")]
    lb_service: String,

    #[arg(long, value_enum, default_value = "crash")]
    fault: Fault,
    /// Queue type to declare: mirrored (classic durable queue, mirrored by the
    /// cluster's ha policy; alias: classic) or quorum.
    #[arg(long, alias = "queue-type", value_enum, default_value = "quorum")]
    mode: QueueMode,
    /// Length of the load phase (extended to 3 s past healing if the fault takes longer).
    #[arg(long, value_parser = dur, default_value = "20s")]
    duration: Duration,
    /// When to inject the fault (default: a quarter into the load).
    #[arg(long, value_parser = dur)]
    fault_after: Option<Duration>,
    /// How long the fault lasts before its heal step (downtime / freeze / partition).
    #[arg(long, value_parser = dur, default_value = "5s")]
    fault_duration: Duration,
    #[arg(long, value_parser = dur, default_value = "180s")]
    heal_timeout: Duration,
    #[arg(long, value_parser = dur, default_value = "60s")]
    settle_timeout: Duration,
    #[arg(long, value_parser = dur, default_value = "60s")]
    drain_timeout: Duration,
    #[arg(long, default_value_t = 2)]
    publishers: u32,
    #[arg(long, default_value_t = 2)]
    consumers: u32,
    /// Total publish rate in messages/s; 0 = flat out.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Unconfirmed messages per publisher.
    #[arg(long, default_value_t = 20)]
    max_in_flight: u32,
    #[arg(long, default_value_t = 20)]
    prefetch: u16,
    /// Reconnect when no confirm arrived for this long.
    #[arg(long, value_parser = dur, default_value = "5s")]
    confirm_timeout: Duration,
    /// UNSAFE on purpose: auto-ack consumers that lose their unprocessed backlog on reconnect.
    #[arg(long)]
    unsafe_auto_ack: bool,
    /// UNSAFE on purpose: no publisher confirms (a returned basic.publish counts as sent).
    #[arg(long)]
    no_confirms: bool,
    /// Simulated processing time per message of --unsafe-auto-ack consumers.
    #[arg(long, value_parser = dur, default_value = "20ms")]
    process_time: Duration,
    /// Queue name (default: warren-drill-RUNID, deleted after the drill).
    #[arg(long)]
    queue: Option<String>,
    #[arg(long)]
    keep_queue: bool,
    /// Write the JSON report to this file (its directory must exist).
    #[arg(long, visible_alias = "report")]
    json: Option<PathBuf>,
    /// Write the self-contained HTML report to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// warren-lb admin status URL (e.g. http://127.0.0.1:8404/status), polled
    /// every 200 ms to time the lb's switch away from the hurt node.
    #[arg(long)]
    lb_status: Option<String>,
    /// Write the raw history (every publish, delivery, event) as JSON, for re-analysis.
    #[arg(long)]
    history: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
}

/// A report file can be written: its directory exists. Checked before the
/// drill, so a typo does not cost a whole drill's report.
fn check_report_path(flag: &str, p: &Path) -> Result<()> {
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{flag} {}: directory {} does not exist (expected a file path in an existing directory)",
            p.display(),
            dir.display()
        );
    }
    if p.is_dir() {
        bail!(
            "{flag} {}: is a directory (expected a file path)",
            p.display()
        );
    }
    Ok(())
}

fn build(a: &RunArgs) -> Result<(DrillConfig, Arc<dyn Target>, Mgmt)> {
    for (flag, p) in [
        ("--json", &a.json),
        ("--html", &a.html),
        ("--history", &a.history),
    ] {
        if let Some(p) = p {
            check_report_path(flag, p)?;
        }
    }
    if a.target != TargetKind::Ssh {
        for (flag, given) in [
            ("--ssh-host", !a.ssh_hosts.is_empty()),
            ("--ssh-identity", a.ssh_identity.is_some()),
            ("--ssh-known-hosts", a.ssh_known_hosts.is_some()),
            ("--ssh-option", !a.ssh_options.is_empty()),
        ] {
            if given {
                bail!("{flag} is only used with --target ssh");
            }
        }
    }
    let tls = load_tls(a)?;
    let bed = match a.target {
        TargetKind::Local => {
            let dir = a
                .testbed_dir
                .clone()
                .context("--target local needs --testbed-dir DIR")?;
            Some((Testbed::load(&dir)?, dir))
        }
        _ => None,
    };
    let user = a
        .user
        .clone()
        .or_else(|| bed.as_ref().and_then(|b| b.0.user.clone()))
        .unwrap_or_else(|| "guest".into());
    let password = match (&a.password, &a.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading --password-file {}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        (None, None) => bed
            .as_ref()
            .and_then(|b| b.0.password.clone())
            .unwrap_or_else(|| "guest".into()),
    };
    let mut mgmt_urls = a.mgmt.clone();
    if mgmt_urls.is_empty() {
        match &bed {
            Some((b, _)) => mgmt_urls = b.mgmt_urls(),
            None if a.target == TargetKind::None => {}
            None => bail!("--mgmt URL[,URL..] is required for --target {:?}", a.target),
        }
    }
    if a.target == TargetKind::None && a.fault != Fault::None {
        bail!(
            "--fault {} needs a --target (local, compose, kubernetes or ssh) that can hurt nodes",
            a.fault.name()
        );
    }
    let target: Arc<dyn Target> = match a.target {
        TargetKind::None => Arc::new(target::NoTarget),
        TargetKind::Local => Arc::new(target::Local {
            dir: bed.as_ref().unwrap().1.clone(),
            script: a
                .testbed_script
                .clone()
                .unwrap_or_else(target::default_testbed_script),
            lb_pid: a.lb_pid,
            lb_pidfile: a.lb_pidfile.clone(),
            lb_restart: a.lb_restart.clone(),
        }),
        TargetKind::Compose => Arc::new(target::Compose::new(
            a.project
                .clone()
                .context("--target compose needs --project NAME")?,
            a.network.clone(),
            a.lb_container.clone(),
            a.vip.clone(),
        )),
        TargetKind::Kubernetes => Arc::new(target::Kubernetes {
            namespace: a.namespace.clone(),
            selector: a.selector.clone(),
            kubectl: std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()),
        }),
        TargetKind::Ssh => {
            let mut hosts = HashMap::new();
            for h in &a.ssh_hosts {
                let (node, dest) = target::parse_ssh_host(h)?;
                if let Some(prev) = hosts.insert(node.clone(), dest) {
                    bail!("--ssh-host {h}: node {node} was already given (={prev})");
                }
            }
            if hosts.is_empty() {
                bail!("--target ssh needs at least one --ssh-host NODE=DEST");
            }
            if let Some(h) = &a.lb_host {
                warren_drill::ssh::check_destination(h).context("--lb-host")?;
            }
            Arc::new(target::Ssh {
                hosts,
                service: a.service.clone(),
                lb_host: a.lb_host.clone(),
                lb_service: a.lb_service.clone(),
                options: SshOptions::new(
                    a.ssh_identity.clone(),
                    a.ssh_known_hosts.clone(),
                    a.ssh_options.clone(),
                )?,
            })
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let run_id = format!("{}-{}", now.as_secs(), std::process::id());
    let workload = WorkloadConfig {
        endpoint: a.endpoint.clone(),
        user: user.clone(),
        password: password.clone(),
        vhost: a.vhost.clone(),
        queue: a
            .queue
            .clone()
            .unwrap_or_else(|| format!("warren-drill-{run_id}")),
        mode: a.mode,
        publishers: a.publishers,
        consumers: a.consumers,
        rate: (a.rate > 0.0).then_some(a.rate),
        max_in_flight: a.max_in_flight.max(1),
        prefetch: a.prefetch.max(1),
        no_confirms: a.no_confirms,
        auto_ack: a.unsafe_auto_ack,
        process_time: a.process_time,
        confirm_timeout: a.confirm_timeout,
        heartbeat_s: 5,
        run_id,
        tls: tls.clone(),
    };
    let cfg = DrillConfig {
        workload,
        fault: a.fault,
        duration: a.duration,
        fault_after: a.fault_after.unwrap_or(a.duration / 4),
        fault_duration: a.fault_duration,
        heal_timeout: a.heal_timeout,
        settle_timeout: a.settle_timeout,
        drain_timeout: a.drain_timeout,
        keep_queue: a.keep_queue,
        progress: !a.quiet,
        history_path: a.history.clone(),
        lb_status: a.lb_status.clone(),
    };
    Ok((cfg, target, Mgmt::new(mgmt_urls, &user, &password, tls)))
}

/// The TLS client of `--tls`, read before anything connects so a bad file
/// costs no drill.
fn load_tls(a: &RunArgs) -> Result<Option<DrillTls>> {
    if !a.tls {
        return Ok(None);
    }
    let ca = a.tls_ca.clone().context(
        "--tls needs --tls-ca FILE: the PEM CAs the endpoint's certificate must chain to",
    )?;
    let files = TlsFiles {
        ca,
        client: a.tls_cert.clone().zip(a.tls_key.clone()),
    };
    let name = a
        .tls_server_name
        .clone()
        .unwrap_or_else(|| endpoint_host(&a.endpoint).to_string());
    DrillTls::load(&files, &name).map(Some)
}

/// Exit code of a verdict: 0 PASS, 1 FAIL, 3 INVALID (2 = could not run).
fn exit_code(v: Verdict) -> i32 {
    match v {
        Verdict::Pass => 0,
        Verdict::Fail => 1,
        Verdict::Invalid => 3,
    }
}

async fn run(a: RunArgs) -> Result<Verdict> {
    let (cfg, target, mgmt) = build(&a)?;
    let r = drill::run(cfg, target, mgmt).await?;
    println!("{}", report::summary(&r));
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("writing the --json report {}", p.display()))?;
    }
    if let Some(p) = &a.html {
        std::fs::write(p, report::html(&r))
            .with_context(|| format!("writing the --html report {}", p.display()))?;
    }
    let v = r.accounting.verdict;
    if v != Verdict::Pass {
        // automation often shows only stderr: say why, and where the report is
        eprintln!(
            "warren-drill: verdict {} (exit {}): {}{}",
            report::verdict_word(v),
            exit_code(v),
            r.accounting.reasons.join("; "),
            a.json
                .as_ref()
                .map(|p| format!("; report: {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(v)
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match cli.cmd {
        Cmd::Run(a) => match rt.block_on(run(*a)) {
            Ok(v) => exit_code(v),
            Err(e) => {
                eprintln!("warren-drill: error: {e:#}");
                2
            }
        },
    };
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}
