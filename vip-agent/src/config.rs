//! TOML configuration (keepalived vocabulary), validated into a runtime model.
//!
//! Parse errors come from `toml`/`serde` (line, column, unknown key, expected type);
//! validation errors name the key path (`instance[0].virtual_router_id`) and what was
//! expected.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::vrrp::packet::Version;

/// A duration written as `"100ms"`, `"1s"`, `"1.5s"`, `"2m"`, or a bare number of
/// seconds (`1`, `0.1`, keepalived style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            I(i64),
            F(f64),
            S(String),
        }
        let bad = |s: &str| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: expected e.g. \"100ms\", \"1s\", \"1.5s\", \"2m\" or a number of seconds"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::I(i) if i >= 0 => Ok(Dur(Duration::from_secs(i as u64))),
            Raw::F(f) if f >= 0.0 && f.is_finite() => Ok(Dur(Duration::from_secs_f64(f))),
            Raw::I(i) => Err(bad(&i.to_string())),
            Raw::F(f) => Err(bad(&f.to_string())),
            Raw::S(s) => parse_duration(&s).map(Dur).ok_or_else(|| bad(&s)),
        }
    }
}

/// Parse `"100ms"`, `"1s"`, `"1.5s"`, `"2m"`, `"250us"`, `"3"` (seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let secs = match unit.trim() {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

// ---------------------------------------------------------------- raw (serde) model

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub status: Option<RawStatus>,
    #[serde(default)]
    pub instance: Vec<RawInstance>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    pub bind: SocketAddr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    pub name: String,
    pub interface: String,
    pub virtual_router_id: i64,
    #[serde(default = "default_priority")]
    pub priority: i64,
    #[serde(default)]
    pub advert_int: Option<Dur>,
    #[serde(default = "default_version")]
    pub version: i64,
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// keepalived's `nopreempt` keyword, accepted as an alias (`nopreempt = true`).
    #[serde(default)]
    pub nopreempt: bool,
    #[serde(default)]
    pub preempt_delay: Option<Dur>,
    pub virtual_ipaddress: Vec<String>,
    #[serde(default)]
    pub unicast_peer: Vec<String>,
    #[serde(default)]
    pub unicast_src_ip: Option<String>,
    #[serde(default = "default_true")]
    pub v3_checksum_pseudo_header: bool,
    #[serde(default)]
    pub auth_pass: Option<String>,
    #[serde(default)]
    pub notify: Option<PathBuf>,
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    #[serde(default)]
    pub garp_master_repeat: Option<i64>,
    #[serde(default)]
    pub garp_master_refresh: Option<Dur>,
    #[serde(default)]
    pub track: Vec<RawTrack>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrack {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub interval: Option<Dur>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub rise: Option<i64>,
    #[serde(default)]
    pub fall: Option<i64>,
    #[serde(default)]
    pub weight: i64,
    // warren-lb
    #[serde(default)]
    pub admin: Option<String>,
    // tcp / warren-lb without admin
    #[serde(default)]
    pub address: Option<String>,
    // http
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub expect_status: Option<i64>,
    #[serde(default)]
    pub expect_body: Option<String>,
    // exec
    #[serde(default)]
    pub command: Option<Vec<String>>,
    // interface
    #[serde(default)]
    pub interface: Option<String>,
}

fn default_priority() -> i64 {
    100
}
fn default_version() -> i64 {
    3
}
fn default_true() -> bool {
    true
}

// ---------------------------------------------------------------- runtime model

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub status_bind: Option<SocketAddr>,
    pub instances: Vec<Instance>,
}

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
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// keepalived semantics: 0 → failure means Fault; > 0 added while up; < 0 added while down.
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TrackKind {
    /// HTTP GET expecting 200.
    Http {
        url: String,
        username: Option<String>,
        password: Option<String>,
        expect_status: u16,
        expect_body: Option<String>,
    },
    Tcp {
        address: SocketAddr,
    },
    Exec {
        command: Vec<String>,
    },
    Interface {
        name: String,
    },
}

