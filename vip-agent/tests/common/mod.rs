//! Network-namespace test hosts for the `real_` tests: a bridge, N namespaces each with
//! one veth (`eth0`) on it, processes started inside them. Everything is removed by
//! `Drop` guards, also when a test panics.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

pub fn must(args: &[&str]) -> String {
    let o = sh(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn require_root() {
    let uid = nix::unistd::geteuid().as_raw();
    assert_eq!(uid, 0, "real_ tests need root (network namespaces, raw sockets); run them via scripts/test as root");
}

pub fn vip_bin() -> PathBuf {
    match std::env::var_os("WARREN_VIP_BIN") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(p.exists(), "WARREN_VIP_BIN={} does not exist", p.display());
            p
        }
        None => PathBuf::from(env!("CARGO_BIN_EXE_warren-vip")),
    }
}

pub fn keepalived_bin() -> PathBuf {
    let p = PathBuf::from(
        std::env::var("KEEPALIVED_BIN").unwrap_or_else(|_| "/usr/sbin/keepalived".into()),
    );
    assert!(
        p.exists(),
        "keepalived not found at {} (apt-get install keepalived)",
        p.display()
    );
    p
}

/// Poll `f` every 20 ms until it returns true or `within` passes.
pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {within:?} waiting for: {what}");
}

/// A bridge with hosts. Subnet 10.220.S.0/24, host i at 10.220.S.(10+i).
pub struct Topo {
    pub tag: String,
    pub bridge: String,
    pub subnet: u8,
    pub hosts: Vec<String>,
    pub dir: PathBuf,
}

impl Topo {
    pub fn new(n: usize) -> Topo {
        require_root();
        let c = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{:04}{}", pid % 10000, c % 10);
        let subnet = (((pid % 40) * 6 + c) % 250 + 1) as u8;
        let dir = std::env::temp_dir().join(format!("wvip-test-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bridge = format!("wvipb{tag}");
        let mut t = Topo {
            tag: tag.clone(),
            bridge: bridge.clone(),
            subnet,
            hosts: Vec::new(),
            dir,
        };
        must(&["ip", "link", "add", &bridge, "type", "bridge"]);
        must(&["ip", "link", "set", &bridge, "up"]);
        // Docker hosts set FORWARD policy DROP and br_netfilter makes bridged frames
        // traverse it: allow our bridge (removed in Drop).
        let _ = sh(&["iptables", "-I", "FORWARD", "-i", &bridge, "-j", "ACCEPT"]);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("10.220.{subnet}.1/24"),
            "dev",
            &bridge,
        ]);
        for i in 1..=n {
            let ns = format!("wvip{tag}h{i}");
            let hv = format!("wv{tag}h{i}");
            must(&["ip", "netns", "add", &ns]);
            t.hosts.push(ns.clone());
            must(&[
                "ip", "link", "add", &hv, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            must(&["ip", "link", "set", &hv, "master", &bridge, "up"]);
            must(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", t.host_ip(i)),
                "dev",
                "eth0",
            ]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        t
    }

    pub fn ns(&self, i: usize) -> &str {
        &self.hosts[i - 1]
    }

    pub fn host_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 220, self.subnet, 10 + i as u8)
    }

    pub fn vip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 220, self.subnet, 100)
    }

    /// Host-side veth of host i (set it down to cut the host off the bridge).
    pub fn host_veth(&self, i: usize) -> String {
        format!("wv{}h{i}", self.tag)
    }

    pub fn has_addr(&self, i: usize, addr: Ipv4Addr) -> bool {
        self.addrs(i).contains(&addr)
    }

    /// Every IPv4 address on host i's eth0, one entry per kernel address record (so an
    /// address configured twice, e.g. with two prefixes, appears twice).
    pub fn addrs(&self, i: usize) -> Vec<Ipv4Addr> {
        let out = must(&[
            "ip",
            "-n",
            self.ns(i),
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "eth0",
        ]);
        out.lines()
            .filter_map(|l| l.split("inet ").nth(1)?.split('/').next()?.parse().ok())
            .collect()
    }

    /// Which hosts currently hold the VIP.
    pub fn holders(&self) -> Vec<usize> {
        (1..=self.hosts.len())
            .filter(|i| self.has_addr(*i, self.vip()))
            .collect()
    }

    pub fn mac(&self, i: usize) -> String {
        let out = must(&["ip", "-n", self.ns(i), "-o", "link", "show", "dev", "eth0"]);
        out.split("link/ether ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Start `argv` inside host i's namespace, output to `<dir>/<log>`.
    pub fn spawn(&self, i: usize, log: &str, argv: &[&str]) -> Proc {
        let f = std::fs::File::create(self.path(log)).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(i)])
            .args(argv)
            .env("RUST_LOG", "info,netlink_packet_route=error")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
        Proc {
            child: Some(child),
            log: self.path(log),
        }
    }

    /// Start warren-vip on host i with `config` text.
    pub fn warren(&self, i: usize, name: &str, config: &str) -> Proc {
        let cfg = self.path(&format!("{name}.toml"));
        std::fs::write(&cfg, config).unwrap();
        let bin = vip_bin();
        self.spawn(
            i,
            &format!("{name}.log"),
            &[bin.to_str().unwrap(), "--config", cfg.to_str().unwrap()],
        )
    }

    /// Start keepalived (VRRP only, foreground, log to stderr) on host i.
    pub fn keepalived(&self, i: usize, name: &str, config: &str) -> Proc {
        let cfg = self.path(&format!("{name}.conf"));
        std::fs::write(&cfg, config).unwrap();
        let bin = keepalived_bin();
        let pid = self.path(&format!("{name}.pid"));
        let vpid = self.path(&format!("{name}.vrrp.pid"));
        self.spawn(
            i,
            &format!("{name}.log"),
            &[
                bin.to_str().unwrap(),
                "-n",
                "-l",
                "-D",
                "-P",
                "-f",
                cfg.to_str().unwrap(),
                "-p",
                pid.to_str().unwrap(),
                "-r",
                vpid.to_str().unwrap(),
            ],
        )
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for ns in &self.hosts {
            // Kill anything still running in the namespace (only our test processes run
            // there), then delete it.
            if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for p in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", p]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        while sh(&[
            "iptables",
            "-D",
            "FORWARD",
            "-i",
            &self.bridge,
            "-j",
            "ACCEPT",
        ])
        .status
        .success()
        {}
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("logs kept in {}", self.dir.display());
        }
    }
}

/// A process we started; SIGKILLed on drop.
pub struct Proc {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn signal(&mut self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    pub fn hangup(&mut self) {
        self.signal("-HUP");
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (up to 10 s) for a clean exit; returns whether it exited 0.
    pub fn term(&mut self) -> bool {
        self.signal("-TERM");
        let mut c = self.child.take().unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if Instant::now() > end {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
