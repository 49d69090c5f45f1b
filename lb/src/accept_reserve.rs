//! An accept that still works at the open-files limit.
//!
//! At the limit the frontends take every descriptor that frees up, so the
//! admin API would go silent exactly when an operator needs `/status` to see
//! why clients are refused. Its listener keeps one descriptor in reserve (an
//! open `/dev/null`): when accept fails for want of a descriptor, the reserve
//! is given up and the accept retried, and the reserve is taken back at the
//! next chance. The same trick as libuv's and nginx's accept reserve.

use std::fs::File;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::resource::{accept_failure, AcceptFailure};

/// How long to wait before trying again when no descriptor is to be had.
const SHORTAGE_PAUSE: Duration = Duration::from_millis(100);
/// How long to wait after an accept error that is neither the client's nor a
/// shortage, so that an unknown error cannot spin.
const OTHER_PAUSE: Duration = Duration::from_secs(1);

/// One descriptor held for the next accept.
#[derive(Debug)]
pub struct Reserve(Option<File>);

impl Reserve {
    pub fn new() -> Self {
        let mut reserve = Reserve(None);
        reserve.refill();
        reserve
    }

    /// Take a descriptor back if one is free (a no-op when held).
    fn refill(&mut self) {
        if self.0.is_none() {
            self.0 = File::open("/dev/null").ok();
        }
    }

    /// Give the descriptor up; false when none was held.
    fn release(&mut self) -> bool {
        self.0.take().is_some()
    }
}

impl Default for Reserve {
    fn default() -> Self {
        Self::new()
    }
}

/// Accepts the next connection, spending the reserve at the limit.
pub async fn accept(listener: &TcpListener, reserve: &mut Reserve) -> (TcpStream, SocketAddr) {
    let mut just_released = false;
    loop {
        if !just_released {
            reserve.refill();
        }
        just_released = false;
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => match accept_failure(&e) {
                AcceptFailure::Client => {}
                AcceptFailure::Resource(_) if reserve.release() => just_released = true,
                AcceptFailure::Resource(_) => tokio::time::sleep(SHORTAGE_PAUSE).await,
                AcceptFailure::Other => tokio::time::sleep(OTHER_PAUSE).await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_given_up_once_and_taken_back() {
        let mut reserve = Reserve::new();
        assert!(reserve.release(), "a new reserve holds a descriptor");
        assert!(!reserve.release(), "nothing left to give up");
        reserve.refill();
        assert!(reserve.release(), "refilled");
    }
}
