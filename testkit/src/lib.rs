//! The test kit of the `real_` tests: one Rust wrapper around
//! `scripts/testbed` (a real RabbitMQ cluster, each node in its own network
//! namespace) and the schema of the `testbed.json` it writes.
//!
//! It is a dev-dependency of warren-lb, warren-health, warren-drill and
//! warren-vip and is never built into a binary. It lives in one crate so that the three
//! suites start, hurt and stop a bed the same way, and so that a change to
//! what `scripts/testbed` writes breaks one parser, not three.
//!
//! A test holds a [`Testbed`] for as long as it needs the cluster; dropping
//! it runs `scripts/testbed down`, also when the test panics.
//!
//! [`shipped`] renders the warren-lb configs compose, Helm and Ansible ship
//! and points them at a test's servers, for the tests that must run with
//! what the deployments generate (lifecycle, drills).
//!
//! [`toml_examples`] reads the TOML examples out of a Markdown document for
//! the docs tests of warren-lb and warren-vip.

mod bed;
mod broker;
mod cert_kind;
mod docs;
pub mod shipped;
mod state;

pub use bed::Testbed;
pub use broker::Broker;
pub use cert_kind::CertKind;
pub use docs::toml_examples;
pub use state::{BedTls, Node, State};
