//! The `rabbitmq` check of nodes that share one IP, each on its own
//! management port (`check_port`), against a real 3-node RabbitMQ cluster
//! (`scripts/testbed`).
//!
//! warren-lb sees the cluster the way it sees `rabbitN@localhost` nodes on
//! one host: every node on 127.0.0.1, AMQP and management on ports of its
//! own.  socat processes in the root namespace relay each of those ports to
//! the node's real port in its namespace, so killing a node is still a real
//! fault.  Needs root and Debian's rabbitmq-server.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use warren_lb::runtime;

mod common;
use common::config::rabbitmq_check;
use common::eventually_within;
use warren_testkit::{Broker, Testbed};

const PATIENCE: Duration = Duration::from_secs(120);

/// socat relays from 127.0.0.1 ports to the nodes; each relay (with the
/// children it forks per connection) is its own process group, ended on
/// drop, also when the test fails.
struct Relays(Vec<Child>);

impl Relays {
    /// Listens on a free 127.0.0.1 port and relays it to `to`.
    fn add(&mut self, to: SocketAddr) -> SocketAddr {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new("socat")
                .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"))
                .arg(format!("TCP:{to}")),
            0,
        )
        .spawn()
        .expect("socat is installed");
        self.0.push(child);
        let at: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(at).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "socat never listened on {at}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        at
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
    }
}

/// The lb config of the shipped deployments' `rabbitmq` check, with every
/// server on 127.0.0.1 and its own management port.
fn one_host_config(user: &str, password: &str, servers: &[(SocketAddr, SocketAddr)]) -> String {
    let mut c = format!(
        r#"
[[frontend]]
name = "amqp"
bind = "127.0.0.1:0"
backend = "rabbitmq"
timeout_first_byte = "5s"

[[backend]]
name = "rabbitmq"
balance = "first"
{}"#,
        rabbitmq_check(user, password)
    );
    for (i, (amqp, management)) in servers.iter().enumerate() {
        let n = i + 1;
        let role = if n == 1 { "primary" } else { "backup" };
        c.push_str(&format!(
            "\n[[backend.server]]\nname = \"rabbit{n}\"\naddress = \"{amqp}\"\ncheck_port = {}\nrole = \"{role}\"\n",
            management.port()
        ));
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rabbitmq_checks_of_nodes_sharing_one_ip_each_reach_their_own_management_port() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warren_lb=debug")
        .with_test_writer()
        .try_init();
    let tb = Testbed::up(Broker::V3_10, &[]);
    let mut relays = Relays(Vec::new());
    let mut servers = Vec::new();
    for n in 1..=3 {
        let amqp = relays.add(tb.node(n).amqp_addr());
        let management = relays.add(tb.node(n).management_addr());
        servers.push((amqp, management));
    }
    assert!(
        servers.iter().all(|(a, m)| a.ip() == m.ip()),
        "one IP for every node and port"
    );
    let text = one_host_config(&tb.state().user, &tb.state().password, &servers);
    let config = warren_lb::config::parse(&text).unwrap_or_else(|p| panic!("{p:#?}\n{text}"));
    let lb = runtime::start(config).await.unwrap();
    let backend = lb.backends()[0].clone();
    let node = |n: usize| tb.node(n).name.clone();
    let reported = |i: usize| {
        backend.servers[i]
            .report()
            .0
            .as_ref()
            .map(|r| r.node.clone())
    };

    // Each server's check reached its own node: the management API on the
    // server's check_port names that node.
    eventually_within(PATIENCE, "every server to report its own node", || {
        (1..=3).all(|n| reported(n - 1) == Some(node(n)))
    })
    .await;
    assert!(backend.servers.iter().all(|s| s.is_eligible()));
    let front = lb.listening[0];
    warren_health::probe::amqp(front, Duration::from_secs(5))
        .await
        .expect("AMQP through warren-lb to rabbit1");

    // The fault: rabbit2 is killed; its management API stops answering.
    tb.on_node("kill", 2);
    let management2 = tb.node(2).management_addr();
    assert!(
        TcpStream::connect_timeout(&management2, Duration::from_secs(2)).is_err(),
        "rabbit2's management API still answers after the kill"
    );
    eventually_within(PATIENCE, "rabbit2 to be DOWN", || {
        !backend.servers[1].is_up()
    })
    .await;
    // Only rabbit2: the others' checks go to their own ports and pass.
    eventually_within(
        PATIENCE,
        "rabbit1 and rabbit3 to see 2 of 3 running",
        || {
            [0, 2].iter().all(|&i| {
                backend.servers[i]
                    .report()
                    .0
                    .as_ref()
                    .is_some_and(|r| r.running.len() == 2)
            })
        },
    )
    .await;
    assert!(
        backend.servers[0].is_eligible() && backend.servers[2].is_eligible(),
        "rabbit1: {:?}, rabbit3: {:?}",
        backend.servers[0].last_check(),
        backend.servers[2].last_check()
    );
    warren_health::probe::amqp(front, Duration::from_secs(5))
        .await
        .expect("AMQP through warren-lb after rabbit2 died");
    lb.shutdown().await;
    drop(relays);
}
