//! Health checking shared by warren-lb and warren-vip.
//!
//! * [`machine`]: the pure HAProxy-semantics check state machine (time and
//!   check results in, transitions and the next check time out).
//! * [`probe`]: the async probes (tcp, amqp, http, rabbitmq) that produce the
//!   check results.
//! * [`resource`]: which socket errors are a local shortage (EMFILE ...),
//!   never a verdict on the peer.
//! * [`config`]: what both programs' TOML files share: problems with line
//!   and key path, the checks of common values, the duration grammar.
//!
//! See `docs/health-checks.md`.

pub mod config;
pub mod machine;
pub mod probe;
pub mod resource;

pub use machine::*;
pub use probe::ProbeError;