/// A configuration error: key path and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}: {}", p.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(path: &str, what: impl fmt::Display) -> ConfigError {
    ConfigError {
        file: None,
        message: format!("{path}: {what}"),
    }
}

/// Load and validate a file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: Some(path.to_owned()),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text).map_err(|mut e| {
        e.file = Some(path.to_owned());
        e
    })
}

/// Parse and validate TOML text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        file: None,
        message: e.to_string().trim_end().to_string(),
    })?;
    validate(raw)
}

fn int_in<T: TryFrom<i64>>(path: &str, v: i64, lo: i64, hi: i64) -> Result<T, ConfigError> {
    if v < lo || v > hi {
        return Err(err(
            path,
            format!("expected an integer in {lo}..={hi}, got {v}"),
        ));
    }
    T::try_from(v).map_err(|_| err(path, format!("expected an integer in {lo}..={hi}, got {v}")))
}

fn ipv4(path: &str, s: &str) -> Result<Ipv4Addr, ConfigError> {
    s.trim().parse().map_err(|_| {
        err(
            path,
            format!("expected an IPv4 address like \"10.0.0.2\", got {s:?}"),
        )
    })
}

fn cidr(path: &str, s: &str) -> Result<(Ipv4Addr, u8), ConfigError> {
    let expected = || {
        err(
            path,
            format!(
                "expected an IPv4 address with optional prefix like \"10.0.0.100/24\", got {s:?}"
            ),
        )
    };
    let (a, p) = match s.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s.trim(), None),
    };
    let addr: Ipv4Addr = a.parse().map_err(|_| expected())?;
    let prefix = match p {
        None => 32,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= 32 => n,
            _ => return Err(expected()),
        },
    };
    Ok((addr, prefix))
}

fn socket_addr(path: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.trim().parse().map_err(|_| {
        err(
            path,
            format!("expected IP:port like \"127.0.0.1:5672\", got {s:?}"),
        )
    })
}

/// Validate a raw config into the runtime model.
pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    if raw.instance.is_empty() {
        return Err(err("instance", "expected at least one [[instance]]"));
    }
    let mut instances = Vec::new();
    for (i, ri) in raw.instance.into_iter().enumerate() {
        let p = format!("instance[{i}]");
        let inst = validate_instance(&p, ri)?;
        for (j, other) in instances.iter().enumerate() {
            let o: &Instance = other;
            if o.name == inst.name {
                return Err(err(
                    &format!("{p}.name"),
                    format!(
                        "duplicate instance name {:?} (also instance[{j}])",
                        inst.name
                    ),
                ));
            }
            if o.interface == inst.interface && o.vrid == inst.vrid {
                return Err(err(
                    &format!("{p}.virtual_router_id"),
                    format!(
                        "VRID {} already used on interface {} by instance[{j}]",
                        inst.vrid, inst.interface
                    ),
                ));
            }
        }
        instances.push(inst);
    }
    Ok(Config {
        status_bind: raw.status.map(|s| s.bind),
        instances,
    })
}

