//! Reads a frontend's certificate chain and private key from their PEM
//! files and checks that they make a pair that can serve: the key parses
//! and is a key, it matches the leaf, the leaf is valid now, and each
//! certificate of the chain is signed by the next one given.
//!
//! Used twice with the same rules, so what `check-config` accepts is what
//! serves: by configuration validation (every problem reported with its
//! line), and by the listener when it loads or rotates the pair.  Every
//! error names the file and what is wrong with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

/// A pair that passed every check, ready for handshakes.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub certified: Arc<CertifiedKey>,
    pub leaf: Leaf,
}

/// What the log line of a rotation, `/status` and `/metrics` say of the
/// certificate in service: read once, when the pair is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The `cert` file it was read from.
    pub file: PathBuf,
    /// The serial number, hex with colons (as `openssl x509 -serial` shows
    /// it, with separators).
    pub serial: String,
    /// The subject's distinguished name (`CN=lb.example`).
    pub subject: String,
    /// notBefore and notAfter, seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

impl Leaf {
    /// notAfter as RFC 3339 UTC (`2027-01-01T00:00:00Z`).
    pub fn not_after_rfc3339(&self) -> String {
        rfc3339(self.not_after)
    }
    /// notBefore as RFC 3339 UTC.
    pub fn not_before_rfc3339(&self) -> String {
        rfc3339(self.not_before)
    }
}

fn rfc3339(unix: i64) -> String {
    let t = if unix >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(unix.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Why a file cannot serve; each names the file it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    #[error("{}: cannot read: {error}", path.display())]
    Unreadable { path: PathBuf, error: String },
    #[error("{}: no certificate found: expected a PEM file with at least one \"-----BEGIN CERTIFICATE-----\" block, the server's certificate first", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: certificate {index} is not a valid X.509 certificate: {error}", path.display())]
    BadCertificate {
        path: PathBuf,
        index: usize,
        error: String,
    },
    #[error("{}: this is a certificate, not a private key: expected the PEM private key (\"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\") that goes with cert", path.display())]
    CertificateAsKey { path: PathBuf },
    #[error("{}: no private key found: expected a PEM \"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: the private key cannot be used: {error}", path.display())]
    UnusableKey { path: PathBuf, error: String },
    #[error("{}: the private key does not match the certificate in {}: expected the key the certificate was issued for", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("{}: the certificate expired on {not_after}", path.display())]
    Expired { path: PathBuf, not_after: String },
    #[error("{}: the certificate is not valid before {not_before}", path.display())]
    NotYetValid { path: PathBuf, not_before: String },
    #[error("{}: the chain is broken at certificate {index}: it is not signed by certificate {} ({}), expected each certificate to be followed by its issuer", path.display(), index + 1, issuer)]
    BrokenChain {
        path: PathBuf,
        index: usize,
        issuer: String,
    },
}

/// Reads and checks the pair at `cert` and `key`, as valid at `now`
/// (seconds since the Unix epoch).
pub fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
    now: i64,
) -> Result<Loaded, PairError> {
    let chain = certificates(cert)?;
    let leaf = check_chain(cert, &chain, now)?;
    let key_der = private_key(key)?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| PairError::UnusableKey {
            path: key.to_owned(),
            error: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(PairError::KeyMismatch {
            key: key.to_owned(),
            cert: cert.to_owned(),
        });
    }
    Ok(Loaded {
        certified: Arc::new(certified),
        leaf,
    })
}

/// A client certificate and key for TLS to the servers: the same checks
/// as [`load`] (so what `check-config` accepts is what is presented), then
/// the chain and key as the rustls client takes them.
pub fn client_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PairError> {
    load(cert, key, &rustls::crypto::ring::default_provider(), now())?;
    Ok((certificates(cert)?, private_key(key)?))
}

