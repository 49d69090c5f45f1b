//! Real VRRP on network-namespace test hosts (root). Run one at a time (nextest serial
//! group for `real_`; with cargo test use `--test-threads=1`).

mod common;

use std::time::Duration;

use common::*;

const DEADLINE: Duration = Duration::from_secs(20);
/// Advert interval of the warren-only tests: short enough to be quick, long enough
/// (Master_Down_Interval ≈ 0.65 s) not to flap on a loaded 2-core machine.
const ADV: &str = "200ms";

fn warren_cfg(t: &Topo, prio: u8, version: u8, advert: &str, extra: &str, track: &str) -> String {
    format!(
        r#"
[[instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = {prio}
advert_int = "{advert}"
version = {version}
virtual_ipaddress = ["{vip}/24"]
{extra}
{track}
"#,
        vip = t.vip()
    )
}

fn keepalived_cfg(t: &Topo, prio: u8, version: u8, advert: &str) -> String {
    format!(
        r#"
global_defs {{
  router_id wvip{tag}
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {prio}
  advert_int {advert}
  version {version}
  virtual_ipaddress {{
    {vip}/24
  }}
}}
"#,
        tag = t.tag,
        vip = t.vip()
    )
}

/// TCP connect from host `from` to the VIP port 9: "connection refused" proves the VIP
/// answered (and makes the client resolve it with ARP).
fn reach(t: &Topo, from: usize) -> bool {
    let py = format!(
        "import socket; s=socket.socket(); s.settimeout(1); print(s.connect_ex(('{}', 9)))",
        t.vip()
    );
    let out = sh(&["ip", "netns", "exec", t.ns(from), "python3", "-c", &py]);
    String::from_utf8_lossy(&out.stdout).trim() == "111"
}

/// Wait until exactly host `h` holds the VIP, and it stays so for a few adverts.
/// A tracker that fails while `flag` exists, with the given weight (0: the
/// instance goes FAULT; negative: its priority drops by that much).
fn flag_track(flag: &std::path::Path, weight: i32) -> String {
    format!(
        r#"
[[instance.track]]
type = "exec"
command = ["/bin/sh", "-c", "test ! -e {}"]
interval = "100ms"
timeout = "2s"
rise = 1
fall = 1
weight = {weight}
"#,
        flag.display()
    )
}

fn expect_only(t: &Topo, h: usize, what: &str) {
    wait_for(what, DEADLINE, || t.holders() == vec![h]);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            t.holders(),
            vec![h],
            "{what}: VIP must stay on host {h} only"
        );
    }
}

#[test]
fn real_two_hosts_elect_one_master_and_fail_over_on_host_death() {
    let t = Topo::new(3);
    let _a = t.warren(1, "a", &warren_cfg(&t, 150, 3, ADV, "", ""));
    let _b = t.warren(2, "b", &warren_cfg(&t, 100, 3, ADV, "", ""));
    expect_only(&t, 1, "higher priority host 1 is the only VIP holder");
    // A client in a third namespace reaches the VIP and learns host 1's MAC.
    assert!(reach(&t, 3), "client reaches the VIP");
    let neigh = must(&["ip", "-n", t.ns(3), "neigh", "show", &t.vip().to_string()]);
    assert!(
        neigh.contains(&t.mac(1)),
        "client ARP entry should be host 1: {neigh}"
    );
    // Host death: SIGKILL the agent and cut the host off the bridge.
    let mut a = _a;
    a.kill();
    must(&["ip", "link", "set", &t.host_veth(1), "down"]);
    wait_for("VIP on host 2 after host 1 died", DEADLINE, || {
        t.has_addr(2, t.vip())
    });
    // The GARP burst alone (no client traffic) updated the client's ARP cache...
    wait_for("client ARP entry points at host 2", DEADLINE, || {
        must(&["ip", "-n", t.ns(3), "neigh", "show", &t.vip().to_string()]).contains(&t.mac(2))
    });
    // ...and the client reaches the VIP on host 2.
    assert!(reach(&t, 3), "client reaches the VIP after failover");
}

