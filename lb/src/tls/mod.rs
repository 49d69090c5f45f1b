//! TLS termination on a frontend (docs/tls.md): clients handshake with
//! warren-lb, the servers get the plaintext.  Reading and checking the
//! certificate pair is [`crate::certificates`], which configuration
//! validation uses too (so it depends on nothing here).
//!
//! * [`rotating`]: the certificate new handshakes get, swappable while
//!   sessions run.
//! * [`watch`]: the poll that loads a changed certificate (pure settle
//!   rule, and the task around it).
//! * [`terminator`]: a frontend's TLS server configuration, its rotating
//!   certificate and its watch, built per generation.

pub mod rotating;
pub mod terminator;
pub mod watch;

pub use terminator::Terminator;
