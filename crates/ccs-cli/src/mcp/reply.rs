//! Tool results: every result is one text content holding a JSON object; a refusal is a result
//! with `isError: true` whose object is `{"error": KIND, "message": ..., ...}`.

use agent_coherence::Error;
use agent_coherence::{Conflict, Fenced, Held, NotFound};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value, json};

/// A refusal in the contract's shape: a kind, a message, and fields that help a model act on it.
#[derive(Debug)]
pub struct Refusal {
    /// The error kind, e.g. `conflict`.
    pub kind: &'static str,
    /// One sentence for the model.
    pub message: String,
    /// More fields, merged into the JSON object.
    pub fields: Map<String, Value>,
}

impl Refusal {
    /// A refusal with no extra fields.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            message: message.into(),
            fields: Map::new(),
        }
    }

    /// Add a field.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Refusal {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    /// `bad_request`: the arguments are well-formed JSON but not acceptable.
    pub fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new("bad_request", message)
    }

    /// `too_large`: the content exceeds what this server accepts.
    pub fn too_large(size: u64, max: u64) -> Refusal {
        Refusal::new(
            "too_large",
            format!("the content is {size} bytes; this server accepts at most {max}"),
        )
        .with("size", size)
        .with("max", max)
    }

    /// `not_held`: commit or release without an acquire in this session.
    pub fn not_held(key: &str) -> Refusal {
        Refusal::new(
            "not_held",
            format!("you do not hold `{key}` in this session; call acquire first"),
        )
        .with("key", key)
    }

    /// The JSON object sent to the client.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("error".to_owned(), Value::from(self.kind));
        object.insert("message".to_owned(), Value::from(self.message.clone()));
        for (name, value) in &self.fields {
            object.insert(name.clone(), value.clone());
        }
        Value::Object(object)
    }
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Refusal {
        let message = error.to_string();
        match error {
            Error::NotFound(NotFound { key }) => {
                Refusal::new("not_found", message).with("key", key)
            }
            Error::Conflict(Conflict {
                key,
                current,
                yours,
            }) => Refusal::new(
                "conflict",
                format!(
                    "`{key}` is at version {current} but your write was based on version \
                     {yours}: someone wrote since your read; re-read with read, then write again"
                ),
            )
            .with("key", key)
            .with("current_version", current)
            .with("your_version", yours)
            .with("retryable", true),
            Error::Held(Held { key, by }) => Refusal::new("held", message)
                .with("key", key)
                .with("by", by)
                .with("retryable", true),
            Error::Fenced(Fenced { key }) => Refusal::new("fenced", message).with("key", key),
            Error::PayloadTooLarge { len, max } => Refusal::too_large(len, max),
            Error::BadKey { .. } => Refusal::bad_request(message),
            _ => Refusal::new("internal", message),
        }
    }
}

/// A successful result holding `value`.
pub fn success(value: &Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value.to_string())])
}

/// A refused result (`isError: true`).
pub fn refused(refusal: &Refusal) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(refusal.to_json().to_string())])
}

/// The result of a tool body.
pub fn finish(outcome: Result<Value, Refusal>) -> CallToolResult {
    match outcome {
        Ok(value) => success(&value),
        Err(refusal) => {
            super::log(&format!("refused ({}): {}", refusal.kind, refusal.message));
            refused(&refusal)
        }
    }
}

/// `{"key": key, "version": version}`.
pub fn key_version(key: &str, version: u64) -> Value {
    json!({ "key": key, "version": version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_has_the_contract_fields() {
        let refusal = Refusal::from(Error::Conflict(Conflict {
            key: "plan".into(),
            current: 3,
            yours: 2,
        }));
        let json = refusal.to_json();
        assert_eq!(json["error"], "conflict");
        assert_eq!(json["current_version"], 3);
        assert_eq!(json["your_version"], 2);
        assert_eq!(json["retryable"], true);
        let message = json["message"].as_str().unwrap_or_default();
        assert!(message.contains("re-read with read, then write again"));
    }

    #[test]
    fn held_names_the_holder() {
        let json = Refusal::from(Error::Held(Held {
            key: "k".into(),
            by: "bob".into(),
        }))
        .to_json();
        assert_eq!(json["error"], "held");
        assert_eq!(json["by"], "bob");
    }
}