#[test]
fn real_sigterm_releases_vip_and_backup_takes_over() {
    let t = Topo::new(2);
    let mut a = t.warren(1, "a", &warren_cfg(&t, 150, 3, ADV, "", ""));
    let b = t.warren(2, "b", &warren_cfg(&t, 100, 3, ADV, "", ""));
    expect_only(&t, 1, "host 1 master");
    // SIGHUP (`systemctl reload`, log rotation) must not end the agent.
    a.hangup();
    wait_for("SIGHUP acknowledged", DEADLINE, || {
        a.log_text().contains("SIGHUP:")
    });
    assert!(a.alive(), "warren-vip survives SIGHUP: {}", a.log_text());
    expect_only(&t, 1, "host 1 still master after SIGHUP");
    assert!(a.term(), "warren-vip exits 0 on SIGTERM: {}", a.log_text());
    assert!(
        !t.has_addr(1, t.vip()),
        "clean shutdown leaves no VIP behind"
    );
    expect_only(&t, 2, "host 2 takes over after host 1 resigned");
    assert!(a.log_text().contains("Entering STOP STATE"));
    drop(b);
}

#[test]
fn real_tracker_weight_zero_faults_and_releases_vip() {
    let t = Topo::new(2);
    let flag = t.path("lb-down");
    let track = flag_track(&flag, 0);
    let state = t.path("a.state");
    let extra = format!("state_file = \"{}\"", state.display());
    let _a = t.warren(1, "a", &warren_cfg(&t, 150, 3, ADV, &extra, &track));
    let _b = t.warren(2, "b", &warren_cfg(&t, 100, 3, ADV, "", ""));
    expect_only(&t, 1, "host 1 master while its tracker passes");
    std::fs::write(&flag, "").unwrap();
    expect_only(&t, 2, "tracker failed → host 1 FAULT, host 2 owns the VIP");
    assert_eq!(std::fs::read_to_string(&state).unwrap().trim(), "FAULT");
    std::fs::remove_file(&flag).unwrap();
    // Recovered: back to BACKUP, then preempts (higher priority).
    expect_only(&t, 1, "tracker recovered → host 1 preempts back");
    assert_eq!(std::fs::read_to_string(&state).unwrap().trim(), "MASTER");
}

#[test]
fn real_tracker_negative_weight_hands_over() {
    let t = Topo::new(2);
    let flag = t.path("lb-down");
    let track = flag_track(&flag, -60);
    let _a = t.warren(1, "a", &warren_cfg(&t, 150, 3, ADV, "", &track));
    let _b = t.warren(2, "b", &warren_cfg(&t, 100, 3, ADV, "", ""));
    expect_only(&t, 1, "host 1 master at priority 150");
    std::fs::write(&flag, "").unwrap();
    expect_only(&t, 2, "host 1 drops to 90 < 100 → host 2 preempts");
}

#[test]
fn real_nopreempt_keeps_current_master() {
    let t = Topo::new(2);
    let _b = t.warren(2, "b", &warren_cfg(&t, 100, 3, ADV, "", ""));
    expect_only(&t, 2, "host 2 alone becomes master");
    let _a = t.warren(1, "a", &warren_cfg(&t, 150, 3, ADV, "nopreempt = true", ""));
    wait_for("host 1 in BACKUP", DEADLINE, || {
        _a.log_text().contains("Entering BACKUP STATE")
    });
    // Several Master_Down_Intervals later host 2 still holds it.
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            t.holders(),
            vec![2],
            "nopreempt: higher-priority host 1 must not take over"
        );
    }
}

