//! The TLS client of one server's checks, from its backend's
//! `[backend.check.tls]`: the CA file, verification and client certificate
//! are read (by the rules `check-config` applied) when the server's check
//! task starts, that is at start and at each reload, and the name sent and
//! checked is the server's own unless `sni` says otherwise.

use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use warren_health::probe::{CheckTls, ClientCert};

use crate::certificates as pair;
use crate::config::{Address, Server, ServerTls, VerifyServer};

/// The check TLS for `server`, or why it cannot be had (a file that
/// changed since the config was loaded): the check then fails with it.
pub fn for_server(tls: &ServerTls, server: &Server) -> Result<CheckTls, String> {
    let roots = match (&tls.ca, tls.verify) {
        (Some(ca), VerifyServer::Required) => pair::client_roots(ca).map_err(|e| e.to_string())?,
        _ => RootCertStore::empty(),
    };
    let client = match &tls.client {
        None => None,
        Some(c) => {
            let (chain, key) = pair::client_pair(&c.cert, &c.key).map_err(|e| e.to_string())?;
            Some(ClientCert { chain, key })
        }
    };
    let verify = match tls.verify {
        VerifyServer::Required => warren_health::probe::Verify::Required,
        VerifyServer::None => warren_health::probe::Verify::None,
    };
    CheckTls::new(roots, verify, server_name(tls, &server.address), client)
        .map_err(|e| format!("cannot build the TLS client: {e}"))
}

/// The name sent (SNI) and checked in the certificate: `sni` if set, else
/// the server's host name if it is given by one; `None`: its IP is checked
/// and no SNI sent (an IP is never sent as SNI).
pub fn server_name(tls: &ServerTls, address: &Address) -> Option<ServerName<'static>> {
    let name = match (&tls.sni, address) {
        (Some(sni), _) => sni.clone(),
        (None, Address::Name { host, .. }) => host.clone(),
        (None, Address::Ip(_)) => return None,
    };
    // Validation refused an `sni` that is no name; a host name that is
    // none cannot be resolved either.
    ServerName::try_from(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(sni: Option<&str>) -> ServerTls {
        ServerTls {
            ca: None,
            verify: VerifyServer::None,
            sni: sni.map(str::to_owned),
            client: None,
        }
    }

    #[test]
    fn the_name_is_sni_else_the_server_s_host_name_else_none() {
        let named = warren_health::config::parse_address("rabbit1.example:5671").unwrap();
        let ip = warren_health::config::parse_address("10.0.0.11:5671").unwrap();
        let dns = |n: &str| Some(ServerName::try_from(n.to_owned()).unwrap());
        assert_eq!(server_name(&tls(None), &named), dns("rabbit1.example"));
        assert_eq!(server_name(&tls(None), &ip), None);
        assert_eq!(server_name(&tls(Some("r.example")), &ip), dns("r.example"));
        assert_eq!(
            server_name(&tls(Some("r.example")), &named),
            dns("r.example")
        );
    }
}
