//! RabbitMQ management HTTP API: credentials check, master/leader discovery
//! and the "is the cluster whole again" condition.

use crate::tls::DrillTls;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone)]
pub struct Mgmt {
    pub urls: Vec<String>,
    user: String,
    password: String,
    http: reqwest::Client,
    tls: Option<DrillTls>,
}

fn http_client(timeout: Duration, tls: Option<&DrillTls>) -> reqwest::Client {
    let mut b = reqwest::Client::builder().timeout(timeout);
    if let Some(t) = tls {
        b = b.use_preconfigured_tls(t.client_config());
    }
    b.build().expect("http client")
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub partitions: Vec<String>,
}

/// Where a queue lives. For classic mirrored queues `leader` is the master and
/// `in_sync` the synchronised mirrors; for quorum queues `leader` is the Raft
/// leader, `replicas` the members and `in_sync` the online members.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct QueueInfo {
    pub kind: String,
    pub leader: Option<String>,
    pub replicas: Vec<String>,
    pub in_sync: Vec<String>,
    pub messages: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClusterView {
    pub nodes: Vec<NodeInfo>,
    pub queue: Option<QueueInfo>,
}

pub fn parse_queue(v: &serde_json::Value) -> QueueInfo {
    let strs = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = v
        .get("type")
        .and_then(|x| x.as_str())
        .unwrap_or("classic")
        .to_string();
    let messages = v.get("messages").and_then(|x| x.as_u64());
    if kind == "quorum" {
        QueueInfo {
            leader: v
                .get("leader")
                .and_then(|x| x.as_str())
                .map(String::from)
                .or_else(|| v.get("node").and_then(|x| x.as_str()).map(String::from)),
            replicas: strs("members"),
            in_sync: strs("online"),
            kind,
            messages,
        }
    } else {
        let leader = v.get("node").and_then(|x| x.as_str()).map(String::from);
        let mut replicas: Vec<String> = leader.iter().cloned().collect();
        replicas.extend(strs("slave_nodes"));
        let mut in_sync: Vec<String> = leader.iter().cloned().collect();
        in_sync.extend(strs("synchronised_slave_nodes"));
        QueueInfo {
            kind,
            leader,
            replicas,
            in_sync,
            messages,
        }
    }
}

impl ClusterView {
    /// None when whole; otherwise why not.
    pub fn not_whole(&self, expected_nodes: usize) -> Option<String> {
        if self.nodes.len() < expected_nodes {
            return Some(format!(
                "{} of {expected_nodes} nodes known",
                self.nodes.len()
            ));
        }
        for n in &self.nodes {
            if !n.running {
                return Some(format!("{} is not running", n.name));
            }
            if !n.partitions.is_empty() {
                return Some(format!(
                    "{} reports a partition with {}",
                    n.name,
                    n.partitions.join(",")
                ));
            }
        }
        if let Some(q) = &self.queue {
            if q.leader.is_none() {
                return Some("the queue has no master/leader".into());
            }
            let want = expected_nodes.min(self.nodes.len());
            if q.kind == "quorum" {
                if let Some(m) = q.replicas.iter().find(|m| !q.in_sync.contains(m)) {
                    return Some(format!("quorum member {m} is not online"));
                }
            } else if q.replicas.len() < want {
                return Some(format!(
                    "queue has {} of {want} replicas (master + mirrors)",
                    q.replicas.len()
                ));
            } else if let Some(m) = q.replicas.iter().find(|m| !q.in_sync.contains(m)) {
                return Some(format!("mirror {m} is not synchronised"));
            }
        }
        None
    }
}

/// Ready and unacknowledged message counts of a queue (`/api/queues/VH/Q`).
pub fn parse_queue_counts(v: &serde_json::Value) -> Option<(u64, u64)> {
    Some((
        v.get("messages_ready")?.as_u64()?,
        v.get("messages_unacknowledged")?.as_u64()?,
    ))
}

