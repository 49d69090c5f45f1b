//! The exact message of each kind of configuration error: its line, its key
//! path (items by name, as validation writes them) and what was expected,
//! in the words of docs/configuration.md.

use super::*;

/// The valid file of the other config tests; the line numbers in the tests
/// below count from its first (empty) line.
use super::tests::GOOD;

/// GOOD with `old`, which must occur exactly once, replaced by `new`.
fn good_with(old: &str, new: &str) -> String {
    assert_eq!(
        GOOD.matches(old).count(),
        1,
        "{old:?} is not unique in GOOD"
    );
    GOOD.replacen(old, new, 1)
}

fn problem(line: usize, key: &str, message: &str) -> Problem {
    Problem {
        line: Some(line),
        key: key.into(),
        message: message.into(),
    }
}

/// Each case is refused with exactly the one expected problem.
fn assert_refused_with(cases: &[(String, Problem)]) {
    assert!(parse(GOOD).is_ok(), "GOOD must be valid");
    for (text, expected) in cases {
        match parse(text) {
            Ok(_) => panic!("accepted, expected {expected:?}:\n{text}"),
            Err(problems) => assert_eq!(problems, std::slice::from_ref(expected), "\n{text}"),
        }
    }
}

#[test]
fn unknown_key_of_a_named_server_is_named_as_validation_names_it() {
    assert_refused_with(&[(
        good_with("role = \"backup\"", "role = \"backup\"\nrol = \"x\""),
        problem(
            32,
            "backend[rabbitmq].server[rabbit2].rol",
            "unknown field `rol`, expected one of `name`, `address`, `role`, `weight`, \
             `maxconn`, `send_proxy`, `check_addr`, `check_port`",
        ),
    )]);
}

#[test]
fn missing_key_names_the_item_it_is_missing_from() {
    assert_refused_with(&[(
        good_with("address = \"rabbit2.example:5672\"\n", ""),
        problem(
            28,
            "backend[rabbitmq].server[rabbit2]",
            "missing field `address`",
        ),
    )]);
}

#[test]
fn an_item_without_a_name_is_named_by_its_index() {
    assert_refused_with(&[(
        good_with("name = \"rabbit2\"\n", ""),
        problem(28, "backend[rabbitmq].server[1]", "missing field `name`"),
    )]);
}

#[test]
fn wrong_type_of_a_text_key_is_named_by_item() {
    assert_refused_with(&[(
        good_with("backend = \"rabbitmq\"", "backend = 5"),
        problem(
            8,
            "frontend[amqp].backend",
            "invalid type: integer `5`, expected a string",
        ),
    )]);
}

#[test]
fn wrong_type_of_a_whole_number_says_the_documented_range() {
    let check = "backend[rabbitmq].check";
    let rabbit2 = "backend[rabbitmq].server[rabbit2]";
    assert_refused_with(&[
        (
            good_with("rise = 2", "rise = \"2\""),
            problem(
                19,
                &format!("{check}.rise"),
                "\"2\": expected a whole number from 1 to 1000",
            ),
        ),
        (
            good_with("fall = 2", "fall = 2.5"),
            problem(
                20,
                &format!("{check}.fall"),
                "2.5: expected a whole number from 1 to 1000",
            ),
        ),
        (
            good_with(
                "password = \"secret\"",
                "password = \"secret\"\nport = \"15672\"",
            ),
            problem(
                23,
                &format!("{check}.port"),
                "\"15672\": expected a whole number from 1 to 65535",
            ),
        ),
        (
            good_with(
                "type = \"rabbitmq\"",
                "type = \"http\"\nexpect_status = \"200\"",
            ),
            problem(
                17,
                &format!("{check}.expect_status"),
                "\"200\": expected a whole number from 100 to 599",
            ),
        ),
        (
            good_with("weight = 10", "weight = \"10\""),
            problem(
                32,
                &format!("{rabbit2}.weight"),
                "\"10\": expected a whole number from 0 to 256",
            ),
        ),
        (
            good_with("weight = 10", "weight = 10\ncheck_port = true"),
            problem(
                33,
                &format!("{rabbit2}.check_port"),
                "true: expected a whole number from 1 to 65535",
            ),
        ),
        (
            good_with("weight = 10", "weight = 10\nmaxconn = \"100\""),
            problem(
                33,
                &format!("{rabbit2}.maxconn"),
                "\"100\": expected a whole number of at least 0",
            ),
        ),
        (
            good_with(
                "backend = \"rabbitmq\"",
                "backend = \"rabbitmq\"\nmaxconn = [1]",
            ),
            problem(
                9,
                "frontend[amqp].maxconn",
                "an array: expected a whole number of at least 1",
            ),
        ),
        (
            format!("[resolvers]\nresolve_retries = \"3\"\n{GOOD}"),
            problem(
                2,
                "resolvers.resolve_retries",
                "\"3\": expected a whole number from 1 to 100",
            ),
        ),
    ]);
}

