//! Async probes that produce check outcomes for [`crate::CheckMachine`].
//!
//! Every probe honours its `timeout` as a deadline for the whole probe
//! (connect + exchange), never panics on garbage, and reports failures as a
//! [`ProbeError`] whose message reads like HAProxy's check reasons
//! ("Layer4 connection problem: Connection refused", "Layer4 timeout",
//! "Layer7 wrong status: 503", ...).

mod amqp;
mod http;
mod rabbitmq;
mod tcp;

pub use amqp::{amqp, amqp_with_preamble};
pub use http::{http, HttpCheck};
pub use rabbitmq::{judge, rabbitmq, Answer, NodeReport, RabbitCheck};
pub use tcp::{tcp, tcp_with_preamble};

use std::io;
use std::net::SocketAddr;

use crate::resource::{io_local_resource, LocalResource};

/// Bytes the `tcp` and `amqp` probes write right after connecting, before
/// their own exchange, made from the probe socket's own (local) address and
/// the server's address: `preamble(local, server)`.
///
/// This is how a check honours the PROXY protocol (HAProxy sends the header
/// on checks of a `send-proxy` server): warren-lb builds the header, this
/// crate knows no PROXY format.  An empty result writes nothing.
pub type Preamble<'a> = dyn Fn(SocketAddr, SocketAddr) -> Vec<u8> + Send + Sync + 'a;

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
            ProbeError::L4Timeout | ProbeError::L6Timeout | ProbeError::L7Timeout
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

#[cfg(test)]
pub(crate) mod testutil {
    //! Tiny in-process servers for probe tests.
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A listener on 127.0.0.1 that runs `handler` for every accepted
    /// connection; returns its address. The task ends with the runtime.
    pub async fn serve<F, Fut>(handler: F) -> SocketAddr
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                tokio::spawn(handler(s));
            }
        });
        addr
    }

    /// An address on 127.0.0.1 with nothing listening (bound, then closed).
    pub async fn closed_port() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }

    /// A minimal HTTP/1.1 server: `route(path, authorization header)` gives
    /// (status, body). One request per connection.
    pub async fn http_server<R>(route: R) -> SocketAddr
    where
        R: Fn(&str, Option<&str>) -> (u16, String) + Send + Sync + 'static,
    {
        let route = std::sync::Arc::new(route);
        serve(move |mut s| {
            let route = route.clone();
            async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let auth = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().to_string())
                    });
                let (status, body) = route(&path, auth.as_deref());
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        })
        .await
    }
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
