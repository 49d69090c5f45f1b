//! Health checking shared by warren-lb and warren-vip.
//!
//! * [`machine`]: the pure HAProxy-semantics check state machine (time and
//!   check results in, transitions and the next check time out).
//! * [`probe`]: one [`probe::Probe`] type and [`probe::run`]: the async probes
//!   (tcp, amqp, http, rabbitmq, exec, interface) that produce the
//!   check results.
//! * [`resource`]: which socket errors are a local shortage (EMFILE ...),
//!   never a verdict on the peer.
//! * [`prometheus`]: the escaping writer of the Prometheus text format
//!   that both programs' `/metrics` use.
//! * [`config`]: what both programs' TOML files share: problems with line
//!   and key path, the checks of common values, the duration grammar.
//!
//! See `docs/health-checks.md`.

pub mod config;
pub mod machine;
pub mod probe;
pub mod prometheus;
pub mod resource;

pub use machine::*;
pub use probe::ProbeError;
