//! Hosts reached over ssh: a systemd unit per node, hurt with systemctl,
//! signals and iptables rules that carry the drill's comment.

use super::{run, unknown_node, Action, NodeLook, Target};
use crate::evidence::ProcessState;
use crate::ssh::SshOptions;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::process::Command;

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

/// Parse the output of `ssh_look_command`.
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
    fn ssh_node_names() {
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
    fn ssh_looks() {
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
