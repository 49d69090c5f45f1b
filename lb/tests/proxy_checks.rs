//! Checks honour `send_proxy` (HAProxy sends the PROXY header on the checks
//! of a `send-proxy` server): against a fake broker that, like RabbitMQ with
//! `proxy_protocol = true`, drops any connection that does not start with a
//! valid PROXY header.  The proof against a real RabbitMQ is
//! `real_proxy_protocol.rs`.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use common::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren_lb::runtime;

/// What the fake broker saw on each connection, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// A fake AMQP broker behind `proxy_protocol = true`.  Each connection is
/// recorded as "<v1|v2> amqp" (valid header naming the connecting socket
/// and this listener, then the AMQP protocol header, answered with a
/// Connection.Start), "<v1|v2> closed" (valid header, then the client
/// closed: a tcp check), or "rejected: ..." (dropped, as RabbitMQ does).
async fn proxy_broker() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let verdict = serve(s).await;
                log.lock().unwrap().push(verdict);
            });
        }
    });
    (addr, seen)
}

async fn serve(mut s: TcpStream) -> String {
    let (peer, local) = (s.peer_addr().unwrap(), s.local_addr().unwrap());
    let version = match read_header(&mut s).await {
        Ok((version, src, dst)) if src == peer && dst == local => version,
        Ok((version, src, dst)) => {
            return format!("rejected: {version} names {src} -> {dst}, not {peer} -> {local}")
        }
        Err(e) => return format!("rejected: {e}"),
    };
    let mut h = [0u8; 8];
    match s.read_exact(&mut h).await {
        Err(_) => return format!("{version} closed"),
        Ok(_) if &h != b"AMQP\x00\x00\x09\x01" => return format!("rejected: {version} then {h:?}"),
        Ok(_) => {}
    }
    let _ = s.write_all(&common::connection_start()).await;
    let mut sink = [0u8; 64];
    while let Ok(n) = s.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
    format!("{version} amqp")
}

/// Reads a PROXY v1 or v2 header (IPv4, PROXY command), failing at the
/// first byte that cannot belong to one, as a real parser does.
async fn read_header(s: &mut TcpStream) -> Result<(&'static str, SocketAddr, SocketAddr), String> {
    const V1: &[u8] = b"PROXY ";
    const V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    let mut first = [0u8; 1];
    s.read_exact(&mut first).await.map_err(|e| e.to_string())?;
    let expect = match first[0] {
        b'P' => V1,
        b'\r' => V2,
        b => return Err(format!("no PROXY header (first byte {b:#04x})")),
    };
    for want in &expect[1..] {
        s.read_exact(&mut first).await.map_err(|e| e.to_string())?;
        if first[0] != *want {
            return Err("malformed PROXY header".into());
        }
    }
    if expect == V1 {
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            s.read_exact(&mut first).await.map_err(|e| e.to_string())?;
            line.push(first[0]);
            if line.len() > 107 {
                return Err("v1 line too long".into());
            }
        }
        let text = String::from_utf8(line).map_err(|e| e.to_string())?;
        let f: Vec<&str> = text.trim_end().split(' ').collect();
        if f.len() != 5 || f[0] != "TCP4" {
            return Err(format!("bad v1 line {text:?}"));
        }
        let a = |ip: &str, port: &str| -> Result<SocketAddr, String> {
            Ok(SocketAddr::new(
                ip.parse().map_err(|_| format!("bad ip {ip}"))?,
                port.parse().map_err(|_| format!("bad port {port}"))?,
            ))
        };
        Ok(("v1", a(f[1], f[3])?, a(f[2], f[4])?))
    } else {
        let mut rest = [0u8; 4];
        s.read_exact(&mut rest).await.map_err(|e| e.to_string())?;
        if rest[0] != 0x21 || rest[1] != 0x11 || u16::from_be_bytes([rest[2], rest[3]]) != 12 {
            return Err(format!("unexpected v2 command/family/length {rest:?}"));
        }
        let mut b = [0u8; 12];
        s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
        let src = SocketAddr::new(ip(0).into(), u16::from_be_bytes([b[8], b[9]]));
        let dst = SocketAddr::new(ip(4).into(), u16::from_be_bytes([b[10], b[11]]));
        Ok(("v2", src, dst))
    }
}

