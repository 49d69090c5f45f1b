//! The certificate a frontend presents, swappable under running sessions.
//!
//! rustls asks a [`ResolvesServerCert`] for the certificate at each
//! handshake, so installing a new one here changes what the next handshake
//! presents and nothing else: an established session finished its
//! handshake long ago and never looks again.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug)]
pub struct RotatingCert {
    /// Read once per handshake and replaced on rotation; the lock is held
    /// only to clone or swap the `Arc`, so a std lock is enough.
    current: RwLock<Arc<CertifiedKey>>,
}

impl RotatingCert {
    pub fn new(first: Arc<CertifiedKey>) -> RotatingCert {
        RotatingCert {
            current: RwLock::new(first),
        }
    }

    /// New handshakes present `next` from now on.
    pub fn install(&self, next: Arc<CertifiedKey>) {
        *self.current.write().expect("certificate lock") = next;
    }
}

impl ResolvesServerCert for RotatingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}
