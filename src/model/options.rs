//! The `options` argument of `workflow_start` (README: SQL API).

use super::interval::{self, json_kind, Micros};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartOptions {
    pub delay: Option<Micros>,
    /// Timestamp text; the engine converts it with Postgres' own parser.
    pub start_at: Option<String>,
    pub timeout: Option<Micros>,
    pub priority: Option<i32>,
    pub queue: Option<String>,
    pub tenant_id: Option<String>,
    pub labels: Option<Value>,
    /// The execution is driven by the client's code, not by a definition.
    pub client_driven: bool,
}

const FIELDS: &[&str] = &["delay", "start_at", "timeout", "priority", "queue", "tenant_id", "labels", "client_driven"];

fn text(key: &str, v: &Value) -> Result<String, String> {
    match v.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
        _ => Err(format!("options.{key} must be a non-empty string, got {v}")),
    }
}

pub fn parse_start_options(value: &Value) -> Result<StartOptions, String> {
    let obj = value.as_object().ok_or_else(|| format!("options must be a JSON object, got {}", json_kind(value)))?;
    let mut o = StartOptions::default();
    for (key, v) in obj {
        match key.as_str() {
            "delay" => o.delay = Some(interval::parse_json(v).map_err(|e| format!("options.delay {e}"))?),
            "timeout" => {
                o.timeout = Some(interval::parse_positive_json(v).map_err(|e| format!("options.timeout {e}"))?)
            }
            "client_driven" => {
                o.client_driven = v
                    .as_bool()
                    .ok_or_else(|| format!("options.client_driven must be true or false, got {}", json_kind(v)))?
            }
            "start_at" => o.start_at = Some(text(key, v)?),
            "queue" => o.queue = Some(text(key, v)?),
            "tenant_id" => o.tenant_id = Some(text(key, v)?),
            "priority" => {
                o.priority = Some(
                    v.as_i64()
                        .filter(|n| *n >= i32::MIN as i64 && *n <= i32::MAX as i64)
                        .ok_or_else(|| format!("options.priority must be a whole number, got {v}"))?
                        as i32,
                )
            }
            "labels" => {
                if !v.is_object() {
                    return Err(format!("options.labels must be a JSON object, got {}", json_kind(v)));
                }
                o.labels = Some(v.clone());
            }
            other => {
                return Err(format!("options has unknown field \"{other}\"; known fields are {}", FIELDS.join(", ")))
            }
        }
    }
    if o.delay.is_some() && o.start_at.is_some() {
        return Err("options.delay and options.start_at both say when to start; give only one".into());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_rejects() {
        let o = parse_start_options(&json!({"delay": "5m", "priority": 3, "queue": "io", "labels": {"a": 1}})).unwrap();
        assert_eq!(o.delay, Some(300_000_000));
        assert_eq!(o.priority, Some(3));
        for bad in [
            json!([]),
            json!({"delay": "soon"}),
            json!({"priority": "high"}),
            json!({"queue": ""}),
            json!({"labels": [1]}),
            json!({"colour": 1}),
            json!({"delay": "1s", "start_at": "2030-01-01"}),
            json!({"timeout": "0s"}),
            json!({"timeout": 0}),
            json!({"client_driven": "yes"}),
        ] {
            let e = parse_start_options(&bad).unwrap_err();
            assert!(e.contains("options"), "{e}");
        }
    }
}
