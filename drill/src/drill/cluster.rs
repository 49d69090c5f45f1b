//! What several phases ask the cluster: whether it is whole, which node
//! leads the queue, and how the target names a node.

use crate::mgmt::Mgmt;
use crate::target::Target;
use crate::workload::WorkloadConfig;
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

/// A node by its full name, and the target's handle for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    pub name: String,
    pub handle: String,
}

impl NodeRef {
    /// Ask the target for its handle of node `name`; an error (naming the
    /// nodes it knows) when it has none.
    pub(super) async fn resolve(target: &Arc<dyn Target>, name: String) -> Result<NodeRef> {
        let handle = tokio::task::spawn_blocking({
            let (target, name) = (target.clone(), name.clone());
            move || target.node(&name)
        })
        .await??;
        Ok(NodeRef { name, handle })
    }

    /// "rabbit@10.210.1.11 (1)": the name, and the handle when it differs.
    pub(super) fn label(&self) -> String {
        if self.handle == self.name {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.handle)
        }
    }
}

/// Poll until every management URL answers and each sees a whole cluster
/// of `nodes` ([`Mgmt::not_whole`]); the last reason it was not when
/// `timeout` passes.
pub(super) async fn wait_whole(
    mgmt: &Mgmt,
    w: &WorkloadConfig,
    nodes: usize,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match mgmt.not_whole(&w.vhost, &w.queue, nodes).await {
            None => return Ok(()),
            Some(why) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(why);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The queue's master/leader now (None: the management API cannot tell).
pub(super) async fn leader(mgmt: &Mgmt, w: &WorkloadConfig) -> Option<String> {
    mgmt.queue(&w.vhost, &w.queue).await.ok()?.leader
}
