//! Turns the raw file into the runtime model, applying HAProxy's defaults
//! and collecting every problem with its line and key path.
//!
//! Where warren's default differs from HAProxy's it is for failover speed,
//! and docs/configuration.md lists each such difference.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use warren_health::config::{
    parse_address, parse_duration, shown, AddressError, Loose, Unitless, Validation,
};
use warren_health::CheckParams;

use super::model::*;
use super::raw;
use super::{Files, Problem};
use crate::certificates::{self as pair, PairError};

const DEFAULT_FRONTEND_MAXCONN: usize = 10_000;
const DEFAULT_TIMEOUT_CONNECT: Duration = Duration::from_secs(1);
const DEFAULT_MGMT_PORT: u16 = 15672;
const DEFAULT_TIMEOUT_HANDSHAKE: Duration = Duration::from_secs(10);

/// HAProxy spells durations with a unit; a bare `inter = 1` is refused.
const UNITLESS: Unitless = Unitless::Refused;

struct Validator<'v, 'a> {
    found: &'v mut Validation<'a>,
    files: Files,
}

pub(super) fn validate(file: &raw::File, text: &str, files: Files) -> Result<Config, Vec<Problem>> {
    Validation::run(text, |found| Validator { found, files }.config(file))
}

impl Validator<'_, '_> {
    fn config(&mut self, file: &raw::File) -> Config {
        let admin = file.admin.as_ref().and_then(|a| {
            let token = self.admin_token(a);
            self.socket_addr(&a.bind, "admin.bind")
                .map(|bind| Admin { bind, token })
        });
        let backends: Vec<Backend> = self.backends(&file.backend);
        let names: Vec<&str> = file
            .backend
            .iter()
            .map(|b| b.get_ref().name.get_ref().as_str())
            .collect();
        if file.frontend.is_empty() {
            self.found.absent(
                "frontend",
                "no [[frontend]] is defined: expected at least one listener",
            );
        }
        let mut seen = HashSet::new();
        let mut frontends = Vec::new();
        for spanned in &file.frontend {
            let f = spanned.get_ref();
            let name = f.name.get_ref().clone();
            let key = format!("frontend[{name}]");
            if !seen.insert(name.clone()) {
                self.found.problem(
                    &f.name,
                    &format!("{key}.name"),
                    "duplicate frontend name: expected each name once",
                );
            }
            let bind = self.socket_addr(&f.bind, &format!("{key}.bind"));
            let backend = names.iter().position(|n| *n == f.backend.get_ref());
            if backend.is_none() {
                self.found.problem(
                    &f.backend,
                    &format!("{key}.backend"),
                    format!(
                        "no backend named {:?}: expected one of {:?}",
                        f.backend.get_ref(),
                        names
                    ),
                );
            }
            let maxconn = match &f.maxconn {
                None => DEFAULT_FRONTEND_MAXCONN,
                Some(m) => self
                    .found
                    .int_at_least(m, &format!("{key}.maxconn"), 1)
                    .unwrap_or(1) as usize,
            };
            let timeout_first_byte = self
                .duration(&f.timeout_first_byte, &format!("{key}.timeout_first_byte"))
                .filter(|d| !d.is_zero());
            let tls = f
                .tls
                .as_ref()
                .map(|t| self.tls(t.get_ref(), &format!("{key}.tls")));
            if let (Some(bind), Some(backend)) = (bind, backend) {
                frontends.push(Frontend {
                    name,
                    bind,
                    backend,
                    maxconn,
                    timeout_first_byte,
                    tls,
                });
            }
        }
        let hard_stop_after = file
            .global
            .as_ref()
            .and_then(|g| self.duration(&g.hard_stop_after, "global.hard_stop_after"))
            .filter(|d| !d.is_zero());
        let resolvers = file
            .resolvers
            .as_ref()
            .map(|r| self.resolvers(r))
            .unwrap_or_default();
        Config {
            hard_stop_after,
            admin,
            resolvers,
            frontends,
            backends,
        }
    }

