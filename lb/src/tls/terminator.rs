//! A TLS frontend's server side for one generation: the rustls
//! configuration (versions, client verification, ALPN), the rotating
//! certificate, and the task that watches its files.
//!
//! Built at start and on every reload from the files as they are then, so
//! a reload (SIGHUP) loads the current certificate too and changes of the
//! other TLS settings take effect for new handshakes.  The watch lives as
//! long as the terminator: dropping it (a reload replaced it, the listener
//! closed) ends the task.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::rotating::RotatingCert;
use super::rotations::Rotations;
use super::watch;
use crate::certificates::{self as pair, Leaf};
use crate::config::{Tls, TlsVersion, VerifyClient};

pub struct Terminator {
    pub acceptor: TlsAcceptor,
    pub timeout_handshake: Duration,
    current: Arc<RotatingCert>,
    _watch: DropGuard,
}

impl Terminator {
    /// The leaf of the certificate new handshakes present now.
    pub fn leaf(&self) -> Arc<Leaf> {
        self.current.leaf()
    }

    /// Loads `tls`'s files and starts watching them; `stop` ends the watch
    /// with the process.
    pub fn start(
        frontend: &str,
        tls: &Tls,
        rotations: &Arc<Rotations>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Terminator> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Fingerprint before loading: a change in between is seen at the
        // first poll and loaded then.
        let loaded_content = watch::fingerprint(&tls.cert, &tls.key);
        let loaded = pair::load(&tls.cert, &tls.key, &provider, pair::now())
            .with_context(|| format!("frontend '{frontend}': TLS"))?;
        let current = Arc::new(RotatingCert::new(loaded));
        let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
            TlsVersion::V1_2 => &[&TLS13, &TLS12],
            TlsVersion::V1_3 => &[&TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .with_context(|| format!("frontend '{frontend}': TLS versions"))?;
        let builder = match (&tls.client_ca, tls.verify_client) {
            (Some(ca), VerifyClient::Required | VerifyClient::Optional) => {
                let roots = pair::client_roots(ca)
                    .with_context(|| format!("frontend '{frontend}': TLS client_ca"))?;
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if tls.verify_client == VerifyClient::Optional {
                    verifier = verifier.allow_unauthenticated();
                }
                let verifier = verifier
                    .build()
                    .with_context(|| format!("frontend '{frontend}': TLS client_ca"))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(current.clone());
        config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let own_stop = stop.child_token();
        tokio::spawn(watch::run(
            frontend.to_owned(),
            tls.clone(),
            current.clone(),
            watch::Settle::new(loaded_content),
            rotations.clone(),
            own_stop.clone(),
        ));
        Ok(Terminator {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            timeout_handshake: tls.timeout_handshake,
            current,
            _watch: own_stop.drop_guard(),
        })
    }
}
