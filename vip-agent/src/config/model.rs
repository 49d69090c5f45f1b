//! The validated runtime model: what the agent acts on.
//!
//! Everything here has been checked and defaulted (addresses parsed,
//! durations in range for the VRRP version), so the agent and the VRRP core
//! never re-validate.  Host names stay names: the trackers resolve them at
//! each check.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use warren_health::CheckParams;

use crate::vrrp::packet::Version;

pub use warren_health::config::Address;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where `/metrics` is served; `None` = no metrics endpoint.
    pub status_bind: Option<SocketAddr>,
    pub instances: Vec<Instance>,
}

/// One virtual router (keepalived's `vrrp_instance`).
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub advert_int: Duration,
    pub version: Version,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// (address, prefix length)
    pub vips: Vec<(Ipv4Addr, u8)>,
    pub unicast_peers: Vec<Ipv4Addr>,
    pub unicast_src_ip: Option<Ipv4Addr>,
    pub v3_pseudo_header: bool,
    /// v2 simple password (auth type 1), at most 8 bytes.
    pub auth_pass: Option<[u8; 8]>,
    pub notify: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
    pub garp_repeat: u32,
    pub garp_refresh: Option<Duration>,
    pub tracks: Vec<Track>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub name: String,
    pub kind: TrackKind,
    /// The interval (`inter`, and `fastinter` and `downinter` alike) and
    /// rise/fall, as the shared check machine takes them.
    pub check: CheckParams,
    /// How long one probe may take before it counts as failed.
    pub timeout: Duration,
    /// keepalived semantics: 0 → failure means Fault; > 0 added while up; < 0 added while down.
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TrackKind {
    /// HTTP GET expecting `expect_status` (and `expect_body` in the body).
    Http {
        url: String,
        username: Option<String>,
        password: Option<String>,
        expect_status: u16,
        expect_body: Option<String>,
    },
    Tcp {
        /// What a `tcp` tracker connects to, as written: an IP address, or a host
        /// name that the tracker resolves at each check (as HAProxy resolves a
        /// server name), so a name that moves, such as a Kubernetes Service's, is
        /// followed without a restart and one that does not resolve fails the check
        /// rather than the configuration.
        address: Address,
    },
    Exec {
        command: Vec<String>,
    },
    Interface {
        name: String,
    },
}
