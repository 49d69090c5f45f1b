//! Unit tests of the `rabbitmq` check over hand-made views of a 3-node
//! cluster (the fixtures of real nodes are in `fixture_tests.rs`), and of
//! the probe against a canned management API.

use super::*;
use crate::probe::testutil::{closed_port, http_server};
use serde_json::{json, Value};

/// `judge` over these `/api/overview` and `/api/nodes`, the node without
/// alarms.
fn judge(overview: &Value, nodes: &Value) -> Result<NodeReport, ProbeError> {
    super::judge(
        &Answer::ok(overview.to_string()),
        &Answer::ok(nodes.to_string()),
        &no_alarm(),
    )
}

fn no_alarm() -> Answer {
    Answer::ok(r#"{"status":"ok"}"#)
}

fn alarm(node: &str, resources: &[&str]) -> Answer {
    let alarms: Vec<Value> = resources
        .iter()
        .map(|r| json!({"node": node, "resource": r}))
        .collect();
    Answer {
        status: 503,
        body: json!({"status": "failed", "reason": "There are alarms in effect on the node",
                     "alarms": alarms})
        .to_string()
        .into_bytes(),
    }
}

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
               "being_drained": false})
    } else {
        // What RabbitMQ lists for a member it cannot reach.
        json!({"name": name, "running": false})
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
    let with_alarm = |resources: &[&str]| {
        super::judge(
            &Answer::ok(overview(A).to_string()),
            &Answer::ok(healthy().to_string()),
            &alarm(A, resources),
        )
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        with_alarm(&["memory"]),
        "rabbitmq: memory alarm on rabbit@10.210.1.11"
    );
    assert_eq!(
        with_alarm(&["disk"]),
        "rabbitmq: disk alarm on rabbit@10.210.1.11"
    );
    assert_eq!(
        with_alarm(&["memory", "disk"]),
        "rabbitmq: memory and disk alarms on rabbit@10.210.1.11"
    );
    // 503 with an empty list still is "alarms in effect": never UP.
    assert_eq!(
        with_alarm(&[]),
        "rabbitmq: /api/health/checks/local-alarms reports alarms in effect on rabbit@10.210.1.11 without naming them"
    );
}

#[test]
fn alarm_flags_in_the_node_entry_are_not_the_source() {
    // The entry's mem_alarm comes from the statistics (up to 5 s late, and
    // absent right after boot); local-alarms is the source on every line.
    let mut a = node(A, true);
    a["mem_alarm"] = json!(true);
    judge(&overview(A), &json!([a, node(B, true), node(C, true)])).unwrap();
}

#[test]
fn draining_is_not_eligible() {
    for version in ["3.10.8", "4.0.5"] {
        let mut o = overview(A);
        o["rabbitmq_version"] = json!(version);
        let mut a = node(A, true);
        a["being_drained"] = json!(true);
        let e = judge(&o, &json!([a, node(B, true), node(C, true)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rabbitmq: rabbit@10.210.1.11 is in maintenance mode (being drained)",
            "{version}"
        );
    }
}

#[test]
fn being_drained_is_required_on_4x_only() {
    let without = |version: &str| {
        let mut o = overview(A);
        o["rabbitmq_version"] = json!(version);
        let mut a = node(A, true);
        a.as_object_mut().unwrap().remove("being_drained");
        judge(&o, &json!([a, node(B, true), node(C, true)]))
    };
    // 3.10.8 lists no being_drained at all (fixtures).
    without("3.10.8").unwrap();
    let e = without("4.0.5").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Layer7 invalid response: /api/nodes entry rabbit@10.210.1.11 has no \"being_drained\", expected true or false"
    );
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
    let mut bad_partitions = node(A, true);
    bad_partitions["partitions"] = json!(null);
    let mut bad_running = node(B, true);
    bad_running["running"] = json!("yes");
    for (o, n, reason) in [
        (json!([]), healthy(), "/api/overview is [], expected a JSON object"),
        (json!({"rabbitmq_version": "3.10.8", "node": 5}), healthy(),
         "/api/overview has \"node\": 5, expected a node name"),
        (overview(A), json!({}), "/api/nodes is an object, expected a JSON array of nodes"),
        (overview(A), json!("x"), "/api/nodes is a string, expected a JSON array of nodes"),
        (overview(A), json!([{"running": true}]),
         "/api/nodes entry [0] has no \"name\", expected a node name"),
        (overview(A), json!([null, 1]), "/api/nodes entry [0] is null, expected a JSON object"),
        (overview(A), json!([node(A, true), bad_running]),
         "/api/nodes entry rabbit@10.210.1.12 has \"running\": \"yes\", expected true or false"),
        (overview(A), json!([bad_partitions, node(B, true)]),
         "/api/nodes entry rabbit@10.210.1.11 has \"partitions\": null, expected an array of node names"),
    ] {
        let e = judge(&o, &n).unwrap_err();
        assert!(matches!(e, ProbeError::L7Rsp(_)), "{o} {n}: {e}");
        assert_eq!(e.to_string(), format!("Layer7 invalid response: {reason}"));
    }
    // Without a version nothing else is judged.
    let e = judge(&json!(null), &json!(null)).unwrap_err();
    assert!(matches!(e, ProbeError::L7Rsp(_)), "{e}");
    let e = judge(&json!({"node": A}), &healthy()).unwrap_err();
    assert!(matches!(e, ProbeError::UnknownBroker(_)), "{e}");
}

#[test]
fn statuses_name_the_endpoint_when_it_does_not_exist() {
    let ok = |v: Value| Answer::ok(v.to_string());
    let not_found = Answer {
        status: 404,
        body: br#"{"error":"Object Not Found","reason":"Not Found"}"#.to_vec(),
    };
    let e = super::judge(&ok(overview(A)), &ok(healthy()), &not_found).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Layer7 invalid response: /api/health/checks/local-alarms answered 404 (no such endpoint on this broker), expected 200 or 503"
    );
    let e = super::judge(&ok(overview(A)), &not_found, &no_alarm()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Layer7 invalid response: /api/nodes answered 404 (no such endpoint on this broker), expected 200"
    );
    let unavailable = Answer {
        status: 500,
        body: Vec::new(),
    };
    let e = super::judge(&unavailable, &ok(healthy()), &no_alarm()).unwrap_err();
    assert_eq!(e.to_string(), "Layer7 wrong status: 500");
    // A 503 that is not RabbitMQ's alarm answer (a proxy's HTML page).
    let html = Answer {
        status: 503,
        body: b"<html>Service Unavailable</html>".to_vec(),
    };
    let e = super::judge(&ok(overview(A)), &ok(healthy()), &html).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "Layer7 invalid response: invalid JSON from /api/health/checks/local-alarms"
        ),
        "{e}"
    );
}

/// A fake management API serving canned `/api/overview` and `/api/nodes`,
/// and no alarms.
async fn fake_mgmt(overview: Value, nodes: Value) -> std::net::SocketAddr {
    http_server(move |path, auth| {
        if auth != Some("Basic YWRtaW46c2VjcmV0") {
            return (401, r#"{"error":"not_authorised"}"#.into());
        }
        if path == "/api/overview" {
            (200, overview.to_string())
        } else if path.starts_with("/api/nodes?columns=") {
            (200, nodes.to_string())
        } else if path == "/api/health/checks/local-alarms" {
            (200, r#"{"status":"ok"}"#.into())
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
        tls: None,
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
