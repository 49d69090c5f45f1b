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

// --- `[backend.check.tls]`: TLS of the checks to the servers -------------

/// A backend whose `rabbitmq` check has `tls` as its `[backend.check.tls]`.
fn with_check_tls(kind: &str, tls: &str) -> String {
    format!(
        "[[frontend]]\nname = \"f\"\nbind = \"127.0.0.1:5671\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"{kind}\"\nusername = \"u\"\npassword = \"p\"\n[backend.check.tls]\n{tls}\n[[backend.server]]\nname = \"s\"\naddress = \"127.0.0.1:5671\"\n"
    )
}

#[test]
fn check_tls_defaults_to_verify_required_with_the_server_s_name() {
    let config = parse_text_only(&with_check_tls("rabbitmq", "ca = \"/ca.pem\"")).unwrap();
    let tls = config.backends[0].check.tls.clone().unwrap();
    assert_eq!(tls.verify, VerifyServer::Required);
    assert_eq!(tls.ca, Some("/ca.pem".into()));
    assert_eq!((tls.sni, tls.client), (None, None));
    let config = parse_text_only(&with_check_tls(
        "amqp",
        "verify = \"none\"\nsni = \"rabbit1.example\"\ncert = \"/c.pem\"\nkey = \"/k.pem\"",
    ))
    .unwrap();
    let tls = config.backends[0].check.tls.clone().unwrap();
    assert_eq!(tls.verify, VerifyServer::None);
    assert_eq!(tls.sni.as_deref(), Some("rabbit1.example"));
    assert_eq!(
        tls.client,
        Some(ClientCert {
            cert: "/c.pem".into(),
            key: "/k.pem".into()
        })
    );
}

#[test]
fn check_tls_problems_name_their_key_and_line() {
    for (kind, tls, key, line, says) in [
        (
            "rabbitmq",
            "sni = \"r.example\"",
            "backend[b].check.tls.ca",
            11,
            "expected ca",
        ),
        (
            "rabbitmq",
            "verify = \"none\"\nca = \"/ca.pem\"",
            "backend[b].check.tls.ca",
            13,
            "only used when verify",
        ),
        (
            "rabbitmq",
            "ca = \"/ca.pem\"\nverify = \"peer\"",
            "backend[b].check.tls.verify",
            13,
            "expected one of",
        ),
        (
            "rabbitmq",
            "ca = \"/ca.pem\"\nsni = \"not a name\"",
            "backend[b].check.tls.sni",
            13,
            "expected a DNS name",
        ),
        (
            "rabbitmq",
            "ca = \"/ca.pem\"\ncert = \"/c.pem\"",
            "backend[b].check.tls.cert",
            13,
            "expected key too",
        ),
        (
            "http",
            "ca = \"/ca.pem\"\nkey = \"/k.pem\"",
            "backend[b].check.tls.key",
            13,
            "expected cert too",
        ),
        (
            "tcp",
            "ca = \"/ca.pem\"",
            "backend[b].check.tls",
            11,
            "but type is \"tcp\"",
        ),
        (
            "amqp",
            "ca = \"/ca.pem\"\ncafile = \"x\"",
            "backend[b].check.tls.cafile",
            13,
            "unknown field",
        ),
    ] {
        let p = only_problem(&with_check_tls(kind, tls));
        assert_eq!(p.key, key, "{tls}: {p:?}");
        assert_eq!(p.line, Some(line), "{tls}: {p:?}");
        assert!(p.message.contains(says), "{tls}: {p:?}");
    }
}

#[test]
fn check_tls_files_are_read_a_ca_needs_a_certificate_and_a_pair_must_match() {
    use rcgen::{CertificateParams, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["warren-lb".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(path("ca.pem"), cert.pem()).unwrap();
    std::fs::write(path("c.pem"), cert.pem()).unwrap();
    std::fs::write(path("k.pem"), key.serialize_pem()).unwrap();
    std::fs::write(
        path("other.key"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    std::fs::write(path("empty.pem"), "no PEM here\n").unwrap();
    let good = format!(
        "ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"",
        path("ca.pem"),
        path("c.pem"),
        path("k.pem")
    );
    parse(&with_check_tls("rabbitmq", &good)).unwrap();
    for (tls, key, says) in [
        (
            good.replace("ca.pem", "empty.pem"),
            "backend[b].check.tls.ca",
            "no certificate found",
        ),
        (
            good.replace("k.pem", "other.key"),
            "backend[b].check.tls.key",
            "does not match the certificate",
        ),
        (
            good.replace("ca.pem", "missing.pem"),
            "backend[b].check.tls.ca",
            "cannot read",
        ),
    ] {
        let problems = parse(&with_check_tls("rabbitmq", &tls)).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, key, "{problems:#?}");
        assert!(problems[0].message.contains(says), "{problems:#?}");
    }
}
