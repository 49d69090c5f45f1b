//! Target adapters: how to find and hurt the nodes of one kind of deployment.
//!
//! All actions are plain commands (the testbed script, docker, kubectl, ssh),
//! run synchronously; the drill calls them from a blocking task.
//!
//! A node is always named by its full RabbitMQ node name (`rabbit@host`,
//! `rabbit2@localhost`): that is what the management API reports as the
//! queue's master. Each target maps that name to its own handle (test bed
//! index, container, pod, ssh destination) through an explicit table, and a
//! name the table does not hold is an error naming the known ones. Never a
//! guess from the host part: with several nodes on one host that guess
//! picked the wrong node (issue 13, defect 4).

use crate::evidence::ProcessState;
use crate::ssh::SshOptions;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kill,
    Stop,
    Start,
    Freeze,
    Thaw,
    Partition,
    Heal,
}

impl Action {
    pub fn word(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Freeze => "freeze",
            Action::Thaw => "thaw",
            Action::Partition => "partition",
            Action::Heal => "heal",
        }
    }
}

/// What a target saw when it looked at one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLook {
    /// None: this target cannot tell.
    pub process: Option<ProcessState>,
    /// Whether the node reaches none of its peers (None: not asked or cannot tell).
    pub cut_from_peers: Option<bool>,
}

pub trait Target: Send + Sync {
    fn describe(&self) -> String;
    /// Everything needed to inject AND heal faults is there (tools, permissions).
    fn preflight(&self) -> Result<()>;
    /// The target's handle for a full RabbitMQ node name (rabbit@host);
    /// an error naming the known nodes when there is none.
    fn node(&self, node_name: &str) -> Result<String>;
    fn act(&self, action: Action, handle: &str) -> Result<()>;
    /// Look at a node's process (and, with `cut`, whether it reaches its
    /// peers): evidence that a fault took effect. Default: cannot tell.
    fn look(&self, _handle: &str, _cut: bool) -> Result<NodeLook> {
        Ok(NodeLook::default())
    }
    /// Whether the load balancer `lb_kill` killed is alive (None: cannot tell).
    fn lb_alive(&self) -> Option<Result<bool>> {
        None
    }
    /// Kill the active load balancer; returns what was killed.
    fn lb_kill(&self) -> Result<String>;
    /// Bring the killed load balancer back (if the target knows how).
    fn lb_restore(&self) -> Result<()>;
    /// Which host holds the VIP now: None = this target cannot tell (no
    /// VIP given or not supported); Some(Ok(None)) = nobody holds it.
    fn vip_holder(&self) -> Option<Result<Option<String>>> {
        None
    }
    /// Whether `vip_holder` can answer at all (cheap: asks nobody).
    fn tells_vip_holder(&self) -> bool {
        false
    }
    /// Name of the load balancer host `lb_kill` killed, as `vip_holder` names it.
    fn killed_lb_name(&self) -> Option<String> {
        None
    }
}

/// `ip -o -4 addr` output holds `vip` as an address.
pub fn holds_vip(ip_addr_out: &str, vip: &str) -> bool {
    ip_addr_out
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(vip) && w.contains('/'))
}