fn interop(version: u8, advert_w: &str, advert_k: &str) {
    let t = Topo::new(2);
    let _k = t.keepalived(2, "k", &keepalived_cfg(&t, 100, version, advert_k));
    expect_only(&t, 2, "keepalived alone is master");
    // warren-vip with higher priority preempts keepalived (keepalived accepts our adverts).
    let mut w = t.warren(1, "w", &warren_cfg(&t, 150, version, advert_w, "", ""));
    expect_only(&t, 1, "warren-vip (150) takes over from keepalived (100)");
    // warren-vip resigns (priority 0) → keepalived takes over.
    assert!(w.term());
    expect_only(&t, 2, "keepalived takes over after warren-vip resigned");
    // warren-vip with lower priority stays backup under keepalived (we accept its adverts).
    let mut w2 = t.warren(1, "w2", &warren_cfg(&t, 50, version, advert_w, "", ""));
    wait_for("warren-vip in BACKUP", DEADLINE, || {
        w2.log_text().contains("Entering BACKUP STATE")
    });
    expect_only(&t, 2, "keepalived (100) stays master over warren-vip (50)");
    assert!(w2.alive());
    // keepalived dies → warren-vip takes over.
    let mut k = _k;
    k.kill();
    must(&[
        "ip",
        "-n",
        t.ns(2),
        "addr",
        "flush",
        "dev",
        "eth0",
        "to",
        &format!("{}/32", t.vip()),
    ]);
    wait_for(
        "warren-vip takes over from dead keepalived",
        DEADLINE,
        || t.holders() == vec![1],
    );
}

#[test]
fn real_keepalived_interop_v3() {
    interop(3, "200ms", "0.2");
}

#[test]
fn real_keepalived_interop_v2() {
    interop(2, "1s", "1");
}

/// Send raw IPv4 datagrams (hex) from host `from` to 224.0.0.18 out of eth0.
fn inject(t: &Topo, from: usize, datagrams: &[Vec<u8>]) {
    let py = "import socket,sys\n\
s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)\n\
s.setsockopt(socket.SOL_SOCKET,25,b'eth0')\n\
for h in sys.argv[1:]: s.sendto(bytes.fromhex(h),('224.0.0.18',0))\n";
    let hex: Vec<String> = datagrams
        .iter()
        .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let mut args = vec!["ip", "netns", "exec", t.ns(from), "python3", "-c", py];
    args.extend(hex.iter().map(|s| s.as_str()));
    must(&args);
}

fn metrics(t: &Topo, host: usize) -> String {
    let py = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8405/metrics',timeout=2).read().decode())";
    must(&["ip", "netns", "exec", t.ns(host), "python3", "-c", py])
}

