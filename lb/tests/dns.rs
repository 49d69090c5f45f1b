//! A server given by name, against a real DNS server (dnsmasq, on
//! loopback): warren-lb follows its address when the record changes,
//! without a reload; a name that stops resolving keeps its last address
//! for `hold_valid`, then the server goes DOWN; when the name comes back,
//! so does the server.
//!
//! Needs Debian's dnsmasq-base (`scripts/install-deps` installs it).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use warren_lb::resolution::Resolution;
use warren_lb::runtime;

mod common;
use common::config::one_backend;
use common::{echoes, eventually, who};

const NAME: &str = "rabbit.warren.test";
const HOLD_VALID: Duration = Duration::from_secs(5);

/// dnsmasq answering for `warren.test` from a hosts file only (everything
/// else in the domain is NXDOMAIN); ended on drop, also when the test fails.
struct Dnsmasq {
    child: Child,
    hosts: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    fn start(hosts_line: &str) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, hosts_line).unwrap();
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file",
                "--user=root",
                "--no-resolv",
                "--no-hosts",
                "--local=/warren.test/",
                "--local-ttl=0",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("dnsmasq runs (Debian package dnsmasq-base; scripts/install-deps)");
        Dnsmasq {
            child,
            hosts,
            port,
            _dir: dir,
        }
    }

    /// Replaces the hosts file and has dnsmasq re-read it.
    fn serve(&self, hosts_line: &str) {
        write_atomically(&self.hosts, hosts_line);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_atomically(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(next, path).unwrap();
}

/// Two named backends on the same port, at 127.0.0.1 and 127.0.0.2.
async fn two_hosts_one_port() -> (common::Named, common::Named, u16) {
    loop {
        let first = warren_lb::runtime::listen("127.0.0.1:0".parse().unwrap(), 128).unwrap();
        let port = first.local_addr().unwrap().port();
        let second = SocketAddr::new("127.0.0.2".parse().unwrap(), port);
        if let Ok(second) = warren_lb::runtime::listen(second, 128) {
            return (
                common::named_on(first, "one"),
                common::named_on(second, "two"),
                port,
            );
        }
    }
}

fn resolved(ip: &str) -> Resolution {
    Resolution::Resolved(ip.parse::<IpAddr>().unwrap())
}

#[tokio::test]
async fn real_dns_address_change_hold_valid_and_return() {
    let (_one, _two, port) = two_hosts_one_port().await;
    let dns = Dnsmasq::start(&format!("127.0.0.1 {NAME}\n"));
    let config = one_backend()
        .global(&format!(
            "[resolvers]\nnameservers = [\"127.0.0.1:{dns_port}\"]\n\
             timeout_resolve = \"100ms\"\ntimeout_retry = \"200ms\"\nhold_valid = \"{hold}s\"",
            dns_port = dns.port,
            hold = HOLD_VALID.as_secs(),
        ))
        .check("type = \"tcp\"")
        .server("rabbit", format!("{NAME}:{port}"))
        .parse();
    let lb = runtime::start(config).await.unwrap();
    let addr = lb.listening[0];
    let server = lb.backends()[0].servers[0].clone();

    eventually(
        "the name resolves to 127.0.0.1 and the server is UP",
        || server.resolution() == resolved("127.0.0.1") && server.is_up(),
    )
    .await;
    let (name, mut before) = who(addr).await;
    assert_eq!(name, "one");

    // The record changes: new sessions follow it, without a reload, and
    // the session already open stays where it is.
    dns.serve(&format!("127.0.0.2 {NAME}\n"));
    eventually("the new address is followed", || {
        server.resolution() == resolved("127.0.0.2")
    })
    .await;
    assert_eq!(who(addr).await.0, "two");
    echoes(&mut before, b"still here").await;
    assert_eq!(lb.generation(), 1, "no reload was needed");

    // The name stops resolving: its last address is kept for hold_valid.
    let failures = server.counters.dns_failures.load(Ordering::Relaxed);
    let gone = Instant::now();
    dns.serve("");
    eventually("a failed resolution", || {
        server.counters.dns_failures.load(Ordering::Relaxed) > failures
    })
    .await;
    assert_eq!(
        server.resolution(),
        resolved("127.0.0.2"),
        "the last address is held"
    );
    assert_eq!(
        who(addr).await.0,
        "two",
        "clients still reach the held address"
    );

    eventually("the held address expires and the server goes DOWN", || {
        matches!(server.resolution(), Resolution::Unresolved(_)) && !server.is_up()
    })
    .await;
    // The last good answer came at most one resolution (100 ms) before the
    // record was removed; allow generously for that.
    assert!(
        gone.elapsed() >= HOLD_VALID - Duration::from_secs(1),
        "the address was held only {:?} (hold_valid {HOLD_VALID:?})",
        gone.elapsed()
    );
    let status = server.last_check().unwrap_or_default();
    assert!(
        status.contains("cannot resolve rabbit.warren.test"),
        "the check says why: {status}"
    );

    // The name comes back: so does the server.
    dns.serve(&format!("127.0.0.1 {NAME}\n"));
    eventually("the name resolves again and the server is UP", || {
        server.resolution() == resolved("127.0.0.1") && server.is_up()
    })
    .await;
    assert_eq!(who(addr).await.0, "one");
    lb.shutdown().await;
}
