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
//!
//! This module holds what every adapter shares: the [`Target`] trait, the
//! [`Action`]s it performs, what a look at a node returns, and the command
//! runner. Each adapter is one file: `none`, `local` (the `scripts/testbed`
//! bed), `compose`, `kubernetes` and `ssh`; a new kind of deployment is a
//! new file that implements [`Target`].

use crate::event::EventKind;
use crate::evidence::ProcessState;
use anyhow::{anyhow, bail, Context, Result};
use std::process::Command;

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
    /// The action's name in commands and messages: the history's name for
    /// it, so a log line and the event it records spell it alike.
    pub fn word(self) -> &'static str {
        self.event_kind().as_str()
    }
    /// The history's name for this action, recorded when the drill asks
    /// the target to perform it.
    pub fn event_kind(self) -> EventKind {
        match self {
            Action::Kill => EventKind::Kill,
            Action::Stop => EventKind::Stop,
            Action::Start => EventKind::Start,
            Action::Freeze => EventKind::Freeze,
            Action::Thaw => EventKind::Thaw,
            Action::Partition => EventKind::Partition,
            Action::Heal => EventKind::Heal,
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

mod compose;
mod kubernetes;
mod local;
mod none;
#[cfg(test)]
mod scripted;
mod ssh;

pub use compose::{compose_node_name, holds_vip, Compose};
pub use kubernetes::{statefulset_pod, Kubernetes};
pub use local::{default_testbed_script, process_state_from_stat, Local, Testbed, TestbedNode};
pub use none::NoTarget;
#[cfg(test)]
pub use scripted::Scripted;
pub use ssh::{parse_ssh_host, parse_ssh_look, Ssh};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn vip_script(holders: Vec<Option<String>>) -> Scripted {
        Scripted {
            vip_holders: Mutex::new(holders),
            ..Default::default()
        }
    }

    #[test]
    fn vip_move_waits_for_another_holder() {
        use std::time::Duration;
        let t = vip_script(vec![Some("lb1".into()), None, None, Some("lb2".into())]);
        let ms = Duration::from_millis(1);
        assert_eq!(
            wait_vip_move(&t, Some("lb1"), Duration::from_secs(5), ms).as_deref(),
            Some("lb2")
        );
        let t = vip_script(vec![None]);
        assert_eq!(
            wait_vip_move(&t, Some("lb1"), Duration::from_millis(20), ms),
            None
        );
        assert_eq!(
            wait_vip_move(&NoTarget, None, Duration::from_millis(5), ms),
            None
        );
    }
}
