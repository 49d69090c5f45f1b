//! Probes against a real 3-node RabbitMQ cluster from `scripts/testbed`
//! (needs root and Debian's rabbitmq-server; run serially by nextest because
//! the test name starts with `real_`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use warren_health::probe::{self, ProbeError, RabbitCheck};

fn testbed_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/testbed")
}

fn testbed(args: &[&str]) -> std::process::Output {
    Command::new(testbed_script())
        .args(args)
        .output()
        .expect("cannot run scripts/testbed")
}

/// Runs `testbed down` when dropped, also when the test fails.
struct Testbed {
    dir: PathBuf,
    state: Value,
}

impl Testbed {
    fn up(extra: &[&str]) -> Testbed {
        let dir = std::env::temp_dir().join(format!("warren-health-tb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap().to_string();
        let mut tb = Testbed {
            dir,
            state: Value::Null,
        };
        let mut args = vec!["up", "--dir", &d];
        args.extend_from_slice(extra);
        let out = testbed(&args);
        assert!(
            out.status.success(),
            "testbed up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = std::fs::read_to_string(tb.dir.join("testbed.json")).unwrap();
        tb.state = serde_json::from_str(&json).unwrap();
        tb
    }

    fn node(&self, i: usize) -> &Value {
        &self.state["nodes"][i - 1]
    }

    fn amqp_addr(&self, i: usize) -> SocketAddr {
        let n = self.node(i);
        format!("{}:{}", n["ip"].as_str().unwrap(), n["amqp_port"])
            .parse()
            .unwrap()
    }

    fn rabbit_check(&self, i: usize) -> RabbitCheck {
        let n = self.node(i);
        RabbitCheck {
            base_url: format!("http://{}:{}", n["ip"].as_str().unwrap(), n["mgmt_port"]),
            username: self.state["user"].as_str().unwrap().into(),
            password: self.state["password"].as_str().unwrap().into(),
        }
    }

    fn fault(&self, what: &str, i: usize) {
        let out = testbed(&[
            what,
            "--dir",
            self.dir.to_str().unwrap(),
            "--node",
            &i.to_string(),
        ]);
        assert!(
            out.status.success(),
            "testbed {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let out = testbed(&["down", "--dir", self.dir.to_str().unwrap()]);
        if !out.status.success() {
            eprintln!(
                "testbed down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const T: Duration = Duration::from_secs(2);

/// A node cut off from its peers keeps accepting AMQP connections (an `amqp`
/// check still passes), but the `rabbitmq` check marks it ineligible, while
/// the majority side stays eligible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rabbitmq_check_rejects_minority_node() {
    rejects_minority_node("3.10").await;
}

/// The same on RabbitMQ 4.0 (trixie's 4.0.5, Mnesia: the 4.0 default), where
/// the check reads what it knows of the 4.x line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rabbitmq_check_rejects_minority_node_on_4_0() {
    rejects_minority_node("4.0").await;
}

async fn rejects_minority_node(version: &str) {
    assert!(
        testbed_script().exists(),
        "scripts/testbed is missing at {}",
        testbed_script().display()
    );
    // `ignore`: the cut-off node keeps running as its own partition (what a
    // frozen-and-resumed node can do), instead of pausing.
    let tb = Testbed::up(&[
        "--version",
        version,
        "--partition-handling",
        "ignore",
        "--net-ticktime",
        "10",
    ]);
    let reported = tb.state["version"].as_str().unwrap_or_default();
    assert!(
        reported.starts_with(&format!("{version}.")),
        "testbed --version {version} runs RabbitMQ {reported:?}"
    );

    for i in 1..=3 {
        probe::amqp(tb.amqp_addr(i), T)
            .await
            .unwrap_or_else(|e| panic!("amqp check of node {i}: {e}"));
        // A node lists its `partitions` only from its first statistics on
        // (about 5 s after it starts); until then the check refuses it.
        wait_eligible(&tb, i, 3).await;
        let r = probe::rabbitmq(&tb.rabbit_check(i), T)
            .await
            .unwrap_or_else(|e| panic!("rabbitmq check of node {i}: {e}"));
        assert_eq!(r.node, tb.node(i)["name"].as_str().unwrap());
    }

    // A frozen node (SIGSTOP): the kernel still completes TCP handshakes, but
    // nothing answers. Both checks must fail by timeout. Kept short (well under
    // net_ticktime) so the cluster does not notice.
    tb.fault("freeze", 3);
    let short = Duration::from_millis(1000);
    let amqp_frozen = probe::amqp(tb.amqp_addr(3), short).await;
    let rabbit_frozen = probe::rabbitmq(&tb.rabbit_check(3), short).await;
    tb.fault("thaw", 3);
    eprintln!("frozen node 3: amqp {amqp_frozen:?}, rabbitmq {rabbit_frozen:?}");
    assert!(
        matches!(
            amqp_frozen,
            Err(ProbeError::L6Timeout | ProbeError::L4Timeout)
        ),
        "amqp check of a frozen node: {amqp_frozen:?}"
    );
    assert!(
        matches!(&rabbit_frozen, Err(e) if e.is_timeout()),
        "rabbitmq check of a frozen node: {rabbit_frozen:?}"
    );
    // Back to a whole cluster before the next fault.
    wait_eligible(&tb, 3, 3).await;

    tb.fault("partition", 1);

    // Peers notice after net_ticktime (10 s); allow a generous deadline.
    // Meanwhile the cut-off node's management API may stall on calls to its
    // unreachable peers: the check then fails by timeout (ineligible too), and
    // we wait for the definitive cluster-level reason.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = Vec::new();
    let reason = loop {
        let res = probe::rabbitmq(&tb.rabbit_check(1), T).await;
        if let Err(e @ ProbeError::Rabbit(_)) = &res {
            break e.clone();
        }
        let line = match &res {
            Ok(r) => format!("eligible ({} of {} running)", r.running.len(), r.total),
            Err(e) => e.to_string(),
        };
        if seen.last() != Some(&line) {
            eprintln!("node 1: {line}");
            seen.push(line);
        }
        assert!(
            Instant::now() < deadline,
            "node 1 never reported a cluster-level reason; saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("node 1 after partition: {reason}");
    let text = reason.to_string();
    assert!(
        text.contains("no majority") || text.contains("reports partition"),
        "unexpected reason: {text}"
    );

    // The nasty case: it still speaks AMQP, so an amqp check alone would route
    // clients into the minority.
    probe::amqp(tb.amqp_addr(1), T)
        .await
        .expect("the cut-off node should still accept AMQP connections");

    // The majority side stays (or becomes again) eligible and sees 2 of 3.
    wait_eligible(&tb, 2, 2).await;
}

/// Polls node `i`'s rabbitmq check until it is eligible and sees `running`
/// of 3 nodes running (generous deadline).
async fn wait_eligible(tb: &Testbed, i: usize, running: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match probe::rabbitmq(&tb.rabbit_check(i), T).await {
            Ok(r) if r.running.len() == running && r.total == 3 => return,
            other if Instant::now() >= deadline => {
                panic!("node {i} not eligible with {running} of 3 running: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
