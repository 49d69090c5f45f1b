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
//! * [`rotations`]: the process-wide count of the changes the watches
//!   loaded or refused.

pub mod rotating;
pub mod rotations;
pub mod terminator;
pub mod watch;

pub use rotations::Rotations;
pub use terminator::Terminator;
