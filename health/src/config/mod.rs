//! What warren-lb and warren-vip share about their TOML files: reading and
//! parsing one, the [`Problem`]s it can have, the checks of common values
//! (a check's rise/fall and durations among them), the duration grammar and
//! the `HOST:PORT` address form.
//!
//! Both programs parse in two steps: serde types that mirror the file
//! (`raw`), then one validation pass into the runtime model that collects
//! every problem instead of stopping at the first, so `check-config` shows
//! an operator the whole list in one go. Each problem names the file, the
//! line, the key path with items by name, and what was expected.

mod check_params;
mod duration;
mod host_port;
mod key_path;
mod problem;
mod validation;

use std::path::Path;

use serde::de::DeserializeOwned;

pub use check_params::MAX_CHECK_COUNT;
pub use duration::{duration_value, parse_duration, Unitless};
pub use host_port::{parse_address, Address, AddressError};
pub use key_path::ItemNames;
pub use problem::{line_of, ConfigError, Problem};
pub use validation::{shown, Loose, Validation};

/// Reads the file at `path` and hands its text to `parse` (a program's
/// parse-and-validate); either failure is a [`ConfigError`] naming the file.
pub fn load<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, Vec<Problem>>,
) -> Result<T, ConfigError> {
    let refused = |problems| ConfigError {
        file: path.to_owned(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        refused(vec![Problem {
            line: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    parse(&text).map_err(refused)
}

/// Deserializes `text` into a program's raw types; a TOML or type error is
/// one problem with its line and its key path, items named by `names`.
pub fn deserialize<T: DeserializeOwned>(text: &str, names: ItemNames) -> Result<T, Vec<Problem>> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let document = toml::from_str::<toml::Value>(text).ok();
        let key = key_path::named(e.path(), document.as_ref(), names);
        let inner = e.into_inner();
        vec![Problem {
            line: inner.span().map(|s| line_of(text, s.start)),
            key,
            message: inner.message().to_owned(),
        }]
    })
}
