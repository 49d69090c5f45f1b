//! The certificate a frontend presents, swappable under running sessions.
//!
//! rustls asks a [`ResolvesServerCert`] for the certificate at each
//! handshake, so installing a new one here changes what the next handshake
//! presents and nothing else: an established session finished its
//! handshake long ago and never looks again.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::certificates::{Leaf, Loaded};

#[derive(Debug)]
pub struct RotatingCert {
    /// Read once per handshake and replaced on rotation, the key and the
    /// description of its leaf together, so `/status` names exactly the
    /// certificate the next handshake presents.  The lock is held only to
    /// clone or swap the `Arc`s, so a std lock is enough.
    current: RwLock<(Arc<CertifiedKey>, Arc<Leaf>)>,
}

impl RotatingCert {
    pub fn new(first: Loaded) -> RotatingCert {
        RotatingCert {
            current: RwLock::new((first.certified, Arc::new(first.leaf))),
        }
    }

    /// New handshakes present `next` from now on.
    pub fn install(&self, next: Loaded) {
        *self.current.write().expect("certificate lock") = (next.certified, Arc::new(next.leaf));
    }

    /// The leaf of the certificate new handshakes present.
    pub fn leaf(&self) -> Arc<Leaf> {
        self.current.read().expect("certificate lock").1.clone()
    }
}

impl ResolvesServerCert for RotatingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").0.clone())
    }
}
