//! What a refused configuration file says: every problem, each with its
//! line and key path, in one error.
//!
//! Shared by warren-lb and warren-vip so that `check-config` of either
//! program reads alike: `FILE:LINE: KEY: VALUE: expected WHAT`, one line a
//! problem.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based; `None` when the problem is an absence (no `[[frontend]]`)
    /// or the file could not even be read.
    pub line: Option<usize>,
    /// Where in the file, items named as the operator named them
    /// (`backend[rabbitmq].server[rabbit2].address`,
    /// `instance "VI_1".advert_int`); "" for the file as a whole.
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

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
