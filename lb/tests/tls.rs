//! TLS termination, against real `warren-lb` processes: a rustls client
//! through warren-lb to a plain echo server; mTLS; live rotation from the
//! files and on SIGHUP; bad certificate files refused by `check-config`,
//! by a rotation and by a reload, the old certificate serving on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::process::{admin_fetch, free_port, lb, Lb};
use common::tls::{client, connect, peer_serial, serial_text, write_atomically, Pki};
use common::{echoes, named, PATIENCE};

/// One TLS frontend `tls` (with `extra` in its `[frontend.tls]`), one
/// plain frontend `plain`, both to `server`.
fn config(cert: &Path, key: &Path, extra: &str, server: SocketAddr, send_proxy: &str) -> String {
    format!(
        r#"
[[frontend]]
name = "tls"
bind = "127.0.0.1:0"
backend = "b"
timeout_first_byte = "5s"

[frontend.tls]
cert = "{}"
key = "{}"
{extra}

[[frontend]]
name = "plain"
bind = "127.0.0.1:0"
backend = "b"

[[backend]]
name = "b"

[[backend.server]]
name = "echo"
address = "{server}"
send_proxy = "{send_proxy}"
"#,
        cert.display(),
        key.display()
    )
}

/// A test CA in a fresh directory (kept as long as the returned guard),
/// with the balancer's certificate (serial 1) installed as `lb.crt` and
/// `lb.key`.
fn pki_with_lb_certificate() -> (tempfile::TempDir, Pki, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.install("lb", &pki.leaf(1));
    (dir, pki, cert, key)
}

fn start(dir: &Path, text: &str) -> (Lb, SocketAddr, SocketAddr) {
    let path = dir.join("lb.toml");
    std::fs::write(&path, text).unwrap();
    let mut lb = Lb::start(&path, "json");
    let tls = lb.frontend("tls");
    let plain = lb.frontend("plain");
    (lb, tls, plain)
}

/// The greeting line of a `named` server, read through any stream.
async fn greeting(s: &mut (impl AsyncRead + Unpin)) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut byte))
            .await
            .expect("greeting in time")?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if byte[0] == b'\n' {
            return Ok(String::from_utf8(line).unwrap());
        }
        line.push(byte[0]);
    }
}

