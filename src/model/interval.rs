//! Durations as users write them in definitions and options.
//!
//! Accepted forms: a JSON number of seconds (`30`, `0.5`), or text made of one or more
//! `<number><unit>` parts (`"250ms"`, `"30s"`, `"2m"`, `"1h30m"`, `"7 days"`,
//! `"1 hour 30 minutes"`). Parsed here rather than by Postgres so that a definition is
//! fully validated at `workflow_define` time, with a message that names the field.

/// Microseconds, the resolution of Postgres timestamps.
pub type Micros = i64;

pub const MICROS_PER_SECOND: Micros = 1_000_000;

/// Upper bound on any duration: 100 years. Larger values would overflow timestamp
/// arithmetic and are certainly mistakes.
pub const MAX_MICROS: Micros = 100 * 365 * 24 * 3600 * MICROS_PER_SECOND;

fn unit_micros(unit: &str) -> Option<Micros> {
    let us = match unit {
        "us" | "usec" | "usecs" | "microsecond" | "microseconds" => 1,
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1_000,
        "s" | "sec" | "secs" | "second" | "seconds" => MICROS_PER_SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * MICROS_PER_SECOND,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600 * MICROS_PER_SECOND,
        "d" | "day" | "days" => 86_400 * MICROS_PER_SECOND,
        "w" | "week" | "weeks" => 7 * 86_400 * MICROS_PER_SECOND,
        _ => return None,
    };
    Some(us)
}

/// Parses interval text; the error says what is wrong, the caller adds the field name.
pub fn parse_text(text: &str) -> Result<Micros, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("is empty; write a duration such as \"30s\", \"5m\" or \"7 days\"".into());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "\"{text}\" is not a duration; write a non-negative number and a unit, such as \"30s\", \"5m\" or \"7 days\""
            ));
        }
        let number: f64 =
            s[start..i].parse().map_err(|_| format!("\"{text}\" has a malformed number \"{}\"", &s[start..i]))?;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = s[ustart..i].to_ascii_lowercase();
        let per = unit_micros(&unit).ok_or_else(|| {
            if unit.is_empty() {
                format!("\"{text}\" needs a unit after {number} (ms, s, m, h, d or w)")
            } else {
                format!("\"{text}\" has an unknown unit \"{unit}\"; use ms, s, m, h, d or w")
            }
        })?;
        total += number * per as f64;
        if total > MAX_MICROS as f64 {
            return Err(format!("\"{text}\" is longer than the limit of 100 years"));
        }
    }
    Ok(total.round() as Micros)
}

/// Parses a JSON value (number of seconds, or text).
pub fn parse_json(value: &serde_json::Value) -> Result<Micros, String> {
    match value {
        serde_json::Value::String(s) => parse_text(s),
        serde_json::Value::Number(n) => {
            let secs = n.as_f64().unwrap_or(f64::NAN);
            if !secs.is_finite() || secs < 0.0 {
                Err(format!("{n} is not a non-negative number of seconds"))
            } else if secs * MICROS_PER_SECOND as f64 > MAX_MICROS as f64 {
                Err(format!("{n} seconds is longer than the limit of 100 years"))
            } else {
                Ok((secs * MICROS_PER_SECOND as f64).round() as Micros)
            }
        }
        other => Err(format!("must be a duration such as \"30s\" or a number of seconds, got {}", json_kind(other))),
    }
}

/// Parses a duration that must be longer than zero: a timeout of zero would hand out a
/// lease that has already expired, a sleep of zero is a mistake.
pub fn parse_positive_json(value: &serde_json::Value) -> Result<Micros, String> {
    match parse_json(value)? {
        0 => {
            Err(format!("is {value}, which is zero; write a positive duration such as \"30s\", or leave the field out"))
        }
        us => Ok(us),
    }
}

/// The JSON type name of a value, for error messages.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_text("250ms"), Ok(250_000));
        assert_eq!(parse_text("30s"), Ok(30 * MICROS_PER_SECOND));
        assert_eq!(parse_text("2m"), Ok(120 * MICROS_PER_SECOND));
        assert_eq!(parse_text("1h30m"), Ok(5400 * MICROS_PER_SECOND));
        assert_eq!(parse_text("7 days"), Ok(7 * 86_400 * MICROS_PER_SECOND));
        assert_eq!(parse_text(" 1 hour 30 minutes "), Ok(5400 * MICROS_PER_SECOND));
        assert_eq!(parse_text("0.5s"), Ok(500_000));
        assert_eq!(parse_json(&json!(1.5)), Ok(1_500_000));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "  ", "abc", "5", "-5s", "5 fortnights", "1e400s", "..s", "999999999 weeks"] {
            assert!(parse_text(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_json(&json!(-1)).is_err());
        assert!(parse_json(&json!(1e300)).is_err());
        assert!(parse_json(&json!(true)).is_err());
        assert!(parse_json(&json!(null)).is_err());
    }

    #[test]
    fn zero_is_no_positive_duration() {
        for zero in [json!(0), json!(0.0), json!("0s"), json!("0 ms"), json!("0.0000001s")] {
            assert!(parse_positive_json(&zero).is_err(), "{zero} should be rejected");
        }
        assert_eq!(parse_positive_json(&json!("1ms")), Ok(1_000));
    }
}
