//! Key paths of parse errors, written the way validation writes them.
//!
//! Serde knows where it failed only by position (`backend[0].server[1]`),
//! while validation names items (`backend[rabbitmq].server[rabbit2]`).
//! One file's problems must read alike, and an operator finds a server by
//! its name, not by counting tables, so each position is looked up in the
//! document as written: an item with a `name` string is shown by its name,
//! one without (the name may be the very thing missing) by its index.

use serde_path_to_error::{Path, Segment};
use toml::Value;

/// How a program writes an item of an array of tables in a key path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemNames {
    /// `backend[rabbitmq]`: warren-lb, HAProxy's section-and-name.
    Bracketed,
    /// `instance "VI_1"`: warren-vip, keepalived's `vrrp_instance VI_1`.
    Quoted,
}

impl ItemNames {
    /// The key of one item of the array `table`: by its name when it has
    /// one, else by its position (`track[0]`).
    pub fn item(self, table: &str, index: usize, name: Option<&str>) -> String {
        format!("{table}{}", self.suffix(index, name))
    }

    fn suffix(self, index: usize, name: Option<&str>) -> String {
        match (self, name) {
            (ItemNames::Bracketed, Some(name)) => format!("[{name}]"),
            (ItemNames::Quoted, Some(name)) => format!(" {name:?}"),
            (_, None) => format!("[{index}]"),
        }
    }
}

/// `path` with each array position replaced by the name of the item there
/// in `document` (the file parsed as plain TOML, `None` when even that
/// failed); "" for the file as a whole.
pub(super) fn named(path: &Path, document: Option<&Value>, names: ItemNames) -> String {
    let mut key = String::new();
    let mut at = document;
    for segment in path {
        match segment {
            Segment::Map { key: field } if is_spanned_wrapper(field) => {}
            Segment::Map { key: field } | Segment::Enum { variant: field } => {
                at = at.and_then(|v| v.get(field.as_str()));
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(field);
            }
            Segment::Seq { index } => {
                at = at.and_then(|v| v.get(*index));
                let name = at.and_then(|v| v.get("name")).and_then(Value::as_str);
                key.push_str(&names.suffix(*index, name));
            }
            Segment::Unknown => {
                at = None;
                key.push_str(".?");
            }
        }
    }
    key
}

/// `toml::Spanned` deserializes through private field names; they are no
/// part of the file.
fn is_spanned_wrapper(field: &str) -> bool {
    field.starts_with("$__serde_spanned_private")
}
