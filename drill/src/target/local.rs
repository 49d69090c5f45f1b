//! The local test bed of `scripts/testbed`: nodes in network namespaces on
//! this machine, named in its `testbed.json`, hurt through the script itself.

use super::{run, unknown_node, Action, NodeLook, Target};
use crate::evidence::ProcessState;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

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
            Some(!out.lines().any(|l| l.trim() == "ok"))
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

/// Shell snippet: prints `ok` for each `HOST:PORT` argument that accepts a
/// TCP connection within half a second, all tried at once (a cut node's
/// connects fail at once or time out; a healthy one's succeed in
/// milliseconds), so one look takes at most about half a second.
const REACHABLE_PEERS: &str = r#"for a in "$@"; do (timeout 0.5 bash -c "exec 3<>/dev/tcp/${a%:*}/${a##*:}" 2>/dev/null && echo ok) & done; wait"#;
#[cfg(test)]
mod tests {
    use super::*;

    /// The local target of the bed in `dir`, with no script and no lb.
    fn bed_without_script(dir: &Path) -> Local {
        Local {
            dir: dir.into(),
            script: "/nonexistent/testbed".into(),
            lb_pid: None,
            lb_pidfile: None,
            lb_restart: None,
        }
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
        let l = bed_without_script(dir.path());
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
        let l = bed_without_script(Path::new("/nonexistent-drill-dir"));
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
        let l = bed_without_script(dir.path());
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
    }
}
