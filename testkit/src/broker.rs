//! The broker lines a bed can run.

/// A broker line `scripts/testbed up --version` runs: Debian bookworm's
/// 3.10 (mirrored or quorum queues) or trixie's 4.0 (quorum only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    V3_10,
    V4_0,
}

impl Broker {
    /// The `--version` value, also the prefix of the version the broker
    /// reports.
    pub fn line(self) -> &'static str {
        match self {
            Broker::V3_10 => "3.10",
            Broker::V4_0 => "4.0",
        }
    }

    /// The replicated-queue mode of the line's tests: classic mirrored
    /// queues where they exist (3.x), quorum queues on 4.0.
    pub fn replicated_mode(self) -> &'static str {
        match self {
            Broker::V3_10 => "mirrored",
            Broker::V4_0 => "quorum",
        }
    }
}
