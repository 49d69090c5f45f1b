//! Local resource errors: what a failed socket call says about *this*
//! process or host rather than about the peer.
//!
//! A connect that fails with EMFILE says the balancer ran out of file
//! descriptors, not that the server is down; blaming the server for it
//! (marking it DOWN, closing its sessions) turns a local limit into an
//! outage (issue 13, defect 5).  HAProxy keeps the two apart: a local
//! shortage ends a session with termination state `RC` ("a local resource
//! has been exhausted (memory, sockets, source ports)") and a failed check
//! socket is a "Socket error", never a server verdict.  Both the data path
//! (warren-lb) and the probes use this one classification.

use std::io;

use nix::errno::Errno;

/// Which local resource ran out (HAProxy's `R` termination states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalResource {
    /// EMFILE: this process's open-files limit (`RLIMIT_NOFILE`).
    ProcessFds,
    /// ENFILE: the host's open-files limit (`fs.file-max`).
    SystemFds,
    /// ENOBUFS, ENOMEM: kernel memory or socket buffers.
    Memory,
    /// EADDRNOTAVAIL, EADDRINUSE on connect: no free local (source) port.
    SourcePorts,
}

impl LocalResource {
    /// A short phrase for logs: what ran out and what to look at.
    pub fn describe(self) -> &'static str {
        match self {
            LocalResource::ProcessFds => "process open files limit reached (RLIMIT_NOFILE)",
            LocalResource::SystemFds => "system open files limit reached (fs.file-max)",
            LocalResource::Memory => "out of kernel memory or socket buffers",
            LocalResource::SourcePorts => "no free local port (net.ipv4.ip_local_port_range)",
        }
    }
}

/// The local resource an errno reports as exhausted, if it reports one.
///
/// Only errnos that can never be the peer's doing are here: a refused,
/// reset, unreachable or timed-out connect stays the server's.
pub fn local_resource(errno: i32) -> Option<LocalResource> {
    match Errno::from_raw(errno) {
        Errno::EMFILE => Some(LocalResource::ProcessFds),
        Errno::ENFILE => Some(LocalResource::SystemFds),
        Errno::ENOBUFS | Errno::ENOMEM => Some(LocalResource::Memory),
        Errno::EADDRNOTAVAIL | Errno::EADDRINUSE => Some(LocalResource::SourcePorts),
        _ => None,
    }
}

/// [`local_resource`] of an io error (None for errors without an errno).
pub fn io_local_resource(e: &io::Error) -> Option<LocalResource> {
    e.raw_os_error().and_then(local_resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_memory_and_port_shortages_are_local() {
        for (errno, what) in [
            (Errno::EMFILE, LocalResource::ProcessFds),
            (Errno::ENFILE, LocalResource::SystemFds),
            (Errno::ENOBUFS, LocalResource::Memory),
            (Errno::ENOMEM, LocalResource::Memory),
            (Errno::EADDRNOTAVAIL, LocalResource::SourcePorts),
            (Errno::EADDRINUSE, LocalResource::SourcePorts),
        ] {
            assert_eq!(local_resource(errno as i32), Some(what), "{errno}");
            let e = io::Error::from_raw_os_error(errno as i32);
            assert_eq!(io_local_resource(&e), Some(what), "{e}");
        }
    }

    #[test]
    fn what_the_peer_or_the_network_did_is_not_local() {
        for errno in [
            Errno::ECONNREFUSED,
            Errno::ECONNRESET,
            Errno::ETIMEDOUT,
            Errno::EHOSTUNREACH,
            Errno::ENETUNREACH,
            Errno::ECONNABORTED,
            Errno::EPIPE,
            Errno::EAGAIN,
            Errno::EINVAL,
        ] {
            assert_eq!(local_resource(errno as i32), None, "{errno}");
        }
        assert_eq!(local_resource(0), None);
        assert_eq!(local_resource(-1), None);
    }

    #[test]
    fn errors_without_an_errno_are_not_local() {
        let e = io::Error::other("Too many open files");
        assert_eq!(io_local_resource(&e), None);
    }
}
