//! A session's client side: the accepted socket, or the TLS stream over it
//! when the frontend terminates TLS; how it is opened (handshake, first
//! bytes) and which relay it takes.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::pipes::PipePool;
use crate::relay::{relay, Counters, RelayError};
use crate::stream_relay;
use crate::tls::Terminator;

/// Room for what a client sends first (the AMQP header is 8 bytes) while
/// `timeout_first_byte` waits for it; the relay's reads are larger and go
/// around this buffer once it is empty.
const FIRST_BYTES: usize = 1024;

pub enum Client {
    Plain(TcpStream),
    Tls(Box<BufReader<TlsStream<TcpStream>>>),
}

/// Why a client was closed before any server was chosen.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("TLS handshake not finished within timeout_handshake {0:?}")]
    HandshakeTimeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("nothing received within timeout_first_byte {0:?}")]
    NothingSent(Duration),
}

impl Client {
    /// The handshake when `tls` is set (within its `timeout_handshake`),
    /// then, when `first_byte` is set, waiting that long for the client's
    /// first bytes (after the handshake: its first plaintext), which stay
    /// for the relay.
    pub async fn open(
        socket: TcpStream,
        tls: Option<&Arc<Terminator>>,
        first_byte: Option<Duration>,
    ) -> Result<Client, OpenError> {
        let Some(tls) = tls else {
            if let Some(limit) = first_byte {
                if !first_bytes(&socket, limit).await {
                    return Err(OpenError::NothingSent(limit));
                }
            }
            return Ok(Client::Plain(socket));
        };
        let stream = tokio::time::timeout(tls.timeout_handshake, tls.acceptor.accept(socket))
            .await
            .map_err(|_| OpenError::HandshakeTimeout(tls.timeout_handshake))?
            .map_err(OpenError::Handshake)?;
        let mut stream = BufReader::with_capacity(FIRST_BYTES, stream);
        if let Some(limit) = first_byte {
            match tokio::time::timeout(limit, stream.fill_buf()).await {
                Ok(Ok(bytes)) if !bytes.is_empty() => {}
                _ => return Err(OpenError::NothingSent(limit)),
            }
        }
        Ok(Client::Tls(Box::new(stream)))
    }

    /// Relays to `server`: spliced for a bare socket, copied for TLS.
    pub async fn relay(
        self,
        server: TcpStream,
        idle: Option<Duration>,
        counters: Counters<'_>,
        pipes: &PipePool,
    ) -> Result<(), RelayError> {
        match self {
            Client::Plain(socket) => relay(socket, server, idle, counters, pipes).await,
            Client::Tls(stream) => stream_relay::relay(stream, server, idle, counters).await,
        }
    }
}

/// Waits until the client has sent something (left in the socket for the
/// relay), at most `limit`; false when it sent nothing or closed.
async fn first_bytes(client: &TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, client.peek(&mut byte)).await,
        Ok(Ok(n)) if n > 0
    )
}
