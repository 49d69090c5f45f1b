//! Accepted files and their meaning, and the intent of each kind of refusal
//! (the exact messages with lines are in error_tests.rs).

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::vrrp::packet::Version;

pub(super) const MIN: &str = r#"
[[instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["10.220.0.100/24"]
"#;

/// The whole refusal as `check-config` prints it, one problem a line.
fn perr(s: &str) -> String {
    let problems = parse(s).unwrap_err();
    ConfigError {
        file: "vip.toml".into(),
        problems,
    }
    .to_string()
}

#[test]
fn minimal_defaults() {
    let c = parse(MIN).unwrap();
    let i = &c.instances[0];
    assert_eq!(i.priority, 100);
    assert_eq!(i.version, Version::V3);
    assert_eq!(i.advert_int, Duration::from_secs(1));
    assert!(i.preempt);
    assert!(i.v3_pseudo_header);
    assert_eq!(i.vips, vec![(Ipv4Addr::new(10, 220, 0, 100), 24)]);
    assert_eq!(i.garp_repeat, 5);
    assert!(c.status_bind.is_none());
}

#[test]
fn full_example() {
    let c = parse(
        r#"
[status]
bind = "127.0.0.1:8405"

[[instance]]
name = "VI_1"
interface = "wvip0"
virtual_router_id = 51
priority = 150
advert_int = "100ms"
version = 3
preempt = true
preempt_delay = "5s"
virtual_ipaddress = ["10.220.0.100/24", "10.220.0.101"]
unicast_peer = ["10.220.0.12"]
unicast_src_ip = "10.220.0.11"
v3_checksum_pseudo_header = false
notify = "/etc/warren/notify.sh"
state_file = "/run/warren-vip/VI_1.state"

[[instance.track]]
type = "warren-lb"
admin = "127.0.0.1:8404"
interval = "200ms"
rise = 2
fall = 2
weight = 0

[[instance.track]]
type = "tcp"
address = "127.0.0.1:5672"
weight = -60

[[instance.track]]
type = "exec"
command = ["/usr/local/bin/check", "-q"]
weight = 10

[[instance.track]]
type = "interface"
interface = "eth1"

[[instance.track]]
type = "http"
url = "http://127.0.0.1:15672/api/health/checks/alarms"
username = "admin"
password = "pw"
"#,
    )
    .unwrap();
    assert_eq!(c.status_bind, Some("127.0.0.1:8405".parse().unwrap()));
    let i = &c.instances[0];
    assert_eq!(i.advert_int, Duration::from_millis(100));
    assert_eq!(i.preempt_delay, Duration::from_secs(5));
    assert!(!i.v3_pseudo_header);
    assert_eq!(i.unicast_peers, vec![Ipv4Addr::new(10, 220, 0, 12)]);
    assert_eq!(i.vips[1], (Ipv4Addr::new(10, 220, 0, 101), 32));
    assert_eq!(i.tracks.len(), 5);
    assert_eq!(
        i.tracks[0].kind,
        TrackKind::Http {
            url: "http://127.0.0.1:8404/readyz".into(),
            username: None,
            password: None,
            expect_status: 200,
            expect_body: None
        }
    );
    assert_eq!(i.tracks[0].check.inter, Duration::from_millis(200));
    assert_eq!(i.tracks[1].weight, -60);
    assert!(matches!(i.tracks[1].kind, TrackKind::Tcp { .. }));
    assert!(matches!(i.tracks[2].kind, TrackKind::Exec { .. }));
    assert!(matches!(i.tracks[3].kind, TrackKind::Interface { .. }));
}

#[test]
fn tracker_defaults_are_warren_healths() {
    let c = parse(&format!(
        "{MIN}\n[[instance.track]]\ntype = \"tcp\"\naddress = \"127.0.0.1:5672\"\n"
    ))
    .unwrap();
    let t = &c.instances[0].tracks[0];
    let second = Duration::from_secs(1);
    assert_eq!(
        t.check,
        warren_health::CheckParams::new(second, None, None, 2, 2)
    );
    assert_eq!(t.timeout, second);
    assert_eq!(t.name, "tcp 127.0.0.1:5672");
}

#[test]
fn warren_lb_without_admin_is_tcp() {
    let c = parse(&format!(
        "{MIN}\n[[instance.track]]\ntype = \"warren-lb\"\naddress = \"127.0.0.1:5672\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.instances[0].tracks[0].kind,
        TrackKind::Tcp {
            address: Address::Ip("127.0.0.1:5672".parse().unwrap())
        }
    );
    let e = perr(&format!(
        "{MIN}\n[[instance.track]]\ntype = \"warren-lb\"\n"
    ));
    assert!(
        e.contains("instance \"VI_1\".track[0]") && e.contains("admin"),
        "{e}"
    );
}

#[test]
fn unknown_key_rejected_with_line() {
    let e = perr(&MIN.replace("virtual_router_id = 51", "virtual_router_id = 51\nprio = 3"));
    assert!(e.contains("unknown field `prio`"), "{e}");
    assert!(e.contains("vip.toml:6: instance \"VI_1\".prio"), "{e}");
}

#[test]
fn errors_name_key_and_expectation() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "virtual_router_id = 51",
            "virtual_router_id = 0",
            "instance \"VI_1\".virtual_router_id: 0: expected a whole number from 1 to 255",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\npriority = 256",
            "instance \"VI_1\".priority: 256: expected a whole number from 1 to 255",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\nversion = 4",
            "instance \"VI_1\".version: 4: expected 3 or 2",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\nadvert_int = \"5ms\"",
            "instance \"VI_1\".advert_int: \"5ms\": expected 10ms to 40.95s",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\nadvert_int = \"15ms\"",
            "multiple of 10ms",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\nversion = 2\nadvert_int = \"100ms\"",
            "instance \"VI_1\".advert_int: \"100ms\": expected whole seconds",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\nadvert_int = \"fast\"",
            "\"fast\": expected a duration like",
        ),
        (
            "\"10.220.0.100/24\"",
            "\"10.220.0.300/24\"",
            "instance \"VI_1\".virtual_ipaddress[0]: \"10.220.0.300/24\": expected an IPv4 address",
        ),
        (
            "\"10.220.0.100/24\"",
            "\"10.220.0.100/33\"",
            "instance \"VI_1\".virtual_ipaddress[0]",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\nunicast_peer = [\"x\"]",
            "instance \"VI_1\".unicast_peer[0]: \"x\": expected an IPv4 address",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\nnotify = \"rel.sh\"",
            "instance \"VI_1\".notify: \"rel.sh\": expected an absolute path",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\nauth_pass = \"x\"",
            "instance \"VI_1\".auth_pass: expected no auth_pass with version = 3",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\nversion = 2\nauth_pass = \"123456789\"",
            "1 to 8 bytes",
        ),
        (
            "interface = \"eth0\"",
            "interface = \"abcdefghijklmnop\"",
            "instance \"VI_1\".interface",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\npreempt_delay = \"1001s\"",
            "instance \"VI_1\".preempt_delay: \"1001s\": expected at most 1000s",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 51\ngarp_master_repeat = 0",
            "instance \"VI_1\".garp_master_repeat: 0: expected a whole number from 1 to 255",
        ),
        (
            "virtual_router_id = 51",
            "virtual_router_id = \"51\"",
            "instance \"VI_1\".virtual_router_id: \"51\": expected a whole number",
        ),
    ];
    for (from, to, want) in cases {
        let e = perr(&MIN.replace(from, to));
        assert!(e.contains(want), "for {to:?}: got {e:?}, want {want:?}");
    }
}

#[test]
fn track_errors() {
    let t = |body: &str| perr(&format!("{MIN}\n[[instance.track]]\n{body}\n"));
    let track = "instance \"VI_1\".track[0]";
    assert!(t("type = \"ping\"").contains(&format!("{track}.type: \"ping\": expected one of")));
    assert!(t("type = \"tcp\"").contains(&format!(
        "{track}.address: type = \"tcp\" expects address = IP:port"
    )));
    assert!(t("type = \"tcp\"\naddress = \"nope\"").contains("\"nope\": expected IP:port"));
    assert!(
        t("type = \"tcp\"\naddress = \"1.2.3.4:5\"\nurl = \"http://x\"")
            .contains(&format!("{track}.url: not valid for type"))
    );
    assert!(t("type = \"http\"\nurl = \"ftp://x\"").contains("expected an http:// or https:// URL"));
    assert!(t("type = \"exec\"\ncommand = [\"rel\"]").contains(&format!("{track}.command")));
    assert!(
        t("type = \"tcp\"\naddress = \"1.2.3.4:5\"\nrise = 0").contains(&format!(
            "{track}.rise: 0: expected a whole number from 1 to 1000"
        ))
    );
    assert!(t("type = \"tcp\"\naddress = \"1.2.3.4:5\"\nweight = 300")
        .contains(&format!("{track}.weight")));
    assert!(
        t("type = \"tcp\"\naddress = \"1.2.3.4:5\"\ninterval = \"0s\"").contains(&format!(
            "{track}.interval: \"0s\": expected a duration above zero"
        ))
    );
    assert!(t("type = \"tcp\"\nbogus = 1").contains("unknown field `bogus`"));
    // A named tracker is named by its name.
    assert!(
        t("type = \"tcp\"\nname = \"lb\"\naddress = \"1.2.3.4:5\"\nfall = 0")
            .contains("instance \"VI_1\".track \"lb\".fall: 0:")
    );
}

/// The address of a `tcp` or `warren-lb` tracker, as Helm renders it among
/// others: an IP, a bracketed IPv6 or a host name, each with a port.
#[test]
fn track_address_accepts_ip_ipv6_and_host_names() {
    let host = |host: &str, port| Address::Name {
        host: host.into(),
        port,
    };
    let cases = [
        (
            "127.0.0.1:5672",
            Address::Ip("127.0.0.1:5672".parse().unwrap()),
        ),
        ("[::1]:5672", Address::Ip("[::1]:5672".parse().unwrap())),
        ("lb:8404", host("lb", 8404)),
        (
            "warren-lb.messaging.svc.cluster.local:8404",
            host("warren-lb.messaging.svc.cluster.local", 8404),
        ),
    ];
    for (written, address) in cases {
        for kind in ["tcp", "warren-lb"] {
            let c = parse(&format!(
                "{MIN}\n[[instance.track]]\ntype = \"{kind}\"\naddress = \"{written}\"\n"
            ))
            .unwrap_or_else(|e| panic!("{written:?} ({kind}) refused: {e:?}"));
            let track = &c.instances[0].tracks[0];
            assert_eq!(track.name, format!("tcp {written}"));
            assert_eq!(
                track.kind,
                TrackKind::Tcp {
                    address: address.clone()
                }
            );
        }
    }
}

#[test]
fn track_address_refuses_malformed_forms_naming_the_key() {
    let expected = "expected IP:port, [IPv6]:port or hostname:port with a port from 1 to 65535, \
                    like \"127.0.0.1:5672\", \"[::1]:5672\" or \"warren-lb.messaging.svc.cluster.local:8404\"";
    for (address, what) in [
        ("warren-lb", "no port"),
        ("warren-lb:", "empty port"),
        (":8404", "empty host"),
        ("warren-lb:0", "port 0"),
        ("warren-lb:65536", "port out of range"),
        ("127.0.0.1:65536", "IP with port out of range"),
        ("127.0.0.1:0", "IP with port 0"),
        ("warren lb:8404", "space in the host"),
        ("::1:8404", "IPv6 without brackets"),
    ] {
        for kind in ["tcp", "warren-lb"] {
            let e = perr(&format!(
                "{MIN}\n[[instance.track]]\ntype = \"{kind}\"\nname = \"lb\"\naddress = \"{address}\"\n"
            ));
            let want = format!("instance \"VI_1\".track \"lb\".address: {address:?}: {expected}");
            assert!(
                e.contains(&want),
                "{what} ({kind}): got {e:?}, want {want:?}"
            );
        }
    }
}

#[test]
fn no_instance_and_duplicates() {
    assert!(perr("").contains("instance: no [[instance]] is defined: expected at least one"));
    let two = format!("{MIN}{MIN}");
    assert!(perr(&two).contains("instance \"VI_1\".name: duplicate instance name"));
    let two = format!("{MIN}{}", MIN.replace("VI_1", "VI_2"));
    assert!(perr(&two).contains(
        "instance \"VI_2\".virtual_router_id: 51: already used on eth0 by instance \"VI_1\""
    ));
}

#[test]
fn nopreempt_alias() {
    let c = parse(&MIN.replace(
        "virtual_router_id = 51",
        "virtual_router_id = 51\nnopreempt = true",
    ))
    .unwrap();
    assert!(!c.instances[0].preempt);
}

#[test]
fn durations_keep_keepalived_numbers_of_seconds() {
    let advert = |written: &str| {
        parse(&MIN.replace(
            "virtual_router_id = 51",
            &format!("virtual_router_id = 51\nadvert_int = {written}"),
        ))
        .map(|c| c.instances[0].advert_int)
    };
    assert_eq!(advert("0.1"), Ok(Duration::from_millis(100)));
    assert_eq!(advert("2"), Ok(Duration::from_secs(2)));
    assert_eq!(advert("\"3\""), Ok(Duration::from_secs(3)));
    assert_eq!(advert("\"1.5s\""), Ok(Duration::from_millis(1500)));
    assert_eq!(advert("\"250ms\""), Ok(Duration::from_millis(250)));
    assert!(advert("-1").is_err());
    assert!(
        advert("1e300").is_err(),
        "too large is refused, not a panic"
    );
}
