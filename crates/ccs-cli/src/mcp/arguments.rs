//! Checking a tool call against the tool list and the tool's input schema before it runs, so
//! that a refusal names what is wrong: the unknown tool (and the tools there are), the missing
//! argument, or the argument of the wrong type (and the type it must have). rmcp's own errors
//! ("tool not found", serde's "invalid type: integer `42`, expected a string") name neither.

use rmcp::model::Tool;
use serde_json::{Map, Value};

/// Why a call cannot run, as one sentence for the model.
pub fn problem(
    tools: &[Tool],
    name: &str,
    arguments: Option<&Map<String, Value>>,
) -> Option<String> {
    let Some(tool) = tools.iter().find(|t| t.name == name) else {
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        return Some(format!(
            "unknown tool `{name}`; the tools are: {}",
            names.join(", ")
        ));
    };
    let schema = &tool.input_schema;
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let arguments = arguments.unwrap_or(&empty);
    let required = schema.get("required").and_then(Value::as_array);
    for field in required.into_iter().flatten().filter_map(Value::as_str) {
        if !arguments.contains_key(field) {
            let wanted = properties.get(field).map(expected).unwrap_or_default();
            return Some(format!(
                "tool `{name}`: missing argument `{field}`{}",
                if wanted.is_empty() {
                    String::new()
                } else {
                    format!(" ({wanted})")
                }
            ));
        }
    }
    for (field, value) in arguments {
        let Some(property) = properties.get(field) else {
            continue; // extra arguments are ignored, as the tools always have
        };
        if !fits(property, value) {
            return Some(format!(
                "tool `{name}`: argument `{field}` must be {}, not {}",
                expected(property),
                describe(value)
            ));
        }
    }
    None
}

/// The JSON types a schema property allows (`"type"`: one name or a list).
fn types(property: &Value) -> Vec<&str> {
    match property.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn fits(property: &Value, value: &Value) -> bool {
    let allowed = types(property);
    if allowed.is_empty() {
        return true; // no type constraint we understand
    }
    let minimum = property.get("minimum").and_then(Value::as_f64);
    allowed.iter().any(|kind| match (*kind, value) {
        ("null", Value::Null)
        | ("boolean", Value::Bool(_))
        | ("string", Value::String(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_)) => true,
        ("integer", Value::Number(n)) => {
            (n.is_u64() || n.is_i64()) && minimum.is_none_or(|m| n.as_f64().is_some_and(|v| v >= m))
        }
        ("number", Value::Number(n)) => minimum.is_none_or(|m| n.as_f64().is_some_and(|v| v >= m)),
        _ => false,
    })
}

/// "a string", "an integer ≥ 0", "a string or null".
fn expected(property: &Value) -> String {
    let non_negative = property.get("minimum").and_then(Value::as_f64) == Some(0.0);
    types(property)
        .iter()
        .map(|kind| match *kind {
            "integer" if non_negative => "an integer ≥ 0".to_owned(),
            "integer" => "an integer".to_owned(),
            "object" | "array" => format!("an {kind}"),
            "null" => "null".to_owned(),
            other => format!("a {other}"),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let mut shown = value.to_string();
    if shown.len() > 40 {
        let mut cut = 37;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    format!("{kind} ({shown})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn tool(name: &'static str, schema: Value) -> Tool {
        let schema = match schema {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Tool::new(name, "a tool", Arc::new(schema))
    }

    #[test]
    fn problems_name_the_tool_and_the_argument() {
        let tools = vec![
            tool(
                "read",
                json!({"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}),
            ),
            tool(
                "wait_changed",
                json!({"type": "object", "properties": {
                "since_version": {"type": "integer", "format": "uint64", "minimum": 0}}}),
            ),
        ];
        let args = |v: Value| v.as_object().cloned();
        assert_eq!(
            problem(&tools, "nope", None).as_deref(),
            Some("unknown tool `nope`; the tools are: read, wait_changed")
        );
        assert_eq!(
            problem(&tools, "read", args(json!({"key": 42})).as_ref()).as_deref(),
            Some("tool `read`: argument `key` must be a string, not a number (42)")
        );
        assert_eq!(
            problem(&tools, "read", None).as_deref(),
            Some("tool `read`: missing argument `key` (a string)")
        );
        let negative = args(json!({"since_version": -1}));
        assert!(
            problem(&tools, "wait_changed", negative.as_ref()).is_some_and(|p| p.contains("≥ 0"))
        );
        assert_eq!(
            problem(&tools, "read", args(json!({"key": "k", "x": 1})).as_ref()),
            None
        );
    }
}
