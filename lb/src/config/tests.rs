use super::*;
use std::time::Duration;

/// A valid file, shared with error_tests.rs (whose line numbers count from
/// its first, empty, line).
pub(super) const GOOD: &str = r#"
[admin]
bind = "127.0.0.1:8404"

[[frontend]]
name = "amqp"
bind = "0.0.0.0:5672"
backend = "rabbitmq"

[[backend]]
name = "rabbitmq"
balance = "first"
failback = "after:30s"

[backend.check]
type = "rabbitmq"
inter = "1s"
fastinter = "200ms"
rise = 2
fall = 2
username = "admin"
password = "secret"

[[backend.server]]
name = "rabbit1"
address = "10.0.0.11:5672"

[[backend.server]]
name = "rabbit2"
address = "rabbit2.example:5672"
role = "backup"
weight = 10
"#;

fn problems(text: &str) -> Vec<Problem> {
    parse(text).expect_err("expected the config to be refused")
}

fn only_problem(text: &str) -> Problem {
    let mut p = problems(text);
    assert_eq!(p.len(), 1, "expected exactly one problem, got {p:#?}");
    p.remove(0)
}

#[test]
fn good_config_is_validated_with_haproxy_defaults_filled_in() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.admin.unwrap().bind, "127.0.0.1:8404".parse().unwrap());
    assert_eq!(c.frontends[0].backend, 0);
    let b = &c.backends[0];
    assert_eq!(b.balance, Balance::First);
    assert_eq!(b.failback, Failback::After(Duration::from_secs(30)));
    assert_eq!(b.check.kind, CheckKind::Rabbitmq);
    assert_eq!(b.check.params.fastinter, Duration::from_millis(200));
    assert_eq!(
        b.check.params.downinter,
        Duration::from_secs(1),
        "downinter defaults to inter"
    );
    assert_eq!(
        b.check.timeout,
        Duration::from_secs(1),
        "timeout defaults to inter"
    );
    assert_eq!(
        b.check.port,
        Some(15672),
        "rabbitmq checks the management port"
    );
    assert!(b.redispatch && b.shutdown_sessions_on_down);
    assert_eq!(b.observe_layer4, Some(OnError::MarkDown));
    assert_eq!(b.servers[0].role, Role::Primary);
    assert_eq!(b.servers[0].weight, 1);
    assert_eq!(
        b.servers[1].address,
        Address::Name {
            host: "rabbit2.example".into(),
            port: 5672
        }
    );
    assert_eq!(b.servers[1].role, Role::Backup);
}

/// `/status` reports a backend's `balance` by these words (they were the
/// lower-cased `Debug` text before `as_str`), and each is the keyword the
/// config takes for that algorithm.
#[test]
fn balance_words_are_the_config_keywords_status_has_always_shown() {
    for (balance, word) in [
        (Balance::First, "first"),
        (Balance::RoundRobin, "roundrobin"),
        (Balance::LeastConn, "leastconn"),
        (Balance::Source, "source"),
    ] {
        assert_eq!(balance.as_str(), word);
        let text = GOOD.replace(r#"balance = "first""#, &format!("balance = {word:?}"));
        assert_eq!(parse(&text).unwrap().backends[0].balance, balance, "{word}");
    }
}

#[test]
fn minimal_backend_uses_haproxy_defaults() {
    let c = parse(
        r#"
[[frontend]]
name = "f"
bind = "127.0.0.1:1"
backend = "b"
[[backend]]
name = "b"
[backend.check]
[[backend.server]]
name = "s"
address = "127.0.0.1:2"
"#,
    )
    .unwrap();
    let b = &c.backends[0];
    assert_eq!(b.balance, Balance::RoundRobin);
    assert_eq!(b.check.kind, CheckKind::Tcp);
    assert_eq!((b.check.params.rise, b.check.params.fall), (2, 3));
    assert_eq!(b.check.params.inter, Duration::from_secs(2));
    assert_eq!(b.timeout_idle, None, "idle timeout is off by default");
}

#[test]
fn unknown_key_is_refused_with_line_and_path() {
    let text = GOOD.replace("rise = 2", "rise = 2\nfal = 3");
    let p = only_problem(&text);
    assert!(p.message.contains("unknown field `fal`"), "{p:?}");
    assert_eq!(p.line, Some(20));
    assert!(p.key.contains("check"), "{p:?}");
    assert!(!p.key.contains("serde"), "{p:?}");
}

#[test]
fn unknown_server_key_path_is_readable() {
    let text = "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:5672\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\nadress = \"x\"\n";
    let p = only_problem(text);
    assert_eq!(p.key, "backend[b].server[s].adress", "{p:?}");
    assert_eq!(p.line, Some(9));
}

#[test]
fn malformed_toml_names_the_line() {
    let p = only_problem("[[frontend]\nname = 1");
    assert_eq!(p.line, Some(1));
}

#[test]
fn rise_and_fall_of_zero_are_refused() {
    let text = GOOD
        .replace("rise = 2", "rise = 0")
        .replace("fall = 2", "fall = 0");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_eq!(p[0].key, "backend[rabbitmq].check.rise");
    assert!(
        p[0].message.contains("expected a whole number from 1"),
        "{p:?}"
    );
    assert_eq!(p[0].line, Some(19));
    assert_eq!(p[1].key, "backend[rabbitmq].check.fall");
}

#[test]
fn duplicate_server_names_are_refused() {
    let text = GOOD.replace("name = \"rabbit2\"", "name = \"rabbit1\"");
    let p = only_problem(&text);
    assert_eq!(p.key, "backend[rabbitmq].server[rabbit1].name");
    assert!(p.message.contains("duplicate"));
}

#[test]
fn bad_addresses_say_what_was_expected() {
    for bad in [
        "10.0.0.11",
        "10.0.0.11:0",
        "bad_host:5672",
        ":5672",
        "10.0.0.11:99999",
    ] {
        let text = GOOD.replace("10.0.0.11:5672", bad);
        let p = only_problem(&text);
        assert_eq!(p.key, "backend[rabbitmq].server[rabbit1].address", "{bad}");
        assert!(p.message.contains("expected"), "{bad}: {p:?}");
    }
    let p = only_problem(&GOOD.replace("0.0.0.0:5672", "localhost:5672"));
    assert_eq!(p.key, "frontend[amqp].bind");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = GOOD
        .replace("balance = \"first\"", "balance = \"fastest\"")
        .replace("inter = \"1s\"", "inter = \"soon\"")
        .replace("backend = \"rabbitmq\"", "backend = \"nope\"");
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"backend[rabbitmq].balance"), "{keys:?}");
    assert!(keys.contains(&"backend[rabbitmq].check.inter"), "{keys:?}");
    assert!(keys.contains(&"frontend[amqp].backend"), "{keys:?}");
}

