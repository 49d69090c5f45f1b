//! IO: raw VRRP sockets, netlink address management, gratuitous ARP.
pub mod garp;
pub mod link;
pub mod sock;
