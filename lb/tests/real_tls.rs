//! TLS termination in front of a real RabbitMQ node (`scripts/testbed
//! --nodes 1`): a rustls client's AMQP protocol header goes through a
//! `warren-lb` process that terminates TLS, and the node answers with
//! Connection.Start over the same TLS session.
//!
//! Needs root (network namespaces) and Debian's rabbitmq-server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_testkit::{Broker, Testbed};

mod common;
use common::process::Lb;
use common::tls::{client, connect, peer_serial, serial_text, terminating_config, Pki};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_amqp_handshake_over_tls_through_warren_lb() {
    let tb = Testbed::up(Broker::V3_10, &["--nodes", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.install("lb", &pki.leaf(16));
    let path = dir.path().join("lb.toml");
    std::fs::write(
        &path,
        terminating_config("amqps", &cert, &key, tb.node(1).amqp_addr()),
    )
    .unwrap();
    let mut lb = Lb::start(&path, "json");
    let amqps = lb.frontend("amqps");

    let mut s = connect(&client(&pki.ca_file(), None), amqps)
        .await
        .expect("TLS handshake with warren-lb");
    assert_eq!(peer_serial(&s), serial_text(16));
    s.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    // Connection.Start: a method frame (type 1) on channel 0, class 10,
    // method 10.
    let mut head = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(60), s.read_exact(&mut head))
        .await
        .expect("Connection.Start in time")
        .expect("the node answered through the TLS session");
    assert_eq!(head[0], 1, "method frame: {head:?}");
    assert_eq!(&head[1..3], &[0, 0], "channel 0: {head:?}");
    assert_eq!(&head[7..11], &[0, 10, 0, 10], "Connection.Start: {head:?}");
}