#[test]
fn a_whole_number_out_of_range_says_the_same() {
    assert_refused_with(&[(
        good_with("rise = 2", "rise = 0"),
        problem(
            19,
            "backend[rabbitmq].check.rise",
            "0: expected a whole number from 1 to 1000",
        ),
    )]);
}

#[test]
fn wrong_type_of_a_duration_says_what_a_duration_looks_like() {
    let like = "expected a duration like \"2s\" or \"200ms\"";
    let check = "backend[rabbitmq].check";
    let backend = "backend[rabbitmq]";
    assert_refused_with(&[
        (
            format!("[global]\nhard_stop_after = 30\n{GOOD}"),
            problem(2, "global.hard_stop_after", &format!("30: {like}")),
        ),
        (
            format!("[resolvers]\ntimeout_resolve = 1\n{GOOD}"),
            problem(2, "resolvers.timeout_resolve", &format!("1: {like}")),
        ),
        (
            format!("[resolvers]\ntimeout_retry = 1.5\n{GOOD}"),
            problem(2, "resolvers.timeout_retry", &format!("1.5: {like}")),
        ),
        (
            format!("[resolvers]\nhold_valid = true\n{GOOD}"),
            problem(2, "resolvers.hold_valid", &format!("true: {like}")),
        ),
        (
            good_with(
                "backend = \"rabbitmq\"",
                "backend = \"rabbitmq\"\ntimeout_first_byte = 5",
            ),
            problem(
                9,
                "frontend[amqp].timeout_first_byte",
                &format!("5: {like}"),
            ),
        ),
        (
            good_with(
                "failback = \"after:30s\"",
                "failback = \"after:30s\"\ntimeout_connect = 1",
            ),
            problem(
                14,
                &format!("{backend}.timeout_connect"),
                &format!("1: {like}"),
            ),
        ),
        (
            good_with(
                "failback = \"after:30s\"",
                "failback = \"after:30s\"\ntimeout_idle = 60",
            ),
            problem(
                14,
                &format!("{backend}.timeout_idle"),
                &format!("60: {like}"),
            ),
        ),
        (
            good_with("inter = \"1s\"", "inter = 1"),
            problem(17, &format!("{check}.inter"), &format!("1: {like}")),
        ),
        (
            good_with("fastinter = \"200ms\"", "fastinter = 200"),
            problem(18, &format!("{check}.fastinter"), &format!("200: {like}")),
        ),
        (
            good_with("rise = 2", "downinter = 5\nrise = 2"),
            problem(19, &format!("{check}.downinter"), &format!("5: {like}")),
        ),
        (
            good_with("rise = 2", "timeout = \"soon\"\nrise = 2"),
            problem(
                19,
                &format!("{check}.timeout"),
                &format!("\"soon\": {like}"),
            ),
        ),
    ]);
}

#[test]
fn wrong_type_of_a_choice_lists_the_choices() {
    assert_refused_with(&[
        (
            good_with("balance = \"first\"", "balance = 1"),
            problem(
                12,
                "backend[rabbitmq].balance",
                "1: expected one of [\"first\", \"roundrobin\", \"leastconn\", \"source\"]",
            ),
        ),
        (
            good_with("type = \"rabbitmq\"", "type = 7"),
            problem(
                16,
                "backend[rabbitmq].check.type",
                "7: expected one of [\"tcp\", \"amqp\", \"http\", \"rabbitmq\"]",
            ),
        ),
        (
            good_with("role = \"backup\"", "role = false"),
            problem(
                31,
                "backend[rabbitmq].server[rabbit2].role",
                "false: expected one of [\"primary\", \"backup\"]",
            ),
        ),
        (
            good_with("failback = \"after:30s\"", "failback = 30"),
            problem(
                13,
                "backend[rabbitmq].failback",
                "30: expected \"immediate\", \"manual\" or \"after:<duration>\" such as \"after:30s\"",
            ),
        ),
    ]);
}

#[test]
fn wrong_type_of_an_address_says_what_an_address_looks_like() {
    assert_refused_with(&[
        (
            good_with("address = \"10.0.0.11:5672\"", "address = 5672"),
            problem(
                26,
                "backend[rabbitmq].server[rabbit1].address",
                "5672: expected IP:port or hostname:port, such as \"10.0.0.11:5672\" or \"rabbit1:5672\"",
            ),
        ),
        (
            good_with("bind = \"0.0.0.0:5672\"", "bind = 5672"),
            problem(
                7,
                "frontend[amqp].bind",
                "5672: expected IP:port, such as \"0.0.0.0:5672\" or \"[::]:5672\"",
            ),
        ),
    ]);
}