#[test]
fn rabbitmq_check_needs_credentials() {
    let text = GOOD.replace("password = \"secret\"\n", "");
    let p = only_problem(&text);
    assert!(
        p.message.contains("expected username and password"),
        "{p:?}"
    );
}

#[test]
fn failback_syntax_is_checked() {
    let p = only_problem(&GOOD.replace("after:30s", "later"));
    assert!(p.message.contains("after:<duration>"), "{p:?}");
    let c = parse(&GOOD.replace("after:30s", "manual")).unwrap();
    assert_eq!(c.backends[0].failback, Failback::Manual);
}

#[test]
fn no_frontend_is_an_error() {
    let p = problems("");
    assert_eq!(p[0].key, "frontend");
}

#[test]
fn error_display_names_file_line_and_key() {
    let e = ConfigError {
        file: "/etc/warren/lb.toml".into(),
        problems: vec![Problem {
            line: Some(7),
            key: "backend[b].check.rise".into(),
            message: "0: expected a whole number from 1 to 1000".into(),
        }],
    };
    assert_eq!(
        e.to_string(),
        "/etc/warren/lb.toml:7: backend[b].check.rise: 0: expected a whole number from 1 to 1000"
    );
}

#[test]
fn resolvers_default_to_haproxy_values_and_the_system_servers() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.resolvers, Resolvers::default());
    assert_eq!(c.resolvers.hold_valid, Duration::from_secs(10));
    assert_eq!(c.frontends[0].timeout_first_byte, None);
    let text = format!(
        "[resolvers]\nnameservers = [\"10.96.0.10\", \"127.0.0.1:5353\"]\ntimeout_resolve = \"2s\"\nhold_valid = \"30s\"\nresolve_retries = 2\n{}",
        GOOD.replace(
            "backend = \"rabbitmq\"\n",
            "backend = \"rabbitmq\"\ntimeout_first_byte = \"5s\"\n"
        )
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.resolvers.nameservers,
        Some(vec![
            "10.96.0.10:53".parse().unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        ])
    );
    assert_eq!(c.resolvers.timeout_resolve, Duration::from_secs(2));
    assert_eq!(c.resolvers.timeout_retry, Duration::from_secs(1));
    assert_eq!(c.resolvers.hold_valid, Duration::from_secs(30));
    assert_eq!(c.resolvers.resolve_retries, 2);
    assert_eq!(
        c.frontends[0].timeout_first_byte,
        Some(Duration::from_secs(5))
    );
}

#[test]
fn bad_resolvers_say_what_was_expected() {
    let p = problems(&format!(
        "[resolvers]\nnameservers = [\"dns.local\"]\nhold_valid = \"0s\"\nresolve_retries = 0\n{GOOD}"
    ));
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "resolvers.nameservers[0]",
            "resolvers.hold_valid",
            "resolvers.resolve_retries"
        ],
        "{p:#?}"
    );
    assert!(p[0].message.contains("expected IP or IP:port"), "{p:#?}");
    assert_eq!(p[0].line, Some(2));
    let p = only_problem(&format!("[resolvers]\nnameservers = []\n{GOOD}"));
    assert!(p.message.contains("at least one"), "{p:?}");
    let p = only_problem(&format!("[resolvers]\nhold = \"10s\"\n{GOOD}"));
    assert!(p.message.contains("unknown field `hold`"), "{p:?}");
}

