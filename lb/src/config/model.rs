//! The validated runtime model: what the running balancer acts on.
//!
//! Everything here has already been checked, defaulted and resolved to
//! types the data path can use directly (socket addresses, durations,
//! indices instead of names), so the hot path never re-validates.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use warren_health::CheckParams;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// After a reload removed a server, or after SIGTERM, sessions still
    /// open this long are closed (HAProxy's `hard-stop-after`).  `None`
    /// (the default, or "0s") = wait for them to end on their own.
    pub hard_stop_after: Option<Duration>,
    pub admin: Option<Admin>,
    pub resolvers: Resolvers,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
}

/// The HTTP admin API (status, readiness, operator commands).
#[derive(Clone, PartialEq)]
pub struct Admin {
    pub bind: SocketAddr,
    /// When set, commands need `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl Admin {
    /// Commands (drain, maint) are open to anyone who can reach a bind
    /// beyond loopback: such a config gets a warning at every load.
    pub fn commands_unprotected(&self) -> bool {
        self.token.is_none() && !self.bind.ip().is_loopback()
    }
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How servers given by name are kept resolved (HAProxy's `resolvers`
/// section; the names and defaults are HAProxy's).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolvers {
    /// `None` = the system's (`/etc/resolv.conf`).
    pub nameservers: Option<Vec<SocketAddr>>,
    /// Time between two resolutions of a name.
    pub timeout_resolve: Duration,
    /// How long one query waits for an answer before it is sent again.
    pub timeout_retry: Duration,
    /// Queries per resolution before it counts as failed.
    pub resolve_retries: u32,
    /// How long a name that stopped resolving keeps its last address.
    pub hold_valid: Duration,
}

impl Default for Resolvers {
    fn default() -> Self {
        Resolvers {
            nameservers: None,
            timeout_resolve: Duration::from_secs(1),
            timeout_retry: Duration::from_secs(1),
            resolve_retries: 3,
            hold_valid: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frontend {
    pub name: String,
    pub bind: SocketAddr,
    /// Index into [`Config::backends`].
    pub backend: usize,
    /// Concurrent client sessions; past it the listener stops accepting
    /// (the kernel backlog holds new clients), as HAProxy's `maxconn`.
    pub maxconn: usize,
    /// A client must send its first bytes (AMQP's protocol header) within
    /// this time, or it is closed before any server is chosen, so a flood
    /// of idle connections costs the brokers nothing and frees its
    /// `maxconn` slots.  `None` = off (protocols where the server speaks
    /// first).
    pub timeout_first_byte: Option<Duration>,
    /// TLS termination; `None` = plain TCP (the splice relay).
    pub tls: Option<Tls>,
}

/// A frontend that terminates TLS: clients handshake with warren-lb, the
/// servers get the plaintext (docs/tls.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// PEM: the server's certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the private key of the first certificate in `cert`.
    pub key: PathBuf,
    /// PEM: the CAs a client certificate must chain to; set exactly when
    /// `verify_client` is not `None`.
    pub client_ca: Option<PathBuf>,
    pub verify_client: VerifyClient,
    /// Protocols offered in ALPN, in preference order; empty = no ALPN.
    pub alpn: Vec<String>,
    pub min_version: TlsVersion,
    /// The handshake must finish within this time, or the client is closed
    /// before any server is chosen (as `timeout_first_byte` for plain TCP).
    pub timeout_handshake: Duration,
}

/// Client certificates (HAProxy's `verify` on a `bind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    /// None asked for.
    None,
    /// Asked for; a client without one is let in, a bad one is refused.
    Optional,
    /// A client without a certificate signed by `client_ca` is refused at
    /// the handshake.
    Required,
}

/// The oldest TLS version a frontend accepts (rustls has nothing below 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// The first server (in file order) with a free slot: all clients on one
    /// node, which is what a mirrored-queue cluster wants.
    First,
    RoundRobin,
    LeastConn,
    Source,
}

impl Balance {
    /// Every algorithm, in the order an unknown `balance` lists the choices.
    pub const ALL: [Balance; 4] = [
        Balance::First,
        Balance::RoundRobin,
        Balance::LeastConn,
        Balance::Source,
    ];

