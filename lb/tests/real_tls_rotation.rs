//! warren-drill over TLS, and a certificate rotation under load: a real
//! RabbitMQ node (`scripts/testbed --nodes 1`, 3.10) behind a `warren-lb`
//! process that terminates TLS (`[frontend.tls]`), with the `warren-drill`
//! binary ($WARREN_DRILL_BIN) as the AMQPS client.
//!
//! - the drill runs over TLS and loses nothing, and refuses an endpoint
//!   whose certificate does not chain to `--tls-ca` or is for another name;
//! - 50 confirming publishers keep their sessions while the certificate
//!   files are rotated to a new serial; new handshakes (`openssl s_client`)
//!   present the new serial; every confirmed message is consumed.
//!
//! Needs root (network namespaces), Debian's rabbitmq-server and openssl.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use warren_testkit::{Broker, Testbed};

mod common;
use common::process::{admin_fetch, free_port, Lb};
use common::tls::{serial_text, terminating_config, Pki};
use common::{eventually_within, PATIENCE};

fn drill_bin() -> PathBuf {
    let p = std::env::var("WARREN_DRILL_BIN").unwrap_or_else(|_| {
        panic!("WARREN_DRILL_BIN is not set: build warren-drill and point WARREN_DRILL_BIN at it")
    });
    let p = PathBuf::from(p);
    assert!(
        p.exists(),
        "WARREN_DRILL_BIN={} does not exist",
        p.display()
    );
    p
}

/// A TLS-terminating warren-lb in front of node 1, with its admin API.
struct Setup {
    _lb: Lb,
    amqps: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    /// The node's management API over TLS (same certificate).
    management: std::net::SocketAddr,
}

fn start_lb(tb: &Testbed, dir: &Path, cert: &Path, key: &Path) -> Setup {
    let admin = free_port();
    let path = dir.join("lb.toml");
    let amqps = terminating_config("amqps", cert, key, tb.node(1).amqp_addr());
    // The node's management API behind TLS too, for `--mgmt https://`.
    let management = terminating_config("management", cert, key, tb.node(1).management_addr());
    std::fs::write(
        &path,
        format!("[admin]\nbind = \"{admin}\"\n{amqps}{management}"),
    )
    .unwrap();
    let mut lb = Lb::start(&path, "json");
    let amqps = lb.frontend("amqps");
    let management = lb.frontend("management");
    Setup {
        _lb: lb,
        amqps,
        admin,
        management,
    }
}

/// `warren-drill run --fault none` through the lb over TLS, checking the
/// certificate against `ca` and for `name`, with `extra` flags; the JSON
/// report goes to `json`.
fn drill(tb: &Testbed, s: &Setup, ca: &Path, name: &str, json: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(drill_bin());
    c.args(["run", "--target", "none", "--fault", "none", "--quiet"])
        .args(["--endpoint", &s.amqps.to_string()])
        .args([
            "--user",
            &tb.state().user,
            "--password",
            &tb.state().password,
        ])
        .args(["--tls", "--tls-server-name", name, "--tls-ca"])
        .arg(ca)
        .arg("--json")
        .arg(json)
        .args(extra);
    c
}

