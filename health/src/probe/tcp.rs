//! `tcp` check: a TCP connect (HAProxy's plain `check`), optionally
//! followed by a preamble (a PROXY protocol header), to an IP address or to
//! a host name resolved at each check.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::error::{l4_error, ProbeError, Unresolved};
use crate::config::Address;

/// Bytes the `tcp` and `amqp` probes write right after connecting, before
/// their own exchange, made from the probe socket's own (local) address and
/// the server's address: `preamble(local, server)`.
///
/// This is how a check honours the PROXY protocol (HAProxy sends the header
/// on checks of a `send-proxy` server): warren-lb builds the header, this
/// crate knows no PROXY format.  An empty result writes nothing.
pub type Preamble<'a> = dyn Fn(SocketAddr, SocketAddr) -> Vec<u8> + Send + Sync + 'a;

/// Passes when a TCP connection to `addr` is established within `timeout`.
/// The connection is closed at once.
pub async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    tcp_with_preamble(addr, timeout, None).await
}

/// [`tcp`], but when `preamble` is given its bytes (for the socket's local
/// address and `addr`) are written after the connect, as HAProxy does on a
/// `send-proxy` server's checks, and must be accepted by the kernel within
/// `timeout` too; then the connection is closed.
pub(crate) async fn tcp_with_preamble(
    addr: SocketAddr,
    timeout: Duration,
    preamble: Option<&Preamble<'_>>,
) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    let mut s = connect(addr, deadline).await?;
    let bytes = preamble_bytes(&s, addr, preamble)?;
    if !bytes.is_empty() {
        match timeout_at(deadline, s.write_all(&bytes)).await {
            Err(_) => return Err(ProbeError::L4Timeout),
            Ok(Err(e)) => return Err(l4_error(&e)),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}

/// [`tcp_with_preamble`] to `address`, name resolution included, all
/// within `timeout`.
///
/// The addresses a name resolves to are tried in the resolver's order until
/// one accepts, so a dual-stack name is up while either family answers.  A
/// resolution that outlives the deadline fails the check; the resolver's own
/// thread finishes in the background (getaddrinfo cannot be cancelled).
pub(crate) async fn tcp_to(
    address: &Address,
    timeout: Duration,
    preamble: Option<&Preamble<'_>>,
) -> Result<(), ProbeError> {
    let (host, port) = match address {
        Address::Ip(socket) => return tcp_with_preamble(*socket, timeout, preamble).await,
        Address::Name { host, port } => (host.as_str(), *port),
    };
    let unresolved = |reason| ProbeError::Unresolved {
        host: host.to_owned(),
        reason,
    };
    let deadline = Instant::now() + timeout;
    let sockets: Vec<_> = match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
        Err(_) => return Err(unresolved(Unresolved::Timeout(timeout))),
        Ok(Err(e)) => return Err(unresolved(Unresolved::Failed(e.to_string()))),
        Ok(Ok(sockets)) => sockets.collect(),
    };
    if sockets.is_empty() {
        return Err(unresolved(Unresolved::NoAddress));
    }
    let mut failures = Vec::new();
    for socket in sockets {
        let left = deadline.saturating_duration_since(Instant::now());
        match tcp_with_preamble(socket, left, preamble).await {
            Ok(()) => return Ok(()),
            Err(e) => failures.push((socket, e)),
        }
    }
    Err(ProbeError::EveryAddress {
        host: host.to_owned(),
        failures,
    })
}

/// The preamble for this connection (empty without one).
pub(crate) fn preamble_bytes(
    s: &TcpStream,
    addr: SocketAddr,
    preamble: Option<&Preamble<'_>>,
) -> Result<Vec<u8>, ProbeError> {
    let Some(preamble) = preamble else {
        return Ok(Vec::new());
    };
    let local = s.local_addr().map_err(|e| l4_error(&e))?;
    Ok(preamble(local, addr))
}

