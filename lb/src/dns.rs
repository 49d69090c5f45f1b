//! Servers given by name: re-resolved periodically with hickory-resolver,
//! so a Kubernetes pod that comes back with a new IP is followed without a
//! reload, and a name that stops resolving keeps its last address for
//! `hold_valid` (HAProxy's `resolvers` section, `hold valid`).
//!
//! The data path and the checks never resolve: they read the server's
//! current [`Resolution`], so a slow DNS server cannot delay a failover.
//! What an answer does to that resolution is decided by the pure
//! [`Record::on_answer`] (in [`crate::resolution`], which knows nothing of
//! servers or resolvers); [`run`] only asks, hands the answer to the
//! server and sleeps.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use tracing::{info, warn};

use crate::config::{Address, Resolvers};
use crate::resolution::Change;
use crate::server::ServerState;

/// A resolver built from `[resolvers]`: the system's configuration, with
/// the name servers replaced when the file lists some.  Nothing is cached
/// between resolutions, so every `timeout_resolve` asks the server.
/// Without `nameservers`, an unreadable `/etc/resolv.conf` is an error
/// rather than a silent fallback to some public resolver.
pub fn resolver(settings: &Resolvers) -> anyhow::Result<TokioResolver> {
    let system = hickory_resolver::system_conf::read_system_conf();
    let (config, mut options) = match (&settings.nameservers, system) {
        (None, Ok(system)) => system,
        (None, Err(e)) => anyhow::bail!(
            "cannot read the system's resolver configuration ({e}): list resolvers.nameservers"
        ),
        (Some(servers), system) => {
            let (domain, search, options) = match system {
                Ok((c, o)) => (c.domain().cloned(), c.search().to_vec(), o),
                Err(_) => (None, Vec::new(), ResolverOpts::default()),
            };
            let mut group = NameServerConfigGroup::new();
            for s in servers {
                group.merge(NameServerConfigGroup::from_ips_clear(
                    &[s.ip()],
                    s.port(),
                    true,
                ));
            }
            (ResolverConfig::from_parts(domain, search, group), options)
        }
    };
    options.timeout = settings.timeout_retry;
    options.attempts = settings.resolve_retries as usize;
    options.positive_max_ttl = Some(Duration::ZERO);
    options.negative_max_ttl = Some(Duration::ZERO);
    Ok(
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(options)
            .build(),
    )
}

/// Keeps `server`'s address resolved for ever (the caller cancels it).
pub async fn run(server: Arc<ServerState>, resolver: Arc<TokioResolver>, settings: Resolvers) {
    let Address::Name { host, port } = &server.config.address else {
        return;
    };
    // The whole resolution is bounded too: hickory's own timeout applies
    // per query, and a name with many search domains makes many queries.
    let bound = settings.timeout_retry * settings.resolve_retries.max(1) * 4;
    loop {
        let answer = match tokio::time::timeout(bound, resolver.lookup_ip(host.as_str())).await {
            Ok(Ok(found)) => Ok(found.iter().collect()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {bound:?}")),
        };
        let change = server.dns_answer(answer, Instant::now(), settings.hold_valid);
        if let Some(change) = change {
            log(&server.id(), host, *port, &change, settings.hold_valid);
        }
        tokio::time::sleep(settings.timeout_resolve).await;
    }
}

fn log(id: &str, host: &str, port: u16, change: &Change, hold: Duration) {
    let at = |ip: &IpAddr| SocketAddr::new(*ip, port);
    match change {
        Change::Resolved { from: None, to } => {
            info!(server = id, "Server {id}: {host} resolved to {}.", at(to))
        }
        Change::Resolved { from: Some(from), to } => warn!(
            server = id,
            "Server {id}: {host} changed its address from {} to {} (DNS).",
            at(from),
            at(to)
        ),
        Change::Recovered(ip) => {
            info!(server = id, "Server {id}: {host} resolves again, to {}.", at(ip))
        }
        Change::Holding { address, error } => warn!(
            server = id,
            "Server {id}: cannot resolve {host} ({error}); keeping {} for up to hold_valid {hold:?}.",
            at(address)
        ),
        Change::Expired { address, error } => warn!(
            server = id,
            "Server {id}: {host} has not resolved for hold_valid {hold:?} ({error}): address {} dropped.",
            at(address)
        ),
        Change::Unresolvable(error) => {
            warn!(server = id, "Server {id}: cannot resolve {host} ({error}).")
        }
    }
}
