//! warren-lb: an L4 (TCP) load balancer for RabbitMQ with HAProxy-style
//! health checks and primary/backup routing.
//!
//! * [`config`]: TOML file → validated runtime model.
//! * [`balance`]: pure server selection.
//! * [`live`]: what every part of a running balancer shares (generation, counters).
//! * [`server`], [`backend`]: a server's state (one health record behind one
//!   lock) and the shell that performs what a state change triggers.
//! * [`transition`]: what a transition implies, as actions (pure).
//! * [`counters`]: a server's counters, named once for `/status` and `/metrics`.
//! * [`checker`]: the per-server check task around the pure check machine.
//! * [`no_news`]: what a finished check means, `rabbitmq` "no news" included (pure).
//! * [`resolution`], [`dns`]: a server's address and what a DNS answer does to
//!   it (pure), and the resolver task that asks.
//! * [`majority`]: pure cross-check of the nodes' cluster views.
//! * [`proxy`], [`relay`]: accepting, connecting with redispatch, relaying.
//! * [`tls`]: TLS termination on a frontend: its rustls configuration and
//!   the live rotation of its certificate; [`certificates`]: reading and
//!   checking a certificate chain and key (for `check-config` too);
//!   [`client`]: a session's client side, a bare socket or a TLS stream,
//!   and how each is relayed.
//! * [`stream_relay`]: the copy relay for TLS clients.
//! * [`pipes`]: the splice pipes, pooled and leased per chunk.
//! * [`resource`]: local shortages (EMFILE ...): counted, never a server's fault.
//! * [`admin`]: the HTTP admin API (healthz, readyz, status, metrics, commands).
//! * [`metrics`]: the Prometheus text rendering.
//! * [`runtime`]: wiring it all from a configuration; reload.
//! * [`upgrade`]: listening-socket handover to a new binary.
//! * [`process`]: the process's lifecycle: start or take over, serve reloads,
//!   upgrades and stops, drain; the binary only parses its arguments.

pub mod accept_reserve;
pub mod admin;
pub mod backend;
pub mod balance;
pub mod certificates;
pub mod check_tls;
pub mod checker;
pub mod client;
pub mod config;
pub mod counters;
pub mod dns;
pub mod limits;
pub mod live;
pub mod majority;
pub mod metrics;
pub mod no_news;
pub mod pipes;
pub mod process;
pub mod proxy;
pub mod proxy_protocol;
pub mod relay;
pub mod resolution;
pub mod resource;
pub mod runtime;
pub mod server;
pub mod stream_relay;
pub mod tls;
pub mod transition;
pub mod upgrade;
