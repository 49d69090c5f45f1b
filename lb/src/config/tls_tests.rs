//! The `[frontend.tls]` table: defaults, the settings that only make sense
//! together, and the text-only parse the documented examples use (the
//! files' own checks are in lb/tests/tls.rs, with real certificates).

use super::*;

fn with_tls(tls: &str) -> String {
    format!(
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:5671\"\nbackend = \"b\"\n[frontend.tls]\n{tls}\n[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"127.0.0.1:5672\"\n"
    )
}

const PAIR: &str = "cert = \"/etc/warren/tls/lb.crt\"\nkey = \"/etc/warren/tls/lb.key\"";

fn only_problem(text: &str) -> Problem {
    match parse_text_only(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(mut problems) => {
            assert_eq!(problems.len(), 1, "{problems:#?}");
            problems.remove(0)
        }
    }
}

#[test]
fn defaults_are_tls_1_2_no_client_certificates_no_alpn_10s_handshake() {
    let config = parse_text_only(&with_tls(PAIR)).unwrap();
    let tls = config.frontends[0].tls.clone().unwrap();
    assert_eq!(tls.min_version, TlsVersion::V1_2);
    assert_eq!(tls.verify_client, VerifyClient::None);
    assert!(tls.alpn.is_empty());
    assert_eq!(tls.timeout_handshake, std::time::Duration::from_secs(10));
}

#[test]
fn a_client_ca_alone_means_required() {
    let config = parse_text_only(&with_tls(&format!("{PAIR}\nclient_ca = \"/ca.pem\""))).unwrap();
    let tls = config.frontends[0].tls.clone().unwrap();
    assert_eq!(tls.verify_client, VerifyClient::Required);
    assert_eq!(tls.client_ca, Some("/ca.pem".into()));
}

#[test]
fn verifying_clients_needs_a_client_ca_and_a_client_ca_needs_verifying() {
    let p = only_problem(&with_tls(&format!("{PAIR}\nverify_client = \"optional\"")));
    assert_eq!(p.key, "frontend[f].tls.verify_client");
    assert!(p.message.contains("expected client_ca"), "{}", p.message);
    let p = only_problem(&with_tls(&format!(
        "{PAIR}\nclient_ca = \"/ca.pem\"\nverify_client = \"none\""
    )));
    assert_eq!(p.key, "frontend[f].tls.client_ca");
    assert_eq!(p.line, Some(8));
}

#[test]
fn bad_choices_and_values_name_their_key() {
    for (line, key) in [
        (
            "verify_client = \"always\"",
            "frontend[f].tls.verify_client",
        ),
        ("min_version = \"1.1\"", "frontend[f].tls.min_version"),
        ("alpn = []", "frontend[f].tls.alpn"),
        ("alpn = [\"\"]", "frontend[f].tls.alpn[0]"),
        (
            "timeout_handshake = \"0s\"",
            "frontend[f].tls.timeout_handshake",
        ),
        ("crt = \"x\"", "frontend[f].tls.crt"),
    ] {
        let p = only_problem(&with_tls(&format!("{PAIR}\n{line}")));
        assert_eq!(p.key, key, "{line}: {p:?}");
    }
}

#[test]
fn a_full_parse_opens_the_files() {
    let p = match parse(&with_tls(PAIR)) {
        Ok(_) => panic!("files that do not exist were accepted"),
        Err(problems) => problems[0].clone(),
    };
    assert_eq!(p.key, "frontend[f].tls.cert");
    assert_eq!(p.line, Some(6));
    assert!(
        p.message
            .starts_with("/etc/warren/tls/lb.crt: cannot read:"),
        "{}",
        p.message
    );
}
