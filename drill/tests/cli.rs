//! Bad input is refused with a clear message and exit code 2 (no cluster needed).

use std::process::Command;

fn drill() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren-drill"))
}

#[test]
fn unknown_target_is_refused() {
    let out = drill()
        .args(["run", "--endpoint", "127.0.0.1:1", "--target", "mars"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'mars'"), "{err}");
    assert!(err.contains("local") && err.contains("compose"), "{err}");
}

#[test]
fn compose_needs_project_and_mgmt() {
    let out = drill()
        .args(["run", "--endpoint", "127.0.0.1:1", "--target", "compose"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--mgmt"), "{err}");
    let out = drill()
        .args([
            "run",
            "--endpoint",
            "127.0.0.1:1",
            "--target",
            "compose",
            "--mgmt",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--project"), "{err}");
}

#[test]
fn local_without_testbed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = drill()
        .args([
            "run",
            "--endpoint",
            "127.0.0.1:1",
            "--target",
            "local",
            "--testbed-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the test bed up"), "{err}");
}

/// A run against the ssh target whose endpoints answer nothing.
const SSH_RUN: &[&str] = &[
    "run",
    "--endpoint",
    "127.0.0.1:1",
    "--target",
    "ssh",
    "--mgmt",
    "http://127.0.0.1:1",
];

#[test]
fn ssh_needs_hosts() {
    let out = drill().args(SSH_RUN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ssh-host"));
}

/// The ssh options are checked before anything runs, with what was expected.
#[test]
fn bad_ssh_options_are_refused() {
    let run = |extra: &[&str]| {
        let out = drill()
            .args(SSH_RUN)
            .args(["--ssh-host", "mq1=ops@10.0.0.11"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
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
    let out = drill()
        .args([
            "run",
            "--endpoint",
            "127.0.0.1:1",
            "--ssh-option",
            "Port=22",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("--ssh-option is only used with --target ssh"),
        "{e}"
    );
    let out = drill()
        .args([
            "run",
            "--endpoint",
            "127.0.0.1:1",
            "--fault",
            "none",
            "--json",
            "/nonexistent-dir/report.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("--json /nonexistent-dir/report.json") && e.contains("does not exist"),
        "{e}"
    );
}
