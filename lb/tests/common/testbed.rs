//! The real RabbitMQ cluster of `scripts/testbed`, for the `real_` tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A broker line `scripts/testbed up --version` runs: Debian bookworm's
/// 3.10 (mirrored or quorum queues) or trixie's 4.0 (quorum only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    V3_10,
    V4_0,
}

impl Broker {
    /// The `--version` value, also the prefix of the version the broker
    /// reports.
    pub fn line(self) -> &'static str {
        match self {
            Broker::V3_10 => "3.10",
            Broker::V4_0 => "4.0",
        }
    }

    /// The replicated-queue mode of the line's tests: classic mirrored
    /// queues where they exist (3.x), quorum queues on 4.0.
    pub fn replicated_mode(self) -> &'static str {
        match self {
            Broker::V3_10 => "mirrored",
            Broker::V4_0 => "quorum",
        }
    }
}

/// A running testbed; `down` on drop, also when the test panics.
pub struct Testbed {
    dir: tempfile::TempDir,
    /// What `up` printed (user, password, nodes with ip and ports).
    pub state: Value,
}

impl Testbed {
    /// A 3.10 cluster (`up` with `args`).
    pub fn up(args: &[&str]) -> Testbed {
        Testbed::up_on(Broker::V3_10, args)
    }

    /// A cluster of `broker`'s line; checks that the nodes really run it.
    pub fn up_on(broker: Broker, args: &[&str]) -> Testbed {
        let dir = tempfile::tempdir().unwrap();
        let mut tb = Testbed {
            dir,
            state: Value::Null,
        };
        let args: Vec<&str> = ["--version", broker.line()]
            .iter()
            .chain(args)
            .copied()
            .collect();
        let out = tb.cmd("up", &args);
        tb.state = serde_json::from_slice(&out).expect("testbed up prints its state");
        let reported = tb.field("version");
        assert!(
            reported.starts_with(&format!("{}.", broker.line())),
            "asked for RabbitMQ {}, the broker reports {reported}",
            broker.line()
        );
        tb
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/testbed")
    }

    pub fn cmd(&self, sub: &str, args: &[&str]) -> Vec<u8> {
        let out = Command::new(Self::script())
            .arg(sub)
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run scripts/testbed");
        assert!(
            out.status.success(),
            "testbed {sub} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `testbed kill|stop|start|freeze|thaw|... --node n`.
    pub fn node(&self, sub: &str, n: usize) {
        self.cmd(sub, &["--node", &n.to_string()]);
    }

    /// A top-level string of the state (`user`, `password`, `host_ip`).
    pub fn field(&self, key: &str) -> String {
        self.state[key].as_str().unwrap().to_owned()
    }

    /// Node `n`'s address (1-based).
    pub fn ip(&self, n: usize) -> String {
        self.state["nodes"][n - 1]["ip"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("down")
            .arg("--dir")
            .arg(self.dir.path())
            .status();
    }
}