fn validate_instance(p: &str, ri: RawInstance) -> Result<Instance, ConfigError> {
    if ri.name.trim().is_empty() {
        return Err(err(&format!("{p}.name"), "expected a non-empty name"));
    }
    if ri.interface.is_empty() || ri.interface.len() > 15 || ri.interface.contains('/') {
        return Err(err(
            &format!("{p}.interface"),
            format!(
                "expected an interface name (1..=15 chars), got {:?}",
                ri.interface
            ),
        ));
    }
    let vrid: u8 = int_in(
        &format!("{p}.virtual_router_id"),
        ri.virtual_router_id,
        1,
        255,
    )?;
    let priority: u8 = int_in(&format!("{p}.priority"), ri.priority, 1, 255)?;
    let version = match ri.version {
        3 => Version::V3,
        2 => Version::V2,
        v => {
            return Err(err(
                &format!("{p}.version"),
                format!("expected 3 or 2, got {v}"),
            ))
        }
    };
    let advert_int = ri.advert_int.map(|d| d.0).unwrap_or(Duration::from_secs(1));
    match version {
        Version::V3 => {
            if advert_int < Duration::from_millis(10) || advert_int > Duration::from_millis(40_950)
            {
                return Err(err(
                    &format!("{p}.advert_int"),
                    format!("expected 10ms..=40.95s for VRRPv3, got {advert_int:?}"),
                ));
            }
            if advert_int.as_millis() % 10 != 0 {
                return Err(err(
                    &format!("{p}.advert_int"),
                    format!(
                        "expected a multiple of 10ms (VRRPv3 centiseconds), got {advert_int:?}"
                    ),
                ));
            }
        }
        Version::V2 => {
            if advert_int.subsec_nanos() != 0
                || advert_int < Duration::from_secs(1)
                || advert_int > Duration::from_secs(255)
            {
                return Err(err(&format!("{p}.advert_int"), format!("expected whole seconds 1s..=255s for VRRPv2 (use version = 3 for sub-second), got {advert_int:?}")));
            }
        }
    }
    if ri.virtual_ipaddress.is_empty() {
        return Err(err(
            &format!("{p}.virtual_ipaddress"),
            "expected at least one address like \"10.0.0.100/24\"",
        ));
    }
    if ri.virtual_ipaddress.len() > 20 {
        return Err(err(
            &format!("{p}.virtual_ipaddress"),
            "expected at most 20 addresses (keepalived's limit per advert)",
        ));
    }
    let mut vips = Vec::new();
    for (k, s) in ri.virtual_ipaddress.iter().enumerate() {
        let v = cidr(&format!("{p}.virtual_ipaddress[{k}]"), s)?;
        if vips.iter().any(|(a, _)| *a == v.0) {
            return Err(err(
                &format!("{p}.virtual_ipaddress[{k}]"),
                format!("duplicate address {}", v.0),
            ));
        }
        vips.push(v);
    }
    let unicast_peers = ri
        .unicast_peer
        .iter()
        .enumerate()
        .map(|(k, s)| ipv4(&format!("{p}.unicast_peer[{k}]"), s))
        .collect::<Result<Vec<_>, _>>()?;
    let unicast_src_ip = ri
        .unicast_src_ip
        .as_deref()
        .map(|s| ipv4(&format!("{p}.unicast_src_ip"), s))
        .transpose()?;
    let auth_pass = match (&ri.auth_pass, version) {
        (None, _) => None,
        (Some(_), Version::V3) => {
            return Err(err(
                &format!("{p}.auth_pass"),
                "expected no auth_pass with version = 3 (VRRPv3 has no authentication)",
            ));
        }
        (Some(s), Version::V2) => {
            if s.is_empty() || s.len() > 8 {
                return Err(err(
                    &format!("{p}.auth_pass"),
                    "expected 1..=8 bytes (VRRPv2 simple password)",
                ));
            }
            let mut b = [0u8; 8];
            b[..s.len()].copy_from_slice(s.as_bytes());
            Some(b)
        }
    };
    let garp_repeat = match ri.garp_master_repeat {
        None => 5,
        Some(n) => int_in(&format!("{p}.garp_master_repeat"), n, 1, 255)?,
    };
    let garp_refresh = ri.garp_master_refresh.map(|d| d.0).filter(|d| !d.is_zero());
    if let Some(n) = &ri.notify {
        if !n.is_absolute() {
            return Err(err(
                &format!("{p}.notify"),
                format!(
                    "expected an absolute path, got {:?}",
                    n.display().to_string()
                ),
            ));
        }
    }
    let preempt = ri.preempt && !ri.nopreempt;
    let preempt_delay = ri.preempt_delay.map(|d| d.0).unwrap_or(Duration::ZERO);
    if preempt_delay > Duration::from_secs(1000) {
        return Err(err(&format!("{p}.preempt_delay"), "expected at most 1000s"));
    }
    let mut tracks = Vec::new();
    for (k, t) in ri.track.into_iter().enumerate() {
        tracks.push(validate_track(&format!("{p}.track[{k}]"), t)?);
    }
    Ok(Instance {
        name: ri.name,
        interface: ri.interface,
        vrid,
        priority,
        advert_int,
        version,
        preempt,
        preempt_delay,
        vips,
        unicast_peers,
        unicast_src_ip,
        v3_pseudo_header: ri.v3_checksum_pseudo_header,
        auth_pass,
        notify: ri.notify,
        state_file: ri.state_file,
        garp_repeat,
        garp_refresh,
        tracks,
    })
}

