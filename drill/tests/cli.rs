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

#[test]
fn ssh_needs_hosts() {
    let out = drill()
        .args([
            "run",
            "--endpoint",
            "127.0.0.1:1",
            "--target",
            "ssh",
            "--mgmt",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ssh-host"));
}
