//! Moves bytes both ways between a client and its server.
//!
//! Each direction is its own loop with one bounded buffer, so a slow reader
//! on one side pushes back on the writer at the other (no unbounded
//! queueing).  End of stream is forwarded as a write shutdown and the other
//! direction keeps flowing (correct TCP half-close); the session ends when
//! both directions have ended, or at the first error.
//!
//! The buffer is a kernel pipe: splice(2) moves bytes socket → pipe →
//! socket without copying them through user space, which measured 1.6–1.8×
//! the throughput of a read/write loop here (docs/benchmarks.md).  Pipes
//! come from the process's [`PipePool`] for one chunk at a time, so an idle
//! session holds its two sockets and nothing else (no pipe, no buffer).
//! Where the kernel refuses splice, or no pipe can be had, the read/write
//! loop takes over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{splice, SpliceFFlags};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::pipes::{Lease, PipePool};

/// Per-direction buffer: enough for AMQP frames at full speed, small enough
/// that ten thousand sessions stay well under a gigabyte.
pub(crate) const BUFFER: usize = 32 * 1024;

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
    pipes: &PipePool,
) -> Result<(), RelayError> {
    let start = Instant::now();
    let last_activity = AtomicU64::new(0);
    let both = async {
        tokio::try_join!(
            forward(
                &client,
                &server,
                pipes,
                counters.upstream,
                &last_activity,
                start
            ),
            forward(
                &server,
                &client,
                pipes,
                counters.downstream,
                &last_activity,
                start
            ),
        )
    };
    within_idle(both, idle, &last_activity, start).await
}

