//! A server's counters, and the one table that names them for both of their
//! readers: `/status` ([`crate::admin`]) and `/metrics` ([`crate::metrics`]).
//!
//! Each counter is an atomic of its own, not part of the server's health
//! record ([`crate::server`]): each has its own writer (the data path, the
//! check task, the resolver) bumping it on its own, and no reader needs two
//! of them from the same instant (HAProxy's stats are read the same way).
//! The data path bumps them on every session and chunk, where a lock would
//! be felt.
//!
//! A new counter is a field of [`ServerCounters`] and a row of
//! [`SERVER_COUNTERS`]; both renderings follow from the row.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Default)]
pub struct ServerCounters {
    /// Sessions open right now (a gauge; also the `maxconn` slot count).
    pub sessions: AtomicUsize,
    pub total_sessions: AtomicU64,
    /// Bytes relayed from clients to the server.
    pub bytes_in: AtomicU64,
    /// Bytes relayed from the server to clients.
    pub bytes_out: AtomicU64,
    /// Failed connects from the data path (HAProxy `econ`).
    pub connect_errors: AtomicU64,
    /// Resolutions of the server's name that failed.
    pub dns_failures: AtomicU64,
    /// Sessions sent on to another server after a failed connect to this one
    /// (HAProxy `wredis`).
    pub redispatches: AtomicU64,
    /// Active checks that failed (HAProxy `chkfail`, counted in any state).
    pub check_failures: AtomicU64,
    /// UP → DOWN transitions (HAProxy `chkdown`).
    pub downs: AtomicU64,
    /// DOWN → UP transitions.
    pub ups: AtomicU64,
}

/// One counter as its readers name it.
pub struct Counter {
    /// The key in a server's `/status` object.
    pub status_key: &'static str,
    /// The Prometheus family (labels `backend` and `server`).
    pub metric: &'static str,
    /// `gauge` or `counter`, the Prometheus `# TYPE`.
    pub kind: &'static str,
    /// The Prometheus `# HELP`.
    pub help: &'static str,
    pub read: fn(&ServerCounters) -> u64,
}

/// Every server counter, in the order `/metrics` lists their families.
pub const SERVER_COUNTERS: &[Counter] = &[
    Counter {
        status_key: "sessions",
        metric: "warren_lb_server_current_sessions",
        kind: "gauge",
        help: "Current number of sessions on the server.",
        read: |c| c.sessions.load(Ordering::Relaxed) as u64,
    },
    Counter {
        status_key: "total_sessions",
        metric: "warren_lb_server_sessions_total",
        kind: "counter",
        help: "Total number of sessions sent to the server.",
        read: |c| c.total_sessions.load(Ordering::Relaxed),
    },
    Counter {
        status_key: "bytes_in",
        metric: "warren_lb_server_bytes_in_total",
        kind: "counter",
        help: "Bytes relayed from clients to the server.",
        read: |c| c.bytes_in.load(Ordering::Relaxed),
    },
    Counter {
        status_key: "bytes_out",
        metric: "warren_lb_server_bytes_out_total",
        kind: "counter",
        help: "Bytes relayed from the server to clients.",
        read: |c| c.bytes_out.load(Ordering::Relaxed),
    },
    Counter {
        status_key: "connect_errors",
        metric: "warren_lb_server_connection_errors_total",
        kind: "counter",
        help: "Failed connects to the server from the data path.",
        read: |c| c.connect_errors.load(Ordering::Relaxed),
    },
    Counter {
        status_key: "dns_failures",
        metric: "warren_lb_server_dns_failures_total",
        kind: "counter",
        help: "Resolutions of the server's name that failed (the last address is kept for resolvers.hold_valid).",
        read: |c| c.dns_failures.load(Ordering::Relaxed),
    },
    Counter {
        status_key: "redispatches",
        metric: "warren_lb_server_redispatch_warnings_total",
        kind: "counter",
        help: "Sessions redispatched to another server after a failed connect to this one.",
        read: |c| c.redispatches.load(Ordering::Relaxed),
    },
    Counter {
        status_key: "check_failures",
        metric: "warren_lb_server_check_failures_total",
        kind: "counter",
        help: "Failed active health checks.",
        read: |c| c.check_failures.load(Ordering::Relaxed),
    },
    Counter {
        status_key: "downs",
        metric: "warren_lb_server_check_up_down_total",
        kind: "counter",
        help: "UP to DOWN transitions.",
        read: |c| c.downs.load(Ordering::Relaxed),
    },
    Counter {
        status_key: "ups",
        metric: "warren_lb_server_check_down_up_total",
        kind: "counter",
        help: "DOWN to UP transitions.",
        read: |c| c.ups.load(Ordering::Relaxed),
    },
];

impl ServerCounters {
    /// Every counter with its value now, in [`SERVER_COUNTERS`] order.
    pub fn values(&self) -> impl Iterator<Item = (&'static Counter, u64)> + '_ {
        SERVER_COUNTERS.iter().map(move |c| (c, (c.read)(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_row_reads_its_own_counter() {
        let counters = ServerCounters::default();
        let fields = [
            &counters.total_sessions,
            &counters.bytes_in,
            &counters.bytes_out,
            &counters.connect_errors,
            &counters.dns_failures,
            &counters.redispatches,
            &counters.check_failures,
            &counters.downs,
            &counters.ups,
        ];
        counters.sessions.store(1, Ordering::Relaxed);
        for (n, field) in fields.iter().enumerate() {
            field.store(n as u64 + 2, Ordering::Relaxed);
        }
        let values: Vec<u64> = counters.values().map(|(_, v)| v).collect();
        assert_eq!(values, (1..=10).collect::<Vec<u64>>());
    }

    #[test]
    fn names_are_unique_and_types_are_prometheus_types() {
        let keys: BTreeSet<_> = SERVER_COUNTERS.iter().map(|c| c.status_key).collect();
        let metrics: BTreeSet<_> = SERVER_COUNTERS.iter().map(|c| c.metric).collect();
        assert_eq!(keys.len(), SERVER_COUNTERS.len());
        assert_eq!(metrics.len(), SERVER_COUNTERS.len());
        for c in SERVER_COUNTERS {
            assert!(matches!(c.kind, "gauge" | "counter"), "{}", c.metric);
            assert!(c.metric.starts_with("warren_lb_server_"), "{}", c.metric);
        }
    }
}
