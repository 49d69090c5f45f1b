//! `amqp` check: send the AMQP 0-9-1 protocol header and require a
//! well-formed `Connection.Start` (what a live RabbitMQ listener answers
//! first), then close.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use super::error::{l4_error, ProbeError};
use super::tcp::{connect, preamble_bytes, Preamble};
use super::tls::CheckTls;

/// The AMQP 0-9-1 protocol header.
pub(crate) const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
const FRAME_METHOD: u8 = 1;
const FRAME_END: u8 = 0xCE;
/// Largest Connection.Start payload we accept (RabbitMQ's is well under 1 KiB;
/// the pre-negotiation frame-max minimum is 4 KiB). Anything bigger is garbage.
const MAX_PAYLOAD: u32 = 64 * 1024;

/// Passes when `addr` answers the AMQP 0-9-1 header with a method frame on
/// channel 0 carrying `Connection.Start` (class 10, method 10) with version
/// 0-9, ended by the frame-end octet 0xCE, all within `timeout`.
pub async fn amqp(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    amqp_with_preamble(addr, timeout, None, None).await
}

/// [`amqp`], but when `preamble` is given its bytes (for the socket's local
/// address and `addr`: a PROXY protocol header) go first, in the same write
/// as the AMQP protocol header.  A listener with `proxy_protocol = true`
/// drops a connection that does not start with a PROXY header, so the plain
/// [`amqp`] probe fails against it.  With `tls` the preamble goes in the
/// clear (the PROXY header precedes TLS), then the handshake, then the AMQP
/// header inside TLS.
pub(crate) async fn amqp_with_preamble(
    addr: SocketAddr,
    timeout: Duration,
    preamble: Option<&Preamble<'_>>,
    tls: Option<&CheckTls>,
) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    let mut s = connect(addr, deadline).await?;
    let mut hello = preamble_bytes(&s, addr, preamble)?;
    // Close at once whatever the outcome; the broker logs the aborted
    // handshake, nothing more.
    let Some(tls) = tls else {
        hello.extend_from_slice(PROTOCOL_HEADER);
        return within(deadline, exchange(&mut s, &hello)).await;
    };
    within(deadline, async {
        s.write_all(&hello).await.map_err(|e| l4_error(&e))?;
        let mut s = tls.handshake(s, addr).await?;
        exchange(&mut s, PROTOCOL_HEADER).await
    })
    .await
}

/// The exchange, or "Layer6 timeout" at the deadline.
async fn within(
    deadline: Instant,
    exchange: impl std::future::Future<Output = Result<(), ProbeError>>,
) -> Result<(), ProbeError> {
    timeout_at(deadline, exchange)
        .await
        .unwrap_or(Err(ProbeError::L6Timeout))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    hello: &[u8],
) -> Result<(), ProbeError> {
    s.write_all(hello).await.map_err(|e| l4_error(&e))?;
    let mut head = [0u8; 7];
    read_exact(s, &mut head).await?;
    if &head[..4] == b"AMQP" {
        // The server rejected our version and sent the one it speaks.
        let mut rest = [0u8; 1];
        let _ = read_exact(s, &mut rest).await;
        return Err(ProbeError::L6Rsp(format!(
            "server refused AMQP 0-9-1, offers protocol header {:?}",
            [head[4], head[5], head[6], rest[0]]
        )));
    }
    let frame_type = head[0];
    let channel = u16::from_be_bytes([head[1], head[2]]);
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    if frame_type != FRAME_METHOD || channel != 0 {
        return Err(not_start(format!(
            "frame type {frame_type} on channel {channel}"
        )));
    }
    if !(6..=MAX_PAYLOAD).contains(&size) {
        return Err(not_start(format!("method frame of {size} bytes")));
    }
    let mut payload = vec![0u8; size as usize + 1];
    read_exact(s, &mut payload).await?;
    if payload[size as usize] != FRAME_END {
        return Err(not_start(format!(
            "bad frame-end 0x{:02X}",
            payload[size as usize]
        )));
    }
    let class = u16::from_be_bytes([payload[0], payload[1]]);
    let method = u16::from_be_bytes([payload[2], payload[3]]);
    if (class, method) != (10, 10) {
        return Err(not_start(format!("method {class}.{method}")));
    }
    let (major, minor) = (payload[4], payload[5]);
    if (major, minor) != (0, 9) {
        return Err(ProbeError::L6Rsp(format!(
            "Connection.Start with version {major}-{minor}, expected 0-9"
        )));
    }
    Ok(())
}