/// (client-provided connection name, server node) of every connection in an
/// `/api/connections` answer whose name starts with `prefix`.
pub fn parse_connections(v: &serde_json::Value, prefix: &str) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let name = c
                        .get("client_properties")?
                        .get("connection_name")?
                        .as_str()?;
                    let node = c.get("node")?.as_str()?;
                    name.starts_with(prefix)
                        .then(|| (name.to_string(), node.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The management API path of queue `name` in `vhost`.
fn queue_path(vhost: &str, name: &str) -> String {
    format!(
        "/api/queues/{}/{}",
        percent_encode(vhost),
        percent_encode(name)
    )
}

/// Percent-encodes one URL path segment or userinfo part (RFC 3986
/// unreserved characters stay): vhost `/` becomes `%2F`.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

impl Mgmt {
    /// `tls`: the CA (and client certificate) for `https://` URLs, from
    /// `--tls`; without it https uses reqwest's built-in roots.
    pub fn new(urls: Vec<String>, user: &str, password: &str, tls: Option<DrillTls>) -> Mgmt {
        Mgmt {
            urls: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            user: user.into(),
            password: password.into(),
            http: http_client(Duration::from_secs(3), tls.as_ref()),
            tls,
        }
    }

    /// The same API with another request timeout (the fault witness asks
    /// often and must tell a silent node quickly).
    pub fn with_timeout(&self, timeout: Duration) -> Mgmt {
        Mgmt {
            http: http_client(timeout, self.tls.as_ref()),
            ..self.clone()
        }
    }

    /// Which node answers behind each URL (`/api/overview`'s `node`), for
    /// every URL that answers.
    pub async fn identify(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for u in &self.urls {
            if let Ok(v) = self.get_from(u, "/api/overview").await {
                if let Some(n) = v.get("node").and_then(|n| n.as_str()) {
                    out.push((u.clone(), n.to_string()));
                }
            }
        }
        out
    }

    /// `/api/nodes` of one URL.
    pub async fn nodes_from(&self, base: &str) -> Result<Vec<NodeInfo>> {
        Ok(serde_json::from_value(
            self.get_from(base, "/api/nodes").await?,
        )?)
    }

    async fn get_from(&self, base: &str, path: &str) -> Result<serde_json::Value> {
        let r = self
            .http
            .get(format!("{base}{path}"))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .with_context(|| format!("management API {base} unreachable"))?;
        match r.status().as_u16() {
            200 => Ok(r.json().await?),
            401 => bail!(
                "management API {base}: wrong credentials for user '{}' (401)",
                self.user
            ),
            403 => bail!(
                "management API {base}: user '{}' lacks permission for {path} (403; needs the monitoring or administrator tag)",
                self.user
            ),
            404 => Err(anyhow!("{base}{path}: not found (404)")),
            s => bail!("management API {base}{path}: HTTP {s}"),
        }
    }

    /// First URL that answers.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value> {
        let mut last = anyhow!("no management URL given");
        for u in &self.urls {
            match self.get_from(u, path).await {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// False when no management URL was given (workload-only runs).
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Check credentials and permission on every reachable URL; at least one must answer.
    pub async fn preflight(&self) -> Result<String> {
        if !self.enabled() {
            return Ok("cluster not inspected (no --mgmt)".into());
        }
        let who = self.get("/api/whoami").await?;
        let tags = who.get("tags").map(|t| t.to_string()).unwrap_or_default();
        if !(tags.contains("administrator") || tags.contains("monitoring")) {
            bail!(
                "user '{}' has tags {tags}: the drill needs 'monitoring' or 'administrator' to read node and queue state",
                self.user
            );
        }
        let ov = self.get("/api/overview").await?;
        Ok(format!(
            "RabbitMQ {} cluster '{}'",
            ov.get("rabbitmq_version")
                .and_then(|x| x.as_str())
                .unwrap_or("?"),
            ov.get("cluster_name")
                .and_then(|x| x.as_str())
                .unwrap_or("?")
        ))
    }

    pub async fn queue(&self, vhost: &str, name: &str) -> Result<QueueInfo> {
        let v = self.get(&queue_path(vhost, name)).await?;
        Ok(parse_queue(&v))
    }

    async fn view_from(&self, base: &str, vhost: &str, queue: &str) -> Result<ClusterView> {
        let nodes: Vec<NodeInfo> =
            serde_json::from_value(self.get_from(base, "/api/nodes").await?)?;
        let q = self
            .get_from(base, &queue_path(vhost, queue))
            .await
            .ok()
            .map(|v| parse_queue(&v));
        Ok(ClusterView { nodes, queue: q })
    }

    /// None when every management URL answers and each sees a whole cluster.
    pub async fn not_whole(&self, vhost: &str, queue: &str, expected: usize) -> Option<String> {
        for u in &self.urls {
            match self.view_from(u, vhost, queue).await {
                Ok(v) => {
                    if let Some(why) = v.not_whole(expected) {
                        return Some(format!("{u}: {why}"));
                    }
                }
                Err(e) => return Some(format!("{e:#}")),
            }
        }
        None
    }

    /// Ready and unacknowledged counts of a queue as the first answering node reports them.
    pub async fn queue_counts(&self, vhost: &str, name: &str) -> Result<(u64, u64)> {
        let v = self.get(&queue_path(vhost, name)).await?;
        parse_queue_counts(&v).context("queue without messages_ready/messages_unacknowledged")
    }

    /// Connections named with `prefix` and their nodes, as every answering
    /// node sees them (union: during a partition each side lists its own).
    /// Err when no URL answered.
    pub async fn connections(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let path = "/api/connections?columns=name,node,client_properties";
        let mut out: Vec<(String, String)> = Vec::new();
        let mut answered = false;
        let mut last = anyhow!("no management URL given");
        for u in &self.urls {
            match self.get_from(u, path).await {
                Ok(v) => {
                    answered = true;
                    for c in parse_connections(&v, prefix) {
                        if !out.contains(&c) {
                            out.push(c);
                        }
                    }
                }
                Err(e) => last = e,
            }
        }
        if answered {
            Ok(out)
        } else {
            Err(last)
        }
    }

    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        if !self.enabled() {
            return Ok(vec![]);
        }
        Ok(serde_json::from_value(self.get("/api/nodes").await?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nodes(parts: bool, running: bool) -> Vec<NodeInfo> {
        (1..=3)
            .map(|i| NodeInfo {
                name: format!("rabbit@n{i}"),
                running: running || i != 2,
                partitions: if parts && i == 1 {
                    vec!["rabbit@n3".into()]
                } else {
                    vec![]
                },
            })
            .collect()
    }

    #[test]
    fn classic_queue_parse_and_sync() {
        let q = parse_queue(
            &json!({"name":"q","node":"rabbit@n1","slave_nodes":["rabbit@n2","rabbit@n3"],
            "synchronised_slave_nodes":["rabbit@n3"],"messages":4}),
        );
        assert_eq!(q.kind, "classic");
        assert_eq!(q.leader.as_deref(), Some("rabbit@n1"));
        assert_eq!(q.replicas.len(), 3);
        let v = ClusterView {
            nodes: nodes(false, true),
            queue: Some(q.clone()),
        };
        assert!(v
            .not_whole(3)
            .unwrap()
            .contains("rabbit@n2 is not synchronised"));
        let mut q2 = q;
        q2.in_sync.push("rabbit@n2".into());
        let v = ClusterView {
            nodes: nodes(false, true),
            queue: Some(q2),
        };
        assert_eq!(v.not_whole(3), None);
    }

    #[test]
    fn quorum_queue_parse_and_online() {
        let q = parse_queue(
            &json!({"type":"quorum","leader":"rabbit@n2","members":["rabbit@n1","rabbit@n2","rabbit@n3"],
            "online":["rabbit@n2","rabbit@n3"]}),
        );
        assert_eq!(q.leader.as_deref(), Some("rabbit@n2"));
        let v = ClusterView {
            nodes: nodes(false, true),
            queue: Some(q),
        };
        assert!(v.not_whole(3).unwrap().contains("rabbit@n1 is not online"));
    }

    #[test]
    fn nodes_down_or_partitioned_are_not_whole() {
        let v = ClusterView {
            nodes: nodes(false, false),
            queue: None,
        };
        assert!(v.not_whole(3).unwrap().contains("not running"));
        let v = ClusterView {
            nodes: nodes(true, true),
            queue: None,
        };
        assert!(v.not_whole(3).unwrap().contains("partition"));
        let v = ClusterView {
            nodes: nodes(false, true)[..2].to_vec(),
            queue: None,
        };
        assert!(v.not_whole(3).is_some());
        let v = ClusterView {
            nodes: nodes(false, true),
            queue: None,
        };
        assert_eq!(v.not_whole(3), None);
    }

    #[test]
    fn queue_counts_and_connections() {
        assert_eq!(
            parse_queue_counts(&json!({"messages_ready":3,"messages_unacknowledged":20})),
            Some((3, 20))
        );
        assert_eq!(parse_queue_counts(&json!({"messages":3})), None);
        let v = json!([
            {"name":"10.0.0.1:5000 -> 10.0.0.11:5672","node":"rabbit@n1",
             "client_properties":{"connection_name":"warren-drill r1 p0.0"}},
            {"name":"x","node":"rabbit@n2","client_properties":{"connection_name":"warren-drill r2 p0.0"}},
            {"name":"y","node":"rabbit@n2","client_properties":{}},
            {"name":"z","node":"rabbit@n3","client_properties":{"connection_name":"warren-drill r1 c1.4"}}
        ]);
        assert_eq!(
            parse_connections(&v, "warren-drill r1 "),
            vec![
                ("warren-drill r1 p0.0".to_string(), "rabbit@n1".to_string()),
                ("warren-drill r1 c1.4".to_string(), "rabbit@n3".to_string())
            ]
        );
        assert!(parse_connections(&json!({"error":1}), "w").is_empty());
    }

    #[test]
    fn vhost_encoding() {
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("a b"), "a%20b");
    }
}
