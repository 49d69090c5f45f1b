//! A `rabbitmq` check whose management API times out while the node's
//! AMQP port answers is "no news": the server keeps its health (what a
//! healthy node looks like while a peer is frozen).  A node that answers
//! neither (the frozen one) fails as before.  The real-cluster version is
//! `real_cluster.rs::real_frozen_and_resumed_primary_...`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::config::one_backend;
use common::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use warren_lb::runtime;

/// A management API that accepts and never answers; counts connections.
async fn hanging_management() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (addr, asked)
}

/// An AMQP port that answers the protocol header with Connection.Start
/// (`answers`), or accepts and stays silent like a frozen node.
async fn amqp_port(answers: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            if answers {
                tokio::spawn(async move {
                    let mut header = [0u8; 8];
                    if s.read_exact(&mut header).await.is_ok() {
                        let _ = s.write_all(&common::connection_start()).await;
                    }
                    let _ = s.read(&mut header).await;
                });
            } else {
                held.push(s);
            }
        }
    });
    addr
}

#[tokio::test]
async fn management_timeout_with_amqp_answering_keeps_health_and_a_silent_node_fails() {
    let (management, asked) = hanging_management().await;
    let (healthy, frozen) = (amqp_port(true).await, amqp_port(false).await);
    let config = one_backend()
        .check(&format!(
            "type = \"rabbitmq\"\nport = {}\nusername = \"u\"\npassword = \"p\"\ntimeout = \"300ms\"",
            management.port()
        ))
        .server("healthy", healthy)
        .server("frozen", frozen)
        .parse();
    let lb = runtime::start(config).await.unwrap();
    let servers = lb.backends()[0].servers.clone();

    eventually("the silent node to be marked DOWN", || !servers[1].is_up()).await;
    let reason = servers[1].last_check().unwrap();
    assert!(reason.contains("Layer7 timeout"), "{reason}");
    assert!(!reason.contains("no news"), "{reason}");

    // Many timed-out management requests later, the node whose AMQP
    // answers is still UP, and none of them counted as a failure.
    eventually("ten management requests", || {
        asked.load(Ordering::SeqCst) >= 10
    })
    .await;
    let reason = servers[0].last_check().unwrap();
    assert!(reason.contains("AMQP answers: no news"), "{reason}");
    assert!(servers[0].is_up());
    assert!(servers[0].no_news());
    assert_eq!(
        servers[0].counters.check_failures.load(Ordering::Relaxed),
        0
    );
    assert_eq!(servers[0].counters.downs.load(Ordering::Relaxed), 0);
    lb.shutdown().await;
}