fn not_start(detail: String) -> ProbeError {
    ProbeError::L6Rsp(format!("not an AMQP Connection.Start ({detail})"))
}

async fn read_exact<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> Result<(), ProbeError> {
    match s.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProbeError::L6Rsp(
            "connection closed before a complete Connection.Start".into(),
        )),
        Err(e) => Err(l4_error(&e)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::probe::testutil::{closed_port, serve};

    /// A Connection.Start frame like RabbitMQ's (version 0-9, a small
    /// server-properties table, mechanisms and locales).
    pub fn connection_start_frame() -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&10u16.to_be_bytes());
        p.extend_from_slice(&10u16.to_be_bytes());
        p.extend_from_slice(&[0, 9]);
        // server-properties: {"product": S "RabbitMQ"}
        let mut table = Vec::new();
        table.push(7u8);
        table.extend_from_slice(b"product");
        table.push(b'S');
        table.extend_from_slice(&8u32.to_be_bytes());
        table.extend_from_slice(b"RabbitMQ");
        p.extend_from_slice(&(table.len() as u32).to_be_bytes());
        p.extend_from_slice(&table);
        for long in [&b"PLAIN AMQPLAIN"[..], &b"en_US"[..]] {
            p.extend_from_slice(&(long.len() as u32).to_be_bytes());
            p.extend_from_slice(long);
        }
        let mut f = vec![FRAME_METHOD, 0, 0];
        f.extend_from_slice(&(p.len() as u32).to_be_bytes());
        f.extend_from_slice(&p);
        f.push(FRAME_END);
        f
    }

    /// A fake broker: reads the 8-byte header, checks it, answers `reply`,
    /// then waits for the client to close.
    async fn fake(reply: Vec<u8>) -> SocketAddr {
        serve(move |mut s| {
            let reply = reply.clone();
            async move {
                let mut h = [0u8; 8];
                if s.read_exact(&mut h).await.is_err() || &h != PROTOCOL_HEADER {
                    return;
                }
                let _ = s.write_all(&reply).await;
                let mut sink = [0u8; 64];
                while let Ok(n) = s.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        })
        .await
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn valid_connection_start_passes() {
        let addr = fake(connection_start_frame()).await;
        amqp(addr, T).await.unwrap();
    }

    #[tokio::test]
    async fn start_split_in_many_writes_passes() {
        let frame = connection_start_frame();
        let addr = serve(move |mut s| {
            let frame = frame.clone();
            async move {
                let mut h = [0u8; 8];
                if s.read_exact(&mut h).await.is_err() {
                    return;
                }
                for b in frame {
                    if s.write_all(&[b]).await.is_err() {
                        return;
                    }
                    let _ = s.flush().await;
                }
            }
        })
        .await;
        amqp(addr, T).await.unwrap();
    }

    #[tokio::test]
    async fn garbage_fails_as_layer6() {
        let addr = fake(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()).await;
        let e = amqp(addr, T).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Layer6 invalid response: not an AMQP Connection.Start"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn wrong_method_fails() {
        let mut f = connection_start_frame();
        f[10] = 11; // method 10.11
        let addr = fake(f).await;
        let e = amqp(addr, T).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Layer6 invalid response: not an AMQP Connection.Start (method 10.11)"
        );
    }

    #[tokio::test]
    async fn wrong_channel_fails() {
        let mut f = connection_start_frame();
        f[2] = 1;
        let e = amqp(fake(f).await, T).await.unwrap_err();
        assert!(e.to_string().contains("channel 1"), "{e}");
    }

    #[tokio::test]
    async fn bad_frame_end_fails() {
        let mut f = connection_start_frame();
        *f.last_mut().unwrap() = 0x00;
        let e = amqp(fake(f).await, T).await.unwrap_err();
        assert!(e.to_string().contains("bad frame-end 0x00"), "{e}");
    }

    #[tokio::test]
    async fn wrong_version_fails() {
        let mut f = connection_start_frame();
        f[12] = 8; // minor
        let e = amqp(fake(f).await, T).await.unwrap_err();
        assert!(e.to_string().contains("version 0-8"), "{e}");
    }

    #[tokio::test]
    async fn huge_size_is_rejected_without_allocating() {
        let f = vec![FRAME_METHOD, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        let e = amqp(fake(f).await, T).await.unwrap_err();
        assert!(e.to_string().contains("4294967295 bytes"), "{e}");
    }

    #[tokio::test]
    async fn protocol_header_reply_is_refusal() {
        let e = amqp(fake(b"AMQP\x00\x00\x09\x01".to_vec()).await, T)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("refused AMQP 0-9-1"), "{e}");
    }

    #[tokio::test]
    async fn truncated_frame_then_close_fails() {
        let f = connection_start_frame()[..9].to_vec();
        let addr = serve(move |mut s| {
            let f = f.clone();
            async move {
                let mut h = [0u8; 8];
                let _ = s.read_exact(&mut h).await;
                let _ = s.write_all(&f).await;
                // close
            }
        })
        .await;
        let e = amqp(addr, T).await.unwrap_err();
        assert!(e.to_string().contains("connection closed"), "{e}");
    }

    #[tokio::test]
    async fn silent_server_fails_by_timeout() {
        let addr = serve(|mut s| async move {
            // Accept, read everything, never answer.
            let mut sink = [0u8; 64];
            while let Ok(n) = s.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        let e = amqp(addr, Duration::from_millis(300)).await.unwrap_err();
        assert_eq!(e, ProbeError::L6Timeout);
        assert_eq!(e.to_string(), "Layer6 timeout");
    }

    /// A fake broker behind `proxy_protocol = true`: the connection must
    /// start with the PROXY line naming the client's address and the
    /// broker's own; anything else is dropped (as RabbitMQ does), otherwise
    /// the AMQP exchange proceeds as with [`fake`].
    async fn proxy_fake() -> SocketAddr {
        serve(|mut s| async move {
            let expected =
                crate::probe::tcp::tests::v1(s.peer_addr().unwrap(), s.local_addr().unwrap());
            // Byte by byte, giving up at the first one that differs (a
            // parser sees at once that "AMQP" is no PROXY header).
            for want in expected {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).await.is_err() || b[0] != want {
                    return;
                }
            }
            let mut h = [0u8; 8];
            if s.read_exact(&mut h).await.is_err() || &h != PROTOCOL_HEADER {
                return;
            }
            let _ = s.write_all(&connection_start_frame()).await;
            let mut sink = [0u8; 64];
            while let Ok(n) = s.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await
    }

    #[tokio::test]
    async fn preamble_goes_before_the_protocol_header() {
        let addr = proxy_fake().await;
        let preamble = crate::probe::tcp::tests::v1;
        amqp_with_preamble(addr, T, Some(&preamble), None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn proxy_listener_drops_a_probe_without_preamble() {
        let addr = proxy_fake().await;
        let e = amqp(addr, T).await.unwrap_err();
        assert!(
            matches!(e, ProbeError::L6Rsp(_) | ProbeError::L4Con(_)),
            "dropped before a Connection.Start: {e}"
        );
        // A wrong preamble (other addresses) is dropped too.
        let wrong = |_: SocketAddr, _: SocketAddr| b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec();
        assert!(amqp_with_preamble(addr, T, Some(&wrong), None)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn plain_listener_rejects_a_preamble() {
        // `fake` wants the AMQP header first, as a broker without
        // proxy_protocol does: a preamble there fails the check.
        let addr = fake(connection_start_frame()).await;
        let preamble = crate::probe::tcp::tests::v1;
        assert!(amqp_with_preamble(addr, T, Some(&preamble), None)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn refused() {
        let e = amqp(closed_port().await, T).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Layer4 connection problem: Connection refused"
        );
    }
}
