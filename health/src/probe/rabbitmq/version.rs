//! Which RabbitMQ line a node runs, from the version it reports, and what
//! the check reads on each (docs/health-checks.md, "Endpoints by version").
//!
//! The lines differ in what the node's `/api/nodes` entry carries: 4.x lists
//! `being_drained` on every running entry from boot on; 3.10.8 lists no
//! `being_drained` at all (captured: health/tests/fixtures/rabbitmq).  The
//! rest of what the check reads has the same shape on both.  A version the
//! check does not know fails it: its endpoints may mean something else, and
//! a check that guesses could call a node UP that is not.

use serde_json::Value;

use super::answer::{field, object, Place};
use crate::probe::error::ProbeError;

/// A RabbitMQ release line the check knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerLine {
    /// 3.x (Mnesia; classic mirroring exists).  Tested on 3.10.8.
    V3,
    /// 4.x (no classic mirroring; Mnesia by default on 4.0, Khepri optional
    /// there and mandatory from 4.3).  Tested on 4.0.5.
    V4,
}

/// The lines, for the reason a version is refused with.
pub const SUPPORTED: &str = "RabbitMQ 3.x or 4.x";

impl BrokerLine {
    /// Whether the node's own `/api/nodes` entry must carry `being_drained`
    /// (maintenance mode).  On 3.x it may be absent and is honoured when
    /// present; a drained 3.x node suspends its management listener, so its
    /// check fails at Layer4 anyway (seen on 3.10.8 and on 4.0.5).
    pub fn lists_being_drained(self) -> bool {
        self == BrokerLine::V4
    }
}

/// The line of the broker whose `/api/overview` this is, from its
/// `rabbitmq_version` (the core server's version; `product_version` may be
/// a distribution's own numbering).
pub fn broker_line(overview: &Value) -> Result<BrokerLine, ProbeError> {
    let place = Place {
        endpoint: "/api/overview",
        entry: None,
    };
    let overview = object(place, overview)?;
    let version = field(
        place,
        overview,
        "rabbitmq_version",
        &format!("a version string of {SUPPORTED}"),
        Value::as_str,
    )
    .map_err(|e| match e {
        ProbeError::L7Rsp(reason) => ProbeError::UnknownBroker(reason),
        other => other,
    })?;
    let major = version.split(['.', '-', '+']).next().unwrap_or_default();
    match major {
        "3" => Ok(BrokerLine::V3),
        "4" => Ok(BrokerLine::V4),
        _ => Err(ProbeError::UnknownBroker(format!(
            "/api/overview reports rabbitmq_version {version:?}, the check knows {SUPPORTED}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(v: Value) -> Result<BrokerLine, ProbeError> {
        broker_line(&json!({"node": "rabbit@a", "rabbitmq_version": v}))
    }

    #[test]
    fn known_lines() {
        for (v, want) in [
            ("3.10.8", BrokerLine::V3),
            ("3.13.7", BrokerLine::V3),
            ("4.0.5", BrokerLine::V4),
            ("4.1.0-beta.1", BrokerLine::V4),
            ("4.2.0+2.g1a2b", BrokerLine::V4),
        ] {
            assert_eq!(line(json!(v)).unwrap(), want, "{v}");
        }
    }

    #[test]
    fn unknown_versions_are_refused_naming_what_was_seen() {
        for v in ["2.8.7", "5.0.0", "30.1", "", "four", "3x"] {
            let e = line(json!(v)).unwrap_err();
            assert!(matches!(e, ProbeError::UnknownBroker(_)), "{v}: {e:?}");
            assert_eq!(
                e.to_string(),
                format!("rabbitmq: /api/overview reports rabbitmq_version {v:?}, the check knows RabbitMQ 3.x or 4.x")
            );
        }
    }

    #[test]
    fn missing_or_mistyped_version_is_refused() {
        let e = broker_line(&json!({"node": "rabbit@a"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rabbitmq: /api/overview has no \"rabbitmq_version\", expected a version string of RabbitMQ 3.x or 4.x"
        );
        let e = line(json!(4)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rabbitmq: /api/overview has \"rabbitmq_version\": 4, expected a version string of RabbitMQ 3.x or 4.x"
        );
        assert!(matches!(e, ProbeError::UnknownBroker(_)));
        // Not an object at all: a shape error, not a version.
        let e = broker_line(&json!([])).unwrap_err();
        assert!(matches!(e, ProbeError::L7Rsp(_)), "{e:?}");
    }
}