#[test]
fn wrong_types_are_all_reported_at_once() {
    let text = GOOD
        .replace("rise = 2", "rise = \"2\"")
        .replace("inter = \"1s\"", "inter = 1")
        .replace("weight = 10", "weight = \"10\"");
    let keys: Vec<String> = parse(&text)
        .unwrap_err()
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(
        keys,
        [
            "backend[rabbitmq].check.inter",
            "backend[rabbitmq].check.rise",
            "backend[rabbitmq].server[rabbit2].weight",
        ]
    );
}

#[test]
fn an_unknown_check_type_is_one_problem_not_a_cascade() {
    assert_refused_with(&[(
        good_with("type = \"rabbitmq\"", "type = \"htp\"\npath = \"/health\""),
        problem(
            16,
            "backend[rabbitmq].check.type",
            "\"htp\": expected one of [\"tcp\", \"amqp\", \"http\", \"rabbitmq\"]",
        ),
    )]);
}

#[test]
fn admin_token_problems_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let missing = dir.path().join("no-such-token");
    let bind = "bind = \"127.0.0.1:8404\"";
    assert_refused_with(&[
        (
            good_with(bind, &format!("{bind}\ntoken_file = {:?}", missing.display().to_string())),
            problem(
                4,
                "admin.token_file",
                &format!(
                    "cannot read {}: No such file or directory (os error 2): expected a readable file holding the bearer token",
                    missing.display()
                ),
            ),
        ),
        (
            good_with(bind, &format!("{bind}\ntoken_file = {:?}", empty.display().to_string())),
            problem(
                4,
                "admin.token_file",
                "the token is empty: expected a non-empty bearer token, or no token at all",
            ),
        ),
        (
            good_with(bind, &format!("{bind}\ntoken = \"\"")),
            problem(
                4,
                "admin.token",
                "the token is empty: expected a non-empty bearer token, or no token at all",
            ),
        ),
        (
            good_with(
                bind,
                &format!("{bind}\ntoken = \"s3cret-token\"\ntoken_file = {:?}", empty.display().to_string()),
            ),
            problem(5, "admin.token_file", "set either token or token_file, not both"),
        ),
    ]);
}

#[test]
fn a_token_file_is_read_once_per_load_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "  s3cret-token-from-a-file\n").unwrap();
    let bind = "bind = \"127.0.0.1:8404\"";
    let text = good_with(
        bind,
        &format!("{bind}\ntoken_file = {:?}", file.display().to_string()),
    );
    let admin = parse(&text).unwrap().admin.unwrap();
    assert_eq!(admin.token.as_deref(), Some("s3cret-token-from-a-file"));
    assert!(!admin.commands_unprotected());
}

#[test]
fn only_an_admin_bind_beyond_loopback_without_a_token_is_unprotected() {
    let admin = |bind: &str, token: Option<&str>| Admin {
        bind: bind.parse().unwrap(),
        token: token.map(str::to_owned),
    };
    assert!(admin("0.0.0.0:8404", None).commands_unprotected());
    assert!(admin("[::]:8404", None).commands_unprotected());
    assert!(!admin("0.0.0.0:8404", Some("t")).commands_unprotected());
    assert!(!admin("127.0.0.1:8404", None).commands_unprotected());
    assert!(!admin("[::1]:8404", None).commands_unprotected());
}

#[test]
fn a_zero_duration_is_one_problem_naming_its_value() {
    let zero = |value: &str| format!("{value}: expected a duration above zero, like \"1s\"");
    let check = "backend[rabbitmq].check";
    assert_refused_with(&[
        (
            good_with("inter = \"1s\"", "inter = \"0s\""),
            problem(17, &format!("{check}.inter"), &zero("\"0s\"")),
        ),
        (
            good_with("fastinter = \"200ms\"", "fastinter = \"0ms\""),
            problem(18, &format!("{check}.fastinter"), &zero("\"0ms\"")),
        ),
        (
            good_with("rise = 2", "timeout = \"0s\"\nrise = 2"),
            problem(19, &format!("{check}.timeout"), &zero("\"0s\"")),
        ),
        (
            good_with("balance = \"first\"", "timeout_connect = \"0s\""),
            problem(12, "backend[rabbitmq].timeout_connect", &zero("\"0s\"")),
        ),
    ]);
}

#[test]
fn every_bad_check_key_is_its_own_problem() {
    let text = good_with("inter = \"1s\"", "inter = \"0s\"")
        .replacen("rise = 2", "rise = 0", 1)
        .replacen("fall = 2", "fall = 1001", 1);
    let check = "backend[rabbitmq].check";
    assert_eq!(
        parse(&text).unwrap_err(),
        vec![
            problem(
                17,
                &format!("{check}.inter"),
                "\"0s\": expected a duration above zero, like \"1s\""
            ),
            problem(
                19,
                &format!("{check}.rise"),
                "0: expected a whole number from 1 to 1000"
            ),
            problem(
                20,
                &format!("{check}.fall"),
                "1001: expected a whole number from 1 to 1000"
            ),
        ]
    );
}
