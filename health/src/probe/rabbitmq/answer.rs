//! One management API answer as the probe got it, and the checks of its
//! shape: every field the `rabbitmq` check relies on is required to be there
//! with the JSON type it expects.  A broker that answers in a shape the check
//! does not know fails it (DOWN) with a reason naming the endpoint, the field
//! and what was expected; it is never read as "all is well".

use serde_json::Value;

use crate::probe::error::ProbeError;

/// The status and body of one `GET` on the management API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

#[cfg(test)]
impl Answer {
    /// A 200 answer with `body`.
    pub(crate) fn ok(body: impl Into<Vec<u8>>) -> Self {
        Answer {
            status: 200,
            body: body.into(),
        }
    }
}

/// The body of `answer` from `endpoint` as JSON, when its status is one of
/// `expected` (`expected[0]` is the status the endpoint answers when all is
/// well).  A 404 means the broker has no such endpoint: named, since the
/// check requires it.  Other statuses (401, 500, ...) read as HAProxy's
/// `Layer7 wrong status`.
pub fn json(endpoint: &str, answer: &Answer, expected: &[u16]) -> Result<Value, ProbeError> {
    if !expected.contains(&answer.status) {
        if answer.status == 404 {
            let want: Vec<String> = expected.iter().map(u16::to_string).collect();
            return Err(ProbeError::L7Rsp(format!(
                "{endpoint} answered 404 (no such endpoint on this broker), expected {}",
                want.join(" or ")
            )));
        }
        return Err(ProbeError::L7Status(answer.status));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| ProbeError::L7Rsp(format!("invalid JSON from {endpoint}: {e}")))
}

/// Where in an answer a field is looked for, for the reason text:
/// `/api/overview` or `/api/nodes entry rabbit@a`.
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    pub endpoint: &'a str,
    pub entry: Option<&'a str>,
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.entry {
            None => f.write_str(self.endpoint),
            Some(entry) => write!(f, "{} entry {entry}", self.endpoint),
        }
    }
}

/// `value` must be a JSON object (the answer itself or a list entry).
pub fn object<'v>(
    place: Place<'_>,
    value: &'v Value,
) -> Result<&'v serde_json::Map<String, Value>, ProbeError> {
    value.as_object().ok_or_else(|| {
        ProbeError::L7Rsp(format!(
            "{place} is {}, expected a JSON object",
            brief(value)
        ))
    })
}

/// The field `key` of `object`, which must be there and satisfy `typed`
/// (which names the type: `expected` in the reason).
pub fn field<'v, T>(
    place: Place<'_>,
    object: &'v serde_json::Map<String, Value>,
    key: &str,
    expected: &str,
    typed: impl Fn(&'v Value) -> Option<T>,
) -> Result<T, ProbeError> {
    let Some(value) = object.get(key) else {
        return Err(ProbeError::L7Rsp(format!(
            "{place} has no \"{key}\", expected {expected}"
        )));
    };
    typed(value).ok_or_else(|| wrong_type(place, key, value, expected))
}

/// The reason for a field that is there but of the wrong type.
pub fn wrong_type(place: Place<'_>, key: &str, value: &Value, expected: &str) -> ProbeError {
    ProbeError::L7Rsp(format!(
        "{place} has \"{key}\": {}, expected {expected}",
        brief(value)
    ))
}

/// A JSON value for a reason text, cut to a readable length.
fn brief(value: &Value) -> String {
    const MAX: usize = 40;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        None => text,
        Some((i, _)) => format!("{}...", &text[..i]),
    }
}

/// A JSON array of strings (node names).
pub fn strings(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}