/// A TLS client says hello first (the greeting comes after its first
/// bytes pass `timeout_first_byte`), then checks the greeting and echo.
async fn tls_session(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut s = connect(connector, addr).await.expect("handshake");
    s.write_all(b"hello\n").await.unwrap();
    assert_eq!(greeting(&mut s).await.unwrap(), "echo");
    let mut echoed = [0u8; 6];
    s.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"hello\n");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_frontend_terminates_and_relays_plaintext_and_the_plain_one_is_unchanged() {
    let (dir, pki, cert, key) = pki_with_lb_certificate();
    let echo = named("echo").await;
    let (_lb, tls, plain) = start(dir.path(), &config(&cert, &key, "", echo.addr, "none"));

    let connector = client(&pki.ca_file(), None);
    let mut s = tls_session(&connector, tls).await;
    echoes(&mut s, &vec![7u8; 300_000]).await;
    assert_eq!(peer_serial(&s), serial_text(1));

    let (name, mut p) = common::who(plain).await;
    assert_eq!(name, "echo");
    echoes(&mut p, b"plain still spliced").await;

    // A client speaking plain TCP to the TLS frontend gets no server.
    let mut raw = TcpStream::connect(tls).await.unwrap();
    raw.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    assert!(
        greeting(&mut raw).await.is_err(),
        "a non-TLS client was relayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_goes_to_the_server_after_the_handshake() {
    let (dir, pki, cert, key) = pki_with_lb_certificate();
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_lb, tls, _) = start(
        dir.path(),
        &config(&cert, &key, "", server.local_addr().unwrap(), "v1"),
    );
    let connector = client(&pki.ca_file(), None);
    let mut s = connect(&connector, tls).await.expect("handshake");
    s.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    let (mut upstream, _) = tokio::time::timeout(PATIENCE, server.accept())
        .await
        .unwrap()
        .unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"AMQP\x00\x00\x09\x01") {
        let mut chunk = [0u8; 256];
        let n = tokio::time::timeout(PATIENCE, upstream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "server side closed; got {got:?}");
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let local = s.get_ref().0.local_addr().unwrap();
    assert!(
        text.starts_with(&format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
            local.port(),
            tls.port()
        )),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_and_first_byte_timeouts_close_silent_clients() {
    let (dir, pki, cert, key) = pki_with_lb_certificate();
    let echo = named("echo").await;
    let text = config(
        &cert,
        &key,
        "timeout_handshake = \"300ms\"",
        echo.addr,
        "none",
    )
    .replace(
        "timeout_first_byte = \"5s\"",
        "timeout_first_byte = \"300ms\"",
    );
    let (_lb, tls, _) = start(dir.path(), &text);

    // No ClientHello: closed by timeout_handshake.
    let mut silent = TcpStream::connect(tls).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(PATIENCE, silent.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "a client without a handshake was answered");

    // A handshake, then nothing: closed by timeout_first_byte, no server.
    let connector = client(&pki.ca_file(), None);
    let mut quiet = connect(&connector, tls).await.expect("handshake");
    assert!(
        greeting(&mut quiet).await.is_err(),
        "relayed without a first byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_a_client_without_a_certificate_and_serves_one_with() {
    let (dir, pki, cert, key) = pki_with_lb_certificate();
    let echo = named("echo").await;
    let extra = format!(
        "client_ca = \"{}\"\nverify_client = \"required\"",
        pki.ca_file().display()
    );
    let (_lb, tls, _) = start(dir.path(), &config(&cert, &key, &extra, echo.addr, "none"));

    let with = client(&pki.ca_file(), Some(&pki.leaf(50)));
    let mut kept = tls_session(&with, tls).await;

    // TLS 1.3: the client's side of the handshake ends before the server
    // has judged its (missing) certificate, so the refusal arrives as the
    // first read's error.
    let without = client(&pki.ca_file(), None);
    let refused = match connect(&without, tls).await {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.write_all(b"hello\n").await;
            greeting(&mut s).await.is_err()
        }
    };
    assert!(refused, "a client without a certificate was relayed");

    echoes(&mut kept, b"still here").await;
    tls_session(&with, tls).await;
}

/// The serial a new handshake sees on `addr`.
async fn serial_now(connector: &tokio_rustls::TlsConnector, addr: SocketAddr) -> String {
    peer_serial(&connect(connector, addr).await.expect("handshake"))
}

/// The serial `openssl s_client` sees: the operator's own tool, not the
/// test's rustls client, says which certificate a new handshake gets
/// (scripts/install-deps installs openssl).
fn openssl_serial(addr: SocketAddr, ca: &Path) -> String {
    let shell = format!(
        "openssl s_client -connect {addr} -servername localhost -CAfile {} </dev/null 2>/dev/null | openssl x509 -noout -serial",
        ca.display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&shell)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh for `{shell}`: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("serial=")
        .unwrap_or_else(|| panic!("`{shell}` printed no serial: {text:?}"))
        .to_owned()
}

fn rotation_logged(lb: &mut Lb, result: &str) -> serde_json::Value {
    lb.wait_json(&format!("tls_rotation {result}"), |v| {
        v["event"] == "tls_rotation" && v["result"] == result
    })
}

/// What the admin API says of frontend `tls`'s certificate: `/status`'s
/// serial (as openssl prints it) and notAfter, and the expiry gauge's
/// serial label and value.
fn certificate_reported(admin: SocketAddr) -> (String, String, String, i64) {
    let status = admin_fetch(admin, "/status").unwrap().1;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let frontend = status["frontends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "tls")
        .unwrap_or_else(|| panic!("no frontend tls in {status}"));
    let tls = &frontend["tls"];
    assert!(
        status["frontends"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "plain" && f["tls"].is_null()),
        "the plain frontend has no certificate: {status}"
    );
    let openssl_style = |s: &str| s.replace(':', "").to_uppercase();
    let metrics = admin_fetch(admin, "/metrics").unwrap().1;
    let gauge: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("warren_lb_frontend_certificate_expiry_timestamp_seconds{"))
        .collect();
    assert_eq!(
        gauge.len(),
        1,
        "one expiry series per TLS frontend: {gauge:?}"
    );
    let (labels, value) = gauge[0].rsplit_once(' ').unwrap();
    let serial_label = labels
        .split("serial=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no serial label in {labels}"));
    assert!(labels.contains("frontend=\"tls\""), "{labels}");
    (
        openssl_style(tls["serial"].as_str().unwrap()),
        tls["not_after"].as_str().unwrap().to_owned(),
        openssl_style(serial_label),
        value.parse().unwrap(),
    )
}

