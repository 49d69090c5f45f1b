//! `tcp` check: a TCP connect (HAProxy's plain `check`), optionally
//! followed by a preamble (a PROXY protocol header).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::{l4_error, Preamble, ProbeError};

/// Passes when a TCP connection to `addr` is established within `timeout`.
/// The connection is closed at once.
pub async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    tcp_with_preamble(addr, timeout, None).await
}

/// [`tcp`], but when `preamble` is given its bytes (for the socket's local
/// address and `addr`) are written after the connect, as HAProxy does on a
/// `send-proxy` server's checks, and must be accepted by the kernel within
/// `timeout` too; then the connection is closed.
pub async fn tcp_with_preamble(
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

    #[tokio::test]
    async fn preamble_is_written_first_and_names_both_ends() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = serve(move |mut s| {
            let tx = tx.clone();
            async move {
                use tokio::io::AsyncReadExt;
                // Everything the probe sent, up to its close.
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                let expected = v1(s.peer_addr().unwrap(), s.local_addr().unwrap());
                let _ = tx.send((got, expected));
            }
        })
        .await;
        let calls = std::sync::Mutex::new(Vec::new());
        let preamble = |local: SocketAddr, server: SocketAddr| {
            calls.lock().unwrap().push((local, server));
            v1(local, server)
        };
        tcp_with_preamble(addr, Duration::from_secs(5), Some(&preamble))
            .await
            .unwrap();
        let (got, expected) = rx.recv().await.unwrap();
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
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = serve(move |mut s| {
            let tx = tx.clone();
            async move {
                use tokio::io::AsyncReadExt;
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                let _ = tx.send(got);
            }
        })
        .await;
        tcp(addr, Duration::from_secs(5)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), b"");
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
}
