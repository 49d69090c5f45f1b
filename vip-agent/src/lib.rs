//! warren-vip: a VRRP (v3/v2) virtual-IP agent, keepalived-compatible on the wire.
pub mod config;
pub mod vrrp;