/// Runs `both` (the two directions of a session) to its end, or until
/// `idle` (when set) passes with `last_activity` (nanoseconds after
/// `start`, stored by the directions at each chunk) unchanged.
pub(crate) async fn within_idle<T>(
    both: impl std::future::Future<Output = std::io::Result<T>>,
    idle: Option<Duration>,
    last_activity: &AtomicU64,
    start: Instant,
) -> Result<(), RelayError> {
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

/// One direction, `from` → `to`, until end of stream (forwarded as a
/// write shutdown) or an error.  A pipe is leased from `pipes` only while a
/// chunk is in flight; without one the chunk is copied.
async fn forward(
    from: &TcpStream,
    to: &TcpStream,
    pipes: &PipePool,
    counter: &AtomicU64,
    last_activity: &AtomicU64,
    start: Instant,
) -> std::io::Result<()> {
    let mut spliced_any = false;
    loop {
        from.readable().await?;
        let moved = match pipes.take() {
            Some(mut pipe) => match splice_chunk(from, to, &mut pipe).await {
                Err(e)
                    if !spliced_any
                        && pipe.filled == 0
                        && e.raw_os_error() == Some(Errno::EINVAL as i32) =>
                {
                    // The kernel does not splice from this socket (nothing
                    // was read, nothing is lost): copy for good.
                    drop(pipe);
                    return copy(from, to, counter, last_activity, start).await;
                }
                r => {
                    spliced_any = true;
                    r?
                }
            },
            None => copy_chunk(from, to).await?,
        };
        match moved {
            None => continue, // readiness was stale
            Some(0) => return shutdown_write(to),
            Some(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                last_activity.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// Splices what `from` has (up to [`BUFFER`]) into `pipe` and all of it on
/// to `to`: Some(bytes), Some(0) at end of stream, None when `from` had
/// nothing after all.  The lease is held until the chunk is written.
async fn splice_chunk(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &mut Lease<'_>,
) -> std::io::Result<Option<usize>> {
    let n = match from.try_io(Interest::READABLE, || {
        Ok(splice(
            from,
            None,
            pipe.write_end(),
            None,
            BUFFER,
            splice_flags(),
        )?)
    }) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    pipe.filled = n;
    while pipe.filled > 0 {
        let left = pipe.filled;
        let written = to
            .async_io(Interest::WRITABLE, || {
                Ok(splice(
                    pipe.read_end(),
                    None,
                    to,
                    None,
                    left,
                    splice_flags(),
                )?)
            })
            .await?;
        pipe.filled -= written;
    }
    Ok(Some(n))
}

fn splice_flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

/// Half-close: tell the other side we are done sending, keep reading what
/// it still has to say.
fn shutdown_write(to: &TcpStream) -> std::io::Result<()> {
    match SockRef::from(to).shutdown(std::net::Shutdown::Write) {
        Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(()),
        r => r,
    }
}

/// The read/write loop, for sockets the kernel will not splice.
async fn copy(
    from: &TcpStream,
    to: &TcpStream,
    counter: &AtomicU64,
    last_activity: &AtomicU64,
    start: Instant,
) -> std::io::Result<()> {
    loop {
        from.readable().await?;
        match copy_chunk(from, to).await? {
            None => continue,
            Some(0) => return shutdown_write(to),
            Some(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                last_activity.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// Copies what `from` has (up to [`BUFFER`]) to `to` through a buffer that
/// lives only as long as the chunk (an idle session holds none): like
/// [`splice_chunk`], Some(bytes), Some(0) at end of stream, None when
/// `from` had nothing after all.
async fn copy_chunk(from: &TcpStream, to: &TcpStream) -> std::io::Result<Option<usize>> {
    let mut buf = vec![0u8; BUFFER];
    let n = match from.try_read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut written = 0;
    while written < n {
        to.writable().await?;
        match to.try_write(&buf[written..n]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => written += r?,
        }
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair of sockets on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (far, _) = listener.accept().await.unwrap();
        (near, far)
    }

    /// How a test drives one direction.
    #[derive(Clone, Copy, Debug)]
    enum Path {
        /// Pipes from a pool.
        Splice,
        /// A pool that has no pipe to give: every chunk is copied.
        NoPipeLeft,
        /// The read/write loop for sockets the kernel will not splice.
        Copy,
    }

    /// Every path carries every byte and forwards end of stream as a
    /// half-close, and no pipe stays leased afterwards.
    #[tokio::test]
    async fn splice_and_copy_forward_bytes_and_end_of_stream() {
        for path in [Path::Splice, Path::NoPipeLeft, Path::Copy] {
            let (mut writer, from) = pair().await;
            let (to, mut reader) = pair().await;
            let counter = AtomicU64::new(0);
            let activity = AtomicU64::new(0);
            let pipes = PipePool::new(match path {
                Path::NoPipeLeft => 0,
                _ => 4,
            });
            let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let send = async {
                writer.write_all(&data).await.unwrap();
                writer.shutdown().await.unwrap();
            };
            let receive = async {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).await.unwrap();
                got
            };
            let relay = async {
                match path {
                    Path::Splice | Path::NoPipeLeft => {
                        forward(&from, &to, &pipes, &counter, &activity, Instant::now()).await
                    }
                    Path::Copy => copy(&from, &to, &counter, &activity, Instant::now()).await,
                }
            };
            let (_, got, relayed) = tokio::join!(send, receive, relay);
            relayed.unwrap();
            assert!(
                got == data,
                "{path:?}: {} of {} bytes arrived intact",
                got.len(),
                data.len()
            );
            assert_eq!(counter.load(Ordering::Relaxed), data.len() as u64);
            assert_eq!(pipes.used(), 0, "{path:?}: a pipe is still leased");
        }
    }

    /// A pipe is held while its chunk waits for a receiver that does not
    /// read, and back in the pool once drained: an idle direction holds none.
    #[tokio::test]
    async fn a_pipe_is_held_only_while_data_is_in_flight() {
        let (mut writer, from) = pair().await;
        let (to, mut reader) = pair().await;
        let pipes = PipePool::new(4);
        let counter = AtomicU64::new(0);
        let activity = AtomicU64::new(0);
        let relay = forward(&from, &to, &pipes, &counter, &activity, Instant::now());
        tokio::pin!(relay);
        // More than every socket buffer on the way can hold.
        let data = vec![7u8; 64 * 1024 * 1024];
        let send = writer.write_all(&data);
        tokio::pin!(send);
        // Stalled: a chunk is leased and no chunk completes between polls.
        let stalled = async {
            let mut before = u64::MAX;
            loop {
                let now = counter.load(Ordering::Relaxed);
                if pipes.used() == 1 && now == before {
                    return;
                }
                before = now;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::select! {
            r = &mut relay => panic!("relay ended early: {r:?}"),
            _ = &mut send => panic!("64 MiB fit in the socket buffers"),
            r = tokio::time::timeout(Duration::from_secs(20), stalled) => r.expect("the relay stalls"),
        }
        assert_eq!(pipes.used(), 1, "the stalled chunk keeps its pipe");
        // Drain everything: the pipe comes back and the idle relay holds none.
        let mut got = vec![0u8; data.len()];
        tokio::select! {
            r = &mut relay => panic!("relay ended early: {r:?}"),
            r = async { tokio::join!(&mut send, reader.read_exact(&mut got)) } => {
                r.0.unwrap();
                r.1.unwrap();
            }
        }
        assert!(got == data);
        let idle = async {
            while pipes.used() != 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            r = &mut relay => panic!("relay ended early: {r:?}"),
            r = tokio::time::timeout(Duration::from_secs(20), idle) => r.expect("the pipe comes back"),
        }
        assert_eq!((pipes.used(), pipes.free()), (0, 1));
    }
}