/// The CAs a certificate must chain to (HAProxy's `ca-file`): a client's
/// at a frontend, a server's for the checks.
pub fn client_roots(path: &Path) -> Result<RootCertStore, PairError> {
    let mut roots = RootCertStore::empty();
    for (index, der) in certificates(path)?.into_iter().enumerate() {
        roots.add(der).map_err(|e| PairError::BadCertificate {
            path: path.to_owned(),
            index: index + 1,
            error: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Seconds since the Unix epoch, as [`load`] takes the present.
pub fn now() -> i64 {
    ASN1Time::now().timestamp()
}

fn read(path: &Path) -> Result<Vec<u8>, PairError> {
    std::fs::read(path).map_err(|e| PairError::Unreadable {
        path: path.to_owned(),
        error: e.to_string(),
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PairError> {
    let pem = read(path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| PairError::BadCertificate {
            path: path.to_owned(),
            index: 1,
            error: format!("PEM: {e}"),
        })?;
    if chain.is_empty() {
        return Err(PairError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PairError> {
    let pem = read(path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => Ok(key),
        Err(_) if CertificateDer::pem_slice_iter(&pem).any(|c| c.is_ok()) => {
            Err(PairError::CertificateAsKey {
                path: path.to_owned(),
            })
        }
        Err(_) => Err(PairError::NoKey {
            path: path.to_owned(),
        }),
    }
}

/// The leaf is valid at `now` and each certificate is signed by the next
/// (the last may be signed by a CA the clients hold, so it is not checked).
fn check_chain(path: &Path, chain: &[CertificateDer<'_>], now: i64) -> Result<Leaf, PairError> {
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| PairError::BadCertificate {
                    path: path.to_owned(),
                    index: i + 1,
                    error: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let leaf = &parsed[0];
    let validity = leaf.validity();
    if validity.not_after.timestamp() < now {
        return Err(PairError::Expired {
            path: path.to_owned(),
            not_after: validity.not_after.to_string(),
        });
    }
    if validity.not_before.timestamp() > now {
        return Err(PairError::NotYetValid {
            path: path.to_owned(),
            not_before: validity.not_before.to_string(),
        });
    }
    for (index, pair) in parsed.windows(2).enumerate() {
        if pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .is_err()
        {
            return Err(PairError::BrokenChain {
                path: path.to_owned(),
                index: index + 1,
                issuer: pair[1].subject().to_string(),
            });
        }
    }
    Ok(Leaf {
        file: path.to_owned(),
        serial: leaf.raw_serial_as_string(),
        subject: leaf.subject().to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    struct Issuer {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn ca(signer: Option<&Issuer>) -> Issuer {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = match signer {
            None => params.self_signed(&key).unwrap(),
            Some(s) => params.signed_by(&key, &s.cert, &s.key).unwrap(),
        };
        Issuer { cert, key }
    }

    /// A leaf for localhost signed by `by`; `from_year` = when it starts.
    fn leaf(by: &Issuer, from_year: Option<i32>) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        if let Some(year) = from_year {
            params.not_before = rcgen::date_time_ymd(year, 1, 1);
            params.not_after = rcgen::date_time_ymd(year + 1, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &by.cert, &by.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn load_texts(dir: &Path, chain: &str, key: &str) -> Result<Loaded, PairError> {
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&c, chain).unwrap();
        std::fs::write(&k, key).unwrap();
        load(&c, &k, &rustls::crypto::ring::default_provider(), now())
    }

    #[test]
    fn a_chain_through_an_intermediate_loads_and_one_that_skips_it_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let root = ca(None);
        let intermediate = ca(Some(&root));
        let (cert, key) = leaf(&intermediate, None);
        let whole = format!("{cert}{}", intermediate.cert.pem());
        let loaded = load_texts(dir.path(), &whole, &key).unwrap();
        assert_eq!(loaded.certified.cert.len(), 2);
        assert!(!loaded.leaf.serial.is_empty());

        let skipping = format!("{cert}{}", root.cert.pem());
        match load_texts(dir.path(), &skipping, &key) {
            Err(PairError::BrokenChain { index: 1, .. }) => {}
            other => panic!("expected a broken chain at 1, got {other:?}"),
        }
    }

    #[test]
    fn a_certificate_from_the_future_is_not_valid_yet() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = leaf(&ca(None), Some(2090));
        let e = load_texts(dir.path(), &cert, &key).unwrap_err();
        assert!(matches!(e, PairError::NotYetValid { .. }), "{e:?}");
        assert!(e.to_string().contains("is not valid before"), "{e}");
    }

    #[test]
    fn client_roots_need_at_least_one_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not PEM at all\n").unwrap();
        let e = client_roots(&path).unwrap_err();
        assert!(matches!(e, PairError::NoCertificate { .. }), "{e:?}");
        std::fs::write(&path, ca(None).cert.pem()).unwrap();
        assert_eq!(client_roots(&path).unwrap().len(), 1);
    }
}
