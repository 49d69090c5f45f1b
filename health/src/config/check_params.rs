//! The rule a check's schedule and thresholds obey, in both programs'
//! files: what [`CheckParams`] needs to mean what the operator
//! wrote.
//!
//! The check machine counts `rise` passed checks up and `fall` failed ones
//! down, so a count of 0 would never move it (the machine reads it as 1
//! rather than misbehave); a zero interval would check in a tight loop and
//! a zero timeout fail every check.  warren-lb's `check` table and
//! warren-vip's `track` tables both hold these keys, so both validate them
//! here, each reporting its own key paths.

use std::time::Duration;

use super::duration::Unitless;
use super::validation::{shown, Loose, Validation};
use crate::CheckParams;

/// The largest `rise` or `fall`: more than anyone means, small enough that
/// a typo (`rise = 20000`) is caught.
pub const MAX_CHECK_COUNT: u32 = 1000;

impl Validation<'_> {
    /// The `rise` and `fall` keys of the check table at `table`, each a
    /// whole number from 1 to [`MAX_CHECK_COUNT`]; one not set (or wrong:
    /// reported) is [`CheckParams::DEFAULT_RISE`] or `default_fall` (the
    /// programs' defaults differ for `fall`).
    pub fn rise_fall(
        &mut self,
        table: &str,
        rise: &Option<Loose>,
        fall: &Option<Loose>,
        default_fall: u32,
    ) -> (u32, u32) {
        let rise = self
            .check_count(rise, &format!("{table}.rise"))
            .unwrap_or(CheckParams::DEFAULT_RISE);
        let fall = self
            .check_count(fall, &format!("{table}.fall"))
            .unwrap_or(default_fall);
        (rise, fall)
    }

    /// A check's `rise` or `fall` (`None` when not set, or wrong: reported).
    fn check_count(&mut self, v: &Option<Loose>, key: &str) -> Option<u32> {
        let n = self.int_in(v.as_ref()?, key, 1, MAX_CHECK_COUNT.into())?;
        u32::try_from(n).ok()
    }

    /// A duration above zero, such as a check's interval or timeout (`None`
    /// when not set, or wrong: reported, zero as "VALUE: expected a
    /// duration above zero").  Each value is parsed once.
    pub fn above_zero(
        &mut self,
        v: &Option<Loose>,
        key: &str,
        unitless: Unitless,
    ) -> Option<Duration> {
        let d = self.duration(v, key, unitless)?;
        if d.is_zero() {
            let at = v.as_ref()?;
            self.problem(
                at,
                key,
                format!(
                    "{}: expected a duration above zero, like \"1s\"",
                    shown(at.get_ref())
                ),
            );
            return None;
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problem;

    /// The problems one pass over `key = VALUE` reports, with what `check`
    /// returned.
    fn one<T>(
        value: &str,
        check: impl FnOnce(&mut Validation, &Option<Loose>) -> Option<T>,
    ) -> Result<Option<T>, Vec<Problem>> {
        let text = format!("key = {value}\n");
        let table: toml::Table = toml::from_str(&text).unwrap();
        let start = text.find(value).unwrap();
        let loose = Some(Loose::new(start..start + value.len(), table["key"].clone()));
        Validation::run(&text, |found| check(found, &loose))
    }

    #[test]
    fn rise_and_fall_are_from_1_to_1000() {
        let count = |v| one(v, |f, l| Some(f.rise_fall("check", l, &None, 7)));
        assert_eq!(count("1"), Ok(Some((1, 7))));
        assert_eq!(count("1000"), Ok(Some((1000, 7))));
        for bad in ["0", "1001", "-1", "\"2\""] {
            let problems = count(bad).unwrap_err();
            assert_eq!(problems.len(), 1, "{bad}");
            assert_eq!(problems[0].line, Some(1));
            assert_eq!(problems[0].key, "check.rise");
            assert!(
                problems[0]
                    .message
                    .ends_with(": expected a whole number from 1 to 1000"),
                "{bad}: {}",
                problems[0].message
            );
        }
        let unset = Validation::run("", |f| f.rise_fall("check", &None, &None, 7));
        assert_eq!(unset, Ok((CheckParams::DEFAULT_RISE, 7)));
    }

    #[test]
    fn a_zero_duration_is_one_problem_naming_the_value() {
        let positive = |v| one(v, |f, l| f.above_zero(l, "check.inter", Unitless::Refused));
        assert_eq!(positive("\"500ms\""), Ok(Some(Duration::from_millis(500))));
        let problems = positive("\"0s\"").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "check.inter");
        assert_eq!(
            problems[0].message,
            "\"0s\": expected a duration above zero, like \"1s\""
        );
        // Not a duration at all: the duration grammar's own problem, once.
        let problems = positive("\"soon\"").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(!problems[0].message.contains("above zero"), "{problems:?}");
    }
}