fn report(json: &Path, out: &Output) -> Value {
    let text = std::fs::read_to_string(json).unwrap_or_else(|e| {
        panic!(
            "no report {} ({e}); stderr:\n{}",
            json.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The drill passed with every confirmed message consumed.
fn assert_clean(r: &Value, out: &Output) {
    let a = &r["accounting"];
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verdict {}; stderr:\n{stderr}",
        a["verdict"]
    );
    assert!(
        a["confirmed"].as_u64().unwrap() > 0,
        "nothing confirmed: {a}"
    );
    assert_eq!(a["lost"], 0, "{a}");
}

#[test]
fn real_drill_over_tls_through_warren_lb() {
    let tb = Testbed::up(Broker::V3_10, &["--nodes", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.install("lb", &pki.leaf(16));
    let s = start_lb(&tb, dir.path(), &cert, &key);

    // The management API through https://, checked against the same CA.
    let json = dir.path().join("tls.json");
    let mgmt = format!("https://localhost:{}", s.management.port());
    let out = drill(
        &tb,
        &s,
        &pki.ca_file(),
        "localhost",
        &json,
        &["--duration", "5s", "--mgmt", &mgmt],
    )
    .output()
    .unwrap();
    let r = report(&json, &out);
    assert_clean(&r, &out);
    assert_eq!(r["reconnects"], 0, "sessions dropped: {r}");
    assert_eq!(
        r["nodes"], 1,
        "the cluster was read over https: {}",
        r["cluster"]
    );

    // A CA that did not sign the lb's certificate (another with the same
    // name): refused at the handshake.
    let other = tempfile::tempdir().unwrap();
    let other_ca = Pki::new(other.path()).ca_file();
    let json = dir.path().join("untrusted.json");
    let out = drill(&tb, &s, &other_ca, "localhost", &json, &[])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("certificate not trusted") && stderr.contains("BadSignature"),
        "the error names the certificate problem:\n{stderr}"
    );

    // The right CA, but a name the certificate is not for.
    let out = drill(&tb, &s, &pki.ca_file(), "mq.example", &json, &[])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("certificate name mismatch"),
        "the error names the certificate problem:\n{stderr}"
    );
}

/// `GET /metrics` value of the line starting with `prefix`.
fn metric(admin: std::net::SocketAddr, prefix: &str) -> Option<f64> {
    let (_, body) = admin_fetch(admin, "/metrics").ok()?;
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The serial the `amqps` frontend presents, from `GET /status`, as
/// `openssl x509 -serial` prints it.
fn status_serial(admin: std::net::SocketAddr) -> Option<String> {
    let (_, body) = admin_fetch(admin, "/status").ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    let serial = v["frontends"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == "amqps")?["tls"]["serial"]
        .as_str()?
        .replace(':', "")
        .to_uppercase();
    Some(serial)
}

/// The serial a new handshake sees, from `openssl s_client -showcerts`
/// (its first PEM block is the leaf) read by `openssl x509 -serial`.
fn s_client_serial(addr: std::net::SocketAddr) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-showcerts"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from s_client:\n{text}"));
    let end_tag = "-----END CERTIFICATE-----";
    let end = begin + text[begin..].find(end_tag).unwrap() + end_tag.len();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    x509.stdin
        .take()
        .unwrap()
        .write_all(text[begin..end].as_bytes())
        .unwrap();
    let out = x509.wait_with_output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    line.trim()
        .strip_prefix("serial=")
        .unwrap_or_else(|| panic!("openssl x509 -serial said {line:?}"))
        .to_owned()
}

/// The lb's open sessions to the node.
const SESSIONS_UP: &str = r#"warren_lb_server_current_sessions{backend="amqps",server="rabbit1"}"#;

/// (channels in confirm mode, consumers) on node 1, from its management
/// API, or why it did not answer.
async fn workload_ready(tb: &Testbed) -> Result<(usize, usize), String> {
    let http = reqwest::Client::new();
    let st = tb.state();
    let list = |path: &'static str| {
        let req = http
            .get(format!("{}{path}", tb.node(1).management_url()))
            .basic_auth(&st.user, Some(&st.password))
            .timeout(Duration::from_secs(10));
        async move {
            let v: Value = req
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| format!("{path}: {e}"))?
                .json()
                .await
                .map_err(|e| format!("{path}: {e}"))?;
            v.as_array()
                .cloned()
                .ok_or(format!("{path}: not a list: {v}"))
        }
    };
    let channels = list("/api/channels").await?;
    let confirming = channels.iter().filter(|c| c["confirm"] == true).count();
    Ok((confirming, list("/api/consumers").await?.len()))
}

