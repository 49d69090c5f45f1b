//! Configuration: parse the TOML file, then validate it once into the
//! runtime [`model`].
//!
//! Validation collects every problem instead of stopping at the first, so
//! `warren-lb check-config` can show an operator the whole list in one go.
//! Each problem names the file, the line, the key path
//! (`backend[rabbitmq].server[rabbit2].address`) and what was expected;
//! the problem type, the common value checks and the duration grammar are
//! shared with warren-vip in [`warren_health::config`].

pub mod model;
mod raw;
mod validate;

use std::path::Path;

use warren_health::config::ItemNames;
pub use warren_health::config::{ConfigError, Problem};

pub use model::*;

/// Reads and validates a configuration file, and the files it names that
/// must be right before anything listens (a frontend's TLS certificate,
/// key and client CA).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    warren_health::config::load(path, parse)
}

/// Parses and validates configuration text, and the files it names (see
/// [`load`]).
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    parse_with(text, Files::Check)
}

/// Parses and validates configuration text without opening the files it
/// names: for documented examples, whose paths exist on a deployment only.
pub fn parse_text_only(text: &str) -> Result<Config, Vec<Problem>> {
    parse_with(text, Files::Skip)
}

/// Whether validation opens the files a configuration names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Files {
    Check,
    Skip,
}

fn parse_with(text: &str, files: Files) -> Result<Config, Vec<Problem>> {
    let file: raw::File = warren_health::config::deserialize(text, ItemNames::Bracketed)?;
    validate::validate(&file, text, files)
}

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
