//! Probes against a real 3-node RabbitMQ cluster from `scripts/testbed`
//! (needs root and Debian's rabbitmq-server; run serially by nextest because
//! the test name starts with `real_`).

use std::time::{Duration, Instant};

use warren_health::probe::{self, ProbeError, RabbitCheck};
use warren_testkit::{Broker, Testbed};

/// The `rabbitmq` check of node `i` with the bed's administrator.
fn rabbit_check(tb: &Testbed, i: usize) -> RabbitCheck {
    RabbitCheck {
        base_url: tb.node(i).management_url(),
        username: tb.state().user.clone(),
        password: tb.state().password.clone(),
        tls: None,
    }
}

const T: Duration = Duration::from_secs(2);

/// A node cut off from its peers keeps accepting AMQP connections (an `amqp`
/// check still passes), but the `rabbitmq` check marks it ineligible, while
/// the majority side stays eligible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rabbitmq_check_rejects_minority_node() {
    rejects_minority_node(Broker::V3_10).await;
}

/// The same on RabbitMQ 4.0 (trixie's 4.0.5, Mnesia: the 4.0 default), where
/// the check reads what it knows of the 4.x line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rabbitmq_check_rejects_minority_node_on_4_0() {
    rejects_minority_node(Broker::V4_0).await;
}

async fn rejects_minority_node(broker: Broker) {
    // `ignore`: the cut-off node keeps running as its own partition (what a
    // frozen-and-resumed node can do), instead of pausing.
    let tb = Testbed::up(
        broker,
        &["--partition-handling", "ignore", "--net-ticktime", "10"],
    );

    for i in 1..=3 {
        probe::amqp(tb.node(i).amqp_addr(), T)
            .await
            .unwrap_or_else(|e| panic!("amqp check of node {i}: {e}"));
        // A node lists its `partitions` only from its first statistics on
        // (about 5 s after it starts); until then the check refuses it.
        wait_eligible(&tb, i, 3).await;
        let r = probe::rabbitmq(&rabbit_check(&tb, i), T)
            .await
            .unwrap_or_else(|e| panic!("rabbitmq check of node {i}: {e}"));
        assert_eq!(r.node, tb.node(i).name);
    }

    // A frozen node (SIGSTOP): the kernel still completes TCP handshakes, but
    // nothing answers. Both checks must fail by timeout. Kept short (well under
    // net_ticktime) so the cluster does not notice.
    tb.on_node("freeze", 3);
    let short = Duration::from_millis(1000);
    let amqp_frozen = probe::amqp(tb.node(3).amqp_addr(), short).await;
    let rabbit_frozen = probe::rabbitmq(&rabbit_check(&tb, 3), short).await;
    tb.on_node("thaw", 3);
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

    tb.on_node("partition", 1);

    // Peers notice after net_ticktime (10 s); allow a generous deadline.
    // Meanwhile the cut-off node's management API may stall on calls to its
    // unreachable peers: the check then fails by timeout (ineligible too), and
    // we wait for the definitive cluster-level reason.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = Vec::new();
    let reason = loop {
        let res = probe::rabbitmq(&rabbit_check(&tb, 1), T).await;
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
    probe::amqp(tb.node(1).amqp_addr(), T)
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
        match probe::rabbitmq(&rabbit_check(tb, i), T).await {
            Ok(r) if r.running.len() == running && r.total == 3 => return,
            other if Instant::now() >= deadline => {
                panic!("node {i} not eligible with {running} of 3 running: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