/// Poll `t.vip_holder()` every `every` until a host other than `was` holds
/// the VIP (returns it) or `timeout` passes (None).
pub fn wait_vip_move(
    t: &dyn Target,
    was: Option<&str>,
    timeout: std::time::Duration,
    every: std::time::Duration,
) -> Option<String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(Ok(Some(h))) = t.vip_holder() {
            if Some(h.as_str()) != was {
                return Some(h);
            }
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

pub fn run(cmd: &mut Command) -> Result<String> {
    let desc = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("cannot run {desc}"))?;
    if !out.status.success() {
        bail!(
            "{desc} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// "no node X in WHERE (known: a, b)": the error of every target's `node`.
fn unknown_node(node_name: &str, place: &str, known: &[String]) -> anyhow::Error {
    anyhow!(
        "node {node_name} is not {place} (known: {})",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

/// A process's state from its `/proc/PID/stat` line.
pub fn process_state_from_stat(stat: &str) -> ProcessState {
    match stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
    {
        Some("T" | "t") => ProcessState::Frozen,
        Some("Z" | "X" | "x") | None => ProcessState::Gone,
        Some(_) => ProcessState::Running,
    }
}

/// State of process `pid` on this machine.
fn local_process_state(pid: i64) -> ProcessState {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => process_state_from_stat(&s),
        Err(_) => ProcessState::Gone,
    }
}

// ---------------------------------------------------------------- none

/// No target: workload-only runs (`--fault none`).
pub struct NoTarget;

impl Target for NoTarget {
    fn describe(&self) -> String {
        "no target (workload only)".into()
    }
    fn preflight(&self) -> Result<()> {
        Ok(())
    }
    fn node(&self, node_name: &str) -> Result<String> {
        Ok(node_name.into())
    }
    fn act(&self, action: Action, _node: &str) -> Result<()> {
        bail!("cannot {} without a --target", action.word())
    }
    fn lb_kill(&self) -> Result<String> {
        bail!("cannot kill a load balancer without a --target")
    }
    fn lb_restore(&self) -> Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------- local

#[derive(Debug, Clone, Deserialize)]
pub struct TestbedNode {
    pub index: u32,
    pub name: String,
    #[serde(default)]
    pub netns: Option<String>,
    pub ip: String,
    #[serde(default = "d5672")]
    pub amqp_port: u16,
    #[serde(default = "d15672")]
    pub mgmt_port: u16,
    #[serde(default = "d25672")]
    pub dist_port: u16,
    #[serde(default)]
    pub pid: Option<i64>,
}
fn d5672() -> u16 {
    5672
}
fn d15672() -> u16 {
    15672
}
fn d25672() -> u16 {
    25672
}

#[derive(Debug, Clone, Deserialize)]
pub struct Testbed {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub vhost: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    pub nodes: Vec<TestbedNode>,
}

impl Testbed {
    pub fn load(dir: &Path) -> Result<Testbed> {
        let p = dir.join("testbed.json");
        let s = std::fs::read_to_string(&p)
            .with_context(|| format!("cannot read {} (is the test bed up?)", p.display()))?;
        serde_json::from_str(&s).with_context(|| format!("{} is not a testbed.json", p.display()))
    }
    pub fn mgmt_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("http://{}:{}", n.ip, n.mgmt_port))
            .collect()
    }
}

pub struct Local {
    pub dir: PathBuf,
    pub script: PathBuf,
    pub lb_pid: Option<i32>,
    pub lb_pidfile: Option<PathBuf>,
    pub lb_restart: Option<String>,
}

/// Default location of `scripts/testbed`: $WARREN_TESTBED, ./scripts/testbed,
/// or the one in this source tree.
pub fn default_testbed_script() -> PathBuf {
    if let Ok(p) = std::env::var("WARREN_TESTBED") {
        return p.into();
    }
    let cwd = PathBuf::from("scripts/testbed");
    if cwd.exists() {
        return cwd;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/testbed"))
}

impl Local {
    fn bed(&self) -> Result<Testbed> {
        Testbed::load(&self.dir)
    }
    fn lb_pid(&self) -> Result<i32> {
        if let Some(p) = self.lb_pid {
            return Ok(p);
        }
        let f = self.lb_pidfile.as_ref().ok_or_else(|| {
            anyhow!("lb-crash on the local target needs --lb-pid PID or --lb-pidfile FILE")
        })?;
        let s = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        s.trim()
            .parse()
            .with_context(|| format!("{} does not hold a pid", f.display()))
    }
}

impl Target for Local {
    fn describe(&self) -> String {
        format!("local test bed {}", self.dir.display())
    }
    fn preflight(&self) -> Result<()> {
        let bed = self.bed()?;
        if bed.nodes.is_empty() {
            bail!("testbed.json lists no nodes");
        }
        if !self.script.exists() {
            bail!(
                "test bed script {} not found (set --testbed-script or WARREN_TESTBED)",
                self.script.display()
            );
        }
        if !nix::unistd::geteuid().is_root() {
            bail!("the local target needs root (it signals broker processes and edits network namespaces)");
        }
        Ok(())
    }
    fn node(&self, node_name: &str) -> Result<String> {
        let bed = self.bed()?;
        bed.nodes
            .iter()
            .find(|n| n.name == node_name)
            .map(|n| n.index.to_string())
            .ok_or_else(|| {
                let known: Vec<String> = bed.nodes.iter().map(|n| n.name.clone()).collect();
                unknown_node(
                    node_name,
                    &format!("in {}", self.dir.join("testbed.json").display()),
                    &known,
                )
            })
    }
    /// The Erlang VM in the node's namespace (`ip netns pids`, as the test
    /// bed itself finds it), and with `cut` whether the node still reaches
    /// any peer's distribution port from inside its namespace.
    fn look(&self, handle: &str, cut: bool) -> Result<NodeLook> {
        let bed = self.bed()?;
        let node = bed
            .nodes
            .iter()
            .find(|n| n.index.to_string() == handle)
            .ok_or_else(|| anyhow!("test bed node {handle} is not in testbed.json"))?;
        let Some(ns) = &node.netns else {
            return Ok(NodeLook::default());
        };
        let pids = run(Command::new("ip").args(["netns", "pids", ns]))?;
        let beam = pids.split_whitespace().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim().starts_with("beam"))
        });
        let process = Some(match beam.and_then(|p| p.parse().ok()) {
            Some(pid) => local_process_state(pid),
            None => ProcessState::Gone,
        });
        let cut_from_peers = if cut {
            let peers: Vec<String> = bed
                .nodes
                .iter()
                .filter(|n| n.index != node.index)
                .map(|n| format!("{}:{}", n.ip, n.dist_port))
                .collect();
            let out = run(Command::new("ip")
                .args(["netns", "exec", ns, "sh", "-c", REACHABLE_PEERS, "sh"])
                .args(&peers))?;
            Some(out.trim() == "0")
        } else {
            None
        };
        Ok(NodeLook {
            process,
            cut_from_peers,
        })
    }
    fn lb_alive(&self) -> Option<Result<bool>> {
        Some(
            self.lb_pid()
                .map(|pid| local_process_state(pid.into()) != ProcessState::Gone),
        )
    }
    fn act(&self, action: Action, node: &str) -> Result<()> {
        run(Command::new(&self.script)
            .arg(action.word())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--node")
            .arg(node))
        .map(|_| ())
    }
    fn lb_kill(&self) -> Result<String> {
        let pid = self.lb_pid()?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .with_context(|| format!("kill -9 {pid}"))?;
        Ok(format!("load balancer pid {pid}"))
    }
    fn lb_restore(&self) -> Result<()> {
        if let Some(cmd) = &self.lb_restart {
            Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .spawn()
                .with_context(|| format!("starting {cmd}"))?;
        }
        Ok(())
    }
}

/// Shell snippet: how many of the `HOST:PORT` arguments accept a TCP
/// connection within a second.
const REACHABLE_PEERS: &str = r#"n=0; for a in "$@"; do timeout 1 bash -c "exec 3<>/dev/tcp/${a%:*}/${a##*:}" 2>/dev/null && n=$((n+1)); done; echo $n"#;

// ---------------------------------------------------------------- compose

/// Network, IP and aliases of a container cut off by `partition`, for `heal`.
type SavedNet = (String, Option<String>, Vec<String>);

pub struct Compose {
    pub project: String,
    pub docker: String,
    /// Network to cut a node from for `partition` (default: the container's first network).
    pub network: Option<String>,
    pub lb_container: Option<String>,
    pub vip: Option<String>,
    saved: Mutex<HashMap<String, SavedNet>>,
    killed_lb: Mutex<Option<String>>,
}

impl Compose {
    pub fn new(
        project: String,
        network: Option<String>,
        lb_container: Option<String>,
        vip: Option<String>,
    ) -> Compose {
        Compose {
            project,
            docker: std::env::var("DOCKER").unwrap_or_else(|_| "docker".into()),
            network,
            lb_container,
            vip,
            saved: Mutex::default(),
            killed_lb: Mutex::default(),
        }
    }
    fn docker(&self) -> Command {
        Command::new(&self.docker)
    }
    fn containers(&self) -> Result<Vec<String>> {
        let out = run(self.docker().args([
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--format",
            "{{.Names}}",
        ]))?;
        let mut v: Vec<String> = out.lines().map(|l| l.trim().to_string()).collect();
        v.retain(|l| !l.is_empty());
        v.sort();
        Ok(v)
    }
    fn inspect(&self, c: &str, fmt: &str) -> Result<String> {
        Ok(run(self.docker().args(["inspect", "-f", fmt, c]))?
            .trim()
            .to_string())
    }
}

impl Target for Compose {
    fn describe(&self) -> String {
        format!("compose project {}", self.project)
    }
    fn preflight(&self) -> Result<()> {
        run(self.docker().arg("version"))
            .context("the compose target needs a working docker CLI and engine")?;
        if self.containers()?.is_empty() {
            bail!("compose project '{}' has no containers", self.project);
        }
        Ok(())
    }
    /// The container whose RabbitMQ node name ([`compose_node_name`]) is
    /// exactly `node_name`.
    fn node(&self, node_name: &str) -> Result<String> {
        let mut known = Vec::new();
        for c in self.containers()? {
            let out = self.inspect(
                &c,
                "{{.Config.Hostname}}\n{{.Config.Domainname}}\n{{range .Config.Env}}{{println .}}{{end}}",
            )?;
            let mut lines = out.lines();
            let hostname = lines.next().unwrap_or_default().trim();
            let domain = lines.next().unwrap_or_default().trim();
            let env: Vec<&str> = lines.collect();
            let name = compose_node_name(hostname, domain, &env);
            if name == node_name {
                return Ok(c);
            }
            known.push(format!("{name} (container {c})"));
        }
        Err(unknown_node(
            node_name,
            &format!("in compose project '{}'", self.project),
            &known,
        ))
    }
    /// `docker inspect`: running, paused (frozen) or not running (gone); with
    /// `cut`, whether the container is off the network `partition` cut it from.
    fn look(&self, c: &str, cut: bool) -> Result<NodeLook> {
        let status = self.inspect(c, "{{.State.Status}}")?;
        let process = Some(match status.as_str() {
            "running" => ProcessState::Running,
            "paused" => ProcessState::Frozen,
            _ => ProcessState::Gone,
        });
        let saved = self.saved.lock().unwrap().get(c).map(|s| s.0.clone());
        let cut_from_peers = match (cut, saved) {
            (true, Some(net)) => {
                let nets = self.inspect(
                    c,
                    "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
                )?;
                Some(!nets.split_whitespace().any(|n| n == net))
            }
            _ => None,
        };
        Ok(NodeLook {
            process,
            cut_from_peers,
        })
    }
    fn lb_alive(&self) -> Option<Result<bool>> {
        let c = self.killed_lb.lock().unwrap().clone()?;
        Some(self.inspect(&c, "{{.State.Running}}").map(|r| r == "true"))
    }
    fn act(&self, action: Action, c: &str) -> Result<()> {
        match action {
            Action::Kill => run(self.docker().args(["kill", "-s", "KILL", c]))?,
            Action::Stop => run(self.docker().args(["stop", c]))?,
            Action::Start => run(self.docker().args(["start", c]))?,
            Action::Freeze => run(self.docker().args(["pause", c]))?,
            Action::Thaw => run(self.docker().args(["unpause", c]))?,
            Action::Partition => {
                let net = match &self.network {
                    Some(n) => n.clone(),
                    None => self
                        .inspect(
                            c,
                            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
                        )?
                        .split_whitespace()
                        .next()
                        .ok_or_else(|| anyhow!("{c} has no network"))?
                        .to_string(),
                };
                let ip = self
                    .inspect(
                        c,
                        &format!("{{{{with index .NetworkSettings.Networks \"{net}\"}}}}{{{{.IPAddress}}}}{{{{end}}}}"),
                    )
                    .ok()
                    .filter(|s| !s.is_empty());
                let aliases = self
                    .inspect(
                        c,
                        &format!("{{{{with index .NetworkSettings.Networks \"{net}\"}}}}{{{{range .Aliases}}}}{{{{.}}}} {{{{end}}}}{{{{end}}}}"),
                    )
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                run(self.docker().args(["network", "disconnect", &net, c]))?;
                self.saved
                    .lock()
                    .unwrap()
                    .insert(c.to_string(), (net, ip, aliases));
                String::new()
            }
            Action::Heal => {
                let Some((net, ip, aliases)) = self.saved.lock().unwrap().remove(c) else {
                    return Ok(());
                };
                let mut cmd = self.docker();
                cmd.args(["network", "connect"]);
                if let Some(ip) = ip {
                    cmd.args(["--ip", &ip]);
                }
                for a in aliases {
                    cmd.args(["--alias", &a]);
                }
                cmd.args([&net, c]);
                run(&mut cmd)?
            }
        };
        Ok(())
    }
    fn lb_kill(&self) -> Result<String> {
        let c = match (&self.lb_container, &self.vip) {
            (Some(c), _) => c.clone(),
            (None, Some(vip)) => match self.vip_holder() {
                Some(Ok(Some(c))) => c,
                Some(Err(e)) => return Err(e),
                _ => bail!("no container of the project holds the VIP {vip}"),
            },
            (None, None) => bail!("lb-crash on compose needs --lb-container NAME or --vip ADDR"),
        };
        run(self.docker().args(["kill", "-s", "KILL", &c]))?;
        *self.killed_lb.lock().unwrap() = Some(c.clone());
        Ok(format!("container {c}"))
    }
    fn lb_restore(&self) -> Result<()> {
        if let Some(c) = self.killed_lb.lock().unwrap().take() {
            run(self.docker().args(["start", &c]))?;
        }
        Ok(())
    }
    fn tells_vip_holder(&self) -> bool {
        self.vip.is_some()
    }
    /// The running container of the project whose `ip -o -4 addr` shows the
    /// VIP (all containers asked in parallel).
    fn vip_holder(&self) -> Option<Result<Option<String>>> {
        let vip = self.vip.as_ref()?;
        let running = match run(self.docker().args([
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            "status=running",
            "--format",
            "{{.Names}}",
        ])) {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        let names: Vec<&str> = running
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let found = std::thread::scope(|sc| {
            let hs: Vec<_> = names
                .iter()
                .map(|c| {
                    sc.spawn(move || {
                        run(self.docker().args(["exec", c, "ip", "-o", "-4", "addr"]))
                            .map(|out| holds_vip(&out, vip))
                            .unwrap_or(false)
                    })
                })
                .collect();
            names
                .iter()
                .zip(hs)
                .find_map(|(c, h)| h.join().unwrap_or(false).then(|| c.to_string()))
        });
        Some(Ok(found))
    }
    fn killed_lb_name(&self) -> Option<String> {
        self.killed_lb.lock().unwrap().clone()
    }
}

/// The node name RabbitMQ gives itself in a container: `RABBITMQ_NODENAME`
/// (a bare prefix gets `@host`), else `rabbit@host`; host is the container's
/// hostname, or hostname.domainname with `RABBITMQ_USE_LONGNAME=true`.
pub fn compose_node_name(hostname: &str, domainname: &str, env: &[&str]) -> String {
    let var = |k: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .map(str::trim)
    };
    let host = if var("RABBITMQ_USE_LONGNAME") == Some("true") && !domainname.is_empty() {
        format!("{hostname}.{domainname}")
    } else {
        hostname.to_string()
    };
    match var("RABBITMQ_NODENAME") {
        Some(n) if n.contains('@') => n.to_string(),
        Some(n) if !n.is_empty() => format!("{n}@{host}"),
        _ => format!("rabbit@{host}"),
    }
}

// ---------------------------------------------------------------- kubernetes

pub struct Kubernetes {
    pub namespace: String,
    pub selector: String,
    pub kubectl: String,
}

impl Kubernetes {
    fn k(&self) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.args(["-n", &self.namespace]);
        c
    }
    fn pods(&self) -> Result<Vec<String>> {
        let out = run(self.k().args([
            "get",
            "pods",
            "-l",
            &self.selector,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]))?;
        Ok(out.split_whitespace().map(String::from).collect())
    }
    fn signal(&self, pod: &str, sig: &str) -> Result<()> {
        run(self.k().args([
            "exec",
            pod,
            "--",
            "sh",
            "-c",
            &format!("kill -{sig} $(pidof beam.smp)"),
        ]))
        .map(|_| ())
    }
}

