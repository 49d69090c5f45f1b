//! Per-instance counters and a tiny Prometheus-text HTTP endpoint.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::vrrp::packet::DropReason;

#[derive(Debug, Default)]
pub struct InstanceMetrics {
    pub name: String,
    pub vrid: u8,
    pub state: AtomicU8,
    pub priority: AtomicU8,
    pub transitions: AtomicU64,
    pub adverts_sent: AtomicU64,
    pub adverts_received: AtomicU64,
    pub became_master: AtomicU64,
    pub drops: [AtomicU64; DropReason::ALL.len()],
}

impl InstanceMetrics {
    pub fn new(name: &str, vrid: u8) -> Self {
        InstanceMetrics {
            name: name.to_string(),
            vrid,
            ..Default::default()
        }
    }

    pub fn count_drop(&self, r: DropReason) {
        let i = DropReason::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.drops[i].fetch_add(1, Relaxed);
    }

    pub fn dropped(&self, r: DropReason) -> u64 {
        let i = DropReason::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.drops[i].load(Relaxed)
    }
}

/// Render all instances as Prometheus text exposition.
pub fn render(all: &[Arc<InstanceMetrics>]) -> String {
    let mut s = String::new();
    let mut family =
        |name: &str, help: &str, kind: &str, f: &dyn Fn(&InstanceMetrics, &mut String, &str)| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for m in all {
                let labels = format!("instance=\"{}\",vrid=\"{}\"", m.name, m.vrid);
                f(m, &mut s, &labels);
            }
        };
    family(
        "warren_vip_state",
        "VRRP state: 0 init, 1 backup, 2 master, 3 fault.",
        "gauge",
        &|m, s, l| {
            let _ = writeln!(s, "warren_vip_state{{{l}}} {}", m.state.load(Relaxed));
        },
    );
    family(
        "warren_vip_priority",
        "Current effective priority.",
        "gauge",
        &|m, s, l| {
            let _ = writeln!(s, "warren_vip_priority{{{l}}} {}", m.priority.load(Relaxed));
        },
    );
    family(
        "warren_vip_transitions_total",
        "State transitions.",
        "counter",
        &|m, s, l| {
            let _ = writeln!(
                s,
                "warren_vip_transitions_total{{{l}}} {}",
                m.transitions.load(Relaxed)
            );
        },
    );
    family(
        "warren_vip_became_master_total",
        "Transitions into MASTER.",
        "counter",
        &|m, s, l| {
            let _ = writeln!(
                s,
                "warren_vip_became_master_total{{{l}}} {}",
                m.became_master.load(Relaxed)
            );
        },
    );
    family(
        "warren_vip_adverts_sent_total",
        "Advertisements sent.",
        "counter",
        &|m, s, l| {
            let _ = writeln!(
                s,
                "warren_vip_adverts_sent_total{{{l}}} {}",
                m.adverts_sent.load(Relaxed)
            );
        },
    );
    family(
        "warren_vip_adverts_received_total",
        "Valid advertisements received.",
        "counter",
        &|m, s, l| {
            let _ = writeln!(
                s,
                "warren_vip_adverts_received_total{{{l}}} {}",
                m.adverts_received.load(Relaxed)
            );
        },
    );
    family(
        "warren_vip_adverts_dropped_total",
        "Received packets dropped, by reason.",
        "counter",
        &|m, s, l| {
            for (i, r) in DropReason::ALL.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "warren_vip_adverts_dropped_total{{{l},reason=\"{}\"}} {}",
                    r.label(),
                    m.drops[i].load(Relaxed)
                );
            }
        },
    );
    s
}

/// Serve `GET /metrics` (and anything else) with [`render`]. Runs forever.
pub async fn serve(bind: SocketAddr, all: Vec<Arc<InstanceMetrics>>) -> std::io::Result<()> {
    let l = TcpListener::bind(bind).await?;
    tracing::info!("status endpoint listening on http://{bind}/metrics");
    loop {
        let (mut c, _) = l.accept().await?;
        let all = all.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), c.read(&mut buf)).await;
            let body = render(&all);
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = c.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_every_reason() {
        let m = Arc::new(InstanceMetrics::new("VI_1", 51));
        m.count_drop(DropReason::Ttl);
        m.count_drop(DropReason::Ttl);
        m.state.store(2, Relaxed);
        let s = render(std::slice::from_ref(&m));
        assert!(
            s.contains(
                "warren_vip_adverts_dropped_total{instance=\"VI_1\",vrid=\"51\",reason=\"ttl\"} 2"
            ),
            "{s}"
        );
        assert!(s.contains("warren_vip_state{instance=\"VI_1\",vrid=\"51\"} 2"));
        for r in DropReason::ALL {
            assert!(s.contains(&format!("reason=\"{}\"", r.label())));
        }
        assert_eq!(m.dropped(DropReason::Ttl), 2);
    }
}
