//! Checks over TLS against a real RabbitMQ node (`scripts/testbed up
//! --tls --nodes 1`): warren-lb's `amqp` check over AMQPS (5671, the
//! server's IP checked) and its `rabbitmq` check over HTTPS (15671, SNI
//! `rabbit1.testbed`) are UP with the bed's CA, DOWN with `certificate
//! untrusted` against another CA, and DOWN with `certificate expired` and
//! `certificate name mismatch` when the node serves such a certificate
//! (swapped by `testbed tls-cert`, which shows with openssl that the node
//! serves it before the test judges).  Each reason is in the DOWN log line
//! and in /status's `last_check`.
//!
//! Needs root (network namespaces) and Debian's rabbitmq-server.

use std::net::SocketAddr;
use std::time::Duration;

use warren_testkit::{CertKind, Testbed};

mod common;
use common::process::{admin_fetch, free_port, Lb};

/// A real node's certificate takes a few checks to be seen.
const PATIENCE: Duration = Duration::from_secs(60);

/// The `sni` line of the `rabbitmq` checks: the node's name in the bed's
/// certificates.
const SNI: &str = "sni = \"rabbit1.testbed\"";

/// One backend per probe kind and CA: `amqps` and `mgmt` trust the bed's
/// CA, `amqps-other` and `mgmt-other` the bed's other CA.  The `amqp`
/// checks send no SNI (the node's IP is checked), the `rabbitmq` ones name
/// the node (`sni`), so both ways of naming the server are exercised.
fn config(tb: &Testbed, admin: SocketAddr) -> String {
    let state = tb.state();
    let tls = state.tls.as_ref().expect("an up --tls bed");
    let node = tb.node(1);
    let backend = |name: &str, check: &str, ca: &std::path::Path, sni: &str| {
        format!(
            r#"
[[frontend]]
name = "{name}"
bind = "127.0.0.1:0"
backend = "{name}"

[[backend]]
name = "{name}"

[backend.check]
inter = "500ms"
rise = 1
fall = 1
timeout = "2s"
{check}

[backend.check.tls]
ca = "{}"
{}

[[backend.server]]
name = "rabbit1"
address = "{}"
"#,
            ca.display(),
            sni,
            node.amqps_addr(),
        )
    };
    let amqp = "type = \"amqp\"";
    let rabbitmq = format!(
        "type = \"rabbitmq\"\nport = {}\nusername = \"{}\"\npassword = \"{}\"",
        node.management_tls_addr().port(),
        state.user,
        state.password
    );
    format!(
        "[admin]\nbind = \"{admin}\"\n{}{}{}{}",
        backend("amqps", amqp, &tls.ca, ""),
        backend("mgmt", &rabbitmq, &tls.ca, SNI),
        backend("amqps-other", amqp, &tls.other_ca, ""),
        backend("mgmt-other", &rabbitmq, &tls.other_ca, SNI),
    )
}

/// Backend `name`'s server in /status: its state and last check.
fn server(admin: SocketAddr, name: &str) -> Option<(String, String)> {
    let (code, body) = admin_fetch(admin, "/status").ok()?;
    let status: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
    let backend = status["backends"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == name)?;
    let s = &backend["servers"][0];
    Some((
        s["state"].as_str()?.to_owned(),
        s["last_check"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// Waits until backend `name`'s server is `state` in /status with a last
/// check containing `reason`.
async fn until_status(admin: SocketAddr, name: &str, state: &str, reason: &str) {
    let what = format!("{name}/rabbit1 {state} with {reason:?} in /status");
    common::eventually_within(PATIENCE, &what, || {
        tokio::task::block_in_place(|| server(admin, name))
            .is_some_and(|(s, last)| s == state && last.contains(reason))
    })
    .await;
}

/// Waits for the DOWN log line of backend `name`'s server with `reason`.
async fn until_down_logged(lb: &mut Lb, name: &str, reason: &str) -> String {
    let needle = format!("Server {name}/rabbit1 is DOWN, reason: {reason}");
    let mut found = None;
    common::eventually_within(PATIENCE, &needle, || {
        found = lb
            .logged()
            .iter()
            .filter_map(|v| v["message"].as_str().map(str::to_owned))
            .find(|m| m.starts_with(&needle));
        found.is_some()
    })
    .await;
    found.unwrap()
}

/// Both good-CA backends DOWN for `reason`: in the log and in /status.
async fn both_down(lb: &mut Lb, admin: SocketAddr, reason: &str) {
    for name in ["amqps", "mgmt"] {
        let line = until_down_logged(lb, name, reason).await;
        println!("{line}");
        until_status(admin, name, "DOWN", reason).await;
    }
}

async fn both_up(admin: SocketAddr) {
    for name in ["amqps", "mgmt"] {
        until_status(admin, name, "UP", "check passed").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_checks_over_tls_are_up_with_the_right_ca_and_down_for_each_bad_certificate() {
    let tb = Testbed::up(warren_testkit::Broker::V3_10, &["--nodes", "1", "--tls"]);
    let admin = free_port();
    let path = tb.dir().join("lb.toml");
    std::fs::write(&path, config(&tb, admin)).unwrap();
    let mut lb = Lb::start(&path, "json");

    both_up(admin).await;
    for name in ["amqps-other", "mgmt-other"] {
        let line = until_down_logged(&mut lb, name, "certificate untrusted").await;
        println!("{line}");
        until_status(admin, name, "DOWN", "certificate untrusted").await;
    }

    tb.tls_cert(1, CertKind::Expired);
    both_down(&mut lb, admin, "certificate expired").await;

    tb.tls_cert(1, CertKind::Good);
    both_up(admin).await;

    tb.tls_cert(1, CertKind::WrongName);
    both_down(&mut lb, admin, "certificate name mismatch").await;
}
