//! Health checking shared by warren-lb and warren-vip.
//!
//! * [`machine`]: the pure HAProxy-semantics check state machine (time and
//!   check results in, transitions and the next check time out).
//! * [`probe`]: the async probes (tcp, amqp, http, rabbitmq) that produce the
//!   check results.
//!
//! See `docs/health-checks.md`.

pub mod machine;
pub mod probe;

pub use machine::*;
pub use probe::ProbeError;