fn config(kind: &str, servers: &[(&str, SocketAddr, &str)], port: Option<u16>) -> String {
    let mut c = format!(
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:0\"\nbackend = \"b\"\n\
         [[backend]]\nname = \"b\"\n\
         [backend.check]\ntype = \"{kind}\"\ninter = \"100ms\"\nfastinter = \"100ms\"\n\
         downinter = \"100ms\"\nrise = 1\nfall = 1\ntimeout = \"2s\"\n"
    );
    if let Some(p) = port {
        c.push_str(&format!("port = {p}\n"));
    }
    for (name, addr, send_proxy) in servers {
        c.push_str(&format!(
            "[[backend.server]]\nname = \"{name}\"\naddress = \"{addr}\"\nsend_proxy = \"{send_proxy}\"\n"
        ));
    }
    c
}

fn last_check(lb: &runtime::Running, i: usize) -> String {
    lb.backends()[0].servers[i].last_check().unwrap_or_default()
}

#[tokio::test]
async fn amqp_check_sends_the_configured_proxy_header_first() {
    let (v1, seen_v1) = proxy_broker().await;
    let (v2, seen_v2) = proxy_broker().await;
    let (plain, seen_plain) = proxy_broker().await;
    let text = config(
        "amqp",
        &[("v1", v1, "v1"), ("v2", v2, "v2"), ("plain", plain, "none")],
        None,
    );
    let lb = runtime::start(warren_lb::config::parse(&text).unwrap())
        .await
        .unwrap();
    let servers = lb.backends()[0].servers.clone();
    eventually("the header-less server marked DOWN", || !servers[2].is_up()).await;
    eventually("three checks seen by each proxy-aware broker", || {
        seen_v1.lock().unwrap().len() >= 3 && seen_v2.lock().unwrap().len() >= 3
    })
    .await;
    for (i, (version, seen)) in [("v1", &seen_v1), ("v2", &seen_v2)].into_iter().enumerate() {
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen.iter().all(|v| *v == format!("{version} amqp")),
            "every check to server {version} starts with a valid {version} header naming the check socket: {seen:?}"
        );
        assert!(servers[i].is_up(), "{version}: {}", last_check(&lb, i));
        assert_eq!(
            servers[i]
                .counters
                .check_failures
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "{version}: {}",
            last_check(&lb, i)
        );
        assert!(last_check(&lb, i).starts_with("Layer6 check passed"));
    }
    let plain_seen = seen_plain.lock().unwrap().clone();
    assert!(
        plain_seen
            .iter()
            .all(|v| v.starts_with("rejected: no PROXY header")),
        "{plain_seen:?}"
    );
    assert!(
        !last_check(&lb, 2).starts_with("Layer6 check passed"),
        "{}",
        last_check(&lb, 2)
    );
    lb.shutdown().await;
}

#[tokio::test]
async fn tcp_check_sends_the_header_then_closes() {
    let (v2, seen) = proxy_broker().await;
    let text = config("tcp", &[("v2", v2, "v2")], None);
    let lb = runtime::start(warren_lb::config::parse(&text).unwrap())
        .await
        .unwrap();
    eventually("two checks seen", || seen.lock().unwrap().len() >= 2).await;
    let got = seen.lock().unwrap().clone();
    assert!(got.iter().all(|v| v == "v2 closed"), "{got:?}");
    assert!(lb.backends()[0].servers[0].is_up());
    lb.shutdown().await;
}

#[tokio::test]
async fn check_on_its_own_port_sends_no_header() {
    // HAProxy: `send-proxy` covers checks only when they go to the traffic
    // port; a check `port` is another service (here: a second fake on
    // another port, which must get no header).
    let (traffic, seen_traffic) = proxy_broker().await;
    let (other, seen_other) = proxy_broker().await;
    let text = config("tcp", &[("s", traffic, "v1")], Some(other.port()));
    let lb = runtime::start(warren_lb::config::parse(&text).unwrap())
        .await
        .unwrap();
    eventually("two checks seen on the check port", || {
        seen_other.lock().unwrap().len() >= 2
    })
    .await;
    let got = seen_other.lock().unwrap().clone();
    assert!(
        got.iter().all(|v| v.starts_with("rejected: ")),
        "no header on a check to its own port: {got:?}"
    );
    assert!(seen_traffic.lock().unwrap().is_empty());
    lb.shutdown().await;
}
