//! The one duration grammar of warren's configuration files.
//!
//! warren-lb took humantime's (`"2s"`, `"200ms"`, `"1.5s"`, `"1m 30s"`);
//! warren-vip had its own (`"100ms"`, `"1.5s"`, `"2m"`, `"250us"`, and a
//! bare number of seconds, as keepalived writes `advert_int 1`). A string
//! with a unit is accepted by either grammar in both programs (the union),
//! and the one real difference, a number without a unit, is a per-program
//! [`Unitless`] choice (docs/decisions/config-shared-duration.md).

use std::time::Duration;

use toml::Value;

/// What a number without a unit (`1`, `0.1`, `"3"`) means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unitless {
    /// Refused: warren-lb, where `inter = 1` reads as a millisecond slip
    /// as easily as a second, and HAProxy itself means milliseconds.
    Refused,
    /// Seconds: warren-vip, keepalived's `advert_int 1` / `0.1`.
    Seconds,
}

impl Unitless {
    /// The "expected ..." half of a bad-duration message.
    pub fn expected(self) -> &'static str {
        match self {
            Unitless::Refused => "expected a duration like \"2s\" or \"200ms\"",
            Unitless::Seconds => {
                "expected a duration like \"100ms\", \"1.5s\", \"2m\" or a number of seconds"
            }
        }
    }
}

/// A duration as written in the file, of whatever TOML type; `None` for a
/// value that is none (negative, not finite, no known unit, an array ...).
pub fn duration_value(value: &Value, unitless: Unitless) -> Option<Duration> {
    match (value, unitless) {
        (Value::String(text), _) => parse_duration(text, unitless),
        (Value::Integer(secs), Unitless::Seconds) => {
            u64::try_from(*secs).ok().map(Duration::from_secs)
        }
        (Value::Float(secs), Unitless::Seconds) => Duration::try_from_secs_f64(*secs).ok(),
        _ => None,
    }
}

/// Parses duration text: humantime's grammar, or a decimal number with one
/// of `s`, `ms`, `us`, `µs`, `m`, `min`, `h` (or none, if `unitless` allows).
pub fn parse_duration(text: &str, unitless: Unitless) -> Option<Duration> {
    humantime::parse_duration(text)
        .ok()
        .or_else(|| decimal_with_unit(text.trim(), unitless))
}

/// warren-vip's former grammar: `"1.5s"`, `" 100ms "`, `"3"` (seconds).
fn decimal_with_unit(text: &str, unitless: Unitless) -> Option<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" if unitless == Unitless::Refused => return None,
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" | "µs" => number / 1e6,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn strings_with_a_unit_mean_the_same_in_both_programs() {
        for unitless in [Unitless::Refused, Unitless::Seconds] {
            let parse = |t: &str| parse_duration(t, unitless);
            assert_eq!(parse("100ms"), Some(100 * MS));
            assert_eq!(parse("1.5s"), Some(1500 * MS));
            assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
            assert_eq!(parse("2min"), Some(Duration::from_secs(120)));
            assert_eq!(parse("250us"), Some(Duration::from_micros(250)));
            assert_eq!(parse("1m 30s"), Some(Duration::from_secs(90)));
            assert_eq!(parse(".5s"), Some(500 * MS));
            assert_eq!(parse("2sec"), Some(2000 * MS));
            assert_eq!(parse(" 1s "), Some(Duration::from_secs(1)));
            assert_eq!(parse("0s"), Some(Duration::ZERO));
            for bad in ["x", "-1s", "1y2", "fast", "", "1.2.3s", "1e3s"] {
                assert_eq!(parse(bad), None, "{bad:?} with {unitless:?}");
            }
        }
    }

    #[test]
    fn a_number_without_a_unit_is_seconds_only_where_that_is_the_custom() {
        assert_eq!(parse_duration("3", Unitless::Seconds), Some(3 * 1000 * MS));
        assert_eq!(parse_duration("0.1", Unitless::Seconds), Some(100 * MS));
        assert_eq!(parse_duration("3", Unitless::Refused), None);
        let seconds = |v: Value| duration_value(&v, Unitless::Seconds);
        assert_eq!(seconds(Value::Integer(1)), Some(1000 * MS));
        assert_eq!(seconds(Value::Float(0.1)), Some(100 * MS));
        assert_eq!(seconds(Value::Integer(-1)), None);
        assert_eq!(seconds(Value::Float(-0.5)), None);
        assert_eq!(seconds(Value::Float(f64::INFINITY)), None);
        assert_eq!(seconds(Value::Float(1e300)), None, "too large, not a panic");
        assert_eq!(seconds(Value::Boolean(true)), None);
        assert_eq!(duration_value(&Value::Integer(1), Unitless::Refused), None);
        assert_eq!(duration_value(&Value::Float(0.1), Unitless::Refused), None);
    }
}
