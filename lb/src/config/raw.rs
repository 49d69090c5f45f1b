//! The configuration file exactly as written: serde structs that mirror the
//! TOML, with no interpretation beyond types.
//!
//! Every table denies unknown keys, so a typo (`fal = 3`) is an error rather
//! than a silently ignored setting.  Values that need semantic checks are
//! kept `Spanned`, so validation can point at the line that is wrong.
//! Names and defaults follow HAProxy wherever HAProxy has the concept.

use serde::Deserialize;
use toml::Spanned;

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
    pub hard_stop_after: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub bind: Spanned<String>,
    pub token: Option<String>,
}

/// HAProxy's `resolvers` section, for servers given by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolvers {
    pub nameservers: Option<Spanned<Vec<Spanned<String>>>>,
    pub timeout_resolve: Option<Spanned<String>>,
    pub timeout_retry: Option<Spanned<String>>,
    pub resolve_retries: Option<Spanned<i64>>,
    pub hold_valid: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    pub name: Spanned<String>,
    pub bind: Spanned<String>,
    pub backend: Spanned<String>,
    pub maxconn: Option<Spanned<i64>>,
    pub timeout_first_byte: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: Spanned<String>,
    pub balance: Option<Spanned<String>>,
    #[serde(default)]
    pub allbackups: bool,
    pub redispatch: Option<bool>,
    pub observe: Option<Spanned<String>>,
    pub on_error: Option<Spanned<String>>,
    pub on_marked_down: Option<Spanned<String>>,
    pub on_marked_up: Option<Spanned<String>>,
    pub failback: Option<Spanned<String>>,
    pub timeout_connect: Option<Spanned<String>>,
    pub timeout_idle: Option<Spanned<String>>,
    pub check: Option<Check>,
    #[serde(default)]
    pub server: Vec<Spanned<Server>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub inter: Option<Spanned<String>>,
    pub fastinter: Option<Spanned<String>>,
    pub downinter: Option<Spanned<String>>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub expect_status: Option<Spanned<i64>>,
    pub expect_body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    pub role: Option<Spanned<String>>,
    pub weight: Option<Spanned<i64>>,
    pub maxconn: Option<Spanned<i64>>,
    pub send_proxy: Option<Spanned<String>>,
}
