//! The configuration file exactly as written: serde structs that mirror the
//! TOML (keepalived's keywords), with no interpretation beyond types.
//!
//! Every table denies unknown keys, so a typo (`prio = 3`) is an error rather
//! than a silently ignored setting.  Values that need semantic checks are
//! kept `Spanned` (numbers and durations as [`Loose`] values of any TOML
//! type), so validation can point at the line that is wrong.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;
use warren_health::config::Loose;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub status: Option<Status>,
    #[serde(default)]
    pub instance: Vec<Instance>,
}

/// The metrics endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub bind: Loose,
}

/// keepalived's `vrrp_instance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub name: Spanned<String>,
    pub interface: Spanned<String>,
    pub virtual_router_id: Loose,
    pub priority: Option<Loose>,
    pub advert_int: Option<Loose>,
    pub version: Option<Loose>,
    pub preempt: Option<bool>,
    /// keepalived's `nopreempt` keyword, accepted as an alias (`nopreempt = true`).
    #[serde(default)]
    pub nopreempt: bool,
    pub preempt_delay: Option<Loose>,
    pub virtual_ipaddress: Spanned<Vec<Loose>>,
    #[serde(default)]
    pub unicast_peer: Vec<Loose>,
    pub unicast_src_ip: Option<Loose>,
    pub v3_checksum_pseudo_header: Option<bool>,
    pub auth_pass: Option<Spanned<String>>,
    pub notify: Option<Spanned<String>>,
    pub state_file: Option<PathBuf>,
    pub garp_master_repeat: Option<Loose>,
    pub garp_master_refresh: Option<Loose>,
    #[serde(default)]
    pub track: Vec<Spanned<Track>>,
}

/// keepalived's `vrrp_script` / `track_interface`, one table of any type.
/// The type-specific keys are all optional here; validation says which
/// belong to the `type` given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub name: Option<String>,
    pub interval: Option<Loose>,
    pub timeout: Option<Loose>,
    pub rise: Option<Loose>,
    pub fall: Option<Loose>,
    pub weight: Option<Loose>,
    /// warren-lb: its admin API, for `/readyz`.
    pub admin: Option<Spanned<String>>,
    /// tcp, or warren-lb without admin: the listener.
    pub address: Option<Loose>,
    pub url: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub expect_status: Option<Loose>,
    pub expect_body: Option<Spanned<String>>,
    pub command: Option<Spanned<Vec<String>>>,
    pub interface: Option<Spanned<String>>,
}
