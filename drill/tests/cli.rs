//! Bad input is refused with a clear message and exit code 2 (no cluster needed).

use std::process::Command;

/// Runs `warren-drill ARGS`, asserts that it refused them (exit code 2),
/// and returns what it said on stderr.
fn refused(args: Vec<String>) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_warren-drill"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "exit code for {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A run whose endpoint answers nothing, before the options under test.
const RUN: [&str; 3] = ["run", "--endpoint", "127.0.0.1:1"];

fn run_with(extra: &[&str]) -> Vec<String> {
    RUN.iter().chain(extra).map(|s| s.to_string()).collect()
}

#[test]
fn unknown_target_is_refused() {
    let err = refused(run_with(&["--target", "mars"]));
    assert!(err.contains("invalid value 'mars'"), "{err}");
    assert!(err.contains("local") && err.contains("compose"), "{err}");
}

#[test]
fn compose_needs_project_and_mgmt() {
    let err = refused(run_with(&["--target", "compose"]));
    assert!(err.contains("--mgmt"), "{err}");
    let err = refused(run_with(&[
        "--target",
        "compose",
        "--mgmt",
        "http://127.0.0.1:1",
    ]));
    assert!(err.contains("--project"), "{err}");
}

#[test]
fn local_without_testbed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    let err = refused(run_with(&["--target", "local", "--testbed-dir", dir]));
    assert!(err.contains("is the test bed up"), "{err}");
}

/// The ssh target's options, with endpoints that answer nothing.
const SSH: [&str; 4] = ["--target", "ssh", "--mgmt", "http://127.0.0.1:1"];

#[test]
fn ssh_needs_hosts() {
    let err = refused(run_with(&SSH));
    assert!(err.contains("--ssh-host"), "{err}");
}

/// The ssh options are checked before anything runs, with what was expected.
#[test]
fn bad_ssh_options_are_refused() {
    let run = |extra: &[&str]| {
        let mut args = run_with(&SSH);
        args.extend(["--ssh-host", "mq1=ops@10.0.0.11"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        refused(args)
    };
    let e = run(&["--ssh-identity", "/nonexistent/id_ed25519"]);
    assert!(
        e.contains("--ssh-identity /nonexistent/id_ed25519") && e.contains("-i FILE"),
        "{e}"
    );
    let e = run(&["--ssh-known-hosts", "/nonexistent/kh"]);
    assert!(
        e.contains("--ssh-known-hosts") && e.contains("UserKnownHostsFile"),
        "{e}"
    );
    let e = run(&["--ssh-option", "StrictHostKeyChecking"]);
    assert!(e.contains("--ssh-option") && e.contains("KEY=VALUE"), "{e}");
    let e = run(&["--ssh-host", "mq1=ops@10.0.0.12"]);
    assert!(e.contains("already given"), "{e}");
}

#[test]
fn ssh_options_need_the_ssh_target_and_reports_need_a_directory() {
    let e = refused(run_with(&["--ssh-option", "Port=22"]));
    assert!(
        e.contains("--ssh-option is only used with --target ssh"),
        "{e}"
    );
    let e = refused(run_with(&[
        "--fault",
        "none",
        "--json",
        "/nonexistent-dir/report.json",
    ]));
    assert!(
        e.contains("--json /nonexistent-dir/report.json") && e.contains("does not exist"),
        "{e}"
    );
}

/// The --tls files are read before anything connects: each problem names
/// the flag, the file and what was expected.
#[test]
fn bad_tls_input_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ca.example".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(&ca, cert.pem()).unwrap();
    let ca = ca.to_str().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a certificate\n").unwrap();
    let text = text.to_str().unwrap();
    let tls = |extra: &[&str]| {
        let mut args = run_with(&["--fault", "none", "--tls"]);
        args.extend(extra.iter().map(|s| s.to_string()));
        refused(args)
    };

    let e = tls(&[]);
    assert!(e.contains("--tls needs --tls-ca FILE"), "{e}");
    let e = tls(&["--tls-ca", "/nonexistent/ca.pem"]);
    assert!(
        e.contains("--tls-ca /nonexistent/ca.pem: cannot read"),
        "{e}"
    );
    let e = tls(&["--tls-ca", text]);
    assert!(
        e.contains(&format!("--tls-ca {text}: no certificate found"))
            && e.contains("BEGIN CERTIFICATE"),
        "{e}"
    );
    let e = tls(&["--tls-ca", ca, "--tls-cert", ca]);
    assert!(e.contains("--tls-key <FILE>"), "{e}");
    let e = tls(&["--tls-ca", ca, "--tls-cert", ca, "--tls-key", ca]);
    assert!(
        e.contains(&format!("--tls-key {ca}: no private key found")),
        "{e}"
    );
    let e = tls(&["--tls-ca", ca, "--tls-server-name", "not a name"]);
    assert!(e.contains("not a DNS name or IP address"), "{e}");
    let e = refused(run_with(&["--fault", "none", "--tls-ca", ca]));
    assert!(e.contains("--tls"), "{e}");
}
