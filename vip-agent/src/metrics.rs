//! Per-instance counters and their Prometheus-text `/metrics` endpoint, on
//! the same HTTP stack (axum) and text writer (`warren_health::prometheus`)
//! as warren-lb's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use warren_health::prometheus::{Exposition, Series};

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

/// Per-instance series: name, type, help, value.
const INSTANCE_METRICS: &[Series<InstanceMetrics, u64>] = &[
    (
        "warren_vip_state",
        "gauge",
        "VRRP state: 0 init, 1 backup, 2 master, 3 fault.",
        |m| m.state.load(Relaxed).into(),
    ),
    (
        "warren_vip_priority",
        "gauge",
        "Current effective priority.",
        |m| m.priority.load(Relaxed).into(),
    ),
    (
        "warren_vip_transitions_total",
        "counter",
        "State transitions.",
        |m| m.transitions.load(Relaxed),
    ),
    (
        "warren_vip_became_master_total",
        "counter",
        "Transitions into MASTER.",
        |m| m.became_master.load(Relaxed),
    ),
    (
        "warren_vip_adverts_sent_total",
        "counter",
        "Advertisements sent.",
        |m| m.adverts_sent.load(Relaxed),
    ),
    (
        "warren_vip_adverts_received_total",
        "counter",
        "Valid advertisements received.",
        |m| m.adverts_received.load(Relaxed),
    ),
];

/// Render all instances as Prometheus text exposition.
pub fn render(all: &[Arc<InstanceMetrics>]) -> String {
    let mut out = Exposition::default();
    for (name, kind, help, value) in INSTANCE_METRICS {
        out.family(name, kind, help);
        for m in all {
            let vrid = m.vrid.to_string();
            out.sample(name, &[("instance", &m.name), ("vrid", &vrid)], value(m));
        }
    }
    let dropped = "warren_vip_adverts_dropped_total";
    out.family(dropped, "counter", "Received packets dropped, by reason.");
    for m in all {
        let vrid = m.vrid.to_string();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            out.sample(
                dropped,
                &[
                    ("instance", &m.name),
                    ("vrid", &vrid),
                    ("reason", r.label()),
                ],
                m.drops[i].load(Relaxed),
            );
        }
    }
    out.finish()
}

/// Serves `GET /metrics` with [`render`] on `bind` until the process ends;
/// any other path or method is answered 404.
pub async fn serve(bind: SocketAddr, all: Vec<Arc<InstanceMetrics>>) -> std::io::Result<()> {
    let listener = TcpListener::bind(bind).await?;
    tracing::info!("status endpoint listening on http://{bind}/metrics");
    serve_on(listener, all).await
}

/// [`serve`] on a listener already bound.
async fn serve_on(listener: TcpListener, all: Vec<Arc<InstanceMetrics>>) -> std::io::Result<()> {
    axum::serve(listener, router(all.into())).await
}

fn router(all: Arc<[Arc<InstanceMetrics>]>) -> Router {
    let not_found = || async { StatusCode::NOT_FOUND };
    Router::new()
        .route("/metrics", get(scrape).fallback(not_found))
        .fallback(not_found)
        .with_state(all)
}

async fn scrape(State(all): State<Arc<[Arc<InstanceMetrics>]>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&all),
    )
        .into_response()
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

    #[test]
    fn label_values_are_escaped() {
        let m = Arc::new(InstanceMetrics::new("VI \"1\"\\\n", 7));
        let s = render(&[m]);
        assert!(
            s.contains("warren_vip_state{instance=\"VI \\\"1\\\"\\\\\\n\",vrid=\"7\"} 0\n"),
            "{s}"
        );
    }

    /// The status line and body of one HTTP/1.1 request to `addr`.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        c.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.lines().next().unwrap_or_default().to_owned();
        (status, body.to_owned())
    }

    #[tokio::test]
    async fn only_get_metrics_is_answered() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Arc::new(InstanceMetrics::new("VI_1", 51));
        m.priority.store(100, Relaxed);
        let server = tokio::spawn(serve_on(listener, vec![m]));
        let (status, body) = request(addr, "GET", "/metrics").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            body.contains("warren_vip_priority{instance=\"VI_1\",vrid=\"51\"} 100\n"),
            "{body}"
        );
        for (method, path) in [("GET", "/"), ("GET", "/metricsx"), ("POST", "/metrics")] {
            let (status, _) = request(addr, method, path).await;
            assert_eq!(status, "HTTP/1.1 404 Not Found", "{method} {path}");
        }
        server.abort();
    }
}
