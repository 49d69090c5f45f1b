//! Configuration: parse the TOML file, then validate it once into the
//! runtime [`model`].
//!
//! Validation collects every problem instead of stopping at the first, so
//! `warren-lb check-config` can show an operator the whole list in one go.
//! Each problem names the file, the line, the key path
//! (`backend[rabbitmq].server[rabbit2].address`) and what was expected.

mod key_path;
pub mod model;
mod raw;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

/// Why a configuration file was refused: all of its problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if p.key.is_empty() {
                write!(f, ": {}", p.message)?;
            } else {
                write!(f, ": {}: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        problems: vec![Problem {
            line: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    parse(&text).map_err(|problems| ConfigError {
        file: path.to_owned(),
        problems,
    })
}

/// Parses and validates configuration text.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let deserializer = toml::Deserializer::new(text);
    let file: raw::File = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let document = toml::from_str::<toml::Value>(text).ok();
        let key = key_path::named(e.path(), document.as_ref());
        let inner = e.into_inner();
        vec![Problem {
            line: inner.span().map(|s| line_of(text, s.start)),
            key,
            message: inner.message().to_owned(),
        }]
    })?;
    validate::validate(&file, text)
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod tests;
