//! TLS for the `amqp`, `http` and `rabbitmq` checks: one rustls client
//! configuration built from the check's own CA, verification mode, SNI name
//! and optional client certificate (HAProxy's `check-ssl ca-file verify sni
//! crt`), and a handshake whose failure says *why* in words an operator can
//! act on ("certificate expired on ...", "certificate untrusted (unknown
//! issuer)", "certificate name mismatch: it is for A, not B", "TLS handshake
//! failed: ...").
//!
//! One builder for the three kinds, so the same settings mean the same thing
//! whichever probe uses them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::error::io_reason;
use super::ProbeError;

/// Whether the server's certificate is verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Chain to one of the check's CAs, valid now, for the SNI name (or IP).
    Required,
    /// Any certificate is accepted (the handshake's signatures still are
    /// checked, so the session is encrypted, just not authenticated).
    None,
}

/// A client certificate chain and its key, for mTLS to the brokers.
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The TLS settings of one check, ready to connect with: the `amqp` probe
/// handshakes with its connector, the `http` and `rabbitmq` probes hand the
/// same client configuration to reqwest, so the three verify alike.
#[derive(Clone)]
pub struct CheckTls {
    config: Arc<ClientConfig>,
    connector: TlsConnector,
    sni: Option<ServerName<'static>>,
}

/// Two settings are equal when they share one client configuration and
/// name: what a reload compares (the configuration itself has no equality).
impl PartialEq for CheckTls {
    fn eq(&self, other: &CheckTls) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.sni == other.sni
    }
}

impl Eq for CheckTls {}

impl std::fmt::Debug for CheckTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckTls").field("sni", &self.sni).finish()
    }
}

impl CheckTls {
    /// A check TLS configuration: `roots` are the CAs that sign the
    /// brokers' certificates (unused with [`Verify::None`]); `sni` overrides
    /// the name sent and checked (default: the server's address).
    pub fn new(
        roots: RootCertStore,
        verify: Verify,
        sni: Option<ServerName<'static>>,
        client: Option<ClientCert>,
    ) -> Result<CheckTls, rustls::Error> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match verify {
            Verify::Required => builder.with_root_certificates(roots),
            Verify::None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
        };
        let config = match client {
            Some(c) => builder.with_client_auth_cert(c.chain, c.key)?,
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(config);
        Ok(CheckTls {
            connector: TlsConnector::from(config.clone()),
            config,
            sni,
        })
    }

    /// The same settings for another server: `sni` is the name sent and
    /// checked (`None`: the server's IP is checked, nothing sent).
    pub fn with_sni(&self, sni: Option<ServerName<'static>>) -> CheckTls {
        CheckTls {
            sni,
            ..self.clone()
        }
    }

    /// The name sent and checked, if not the IP.
    pub(crate) fn sni(&self) -> Option<&ServerName<'static>> {
        self.sni.as_ref()
    }

    /// The rustls client configuration, for reqwest's
    /// `use_preconfigured_tls` (which takes it by value).
    pub(crate) fn client_config(&self) -> ClientConfig {
        (*self.config).clone()
    }

    /// The handshake over a connected `tcp` to `address`.  The name sent
    /// and checked is the SNI name, or else the address's IP (no SNI is
    /// sent for an IP).  The caller's deadline bounds it.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        address: SocketAddr,
    ) -> Result<TlsStream<TcpStream>, ProbeError> {
        let name = self
            .sni
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(address.ip().into()));
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| handshake_error(&e))
    }
}

/// The reason for a failed handshake.  rustls reports its own error
/// wrapped in an `io::Error`; anything else is the socket's.
fn handshake_error(e: &std::io::Error) -> ProbeError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r) => rustls_error(r),
        None => ProbeError::Tls(format!("TLS handshake failed: {}", io_reason(e))),
    }
}

/// A rustls error as the check's reason, whichever probe met it.
pub(crate) fn rustls_error(e: &rustls::Error) -> ProbeError {
    match e {
        rustls::Error::InvalidCertificate(c) => ProbeError::Tls(certificate_reason(c)),
        other => ProbeError::Tls(format!("TLS handshake failed: {other}")),
    }
}

/// Words for a rejected server certificate.
fn certificate_reason(c: &CertificateError) -> String {
    match c {
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("certificate expired on {}", date(*not_after))
        }
        CertificateError::Expired => "certificate expired".to_string(),
        CertificateError::NotValidYetContext { not_before, .. } => {
            format!("certificate not valid before {}", date(*not_before))
        }
        CertificateError::UnknownIssuer => "certificate untrusted (unknown issuer)".to_string(),
        // An issuer of the right name whose key did not sign it: another CA.
        CertificateError::BadSignature => "certificate untrusted (bad signature)".to_string(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "certificate name mismatch: it is for {}, not {}",
            if presented.is_empty() {
                "no name".to_string()
            } else {
                let names: Vec<&str> = presented.iter().map(|n| bare_name(n)).collect();
                names.join(", ")
            },
            expected.to_str()
        ),
        other => format!("certificate rejected: {other}"),
    }
}

/// rustls gives the certificate's names in their Debug form
/// (`DnsName("a.example")`, `IpAddress(10.0.0.1)`): the name itself.
fn bare_name(presented: &str) -> &str {
    match presented.split_once('(') {
        Some((_, rest)) if rest.ends_with(')') => rest[..rest.len() - 1].trim_matches('"'),
        _ => presented,
    }
}

/// A certificate time as an RFC 3339 date, UTC.
fn date(t: UnixTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.as_secs()))
}

/// `verify = "none"`: any certificate, but real handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