    fn tls(&mut self, t: &raw::Tls, key: &str) -> Tls {
        let verify_key = format!("{key}.verify_client");
        // A CA given means clients are to be checked against it; `None`: a
        // value we do not know, already reported.
        let verify_client = match (&t.verify_client, &t.client_ca) {
            (None, Some(_)) => Some(VerifyClient::Required),
            (None, None) => Some(VerifyClient::None),
            (Some(_), _) => self.found.choice(
                &t.verify_client,
                &verify_key,
                &[
                    ("required", VerifyClient::Required),
                    ("optional", VerifyClient::Optional),
                    ("none", VerifyClient::None),
                ],
            ),
        };
        match (verify_client, &t.client_ca, &t.verify_client) {
            (Some(VerifyClient::None), Some(ca), _) => self.found.problem(
                ca,
                &format!("{key}.client_ca"),
                "only used when verify_client is \"required\" or \"optional\", but it is \"none\"",
            ),
            (Some(VerifyClient::Required | VerifyClient::Optional), None, Some(v)) => self.found.problem(
                v,
                &verify_key,
                "client certificates are verified against client_ca: expected client_ca, a PEM file of the CAs that sign them",
            ),
            _ => {}
        }
        let alpn = match &t.alpn {
            None => Vec::new(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.found.problem(
                        list,
                        &format!("{key}.alpn"),
                        "empty list: expected protocol names such as [\"amqp\"], or leave the key out for no ALPN",
                    );
                }
                for (i, p) in list.get_ref().iter().enumerate() {
                    if p.get_ref().is_empty() || p.get_ref().len() > 255 {
                        self.found.problem(
                            p,
                            &format!("{key}.alpn[{i}]"),
                            "expected a protocol name of 1 to 255 bytes",
                        );
                    }
                }
                list.get_ref().iter().map(|p| p.get_ref().clone()).collect()
            }
        };
        let min_version = self
            .found
            .choice(
                &t.min_version,
                &format!("{key}.min_version"),
                &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
            )
            .unwrap_or(TlsVersion::V1_2);
        let timeout_key = format!("{key}.timeout_handshake");
        let timeout_handshake = self
            .duration(&t.timeout_handshake, &timeout_key)
            .unwrap_or(DEFAULT_TIMEOUT_HANDSHAKE);
        if timeout_handshake.is_zero() {
            if let Some(v) = &t.timeout_handshake {
                self.found.problem(
                    v,
                    &timeout_key,
                    "expected a duration above zero, like \"10s\"",
                );
            }
        }
        let tls = Tls {
            cert: PathBuf::from(t.cert.get_ref()),
            key: PathBuf::from(t.key.get_ref()),
            client_ca: t.client_ca.as_ref().map(|c| PathBuf::from(c.get_ref())),
            verify_client: verify_client.unwrap_or(VerifyClient::Required),
            alpn,
            min_version,
            timeout_handshake,
        };
        if self.files == Files::Check {
            self.tls_files(t, &tls, key);
        }
        tls
    }

    /// The certificate, key and client CA load and make a pair that can
    /// serve, by the very rules the listener loads them with.
    fn tls_files(&mut self, t: &raw::Tls, tls: &Tls, key: &str) {
        self.pair_files((&t.cert, &tls.cert), (&t.key, &tls.key), key);
        if let (Some(path), Some(at)) = (&tls.client_ca, &t.client_ca) {
            self.ca_file(at, path, &format!("{key}.client_ca"));
        }
    }

    /// A `cert` and `key` (each as written and as a path) load and match,
    /// by the rules of [`pair::load`]; a problem goes to the key it is about.
    fn pair_files(
        &mut self,
        cert: (&Spanned<String>, &PathBuf),
        private: (&Spanned<String>, &PathBuf),
        key: &str,
    ) {
        let provider = rustls::crypto::ring::default_provider();
        if let Err(e) = pair::load(cert.1, private.1, &provider, pair::now()) {
            let (at, field) = match &e {
                PairError::Unreadable { path, .. } if path == private.1 => (private.0, "key"),
                PairError::CertificateAsKey { .. }
                | PairError::NoKey { .. }
                | PairError::UnusableKey { .. }
                | PairError::KeyMismatch { .. } => (private.0, "key"),
                _ => (cert.0, "cert"),
            };
            self.found
                .problem(at, &format!("{key}.{field}"), e.to_string());
        }
    }

    /// A PEM file of CAs holds at least one certificate.
    fn ca_file(&mut self, at: &Spanned<String>, path: &std::path::Path, key: &str) {
        if let Err(e) = pair::client_roots(path) {
            self.found.problem(at, key, e.to_string());
        }
    }

    /// `[backend.check.tls]`: TLS to the servers, for a check of `kind`.
    fn server_tls(
        &mut self,
        spanned: &Spanned<raw::ServerTls>,
        kind: &str,
        key: &str,
    ) -> ServerTls {
        let t = spanned.get_ref();
        if !matches!(kind, "amqp" | "http" | "rabbitmq") {
            self.found.problem(
                spanned,
                key,
                format!(
                    "only used by type = \"amqp\", \"http\" or \"rabbitmq\", but type is {kind:?}"
                ),
            );
        }
        let verify_key = format!("{key}.verify");
        let verify = self
            .found
            .choice(
                &t.verify,
                &verify_key,
                &[
                    ("required", VerifyServer::Required),
                    ("none", VerifyServer::None),
                ],
            )
            .unwrap_or(VerifyServer::Required);
        match (verify, &t.ca) {
            (VerifyServer::Required, None) => self.found.problem(
                spanned,
                &format!("{key}.ca"),
                "verify = \"required\" (the default) checks the servers' certificates against ca: expected ca, a PEM file of the CAs that sign them, or verify = \"none\"",
            ),
            (VerifyServer::None, Some(ca)) => self.found.problem(
                ca,
                &format!("{key}.ca"),
                "only used when verify is \"required\", but it is \"none\"",
            ),
            _ => {}
        }
        let sni = t.sni.as_ref().and_then(|name| {
            let text = name.get_ref();
            if rustls::pki_types::ServerName::try_from(text.as_str()).is_err() {
                self.found.problem(
                    name,
                    &format!("{key}.sni"),
                    format!("{text:?}: expected a DNS name such as \"rabbit1.example\" (or an IP address)"),
                );
                return None;
            }
            Some(text.clone())
        });
        let client = match (&t.cert, &t.key) {
            (Some(cert), Some(private)) => {
                let pair = ClientCert {
                    cert: PathBuf::from(cert.get_ref()),
                    key: PathBuf::from(private.get_ref()),
                };
                if self.files == Files::Check {
                    self.pair_files((cert, &pair.cert), (private, &pair.key), key);
                }
                Some(pair)
            }
            (Some(at), None) | (None, Some(at)) => {
                let (field, other) = if t.cert.is_some() {
                    ("cert", "key")
                } else {
                    ("key", "cert")
                };
                self.found.problem(
                    at,
                    &format!("{key}.{field}"),
                    format!("a client certificate needs both cert and key: expected {other} too"),
                );
                None
            }
            (None, None) => None,
        };
        let ca = t.ca.as_ref().map(|c| PathBuf::from(c.get_ref()));
        if let (Some(path), Some(at), Files::Check) = (&ca, &t.ca, self.files) {
            self.ca_file(at, path, &format!("{key}.ca"));
        }
        ServerTls {
            ca: ca.filter(|_| verify == VerifyServer::Required),
            verify,
            sni,
            client,
        }
    }

    fn backends(&mut self, raws: &[Spanned<raw::Backend>]) -> Vec<Backend> {
        let mut seen = HashSet::new();
        raws.iter()
            .map(|spanned| {
                let b = spanned.get_ref();
                let name = b.name.get_ref().clone();
                if !seen.insert(name.clone()) {
                    self.found.problem(
                        &b.name,
                        &format!("backend[{name}].name"),
                        "duplicate backend name: expected each name once",
                    );
                }
                self.backend(b)
            })
            .collect()
    }

    fn backend(&mut self, b: &raw::Backend) -> Backend {
        let name = b.name.get_ref().clone();
        let key = format!("backend[{name}]");
        let balances: Vec<(&str, Balance)> =
            Balance::ALL.iter().map(|b| (b.as_str(), *b)).collect();
        let balance = self
            .found
            .choice(&b.balance, &format!("{key}.balance"), &balances)
            .unwrap_or(Balance::RoundRobin);
        let observe = self
            .found
            .choice(
                &b.observe,
                &format!("{key}.observe"),
                &[("layer4", true), ("none", false)],
            )
            .unwrap_or(true);
        let on_error = self
            .found
            .choice(
                &b.on_error,
                &format!("{key}.on_error"),
                &[
                    ("mark-down", OnError::MarkDown),
                    ("fail-check", OnError::FailCheck),
                ],
            )
            .unwrap_or(OnError::MarkDown);
        let shutdown_sessions_on_down = self
            .found
            .choice(
                &b.on_marked_down,
                &format!("{key}.on_marked_down"),
                &[("shutdown-sessions", true), ("none", false)],
            )
            .unwrap_or(true);
        let shutdown_backup_sessions_on_up = self
            .found
            .choice(
                &b.on_marked_up,
                &format!("{key}.on_marked_up"),
                &[("shutdown-backup-sessions", true), ("none", false)],
            )
            .unwrap_or(false);
        let failback = match &b.failback {
            None => Failback::Immediate,
            Some(f) => self.failback(f, &format!("{key}.failback")),
        };
        let timeout_connect = self
            .above_zero(&b.timeout_connect, &format!("{key}.timeout_connect"))
            .unwrap_or(DEFAULT_TIMEOUT_CONNECT);
        let timeout_idle = self
            .duration(&b.timeout_idle, &format!("{key}.timeout_idle"))
            .filter(|d| !d.is_zero());
        let check = self.check(b.check.as_ref(), &key);
        let servers = self.servers(&b.server, &key, b.check.is_some());
        Backend {
            name,
            balance,
            allbackups: b.allbackups,
            redispatch: b.redispatch.unwrap_or(true),
            observe_layer4: observe.then_some(on_error),
            shutdown_sessions_on_down,
            shutdown_backup_sessions_on_up,
            failback,
            timeout_connect,
            timeout_idle,
            check,
            servers,
        }
    }

    fn resolvers(&mut self, r: &raw::Resolvers) -> Resolvers {
        let defaults = Resolvers::default();
        let nameservers = r.nameservers.as_ref().map(|list| {
            if list.get_ref().is_empty() {
                self.found.problem(
                    list,
                    "resolvers.nameservers",
                    "empty list: expected at least one IP or IP:port, or leave the key out to use /etc/resolv.conf",
                );
            }
            list.get_ref()
                .iter()
                .enumerate()
                .filter_map(|(i, n)| self.nameserver(n, &format!("resolvers.nameservers[{i}]")))
                .collect()
        });
        let mut positive = |v: &Option<Loose>, key: &str, default: Duration| {
            self.above_zero(v, key).unwrap_or(default)
        };
        let timeout_resolve = positive(
            &r.timeout_resolve,
            "resolvers.timeout_resolve",
            defaults.timeout_resolve,
        );
        let timeout_retry = positive(
            &r.timeout_retry,
            "resolvers.timeout_retry",
            defaults.timeout_retry,
        );
        let hold_valid = positive(&r.hold_valid, "resolvers.hold_valid", defaults.hold_valid);
        let resolve_retries = r
            .resolve_retries
            .as_ref()
            .and_then(|n| self.found.int_in(n, "resolvers.resolve_retries", 1, 100))
            .map_or(defaults.resolve_retries, |n| n as u32);
        Resolvers {
            nameservers,
            timeout_resolve,
            timeout_retry,
            resolve_retries,
            hold_valid,
        }
    }

    /// `IP` (port 53) or `IP:port`.
    fn nameserver(&mut self, n: &Spanned<String>, key: &str) -> Option<SocketAddr> {
        let text = n.get_ref();
        let parsed = text.parse::<SocketAddr>().ok().or_else(|| {
            text.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        });
        if parsed.is_none() {
            self.found.problem(
                n,
                key,
                format!("{text:?}: expected IP or IP:port, such as \"10.96.0.10\" or \"127.0.0.1:5353\""),
            );
        }
        parsed
    }

    fn failback(&mut self, f: &Loose, key: &str) -> Failback {
        match f.get_ref().as_str() {
            Some("immediate") => Failback::Immediate,
            Some("manual") => Failback::Manual,
            text => match text
                .and_then(|t| t.strip_prefix("after:"))
                .map(|t| parse_duration(t, UNITLESS))
            {
                Some(Some(d)) if !d.is_zero() => Failback::After(d),
                _ => {
                    self.found.problem(
                        f,
                        key,
                        format!(
                            "{}: expected \"immediate\", \"manual\" or \"after:<duration>\" such as \"after:30s\"",
                            shown(f.get_ref())
                        ),
                    );
                    Failback::Immediate
                }
            },
        }
    }

    fn check(&mut self, c: Option<&raw::Check>, backend_key: &str) -> Check {
        let key = format!("{backend_key}.check");
        let Some(c) = c else {
            return Check {
                kind: CheckKind::None,
                params: CheckParams::default(),
                timeout: CheckParams::DEFAULT_INTER,
                port: None,
                username: None,
                password: None,
                tls: None,
            };
        };
        // `None`: a type we do not know, already reported.
        let kind_name = match &c.kind {
            None => Some("tcp"),
            Some(_) => self.found.choice(
                &c.kind,
                &format!("{key}.type"),
                &[
                    ("tcp", "tcp"),
                    ("amqp", "amqp"),
                    ("http", "http"),
                    ("rabbitmq", "rabbitmq"),
                ],
            ),
        };
        let kind = match kind_name {
            Some("amqp") => CheckKind::Amqp,
            Some("rabbitmq") => CheckKind::Rabbitmq,
            Some("http") => CheckKind::Http {
                path: c
                    .path
                    .as_ref()
                    .map(|p| p.get_ref().clone())
                    .unwrap_or_else(|| "/".into()),
                expect_status: match &c.expect_status {
                    None => 200,
                    Some(s) => self
                        .found
                        .int_in(s, &format!("{key}.expect_status"), 100, 599)
                        .unwrap_or(200) as u16,
                },
                expect_body: c.expect_body.clone(),
            },
            _ => CheckKind::Tcp,
        };
        if let Some(kind_name) = kind_name.filter(|name| *name != "http") {
            for (field, value) in [
                ("path", c.path.as_ref().map(|p| p.span())),
                ("expect_status", c.expect_status.as_ref().map(|p| p.span())),
            ] {
                if let Some(span) = value {
                    self.found.problem_in(
                        span,
                        &format!("{key}.{field}"),
                        format!("only used by type = \"http\", but type is {kind_name:?}"),
                    );
                }
            }
        }
        let inter = self
            .above_zero(&c.inter, &format!("{key}.inter"))
            .unwrap_or(CheckParams::DEFAULT_INTER);
        let fastinter = self.above_zero(&c.fastinter, &format!("{key}.fastinter"));
        let downinter = self.above_zero(&c.downinter, &format!("{key}.downinter"));
        let timeout = self
            .above_zero(&c.timeout, &format!("{key}.timeout"))
            .unwrap_or(inter);
        let (rise, fall) = self
            .found
            .rise_fall(&key, &c.rise, &c.fall, CheckParams::DEFAULT_FALL);
        let port = match &c.port {
            Some(p) => self
                .found
                .int_in(p, &format!("{key}.port"), 1, 65535)
                .map(|p| p as u16),
            None if kind == CheckKind::Rabbitmq => Some(DEFAULT_MGMT_PORT),
            None => None,
        };
        let password = match (&c.password, &c.password_file) {
            (Some(_), Some(f)) => {
                self.found.problem(
                    f,
                    &format!("{key}.password_file"),
                    "set either password or password_file, not both",
                );
                None
            }
            (Some(p), None) => Some(Secret::Inline(p.clone())),
            (None, Some(f)) => Some(Secret::File(PathBuf::from(f.get_ref()))),
            (None, None) => None,
        };
        if kind == CheckKind::Rabbitmq && (c.username.is_none() || password.is_none()) {
            let at = c.kind.as_ref().expect("rabbitmq kind is explicit");
            self.found.problem(
                at,
                &format!("{key}.type"),
                "type = \"rabbitmq\" reads the management API: expected username and password (or password_file)",
            );
        }
        // `None`: a type we do not know, already reported.
        let tls = match (&c.tls, kind_name) {
            (Some(t), Some(kind_name)) => {
                Some(self.server_tls(t, kind_name, &format!("{key}.tls")))
            }
            _ => None,
        };
        Check {
            kind,
            params: CheckParams::new(inter, fastinter, downinter, rise, fall),
            timeout,
            port,
            username: c.username.clone(),
            password,
            tls,
        }
    }

    /// The admin API's bearer token: inline, or read from `token_file` at
    /// every load, so that a missing or empty file is refused by
    /// `check-config`, at start and by a reload, instead of locking the
    /// operator out at the first command.
    fn admin_token(&mut self, admin: &raw::Admin) -> Option<String> {
        let (token, at, key) = match (&admin.token, &admin.token_file) {
            (None, None) => return None,
            (Some(_), Some(file)) => {
                self.found.problem(
                    file,
                    "admin.token_file",
                    "set either token or token_file, not both",
                );
                return None;
            }
            (Some(inline), None) => (inline.get_ref().clone(), inline, "admin.token"),
            (None, Some(file)) => match std::fs::read_to_string(file.get_ref()) {
                Ok(text) => (text.trim().to_owned(), file, "admin.token_file"),
                Err(e) => {
                    let path = file.get_ref();
                    self.found.problem(
                        file,
                        "admin.token_file",
                        format!("cannot read {path}: {e}: expected a readable file holding the bearer token"),
                    );
                    return None;
                }
            },
        };
        if token.is_empty() {
            self.found.problem(
                at,
                key,
                "the token is empty: expected a non-empty bearer token, or no token at all",
            );
            return None;
        }
        Some(token)
    }

    /// The servers of a backend; `checked` = the backend has active checks.
    fn servers(
        &mut self,
        raws: &[Spanned<raw::Server>],
        backend_key: &str,
        checked: bool,
    ) -> Vec<Server> {
        if raws.is_empty() {
            self.found.absent(
                &format!("{backend_key}.server"),
                "no [[backend.server]]: expected at least one server",
            );
        }
        let mut seen = HashSet::new();
        let mut servers = Vec::new();
        for spanned in raws {
            let s = spanned.get_ref();
            let name = s.name.get_ref().clone();
            let key = format!("{backend_key}.server[{name}]");
            if !seen.insert(name.clone()) {
                self.found.problem(
                    &s.name,
                    &format!("{key}.name"),
                    "duplicate server name in this backend: expected each name once",
                );
            }
            let address = self.address(&s.address, &format!("{key}.address"));
            let role = self
                .found
                .choice(
                    &s.role,
                    &format!("{key}.role"),
                    &[("primary", Role::Primary), ("backup", Role::Backup)],
                )
                .unwrap_or(Role::Primary);
            let weight = match &s.weight {
                None => 1,
                Some(w) => self
                    .found
                    .int_in(w, &format!("{key}.weight"), 0, 256)
                    .unwrap_or(1) as u32,
            };
            let maxconn = match &s.maxconn {
                None => 0,
                Some(m) => self
                    .found
                    .int_at_least(m, &format!("{key}.maxconn"), 0)
                    .unwrap_or(0) as usize,
            };
            let send_proxy = self
                .found
                .choice(
                    &s.send_proxy,
                    &format!("{key}.send_proxy"),
                    &[
                        ("none", SendProxy::None),
                        ("v1", SendProxy::V1),
                        ("v2", SendProxy::V2),
                    ],
                )
                .unwrap_or(SendProxy::None);
            let check_addr = s
                .check_addr
                .as_ref()
                .and_then(|a| self.ip(a, &format!("{key}.check_addr")));
            let check_port = s
                .check_port
                .as_ref()
                .and_then(|p| self.found.int_in(p, &format!("{key}.check_port"), 1, 65535))
                .map(|p| p as u16);
            if !checked {
                for (field, value) in [("check_addr", &s.check_addr), ("check_port", &s.check_port)]
                {
                    if let Some(v) = value {
                        self.found.problem(
                            v,
                            &format!("{key}.{field}"),
                            "only used by active checks, but the backend has no [backend.check]",
                        );
                    }
                }
            }
            if let Some(address) = address {
                servers.push(Server {
                    name,
                    address,
                    role,
                    weight,
                    maxconn,
                    send_proxy,
                    check_addr,
                    check_port,
                });
            }
        }
        servers
    }

    fn address(&mut self, a: &Loose, key: &str) -> Option<Address> {
        let text = a.get_ref().as_str().unwrap_or_default();
        match parse_address(text) {
            Ok(address) => Some(address),
            Err(AddressError::PortZero) => {
                self.found
                    .problem(a, key, format!("{text:?}: expected a port from 1 to 65535"));
                None
            }
            Err(AddressError::Malformed) => {
                self.found.problem(
                    a,
                    key,
                    format!("{}: expected IP:port or hostname:port, such as \"10.0.0.11:5672\" or \"rabbit1:5672\"", shown(a.get_ref())),
                );
                None
            }
        }
    }

    fn socket_addr(&mut self, a: &Loose, key: &str) -> Option<SocketAddr> {
        self.found.parsed(
            a,
            key,
            "expected IP:port, such as \"0.0.0.0:5672\" or \"[::]:5672\"",
            |t| t.parse().ok(),
        )
    }

    /// An IP address without a port (HAProxy's `addr`).
    fn ip(&mut self, a: &Loose, key: &str) -> Option<IpAddr> {
        self.found.parsed(
            a,
            key,
            "expected an IP address without a port, such as \"10.0.0.11\" or \"::1\" (the port is check_port)",
            |t| t.parse().ok(),
        )
    }

    fn duration(&mut self, d: &Option<Loose>, key: &str) -> Option<Duration> {
        self.found.duration(d, key, UNITLESS)
    }

    /// A duration above zero (the shared rule of check durations).
    fn above_zero(&mut self, d: &Option<Loose>, key: &str) -> Option<Duration> {
        self.found.above_zero(d, key, UNITLESS)
    }
}
