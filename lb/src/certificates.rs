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
    /// The leaf's serial number, hex with colons (as `openssl x509 -serial`
    /// shows it, with separators), for the log line of a rotation.
    pub serial: String,
    /// When the leaf expires, as the certificate says it.
    pub not_after: String,
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
        serial: leaf.serial,
        not_after: leaf.not_after,
    })
}

/// The CAs a client certificate must chain to (HAProxy's `ca-file`).
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

/// What the log says about a leaf.
struct Leaf {
    serial: String,
    not_after: String,
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
        serial: leaf.raw_serial_as_string(),
        not_after: validity.not_after.to_string(),
    })
}