/// Connect with a deadline; errors worded like HAProxy's L4 reasons.
pub(crate) async fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, ProbeError> {
    match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => Err(ProbeError::L4Timeout),
        Ok(Err(e)) => Err(l4_error(&e)),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::probe::testutil::{closed_port, serve};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn passes_on_listening_port() {
        let addr = serve(|_s| async {}).await;
        tcp(addr, Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn refused_reads_like_haproxy() {
        let addr = closed_port().await;
        let e = tcp(addr, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Layer4 connection problem: Connection refused"
        );
        assert!(!e.is_timeout());
    }

    /// A stand-in PROXY v1 line built from the probe's addresses.
    pub(crate) fn v1(local: SocketAddr, server: SocketAddr) -> Vec<u8> {
        format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            local.ip(),
            server.ip(),
            local.port(),
            server.port()
        )
        .into_bytes()
    }

    /// A server that reports, for each connection, everything the probe
    /// sent up to its close, with the probe's address and its own.
    async fn recording_server() -> (
        SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr, SocketAddr)>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = serve(move |mut s| {
            let tx = tx.clone();
            async move {
                use tokio::io::AsyncReadExt;
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                let _ = tx.send((got, s.peer_addr().unwrap(), s.local_addr().unwrap()));
            }
        })
        .await;
        (addr, rx)
    }

    #[tokio::test]
    async fn preamble_is_written_first_and_names_both_ends() {
        let (addr, mut rx) = recording_server().await;
        let calls = std::sync::Mutex::new(Vec::new());
        let preamble = |local: SocketAddr, server: SocketAddr| {
            calls.lock().unwrap().push((local, server));
            v1(local, server)
        };
        tcp_with_preamble(addr, Duration::from_secs(5), Some(&preamble))
            .await
            .unwrap();
        let (got, probe, server) = rx.recv().await.unwrap();
        let expected = v1(probe, server);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "the server reads exactly the preamble, naming the probe's own address and the server's"
        );
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].1, addr);
        assert_eq!(calls[0].0.ip(), addr.ip());
        assert_ne!(calls[0].0.port(), 0);
    }

    #[tokio::test]
    async fn without_preamble_nothing_is_written() {
        let (addr, mut rx) = recording_server().await;
        tcp(addr, Duration::from_secs(5)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().0, b"");
    }

    #[tokio::test]
    async fn refused_with_preamble_never_calls_it() {
        let addr = closed_port().await;
        let preamble = |_: SocketAddr, _: SocketAddr| -> Vec<u8> { panic!("no connection") };
        let e = tcp_with_preamble(addr, Duration::from_secs(5), Some(&preamble))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Layer4 connection problem: Connection refused"
        );
    }

    #[tokio::test]
    async fn a_host_name_is_resolved_and_every_address_is_named_when_all_fail() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let localhost = Address::Name {
            host: "localhost".into(),
            port: l.local_addr().unwrap().port(),
        };
        let t = Duration::from_secs(5);
        tcp_to(&localhost, t, None).await.unwrap();
        drop(l);
        let refused = tcp_to(&localhost, t, None).await.unwrap_err();
        let ProbeError::EveryAddress { host, failures } = &refused else {
            panic!("{refused:?}");
        };
        assert_eq!(host, "localhost");
        // Only the IPv4 listener existed; a stock /etc/hosts (`::1 localhost`) makes
        // glibc return [::1] first, so the order of the tried addresses is not asserted.
        assert!(
            failures
                .iter()
                .any(|(a, _)| a.ip().is_loopback() && a.is_ipv4()),
            "{refused}"
        );
        let reason = refused.to_string();
        assert!(reason.starts_with("localhost ("), "{reason}");
        assert!(reason.contains("127.0.0.1:"), "{reason}");
        assert!(
            reason.contains(": Layer4 connection problem: Connection refused"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_fails_naming_host_and_error() {
        // RFC 6761: .invalid never resolves.
        let nowhere = Address::Name {
            host: "no-such-host.invalid".into(),
            port: 8404,
        };
        let e = tcp_to(&nowhere, Duration::from_secs(10), None)
            .await
            .unwrap_err();
        let ProbeError::Unresolved { host, reason } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(host, "no-such-host.invalid");
        assert!(
            matches!(reason, Unresolved::Failed(words) if !words.is_empty()),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("cannot resolve no-such-host.invalid: "),
            "{e}"
        );
    }
}
