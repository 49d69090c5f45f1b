//! `tcp` check: a TCP connect (HAProxy's plain `check`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::{io_reason, ProbeError};

/// Passes when a TCP connection to `addr` is established within `timeout`.
/// The connection is closed at once.
pub async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    connect(addr, deadline).await.map(drop)
}

/// Connect with a deadline; errors worded like HAProxy's L4 reasons.
pub(crate) async fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, ProbeError> {
    match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => Err(ProbeError::L4Timeout),
        Ok(Err(e)) => Err(ProbeError::L4Con(io_reason(&e))),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

#[cfg(test)]
mod tests {
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
}
