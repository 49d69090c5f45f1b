//! The configuration file exactly as written: serde structs that mirror the
//! TOML, with no interpretation beyond types.
//!
//! Every table denies unknown keys, so a typo (`fal = 3`) is an error rather
//! than a silently ignored setting.  Values that need semantic checks are
//! kept `Spanned` (numbers, durations and choices as [`Loose`] values of
//! any TOML type), so validation can point at the line that is wrong.
//! Names and defaults follow HAProxy wherever HAProxy has the concept.

use serde::Deserialize;
use toml::Spanned;
use warren_health::config::Loose;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub global: Option<Global>,
    pub admin: Option<Admin>,
    pub resolvers: Option<Resolvers>,
    #[serde(default)]
    pub frontend: Vec<Spanned<Frontend>>,
    #[serde(default)]
    pub backend: Vec<Spanned<Backend>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    pub hard_stop_after: Option<Loose>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub bind: Loose,
    pub token: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
}

/// HAProxy's `resolvers` section, for servers given by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolvers {
    pub nameservers: Option<Spanned<Vec<Spanned<String>>>>,
    pub timeout_resolve: Option<Loose>,
    pub timeout_retry: Option<Loose>,
    pub resolve_retries: Option<Loose>,
    pub hold_valid: Option<Loose>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    pub name: Spanned<String>,
    pub bind: Loose,
    pub backend: Spanned<String>,
    pub maxconn: Option<Loose>,
    pub timeout_first_byte: Option<Loose>,
    pub tls: Option<Spanned<Tls>>,
}

/// TLS termination on a frontend (docs/tls.md). HAProxy's `crt` holds
/// certificate and key in one file; here they are two, so the keys say
/// which is which (`cert`, `key`); `client_ca` and `verify_client` are
/// HAProxy's `ca-file` and `verify`, named for the side they are about.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    pub client_ca: Option<Spanned<String>>,
    pub verify_client: Option<Loose>,
    pub alpn: Option<Spanned<Vec<Spanned<String>>>>,
    pub min_version: Option<Loose>,
    pub timeout_handshake: Option<Loose>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: Spanned<String>,
    pub balance: Option<Loose>,
    #[serde(default)]
    pub allbackups: bool,
    pub redispatch: Option<bool>,
    pub observe: Option<Loose>,
    pub on_error: Option<Loose>,
    pub on_marked_down: Option<Loose>,
    pub on_marked_up: Option<Loose>,
    pub failback: Option<Loose>,
    pub timeout_connect: Option<Loose>,
    pub timeout_idle: Option<Loose>,
    pub check: Option<Check>,
    #[serde(default)]
    pub server: Vec<Spanned<Server>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: Option<Loose>,
    pub inter: Option<Loose>,
    pub fastinter: Option<Loose>,
    pub downinter: Option<Loose>,
    pub rise: Option<Loose>,
    pub fall: Option<Loose>,
    pub timeout: Option<Loose>,
    pub port: Option<Loose>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub expect_status: Option<Loose>,
    pub expect_body: Option<String>,
    pub tls: Option<Spanned<ServerTls>>,
}

/// TLS from warren-lb to the servers (HAProxy's `check-ssl` with `ca-file`,
/// `verify`, `sni` and `crt`): today the checks' `[backend.check.tls]`; the
/// one shape for any later TLS towards the servers (`[backend.tls]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub ca: Option<Spanned<String>>,
    pub verify: Option<Loose>,
    pub sni: Option<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: Spanned<String>,
    pub address: Loose,
    pub role: Option<Loose>,
    pub weight: Option<Loose>,
    pub maxconn: Option<Loose>,
    pub send_proxy: Option<Loose>,
    /// HAProxy's `addr` server keyword: this server's checks go to this
    /// IP instead of the server's own address.
    pub check_addr: Option<Loose>,
    /// HAProxy's `port` server keyword: this server's checks go to this
    /// port, whatever `[backend.check] port` says.
    pub check_port: Option<Loose>,
}
