//! Async probes that produce check outcomes for [`crate::CheckMachine`].
//!
//! A check is a [`Probe`] (what to do, and to whom) and [`run`] (do it
//! within a timeout): warren-lb builds one from a backend's `check` and
//! warren-vip from a `track`, and neither dispatches on a probe kind itself.
//!
//! Every probe honours its `timeout` as a deadline for the whole probe
//! (resolution + connect + exchange), never panics on garbage, and reports
//! failures as a [`ProbeError`] whose message reads like HAProxy's check
//! reasons ("Layer4 connection problem: Connection refused", "Layer4
//! timeout", "Layer7 wrong status: 503", ...).

mod amqp;
mod error;
mod exec;
mod http;
mod interface;
mod rabbitmq;
mod tcp;
#[cfg(test)]
mod testutil;
mod tls;

use std::net::SocketAddr;
use std::time::Duration;

pub use amqp::amqp;
pub use error::{ProbeError, Unresolved};
pub use http::{http, HttpCheck};
pub use rabbitmq::{judge, rabbitmq, Answer, NodeReport, RabbitCheck};
pub use tcp::{tcp, Preamble};
pub use tls::{CheckTls, ClientCert, Verify};

use crate::config::Address;

/// One check to run: the probe kind with its target and options.
///
/// Options a kind will gain (TLS for `amqp`, `http` and `rabbitmq`: a CA
/// file, verification, SNI, a client certificate) become fields of that
/// kind's variant or check struct, so [`run`] stays the one place that
/// dispatches on the kind.
pub enum Probe<'a> {
    /// TCP connect to an IP address, or to each address a host name
    /// resolves to until one accepts; `preamble` is written after the
    /// connect.
    Tcp {
        address: Address,
        preamble: Option<&'a Preamble<'a>>,
    },
    /// AMQP 0-9-1 protocol header answered by `Connection.Start`, after
    /// `preamble`.
    Amqp {
        address: SocketAddr,
        preamble: Option<&'a Preamble<'a>>,
        /// The AMQP header inside TLS (the `amqps` listener, 5671).
        tls: Option<&'a CheckTls>,
    },
    /// One HTTP GET with an expected status (and body).
    Http(HttpCheck),
    /// The cluster-aware eligibility of one RabbitMQ node.
    Rabbitmq(RabbitCheck),
    /// A command (program and arguments, no shell) that must exit 0.
    Exec { command: Vec<String> },
    /// A network interface that must be operationally up.
    Interface { name: String },
}

/// Runs `probe` within `timeout`. A passed `rabbitmq` probe returns what
/// the node reported of its cluster; every other passed probe `None`.
pub async fn run(probe: &Probe<'_>, timeout: Duration) -> Result<Option<NodeReport>, ProbeError> {
    match probe {
        Probe::Tcp { address, preamble } => tcp::tcp_to(address, timeout, *preamble)
            .await
            .map(|()| None),
        Probe::Amqp {
            address,
            preamble,
            tls,
        } => amqp::amqp_with_preamble(*address, timeout, *preamble, *tls)
            .await
            .map(|()| None),
        Probe::Http(check) => http(check, timeout).await.map(|()| None),
        Probe::Rabbitmq(check) => rabbitmq(check, timeout).await.map(Some),
        Probe::Exec { command } => exec::exec(command, timeout).await.map(|()| None),
        // Reading one sysfs file takes no time worth a deadline.
        Probe::Interface { name } => interface::interface(name).await.map(|()| None),
    }
}
