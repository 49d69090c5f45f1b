//! Turns the raw file into the runtime model, applying keepalived's
//! defaults (and warren's, where docs/vip.md says so) and collecting every
//! problem with its line and key path.
//!
//! A value that is wrong is reported and replaced by a stand-in, so the
//! rest of the file is still checked; the model is only returned when
//! nothing was reported.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Spanned, Value};
use warren_health::config::{parse_address, shown, Loose, Unitless, Validation};
use warren_health::CheckParams;

use super::model::*;
use super::{raw, Problem, ITEM_NAMES};
use crate::vrrp::packet::Version;

/// keepalived writes `advert_int 1` and `0.1`: a number without a unit is
/// seconds.
const UNITLESS: Unitless = Unitless::Seconds;

const DEFAULT_PRIORITY: i64 = 100;
const DEFAULT_ADVERT_INT: Duration = Duration::from_secs(1);
/// A tracker's interval unless set (keepalived's `vrrp_script` default `interval 1`;
/// docs/vip.md).
const DEFAULT_TRACKER_INTER: Duration = Duration::from_secs(1);
/// A tracker's `fall` unless set (docs/vip.md): two failed checks, one fewer than
/// HAProxy's default, mark a tracker down.
const DEFAULT_TRACKER_FALL: u32 = 2;
const DEFAULT_GARP_REPEAT: u32 = 5;
/// VRRPv3 carries the interval in centiseconds in 12 bits (RFC 5798 §5.2.7).
const V3_ADVERT_INT: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_millis(40_950));
/// VRRPv2 carries whole seconds in 8 bits (RFC 3768 §5.3.7).
const V2_ADVERT_INT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(255));
/// keepalived's limit of addresses per advert.
const MAX_VIPS: usize = 20;
const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(1000);
/// Linux's IFNAMSIZ less the terminating NUL.
const MAX_INTERFACE_NAME: usize = 15;
/// Each tracker `type` with the type-specific keys it takes: the options of
/// `Validation::choice`, so an unknown type is reported like any other choice.
const TRACK_TYPE_KEYS: &[(&str, &[&str])] = &[
    ("warren-lb", &["admin", "address"]),
    ("tcp", &["address"]),
    (
        "http",
        &[
            "url",
            "username",
            "password",
            "expect_status",
            "expect_body",
        ],
    ),
    ("exec", &["command"]),
    ("interface", &["interface"]),
];

/// One pass over the whole file: the model, or every problem in it.
pub(super) fn validate(file: &raw::File, text: &str) -> Result<Config, Vec<Problem>> {
    Validation::run(text, |found| Validator { found }.config(file))
}

/// warren-vip's checks, each reporting into the file's problem list and
/// returning a stand-in where a value is wrong.
struct Validator<'v, 'a> {
    found: &'v mut Validation<'a>,
}

impl Validator<'_, '_> {
    fn config(&mut self, file: &raw::File) -> Config {
        if file.instance.is_empty() {
            self.found.absent(
                "instance",
                "no [[instance]] is defined: expected at least one",
            );
        }
        let status_bind = file.status.as_ref().and_then(|s| {
            self.found.parsed(
                &s.bind,
                "status.bind",
                "expected IP:port like \"127.0.0.1:8405\"",
                |t| t.parse().ok(),
            )
        });
        let mut names = HashSet::new();
        // (interface, VRID) → the instance that has it.
        let mut routers: HashMap<(&str, i64), &str> = HashMap::new();
        let mut instances = Vec::new();
        for raw in &file.instance {
            let name = raw.name.get_ref().as_str();
            let key = super::instance_key(name);
            if !names.insert(name) {
                self.found.problem(
                    &raw.name,
                    &format!("{key}.name"),
                    "duplicate instance name: expected each name once",
                );
            }
            let vrid = raw.virtual_router_id.get_ref().as_integer();
            if let Some(vrid) = vrid {
                let router = (raw.interface.get_ref().as_str(), vrid);
                if let Some(other) = routers.insert(router, name) {
                    self.found.problem(
                        &raw.virtual_router_id,
                        &format!("{key}.virtual_router_id"),
                        format!(
                            "{vrid}: already used on {} by instance {other:?}: expected one virtual router per VRID and interface",
                            router.0
                        ),
                    );
                }
            }
            instances.push(self.instance(raw, &key));
        }
        Config {
            status_bind,
            instances,
        }
    }

