//! No target: the drill runs its workload and accounts, and refuses every
//! fault (there is nothing to hurt).

use super::{Action, Target};
use anyhow::{bail, Result};

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
