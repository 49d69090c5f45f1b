//! The splice relay's kernel pipes, shared by every session from one
//! bounded pool (HAProxy's `maxpipes` model).
//!
//! A pipe is two descriptors.  Giving each session its own pair per
//! direction cost six descriptors per session (two sockets, two pipes),
//! so at the same open-files limit warren-lb held a third of HAProxy's
//! sessions (issue 13, defect 5).  An idle session needs no pipe: a relay
//! direction takes one when data arrives, keeps it while the chunk is in
//! flight (a slow receiver holds it), and returns it once it is drained.
//! A pipe that still holds data when its lease ends (the session failed
//! mid-chunk) is closed, never handed to another session.  When the pool
//! is at its bound or a new pipe cannot be created (EMFILE ...), the relay
//! copies that chunk through user space instead: slower, never an error.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

/// A kernel pipe: splice into `write`, out of `read`.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// Pipes for the whole process, at most `max` open at once.
pub struct PipePool {
    idle: Mutex<Vec<Pipe>>,
    /// Pipes open, idle or leased.
    open: AtomicUsize,
    max: AtomicUsize,
}

impl PipePool {
    pub fn new(max: usize) -> PipePool {
        PipePool {
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        }
    }

    /// A reload changed the bound: pipes above it are closed as they come
    /// back.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Release);
        let mut idle = self.idle.lock().expect("pipe pool lock");
        while self.open.load(Ordering::Acquire) > max && idle.pop().is_some() {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// An empty pipe, or None when the pool is at its bound or the kernel
    /// refused a new one (the caller copies instead).
    pub fn take(&self) -> Option<Lease<'_>> {
        if let Some(pipe) = self.idle.lock().expect("pipe pool lock").pop() {
            return Some(self.lease(pipe));
        }
        let max = self.max.load(Ordering::Acquire);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        match pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC) {
            Ok((read, write)) => Some(self.lease(Pipe { read, write })),
            Err(_) => {
                self.open.fetch_sub(1, Ordering::AcqRel);
                None
            }
        }
    }

    fn lease(&self, pipe: Pipe) -> Lease<'_> {
        Lease {
            pool: self,
            pipe: Some(pipe),
            filled: 0,
        }
    }

    /// Pipes in use by a relay right now (HAProxy's `PipesUsed`).
    pub fn used(&self) -> usize {
        self.open
            .load(Ordering::Acquire)
            .saturating_sub(self.free())
    }

    /// Open pipes waiting in the pool (HAProxy's `PipesFree`).
    pub fn free(&self) -> usize {
        self.idle.lock().expect("pipe pool lock").len()
    }

    fn give_back(&self, pipe: Pipe, empty: bool) {
        if empty && self.open.load(Ordering::Acquire) <= self.max.load(Ordering::Acquire) {
            self.idle.lock().expect("pipe pool lock").push(pipe);
        } else {
            drop(pipe);
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A pipe taken from the pool; back to it (or closed, if it still holds
/// data) when dropped.
pub struct Lease<'a> {
    pool: &'a PipePool,
    pipe: Option<Pipe>,
    /// Bytes spliced in and not yet out.
    pub filled: usize,
}

impl Lease<'_> {
    pub fn write_end(&self) -> BorrowedFd<'_> {
        self.pipe.as_ref().expect("leased pipe").write.as_fd()
    }

    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.pipe.as_ref().expect("leased pipe").read.as_fd()
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            self.pool.give_back(pipe, self.filled == 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_are_reused_and_never_more_than_the_bound() {
        let pool = PipePool::new(2);
        let a = pool.take().expect("first pipe");
        let b = pool.take().expect("second pipe");
        assert!(pool.take().is_none(), "a third pipe above the bound");
        assert_eq!((pool.used(), pool.free()), (2, 0));
        let a_fd = {
            use std::os::fd::AsRawFd;
            a.read_end().as_raw_fd()
        };
        drop(a);
        assert_eq!((pool.used(), pool.free()), (1, 1));
        let again = pool.take().expect("the returned pipe");
        {
            use std::os::fd::AsRawFd;
            assert_eq!(again.read_end().as_raw_fd(), a_fd, "reused, not a new one");
        }
        drop((again, b));
        assert_eq!((pool.used(), pool.free()), (0, 2));
    }

    #[test]
    fn a_pipe_still_holding_data_is_closed_not_reused() {
        let pool = PipePool::new(4);
        let mut lease = pool.take().unwrap();
        lease.filled = 10;
        drop(lease);
        assert_eq!((pool.used(), pool.free()), (0, 0));
    }

    #[test]
    fn a_lower_bound_closes_the_pipes_above_it() {
        let pool = PipePool::new(3);
        let leases: Vec<_> = (0..3).map(|_| pool.take().unwrap()).collect();
        drop(leases);
        assert_eq!(pool.free(), 3);
        pool.set_max(1);
        assert_eq!((pool.used(), pool.free()), (0, 1));
        let busy = pool.take().unwrap();
        assert!(pool.take().is_none());
        drop(busy);
        assert_eq!(pool.free(), 1);
    }

    #[test]
    fn a_pool_of_zero_never_opens_a_pipe() {
        let pool = PipePool::new(0);
        assert!(pool.take().is_none());
    }
}