    fn instance(&mut self, i: &raw::Instance, key: &str) -> Instance {
        if i.name.get_ref().trim().is_empty() {
            self.found
                .problem(&i.name, &format!("{key}.name"), "expected a non-empty name");
        }
        let interface = i.interface.get_ref();
        if interface.is_empty() || interface.len() > MAX_INTERFACE_NAME || interface.contains('/') {
            self.found.problem(
                &i.interface,
                &format!("{key}.interface"),
                format!("{interface:?}: expected an interface name of 1 to {MAX_INTERFACE_NAME} characters, without '/'"),
            );
        }
        let vrid = self
            .found
            .int_in(
                &i.virtual_router_id,
                &format!("{key}.virtual_router_id"),
                1,
                255,
            )
            .unwrap_or(1) as u8;
        let priority = match &i.priority {
            None => DEFAULT_PRIORITY,
            Some(p) => self
                .found
                .int_in(p, &format!("{key}.priority"), 1, 255)
                .unwrap_or(DEFAULT_PRIORITY),
        } as u8;
        // `None`: a version we do not speak, already reported; the checks
        // that depend on the version are then skipped.
        let version = match &i.version {
            None => Some(Version::V3),
            Some(v) => self.version(v, &format!("{key}.version")),
        };
        let advert_int = self
            .found
            .duration(&i.advert_int, &format!("{key}.advert_int"), UNITLESS);
        if let (Some(d), Some(version)) = (advert_int, version) {
            let at = i.advert_int.as_ref().expect("parsed");
            self.advert_int(d, version, at, &format!("{key}.advert_int"));
        }
        let vips = self.vips(&i.virtual_ipaddress, &format!("{key}.virtual_ipaddress"));
        let unicast_peers = i
            .unicast_peer
            .iter()
            .enumerate()
            .filter_map(|(n, peer)| self.ipv4(peer, &format!("{key}.unicast_peer[{n}]")))
            .collect();
        let unicast_src_ip = i
            .unicast_src_ip
            .as_ref()
            .and_then(|ip| self.ipv4(ip, &format!("{key}.unicast_src_ip")));
        let auth_pass = i
            .auth_pass
            .as_ref()
            .and_then(|pass| self.auth_pass(pass, version, &format!("{key}.auth_pass")));
        let garp_repeat = match &i.garp_master_repeat {
            None => DEFAULT_GARP_REPEAT,
            Some(n) => self
                .found
                .int_in(n, &format!("{key}.garp_master_repeat"), 1, 255)
                .map_or(DEFAULT_GARP_REPEAT, |n| n as u32),
        };
        let garp_refresh = self
            .found
            .duration(
                &i.garp_master_refresh,
                &format!("{key}.garp_master_refresh"),
                UNITLESS,
            )
            .filter(|d| !d.is_zero());
        let notify = i.notify.as_ref().map(|n| {
            let path = PathBuf::from(n.get_ref());
            if !path.is_absolute() {
                self.found.problem(
                    n,
                    &format!("{key}.notify"),
                    format!("{:?}: expected an absolute path", n.get_ref()),
                );
            }
            path
        });
        let preempt_delay = self
            .found
            .duration(&i.preempt_delay, &format!("{key}.preempt_delay"), UNITLESS)
            .unwrap_or(Duration::ZERO);
        if preempt_delay > MAX_PREEMPT_DELAY {
            let at = i.preempt_delay.as_ref().expect("parsed");
            self.found.problem(
                at,
                &format!("{key}.preempt_delay"),
                format!("{}: expected at most 1000s", shown(at.get_ref())),
            );
        }
        let tracks = self.tracks(&i.track, key);
        Instance {
            name: i.name.get_ref().clone(),
            interface: interface.clone(),
            vrid,
            priority,
            advert_int: advert_int.unwrap_or(DEFAULT_ADVERT_INT),
            version: version.unwrap_or(Version::V3),
            preempt: i.preempt.unwrap_or(true) && !i.nopreempt,
            preempt_delay,
            vips,
            unicast_peers,
            unicast_src_ip,
            v3_pseudo_header: i.v3_checksum_pseudo_header.unwrap_or(true),
            auth_pass,
            notify,
            state_file: i.state_file.clone(),
            garp_repeat,
            garp_refresh,
            tracks,
        }
    }

