//! A Kubernetes StatefulSet: one pod per node, hurt with kubectl (signals
//! to the Erlang VM in the pod).

use super::{run, unknown_node, Action, Target};
use anyhow::{bail, Context, Result};
use std::process::Command;

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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_node_names() {
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
    }
}
