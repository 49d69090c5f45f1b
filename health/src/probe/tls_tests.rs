//! The handshake against an in-process tokio-rustls server with
//! rcgen-made certificates: each rejection gives its own reason.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::{CheckTls, ClientCert, Verify};
use crate::probe::ProbeError;

/// A CA that signs leaf certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    /// A CA whose subject is `CN=name`.
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        roots
    }

    /// A leaf for `names`; `expired` puts not_after in 2020.
    fn leaf(&self, names: &[&str], expired: bool) -> ClientCert {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        ClientCert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }
}

/// A TLS server on 127.0.0.1 presenting `leaf`; it completes handshakes
/// and closes.
async fn server(leaf: ClientCert) -> SocketAddr {
    server_answering(leaf, Vec::new()).await
}

/// [`server`] that writes `answer` inside TLS after the handshake.
async fn server_answering(leaf: ClientCert, answer: Vec<u8>) -> SocketAddr {
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(leaf.chain, leaf.key)
            .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (acceptor, answer) = (acceptor.clone(), answer.clone());
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                if let Ok(mut s) = acceptor.accept(s).await {
                    let _ = s.write_all(&answer).await;
                    let _ = s.flush().await;
                }
            });
        }
    });
    address
}

async fn handshake(tls: &CheckTls, address: SocketAddr) -> Result<(), ProbeError> {
    let tcp = TcpStream::connect(address).await.unwrap();
    tls.handshake(tcp, address).await.map(drop)
}

fn sni(name: &str) -> Option<ServerName<'static>> {
    Some(ServerName::try_from(name.to_string()).unwrap())
}

#[tokio::test]
async fn the_right_ca_and_name_pass() {
    let ca = Ca::new("brokers CA");
    let address = server(ca.leaf(&["rabbit.test"], false)).await;
    let tls = CheckTls::new(ca.roots(), Verify::Required, sni("rabbit.test"), None).unwrap();
    handshake(&tls, address).await.unwrap();
}

#[tokio::test]
async fn without_sni_the_certificate_is_checked_against_the_ip() {
    let ca = Ca::new("brokers CA");
    let address = server(ca.leaf(&["127.0.0.1"], false)).await;
    let tls = CheckTls::new(ca.roots(), Verify::Required, None, None).unwrap();
    handshake(&tls, address).await.unwrap();
}

#[tokio::test]
async fn another_ca_is_not_trusted() {
    let ca = Ca::new("brokers CA");
    let address = server(ca.leaf(&["rabbit.test"], false)).await;
    let tls = CheckTls::new(
        Ca::new("other CA").roots(),
        Verify::Required,
        sni("rabbit.test"),
        None,
    )
    .unwrap();
    let e = handshake(&tls, address).await.unwrap_err();
    assert_eq!(e.to_string(), "certificate untrusted (unknown issuer)");
}

#[tokio::test]
async fn a_ca_of_the_same_name_with_another_key_is_not_trusted() {
    let ca = Ca::new("brokers CA");
    let address = server(ca.leaf(&["rabbit.test"], false)).await;
    let impostor = Ca::new("brokers CA").roots();
    let tls = CheckTls::new(impostor, Verify::Required, sni("rabbit.test"), None).unwrap();
    let e = handshake(&tls, address).await.unwrap_err();
    assert_eq!(e.to_string(), "certificate untrusted (bad signature)");
}

#[tokio::test]
async fn a_wrong_name_says_which_names_the_certificate_has() {
    let ca = Ca::new("brokers CA");
    let address = server(ca.leaf(&["rabbit.test"], false)).await;
    let tls = CheckTls::new(ca.roots(), Verify::Required, sni("other.test"), None).unwrap();
    let e = handshake(&tls, address).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate name mismatch: it is for rabbit.test, not other.test"
    );
}

#[tokio::test]
async fn an_expired_certificate_says_when_it_expired() {
    let ca = Ca::new("brokers CA");
    let address = server(ca.leaf(&["rabbit.test"], true)).await;
    let tls = CheckTls::new(ca.roots(), Verify::Required, sni("rabbit.test"), None).unwrap();
    let e = handshake(&tls, address).await.unwrap_err();
    assert_eq!(e.to_string(), "certificate expired on 2020-01-01T00:00:00Z");
}

