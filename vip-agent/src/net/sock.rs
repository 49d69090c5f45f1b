//! Raw IP protocol 112 sockets bound to one interface.
//!
//! Receive: `SOCK_RAW`/112 bound to the device (`SO_BINDTODEVICE`), joined to
//! 224.0.0.18 on it; the kernel hands us the IP header, so the TTL is read from it.
//! Send: `IPPROTO_RAW` (implies `IP_HDRINCL`, receives nothing) bound to the device; we
//! write the IP header ourselves (TTL 255, our source address).

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::vrrp::packet::{IPPROTO_VRRP, VRRP_MCAST_V4};

pub struct VrrpSockets {
    rx: AsyncFd<Socket>,
    tx: Socket,
}

impl VrrpSockets {
    /// Open both sockets on `ifname` (index `ifindex`); join the multicast group unless
    /// running unicast-only.
    pub fn open(ifname: &str, ifindex: u32, multicast: bool) -> io::Result<Self> {
        let rx = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        rx.bind_device(Some(ifname.as_bytes()))?;
        if multicast {
            rx.join_multicast_v4_n(&VRRP_MCAST_V4, &InterfaceIndexOrAddress::Index(ifindex))?;
        }
        rx.set_recv_buffer_size(256 * 1024)?;
        rx.set_nonblocking(true)?;
        let tx = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )?;
        tx.bind_device(Some(ifname.as_bytes()))?;
        tx.set_multicast_loop_v4(false)?;
        tx.set_multicast_if_v4(&Ipv4Addr::UNSPECIFIED).ok();
        tx.set_nonblocking(true)?;
        // SAFETY: `rx` is a socket2::Socket that owns its descriptor for its whole life
        // and always returns the same fd from as_raw_fd().
        let rx = unsafe { AsyncFd::register_with_interest(rx, tokio::io::Interest::READABLE) }?;
        Ok(VrrpSockets { rx, tx })
    }

    /// Wait for and read one datagram (IP header included).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.rx.readable().await?;
            let res = guard.try_io(|inner| {
                // SAFETY: u8 and MaybeUninit<u8> have the same layout; recv only writes.
                let b = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
                inner.get_ref().recv(b)
            });
            match res {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Send a complete IPv4 datagram to `dst`.
    pub fn send(&self, datagram: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let to = SockAddr::from(SocketAddrV4::new(dst, 0));
        self.tx.send_to(datagram, &to).map(drop)
    }
}
