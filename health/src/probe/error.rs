//! Why a probe failed, worded like HAProxy's check reasons.

use std::io;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use crate::resource::{io_local_resource, LocalResource};

/// Why a probe failed. `Display` gives an HAProxy-style reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// TCP connect (or the socket afterwards) failed.
    #[error("Layer4 connection problem: {0}")]
    L4Con(String),
    /// TCP connect did not finish within the timeout.
    #[error("Layer4 timeout")]
    L4Timeout,
    /// The protocol answer (AMQP) was malformed or of the wrong kind.
    #[error("Layer6 invalid response: {0}")]
    L6Rsp(String),
    /// Connected, but no protocol answer (AMQP) within the timeout.
    #[error("Layer6 timeout")]
    L6Timeout,
    /// HTTP answered with an unexpected status.
    #[error("Layer7 wrong status: {0}")]
    L7Status(u16),
    /// HTTP answered, but the body did not match or could not be parsed.
    #[error("Layer7 invalid response: {0}")]
    L7Rsp(String),
    /// Connected, but no (complete) HTTP answer within the timeout.
    #[error("Layer7 timeout")]
    L7Timeout,
    /// The RabbitMQ management API answered, and the node is not eligible.
    #[error("rabbitmq: {0}")]
    Rabbit(String),
    /// The RabbitMQ node reports a version the check does not know (or
    /// none): it is not judged at all.  Kept apart from [`ProbeError::Rabbit`]
    /// so warren-lb can log it once per change rather than per check.
    #[error("rabbitmq: {0}")]
    UnknownBroker(String),
    /// The host name of the probe's address did not resolve: the resolver
    /// failed (`reason` is its own words), found no address, or outlived
    /// the probe's deadline.
    #[error("cannot resolve {host}: {reason}")]
    Unresolved { host: String, reason: Unresolved },
    /// The host name resolved, and the probe failed on every address
    /// (tried in the resolver's order), each for its own reason.
    #[error("{host} ({})", failures_of(.failures))]
    EveryAddress {
        host: String,
        failures: Vec<(SocketAddr, ProbeError)>,
    },
    /// The TLS handshake with the server failed; the reason names the
    /// certificate problem ("certificate expired on ...", "certificate
    /// untrusted (unknown issuer)", "certificate name mismatch: it is for A,
    /// not B") or says "TLS handshake failed: ...".
    #[error("{0}")]
    Tls(String),
    /// The `exec` command did not finish within the timeout (it is killed).
    #[error("exec timeout")]
    ExecTimeout,
    /// The `exec` command could not be started; the OS error's words.
    #[error("exec failed: {0}")]
    ExecFailed(String),
    /// The `exec` command ended unsuccessfully.
    #[error("exec exited with {0}")]
    ExecExited(ExitStatus),
    /// The interface exists, and its operational state is neither `up` nor
    /// `unknown`.
    #[error("interface {name} is {operstate}")]
    InterfaceDown { name: String, operstate: String },
    /// No interface of that name (its `operstate` cannot be read).
    #[error("interface {0} does not exist")]
    NoInterface(String),
    /// The probe's own socket could not be had: a local resource ran out
    /// (HAProxy's "Socket error").  Says nothing about the server.
    #[error("Socket error: {reason}: {}", .resource.describe())]
    Resource {
        resource: LocalResource,
        reason: String,
    },
}

impl ProbeError {
    /// True for the timeout variants.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ProbeError::L4Timeout
                | ProbeError::L6Timeout
                | ProbeError::L7Timeout
                | ProbeError::ExecTimeout
                | ProbeError::Unresolved {
                    reason: Unresolved::Timeout(_),
                    ..
                }
        )
    }

    /// True when the probe failed for a local reason ([`ProbeError::Resource`]):
    /// the check learnt nothing about the server.
    pub fn is_local(&self) -> bool {
        matches!(self, ProbeError::Resource { .. })
    }
}

/// A failed socket call of a probe: a local shortage (EMFILE ...) or a
/// Layer4 problem with the server.
pub(crate) fn l4_error(e: &io::Error) -> ProbeError {
    match io_local_resource(e) {
        Some(resource) => ProbeError::Resource {
            resource,
            reason: io_reason(e),
        },
        None => ProbeError::L4Con(io_reason(e)),
    }
}

/// An io error as HAProxy-style words: "Connection refused", not
/// "Connection refused (os error 111)".
pub(crate) fn io_reason(e: &io::Error) -> String {
    let s = match e.kind() {
        io::ErrorKind::ConnectionRefused => "Connection refused",
        io::ErrorKind::ConnectionReset => "Connection reset by peer",
        io::ErrorKind::ConnectionAborted => "Connection aborted",
        io::ErrorKind::NotConnected => "Not connected",
        io::ErrorKind::AddrNotAvailable => "Cannot assign requested address",
        io::ErrorKind::HostUnreachable => "No route to host",
        io::ErrorKind::NetworkUnreachable => "Network is unreachable",
        io::ErrorKind::BrokenPipe => "Broken pipe",
        io::ErrorKind::TimedOut => "Connection timed out",
        _ => {
            let full = e.to_string();
            return match full.find(" (os error") {
                Some(i) => full[..i].to_string(),
                None => full,
            };
        }
    };
    s.to_string()
}

/// Why a host name did not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// The resolver's error, in its own words.
    #[error("{0}")]
    Failed(String),
    /// The resolver answered with no address.
    #[error("no address")]
    NoAddress,
    /// The resolver had not answered when the probe's time was up.
    #[error("timeout after {0:?}")]
    Timeout(Duration),
}

/// `addr: reason; addr: reason`, in the order tried.
fn failures_of(failures: &[(SocketAddr, ProbeError)]) -> String {
    let each: Vec<String> = failures.iter().map(|(a, e)| format!("{a}: {e}")).collect();
    each.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_shortage_is_a_socket_error_not_a_layer4_problem() {
        let emfile = io::Error::from_raw_os_error(24);
        let e = l4_error(&emfile);
        assert!(e.is_local(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Socket error: Too many open files: process open files limit reached (RLIMIT_NOFILE)"
        );
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = l4_error(&refused);
        assert!(!e.is_local());
        assert_eq!(
            e.to_string(),
            "Layer4 connection problem: Connection refused"
        );
    }
}
