//! Retry policy (architecture: Retries and timeouts, Temporal's field names) and the
//! backoff it implies.

use super::interval::{self, json_kind, Micros, MICROS_PER_SECOND};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts allowed; 0 means unlimited.
    pub max_attempts: i32,
    pub initial_interval: Micros,
    pub backoff_coefficient: f64,
    pub max_interval: Micros,
    /// Fraction (0..=1) by which each delay is randomly spread, so retries of many
    /// activities that failed together do not arrive together.
    pub jitter: f64,
    /// Error `type`s that fail at once.
    pub non_retryable: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_interval: MICROS_PER_SECOND,
            backoff_coefficient: 2.0,
            max_interval: 300 * MICROS_PER_SECOND,
            jitter: 0.1,
            non_retryable: Vec::new(),
        }
    }
}

/// What to do with a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    RetryAfter(Micros),
    Fail,
}

const FIELDS: &[&str] =
    &["max_attempts", "initial_interval", "backoff_coefficient", "max_interval", "jitter", "non_retryable"];

impl RetryPolicy {
    /// Reads a policy object; missing fields take their defaults. `field` is the path
    /// of the object for error messages (e.g. `retry`).
    pub fn from_json(value: &Value, field: &str) -> Result<RetryPolicy, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| format!("field \"{field}\" must be an object, got {}", json_kind(value)))?;
        let mut policy = RetryPolicy::default();
        for (key, v) in obj {
            let path = format!("{field}.{key}");
            match key.as_str() {
                "max_attempts" => {
                    policy.max_attempts = v.as_i64().filter(|n| (0..=i32::MAX as i64).contains(n)).ok_or_else(|| {
                        format!("field \"{path}\" must be a whole number >= 0 (0 = unlimited), got {v}")
                    })? as i32;
                }
                "initial_interval" => {
                    policy.initial_interval = interval::parse_json(v).map_err(|e| format!("field \"{path}\" {e}"))?;
                }
                "max_interval" => {
                    policy.max_interval = interval::parse_json(v).map_err(|e| format!("field \"{path}\" {e}"))?;
                }
                "backoff_coefficient" => {
                    policy.backoff_coefficient = v
                        .as_f64()
                        .filter(|c| c.is_finite() && (1.0..=100.0).contains(c))
                        .ok_or_else(|| format!("field \"{path}\" must be a number from 1 to 100, got {v}"))?;
                }
                "jitter" => {
                    policy.jitter = v
                        .as_f64()
                        .filter(|j| j.is_finite() && (0.0..=1.0).contains(j))
                        .ok_or_else(|| format!("field \"{path}\" must be a number from 0 to 1, got {v}"))?;
                }
                "non_retryable" => {
                    let items = v.as_array().ok_or_else(|| {
                        format!("field \"{path}\" must be an array of error type names, got {}", json_kind(v))
                    })?;
                    policy.non_retryable = items
                        .iter()
                        .map(|t| {
                            t.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| format!("field \"{path}\" must hold only strings, got {t}"))
                        })
                        .collect::<Result<_, _>>()?;
                }
                other => {
                    return Err(format!(
                        "field \"{field}\" has unknown field \"{other}\"; known fields are {}",
                        FIELDS.join(", ")
                    ))
                }
            }
        }
        if policy.max_interval < policy.initial_interval {
            return Err(format!(
                "field \"{field}.max_interval\" must not be shorter than \"{field}.initial_interval\""
            ));
        }
        Ok(policy)
    }

    /// Delay before attempt `failed_attempt + 1`. `unit_random` is uniform in [0, 1).
    pub fn backoff(&self, failed_attempt: i32, unit_random: f64) -> Micros {
        let exponent = (failed_attempt.max(1) - 1) as f64;
        let raw = self.initial_interval as f64 * self.backoff_coefficient.powf(exponent);
        let capped = raw.min(self.max_interval as f64);
        let spread = 1.0 + self.jitter * (2.0 * unit_random.clamp(0.0, 1.0) - 1.0);
        (capped * spread).max(0.0).round() as Micros
    }

    /// Decides the fate of attempt number `attempt` that failed with `error_type`.
    pub fn decide(&self, attempt: i32, error_type: Option<&str>, retryable: bool, unit_random: f64) -> Decision {
        let non_retryable = error_type.is_some_and(|t| self.non_retryable.iter().any(|n| n == t));
        let exhausted = self.max_attempts != 0 && attempt >= self.max_attempts;
        if !retryable || non_retryable || exhausted {
            Decision::Fail
        } else {
            Decision::RetryAfter(self.backoff(attempt, unit_random))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_overrides() {
        let p = RetryPolicy::from_json(&json!({}), "retry").unwrap();
        assert_eq!(p, RetryPolicy::default());
        let p = RetryPolicy::from_json(
            &json!({"max_attempts": 5, "initial_interval": "2s", "backoff_coefficient": 3, "max_interval": "1m", "jitter": 0, "non_retryable": ["ValidationError"]}),
            "retry",
        )
        .unwrap();
        assert_eq!(p.max_attempts, 5);
        assert_eq!(p.backoff(1, 0.5), 2 * MICROS_PER_SECOND);
        assert_eq!(p.backoff(2, 0.5), 6 * MICROS_PER_SECOND);
        assert_eq!(p.backoff(3, 0.5), 18 * MICROS_PER_SECOND);
        assert_eq!(p.backoff(10, 0.5), 60 * MICROS_PER_SECOND, "capped at max_interval");
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let p = RetryPolicy { jitter: 0.2, ..RetryPolicy::default() };
        assert_eq!(p.backoff(1, 0.0), 800_000);
        assert_eq!(p.backoff(1, 1.0), 1_200_000);
    }

    #[test]
    fn decisions() {
        let p = RetryPolicy { non_retryable: vec!["Bad".into()], jitter: 0.0, ..RetryPolicy::default() };
        assert_eq!(p.decide(1, None, true, 0.5), Decision::RetryAfter(MICROS_PER_SECOND));
        assert_eq!(p.decide(3, None, true, 0.5), Decision::Fail, "3 of 3 attempts used");
        assert_eq!(p.decide(1, Some("Bad"), true, 0.5), Decision::Fail);
        assert_eq!(p.decide(1, None, false, 0.5), Decision::Fail);
        let unlimited = RetryPolicy { max_attempts: 0, ..p };
        assert!(matches!(unlimited.decide(1000, None, true, 0.5), Decision::RetryAfter(_)));
    }

    #[test]
    fn rejects_bad_fields() {
        for bad in [
            json!({"max_attempts": -1}),
            json!({"max_attempts": 1.5}),
            json!({"backoff_coefficient": 0.5}),
            json!({"jitter": 2}),
            json!({"initial_interval": "soon"}),
            json!({"non_retryable": "x"}),
            json!({"non_retryable": [1]}),
            json!({"initial_interval": "1h", "max_interval": "1s"}),
            json!({"colour": "red"}),
            json!([1]),
        ] {
            let err = RetryPolicy::from_json(&bad, "retry").unwrap_err();
            assert!(err.contains("retry"), "{err}");
        }
    }
}
