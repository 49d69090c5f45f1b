//! Configuration: parse the TOML file (keepalived's vocabulary), then
//! validate it once into the runtime [`model`].
//!
//! Validation collects every problem instead of stopping at the first, so
//! `warren-vip check-config` shows an operator the whole list in one go.
//! Each problem names the file, the line, the key path with items by name
//! (`instance "VI_1".track "lb".interval`) and what was expected; the
//! problem type, the common value checks and the duration grammar are
//! warren-lb's, shared in [`warren_health::config`].

pub mod model;
mod raw;
mod validate;

use std::path::Path;

use warren_health::config::ItemNames;
pub use warren_health::config::{ConfigError, Problem};

pub use model::*;

/// keepalived names a `vrrp_instance VI_1`; problems name `instance "VI_1"`.
pub const ITEM_NAMES: ItemNames = ItemNames::Quoted;

/// The key path of the instance named `name` (`instance "VI_1"`).
pub fn instance_key(name: &str) -> String {
    ITEM_NAMES.item("instance", 0, Some(name))
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    warren_health::config::load(path, parse)
}

/// Parses and validates configuration text.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let file: raw::File = warren_health::config::deserialize(text, ITEM_NAMES)?;
    validate::validate(&file, text)
}

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod tests;
