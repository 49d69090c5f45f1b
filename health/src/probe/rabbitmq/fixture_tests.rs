//! The `rabbitmq` check over what real nodes answered (RabbitMQ 3.10.8 and
//! 4.0.5, captured by health/tests/fixtures/rabbitmq/capture), and over the
//! same answers mutated: every field the check requires removed or given
//! another JSON type, every answer replaced by non-JSON or a 404.  Each
//! mutation must fail the check with a reason that names the endpoint and
//! the field; none may pass or panic.

use serde_json::{json, Value};

use super::version::{broker_line, BrokerLine};
use super::*;

/// The captured versions, each a folder of health/tests/fixtures/rabbitmq.
const VERSIONS: [&str; 2] = ["3.10.8", "4.0.5"];

/// The text of the captured file `VERSION/FILE`.
fn read(version: &str, file: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/rabbitmq/{version}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// One captured answer: `VERSION/NAME.status` and `VERSION/NAME.json`.
fn fixture(version: &str, name: &str) -> Answer {
    Answer {
        status: read(version, &format!("{name}.status"))
            .trim()
            .parse()
            .expect("a status file holds a number"),
        body: read(version, &format!("{name}.json")).into_bytes(),
    }
}

/// The three answers the check reads, in one state of one node.
#[derive(Clone)]
struct Capture {
    version: &'static str,
    overview: Answer,
    nodes: Answer,
    local_alarms: Answer,
}

impl Capture {
    fn judge(&self) -> Result<NodeReport, ProbeError> {
        judge(&self.overview, &self.nodes, &self.local_alarms)
    }

    fn node(&self) -> String {
        let o: Value = serde_json::from_slice(&self.overview.body).unwrap();
        o["node"].as_str().unwrap().to_string()
    }
}

/// Both versions in one captured state: `prefix` is "" for a healthy
/// node, "mem-alarm-" or "boot-" for the others.
fn captured(prefix: &str) -> [Capture; 2] {
    VERSIONS.map(|version| Capture {
        version,
        overview: fixture(version, &format!("{prefix}overview")),
        nodes: fixture(version, &format!("{prefix}nodes")),
        local_alarms: fixture(version, &format!("{prefix}health-local-alarms")),
    })
}

fn healthy() -> [Capture; 2] {
    captured("")
}

fn mem_alarm() -> [Capture; 2] {
    captured("mem-alarm-")
}

fn booting() -> [Capture; 2] {
    captured("boot-")
}

#[test]
fn healthy_real_nodes_are_eligible() {
    for c in healthy() {
        let r = c.judge().unwrap_or_else(|e| panic!("{}: {e}", c.version));
        assert_eq!(r.running, vec![c.node()], "{}", c.version);
        assert!(r.partitions.is_empty(), "{}", c.version);
        assert_eq!(r.total, 1, "{}", c.version);
        assert!(r.cluster_name.is_some(), "{}", c.version);
    }
}

#[test]
fn the_lines_are_told_apart_by_the_reported_version() {
    let [v3, v4] = healthy();
    let line = |c: &Capture| broker_line(&serde_json::from_slice(&c.overview.body).unwrap());
    assert_eq!(line(&v3).unwrap(), BrokerLine::V3);
    assert_eq!(line(&v4).unwrap(), BrokerLine::V4);
}

#[test]
fn a_real_memory_alarm_is_not_eligible() {
    for c in mem_alarm() {
        let e = c.judge().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("rabbitmq: memory alarm on {}", c.node()),
            "{}",
            c.version
        );
    }
}

#[test]
fn a_node_before_its_first_statistics_is_not_eligible_yet() {
    for c in booting() {
        let e = c.judge().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "rabbitmq: /api/nodes entry {} has no \"partitions\" yet, expected an array of node names (RabbitMQ adds it with the node's first statistics, about 5 s after start)",
                c.node()
            ),
            "{}",
            c.version
        );
    }
}

#[test]
fn what_the_check_leaves_alone_is_as_documented() {
    // is-in-service does not exist on either line (docs/health-checks.md),
    // and a drained node's own API refuses connections (status 000): the
    // check then fails at Layer4 whatever the line.
    for version in VERSIONS {
        let in_service = read(version, "health-is-in-service.status");
        let drained = read(version, "drained-overview.status");
        assert_eq!(in_service.trim(), "404", "{version}");
        assert_eq!(drained.trim(), "000", "{version}");
    }
}

