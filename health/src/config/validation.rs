//! The problem list a validation pass fills, and the checks of values whose
//! rules are the same in every warren file (numbers in a range, one of a
//! few words, durations).
//!
//! A check reports what is wrong and returns `None`, and the caller goes
//! on with a stand-in value, so one pass finds every problem of a file.

use std::ops::Range;
use std::time::Duration;

use toml::{Spanned, Value};

use super::duration::{duration_value, Unitless};
use super::problem::{line_of, Problem};

/// A number, duration or choice as written, of whatever TOML type.
///
/// Serde can only say `expected i64` or `expected a string` about a value
/// of the wrong type; kept loose, validation says what the docs promise
/// (`expected a whole number from 1 to 65535`, `expected a duration like
/// "2s" or "200ms"`), for a wrong type and a wrong value alike, and lists
/// it with every other problem instead of stopping at the first.
pub type Loose = Spanned<Value>;

/// The problems found so far in one file's text.
pub struct Validation<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl<'a> Validation<'a> {
    /// One validation pass over the file `text`: what `pass` builds, or
    /// every problem it reported on the way.
    pub fn run<T>(
        text: &'a str,
        pass: impl FnOnce(&mut Validation<'a>) -> T,
    ) -> Result<T, Vec<Problem>> {
        let mut found = Validation {
            text,
            problems: Vec::new(),
        };
        let value = pass(&mut found);
        if found.problems.is_empty() {
            Ok(value)
        } else {
            Err(found.problems)
        }
    }

    /// A problem at the line where `at` is written.
    pub fn problem<T>(&mut self, at: &Spanned<T>, key: &str, message: impl Into<String>) {
        self.problem_in(at.span(), key, message);
    }

    /// A problem at the line where the bytes `span` of the text start.
    pub fn problem_in(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: Some(line_of(self.text, span.start)),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// A problem no line shows: something is missing.
    pub fn absent(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: None,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The duration `d` (`None` when it is not set or not a duration).
    pub fn duration(
        &mut self,
        d: &Option<Loose>,
        key: &str,
        unitless: Unitless,
    ) -> Option<Duration> {
        let d = d.as_ref()?;
        let parsed = duration_value(d.get_ref(), unitless);
        if parsed.is_none() {
            self.problem(
                d,
                key,
                format!("{}: {}", shown(d.get_ref()), unitless.expected()),
            );
        }
        parsed
    }

    /// The string `v` read by `parse` (`None` when it is not a string or
    /// `parse` refuses it: reported as "VALUE: EXPECTED").
    pub fn parsed<T>(
        &mut self,
        v: &Loose,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let parsed = v.get_ref().as_str().and_then(parse);
        if parsed.is_none() {
            self.problem(v, key, format!("{}: {expected}", shown(v.get_ref())));
        }
        parsed
    }

    /// The option named by the string `v` (`None` when `v` is not set or
    /// names none of them).
    pub fn choice<T: Copy>(
        &mut self,
        v: &Option<Loose>,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let v = v.as_ref()?;
        let found = options
            .iter()
            .find(|(name, _)| Some(*name) == v.get_ref().as_str())
            .map(|(_, t)| *t);
        if found.is_none() {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            self.problem(
                v,
                key,
                format!("{}: expected one of {names:?}", shown(v.get_ref())),
            );
        }
        found
    }

    /// The whole number `v` if it lies in `min..=max`.
    pub fn int_in(&mut self, v: &Loose, key: &str, min: i64, max: i64) -> Option<i64> {
        let expected = format!("expected a whole number from {min} to {max}");
        self.int(v, key, |n| (min..=max).contains(&n), expected)
    }

    /// The whole number `v` if it is at least `min`.
    pub fn int_at_least(&mut self, v: &Loose, key: &str, min: i64) -> Option<i64> {
        let expected = format!("expected a whole number of at least {min}");
        self.int(v, key, |n| n >= min, expected)
    }

    fn int(
        &mut self,
        v: &Loose,
        key: &str,
        accepted: impl Fn(i64) -> bool,
        expected: String,
    ) -> Option<i64> {
        let n = v.get_ref().as_integer().filter(|n| accepted(*n));
        if n.is_none() {
            self.problem(v, key, format!("{}: {expected}", shown(v.get_ref())));
        }
        n
    }
}

/// A value as the operator wrote it, for "VALUE: expected WHAT" messages:
/// a string in quotes (so `"2"` reads as text), a number or boolean as is.
pub fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Table(_) => "a table".into(),
        other => other.to_string(),
    }
}
