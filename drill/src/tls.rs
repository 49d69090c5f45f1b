//! TLS for the drill (`--tls`): one rustls client configuration, built from
//! the operator's CA file (and optional client certificate), used by the
//! workload's AMQPS connections and by the management API's `https://` URLs.
//!
//! Only the given CAs are trusted, never the system store: a drill checks a
//! deployment's own chain, and a certificate that chains to a public root but
//! not to `--tls-ca` is a misconfiguration it must report. The crypto
//! provider is ring, named explicitly (docs/decisions/tls-rustls.md).
//!
//! lapin 2.5 reads client identities as PKCS#12 only and picks its roots
//! from features, so the drill does the handshake itself and hands lapin the
//! finished stream (docs/decisions/drill-tls.md).

use anyhow::{bail, Context, Result};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::io;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tcp_stream::{HandshakeResult, RustlsConnector, TcpStream};

/// What the operator gave on the command line.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM CAs the endpoint's certificate must chain to.
    pub ca: PathBuf,
    /// Client certificate chain and its key (mTLS), both or neither.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// A loaded TLS client: the rustls configuration and the name checked in
/// the endpoint's certificate.
#[derive(Clone)]
pub struct DrillTls {
    config: Arc<ClientConfig>,
    server_name: String,
}

impl std::fmt::Debug for DrillTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrillTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// How long the TCP connect and the handshake may block the connecting thread.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl DrillTls {
    /// Read the files and build the client. `server_name` is the DNS name or
    /// IP the endpoint's certificate must be for. Every problem names the
    /// flag, the file and what was expected.
    pub fn load(files: &TlsFiles, server_name: &str) -> Result<DrillTls> {
        ServerName::try_from(server_name.to_string()).map_err(|_| {
            anyhow::anyhow!("--tls-server-name {server_name:?}: not a DNS name or IP address")
        })?;
        let mut roots = RootCertStore::empty();
        for cert in read_certs("--tls-ca", &files.ca)? {
            roots.add(cert).with_context(|| {
                format!(
                    "--tls-ca {}: a certificate is not a usable CA",
                    files.ca.display()
                )
            })?;
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("rustls: no protocol version")?
            .with_root_certificates(roots);
        let config = match &files.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs("--tls-cert", cert)?;
                let key = read_key(key)?;
                builder.with_client_auth_cert(chain, key).with_context(|| {
                    format!(
                        "--tls-cert {} / --tls-key: the key cannot be used with this certificate",
                        cert.display()
                    )
                })?
            }
        };
        Ok(DrillTls {
            config: Arc::new(config),
            server_name: server_name.to_string(),
        })
    }

    /// The rustls configuration, for reqwest's `https://` management URLs.
    pub fn client_config(&self) -> ClientConfig {
        (*self.config).clone()
    }

    /// Connect to `endpoint` (HOST:PORT) and finish the TLS handshake: the
    /// stream lapin's `Connection::connector` runs AMQP over. Blocking, with
    /// timeouts, on lapin's blocking thread.
    #[allow(clippy::result_large_err)] // lapin's connector type, not ours to box
    pub fn connect(&self, endpoint: &str) -> HandshakeResult {
        let tcp = connect_any(endpoint)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let connector = RustlsConnector::from(self.config.clone());
        let stream = TcpStream::from_std(tcp)?.into_rustls(&connector, &self.server_name)?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    }
}

/// Words for a failed TLS handshake inside a lapin connect error, if that
/// is what it was: what is wrong with the endpoint's certificate, in terms
/// of the flags that decide it.
pub fn handshake_failure(e: &lapin::Error) -> Option<String> {
    let lapin::Error::IOError(io) = e else {
        return None;
    };
    let tls = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    let rustls::Error::InvalidCertificate(c) = tls else {
        return Some(format!("TLS handshake failed: {tls}"));
    };
    use rustls::CertificateError as C;
    Some(match c {
        C::UnknownIssuer => "certificate not trusted: it does not chain to a CA in --tls-ca \
                             (UnknownIssuer)"
            .to_string(),
        C::BadSignature => "certificate not trusted: a CA in --tls-ca has its issuer's name \
                            but did not sign it (BadSignature)"
            .to_string(),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "certificate name mismatch: it is not for the name checked \
             (--tls-server-name, default the --endpoint host) ({c:?})"
        ),
        C::Expired | C::ExpiredContext { .. } => format!("certificate expired ({c:?})"),
        other => format!("certificate rejected: {other:?}"),
    })
}

/// A TCP connection to the first address of `endpoint` that answers
/// (`localhost` may resolve to ::1 before 127.0.0.1).
fn connect_any(endpoint: &str) -> io::Result<std::net::TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address");
    for addr in endpoint.to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The host part of HOST:PORT (`[v6]:port` too): the default server name.
pub fn endpoint_host(endpoint: &str) -> &str {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}: cannot read", path.display()))
}

fn read_certs(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{flag} {}: not a valid PEM file", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{flag} {}: no certificate found: expected a PEM file with at least one \
             \"-----BEGIN CERTIFICATE-----\" block",
            path.display()
        );
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read_file("--tls-key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        anyhow::anyhow!(
            "--tls-key {}: no private key found: expected a PEM \"-----BEGIN PRIVATE KEY-----\", \
             \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_host_strips_port_and_brackets() {
        assert_eq!(endpoint_host("mq.example:5671"), "mq.example");
        assert_eq!(endpoint_host("127.0.0.1:5671"), "127.0.0.1");
        assert_eq!(endpoint_host("[::1]:5671"), "::1");
        assert_eq!(endpoint_host("mq.example"), "mq.example");
    }
}
