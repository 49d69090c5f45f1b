//! Per-server check targets (HAProxy's `port` and `addr` server keywords):
//! servers that share one IP, as `rabbitN@localhost` nodes do, each have
//! their checks go to their own `check_port` / `check_addr`, so one bad
//! health endpoint marks exactly its own server DOWN.  A reload that moves
//! a server's check target keeps the server (state, sessions) and checks
//! the new target.  The real RabbitMQ case is `real_cluster.rs`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::config::one_backend;
use common::{eventually, who};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use warren_lb::runtime::{self, Running};
use warren_lb::server::ServerState;

/// A health endpoint that answers every HTTP request with `status`, and
/// how many requests it has answered.
async fn health_endpoint(bind: &str, status: u16) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                if common::read_request_head(&mut s).await.is_none() {
                    return;
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

/// A TCP port that only counts the connects it accepts.
async fn tcp_endpoint(bind: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (addr, hits)
}

/// A port on loopback that nothing listens on (bound, then closed).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Two servers on 127.0.0.1 (`one`, then `two`), each with its own server
/// lines (`check_port = ...`), under `check`.
fn config(
    check: &str,
    one: (SocketAddr, &str),
    two: (SocketAddr, &str),
) -> warren_lb::config::Config {
    one_backend()
        .backend_keys("balance = \"first\"")
        .check(check)
        .server_with("one", one.0, one.1)
        .server_with("two", two.0, two.1)
        .parse()
}

fn last_check(s: &ServerState) -> String {
    s.last_check().unwrap_or_default()
}

fn server(lb: &Running, i: usize) -> Arc<ServerState> {
    lb.backends()[0].servers[i].clone()
}

#[tokio::test]
async fn servers_sharing_an_ip_each_check_their_own_http_port_and_a_reload_moves_it() {
    let one = common::named("one").await;
    let two = common::named("two").await;
    assert_eq!(one.addr.ip(), two.addr.ip(), "the servers share one IP");
    let (healthy, healthy_hits) = health_endpoint("127.0.0.1:0", 200).await;
    let (sick, sick_hits) = health_endpoint("127.0.0.1:0", 503).await;
    let check = "type = \"http\"\npath = \"/health\"";
    let config = |two_port: u16| {
        config(
            check,
            (one.addr, &format!("check_port = {}", healthy.port())),
            (two.addr, &format!("check_port = {two_port}")),
        )
    };
    let lb = runtime::start(config(sick.port())).await.unwrap();
    let front = lb.listening[0];

    // The fault: two's health endpoint answers 503, and two's check saw it.
    eventually("two's check to hit its own (sick) port", || {
        sick_hits.load(Ordering::SeqCst) > 0
    })
    .await;
    eventually("two to be DOWN", || !server(&lb, 1).is_up()).await;
    assert!(
        last_check(&server(&lb, 1)).contains("503"),
        "two is DOWN for its own endpoint's 503: {}",
        last_check(&server(&lb, 1))
    );
    // one's checks went to its own port and passed.
    let before = healthy_hits.load(Ordering::SeqCst);
    eventually("one's checks to keep passing on its own port", || {
        healthy_hits.load(Ordering::SeqCst) > before + 2
    })
    .await;
    assert!(server(&lb, 0).is_up(), "{}", last_check(&server(&lb, 0)));
    assert!(last_check(&server(&lb, 0)).contains("Layer7 check passed"));
    assert_eq!(who(front).await.0, "one");

    // A reload points two's checks at the healthy endpoint: the same
    // server (kept, not replaced) comes UP.
    let kept = server(&lb, 1);
    let r = lb.reload(config(healthy.port())).await.unwrap();
    assert_eq!((r.servers_kept, r.servers_added), (2, 0));
    assert!(Arc::ptr_eq(&kept, &server(&lb, 1)), "two keeps its state");
    eventually("two to come UP on its new check port", || {
        server(&lb, 1).is_up()
    })
    .await;
    assert!(server(&lb, 0).is_up());
    lb.shutdown().await;
}

#[tokio::test]
async fn tcp_checks_go_to_the_servers_check_addr_and_check_port() {
    let one = common::named("one").await;
    let two = common::named("two").await;
    // one's checks go to another loopback address, two's to a closed port,
    // while both servers' own ports accept.
    let (elsewhere, elsewhere_hits) = tcp_endpoint("127.0.0.2:0").await;
    let refused = closed_port().await;
    let config = config(
        "type = \"tcp\"",
        (
            one.addr,
            &format!(
                "check_addr = \"{}\"\ncheck_port = {}",
                elsewhere.ip(),
                elsewhere.port()
            ),
        ),
        (two.addr, &format!("check_port = {refused}")),
    );
    let lb = runtime::start(config).await.unwrap();
    eventually("two to be DOWN", || !server(&lb, 1).is_up()).await;
    assert!(
        last_check(&server(&lb, 1)).contains("refused"),
        "two is DOWN for its closed check port, not its open own port: {}",
        last_check(&server(&lb, 1))
    );
    eventually("one's checks to reach its check_addr", || {
        elsewhere_hits.load(Ordering::SeqCst) > 2
    })
    .await;
    assert!(server(&lb, 0).is_up(), "{}", last_check(&server(&lb, 0)));
    assert_eq!(who(lb.listening[0]).await.0, "one");
    lb.shutdown().await;
}