impl Target for Kubernetes {
    fn describe(&self) -> String {
        format!(
            "kubernetes namespace {} ({})",
            self.namespace, self.selector
        )
    }
    fn preflight(&self) -> Result<()> {
        for (verb, res) in [
            ("delete", "pods"),
            ("create", "pods/exec"),
            ("list", "pods"),
        ] {
            let out = run(self.k().args(["auth", "can-i", verb, res]))
                .with_context(|| format!("kubectl auth can-i {verb} {res}"))?;
            if out.trim() != "yes" {
                bail!(
                    "missing permission: kubectl cannot {verb} {res} in namespace {}",
                    self.namespace
                );
            }
        }
        Ok(())
    }
    /// The StatefulSet pod the node runs in: a pod of the selector whose
    /// name is the first label of the node's host
    /// (`rabbit@warren-1.warren-headless.mq.svc.cluster.local` runs in
    /// pod `warren-1`, as the chart names its nodes).
    fn node(&self, node_name: &str) -> Result<String> {
        let pods = self.pods()?;
        statefulset_pod(node_name, &pods).ok_or_else(|| {
            let known: Vec<String> = pods.iter().map(|p| format!("pod {p}")).collect();
            unknown_node(
                node_name,
                &format!(
                    "in a pod of namespace {} matching {}",
                    self.namespace, self.selector
                ),
                &known,
            )
        })
    }
    fn act(&self, action: Action, pod: &str) -> Result<()> {
        match action {
            Action::Kill => run(self.k().args([
                "delete",
                "pod",
                pod,
                "--grace-period=0",
                "--force",
                "--wait=false",
            ]))
            .map(|_| ()),
            Action::Stop => run(self.k().args(["delete", "pod", pod, "--wait=false"])).map(|_| ()),
            // the StatefulSet brings deleted pods back by itself
            Action::Start | Action::Heal => Ok(()),
            Action::Freeze => self.signal(pod, "STOP"),
            Action::Thaw => self.signal(pod, "CONT"),
            Action::Partition => bail!(
                "partition is not supported on the kubernetes target (it needs a NetworkPolicy-capable CNI); use crash, freeze, stop or rolling-restart"
            ),
        }
    }
    fn lb_kill(&self) -> Result<String> {
        bail!("lb-crash is not supported on kubernetes (the Service is the load balancer)")
    }
    fn lb_restore(&self) -> Result<()> {
        Ok(())
    }
}