/// Kills the drill (by its pid) if the test fails before it exits.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rotation_under_load_keeps_sessions_and_messages() {
    const SESSIONS: u32 = 50;
    const LOAD: Duration = Duration::from_secs(40);
    let tb = Testbed::up(Broker::V3_10, &["--nodes", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.install("lb", &pki.leaf(16));
    let s = start_lb(&tb, dir.path(), &cert, &key);
    assert_eq!(status_serial(s.admin).as_deref(), Some(&*serial_text(16)));
    assert_eq!(s_client_serial(s.amqps), serial_text(16));

    let json = dir.path().join("rotation.json");
    let history = dir.path().join("history.json");
    let sessions = SESSIONS.to_string();
    let spawned = std::time::Instant::now();
    let mut running = Running(Some(
        drill(
            &tb,
            &s,
            &pki.ca_file(),
            "localhost",
            &json,
            &[
                "--publishers",
                &sessions,
                "--consumers",
                "2",
                "--rate",
                "200",
                "--duration",
                &format!("{}s", LOAD.as_secs()),
            ],
        )
        .arg("--history")
        .arg(&history)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warren-drill"),
    ));

    // Every publisher's and consumer's session is set up (its channel in
    // confirm mode, its consumer registered, as the node's management API
    // shows) before the rotation.
    let patience = PATIENCE * 6;
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(status) = running.0.as_mut().unwrap().try_wait().unwrap() {
            let out = running.0.take().unwrap().wait_with_output().unwrap();
            panic!(
                "warren-drill exited ({status}) before its workload was up; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ready = workload_ready(&tb).await;
        if ready
            .as_ref()
            .is_ok_and(|&(c, k)| c >= SESSIONS as usize && k >= 2)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {patience:?} waiting for 50 publishers and 2 consumers; \
             (channels in confirm mode, consumers): {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        metric(s.admin, SESSIONS_UP).is_some_and(|n| n >= f64::from(SESSIONS)),
        "the sessions go through the lb"
    );

    let started = std::time::Instant::now();
    pki.install("lb", &pki.leaf(17));
    // On the drill's clock (which starts after the spawn, so this is late
    // enough, never early): when the new files were in place.
    let rotated_us = u64::try_from((started - spawned).as_micros()).unwrap();
    eventually_within(patience, "the lb to present serial 17 (/status)", || {
        status_serial(s.admin).as_deref() == Some(&*serial_text(17))
    })
    .await;
    let child = running.0.as_mut().unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the drill ended before the rotation was loaded: not under load"
    );
    assert_eq!(s_client_serial(s.amqps), serial_text(17), "new handshakes");
    let out = running.0.take().unwrap().wait_with_output().unwrap();
    let r = report(&json, &out);
    assert_clean(&r, &out);
    let h: Value = serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    assert_sessions_kept(&h, rotated_us, LOAD.as_micros() as u64, SESSIONS);
}

/// No workload session was dropped by the rotation: every publisher and
/// consumer connection open when the files were rotated stays open until
/// the load's planned end (`load_end_us`, where the publishers stop and
/// close), and none opens in between (a reconnect).
fn assert_sessions_kept(h: &Value, rotated_us: u64, load_end_us: u64, publishers: u32) {
    assert!(rotated_us < load_end_us, "rotated after the load ended");
    let workload = |c: &&Value| !c["name"].as_str().unwrap().ends_with(" tool");
    let conns: Vec<&Value> = h["conns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(workload)
        .collect();
    let open_at_rotation: Vec<&Value> = conns
        .iter()
        .copied()
        .filter(|c| c["opened_us"].as_u64().unwrap() < rotated_us)
        .filter(|c| c["closed_us"].as_u64().is_none_or(|t| t >= rotated_us))
        .collect();
    let publishers_open = open_at_rotation
        .iter()
        .filter(|c| c["name"].as_str().unwrap().contains(" p"))
        .count();
    assert!(
        publishers_open >= publishers as usize,
        "{publishers_open} publisher sessions open at the rotation, expected {publishers}: {conns:?}"
    );
    for c in &open_at_rotation {
        assert!(
            c["closed_us"].as_u64().is_none_or(|t| t >= load_end_us),
            "session dropped after the rotation (at {rotated_us} µs, load until {load_end_us} µs): {c}"
        );
    }
    let reopened: Vec<&&Value> = conns
        .iter()
        .filter(|c| (rotated_us..load_end_us).contains(&c["opened_us"].as_u64().unwrap()))
        .collect();
    assert!(
        reopened.is_empty(),
        "reconnects after the rotation: {reopened:?}"
    );
}
