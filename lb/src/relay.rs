//! Moves bytes both ways between a client and its server.
//!
//! Each direction is its own loop with one bounded buffer, so a slow reader
//! on one side pushes back on the writer at the other (no unbounded
//! queueing).  End of stream is forwarded as a write shutdown and the other
//! direction keeps flowing (correct TCP half-close); the session ends when
//! both directions have ended, or at the first error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Per-direction buffer: enough for AMQP frames at full speed, small enough
/// that ten thousand sessions stay well under a gigabyte.
const BUFFER: usize = 32 * 1024;

/// Byte counters the relay adds to while it runs.
pub struct Counters<'a> {
    /// Client to server.
    pub upstream: &'a AtomicU64,
    /// Server to client.
    pub downstream: &'a AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("idle for {0:?}")]
    Idle(Duration),
}

/// Relays until both directions are closed, an error, or `idle` passes
/// without a byte in either direction (when set).
pub async fn relay(
    client: TcpStream,
    server: TcpStream,
    idle: Option<Duration>,
    counters: Counters<'_>,
) -> Result<(), RelayError> {
    let start = Instant::now();
    let last_activity = AtomicU64::new(0);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let both = async {
        tokio::try_join!(
            pipe(
                &mut client_read,
                &mut server_write,
                counters.upstream,
                &last_activity,
                start
            ),
            pipe(
                &mut server_read,
                &mut client_write,
                counters.downstream,
                &last_activity,
                start
            ),
        )
    };
    match idle {
        None => both.await.map(|_| ()).map_err(RelayError::from),
        Some(limit) => {
            tokio::pin!(both);
            loop {
                let since = Duration::from_nanos(last_activity.load(Ordering::Relaxed));
                let deadline = start + since + limit;
                if Instant::now() >= deadline {
                    return Err(RelayError::Idle(limit));
                }
                tokio::select! {
                    r = &mut both => return r.map(|_| ()).map_err(RelayError::from),
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
        }
    }
}

async fn pipe<R, W>(
    from: &mut R,
    to: &mut W,
    counter: &AtomicU64,
    last_activity: &AtomicU64,
    start: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: tell the other side we are done sending, keep
            // reading what it still has to say.
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
        last_activity.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}