/// The pod of `pods` named like the first label of the node's host.
pub fn statefulset_pod(node_name: &str, pods: &[String]) -> Option<String> {
    let (_, host) = node_name.split_once('@')?;
    let pod = host.split('.').next()?;
    pods.iter().find(|p| *p == pod).cloned()
}

// ---------------------------------------------------------------- ssh

pub struct Ssh {
    /// Full node name (rabbit@mq1) -> ssh destination (user@host), from `--ssh-host`.
    pub hosts: HashMap<String, String>,
    pub service: String,
    pub lb_host: Option<String>,
    pub lb_service: String,
    pub options: SshOptions,
}

/// `--ssh-host NODE=DEST`: NODE is a full node name, or a bare host that
/// stands for RabbitMQ's default node name on it (`mq1` = `rabbit@mq1`).
pub fn parse_ssh_host(arg: &str) -> Result<(String, String)> {
    let (node, dest) = arg.split_once('=').with_context(|| {
        format!("--ssh-host {arg}: expected NODE=DEST, e.g. rabbit@mq1=ops@10.0.0.11")
    })?;
    if node.is_empty() || node.ends_with('@') || node.starts_with('@') {
        bail!("--ssh-host {arg}: {node:?} is not a node name (expected rabbit@HOST or HOST)");
    }
    crate::ssh::check_destination(dest).with_context(|| format!("--ssh-host {arg}"))?;
    let node = if node.contains('@') {
        node.to_string()
    } else {
        format!("rabbit@{node}")
    };
    Ok((node, dest.to_string()))
}