    /// The HAProxy keyword, as the config's `balance` takes it and as
    /// `/status` reports it. Spelled out rather than derived from `Debug`,
    /// whose text is for developers and may change with a variant's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::First => "first",
            Balance::RoundRobin => "roundrobin",
            Balance::LeastConn => "leastconn",
            Balance::Source => "source",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// A failed connect marks the server down at once (HAProxy `mark-down`).
    MarkDown,
    /// A failed connect counts as one failed check (HAProxy `fail-check`).
    FailCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failback {
    /// A primary that comes back up takes traffic again at once.
    Immediate,
    /// ... only after it has stayed up this long.
    After(Duration),
    /// ... only when an operator says `ready`.
    Manual,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub name: String,
    pub balance: Balance,
    pub allbackups: bool,
    pub redispatch: bool,
    /// `None` when `observe = "none"`: real connects do not judge health.
    pub observe_layer4: Option<OnError>,
    pub shutdown_sessions_on_down: bool,
    pub shutdown_backup_sessions_on_up: bool,
    pub failback: Failback,
    pub timeout_connect: Duration,
    pub timeout_idle: Option<Duration>,
    pub check: Check,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// No active check: the server is always up unless passive errors say otherwise.
    None,
    Tcp,
    Amqp,
    Http {
        path: String,
        expect_status: u16,
        expect_body: Option<String>,
    },
    Rabbitmq,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub kind: CheckKind,
    /// Intervals and thresholds, as the shared check machine takes them.
    pub params: CheckParams,
    /// How long one check may take before it counts as failed.
    pub timeout: Duration,
    /// Port the check connects to; `None` = the server's own port.
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `amqp` checks speak AMQPS, `http` and `rabbitmq` checks HTTPS;
    /// `None`: plain.
    pub tls: Option<ServerTls>,
}

/// TLS from warren-lb to the servers (HAProxy's `check-ssl ca-file verify
/// sni crt`): the files were read and checked when the config was loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTls {
    /// PEM: the CAs a server certificate must chain to; set whenever
    /// `verify` is `Required`.
    pub ca: Option<PathBuf>,
    pub verify: VerifyServer,
    /// The name sent and checked; `None`: the server's host name when it
    /// is given by name, else its IP is checked and no SNI sent.
    pub sni: Option<String>,
    /// A client certificate for brokers that ask for one (mTLS).
    pub client: Option<ClientCert>,
}

/// Whether a server's certificate is verified (HAProxy's `verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyServer {
    /// It chains to `ca`, is valid now and names the server.
    Required,
    /// Any certificate: encrypted, not authenticated.
    None,
}

/// A client certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A password, either inline or read from a file each time it is needed
/// (so a rotated secret is picked up without a restart).
#[derive(Clone, PartialEq)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret::Inline(<redacted>)"),
            Secret::File(p) => write!(f, "Secret::File({})", p.display()),
        }
    }
}

impl Secret {
    pub fn read(&self) -> std::io::Result<String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(p) => Ok(std::fs::read_to_string(p)?.trim_end().to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Backup,
}

/// A server's address; a DNS name is re-resolved every
/// `resolvers.timeout_resolve` so a moved server is followed without a reload
/// (see [`crate::dns`]).
pub use warren_health::config::Address;

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub name: String,
    pub address: Address,
    pub role: Role,
    pub weight: u32,
    /// 0 = unlimited.
    pub maxconn: usize,
    /// PROXY protocol header sent to the server before the client's bytes
    /// (HAProxy `send-proxy` / `send-proxy-v2`).
    pub send_proxy: SendProxy,
    /// The server's checks go to this IP instead of its own address
    /// (HAProxy's `addr` server keyword).
    pub check_addr: Option<IpAddr>,
    /// The server's checks go to this port (HAProxy's `port` server
    /// keyword): nodes that share one IP have one management port each.
    pub check_port: Option<u16>,
}

/// Where a server's checks connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTarget {
    /// `None` = the server's own address, as the resolver holds it, so
    /// checks and clients agree on where a named server is.
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl Server {
    /// Where this server's checks go: its own `check_addr`/`check_port`
    /// first (they exist for servers that differ from the rest), then the
    /// backend check's `port` (15672 by default for `rabbitmq`), then the
    /// server's own address and port.
    pub fn check_target(&self, check: &Check) -> CheckTarget {
        CheckTarget {
            ip: self.check_addr,
            port: self
                .check_port
                .or(check.port)
                .unwrap_or(self.address.port()),
        }
    }
}

impl CheckTarget {
    /// The check goes to the very endpoint clients use, so it gets the
    /// server's PROXY header: HAProxy sends `send-proxy` on checks unless
    /// the server has an `addr` or a check port of its own.
    pub fn is_the_server(&self, server: &Server) -> bool {
        self.ip.is_none() && self.port == server.address.port()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendProxy {
    #[default]
    None,
    V1,
    V2,
}
