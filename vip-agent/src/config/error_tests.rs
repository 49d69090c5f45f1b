//! Whole refusals: every problem of a file at once, each with its line and
//! its key path (items by name), parse errors named as validation names.

use super::*;

fn problem(line: usize, key: &str, message: &str) -> Problem {
    Problem {
        line: Some(line),
        key: key.into(),
        message: message.into(),
    }
}

/// Two instances and a tracker, each with something wrong; the line
/// numbers count from the first (empty) line.
const MANY_WRONG: &str = r#"
[[instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
version = 2
advert_int = "100ms"
virtual_ipaddress = ["10.0.0.100/24", "10.0.0.300"]

[[instance.track]]
type = "tcp"
name = "lb"
address = "127.0.0.1"
fall = 0

[[instance]]
name = "VI_2"
interface = "eth0"
virtual_router_id = 51
priority = 300
virtual_ipaddress = ["10.0.0.101/24"]
notify = "notify.sh"
"#;

#[test]
fn every_problem_is_reported_with_its_line_and_named_key() {
    let problems = parse(MANY_WRONG).unwrap_err();
    let vi1 = "instance \"VI_1\"";
    let vi2 = "instance \"VI_2\"";
    assert_eq!(
        problems,
        vec![
            problem(
                7,
                &format!("{vi1}.advert_int"),
                "\"100ms\": expected whole seconds from 1s to 255s for VRRPv2 (use version = 3 for sub-second)",
            ),
            problem(
                8,
                &format!("{vi1}.virtual_ipaddress[1]"),
                "\"10.0.0.300\": expected an IPv4 address with optional prefix like \"10.0.0.100/24\"",
            ),
            problem(
                14,
                &format!("{vi1}.track \"lb\".fall"),
                "0: expected a whole number from 1 to 1000",
            ),
            problem(
                13,
                &format!("{vi1}.track \"lb\".address"),
                "\"127.0.0.1\": expected IP:port, [IPv6]:port or hostname:port with a port from 1 to 65535, like \"127.0.0.1:5672\", \"[::1]:5672\" or \"warren-lb.messaging.svc.cluster.local:8404\"",
            ),
            problem(
                19,
                &format!("{vi2}.virtual_router_id"),
                "51: already used on eth0 by instance \"VI_1\": expected one virtual router per VRID and interface",
            ),
            problem(
                20,
                &format!("{vi2}.priority"),
                "300: expected a whole number from 1 to 255",
            ),
            problem(
                22,
                &format!("{vi2}.notify"),
                "\"notify.sh\": expected an absolute path",
            ),
        ]
    );
}

#[test]
fn check_config_prints_one_problem_a_line_with_file_and_line() {
    let error = ConfigError {
        file: "/etc/warren/vip.toml".into(),
        problems: parse(MANY_WRONG).unwrap_err(),
    };
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert_eq!(
        lines[2],
        "/etc/warren/vip.toml:14: instance \"VI_1\".track \"lb\".fall: 0: expected a whole number from 1 to 1000"
    );
}

#[test]
fn a_parse_error_names_the_instance_by_its_name() {
    let text =
        super::tests::MIN.replace("interface = \"eth0\"", "interface = \"eth0\"\nadvert = 1");
    assert_eq!(
        parse(&text).unwrap_err(),
        vec![problem(
            5,
            "instance \"VI_1\".advert",
            "unknown field `advert`, expected one of `name`, `interface`, `virtual_router_id`, \
             `priority`, `advert_int`, `version`, `preempt`, `nopreempt`, `preempt_delay`, \
             `virtual_ipaddress`, `unicast_peer`, `unicast_src_ip`, `v3_checksum_pseudo_header`, \
             `auth_pass`, `notify`, `state_file`, `garp_master_repeat`, `garp_master_refresh`, `track`",
        )]
    );
}

#[test]
fn a_missing_name_is_shown_by_position() {
    let text =
        "[[instance]]\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_ipaddress = []\n";
    let problems = parse(text).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "instance[0]");
    assert_eq!(problems[0].message, "missing field `name`");
}

#[test]
fn an_unreadable_file_is_named() {
    let e = load(std::path::Path::new("/nonexistent/vip.toml")).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/vip.toml: cannot read the file:"),
        "{e}"
    );
}
