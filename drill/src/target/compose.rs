//! A docker compose project: one container per node, hurt with docker
//! (kill, stop, pause, network disconnect), the VIP seen in the lb containers.

use super::{run, unknown_node, Action, NodeLook, Target};
use crate::evidence::ProcessState;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::process::Command;
use std::sync::Mutex;

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

/// The node name RabbitMQ (and the broker image's entrypoint) gives itself
/// in a container: `RABBITMQ_NODENAME` (a bare prefix gets `@host`), else
/// `rabbit@host`; host is the short hostname (`hostname -s`), or
/// hostname.domainname with `RABBITMQ_USE_LONGNAME=true`.
pub fn compose_node_name(hostname: &str, domainname: &str, env: &[&str]) -> String {
    let var = |k: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .map(str::trim)
    };
    let host = if var("RABBITMQ_USE_LONGNAME") == Some("true") && !domainname.is_empty() {
        format!("{hostname}.{domainname}")
    } else {
        hostname.split('.').next().unwrap_or(hostname).to_string()
    };
    match var("RABBITMQ_NODENAME") {
        Some(n) if n.contains('@') => n.to_string(),
        Some(n) if !n.is_empty() => format!("{n}@{host}"),
        _ => format!("rabbit@{host}"),
    }
}

/// `ip -o -4 addr` output holds `vip` as an address.
pub fn holds_vip(ip_addr_out: &str, vip: &str) -> bool {
    ip_addr_out
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(vip) && w.contains('/'))
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
        assert_eq!(compose_node_name("b1.example", "", &[]), "rabbit@b1");
    }
}