    fn version(&mut self, v: &Loose, key: &str) -> Option<Version> {
        match v.get_ref().as_integer() {
            Some(3) => Some(Version::V3),
            Some(2) => Some(Version::V2),
            _ => {
                self.found
                    .problem(v, key, format!("{}: expected 3 or 2", shown(v.get_ref())));
                None
            }
        }
    }

    /// The interval must fit the advert's field for `version`.
    fn advert_int(&mut self, d: Duration, version: Version, at: &Loose, key: &str) {
        let written = shown(at.get_ref());
        match version {
            Version::V3 => {
                let (min, max) = V3_ADVERT_INT;
                if d < min || d > max {
                    self.found.problem(
                        at,
                        key,
                        format!("{written}: expected 10ms to 40.95s for VRRPv3"),
                    );
                } else if d.as_millis() % 10 != 0 {
                    self.found.problem(
                        at,
                        key,
                        format!(
                            "{written}: expected a multiple of 10ms (VRRPv3 counts centiseconds)"
                        ),
                    );
                }
            }
            Version::V2 => {
                let (min, max) = V2_ADVERT_INT;
                if d.subsec_nanos() != 0 || d < min || d > max {
                    self.found.problem(
                        at,
                        key,
                        format!("{written}: expected whole seconds from 1s to 255s for VRRPv2 (use version = 3 for sub-second)"),
                    );
                }
            }
        }
    }

    fn vips(&mut self, list: &Spanned<Vec<Loose>>, key: &str) -> Vec<(Ipv4Addr, u8)> {
        if list.get_ref().is_empty() {
            self.found.problem(
                list,
                key,
                "empty list: expected at least one address like \"10.0.0.100/24\"",
            );
        }
        if list.get_ref().len() > MAX_VIPS {
            self.found.problem(
                list,
                key,
                format!(
                    "{} addresses: expected at most {MAX_VIPS} (keepalived's limit per advert)",
                    list.get_ref().len()
                ),
            );
        }
        let mut vips: Vec<(Ipv4Addr, u8)> = Vec::new();
        for (n, text) in list.get_ref().iter().enumerate() {
            let item_key = format!("{key}[{n}]");
            let Some(vip) = self.cidr(text, &item_key) else {
                continue;
            };
            if vips.iter().any(|(addr, _)| *addr == vip.0) {
                self.found.problem(
                    text,
                    &item_key,
                    format!("duplicate address {}: expected each address once", vip.0),
                );
            }
            vips.push(vip);
        }
        vips
    }

    /// v2's simple password (auth type 1); VRRPv3 has no authentication.
    fn auth_pass(
        &mut self,
        pass: &Spanned<String>,
        version: Option<Version>,
        key: &str,
    ) -> Option<[u8; 8]> {
        let bytes = pass.get_ref().as_bytes();
        match version? {
            Version::V3 => {
                self.found.problem(
                    pass,
                    key,
                    "expected no auth_pass with version = 3 (VRRPv3 has no authentication)",
                );
                None
            }
            Version::V2 if bytes.is_empty() || bytes.len() > 8 => {
                self.found.problem(
                    pass,
                    key,
                    format!(
                        "{} bytes: expected 1 to 8 bytes (VRRPv2 simple password)",
                        bytes.len()
                    ),
                );
                None
            }
            Version::V2 => {
                let mut padded = [0u8; 8];
                padded[..bytes.len()].copy_from_slice(bytes);
                Some(padded)
            }
        }
    }

    fn tracks(&mut self, raws: &[Spanned<raw::Track>], instance_key: &str) -> Vec<Track> {
        raws.iter()
            .enumerate()
            .filter_map(|(n, t)| {
                let table = format!("{instance_key}.track");
                let key = ITEM_NAMES.item(&table, n, t.get_ref().name.as_deref());
                self.track(t, &key)
            })
            .collect()
    }

