//! The eligibility decision of the `rabbitmq` check, pure: the node's three
//! management API answers in, a [`NodeReport`] or the reason it is not
//! eligible out.  Which field comes from which endpoint, per RabbitMQ line,
//! is in docs/health-checks.md ("Endpoints by version").

use serde_json::Value;

use super::answer::{field, json, object, strings, wrong_type, Answer, Place};
use super::version::{broker_line, BrokerLine};
use super::NodeReport;
use crate::probe::error::ProbeError;

/// The requests the check makes, relative to the management API's base URL.
pub const OVERVIEW: &str = "/api/overview";
pub const NODES: &str = "/api/nodes?columns=name,running,partitions,being_drained";
pub const LOCAL_ALARMS: &str = "/api/health/checks/local-alarms";

/// `/api/nodes` without its query, for reasons.
const NODES_ENDPOINT: &str = "/api/nodes";

/// Judges the node from its `/api/overview`, `/api/nodes` (with the
/// [`NODES`] columns) and `/api/health/checks/local-alarms` answers.
///
/// First every answer is read, and any field the check needs that is
/// missing or of another type fails it (so a shape the check does not know
/// is reported as such, never hidden behind a verdict).  Then the rules, in
/// order (the first that fails is the reason): its own entry is listed and
/// `running`; it sees a strict majority of the listed members running and
/// not in its own `partitions`; it has no local alarm; it is not being
/// drained.  A version the check does not know fails it before anything
/// else is read.
pub fn judge(
    overview: &Answer,
    nodes: &Answer,
    local_alarms: &Answer,
) -> Result<NodeReport, ProbeError> {
    let overview = json(OVERVIEW, overview, &[200])?;
    let line = broker_line(&overview)?;
    let at_overview = Place {
        endpoint: OVERVIEW,
        entry: None,
    };
    let fields = object(at_overview, &overview)?;
    let me = field(at_overview, fields, "node", "a node name", Value::as_str)?;
    let cluster_name = fields
        .get("cluster_name")
        .and_then(Value::as_str)
        .map(str::to_string);

    let nodes = json(NODES_ENDPOINT, nodes, &[200])?;
    let view = cluster_view(line, &nodes, me)?;
    let alarms = local_alarms_of(local_alarms)?;

    let report = NodeReport {
        node: me.to_string(),
        cluster_name,
        running: view.running,
        partitions: view.partitions,
        total: view.total,
    };
    majority(&report)?;
    if let Some(resources) = alarms {
        return Err(ProbeError::Rabbit(match resources.as_slice() {
            [] => format!("{LOCAL_ALARMS} reports alarms in effect on {me} without naming them"),
            [one] => format!("{one} alarm on {me}"),
            many => format!("{} alarms on {me}", many.join(" and ")),
        }));
    }
    if view.being_drained {
        return Err(ProbeError::Rabbit(format!(
            "{me} is in maintenance mode (being drained)"
        )));
    }
    Ok(report)
}

/// What the node's `/api/nodes` says of the cluster and of itself.
struct ClusterView {
    running: Vec<String>,
    partitions: Vec<String>,
    total: usize,
    being_drained: bool,
}