/// What [`Ssh::look`] runs: the unit's main process state and, on request,
/// whether the drill's cut is installed.
fn ssh_look_command(service: &str, cut: bool) -> String {
    let mut c = format!(
        "pid=$(systemctl show -p MainPID --value {service}); st=$(ps -o stat= -p \"$pid\" 2>/dev/null | cut -c1); echo \"state ${{st:-gone}}\""
    );
    if cut {
        c += &format!(
            "; if sudo -n iptables -C INPUT {r} 2>/dev/null && sudo -n iptables -C OUTPUT {r} 2>/dev/null; then echo cut; else echo open; fi",
            r = Ssh::CHAIN
        );
    }
    c
}

/// Parse the output of [`ssh_look_command`].
pub fn parse_ssh_look(out: &str) -> NodeLook {
    let mut look = NodeLook::default();
    for line in out.lines().map(str::trim) {
        if let Some(st) = line.strip_prefix("state ") {
            look.process = Some(match st {
                "gone" | "Z" => ProcessState::Gone,
                "T" | "t" => ProcessState::Frozen,
                _ => ProcessState::Running,
            });
        } else if line == "cut" {
            look.cut_from_peers = Some(true);
        } else if line == "open" {
            look.cut_from_peers = Some(false);
        }
    }
    look
}

