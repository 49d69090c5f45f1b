//! Prometheus text exposition (format 0.0.4) of the live state, rendered on
//! each scrape with warren-health's escaping writer
//! ([`warren_health::prometheus`]): every value already lives in the server
//! state (its counters, [`crate::counters`], whose table names their series,
//! and its health record), so a registry would only duplicate it (see
//! docs/decisions/lb-metrics.md).
//!
//! Names follow HAProxy's built-in exporter (`haproxy_server_*` →
//! `warren_lb_server_*`) where the concept is the same; labels are
//! `backend` and `server`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use warren_health::prometheus::{Exposition, Series};

use crate::backend::BackendState;
use crate::certificates::Leaf;
use crate::counters::SERVER_COUNTERS;
use crate::server::ServerState;

/// The server states `warren_lb_server_status` reports, one series each.
pub const STATES: [&str; 4] = ["UP", "DOWN", "DRAIN", "MAINT"];

/// Process-wide facts for the scrape.
pub struct Process {
    pub uptime: Duration,
    pub started_at: SystemTime,
    pub generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub sessions: usize,
    pub first_byte_timeouts: u64,
    pub resource_errors_accept: u64,
    pub resource_errors_connect: u64,
    pub pipes_used: usize,
    pub pipes_free: usize,
    pub tls_rotations_ok: u64,
    pub tls_rotations_failed: u64,
}

/// Per-server series beside the [`SERVER_COUNTERS`]: name, type, help, value.
const SERVER_METRICS: &[Series<ServerState, f64>] = &[
    (
        "warren_lb_server_last_status_change_seconds",
        "gauge",
        "Seconds since the last UP/DOWN transition (or since the server was created).",
        |s| s.since_last_change().as_secs_f64(),
    ),
    (
        "warren_lb_server_eligible",
        "gauge",
        "1 when the server may take new sessions (up, failed back, ready).",
        |s| f64::from(u8::from(s.is_eligible())),
    ),
    (
        "warren_lb_server_weight",
        "gauge",
        "Configured weight of the server.",
        |s| f64::from(s.weight()),
    ),
];