    fn track(&mut self, spanned: &Spanned<raw::Track>, key: &str) -> Option<Track> {
        let t = spanned.get_ref();
        let interval = self.positive(
            &t.interval,
            &format!("{key}.interval"),
            DEFAULT_TRACKER_INTER,
        );
        // Default: the interval, at least 1 s (a process spawn on a loaded host can take
        // longer than a short interval; the next check waits for this one anyway).
        let timeout = self.positive(
            &t.timeout,
            &format!("{key}.timeout"),
            interval.max(Duration::from_secs(1)),
        );
        let (rise, fall) = self
            .found
            .rise_fall(key, &t.rise, &t.fall, DEFAULT_TRACKER_FALL);
        let weight = t.weight.as_ref().map_or(0, |w| {
            self.found
                .int_in(w, &format!("{key}.weight"), -253, 253)
                .unwrap_or(0) as i32
        });
        let kind = self.track_kind(spanned, key)?;
        let name = t.name.clone().unwrap_or_else(|| match &kind {
            TrackKind::Http { url, .. } => format!("http {url}"),
            TrackKind::Tcp { address } => format!("tcp {address}"),
            TrackKind::Exec { command } => format!("exec {}", command[0]),
            TrackKind::Interface { name } => format!("interface {name}"),
        });
        Some(Track {
            name,
            kind,
            check: CheckParams::new(interval, None, None, rise, fall),
            timeout,
            weight,
        })
    }