fn counter(m: &str, name: &str, reason: Option<&str>) -> u64 {
    m.lines()
        .filter(|l| {
            l.starts_with(name) && reason.is_none_or(|r| l.contains(&format!("reason=\"{r}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .next()
        .unwrap_or(0)
}

#[test]
fn real_forged_and_malformed_adverts_are_dropped_and_counted() {
    use std::net::Ipv4Addr;
    use warren_vip::vrrp::packet::{encode_ipv4, Advert, ChecksumMode, Version, VRRP_MCAST_V4};
    let t = Topo::new(2);
    let _a = t.warren(
        1,
        "a",
        &warren_cfg(&t, 100, 3, ADV, "", "").replace(
            "[[instance]]",
            "[status]\nbind = \"127.0.0.1:8405\"\n\n[[instance]]",
        ),
    );
    expect_only(&t, 1, "lone host 1 is master");
    let m = ChecksumMode::default();
    let src = t.host_ip(2);
    let good = Advert {
        version: Version::V3,
        vrid: 51,
        priority: 250,
        adver_int_cs: 10,
        addrs: vec![t.vip()],
        auth_type: 0,
        auth_data: [0; 8],
    };
    let ok = encode_ipv4(&good, m, src, VRRP_MCAST_V4);
    let mut ttl = ok.clone();
    ttl[8] = 64;
    let mut cks = ok.clone();
    cks[22] ^= 0x01; // priority byte changed after checksumming
    let short = ok[..26].to_vec();
    let mut short_fixed = short.clone();
    short_fixed[2..4].copy_from_slice(&(26u16).to_be_bytes());
    let vrid = encode_ipv4(
        &Advert {
            vrid: 52,
            ..good.clone()
        },
        m,
        src,
        VRRP_MCAST_V4,
    );
    let v2 = encode_ipv4(
        &Advert {
            version: Version::V2,
            adver_int_cs: 100,
            ..good.clone()
        },
        m,
        src,
        VRRP_MCAST_V4,
    );
    let addrs = encode_ipv4(
        &Advert {
            addrs: vec![Ipv4Addr::new(10, 220, t.subnet, 99)],
            ..good.clone()
        },
        m,
        src,
        VRRP_MCAST_V4,
    );
    let nopseudo = encode_ipv4(
        &good,
        ChecksumMode {
            v3_pseudo_header: false,
        },
        src,
        VRRP_MCAST_V4,
    );
    for _ in 0..3 {
        inject(
            &t,
            2,
            &[
                ttl.clone(),
                cks.clone(),
                short_fixed.clone(),
                vrid.clone(),
                v2.clone(),
                addrs.clone(),
                nopseudo.clone(),
            ],
        );
    }
    wait_for("drop counters", DEADLINE, || {
        let mm = metrics(&t, 1);
        [
            "ttl",
            "checksum",
            "malformed",
            "vrid",
            "version",
            "addr_mismatch",
        ]
        .iter()
        .all(|r| counter(&mm, "warren_vip_adverts_dropped_total", Some(r)) >= 3)
    });
    let mm = metrics(&t, 1);
    assert_eq!(
        counter(&mm, "warren_vip_adverts_received_total", None),
        0,
        "{mm}"
    );
    assert_eq!(
        counter(&mm, "warren_vip_adverts_dropped_total", Some("checksum")),
        6,
        "bad checksum and missing pseudo-header: {mm}"
    );
    // None of it changed state: host 1 is still the only master.
    assert_eq!(t.holders(), vec![1]);
    assert_eq!(counter(&mm, "warren_vip_state", None), 2);
    // Positive control: the same advert, well-formed, does make host 1 yield.
    inject(&t, 2, &[ok]);
    wait_for(
        "host 1 yields to a valid priority-250 advert",
        DEADLINE,
        || t.holders().is_empty(),
    );
    assert!(counter(&metrics(&t, 1), "warren_vip_adverts_received_total", None) >= 1);
}

#[test]
fn real_split_brain_heals_to_one_master() {
    let t = Topo::new(2);
    let _a = t.warren(1, "a", &warren_cfg(&t, 150, 3, ADV, "", ""));
    let _b = t.warren(2, "b", &warren_cfg(&t, 100, 3, ADV, "", ""));
    expect_only(&t, 1, "host 1 master");
    // Cut the two apart (isolated bridge ports cannot reach each other).
    for i in 1..=2 {
        must(&[
            "bridge",
            "link",
            "set",
            "dev",
            &t.host_veth(i),
            "isolated",
            "on",
        ]);
    }
    wait_for("split brain: both hosts hold the VIP", DEADLINE, || {
        t.holders() == vec![1, 2]
    });
    for i in 1..=2 {
        must(&[
            "bridge",
            "link",
            "set",
            "dev",
            &t.host_veth(i),
            "isolated",
            "off",
        ]);
    }
    expect_only(&t, 1, "healed: exactly one master (the higher priority)");
    assert!(_b.log_text().contains("Entering BACKUP STATE (was MASTER"));
}

#[test]
fn real_preempt_delay_postpones_takeover() {
    let t = Topo::new(2);
    let _b = t.warren(2, "b", &warren_cfg(&t, 100, 3, ADV, "", ""));
    expect_only(&t, 2, "host 2 alone is master");
    let a = t.warren(
        1,
        "a",
        &warren_cfg(&t, 150, 3, ADV, "preempt_delay = \"3s\"", ""),
    );
    wait_for("host 1 in BACKUP", DEADLINE, || {
        a.log_text().contains("Entering BACKUP STATE")
    });
    // Well inside the delay (first half of it), host 2 keeps the VIP although host 1
    // has the higher priority.
    let seen = std::time::Instant::now();
    while seen.elapsed() < Duration::from_millis(1500) {
        let h = t.holders();
        if seen.elapsed() < Duration::from_millis(1500) {
            assert_eq!(h, vec![2], "preempt_delay: no takeover yet");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    expect_only(&t, 1, "after preempt_delay host 1 preempts");
}
