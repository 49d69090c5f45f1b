//! A scripted target for unit tests of what drives a [`Target`]: it
//! records the actions asked of it, fails the ones listed, and answers
//! [`Target::vip_holder`] from a script.

use super::{Action, Target};
use anyhow::{bail, Result};
use std::sync::Mutex;

#[derive(Default)]
pub struct Scripted {
    /// Every action asked of it, in order (failed ones too).
    pub done: Mutex<Vec<Action>>,
    /// Actions that fail.
    pub failing: Vec<Action>,
    /// Successive `vip_holder` answers, one per call, the last repeated.
    pub vip_holders: Mutex<Vec<Option<String>>>,
}

impl Target for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn preflight(&self) -> Result<()> {
        Ok(())
    }
    fn node(&self, n: &str) -> Result<String> {
        Ok(n.into())
    }
    fn act(&self, action: Action, _: &str) -> Result<()> {
        self.done.lock().unwrap().push(action);
        if self.failing.contains(&action) {
            bail!("{} refused", action.word());
        }
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
        let mut v = self.vip_holders.lock().unwrap();
        Some(Ok(if v.len() > 1 {
            v.remove(0)
        } else {
            v.first().cloned().flatten()
        }))
    }
}