    /// What a tracker probes; `None` when that is wrong (reported).
    fn track_kind(&mut self, spanned: &Spanned<raw::Track>, key: &str) -> Option<TrackKind> {
        let t = spanned.get_ref();
        let kind = t.kind.get_ref().as_str();
        // `type` is a required string in raw::Track (serde reports its absence or a
        // wrong type); choice() takes it as the value it was written as.
        let written = Some(Spanned::new(t.kind.span(), Value::String(kind.to_owned())));
        let allowed = self
            .found
            .choice(&written, &format!("{key}.type"), TRACK_TYPE_KEYS)?;
        let present = [
            ("admin", t.admin.as_ref().map(Spanned::span)),
            ("address", t.address.as_ref().map(Spanned::span)),
            ("url", t.url.as_ref().map(Spanned::span)),
            ("username", t.username.as_ref().map(Spanned::span)),
            ("password", t.password.as_ref().map(Spanned::span)),
            ("expect_status", t.expect_status.as_ref().map(Spanned::span)),
            ("expect_body", t.expect_body.as_ref().map(Spanned::span)),
            ("command", t.command.as_ref().map(Spanned::span)),
            ("interface", t.interface.as_ref().map(Spanned::span)),
        ];
        for (field, span) in present {
            if let Some(span) = span.filter(|_| !allowed.contains(&field)) {
                self.found.problem_in(
                    span,
                    &format!("{key}.{field}"),
                    format!(
                        "not valid for type = {kind:?} (allowed: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        match kind {
            "warren-lb" => match (&t.admin, &t.address) {
                (Some(admin), _) => {
                    let admin = admin.get_ref();
                    let base = if admin.starts_with("http://") || admin.starts_with("https://") {
                        admin.clone()
                    } else {
                        format!("http://{admin}")
                    };
                    Some(TrackKind::Http {
                        url: format!("{}/readyz", base.trim_end_matches('/')),
                        username: None,
                        password: None,
                        expect_status: 200,
                        expect_body: None,
                    })
                }
                (None, Some(address)) => Some(TrackKind::Tcp {
                    address: self.track_address(address, &format!("{key}.address"))?,
                }),
                (None, None) => {
                    self.expects(spanned, key, "admin = \"127.0.0.1:8404\" (checks /readyz) or address = \"127.0.0.1:5672\" (TCP check of the listener)");
                    None
                }
            },
            "tcp" => {
                let address = self.required(
                    &t.address,
                    spanned,
                    &format!("{key}.address"),
                    "address = IP:port or hostname:port, like \"127.0.0.1:5672\"",
                )?;
                Some(TrackKind::Tcp {
                    address: self.track_address(address, &format!("{key}.address"))?,
                })
            }
            "http" => {
                let url = self.required(
                    &t.url,
                    spanned,
                    &format!("{key}.url"),
                    "url, like \"http://127.0.0.1:8404/readyz\"",
                )?;
                let text = url.get_ref();
                if !(text.starts_with("http://") || text.starts_with("https://")) {
                    self.found.problem(
                        url,
                        &format!("{key}.url"),
                        format!("{text:?}: expected an http:// or https:// URL"),
                    );
                }
                let expect_status = t.expect_status.as_ref().map_or(200, |s| {
                    self.found
                        .int_in(s, &format!("{key}.expect_status"), 100, 599)
                        .unwrap_or(200) as u16
                });
                let text_of = |s: &Option<Spanned<String>>| s.as_ref().map(|s| s.get_ref().clone());
                Some(TrackKind::Http {
                    url: text.clone(),
                    username: text_of(&t.username),
                    password: text_of(&t.password),
                    expect_status,
                    expect_body: text_of(&t.expect_body),
                })
            }
            "exec" => {
                let command = t
                    .command
                    .as_ref()
                    .map(|c| c.get_ref().clone())
                    .unwrap_or_default();
                if command
                    .first()
                    .is_none_or(|program| !Path::new(program).is_absolute())
                {
                    let at = t.command.as_ref().map_or(spanned.span(), Spanned::span);
                    self.found.problem_in(
                        at,
                        &format!("{key}.command"),
                        "expected [\"/absolute/path\", \"args\"...] for type = \"exec\"",
                    );
                    return None;
                }
                Some(TrackKind::Exec { command })
            }
            _ => {
                let interface = self.required(
                    &t.interface,
                    spanned,
                    &format!("{key}.interface"),
                    "interface, an interface name like \"eth1\"",
                )?;
                Some(TrackKind::Interface {
                    name: interface.get_ref().clone(),
                })
            }
        }
    }

    /// `value`, a key the tracker's type needs; its absence is reported at
    /// the tracker's table.
    fn required<'t, T>(
        &mut self,
        value: &'t Option<Spanned<T>>,
        track: &Spanned<raw::Track>,
        key: &str,
        what: &str,
    ) -> Option<&'t Spanned<T>> {
        if value.is_none() {
            self.expects(track, key, what);
        }
        value.as_ref()
    }

    /// The problem of a track that lacks what its `type` needs.
    fn expects(&mut self, track: &Spanned<raw::Track>, key: &str, what: &str) {
        let kind = track.get_ref().kind.get_ref();
        self.found
            .problem(track, key, format!("type = {kind:?} expects {what}"));
    }

    /// A duration above zero (the shared rule of check durations),
    /// `default` when not set (or wrong, reported).
    fn positive(&mut self, v: &Option<Loose>, key: &str, default: Duration) -> Duration {
        self.found.above_zero(v, key, UNITLESS).unwrap_or(default)
    }

    fn ipv4(&mut self, v: &Loose, key: &str) -> Option<Ipv4Addr> {
        self.found
            .parsed(v, key, "expected an IPv4 address like \"10.0.0.2\"", |t| {
                t.trim().parse().ok()
            })
    }

    /// `ADDRESS` or `ADDRESS/PREFIX` (a missing prefix is /32).
    fn cidr(&mut self, v: &Loose, key: &str) -> Option<(Ipv4Addr, u8)> {
        self.found.parsed(
            v,
            key,
            "expected an IPv4 address with optional prefix like \"10.0.0.100/24\"",
            |t| {
                let (addr, prefix) = match t.trim().split_once('/') {
                    Some((addr, prefix)) => (addr, prefix.parse::<u8>().ok().filter(|p| *p <= 32)),
                    None => (t.trim(), Some(32)),
                };
                addr.parse::<Ipv4Addr>().ok().zip(prefix)
            },
        )
    }

    /// `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`, the port from 1 to 65535.
    fn track_address(&mut self, v: &Loose, key: &str) -> Option<Address> {
        self.found.parsed(
            v,
            key,
            "expected IP:port, [IPv6]:port or hostname:port with a port from 1 to 65535, like \"127.0.0.1:5672\", \"[::1]:5672\" or \"warren-lb.messaging.svc.cluster.local:8404\"",
            |t| parse_address(t.trim()).ok(),
        )
    }
}
