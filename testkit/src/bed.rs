//! A running bed: `scripts/testbed up` on creation, `down` on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Broker, CertKind, Node, State};

/// A running test bed; `scripts/testbed down` on drop, also when the test
/// panics. Every method panics with the script's own message when the
/// script fails: a bed that cannot do what a test asks ends the test.
pub struct Testbed {
    dir: tempfile::TempDir,
    state: State,
}

impl Testbed {
    /// A cluster of `broker`'s line (`up --version`), with `args` for
    /// everything else `up` takes (`--mode`, `--nodes`, `--conf-line`, ...);
    /// checks that the nodes really run that line.
    pub fn up(broker: Broker, args: &[&str]) -> Testbed {
        let script = Testbed::script();
        assert!(
            script.exists(),
            "scripts/testbed is missing at {}",
            script.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("warren-testbed")
            .tempdir()
            .expect("a temporary directory for the test bed");
        let mut args_with_line = vec!["--version", broker.line()];
        args_with_line.extend_from_slice(args);
        // A failed `up` has cleaned up after itself; after a good one,
        // `down` is owed even if its output does not parse.
        let out = run(&script, "up", dir.path(), &args_with_line);
        let state = match State::parse(&out) {
            Ok(state) => state,
            Err(e) => {
                down(dir.path());
                panic!("testbed up: {e}");
            }
        };
        let bed = Testbed { dir, state };
        let reported = bed.version();
        assert!(
            reported.starts_with(&format!("{}.", broker.line())),
            "asked for RabbitMQ {}, the broker reports {reported:?}",
            broker.line()
        );
        bed
    }

    /// The `scripts/testbed` of this checkout (the drill tests hand it to
    /// warren-drill, or wrap it).
    pub fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/testbed")
    }

    /// The bed's directory (holds testbed.json; free for the test's own
    /// files, which go when the bed does).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What `up` recorded: credentials, addresses, the broker's version.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The version the broker reports (e.g. `3.10.8`).
    pub fn version(&self) -> &str {
        // `up` records it before it prints the state it returns.
        self.state.version.as_deref().unwrap_or_default()
    }

    /// Node `n` (1-based, as `--node` counts).
    pub fn node(&self, n: usize) -> &Node {
        self.state
            .nodes
            .get(n.wrapping_sub(1))
            .unwrap_or_else(|| panic!("node {n}: the bed has 1..{}", self.state.nodes.len()))
    }

    /// `testbed kill|stop|start|freeze|thaw|partition|heal --node n`; returns
    /// once the script says the command took effect.
    pub fn on_node(&self, command: &str, n: usize) {
        self.run(command, &["--node", &n.to_string()]);
    }

    /// `testbed tls-cert --node n --kind KIND` (an `up --tls` bed): node
    /// `n` serves a certificate of that kind on its AMQPS and HTTPS
    /// listeners once this returns (the script checks with openssl).
    pub fn tls_cert(&self, n: usize, kind: CertKind) {
        self.run(
            "tls-cert",
            &["--node", &n.to_string(), "--kind", kind.as_arg()],
        );
    }

    /// `testbed status`: the state with each node's own view of the cluster.
    pub fn status(&self) -> State {
        State::parse(&self.run("status", &[])).unwrap_or_else(|e| panic!("testbed status: {e}"))
    }

    fn run(&self, command: &str, args: &[&str]) -> Vec<u8> {
        run(&Testbed::script(), command, self.dir(), args)
    }
}

/// `script COMMAND --dir DIR ARGS`; its stdout, or a panic with its stderr.
fn run(script: &Path, command: &str, dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(script)
        .arg(command)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "testbed {command} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Drop for Testbed {
    fn drop(&mut self) {
        down(self.dir.path());
    }
}

/// `script down --dir DIR`, reporting (not panicking) when it fails: it runs
/// from `drop`, also while a failed test unwinds.
fn down(dir: &Path) {
    match Command::new(Testbed::script())
        .arg("down")
        .arg("--dir")
        .arg(dir)
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "testbed down failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("cannot run testbed down: {e}"),
    }
}