/// Two nodes on one host (`rabbitN@localhost`): one IP, a port each for
/// AMQP and for the management API.
const ONE_HOST: &str = r#"
[[frontend]]
name = "amqp"
bind = "127.0.0.1:5670"
backend = "rabbitmq"

[[backend]]
name = "rabbitmq"

[backend.check]
type = "rabbitmq"
username = "admin"
password = "secret"

[[backend.server]]
name = "rabbit1"
address = "127.0.0.1:5672"
check_port = 15672

[[backend.server]]
name = "rabbit2"
address = "127.0.0.1:5673"
check_port = 15673

[[backend.server]]
name = "rabbit3"
address = "127.0.0.1:5674"
check_addr = "127.0.0.3"
"#;

#[test]
fn each_server_checks_its_own_check_port_and_addr() {
    let c = parse(ONE_HOST).unwrap();
    let b = &c.backends[0];
    let targets: Vec<CheckTarget> = b.servers.iter().map(|s| s.check_target(&b.check)).collect();
    let loopback3 = Some("127.0.0.3".parse().unwrap());
    assert_eq!(
        targets,
        [
            CheckTarget {
                ip: None,
                port: 15672
            },
            CheckTarget {
                ip: None,
                port: 15673
            },
            CheckTarget {
                ip: loopback3,
                port: 15672
            },
        ],
        "check_port wins over the backend's (default 15672 for rabbitmq) port; check_addr alone keeps it"
    );
}

#[test]
fn check_port_wins_over_the_backends_which_wins_over_the_servers() {
    let tcp = |check_port: &str, backend_port: &str| {
        let text = format!(
            "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:1\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[backend.check]\n{backend_port}\n[[backend.server]]\nname = \"s\"\naddress = \"127.0.0.1:5672\"\n{check_port}\n"
        );
        let c = parse(&text).unwrap();
        let b = &c.backends[0];
        let target = b.servers[0].check_target(&b.check);
        (target.port, target.is_the_server(&b.servers[0]))
    };
    assert_eq!(tcp("", ""), (5672, true), "the server's own port");
    assert_eq!(tcp("", "port = 5673"), (5673, false));
    assert_eq!(tcp("check_port = 5674", "port = 5673"), (5674, false));
    assert_eq!(
        tcp("check_port = 5672", "port = 5673"),
        (5672, true),
        "back on the server's own endpoint: its PROXY header applies again"
    );
    let with_addr =
        parse(&ONE_HOST.replace("type = \"rabbitmq\"", "type = \"tcp\"\nport = 5674")).unwrap();
    let rabbit3 = &with_addr.backends[0].servers[2];
    assert!(
        !rabbit3
            .check_target(&with_addr.backends[0].check)
            .is_the_server(rabbit3),
        "a check_addr is never the server's own endpoint (HAProxy: no send-proxy on checks with addr)"
    );
}

#[test]
fn bad_check_addr_and_check_port_say_what_was_expected() {
    let rabbit1 = "backend[rabbitmq].server[rabbit1]";
    for (bad, key, message) in [
        (
            "check_port = 0",
            "check_port",
            "0: expected a whole number from 1 to 65535",
        ),
        (
            "check_port = 65536",
            "check_port",
            "65536: expected a whole number from 1 to 65535",
        ),
        (
            "check_addr = \"127.0.0.1:15672\"",
            "check_addr",
            "\"127.0.0.1:15672\": expected an IP address without a port, such as \"10.0.0.11\" or \"::1\" (the port is check_port)",
        ),
        (
            "check_addr = \"rabbit1-mgmt\"",
            "check_addr",
            "\"rabbit1-mgmt\": expected an IP address without a port, such as \"10.0.0.11\" or \"::1\" (the port is check_port)",
        ),
    ] {
        let p = only_problem(&ONE_HOST.replacen("check_port = 15672", bad, 1));
        assert_eq!(
            p,
            Problem {
                line: Some(18),
                key: format!("{rabbit1}.{key}"),
                message: message.into()
            }
        );
    }
}

#[test]
fn check_addr_and_check_port_without_checks_are_refused() {
    let text = ONE_HOST.replace(
        "[backend.check]\ntype = \"rabbitmq\"\nusername = \"admin\"\npassword = \"secret\"\n",
        "",
    );
    let p = problems(&text);
    let found: Vec<(Option<usize>, &str)> = p.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        found,
        [
            (Some(14), "backend[rabbitmq].server[rabbit1].check_port"),
            (Some(19), "backend[rabbitmq].server[rabbit2].check_port"),
            (Some(24), "backend[rabbitmq].server[rabbit3].check_addr"),
        ]
    );
    assert_eq!(
        p[0].message,
        "only used by active checks, but the backend has no [backend.check]"
    );
}