/// Renders the whole scrape; `certificates` are the TLS frontends' names
/// with the leaf each presents.
pub fn render(
    backends: &[Arc<BackendState>],
    certificates: &[(&str, Arc<Leaf>)],
    process: &Process,
) -> String {
    let mut out = Exposition::with_capacity(4096);
    let started = process
        .started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    out.family(
        "warren_lb_process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
    );
    out.sample("warren_lb_process_start_time_seconds", &[], started);
    out.family(
        "warren_lb_process_uptime_seconds",
        "gauge",
        "Seconds since the process started.",
    );
    out.sample(
        "warren_lb_process_uptime_seconds",
        &[],
        process.uptime.as_secs_f64(),
    );
    out.family(
        "warren_lb_process_current_connections",
        "gauge",
        "Client sessions open right now (all frontends, all generations).",
    );
    out.sample(
        "warren_lb_process_current_connections",
        &[],
        process.sessions,
    );
    out.family(
        "warren_lb_process_first_byte_timeouts_total",
        "counter",
        "Clients closed because they sent nothing within their frontend's timeout_first_byte.",
    );
    out.sample(
        "warren_lb_process_first_byte_timeouts_total",
        &[],
        process.first_byte_timeouts,
    );
    out.family(
        "warren_lb_process_resource_errors_total",
        "counter",
        "Local resource shortages (EMFILE, ENFILE, ENOBUFS, ENOMEM, no free port; HAProxy termination state RC), never counted against a server: phase accept = accept() failed and clients waited in the backlog, phase connect = a client refused because no socket to its server could be had.",
    );
    for (phase, n) in [
        ("accept", process.resource_errors_accept),
        ("connect", process.resource_errors_connect),
    ] {
        out.sample(
            "warren_lb_process_resource_errors_total",
            &[("phase", phase)],
            n,
        );
    }
    out.family(
        "warren_lb_process_pipes_used",
        "gauge",
        "Splice pipes leased by a relay right now, each holding a chunk in flight (HAProxy's PipesUsed).",
    );
    out.sample("warren_lb_process_pipes_used", &[], process.pipes_used);
    out.family(
        "warren_lb_process_pipes_free",
        "gauge",
        "Splice pipes open and waiting in the pool (HAProxy's PipesFree).",
    );
    out.sample("warren_lb_process_pipes_free", &[], process.pipes_free);
    out.family(
        "warren_lb_config_generation",
        "gauge",
        "Configuration generation: 1 at start, +1 on every successful reload.",
    );
    out.sample("warren_lb_config_generation", &[], process.generation);
    out.family(
        "warren_lb_config_reloads_total",
        "counter",
        "Configuration reloads by result.",
    );
    out.sample(
        "warren_lb_config_reloads_total",
        &[("result", "ok")],
        process.reloads_ok,
    );
    out.sample(
        "warren_lb_config_reloads_total",
        &[("result", "failed")],
        process.reloads_failed,
    );
    out.family(
        "warren_lb_tls_rotations_total",
        "counter",
        "Certificate changes the TLS frontends' file watches found, by result: loaded (ok) or refused, the previous certificate serving on (failed). A reload's loads count as reloads.",
    );
    out.sample(
        "warren_lb_tls_rotations_total",
        &[("result", "ok")],
        process.tls_rotations_ok,
    );
    out.sample(
        "warren_lb_tls_rotations_total",
        &[("result", "failed")],
        process.tls_rotations_failed,
    );

    out.family(
        "warren_lb_backend_active_servers",
        "gauge",
        "Eligible primary servers of the backend.",
    );
    for b in backends {
        let (primaries, _) = b.eligible_counts();
        out.sample(
            "warren_lb_backend_active_servers",
            &[("backend", &b.config.name)],
            primaries,
        );
    }
    out.family(
        "warren_lb_backend_backup_servers",
        "gauge",
        "Eligible backup servers of the backend.",
    );
    for b in backends {
        let (_, backups) = b.eligible_counts();
        out.sample(
            "warren_lb_backend_backup_servers",
            &[("backend", &b.config.name)],
            backups,
        );
    }

    out.family(
        "warren_lb_server_status",
        "gauge",
        "Current state of the server: 1 for the series whose state label is the current one (UP, DOWN, DRAIN, MAINT).",
    );
    for b in backends {
        for s in &b.servers {
            let current = s.state_word();
            for state in STATES {
                out.sample(
                    "warren_lb_server_status",
                    &[
                        ("backend", &b.config.name),
                        ("server", &s.config.name),
                        ("state", state),
                    ],
                    u8::from(state == current),
                );
            }
        }
    }
    for counter in SERVER_COUNTERS {
        out.family(counter.metric, counter.kind, counter.help);
        for b in backends {
            for s in &b.servers {
                out.sample(
                    counter.metric,
                    &[("backend", &b.config.name), ("server", &s.config.name)],
                    (counter.read)(&s.counters),
                );
            }
        }
    }
    for (name, kind, help, value) in SERVER_METRICS {
        out.family(name, kind, help);
        for b in backends {
            for s in &b.servers {
                out.sample(
                    name,
                    &[("backend", &b.config.name), ("server", &s.config.name)],
                    value(s),
                );
            }
        }
    }
    certificate_series(&mut out, certificates);
    out.finish()
}

/// When each TLS frontend's certificate in service expires, and since when
/// it is valid, as Unix timestamps (as blackbox_exporter's
/// `probe_ssl_earliest_cert_expiry` and cert-manager's
/// `certmanager_certificate_expiration_timestamp_seconds`), so an alert is
/// `warren_lb_frontend_certificate_expiry_timestamp_seconds - time() < 14 * 86400`.
/// The serial label changes with a rotation, so the new certificate is a
/// new series and the old one's ends.
fn certificate_series(out: &mut Exposition, certificates: &[(&str, Arc<Leaf>)]) {
    if certificates.is_empty() {
        return;
    }
    type Stamp = (&'static str, &'static str, fn(&Leaf) -> i64);
    const STAMPS: [Stamp; 2] = [
        (
            "warren_lb_frontend_certificate_expiry_timestamp_seconds",
            "notAfter of the certificate the frontend presents to new clients, seconds since the Unix epoch.",
            |l| l.not_after,
        ),
        (
            "warren_lb_frontend_certificate_not_before_timestamp_seconds",
            "notBefore of the certificate the frontend presents to new clients, seconds since the Unix epoch.",
            |l| l.not_before,
        ),
    ];
    for (name, help, value) in STAMPS {
        out.family(name, "gauge", help);
        for (frontend, leaf) in certificates {
            out.sample(
                name,
                &[("frontend", frontend), ("serial", &leaf.serial)],
                value(leaf),
            );
        }
    }
}