impl Ssh {
    fn ssh(&self, dest: &str, cmd: &str) -> Result<String> {
        run(Command::new("ssh").args(self.options.argv(dest, cmd)))
    }
    const CHAIN: &'static str =
        "-p tcp -m multiport --ports 25672,4369 -m comment --comment warren-drill -j DROP";
}

impl Target for Ssh {
    fn describe(&self) -> String {
        format!("ssh hosts {:?}", self.hosts.values().collect::<Vec<_>>())
    }
    fn preflight(&self) -> Result<()> {
        for d in self.hosts.values() {
            self.ssh(d, "sudo -n true")
                .with_context(|| format!("{d}: need ssh access with passwordless sudo"))?;
        }
        Ok(())
    }
    fn node(&self, node_name: &str) -> Result<String> {
        self.hosts.get(node_name).cloned().ok_or_else(|| {
            let mut known: Vec<String> =
                self.hosts.iter().map(|(n, d)| format!("{n}={d}")).collect();
            known.sort();
            unknown_node(node_name, "given with --ssh-host", &known)
        })
    }
    fn look(&self, dest: &str, cut: bool) -> Result<NodeLook> {
        Ok(parse_ssh_look(
            &self.ssh(dest, &ssh_look_command(&self.service, cut))?,
        ))
    }
    fn lb_alive(&self) -> Option<Result<bool>> {
        let h = self.lb_host.as_ref()?;
        Some(
            self.ssh(
                h,
                &format!("systemctl is-active {} || true", self.lb_service),
            )
            .map(|o| o.trim() == "active"),
        )
    }
    fn act(&self, action: Action, dest: &str) -> Result<()> {
        let s = &self.service;
        let cmd = match action {
            Action::Kill => format!("sudo -n systemctl kill -s KILL {s}"),
            Action::Stop => format!("sudo -n systemctl stop {s}"),
            Action::Start => format!("sudo -n systemctl start {s}"),
            Action::Freeze => format!("sudo -n systemctl kill -s STOP {s}"),
            Action::Thaw => format!("sudo -n systemctl kill -s CONT {s}"),
            Action::Partition => format!(
                "sudo -n iptables -I INPUT {c} && sudo -n iptables -I OUTPUT {c}",
                c = Self::CHAIN
            ),
            Action::Heal => format!(
                "while sudo -n iptables -D INPUT {c} 2>/dev/null; do :; done; while sudo -n iptables -D OUTPUT {c} 2>/dev/null; do :; done",
                c = Self::CHAIN
            ),
        };
        self.ssh(dest, &cmd).map(|_| ())
    }
    fn lb_kill(&self) -> Result<String> {
        let h = self
            .lb_host
            .as_ref()
            .ok_or_else(|| anyhow!("lb-crash on ssh needs --lb-host user@host"))?;
        self.ssh(
            h,
            &format!("sudo -n systemctl kill -s KILL {}", self.lb_service),
        )?;
        Ok(format!("{} on {h}", self.lb_service))
    }
    fn lb_restore(&self) -> Result<()> {
        if let Some(h) = &self.lb_host {
            self.ssh(h, &format!("sudo -n systemctl start {}", self.lb_service))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_in_ip_addr_output() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\n\
                   7: eth0    inet 10.230.0.21/24 brd 10.230.0.255 scope global eth0\n\
                   7: eth0    inet 10.230.0.100/32 scope global eth0";
        assert!(holds_vip(out, "10.230.0.100"));
        assert!(!holds_vip(out, "10.230.0.10"));
        assert!(
            !holds_vip(out, "10.230.0.255"),
            "a broadcast address is not held"
        );
    }

    /// A target whose VIP holder follows a script: one answer per call.
    struct VipScript(Mutex<Vec<Option<String>>>);
    impl Target for VipScript {
        fn describe(&self) -> String {
            "script".into()
        }
        fn preflight(&self) -> Result<()> {
            Ok(())
        }
        fn node(&self, n: &str) -> Result<String> {
            Ok(n.into())
        }
        fn act(&self, _: Action, _: &str) -> Result<()> {
            Ok(())
        }
        fn lb_kill(&self) -> Result<String> {
            Ok("lb1".into())
        }
        fn lb_restore(&self) -> Result<()> {
            Ok(())
        }
        fn tells_vip_holder(&self) -> bool {
            true
        }
        fn vip_holder(&self) -> Option<Result<Option<String>>> {
            let mut v = self.0.lock().unwrap();
            Some(Ok(if v.len() > 1 {
                v.remove(0)
            } else {
                v[0].clone()
            }))
        }
    }

    #[test]
    fn vip_move_waits_for_another_holder() {
        use std::time::Duration;
        let t = VipScript(Mutex::new(vec![
            Some("lb1".into()),
            None,
            None,
            Some("lb2".into()),
        ]));
        let ms = Duration::from_millis(1);
        assert_eq!(
            wait_vip_move(&t, Some("lb1"), Duration::from_secs(5), ms).as_deref(),
            Some("lb2")
        );
        let t = VipScript(Mutex::new(vec![None]));
        assert_eq!(
            wait_vip_move(&t, Some("lb1"), Duration::from_millis(20), ms),
            None
        );
        assert_eq!(
            wait_vip_move(&NoTarget, None, Duration::from_millis(5), ms),
            None
        );
    }

    #[test]
    fn testbed_json_parses_and_maps_nodes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("testbed.json"),
            r#"{"dir":"x","user":"admin","password":"pw","vhost":"/","mode":"quorum",
              "nodes":[{"index":1,"name":"rabbit@10.210.7.11","netns":"wtb7-n1","ip":"10.210.7.11",
                        "amqp_port":5672,"mgmt_port":15672,"dist_port":25672,"pid":123},
                       {"index":2,"name":"rabbit@10.210.7.12","netns":"wtb7-n2","ip":"10.210.7.12",
                        "amqp_port":5672,"mgmt_port":15672,"dist_port":25672,"pid":null}]}"#,
        )
        .unwrap();
        let l = Local {
            dir: dir.path().into(),
            script: "/nonexistent/testbed".into(),
            lb_pid: None,
            lb_pidfile: None,
            lb_restart: None,
        };
        assert_eq!(l.node("rabbit@10.210.7.12").unwrap(), "2");
        let e = l.node("rabbit@elsewhere").unwrap_err().to_string();
        assert!(
            e.contains("node rabbit@elsewhere is not in")
                && e.contains("known: rabbit@10.210.7.11, rabbit@10.210.7.12"),
            "{e}"
        );
        let bed = Testbed::load(dir.path()).unwrap();
        assert_eq!(bed.mgmt_urls()[0], "http://10.210.7.11:15672");
        assert_eq!(bed.nodes[1].pid, None);
        // a missing script is a clear preflight error
        let e = l.preflight().unwrap_err().to_string();
        assert!(e.contains("not found") || e.contains("root"), "{e}");
        assert!(l.lb_kill().unwrap_err().to_string().contains("--lb-pid"));
    }

    #[test]
    fn missing_testbed_is_clear() {
        let l = Local {
            dir: "/nonexistent-drill-dir".into(),
            script: "x".into(),
            lb_pid: None,
            lb_pidfile: None,
            lb_restart: None,
        };
        assert!(format!("{:#}", l.preflight().unwrap_err()).contains("is the test bed up"));
    }

    /// Issue 13 defect 4: on one host, `rabbit1@localhost`,
    /// `rabbit2@localhost` and `rabbit3@localhost` all became node 1 (the
    /// host part was compared). The full name picks the right node.
    #[test]
    fn nodes_on_one_host_map_by_their_full_name() {
        let dir = tempfile::tempdir().unwrap();
        let node = |i: u32| {
            format!(
                r#"{{"index":{i},"name":"rabbit{i}@localhost","ip":"127.0.0.1","amqp_port":{}}}"#,
                5671 + i
            )
        };
        std::fs::write(
            dir.path().join("testbed.json"),
            format!(r#"{{"nodes":[{},{},{}]}}"#, node(1), node(2), node(3)),
        )
        .unwrap();
        let l = Local {
            dir: dir.path().into(),
            script: "/nonexistent/testbed".into(),
            lb_pid: None,
            lb_pidfile: None,
            lb_restart: None,
        };
        assert_eq!(l.node("rabbit1@localhost").unwrap(), "1");
        assert_eq!(l.node("rabbit2@localhost").unwrap(), "2");
        assert_eq!(l.node("rabbit3@localhost").unwrap(), "3");
        let e = l.node("rabbit4@localhost").unwrap_err().to_string();
        assert!(
            e.contains("rabbit4@localhost")
                && e.contains("known: rabbit1@localhost, rabbit2@localhost, rabbit3@localhost"),
            "{e}"
        );
        assert!(l.node("rabbit@localhost").is_err(), "no host-part match");
    }

    #[test]
    fn kubernetes_and_ssh_node_names() {
        let pods: Vec<String> = ["warren-0", "warren-1", "warren-2"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            statefulset_pod(
                "rabbit@warren-1.warren-headless.mq.svc.cluster.local",
                &pods
            )
            .as_deref(),
            Some("warren-1")
        );
        assert_eq!(statefulset_pod("rabbit@warren-7.x", &pods), None);
        assert_eq!(statefulset_pod("warren-1", &pods), None);
        let k = Kubernetes {
            namespace: "mq".into(),
            selector: "app=rabbitmq".into(),
            kubectl: "kubectl".into(),
        };
        assert!(k.act(Action::Partition, "p").is_err());
        let mut hosts = HashMap::new();
        for a in ["mq1=ops@10.0.0.1", "rabbit2@mq1=ops@10.0.0.1"] {
            let (n, d) = parse_ssh_host(a).unwrap();
            hosts.insert(n, d);
        }
        let s = Ssh {
            hosts,
            service: "rabbitmq-server".into(),
            lb_host: None,
            lb_service: "warren-lb".into(),
            options: SshOptions::default(),
        };
        assert_eq!(s.node("rabbit@mq1").unwrap(), "ops@10.0.0.1");
        assert_eq!(s.node("rabbit2@mq1").unwrap(), "ops@10.0.0.1");
        let e = s.node("rabbit@mq2").unwrap_err().to_string();
        assert!(
            e.contains("rabbit@mq2 is not given with --ssh-host")
                && e.contains("rabbit2@mq1=ops@10.0.0.1, rabbit@mq1=ops@10.0.0.1"),
            "{e}"
        );
        for bad in ["mq1", "=ops@h", "mq1=", "rabbit@=h", "mq1=-oProxyCommand=x"] {
            let e = format!("{:#}", parse_ssh_host(bad).unwrap_err());
            assert!(
                e.contains("--ssh-host") && e.contains("expected"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn compose_node_names_follow_rabbitmq() {
        assert_eq!(compose_node_name("broker1", "", &[]), "rabbit@broker1");
        assert_eq!(
            compose_node_name("broker1", "", &["PATH=/bin", "RABBITMQ_NODENAME=mq"]),
            "mq@broker1"
        );
        assert_eq!(
            compose_node_name("b", "", &["RABBITMQ_NODENAME=rabbit@broker1.example"]),
            "rabbit@broker1.example"
        );
        assert_eq!(
            compose_node_name("b1", "example", &["RABBITMQ_USE_LONGNAME=true"]),
            "rabbit@b1.example"
        );
        assert_eq!(compose_node_name("b1", "example", &[]), "rabbit@b1");
    }

    #[test]
    fn process_states() {
        let stat = |st: &str| format!("4242 (beam.smp) {st} 1 4242 4242 0 -1 4194560");
        assert_eq!(process_state_from_stat(&stat("S")), ProcessState::Running);
        assert_eq!(process_state_from_stat(&stat("R")), ProcessState::Running);
        assert_eq!(process_state_from_stat(&stat("T")), ProcessState::Frozen);
        assert_eq!(process_state_from_stat(&stat("Z")), ProcessState::Gone);
        assert_eq!(process_state_from_stat(""), ProcessState::Gone);
        // a ')' in the command name does not confuse the parse
        assert_eq!(
            process_state_from_stat("7 (a) b) T 1"),
            ProcessState::Frozen
        );
        assert_eq!(local_process_state(i64::from(i32::MAX)), ProcessState::Gone);
        assert_eq!(
            local_process_state(std::process::id().into()),
            ProcessState::Running
        );
        let look = parse_ssh_look("state T\ncut\n");
        assert_eq!(look.process, Some(ProcessState::Frozen));
        assert_eq!(look.cut_from_peers, Some(true));
        let look = parse_ssh_look("state gone\n");
        assert_eq!(look.process, Some(ProcessState::Gone));
        assert_eq!(look.cut_from_peers, None);
        assert_eq!(parse_ssh_look("state S\nopen").cut_from_peers, Some(false));
        assert!(ssh_look_command("rabbitmq-server", true).contains("iptables -C INPUT"));
        assert!(!ssh_look_command("rabbitmq-server", false).contains("iptables"));
    }
}
