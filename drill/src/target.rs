//! Target adapters: how to find and hurt the nodes of one kind of deployment.
//!
//! All actions are plain commands (the testbed script, docker, kubectl, ssh),
//! run synchronously; the drill calls them from a blocking task.

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

pub trait Target: Send + Sync {
    fn describe(&self) -> String;
    /// Everything needed to inject AND heal faults is there (tools, permissions).
    fn preflight(&self) -> Result<()>;
    /// The target's handle for a RabbitMQ node name (rabbit@host).
    fn node(&self, rabbit_name: &str) -> Result<String>;
    /// Handles of all nodes, in a stable order.
    fn nodes(&self) -> Result<Vec<String>>;
    fn act(&self, action: Action, node: &str) -> Result<()>;
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

fn host_of(rabbit_name: &str) -> &str {
    rabbit_name
        .split_once('@')
        .map(|x| x.1)
        .unwrap_or(rabbit_name)
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
    fn node(&self, rabbit_name: &str) -> Result<String> {
        Ok(rabbit_name.into())
    }
    fn nodes(&self) -> Result<Vec<String>> {
        Ok(vec![])
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
    #[serde(default)]
    pub pid: Option<i64>,
}
fn d5672() -> u16 {
    5672
}
fn d15672() -> u16 {
    15672
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
    fn node(&self, rabbit_name: &str) -> Result<String> {
        let bed = self.bed()?;
        bed.nodes
            .iter()
            .find(|n| n.name == rabbit_name || host_of(&n.name) == host_of(rabbit_name))
            .map(|n| n.index.to_string())
            .ok_or_else(|| anyhow!("node {rabbit_name} is not in {}", self.dir.display()))
    }
    fn nodes(&self) -> Result<Vec<String>> {
        Ok(self
            .bed()?
            .nodes
            .iter()
            .map(|n| n.index.to_string())
            .collect())
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
    fn node(&self, rabbit_name: &str) -> Result<String> {
        let host = host_of(rabbit_name);
        let short = host.split('.').next().unwrap_or(host);
        for c in self.containers()? {
            let hn = self.inspect(&c, "{{.Config.Hostname}}").unwrap_or_default();
            let svc = self
                .inspect(
                    &c,
                    "{{index .Config.Labels \"com.docker.compose.service\"}}",
                )
                .unwrap_or_default();
            if hn == host || hn == short || svc == short || c == short {
                return Ok(c);
            }
        }
        bail!(
            "no container of compose project '{}' has hostname or service '{short}'",
            self.project
        )
    }
    fn nodes(&self) -> Result<Vec<String>> {
        Ok(self
            .containers()?
            .into_iter()
            .filter(|c| c.contains("rabbit"))
            .collect())
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
    fn node(&self, rabbit_name: &str) -> Result<String> {
        Ok(host_of(rabbit_name)
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string())
    }
    fn nodes(&self) -> Result<Vec<String>> {
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

// ---------------------------------------------------------------- ssh

pub struct Ssh {
    /// rabbit node host -> ssh destination (user@host); default: the node's host.
    pub hosts: HashMap<String, String>,
    pub service: String,
    pub lb_host: Option<String>,
    pub lb_service: String,
}

impl Ssh {
    fn ssh(&self, dest: &str, cmd: &str) -> Result<String> {
        run(Command::new("ssh")
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", dest])
            .arg(cmd))
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
    fn node(&self, rabbit_name: &str) -> Result<String> {
        let h = host_of(rabbit_name);
        Ok(self.hosts.get(h).cloned().unwrap_or_else(|| h.to_string()))
    }
    fn nodes(&self) -> Result<Vec<String>> {
        let mut v: Vec<String> = self.hosts.values().cloned().collect();
        v.sort();
        Ok(v)
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
        fn nodes(&self) -> Result<Vec<String>> {
            Ok(vec![])
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
        assert!(l.node("rabbit@elsewhere").is_err());
        assert_eq!(l.nodes().unwrap(), vec!["1", "2"]);
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

    #[test]
    fn kubernetes_and_ssh_node_names() {
        let k = Kubernetes {
            namespace: "mq".into(),
            selector: "app=rabbitmq".into(),
            kubectl: "kubectl".into(),
        };
        assert_eq!(
            k.node("rabbit@warren-1.warren-headless.mq.svc.cluster.local")
                .unwrap(),
            "warren-1"
        );
        assert!(k.act(Action::Partition, "p").is_err());
        let mut hosts = HashMap::new();
        hosts.insert("mq1".to_string(), "ops@10.0.0.1".to_string());
        let s = Ssh {
            hosts,
            service: "rabbitmq-server".into(),
            lb_host: None,
            lb_service: "warren-lb".into(),
        };
        assert_eq!(s.node("rabbit@mq1").unwrap(), "ops@10.0.0.1");
        assert_eq!(s.node("rabbit@mq2").unwrap(), "mq2");
    }
}