/// Which of the three answers a mutation changes.
#[derive(Clone, Copy, Debug)]
enum Which {
    Overview,
    Nodes,
    LocalAlarms,
}

impl Which {
    fn answer(self, c: &mut Capture) -> &mut Answer {
        match self {
            Which::Overview => &mut c.overview,
            Which::Nodes => &mut c.nodes,
            Which::LocalAlarms => &mut c.local_alarms,
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Which::Overview => "/api/overview",
            Which::Nodes => "/api/nodes",
            Which::LocalAlarms => "/api/health/checks/local-alarms",
        }
    }
}

/// `capture` with `edit` applied to the JSON of one of its answers.
fn mutated(capture: &Capture, which: Which, edit: impl Fn(&mut Value)) -> Capture {
    let mut c = capture.clone();
    let answer = which.answer(&mut c);
    let mut v: Value = serde_json::from_slice(&answer.body).unwrap();
    edit(&mut v);
    answer.body = v.to_string().into_bytes();
    c
}

/// Every field the check requires: the answer, the JSON pointer of the
/// object holding it, its key, and a value of the wrong type.
fn required(c: &Capture) -> Vec<(Which, &'static str, &'static str, Value)> {
    let mut fields = vec![
        (Which::Overview, "", "rabbitmq_version", json!(4)),
        (Which::Overview, "", "node", json!(["rabbit@x"])),
        (Which::Nodes, "/0", "name", json!(1)),
        (Which::Nodes, "/0", "running", json!("true")),
        (Which::Nodes, "/0", "partitions", json!({})),
        (Which::LocalAlarms, "", "status", json!(true)),
    ];
    if c.version.starts_with('4') {
        fields.push((Which::Nodes, "/0", "being_drained", json!(0)));
    }
    if c.local_alarms.status == 503 {
        fields.push((Which::LocalAlarms, "", "alarms", json!("memory")));
        fields.push((Which::LocalAlarms, "/alarms/0", "resource", json!(null)));
    }
    fields
}

#[test]
fn every_required_field_removed_or_retyped_fails_naming_it() {
    for c in healthy().into_iter().chain(mem_alarm()) {
        for (which, pointer, key, wrong) in required(&c) {
            let removed = mutated(&c, which, |v| {
                v.pointer_mut(pointer)
                    .and_then(Value::as_object_mut)
                    .expect("the fixture has the object")
                    .remove(key)
                    .expect("the fixture has the field");
            });
            let retyped = mutated(&c, which, |v| {
                v.pointer_mut(pointer).unwrap()[key] = wrong.clone();
            });
            for (how, m) in [("removed", removed), ("retyped", retyped)] {
                let what = format!("{} {}{pointer}/{key} {how}", c.version, which.endpoint());
                let e = m.judge().expect_err(&what).to_string();
                assert!(e.contains(which.endpoint()), "{what}: {e}");
                assert!(e.contains(&format!("\"{key}\"")), "{what}: {e}");
                assert!(e.contains("expected"), "{what}: {e}");
            }
        }
    }
}

#[test]
fn every_answer_not_json_or_missing_fails_naming_its_endpoint() {
    for c in healthy().into_iter().chain(mem_alarm()) {
        for which in [Which::Overview, Which::Nodes, Which::LocalAlarms] {
            let mut not_json = c.clone();
            which.answer(&mut not_json).body = b"<html>hello</html>".to_vec();
            let e = not_json.judge().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "Layer7 invalid response: invalid JSON from {}",
                    which.endpoint()
                )),
                "{} {which:?}: {e}",
                c.version
            );
            let mut missing = c.clone();
            *which.answer(&mut missing) = Answer {
                status: 404,
                body: br#"{"error":"Object Not Found","reason":"Not Found"}"#.to_vec(),
            };
            let e = missing.judge().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "Layer7 invalid response: {} answered 404",
                    which.endpoint()
                )),
                "{} {which:?}: {e}",
                c.version
            );
        }
    }
}

#[test]
fn versions_the_check_does_not_know_are_down_naming_them() {
    let [_, v4] = healthy();
    for version in [json!("2.8.7"), json!("5.0.0"), json!("")] {
        let c = mutated(&v4, Which::Overview, |v| {
            v["rabbitmq_version"] = version.clone()
        });
        let e = c.judge().unwrap_err();
        assert!(
            matches!(e, ProbeError::UnknownBroker(_)),
            "{version}: {e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("rabbitmq: /api/overview reports rabbitmq_version {version}, the check knows RabbitMQ 3.x or 4.x")
        );
    }
}
