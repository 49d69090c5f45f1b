//! The relay for a client that is not a bare socket (a TLS stream): a
//! read/write copy through a buffer per direction.
//!
//! splice(2) moves bytes between file descriptors without looking at
//! them, so it cannot apply where warren-lb decrypts: such sessions take
//! this path, the plain ones keep [`crate::relay`].  Same contract as
//! [`crate::relay::relay`]: half-close forwarded (a TLS client's end is a
//! close_notify, answered by one), the session ends when both directions
//! have, at the first error, or after `idle`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::relay::{within_idle, Counters, RelayError, BUFFER};

pub async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    client: S,
    mut server: TcpStream,
    idle: Option<Duration>,
    counters: Counters<'_>,
) -> Result<(), RelayError> {
    let start = Instant::now();
    let last_activity = AtomicU64::new(0);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = server.split();
    let both = async {
        tokio::try_join!(
            forward(
                &mut client_read,
                &mut server_write,
                counters.upstream,
                &last_activity,
                start
            ),
            forward(
                &mut server_read,
                &mut client_write,
                counters.downstream,
                &last_activity,
                start
            ),
        )
    };
    within_idle(both, idle, &last_activity, start).await
}

/// One direction until end of stream (forwarded as a shutdown) or an error.
async fn forward(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    counter: &AtomicU64,
    last_activity: &AtomicU64,
    start: Instant,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
        last_activity.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}
