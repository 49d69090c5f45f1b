//! A writer of the Prometheus text exposition format 0.0.4, shared by
//! warren-lb's and warren-vip's `/metrics`.
//!
//! Both programs render their scrape by hand from values they already keep
//! in atomics (docs/decisions/lb-metrics.md); what they must not do by hand
//! is the format: every label value goes through [`escape`], so a backend,
//! server or instance name with a quote, backslash or newline in it cannot
//! break the scrape.

use std::fmt::{Display, Write};

/// One row of a program's table of series, all read from one kind of
/// object `T` (a server, a VRRP instance): name, type, help, and how to read
/// the value.
pub type Series<T, V> = (&'static str, &'static str, &'static str, fn(&T) -> V);

/// One scrape being written: families, each a `# HELP`/`# TYPE` header
/// followed by its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// An empty scrape with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Exposition {
            text: String::with_capacity(capacity),
        }
    }

    /// Starts the family `name`: its help text and its type (`gauge`,
    /// `counter`). Its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample: `name{label="value",...} value`, or `name value` without
    /// labels. Label names are the program's own; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if let Some(((first_name, first_value), rest)) = labels.split_first() {
            let _ = write!(self.text, "{{{first_name}=\"{}\"", escape(first_value));
            for (label, value) in rest {
                let _ = write!(self.text, ",{label}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// The scrape's text.
    pub fn finish(self) -> String {
        self.text
    }
}

/// A label value as the text format wants it: backslash, double quote and
/// line feed escaped as `\\`, `\"` and `\n`.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("VI_1"), "VI_1");
    }

    #[test]
    fn a_family_is_its_header_then_its_samples() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "Things.");
        out.sample("x_total", &[], 3);
        out.sample("x_total", &[("a", "1"), ("b", "q\"")], 2.5);
        assert_eq!(
            out.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\nx_total{a=\"1\",b=\"q\\\"\"} 2.5\n"
        );
    }
}