/// `warren_lb_tls_rotations_total` by result: (ok, failed).
fn rotations_counted(admin: SocketAddr) -> (u64, u64) {
    let metrics = admin_fetch(admin, "/metrics").unwrap().1;
    let count = |result: &str| {
        let series = format!("warren_lb_tls_rotations_total{{result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
            .parse()
            .unwrap()
    };
    (count("ok"), count("failed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_certificate_serves_new_handshakes_and_established_sessions_go_on() {
    let (dir, pki, cert, key) = pki_with_lb_certificate();
    let echo = named("echo").await;
    let admin = free_port();
    let text = format!(
        "[admin]\nbind = \"{admin}\"\n{}",
        config(&cert, &key, "", echo.addr, "none")
    );
    let (mut lb, tls, _) = start(dir.path(), &text);
    let connector = client(&pki.ca_file(), None);
    let mut long = tls_session(&connector, tls).await;
    assert_eq!(peer_serial(&long), serial_text(1));
    assert_eq!(
        certificate_reported(admin),
        (
            serial_text(1),
            "2031-01-01T00:00:00Z".to_owned(),
            serial_text(1),
            Pki::not_after(1)
        ),
        "/status and /metrics name the certificate in service"
    );

    // Rotation from the files.
    pki.install("lb", &pki.leaf(2));
    let logged = rotation_logged(&mut lb, "ok");
    assert_eq!(logged["frontend"], "tls");
    assert_eq!(serial_now(&connector, tls).await, serial_text(2));
    assert_eq!(
        certificate_reported(admin),
        (
            serial_text(2),
            "2032-01-01T00:00:00Z".to_owned(),
            serial_text(2),
            Pki::not_after(2)
        ),
        "after the rotation, /status and /metrics name the new certificate"
    );
    echoes(&mut long, b"across the rotation").await;
    assert_eq!(
        openssl_serial(tls, &pki.ca_file()),
        serial_text(2),
        "openssl s_client"
    );

    // A bad change (a key that is not this certificate's) is refused and
    // logged once; the previous certificate keeps serving.
    write_atomically(&key, &pki.leaf(9).key);
    let refused = rotation_logged(&mut lb, "failed");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("does not match the certificate"),
        "{refused}"
    );
    assert_eq!(serial_now(&connector, tls).await, serial_text(2));
    assert_eq!(
        certificate_reported(admin).0,
        serial_text(2),
        "a refused rotation leaves the old certificate in /status"
    );
    assert_eq!(
        rotations_counted(admin),
        (1, 1),
        "one change loaded and one refused, each counted once"
    );
    // ... and a reload with it is refused as a whole.
    lb.signal("HUP");
    let reload = lb.wait_json("reload", |v| v["event"] == "reload");
    assert_eq!(reload["result"], "failed", "{reload}");
    assert_eq!(serial_now(&connector, tls).await, serial_text(2));

    // SIGHUP loads a good pair (at once, whatever the poll).
    pki.install("lb", &pki.leaf(3));
    lb.signal("HUP");
    let reload = lb.wait_json("reload", |v| v["event"] == "reload");
    assert_eq!(reload["result"], "ok", "{reload}");
    assert_eq!(serial_now(&connector, tls).await, serial_text(3));
    assert_eq!(
        certificate_reported(admin).2,
        serial_text(3),
        "the reloaded generation's certificate in /metrics"
    );
    echoes(&mut long, b"across the reload").await;
    assert_eq!(
        peer_serial(&long),
        serial_text(1),
        "the old session kept its handshake"
    );
}

/// `check-config` on a TLS frontend with `cert` and `key`: its stderr,
/// having failed.
fn check_config_refuses(dir: &Path, cert: &Path, key: &Path) -> String {
    let path = dir.join("check.toml");
    std::fs::write(
        &path,
        config(cert, key, "", "127.0.0.1:1".parse().unwrap(), "none"),
    )
    .unwrap();
    let out = lb().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn check_config_names_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.install("good", &pki.leaf(1));
    let (expired, expired_key) = pki.install("expired", &pki.expired(2));
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, pki.leaf(3).key).unwrap();
    let missing = dir.path().join("missing.crt");
    // root reads any file whatever its mode, so a directory stands for a
    // file that cannot be read.
    let unreadable = dir.path().join("a-directory.key");
    std::fs::create_dir(&unreadable).unwrap();

    let cases = [
        (
            &missing,
            &key,
            "frontend[tls].tls.cert",
            format!("{}: cannot read: No such file", missing.display()),
        ),
        (
            &cert,
            &unreadable,
            "frontend[tls].tls.key",
            format!("{}: cannot read:", unreadable.display()),
        ),
        (
            &cert,
            &other_key,
            "frontend[tls].tls.key",
            format!(
                "{}: the private key does not match the certificate in {}",
                other_key.display(),
                cert.display()
            ),
        ),
        (
            &cert,
            &cert,
            "frontend[tls].tls.key",
            format!(
                "{}: this is a certificate, not a private key",
                cert.display()
            ),
        ),
        (
            &expired,
            &expired_key,
            "frontend[tls].tls.cert",
            format!("{}: the certificate expired on", expired.display()),
        ),
        (
            &key,
            &key,
            "frontend[tls].tls.cert",
            format!("{}: no certificate found", key.display()),
        ),
    ];
    for (cert, key, at, message) in cases {
        let stderr = check_config_refuses(dir.path(), cert, key);
        assert!(
            stderr.contains(at) && stderr.contains(&message),
            "expected {at}: {message}; got:\n{stderr}"
        );
    }

    let path = dir.path().join("good.toml");
    std::fs::write(
        &path,
        config(&cert, &key, "", "127.0.0.1:1".parse().unwrap(), "none"),
    )
    .unwrap();
    let out = lb().arg("check-config").arg(&path).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_chain_out_of_order_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = Pki::new(&other_dir);
    let leaf = pki.leaf(1);
    // The leaf followed by a CA that did not sign it.
    let chain = format!(
        "{}{}",
        leaf.cert,
        std::fs::read_to_string(other.ca_file()).unwrap()
    );
    let cert = dir.path().join("chain.crt");
    let key = dir.path().join("chain.key");
    std::fs::write(&cert, chain).unwrap();
    std::fs::write(&key, &leaf.key).unwrap();
    let stderr = check_config_refuses(dir.path(), &cert, &key);
    assert!(
        stderr.contains("the chain is broken at certificate 1"),
        "{stderr}"
    );
}
