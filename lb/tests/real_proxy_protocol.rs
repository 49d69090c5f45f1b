//! PROXY protocol against a real RabbitMQ (`scripts/testbed --nodes 1
//! --conf-line 'proxy_protocol = true'`): warren-lb's `amqp` checks pass
//! only because they send the header (the same node is DOWN for a server
//! without `send_proxy`), and a client connecting through warren-lb shows
//! up in the management API with its own address, not the balancer's.
//!
//! Needs root (network namespaces) and Debian's rabbitmq-server.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use warren_lb::runtime::{self, Running};

mod common;
use warren_testkit::{Broker, Testbed};

const PATIENCE: Duration = Duration::from_secs(120);

/// One frontend + backend per `send_proxy` value, all to the same node,
/// each with an `amqp` check.
fn lb_config(tb: &Testbed) -> String {
    let mut c = String::new();
    for version in ["v2", "v1", "none"] {
        c.push_str(&format!(
            r#"
[[frontend]]
name = "amqp-{version}"
bind = "127.0.0.1:0"
backend = "{version}"

[[backend]]
name = "{version}"

[backend.check]
type = "amqp"
inter = "300ms"
fastinter = "200ms"
downinter = "300ms"
rise = 2
fall = 2
timeout = "2s"

[[backend.server]]
name = "rabbit1"
address = "{}"
send_proxy = "{version}"
"#,
            tb.node(1).amqp_addr()
        ));
    }
    c
}

async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    common::eventually_within(PATIENCE, what, cond).await
}

fn last_check(lb: &Running, backend: usize) -> String {
    lb.backends()[backend].servers[0]
        .last_check()
        .unwrap_or_default()
}

/// The management API's view of the connection named `name`, once it
/// appears (connections show up after a short stats delay).
async fn mgmt_connection(tb: &Testbed, name: &str) -> Value {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("{}/api/connections", tb.node(1).management_url());
    let deadline = Instant::now() + PATIENCE;
    let mut last;
    loop {
        let answer = http
            .get(&url)
            .basic_auth(&tb.state().user, Some(&tb.state().password))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => {
                let all: Value = r.json().await.unwrap_or(Value::Null);
                if let Some(c) = all.as_array().and_then(|cs| {
                    cs.iter()
                        .find(|c| c["client_properties"]["connection_name"] == name)
                }) {
                    return c.clone();
                }
                last = format!(
                    "{} connections, none named {name}",
                    all.as_array().map_or(0, |a| a.len())
                );
            }
            Ok(r) => last = format!("status {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        assert!(
            Instant::now() < deadline,
            "connection {name} not in {url} after {PATIENCE:?} (last: {last})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_proxy_protocol_v1_v2_checks_pass_and_rabbitmq_sees_the_client() {
    let tb = Testbed::up(
        Broker::V3_10,
        &["--nodes", "1", "--conf-line", "proxy_protocol = true"],
    );
    let bridge = tb.state().host_ip.to_string();
    let config = warren_lb::config::parse(&lb_config(&tb)).expect("valid lb config");
    let lb = runtime::start(config).await.unwrap();
    let backends = lb.backends();
    let (v2, v1, plain) = (
        backends[0].servers[0].clone(),
        backends[1].servers[0].clone(),
        backends[2].servers[0].clone(),
    );

    // (a) The header-less amqp check fails against the same node: RabbitMQ
    // drops a connection that does not start with a PROXY header ...
    eventually("server without send_proxy marked DOWN", || !plain.is_up()).await;
    let plain_reason = last_check(&lb, 2);
    println!("no send_proxy: {plain_reason}");
    assert!(!plain_reason.starts_with("Layer6 check passed"));
    // ... while the checks with a v2 / v1 header pass, every time.
    eventually("v2 and v1 checks passed at least once", || {
        last_check(&lb, 0).starts_with("Layer6 check passed")
            && last_check(&lb, 1).starts_with("Layer6 check passed")
    })
    .await;
    for (name, server, i) in [("v2", &v2, 0), ("v1", &v1, 1)] {
        assert!(server.is_up(), "{name}: {}", last_check(&lb, i));
        assert_eq!(
            server.counters.check_failures.load(Ordering::Relaxed),
            0,
            "{name} checks never failed: {}",
            last_check(&lb, i)
        );
    }

    // (b) A client through warren-lb is seen by RabbitMQ as itself.
    for (name, frontend) in [("v2", lb.listening[0]), ("v1", lb.listening[1])] {
        let conn_name = format!("warren-proxy-{name}-{}", std::process::id());
        let uri = format!(
            "amqp://{}:{}@{frontend}/%2f?heartbeat=5",
            tb.state().user,
            tb.state().password
        );
        let props = ConnectionProperties::default()
            .with_connection_name(conn_name.clone().into())
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let conn = Connection::connect(&uri, props)
            .await
            .unwrap_or_else(|e| panic!("{name}: AMQP through warren-lb: {e}"));
        let ch = conn.create_channel().await.unwrap();
        assert!(ch.status().connected());

        let asked = Instant::now();
        let seen = mgmt_connection(&tb, &conn_name).await;
        println!(
            "{name}: RabbitMQ sees peer {}:{} -> {}:{} (in the management API after {:?})",
            seen["peer_host"],
            seen["peer_port"],
            seen["host"],
            seen["port"],
            asked.elapsed()
        );
        assert_eq!(
            seen["peer_host"], "127.0.0.1",
            "{name}: the client's own address (the lb listens on loopback), got {seen}"
        );
        assert_ne!(seen["peer_host"], bridge.as_str());
        // The destination RabbitMQ reports is the one the client dialled:
        // warren-lb's frontend, not the node's own listener.
        assert_eq!(seen["port"], frontend.port(), "{name}: {seen}");
        conn.close(200, "bye").await.unwrap();
    }
    lb.shutdown().await;
}