/// Reads `/api/nodes`; its own entry being listed and running are rules,
/// checked here because without them there is no entry to read on.
fn cluster_view(line: BrokerLine, nodes: &Value, me: &str) -> Result<ClusterView, ProbeError> {
    let list = nodes.as_array().ok_or_else(|| {
        ProbeError::L7Rsp(format!(
            "{NODES_ENDPOINT} is {}, expected a JSON array of nodes",
            kind(nodes)
        ))
    })?;
    let mut running = Vec::new();
    let mut mine = None;
    for (i, entry) in list.iter().enumerate() {
        let index = format!("[{i}]");
        let at = Place {
            endpoint: NODES_ENDPOINT,
            entry: Some(&index),
        };
        let entry = object(at, entry)?;
        let name = field(at, entry, "name", "a node name", Value::as_str)?;
        let at = Place {
            endpoint: NODES_ENDPOINT,
            entry: Some(name),
        };
        if field(at, entry, "running", "true or false", Value::as_bool)? {
            running.push(name.to_string());
        }
        if name == me {
            mine = Some((at, entry));
        }
    }
    let Some((at, mine)) = mine else {
        return Err(ProbeError::Rabbit(format!(
            "{me} is not listed in its own {NODES_ENDPOINT}"
        )));
    };
    if !running.iter().any(|n| n == me) {
        return Err(ProbeError::Rabbit(format!("{me} is not running")));
    }
    let partitions = match mine.get("partitions") {
        // RabbitMQ adds the column with the node's first statistics, about
        // 5 s after it starts (fixtures `boot-nodes.json`): until then the
        // node cannot say whom it is cut off from.
        None => {
            return Err(ProbeError::Rabbit(format!(
                "{at} has no \"partitions\" yet, expected an array of node names (RabbitMQ adds it with the node's first statistics, about 5 s after start)"
            )))
        }
        Some(p) => strings(p).ok_or_else(|| wrong_type(at, "partitions", p, "an array of node names"))?,
    };
    // Maintenance mode: required on 4.x, honoured when present on 3.x.
    let being_drained = match mine.get("being_drained") {
        None if !line.lists_being_drained() => false,
        _ => field(at, mine, "being_drained", "true or false", Value::as_bool)?,
    };
    Ok(ClusterView {
        total: list.len(),
        running,
        partitions,
        being_drained,
    })
}

/// Rule 3: a strict majority of the listed members running and not in the
/// node's own partition list.
fn majority(r: &NodeReport) -> Result<(), ProbeError> {
    let with_me = r
        .running
        .iter()
        .filter(|n| !r.partitions.contains(n))
        .count();
    if with_me * 2 > r.total {
        return Ok(());
    }
    let (me, total) = (&r.node, r.total);
    Err(ProbeError::Rabbit(if with_me == r.running.len() {
        format!("{me} sees {with_me} of {total} nodes running (no majority)")
    } else {
        format!(
            "{me} sees {with_me} of {total} nodes running outside a partition (reports partition with [{}]; no majority)",
            r.partitions.join(", ")
        )
    }))
}

/// The resources in alarm on the node, or `None` without alarms, from
/// `/api/health/checks/local-alarms`: 200 `{"status":"ok"}` without,
/// 503 `{"status":"failed","alarms":[{"node","resource"}]}` with (the same
/// on 3.10.8 and 4.0.5).
fn local_alarms_of(answer: &Answer) -> Result<Option<Vec<String>>, ProbeError> {
    let body = json(LOCAL_ALARMS, answer, &[200, 503])?;
    let at = Place {
        endpoint: LOCAL_ALARMS,
        entry: None,
    };
    let body = object(at, &body)?;
    let want = if answer.status == 200 { "ok" } else { "failed" };
    let expected = format!("\"{want}\" with HTTP {}", answer.status);
    let status = field(at, body, "status", &expected, Value::as_str)?;
    if status != want {
        return Err(wrong_type(at, "status", &Value::from(status), &expected));
    }
    if answer.status == 200 {
        return Ok(None);
    }
    let list = field(at, body, "alarms", "an array of alarms", Value::as_array)?;
    let mut resources = Vec::new();
    for (i, alarm) in list.iter().enumerate() {
        let index = format!("alarms[{i}]");
        let at = Place {
            endpoint: LOCAL_ALARMS,
            entry: Some(&index),
        };
        let alarm = object(at, alarm)?;
        let resource = field(
            at,
            alarm,
            "resource",
            "\"memory\" or \"disk\"",
            Value::as_str,
        )?;
        resources.push(resource.to_string());
    }
    Ok(Some(resources))
}

/// A JSON value's kind, for reasons about a whole answer.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
