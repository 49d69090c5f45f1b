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

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    warren_health::config::load(path, parse)
}

/// Parses and validates configuration text.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let file: raw::File = warren_health::config::deserialize(text, ItemNames::Bracketed)?;
    validate::validate(&file, text)
}

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod tests;
