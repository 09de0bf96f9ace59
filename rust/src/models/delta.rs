//! What one streamed chat completion event means, decided from its JSON once, in Rust.
//!
//! Most events of a stream are a bare delta of text (or of a tool call's arguments): for those
//! the caller gets only what LangChain's message chunk is made of ([`Item::Delta`]), not the
//! whole JSON. Everything else (the first event's role, the last one's `finish_reason`, usage,
//! logprobs, fields we do not know) goes over whole ([`Item::Json`]) to be read exactly as the
//! `openai` SDK and `langchain_openai` read it, and data that is not a JSON object without an
//! `error` goes over raw ([`Item::Raw`]) so the caller raises what the SDK raises for it.

use serde_json::{Map, Value};

/// One tool call fragment of a delta: `delta.tool_calls[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallDelta {
    pub index: i64,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: Option<String>,
}

/// One event of the stream, as handed to the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A delta of the first choice and nothing else worth reading: no usage, no
    /// `finish_reason`, no logprobs, no message id.
    Delta {
        content: String,
        /// `delta.role` was `"assistant"` (else it was absent or null).
        assistant: bool,
        tool_calls: Vec<ToolCallDelta>,
    },
    /// Any other JSON object without a truthy `error`, decoded.
    Json(Value),
    /// Data to be decoded by the caller: not JSON, not an object, or an error object.
    Raw(Vec<u8>),
}

/// The data of one event: `None` for `[DONE]` (the stream's end), else its item.
pub fn classify(data: Vec<u8>) -> Option<Item> {
    if data.starts_with(b"[DONE]") {
        return None;
    }
    let value: Value = match serde_json::from_slice(&data) {
        Ok(value @ Value::Object(_)) => value,
        _ => return Some(Item::Raw(data)),
    };
    let Value::Object(chunk) = &value else {
        unreachable!()
    };
    if chunk.get("error").is_some_and(truthy) {
        return Some(Item::Raw(data));
    }
    Some(bare_delta(chunk).unwrap_or(Item::Json(value)))
}

/// Python's truthiness of a JSON value (`data.get("error")` in the SDK).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn null_or_absent(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_none_or(Value::is_null)
}

fn optional_string(map: &Map<String, Value>, key: &str) -> Option<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    }
}

/// The event as a bare delta, if it is one (see [`Item::Delta`]).
fn bare_delta(chunk: &Map<String, Value>) -> Option<Item> {
    if !null_or_absent(chunk, "usage") {
        return None;
    }
    let Some(Value::Array(choices)) = chunk.get("choices") else {
        return None;
    };
    let Some(Value::Object(choice)) = choices.first() else {
        return None;
    };
    if !null_or_absent(choice, "finish_reason") || !null_or_absent(choice, "logprobs") {
        return None;
    }
    let Some(Value::Object(delta)) = choice.get("delta") else {
        return None;
    };
    if !null_or_absent(delta, "id") || !null_or_absent(delta, "function_call") {
        return None;
    }
    let assistant = match delta.get("role") {
        None | Some(Value::Null) => false,
        Some(Value::String(role)) if role == "assistant" => true,
        Some(_) => return None,
    };
    let content = optional_string(delta, "content")?.unwrap_or_default();
    let tool_calls = match delta.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls.iter().map(tool_call).collect::<Option<_>>()?,
        Some(_) => return None,
    };
    Some(Item::Delta {
        content,
        assistant,
        tool_calls,
    })
}

fn tool_call(call: &Value) -> Option<ToolCallDelta> {
    let Value::Object(call) = call else {
        return None;
    };
    let index = call.get("index")?.as_i64()?;
    let Some(Value::Object(function)) = call.get("function") else {
        return None;
    };
    Some(ToolCallDelta {
        index,
        id: optional_string(call, "id")?,
        name: optional_string(function, "name")?,
        arguments: optional_string(function, "arguments")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> Option<Item> {
        classify(json.as_bytes().to_vec())
    }

    #[test]
    fn text_deltas_are_bare() {
        let event = r#"{"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"},
                        "logprobs": null, "finish_reason": null}]}"#;
        assert_eq!(
            item(event),
            Some(Item::Delta {
                content: "Hi".into(),
                assistant: false,
                tool_calls: vec![]
            })
        );
        let first =
            r#"{"choices": [{"delta": {"role": "assistant", "content": "", "refusal": null}}]}"#;
        assert_eq!(
            item(first),
            Some(Item::Delta {
                content: String::new(),
                assistant: true,
                tool_calls: vec![]
            })
        );
    }

    #[test]
    fn tool_call_deltas_are_bare() {
        let event = r#"{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_1",
            "type": "function", "function": {"name": "add", "arguments": ""}}]}}]}"#;
        let Some(Item::Delta { tool_calls, .. }) = item(event) else {
            panic!()
        };
        assert_eq!(
            tool_calls,
            [ToolCallDelta {
                index: 0,
                id: Some("call_1".into()),
                name: Some("add".into()),
                arguments: Some(String::new()),
            }]
        );
    }

    #[test]
    fn anything_else_goes_whole_or_raw() {
        assert_eq!(item("[DONE]"), None);
        for whole in [
            r#"{"choices": [{"delta": {}, "finish_reason": "stop"}]}"#,
            r#"{"choices": [], "usage": {"prompt_tokens": 1}}"#,
            r#"{"choices": [{"delta": {"role": "user", "content": "x"}}]}"#,
            r#"{"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]}"#,
            r#"{"choices": [{"delta": {"content": "x"}, "logprobs": {"content": []}}]}"#,
        ] {
            assert!(matches!(item(whole), Some(Item::Json(_))), "{whole}");
        }
        for raw in ["not json", "[1]", r#"{"error": {"message": "no"}}"#] {
            assert_eq!(item(raw), Some(Item::Raw(raw.as_bytes().to_vec())), "{raw}");
        }
    }
}
