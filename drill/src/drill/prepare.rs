//! Phase 1, prepare: check everything the drill needs and learn the nodes
//! the fault is aimed at, before anything is hurt.
//!
//! Guarantees to the next phase: the target can inject and heal, the
//! management API answers, the AMQP endpoint accepts the workload's
//! credentials and the queue is declared, the cluster is whole, and the
//! victim (the queue's master/leader; every node for a rolling restart) has
//! a target handle. Every error here is returned before a fault is
//! injected, so a wrong flag never leaves a node hurt.

use super::cluster::{leader, wait_whole, NodeRef};
use super::{DrillConfig, Fault};
use crate::mgmt::Mgmt;
use crate::target::Target;
use crate::workload;
use anyhow::{anyhow, bail, Context, Result};
use std::sync::Arc;

/// What the later phases know about the cluster before the drill begins.
pub(super) struct Prepared {
    /// The cluster's name, from the management API.
    pub cluster: String,
    /// Number of nodes of a whole cluster.
    pub nodes: usize,
    pub master_before: Option<String>,
    /// The node the fault is aimed at (None for none, lb-crash and rolling restart).
    pub victim: Option<NodeRef>,
    /// Rolling restart: every node, in the order they are restarted.
    pub all_nodes: Vec<NodeRef>,
    /// (management URL, full node name behind it).
    pub reporters: Vec<(String, String)>,
    /// (host of a management URL, node behind it), to name warren-lb's servers.
    pub node_at_host: Vec<(String, String)>,
}

pub(super) async fn prepare(
    cfg: &DrillConfig,
    target: &Arc<dyn Target>,
    mgmt: &Mgmt,
) -> Result<Prepared> {
    let (cluster, nodes) = preflight(cfg, target, mgmt).await?;
    let w = &cfg.workload;
    if let Err(why) = wait_whole(mgmt, w, nodes, cfg.heal_timeout).await {
        bail!("the cluster is not whole before the drill ({why}); refusing to inject a fault");
    }
    let master_before = leader(mgmt, w).await;
    // the node the fault is aimed at, by its full name; a name the target
    // cannot map is an error before anything is hurt
    let victim = match (&master_before, cfg.fault) {
        (_, Fault::None | Fault::LbCrash | Fault::RollingRestart) => None,
        (Some(m), _) => Some(NodeRef::resolve(target, m.clone()).await.with_context(|| {
            format!("the queue's master/leader {m} cannot be reached through the target")
        })?),
        (None, _) => bail!("cannot find the master/leader of queue {}", w.queue),
    };
    let mut all_nodes = Vec::new();
    if cfg.fault == Fault::RollingRestart {
        let mut names: Vec<String> = mgmt.nodes().await?.into_iter().map(|n| n.name).collect();
        names.sort();
        for n in names {
            all_nodes.push(NodeRef::resolve(target, n).await?);
        }
    }
    let reporters = mgmt.identify().await;
    let node_at_host = reporters
        .iter()
        .filter_map(|(u, n)| {
            let host = reqwest::Url::parse(u)
                .ok()?
                .host_str()?
                .trim_matches(['[', ']'])
                .to_string();
            Some((host, n.clone()))
        })
        .collect();
    Ok(Prepared {
        cluster,
        nodes,
        master_before,
        victim,
        all_nodes,
        reporters,
        node_at_host,
    })
}

/// Checks that must pass before any fault is injected; returns the
/// cluster's name and its number of nodes.
pub async fn preflight(
    cfg: &DrillConfig,
    target: &Arc<dyn Target>,
    mgmt: &Mgmt,
) -> Result<(String, usize)> {
    let t = target.clone();
    tokio::task::spawn_blocking(move || t.preflight())
        .await?
        .with_context(|| format!("target {} is not usable", target.describe()))?;
    let cluster = mgmt
        .preflight()
        .await
        .context("management API check failed")?;
    let nodes = mgmt.nodes().await?.len();
    let w = &cfg.workload;
    let conn = workload::connect(w)
        .await
        .map_err(|e| anyhow!("AMQP endpoint {} unusable: {}", w.endpoint, amqp_hint(&e)))?;
    let ch = conn.create_channel().await?;
    workload::declare(&ch, w)
        .await
        .map_err(|e| anyhow!("cannot declare queue {}: {}", w.queue, amqp_hint(&e)))?;
    let _ = conn.close(200, "preflight").await;
    Ok((cluster, nodes))
}

/// An AMQP error with what it usually means for a drill's flags.
fn amqp_hint(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    if s.contains("ACCESS_REFUSED") || s.contains("403") {
        format!("wrong AMQP credentials or no access to the vhost: {s}")
    } else if s.contains("NOT_ALLOWED") {
        format!("the user has no permission on the vhost: {s}")
    } else {
        s
    }
}
