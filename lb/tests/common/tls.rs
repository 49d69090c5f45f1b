//! TLS for the tests: a CA made with rcgen in a temporary directory, the
//! certificates it signs written as PEM files, and a rustls client.

#![allow(dead_code)] // each test file uses its own subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SerialNumber};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A test CA and where its files go.
pub struct Pki {
    pub dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

/// A certificate with its key, as PEM text.
pub struct Issued {
    pub cert: String,
    pub key: String,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "warren test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir: dir.to_owned(),
            ca,
            ca_key,
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `localhost` with `serial`, valid now: from
    /// 2025-01-01 until [`Pki::not_after`]`(serial)`.
    pub fn leaf(&self, serial: u64) -> Issued {
        self.issue(serial, false)
    }

    /// When [`Pki::leaf`]`(serial)` expires, seconds since the Unix epoch:
    /// 1 January of the year 2030 + `serial`, so that every serial has its
    /// own expiry.
    pub fn not_after(serial: u64) -> i64 {
        rcgen::date_time_ymd(2030 + serial as i32, 1, 1).unix_timestamp()
    }

    /// Like [`Pki::leaf`], but it expired in 2020.
    pub fn expired(&self, serial: u64) -> Issued {
        self.issue(serial, true)
    }

    fn issue(&self, serial: u64, expired: bool) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        } else {
            params.not_before = rcgen::date_time_ymd(2025, 1, 1);
            params.not_after = rcgen::date_time_ymd(2030 + serial as i32, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// Writes `issued` to `name`.crt / `name`.key in the directory, each
    /// through a rename (as a rotation by a tool does), and returns the
    /// paths.
    pub fn install(&self, name: &str, issued: &Issued) -> (PathBuf, PathBuf) {
        let cert = self.dir.join(format!("{name}.crt"));
        let key = self.dir.join(format!("{name}.key"));
        write_atomically(&key, &issued.key);
        write_atomically(&cert, &issued.cert);
        (cert, key)
    }
}

pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An lb config: frontend `name` on a free loopback port terminating TLS
/// with `cert`/`key`, relaying to backend `name`, whose one server
/// `rabbit1` is at `server`.
pub fn terminating_config(name: &str, cert: &Path, key: &Path, server: SocketAddr) -> String {
    format!(
        r#"
[[frontend]]
name = "{name}"
bind = "127.0.0.1:0"
backend = "{name}"
timeout_first_byte = "5s"

[frontend.tls]
cert = "{}"
key = "{}"

[[backend]]
name = "{name}"

[[backend.server]]
name = "rabbit1"
address = "{server}"
"#,
        cert.display(),
        key.display(),
    )
}

/// A client that trusts `ca` and, when given, presents `identity`.
pub fn client(ca: &Path, identity: Option<&Issued>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(id.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(id.key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    // Each handshake full: a resumed one shows the certificate of the
    // session it resumes, not the one the server presents now.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

/// A TLS session to `addr` (as `localhost`), or the handshake's error.
pub async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// The serial of the certificate the server presented, as
/// `openssl x509 -serial` prints it (hex, upper case).
pub fn peer_serial(stream: &TlsStream<TcpStream>) -> String {
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a peer certificate");
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    leaf.raw_serial_as_string().replace(':', "").to_uppercase()
}

/// The hex serial [`peer_serial`] gives for a certificate issued with `n`.
pub fn serial_text(n: u64) -> String {
    let bytes = n.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(7);
    bytes[first..].iter().map(|b| format!("{b:02X}")).collect()
}