fn validate_track(p: &str, t: RawTrack) -> Result<Track, ConfigError> {
    let interval = t.interval.map(|d| d.0).unwrap_or(Duration::from_secs(1));
    if interval.is_zero() {
        return Err(err(
            &format!("{p}.interval"),
            "expected a duration greater than 0",
        ));
    }
    // Default: the interval, at least 1 s (a process spawn on a loaded host can take
    // longer than a short interval; the next check waits for this one anyway).
    let timeout = t
        .timeout
        .map(|d| d.0)
        .unwrap_or(interval.max(Duration::from_secs(1)));
    if timeout.is_zero() {
        return Err(err(
            &format!("{p}.timeout"),
            "expected a duration greater than 0",
        ));
    }
    let rise: u32 = int_in(&format!("{p}.rise"), t.rise.unwrap_or(2), 1, 1000)?;
    let fall: u32 = int_in(&format!("{p}.fall"), t.fall.unwrap_or(2), 1, 1000)?;
    let weight: i32 = int_in(&format!("{p}.weight"), t.weight, -253, 253)?;
    let only = |allowed: &[&str]| -> Result<(), ConfigError> {
        let present = [
            ("admin", t.admin.is_some()),
            ("address", t.address.is_some()),
            ("url", t.url.is_some()),
            ("username", t.username.is_some()),
            ("password", t.password.is_some()),
            ("expect_status", t.expect_status.is_some()),
            ("expect_body", t.expect_body.is_some()),
            ("command", t.command.is_some()),
            ("interface", t.interface.is_some()),
        ];
        for (k, set) in present {
            if set && !allowed.contains(&k) {
                return Err(err(
                    &format!("{p}.{k}"),
                    format!(
                        "not valid for type = {:?} (allowed: {})",
                        t.kind,
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    };
    let kind = match t.kind.as_str() {
        "warren-lb" => {
            only(&["admin", "address"])?;
            match (&t.admin, &t.address) {
                (Some(a), _) => {
                    let base = if a.starts_with("http://") || a.starts_with("https://") {
                        a.clone()
                    } else {
                        format!("http://{a}")
                    };
                    let url = format!("{}/readyz", base.trim_end_matches('/'));
                    TrackKind::Http {
                        url,
                        username: None,
                        password: None,
                        expect_status: 200,
                        expect_body: None,
                    }
                }
                (None, Some(addr)) => TrackKind::Tcp {
                    address: socket_addr(&format!("{p}.address"), addr)?,
                },
                (None, None) => {
                    return Err(err(p, "type = \"warren-lb\" expects admin = \"127.0.0.1:8404\" (checks /readyz) or address = \"127.0.0.1:5672\" (TCP check of the listener)"));
                }
            }
        }
        "tcp" => {
            only(&["address"])?;
            let a = t.address.as_deref().ok_or_else(|| {
                err(
                    &format!("{p}.address"),
                    "expected IP:port for type = \"tcp\"",
                )
            })?;
            TrackKind::Tcp {
                address: socket_addr(&format!("{p}.address"), a)?,
            }
        }
        "http" => {
            only(&[
                "url",
                "username",
                "password",
                "expect_status",
                "expect_body",
            ])?;
            let url = t.url.clone().ok_or_else(|| {
                err(
                    &format!("{p}.url"),
                    "expected a URL like \"http://127.0.0.1:8404/readyz\" for type = \"http\"",
                )
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err(
                    &format!("{p}.url"),
                    format!("expected an http:// or https:// URL, got {url:?}"),
                ));
            }
            TrackKind::Http {
                url,
                username: t.username.clone(),
                password: t.password.clone(),
                expect_status: int_in(
                    &format!("{p}.expect_status"),
                    t.expect_status.unwrap_or(200),
                    100,
                    599,
                )?,
                expect_body: t.expect_body.clone(),
            }
        }
        "exec" => {
            only(&["command"])?;
            let c = t.command.clone().unwrap_or_default();
            if c.is_empty() || !Path::new(&c[0]).is_absolute() {
                return Err(err(
                    &format!("{p}.command"),
                    "expected [\"/absolute/path\", \"args\"...] for type = \"exec\"",
                ));
            }
            TrackKind::Exec { command: c }
        }
        "interface" => {
            only(&["interface"])?;
            let i = t.interface.clone().ok_or_else(|| {
                err(
                    &format!("{p}.interface"),
                    "expected an interface name for type = \"interface\"",
                )
            })?;
            TrackKind::Interface { name: i }
        }
        other => {
            return Err(err(&format!("{p}.type"), format!("expected one of \"warren-lb\", \"tcp\", \"http\", \"exec\", \"interface\", got {other:?}")));
        }
    };
    let name = t.name.unwrap_or_else(|| match &kind {
        TrackKind::Http { url, .. } => format!("http {url}"),
        TrackKind::Tcp { address } => format!("tcp {address}"),
        TrackKind::Exec { command } => format!("exec {}", command[0]),
        TrackKind::Interface { name } => format!("interface {name}"),
    });
    Ok(Track {
        name,
        kind,
        interval,
        timeout,
        rise,
        fall,
        weight,
    })
}

/// keepalived's effective priority: base + Σ(weight > 0 of trackers up) + Σ(weight < 0 of
/// trackers down), clamped to 1..=254; owners (255) are not adjusted. `fault` is true when
/// any weight-0 tracker is down.
pub fn effective_priority(base: u8, tracks: &[(i32, bool)]) -> (u8, bool) {
    let mut fault = false;
    let mut p = i32::from(base);
    for &(w, up) in tracks {
        match (w, up) {
            (0, false) => fault = true,
            (w, true) if w > 0 => p += w,
            (w, false) if w < 0 => p += w,
            _ => {}
        }
    }
    if base == 255 {
        return (255, fault);
    }
    (p.clamp(1, 254) as u8, fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[[instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["10.220.0.100/24"]
"#;

    fn perr(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn minimal_defaults() {
        let c = parse(MIN).unwrap();
        let i = &c.instances[0];
        assert_eq!(i.priority, 100);
        assert_eq!(i.version, Version::V3);
        assert_eq!(i.advert_int, Duration::from_secs(1));
        assert!(i.preempt);
        assert!(i.v3_pseudo_header);
        assert_eq!(i.vips, vec![(Ipv4Addr::new(10, 220, 0, 100), 24)]);
        assert_eq!(i.garp_repeat, 5);
        assert!(c.status_bind.is_none());
    }

    #[test]
    fn full_example() {
        let c = parse(
            r#"
[status]
bind = "127.0.0.1:8405"

[[instance]]
name = "VI_1"
interface = "wvip0"
virtual_router_id = 51
priority = 150
advert_int = "100ms"
version = 3
preempt = true
preempt_delay = "5s"
virtual_ipaddress = ["10.220.0.100/24", "10.220.0.101"]
unicast_peer = ["10.220.0.12"]
unicast_src_ip = "10.220.0.11"
v3_checksum_pseudo_header = false
notify = "/etc/warren/notify.sh"
state_file = "/run/warren-vip/VI_1.state"

[[instance.track]]
type = "warren-lb"
admin = "127.0.0.1:8404"
interval = "200ms"
rise = 2
fall = 2
weight = 0

[[instance.track]]
type = "tcp"
address = "127.0.0.1:5672"
weight = -60

[[instance.track]]
type = "exec"
command = ["/usr/local/bin/check", "-q"]
weight = 10

[[instance.track]]
type = "interface"
interface = "eth1"

[[instance.track]]
type = "http"
url = "http://127.0.0.1:15672/api/health/checks/alarms"
username = "admin"
password = "pw"
"#,
        )
        .unwrap();
        assert_eq!(c.status_bind, Some("127.0.0.1:8405".parse().unwrap()));
        let i = &c.instances[0];
        assert_eq!(i.advert_int, Duration::from_millis(100));
        assert_eq!(i.preempt_delay, Duration::from_secs(5));
        assert!(!i.v3_pseudo_header);
        assert_eq!(i.unicast_peers, vec![Ipv4Addr::new(10, 220, 0, 12)]);
        assert_eq!(i.vips[1], (Ipv4Addr::new(10, 220, 0, 101), 32));
        assert_eq!(i.tracks.len(), 5);
        assert_eq!(
            i.tracks[0].kind,
            TrackKind::Http {
                url: "http://127.0.0.1:8404/readyz".into(),
                username: None,
                password: None,
                expect_status: 200,
                expect_body: None
            }
        );
        assert_eq!(i.tracks[0].interval, Duration::from_millis(200));
        assert_eq!(i.tracks[1].weight, -60);
        assert!(matches!(i.tracks[1].kind, TrackKind::Tcp { .. }));
        assert!(matches!(i.tracks[2].kind, TrackKind::Exec { .. }));
        assert!(matches!(i.tracks[3].kind, TrackKind::Interface { .. }));
    }

    #[test]
    fn warren_lb_without_admin_is_tcp() {
        let c = parse(&format!(
            "{MIN}\n[[instance.track]]\ntype = \"warren-lb\"\naddress = \"127.0.0.1:5672\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.instances[0].tracks[0].kind,
            TrackKind::Tcp {
                address: "127.0.0.1:5672".parse().unwrap()
            }
        );
        let e = perr(&format!(
            "{MIN}\n[[instance.track]]\ntype = \"warren-lb\"\n"
        ));
        assert!(
            e.contains("instance[0].track[0]") && e.contains("admin"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_rejected_with_line() {
        let e = perr(
            &MIN.replace("priority", "x")
                .replace("virtual_router_id = 51", "virtual_router_id = 51\nprio = 3"),
        );
        assert!(e.contains("unknown field `prio`"), "{e}");
        assert!(e.contains("line"), "{e}");
    }

    #[test]
    fn errors_name_key_and_expectation() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "virtual_router_id = 51",
                "virtual_router_id = 0",
                "instance[0].virtual_router_id: expected an integer in 1..=255, got 0",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\npriority = 256",
                "instance[0].priority: expected an integer in 1..=255, got 256",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\nversion = 4",
                "instance[0].version: expected 3 or 2, got 4",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\nadvert_int = \"5ms\"",
                "instance[0].advert_int: expected 10ms..=40.95s",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\nadvert_int = \"15ms\"",
                "multiple of 10ms",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\nversion = 2\nadvert_int = \"100ms\"",
                "instance[0].advert_int: expected whole seconds",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\nadvert_int = \"fast\"",
                "invalid duration \"fast\"",
            ),
            (
                "\"10.220.0.100/24\"",
                "\"10.220.0.300/24\"",
                "instance[0].virtual_ipaddress[0]: expected an IPv4 address",
            ),
            (
                "\"10.220.0.100/24\"",
                "\"10.220.0.100/33\"",
                "instance[0].virtual_ipaddress[0]",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\nunicast_peer = [\"x\"]",
                "instance[0].unicast_peer[0]: expected an IPv4 address",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\nnotify = \"rel.sh\"",
                "instance[0].notify: expected an absolute path",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\nauth_pass = \"x\"",
                "instance[0].auth_pass: expected no auth_pass with version = 3",
            ),
            (
                "virtual_router_id = 51",
                "virtual_router_id = 51\nversion = 2\nauth_pass = \"123456789\"",
                "1..=8 bytes",
            ),
            (
                "interface = \"eth0\"",
                "interface = \"abcdefghijklmnop\"",
                "instance[0].interface",
            ),
        ];
        for (from, to, want) in cases {
            let e = perr(&MIN.replace(from, to));
            assert!(e.contains(want), "for {to:?}: got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn track_errors() {
        let t = |body: &str| perr(&format!("{MIN}\n[[instance.track]]\n{body}\n"));
        assert!(t("type = \"ping\"").contains("instance[0].track[0].type: expected one of"));
        assert!(t("type = \"tcp\"").contains("instance[0].track[0].address: expected IP:port"));
        assert!(t("type = \"tcp\"\naddress = \"nope\"").contains("expected IP:port"));
        assert!(
            t("type = \"tcp\"\naddress = \"1.2.3.4:5\"\nurl = \"http://x\"")
                .contains("instance[0].track[0].url: not valid for type")
        );
        assert!(
            t("type = \"http\"\nurl = \"ftp://x\"").contains("expected an http:// or https:// URL")
        );
        assert!(t("type = \"exec\"\ncommand = [\"rel\"]").contains("instance[0].track[0].command"));
        assert!(t("type = \"tcp\"\naddress = \"1.2.3.4:5\"\nrise = 0")
            .contains("instance[0].track[0].rise: expected an integer in 1..=1000, got 0"));
        assert!(t("type = \"tcp\"\naddress = \"1.2.3.4:5\"\nweight = 300")
            .contains("instance[0].track[0].weight"));
        assert!(
            t("type = \"tcp\"\naddress = \"1.2.3.4:5\"\ninterval = \"0s\"")
                .contains("instance[0].track[0].interval")
        );
        assert!(t("type = \"tcp\"\nbogus = 1").contains("unknown field `bogus`"));
    }

    #[test]
    fn no_instance_and_duplicates() {
        assert!(perr("").contains("instance: expected at least one"));
        let two = format!("{MIN}{MIN}");
        assert!(perr(&two).contains("instance[1].name: duplicate instance name"));
        let two = format!("{MIN}{}", MIN.replace("VI_1", "VI_2"));
        assert!(perr(&two).contains("instance[1].virtual_router_id: VRID 51 already used"));
    }

    #[test]
    fn nopreempt_alias() {
        let c = parse(&MIN.replace(
            "virtual_router_id = 51",
            "virtual_router_id = 51\nnopreempt = true",
        ))
        .unwrap();
        assert!(!c.instances[0].preempt);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("1y"), None);
        let c = parse(&MIN.replace(
            "virtual_router_id = 51",
            "virtual_router_id = 51\nadvert_int = 0.1",
        ))
        .unwrap();
        assert_eq!(c.instances[0].advert_int, Duration::from_millis(100));
    }

    #[test]
    fn keepalived_weight_semantics() {
        assert_eq!(effective_priority(100, &[]), (100, false));
        assert_eq!(effective_priority(100, &[(0, false)]), (100, true));
        assert_eq!(effective_priority(100, &[(0, true)]), (100, false));
        assert_eq!(effective_priority(100, &[(-60, false)]), (40, false));
        assert_eq!(effective_priority(100, &[(-60, true)]), (100, false));
        assert_eq!(effective_priority(100, &[(20, true)]), (120, false));
        assert_eq!(effective_priority(100, &[(20, false)]), (100, false));
        assert_eq!(effective_priority(100, &[(-200, false)]), (1, false));
        assert_eq!(effective_priority(250, &[(20, true)]), (254, false));
        assert_eq!(effective_priority(255, &[(-60, false)]), (255, false));
    }
}
