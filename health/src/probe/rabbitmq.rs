//! `rabbitmq` check: cluster-aware eligibility of one RabbitMQ node, judged
//! from that node's own management HTTP API.
//!
//! The check passes only if:
//! 1. its management API answers (`GET /api/overview`, `GET /api/nodes`);
//! 2. its own entry in `/api/nodes` (found by `/api/overview`'s `node`) is
//!    `running`;
//! 3. it sees a strict majority of the cluster's member nodes running *and
//!    not partitioned from it* (counted over the nodes it lists in
//!    `/api/nodes`, minus those named in its own `partitions` list);
//! 4. it has no memory or disk alarm (`mem_alarm`, `disk_free_alarm`);
//! 5. it is not in maintenance mode (`being_drained`, RabbitMQ 3.8+).
//!
//! A partition entry is *data*, not a verdict: it goes into the
//! [`NodeReport`] and only disqualifies the node when it leaves the node
//! without a majority (rule 3).  Under `pause_minority` the majority nodes
//! keep listing a frozen-and-resumed node in their `partitions` for 30 s and
//! more; failing them for it refused the healthy majority.  Whether the node
//! really is *with* the majority is decided by warren-lb's cross-check of all
//! nodes' reports (`lb/src/majority.rs`, docs/health-checks.md), which a
//! single node's view cannot decide.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::http::get;
use super::ProbeError;

/// Where and how to reach one node's management API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RabbitCheck {
    /// e.g. `http://10.210.1.11:15672` (no trailing path).
    pub base_url: String,
    pub username: String,
    pub password: String,
}

/// What an eligible node reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's Erlang name, e.g. `rabbit@10.210.1.11`.
    pub node: String,
    /// `cluster_name` from `/api/overview`, when present.
    pub cluster_name: Option<String>,
    /// Names of the member nodes it sees running (itself included).
    pub running: Vec<String>,
    /// Names of the nodes its own `/api/nodes` entry lists in `partitions`:
    /// nodes it has (or had, the list lags) a network partition with.
    pub partitions: Vec<String>,
    /// Number of member nodes it lists.
    pub total: usize,
}

/// The columns we need from `/api/nodes` (keeps the answer small).
const NODE_COLUMNS: &str = "name,running,partitions,mem_alarm,disk_free_alarm,being_drained";

/// Runs the check against the node behind `check.base_url` within `timeout`.
pub async fn rabbitmq(check: &RabbitCheck, timeout: Duration) -> Result<NodeReport, ProbeError> {
    let deadline = Instant::now() + timeout;
    let base = check.base_url.trim_end_matches('/');
    let overview = get_json(check, &format!("{base}/api/overview"), deadline).await?;
    let nodes = get_json(
        check,
        &format!("{base}/api/nodes?columns={NODE_COLUMNS}"),
        deadline,
    )
    .await?;
    judge(&overview, &nodes)
}

async fn get_json(check: &RabbitCheck, url: &str, deadline: Instant) -> Result<Value, ProbeError> {
    let (status, body) = get(url, Some(&check.username), Some(&check.password), deadline).await?;
    if status != 200 {
        return Err(ProbeError::L7Status(status));
    }
    serde_json::from_slice(&body).map_err(|e| {
        let path = url
            .split_once("/api/")
            .map(|(_, p)| p.split('?').next().unwrap_or(p))
            .unwrap_or(url);
        ProbeError::L7Rsp(format!("invalid JSON from /api/{path}: {e}"))
    })
}

