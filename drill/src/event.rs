//! The kinds of event the drill records in its history, next to the
//! publishes and deliveries: what the drill did and what it saw happen.
//!
//! This enum is the one list of them. The report's JSON (`events[].kind`),
//! the history file and the HTML timeline carry the serialised names
//! (`"fault"`, `"lb-switch"`, ...), which scripts and the docs' examples
//! read, so a name never changes: the tests pin every one.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The fault began (what is done to which node or load balancer).
    Fault,
    /// A fault command finished: the fault is in force from here on. The
    /// fault witness keeps only the looks taken after it.
    InForce,
    /// The heal step began (for a rolling restart: it ended). Also the
    /// target action that heals a partition.
    Heal,
    /// The cluster was whole again after the heal step.
    Healed,
    /// The target action that SIGKILLs a node.
    Kill,
    /// The target action that stops a node gracefully.
    Stop,
    /// The target action that starts a node.
    Start,
    /// The target action that freezes (SIGSTOPs) a node.
    Freeze,
    /// The target action that thaws (SIGCONTs) a node.
    Thaw,
    /// The target action that cuts a node from its peers.
    Partition,
    /// The queue's master/leader changed, as the management API tells.
    Failover,
    /// warren-lb's `/status` routes new connections to another server.
    LbSwitch,
    /// Another host holds the VIP after the active lb host was killed.
    VipMove,
    /// The settle and drain phases began and ended.
    Drain,
    /// Anything else worth reading in the timeline (a failed step, progress
    /// of a rolling restart, a consumer that lost unprocessed messages).
    Note,
}

impl EventKind {
    /// The serialised name, for the HTML report.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Fault => "fault",
            EventKind::InForce => "in-force",
            EventKind::Heal => "heal",
            EventKind::Healed => "healed",
            EventKind::Kill => "kill",
            EventKind::Stop => "stop",
            EventKind::Start => "start",
            EventKind::Freeze => "freeze",
            EventKind::Thaw => "thaw",
            EventKind::Partition => "partition",
            EventKind::Failover => "failover",
            EventKind::LbSwitch => "lb-switch",
            EventKind::VipMove => "vip-move",
            EventKind::Drain => "drain",
            EventKind::Note => "note",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EventKind::{self, *};

    /// The names reports and histories have always carried. A new variant
    /// must be added here (the match does not compile without it) and to
    /// `EVERY`.
    fn pinned(kind: EventKind) -> &'static str {
        match kind {
            Fault => "fault",
            InForce => "in-force",
            Heal => "heal",
            Healed => "healed",
            Kill => "kill",
            Stop => "stop",
            Start => "start",
            Freeze => "freeze",
            Thaw => "thaw",
            Partition => "partition",
            Failover => "failover",
            LbSwitch => "lb-switch",
            VipMove => "vip-move",
            Drain => "drain",
            Note => "note",
        }
    }

    const EVERY: [EventKind; 15] = [
        Fault, InForce, Heal, Healed, Kill, Stop, Start, Freeze, Thaw, Partition, Failover,
        LbSwitch, VipMove, Drain, Note,
    ];

    #[test]
    fn every_kind_serialises_to_its_pinned_name_and_back() {
        for kind in EVERY {
            let name = pinned(kind);
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(name.into())
            );
            assert_eq!(kind.as_str(), name);
            assert_eq!(
                serde_json::from_value::<EventKind>(name.into()).unwrap(),
                kind
            );
        }
        let names: std::collections::HashSet<_> = EVERY.iter().map(|k| pinned(*k)).collect();
        assert_eq!(names.len(), EVERY.len(), "EVERY lists a kind twice");
    }

    #[test]
    fn an_unknown_kind_is_refused_naming_the_known_ones() {
        let e = serde_json::from_str::<EventKind>(r#""lb_switch""#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lb_switch") && e.contains("lb-switch"), "{e}");
    }
}
