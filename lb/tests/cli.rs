//! The `warren-lb` command line: check-config like `haproxy -c`.

use std::process::Command;

fn lb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren-lb"))
}

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    std::fs::write(
        &file,
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:5672\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"rabbit1:5672\"\n",
    )
    .unwrap();
    let out = lb().arg("check-config").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn check_config_lists_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    std::fs::write(
        &file,
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:5672\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[backend.check]\nrise = 0\n[[backend.server]]\nname = \"s\"\naddress = \"rabbit1\"\n[[backend.server]]\nname = \"s\"\naddress = \"10.0.0.1:5672\"\n",
    )
    .unwrap();
    let out = lb().arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    assert!(
        err.contains(&format!(
            "{f}:8: backend[b].check.rise: 0: expected an integer from 1 to 1000"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:11: backend[b].server[s].address")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:13: backend[b].server[s].name: duplicate")),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn a_missing_or_malformed_file_is_a_clear_error_not_a_panic() {
    let out = lb()
        .arg("check-config")
        .arg("/nonexistent/lb.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lb.toml: cannot read the file")
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.toml");
    std::fs::write(&file, "[[frontend]\n").unwrap();
    let out = lb().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:1", file.display())));
}