/// The eligibility decision, pure: `/api/overview` and `/api/nodes` as parsed
/// JSON in, a report or the reason for ineligibility out.
pub fn judge(overview: &Value, nodes: &Value) -> Result<NodeReport, ProbeError> {
    let me = overview
        .get("node")
        .and_then(Value::as_str)
        .ok_or_else(|| ProbeError::L7Rsp("/api/overview has no \"node\" name".into()))?;
    let cluster_name = overview
        .get("cluster_name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let list = nodes
        .as_array()
        .ok_or_else(|| ProbeError::L7Rsp("/api/nodes is not a JSON array".into()))?;

    let mut running = Vec::new();
    let mut total = 0usize;
    let mut mine = None;
    for n in list {
        let Some(name) = n.get("name").and_then(Value::as_str) else {
            return Err(ProbeError::L7Rsp(
                "/api/nodes has an entry without \"name\"".into(),
            ));
        };
        total += 1;
        if flag(n, "running") {
            running.push(name.to_string());
        }
        if name == me {
            mine = Some(n);
        }
    }
    let Some(mine) = mine else {
        return Err(ProbeError::Rabbit(format!(
            "{me} is not listed in its own /api/nodes"
        )));
    };
    if !flag(mine, "running") {
        return Err(ProbeError::Rabbit(format!("{me} is not running")));
    }
    let partitions: Vec<String> = mine
        .get("partitions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let with_me = running.iter().filter(|n| !partitions.contains(n)).count();
    if with_me * 2 <= total {
        return Err(ProbeError::Rabbit(if with_me == running.len() {
            format!("{me} sees {with_me} of {total} nodes running (no majority)")
        } else {
            format!(
                "{me} sees {with_me} of {total} nodes running outside a partition (reports partition with [{}]; no majority)",
                partitions.join(", ")
            )
        }));
    }
    if flag(mine, "mem_alarm") {
        return Err(ProbeError::Rabbit(format!("memory alarm on {me}")));
    }
    if flag(mine, "disk_free_alarm") {
        return Err(ProbeError::Rabbit(format!("disk alarm on {me}")));
    }
    if flag(mine, "being_drained") {
        return Err(ProbeError::Rabbit(format!(
            "{me} is in maintenance mode (being drained)"
        )));
    }
    Ok(NodeReport {
        node: me.to_string(),
        cluster_name,
        running,
        partitions,
        total,
    })
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::testutil::{closed_port, http_server};
    use serde_json::json;

    const A: &str = "rabbit@10.210.1.11";
    const B: &str = "rabbit@10.210.1.12";
    const C: &str = "rabbit@10.210.1.13";

    fn overview(node: &str) -> Value {
        json!({"management_version": "3.10.8", "cluster_name": "warren",
               "node": node, "rabbitmq_version": "3.10.8"})
    }

    fn node(name: &str, running: bool) -> Value {
        if running {
            json!({"name": name, "running": true, "partitions": [],
                   "mem_alarm": false, "disk_free_alarm": false,
                   "being_drained": false, "type": "disc"})
        } else {
            // What RabbitMQ lists for a member it cannot reach.
            json!({"name": name, "running": false, "type": "disc"})
        }
    }

    fn healthy() -> Value {
        json!([node(A, true), node(B, true), node(C, true)])
    }

    #[test]
    fn healthy_node_is_eligible() {
        let r = judge(&overview(A), &healthy()).unwrap();
        assert_eq!(r.node, A);
        assert_eq!(r.cluster_name.as_deref(), Some("warren"));
        assert_eq!(r.running, vec![A, B, C]);
        assert_eq!(r.total, 3);
    }

    #[test]
    fn one_peer_down_still_majority() {
        let nodes = json!([node(A, true), node(B, false), node(C, true)]);
        let r = judge(&overview(A), &nodes).unwrap();
        assert_eq!(r.running.len(), 2);
    }

    #[test]
    fn single_node_cluster_is_eligible() {
        judge(&overview(A), &json!([node(A, true)])).unwrap();
    }

    #[test]
    fn minority_is_not_eligible() {
        // The frozen-then-resumed node: it only sees itself.
        let nodes = json!([node(A, true), node(B, false), node(C, false)]);
        let e = judge(&overview(A), &nodes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rabbitmq: rabbit@10.210.1.11 sees 1 of 3 nodes running (no majority)"
        );
        // Exactly half is not a majority.
        let nodes = json!([node(A, true), node(B, false)]);
        let e = judge(&overview(A), &nodes).unwrap_err();
        assert!(e.to_string().contains("sees 1 of 2"), "{e}");
    }

    #[test]
    fn partitioned_from_the_majority_is_not_eligible() {
        let mut a = node(A, true);
        a["partitions"] = json!([B, C]);
        // Even when it (wrongly) sees everyone running: with both peers in
        // its partition list it is with nobody but itself.
        let nodes = json!([a, node(B, true), node(C, true)]);
        let e = judge(&overview(A), &nodes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rabbitmq: rabbit@10.210.1.11 sees 1 of 3 nodes running outside a partition (reports partition with [rabbit@10.210.1.12, rabbit@10.210.1.13]; no majority)"
        );
    }

    #[test]
    fn a_partition_with_a_node_outside_the_majority_passes_and_is_reported() {
        // Issue 13: under pause_minority rabbit2 lists `running [rabbit3,
        // rabbit2]`, `partitions [rabbit1]` for 30 s and more after rabbit1
        // was frozen and resumed.  It is with the majority: the check passes
        // and hands the partition on to the cross-check as data.
        let mut b = node(B, true);
        b["partitions"] = json!([A]);
        let nodes = json!([node(A, false), b, node(C, true)]);
        let r = judge(&overview(B), &nodes).unwrap();
        assert_eq!(r.running, vec![B, C]);
        assert_eq!(r.partitions, vec![A]);
        // Also while the management API still lists rabbit1 running again
        // (its partition data lags the cluster's): 2 of 3 are with it.
        let mut b = node(B, true);
        b["partitions"] = json!([A]);
        let r = judge(&overview(B), &json!([node(A, true), b, node(C, true)])).unwrap();
        assert_eq!((r.running.len(), r.partitions.len()), (3, 1));
    }

    #[test]
    fn partition_reported_by_a_peer_only_does_not_matter() {
        let mut b = node(B, true);
        b["partitions"] = json!([C]);
        let nodes = json!([node(A, true), b, node(C, true)]);
        judge(&overview(A), &nodes).unwrap();
    }

    #[test]
    fn alarms_are_not_eligible() {
        let mut a = node(A, true);
        a["mem_alarm"] = json!(true);
        let e = judge(&overview(A), &json!([a, node(B, true), node(C, true)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rabbitmq: memory alarm on rabbit@10.210.1.11"
        );

        let mut a = node(A, true);
        a["disk_free_alarm"] = json!(true);
        let e = judge(&overview(A), &json!([a, node(B, true), node(C, true)])).unwrap_err();
        assert_eq!(e.to_string(), "rabbitmq: disk alarm on rabbit@10.210.1.11");
    }

    #[test]
    fn draining_is_not_eligible() {
        let mut a = node(A, true);
        a["being_drained"] = json!(true);
        let e = judge(&overview(A), &json!([a, node(B, true), node(C, true)])).unwrap_err();
        assert!(e.to_string().contains("maintenance mode"), "{e}");
    }

    #[test]
    fn paused_or_not_running_self_is_not_eligible() {
        // pause_minority: the management API of a paused node usually stops
        // answering (refused); if it does answer, its own entry is not running.
        let nodes = json!([node(A, false), node(B, true), node(C, true)]);
        let e = judge(&overview(A), &nodes).unwrap_err();
        assert_eq!(e.to_string(), "rabbitmq: rabbit@10.210.1.11 is not running");
    }

    #[test]
    fn self_missing_is_not_eligible() {
        let nodes = json!([node(B, true), node(C, true)]);
        let e = judge(&overview(A), &nodes).unwrap_err();
        assert!(e.to_string().contains("not listed"), "{e}");
    }

    #[test]
    fn garbage_json_shapes_are_errors_not_panics() {
        for (o, n) in [
            (json!({}), healthy()),
            (json!({"node": 5}), healthy()),
            (json!([]), healthy()),
            (overview(A), json!({})),
            (overview(A), json!("x")),
            (overview(A), json!([{"running": true}])),
            (overview(A), json!([null, 1])),
            (json!(null), json!(null)),
        ] {
            let e = judge(&o, &n).unwrap_err();
            assert!(matches!(e, ProbeError::L7Rsp(_)), "{o} {n}: {e}");
        }
        // Odd but well-formed types in optional fields are tolerated.
        let mut a = node(A, true);
        a["mem_alarm"] = json!("yes");
        a["partitions"] = json!(null);
        judge(&overview(A), &json!([a, node(B, true)])).unwrap();
    }

    /// A fake management API serving canned `/api/overview` and `/api/nodes`.
    async fn fake_mgmt(overview: Value, nodes: Value) -> std::net::SocketAddr {
        http_server(move |path, auth| {
            if auth != Some("Basic YWRtaW46c2VjcmV0") {
                return (401, r#"{"error":"not_authorised"}"#.into());
            }
            if path == "/api/overview" {
                (200, overview.to_string())
            } else if path.starts_with("/api/nodes?columns=") {
                (200, nodes.to_string())
            } else {
                (404, r#"{"error":"Object Not Found"}"#.into())
            }
        })
        .await
    }

    fn check(addr: std::net::SocketAddr, password: &str) -> RabbitCheck {
        RabbitCheck {
            base_url: format!("http://{addr}/"),
            username: "admin".into(),
            password: password.into(),
        }
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn probe_healthy_and_minority() {
        let addr = fake_mgmt(overview(A), healthy()).await;
        let r = rabbitmq(&check(addr, "secret"), T).await.unwrap();
        assert_eq!(r.node, A);

        let nodes = json!([node(A, true), node(B, false), node(C, false)]);
        let addr = fake_mgmt(overview(A), nodes).await;
        let e = rabbitmq(&check(addr, "secret"), T).await.unwrap_err();
        assert!(e.to_string().contains("no majority"), "{e}");
    }

    #[tokio::test]
    async fn probe_wrong_password_and_refused() {
        let addr = fake_mgmt(overview(A), healthy()).await;
        let e = rabbitmq(&check(addr, "wrong"), T).await.unwrap_err();
        assert_eq!(e.to_string(), "Layer7 wrong status: 401");

        let e = rabbitmq(&check(closed_port().await, "secret"), T)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Layer4 connection problem: Connection refused"
        );
    }

    #[tokio::test]
    async fn probe_invalid_json() {
        let addr = http_server(|_, _| (200, "<html>not json</html>".into())).await;
        let e = rabbitmq(&check(addr, "secret"), T).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Layer7 invalid response: invalid JSON from /api/overview"),
            "{e}"
        );
    }
}
