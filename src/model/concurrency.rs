//! Concurrency keys (README: Flow control): "at most N at once per key", declared on a
//! workflow (`"concurrency_key": "input.document_id", "max_running": 1` at the top of a
//! definition) or on a step (the same two fields on the step). The key is a path into
//! what the workflow or step is given (`input.<field>...`; a step also sees its
//! dependencies' outputs by step name and `item` in a map), or `tenant_id`. Without a
//! key, `max_running` limits the workflow type (or the step's activity type) as a whole.

use super::interval::json_kind;
use serde_json::{Map, Value};

/// What the key is read from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyExpr {
    /// A dotted path into the input object (`["input", "document_id"]`).
    Path(Vec<String>),
    /// The execution's tenant (`"tenant_id"`); executions without one share the key "".
    TenantId,
    /// No key: one limit for the whole type.
    Whole,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyLimit {
    /// As written (`"input.document_id"`), for messages.
    pub text: String,
    pub key: KeyExpr,
    pub max_running: i32,
}

/// Reads `concurrency_key` and `max_running` from a definition's top level or a step;
/// `roots` are the names a path may start with there. None when neither is given.
pub fn parse(obj: &Map<String, Value>, roots: &[&str]) -> Result<Option<ConcurrencyLimit>, String> {
    let key = obj.get("concurrency_key");
    let max = obj.get("max_running");
    if key.is_none() && max.is_none() {
        return Ok(None);
    }
    let max_running = match max {
        None => 1,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=1_000_000).contains(&n) => n as i32,
            _ => return Err(format!("\"max_running\" must be a whole number from 1 to 1000000, got {v}")),
        },
    };
    let (text, key) = match key {
        None => (String::new(), KeyExpr::Whole),
        Some(Value::String(s)) if s == "tenant_id" => (s.clone(), KeyExpr::TenantId),
        Some(Value::String(s)) => {
            let path: Vec<String> = s.split('.').map(str::to_owned).collect();
            if path.iter().any(|p| p.is_empty()) || !roots.contains(&path[0].as_str()) || path.len() < 2 {
                return Err(format!(
                    "\"concurrency_key\" \"{s}\" must be \"tenant_id\" or a path such as \"input.document_id\" \
                     starting with one of: {}",
                    roots.join(", ")
                ));
            }
            (s.clone(), KeyExpr::Path(path))
        }
        Some(v) => {
            return Err(format!(
                "\"concurrency_key\" must be a string such as \"input.document_id\", got {}",
                json_kind(v)
            ))
        }
    };
    Ok(Some(ConcurrencyLimit { text, key, max_running }))
}

impl ConcurrencyLimit {
    /// The key of one execution or step: a string is used as it is, any other JSON value
    /// as its JSON text. A path that finds nothing (or null) is an error naming it.
    pub fn key_of(&self, given: &Value, tenant: Option<&str>) -> Result<String, String> {
        match &self.key {
            KeyExpr::Whole => Ok(String::new()),
            KeyExpr::TenantId => Ok(tenant.unwrap_or_default().to_owned()),
            KeyExpr::Path(path) => {
                let mut at = given;
                for part in path {
                    at = match at.get(part) {
                        Some(v) => v,
                        None => return Err(self.missing()),
                    };
                }
                match at {
                    Value::Null => Err(self.missing()),
                    Value::String(s) => Ok(s.clone()),
                    other => Ok(other.to_string()),
                }
            }
        }
    }

    fn missing(&self) -> String {
        format!("concurrency_key \"{}\" finds no value; pass it, or change the definition's key", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limit(v: Value) -> Result<Option<ConcurrencyLimit>, String> {
        parse(v.as_object().unwrap(), &["input"])
    }

    #[test]
    fn keys_from_paths_tenants_and_the_whole_type() {
        let doc = limit(json!({"concurrency_key": "input.document_id"})).unwrap().unwrap();
        assert_eq!(doc.max_running, 1);
        let given = json!({"input": {"document_id": "d-1", "n": 7, "o": {"a": [1]}}});
        assert_eq!(doc.key_of(&given, None).unwrap(), "d-1");
        let n = limit(json!({"concurrency_key": "input.n", "max_running": 3})).unwrap().unwrap();
        assert_eq!((n.key_of(&given, None).unwrap(), n.max_running), ("7".into(), 3));
        let o = limit(json!({"concurrency_key": "input.o"})).unwrap().unwrap();
        assert_eq!(o.key_of(&given, None).unwrap(), r#"{"a":[1]}"#);
        let tenant = limit(json!({"concurrency_key": "tenant_id", "max_running": 5})).unwrap().unwrap();
        assert_eq!(tenant.key_of(&given, Some("acme")).unwrap(), "acme");
        assert_eq!(tenant.key_of(&given, None).unwrap(), "");
        let whole = limit(json!({"max_running": 2})).unwrap().unwrap();
        assert_eq!((whole.key, whole.max_running), (KeyExpr::Whole, 2));
        assert_eq!(limit(json!({"steps": []})).unwrap(), None);
    }

    #[test]
    fn missing_keys_and_bad_declarations_name_the_field() {
        let doc = limit(json!({"concurrency_key": "input.document_id"})).unwrap().unwrap();
        assert!(doc.key_of(&json!({"input": {}}), None).unwrap_err().contains("input.document_id"));
        assert!(doc.key_of(&json!({"input": {"document_id": null}}), None).is_err());
        for (bad, says) in [
            (json!({"concurrency_key": "document_id"}), "starting with one of: input"),
            (json!({"concurrency_key": "input."}), "a path"),
            (json!({"concurrency_key": "input"}), "a path"),
            (json!({"concurrency_key": 5}), "got a number"),
            (json!({"concurrency_key": "input.d", "max_running": 0}), "from 1"),
            (json!({"max_running": "two"}), "whole number"),
        ] {
            let e = limit(bad.clone()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
