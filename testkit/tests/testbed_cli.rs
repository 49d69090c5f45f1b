//! `scripts/testbed up` refuses a bed it cannot build before it creates
//! anything, naming what was wrong and what it supports.  Root only (the
//! script refuses other users first); nothing here starts a node.  The
//! version arguments are [`Broker::line`]'s, so a line the script does not
//! know fails here with the script's own words.

use std::path::Path;
use std::process::{Command, Output};

use warren_testkit::{Broker, Testbed};

fn up(dir: &Path, args: &[&str], rootfs_cache: Option<&Path>) -> Output {
    let mut cmd = Command::new(Testbed::script());
    cmd.arg("up").arg("--dir").arg(dir).args(args);
    if let Some(cache) = rootfs_cache {
        cmd.env("WARREN_ROOTFS_CACHE", cache);
    }
    cmd.output().expect("run scripts/testbed")
}

fn refused(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a refusal, got success: {err}"
    );
    err
}

/// `up args` is refused with a message containing `expected`, and the
/// bed's directory was never created.
fn refused_before_creating_anything(args: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let bed = dir.path().join("bed");
    let err = refused(&up(&bed, args, None));
    assert!(err.contains(expected), "{err}");
    assert!(!bed.exists(), "a refused up created {}", bed.display());
}

#[test]
fn testbed_refuses_an_unknown_version_naming_the_supported_ones() {
    refused_before_creating_anything(
        &["--version", "3.13"],
        "--version 3.13: expected one of 3.10, 4.0",
    );
}

#[test]
fn testbed_refuses_mirrored_queues_on_4_0_before_creating_anything() {
    refused_before_creating_anything(
        &["--version", Broker::V4_0.line(), "--mode", "mirrored"],
        "--mode mirrored --version 4.0: mirrored needs 3.x; 4.0 supports quorum only",
    );
}

#[test]
fn testbed_refuses_khepri_on_3_10_before_creating_anything() {
    refused_before_creating_anything(
        &["--version", Broker::V3_10.line(), "--khepri"],
        "--khepri --version 3.10: the khepri_db feature flag needs 4.0",
    );
}

#[test]
fn testbed_refuses_a_cached_root_filesystem_that_is_not_rabbitmq_4_0() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let root = cache.join("trixie-rabbitmq-4.0");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/warren-rabbitmq-version"), "3.13.7-1\n").unwrap();
    let bed = dir.path().join("bed");
    let err = refused(&up(&bed, &["--version", Broker::V4_0.line()], Some(&cache)));
    assert!(
        err.contains(&format!(
            "--version 4.0: {} has rabbitmq-server 3.13.7-1, expected 4.0.x; remove that directory",
            root.display()
        )),
        "{err}"
    );
    assert!(
        !bed.join("testbed.json").exists(),
        "a refused up wrote a testbed.json"
    );
}