#[tokio::test]
async fn verify_none_accepts_an_untrusted_expired_certificate() {
    let ca = Ca::new("brokers CA");
    let address = server(ca.leaf(&["rabbit.test"], true)).await;
    let tls = CheckTls::new(
        RootCertStore::empty(),
        Verify::None,
        sni("other.test"),
        None,
    )
    .unwrap();
    handshake(&tls, address).await.unwrap();
}

#[tokio::test]
async fn a_server_that_speaks_no_tls_fails_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"AMQP\x00\x00\x09\x01").await;
        }
    });
    let tls = CheckTls::new(RootCertStore::empty(), Verify::None, None, None).unwrap();
    let e = handshake(&tls, address).await.unwrap_err().to_string();
    assert!(e.starts_with("TLS handshake failed: "), "{e}");
}

#[test]
fn presented_names_lose_their_debug_wrapping() {
    assert_eq!(super::bare_name(r#"DnsName("rabbit.test")"#), "rabbit.test");
    assert_eq!(super::bare_name("IpAddress(10.0.0.1)"), "10.0.0.1");
    assert_eq!(super::bare_name("rabbit.test"), "rabbit.test");
}

#[tokio::test]
async fn the_amqp_probe_speaks_amqp_inside_tls() {
    use crate::probe::amqp::{amqp_with_preamble, tests::connection_start_frame};
    let t = std::time::Duration::from_secs(5);
    let ca = Ca::new("brokers CA");
    let address =
        server_answering(ca.leaf(&["rabbit.test"], false), connection_start_frame()).await;
    let right = CheckTls::new(ca.roots(), Verify::Required, sni("rabbit.test"), None).unwrap();
    amqp_with_preamble(address, t, None, Some(&right))
        .await
        .unwrap();
    let wrong = CheckTls::new(ca.roots(), Verify::Required, sni("other.test"), None).unwrap();
    let e = amqp_with_preamble(address, t, None, Some(&wrong))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate name mismatch: it is for rabbit.test, not other.test"
    );
}

#[tokio::test]
async fn the_client_certificate_is_presented_for_mtls() {
    let ca = Ca::new("brokers CA");
    let leaf = ca.leaf(&["rabbit.test"], false);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(ca.roots()),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(clients)
        .with_single_cert(leaf.chain, leaf.key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // Accepts one connection per check below; the verdict is the server's.
    let server = tokio::spawn(async move {
        let mut verdicts = Vec::new();
        for _ in 0..2 {
            let (s, _) = listener.accept().await.unwrap();
            verdicts.push(acceptor.accept(s).await.is_ok());
        }
        verdicts
    });
    let client = ca.leaf(&["warren-lb"], false);
    let with = CheckTls::new(
        ca.roots(),
        Verify::Required,
        sni("rabbit.test"),
        Some(client),
    )
    .unwrap();
    let _ = handshake(&with, address).await;
    let without = CheckTls::new(ca.roots(), Verify::Required, sni("rabbit.test"), None).unwrap();
    let _ = handshake(&without, address).await;
    assert_eq!(server.await.unwrap(), vec![true, false]);
}

#[tokio::test]
async fn the_http_probe_speaks_https_with_the_same_settings() {
    use crate::probe::{http, HttpCheck};
    let t = std::time::Duration::from_secs(5);
    let ca = Ca::new("brokers CA");
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec();
    let address = server_answering(ca.leaf(&["rabbit.test"], false), answer).await;
    let check = |tls: CheckTls| HttpCheck {
        url: format!("https://{address}/api/health/checks/alarms"),
        username: None,
        password: None,
        expect_status: 200,
        expect_body: Some("ok".into()),
        tls: Some(tls),
    };
    let right = CheckTls::new(ca.roots(), Verify::Required, sni("rabbit.test"), None).unwrap();
    http(&check(right.clone()), t).await.unwrap();
    let e = http(&check(right.with_sni(sni("other.test"))), t)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate name mismatch: it is for rabbit.test, not other.test"
    );
    let other = CheckTls::new(
        Ca::new("other CA").roots(),
        Verify::Required,
        sni("rabbit.test"),
        None,
    )
    .unwrap();
    let e = http(&check(other), t).await.unwrap_err();
    assert_eq!(e.to_string(), "certificate untrusted (unknown issuer)");
}
