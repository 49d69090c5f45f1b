//! warren-vip: a VRRP (v3/v2) virtual-IP agent, keepalived-compatible on the wire.
//!
//! * [`vrrp`]: the sans-IO core (packet codec, RFC 5798 state machine).
//! * [`link_watch`]: the sans-IO interface verdict (a failed netlink read is no FAULT).
//! * [`config`]: TOML configuration validated into a runtime model.
//! * [`agent`], [`net`], [`tracker`], [`notify`], [`metrics`]: the tokio shell.
pub mod agent;
pub mod config;
pub mod link_watch;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod tracker;
pub mod vrrp;
