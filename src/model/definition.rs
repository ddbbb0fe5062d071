//! Workflow definitions (README: SQL API): the JSON a user passes to `workflow_define`,
//! validated once, into a typed DAG the engine walks.
//!
//! Validation is strict (unknown fields are errors) so that a typo such as `depend_on`
//! is caught when the workflow is defined, not when an execution silently never runs.

use super::concurrency::{self, ConcurrencyLimit};
use super::interval::{self, json_kind, Micros};
use super::retry::RetryPolicy;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Limits that keep one definition from costing unbounded work per transition.
pub const MAX_STEPS: usize = 1000;
pub const MAX_NAME_LEN: usize = 100;

/// Names a step may not take because step inputs use them as keys.
const RESERVED_NAMES: &[&str] = &["input", "item", "index"];

const KIND_FIELDS: &[&str] = &["activity", "sql", "sleep", "wait_signal", "workflow"];
const STEP_FIELDS: &[&str] = &[
    "name",
    "activity",
    "sql",
    "sleep",
    "wait_signal",
    "workflow",
    "depends_on",
    "map",
    "max_concurrency",
    "queue",
    "priority",
    "retry",
    "timeout",
    "heartbeat_timeout",
    "schedule_to_close",
    "concurrency_key",
    "max_running",
    "description",
];
const TOP_FIELDS: &[&str] = &["steps", "compensate", "timeout", "concurrency_key", "max_running", "description"];

#[derive(Debug, Clone, PartialEq)]
pub enum Sleep {
    /// A fixed duration from the moment the step becomes ready.
    For(Micros),
    /// Until the timestamp found in this field of the workflow input.
    UntilInputField(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Task {
        activity: String,
    },
    Sql {
        query: String,
    },
    Sleep(Sleep),
    Signal {
        name: String,
    },
    /// A child execution; `client_driven`: started without a definition, and
    /// `idempotency_key`: the child's own key (client-driven parents only).
    Workflow {
        workflow_type: String,
        client_driven: bool,
        idempotency_key: Option<String>,
    },
}

impl StepKind {
    /// The `kind` column value of the step's activity rows.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Task { .. } => "task",
            StepKind::Sql { .. } => "sql",
            StepKind::Sleep(_) => "sleep",
            StepKind::Signal { .. } => "signal",
            StepKind::Workflow { .. } => "workflow",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    pub depends_on: Vec<String>,
    /// Name of the dependency whose output array this step fans out over.
    pub map: Option<String>,
    pub max_concurrency: Option<i32>,
    pub queue: Option<String>,
    pub priority: Option<i32>,
    pub retry: RetryPolicy,
    /// The policy as written (stored on activity rows; `{}` when absent).
    pub retry_json: Value,
    pub timeout: Option<Micros>,
    pub heartbeat_timeout: Option<Micros>,
    pub schedule_to_close: Option<Micros>,
    /// At most so many activities of this step's type with the same key at once.
    pub concurrency: Option<ConcurrencyLimit>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// In the order written; validated to form a DAG.
    pub steps: Vec<Step>,
    /// step name -> its compensating activity (saga).
    pub compensate: BTreeMap<String, Compensation>,
    pub timeout: Option<Micros>,
    /// At most so many executions of this type with the same key running at once.
    pub concurrency: Option<ConcurrencyLimit>,
}

/// What undoes a completed step when its execution fails or is cancelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Compensation {
    pub activity: String,
    /// The queue its activity goes to; None: the compensated step's queue.
    pub queue: Option<String>,
}

const COMPENSATION_FIELDS: &[&str] = &["activity", "queue"];

/// `"http.cleanup"`, or `{"activity": "http.cleanup", "queue": "io"}`.
fn compensation(step: &str, v: &Value) -> Result<Compensation, DefinitionError> {
    let Some(obj) = v.as_object() else {
        return Ok(Compensation { activity: non_empty_str(step, "compensate", v)?.to_owned(), queue: None });
    };
    if let Some(key) = obj.keys().find(|k| !COMPENSATION_FIELDS.contains(&k.as_str())) {
        return fail(
            Some(step),
            format!("\"compensate\" has unknown field \"{key}\"; known fields are {}", COMPENSATION_FIELDS.join(", ")),
        );
    }
    let activity = match obj.get("activity") {
        Some(a) => non_empty_str(step, "compensate.activity", a)?.to_owned(),
        None => return fail(Some(step), "\"compensate\" needs \"activity\": the activity type that undoes this step"),
    };
    let queue = obj.get("queue").map(|q| non_empty_str(step, "compensate.queue", q)).transpose()?.map(str::to_owned);
    Ok(Compensation { activity, queue })
}

#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionError {
    pub step: Option<String>,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step \"{step}\": {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

fn fail<T>(step: Option<&str>, message: impl Into<String>) -> Result<T, DefinitionError> {
    Err(DefinitionError { step: step.map(str::to_owned), message: message.into() })
}

fn non_empty_str<'a>(step: &str, field: &str, v: &'a Value) -> Result<&'a str, DefinitionError> {
    match v.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => fail(Some(step), format!("field \"{field}\" must be a non-empty string, got {}", show(v))),
    }
}

/// Every duration of a definition (timeouts, sleeps) must be longer than zero.
fn duration(step: Option<&str>, field: &str, v: &Value) -> Result<Micros, DefinitionError> {
    interval::parse_positive_json(v).or_else(|e| fail(step, format!("field \"{field}\" {e}")))
}

fn int32(step: &str, field: &str, v: &Value, min: i64) -> Result<i32, DefinitionError> {
    match v.as_i64() {
        Some(n) if n >= min && n <= i32::MAX as i64 => Ok(n as i32),
        _ => fail(Some(step), format!("field \"{field}\" must be a whole number >= {min}, got {}", show(v))),
    }
}

/// A short rendering of a value for messages (long values are cut).
fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}… ({})", text.chars().take(60).collect::<String>(), json_kind(v))
    } else {
        text
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

fn parse_step(index: usize, v: &Value) -> Result<Step, DefinitionError> {
    let obj: &Map<String, Value> = match v.as_object() {
        Some(o) => o,
        None => return fail(None, format!("steps[{index}] must be an object, got {}", json_kind(v))),
    };
    let name = match obj.get("name") {
        Some(Value::String(s)) if valid_name(s) => s.clone(),
        Some(Value::String(s)) => {
            return fail(
                None,
                format!(
                    "steps[{index}].name \"{}\" is not a valid step name; use 1 to {MAX_NAME_LEN} letters, digits, '_', '-', '.' or ':'",
                    s.chars().take(MAX_NAME_LEN + 10).collect::<String>().escape_debug()
                ),
            )
        }
        Some(other) => return fail(None, format!("steps[{index}].name must be a string, got {}", show(other))),
        None => return fail(None, format!("steps[{index}] has no \"name\"; every step needs a unique name")),
    };
    let step = Some(name.as_str());
    if RESERVED_NAMES.contains(&name.as_str()) {
        return fail(step, format!("the name \"{name}\" is reserved (step inputs use it as a key); choose another"));
    }
    for key in obj.keys() {
        if !STEP_FIELDS.contains(&key.as_str()) {
            return fail(step, format!("unknown field \"{key}\"; known fields are {}", STEP_FIELDS.join(", ")));
        }
    }
    let kinds: Vec<&str> = KIND_FIELDS.iter().copied().filter(|k| obj.contains_key(*k)).collect();
    let kind = match kinds.as_slice() {
        [] => return fail(step, format!("says nothing to do; give exactly one of {}", KIND_FIELDS.join(", "))),
        [one] => {
            let v = &obj[*one];
            match *one {
                "activity" => StepKind::Task { activity: non_empty_str(&name, "activity", v)?.to_owned() },
                "sql" => StepKind::Sql { query: non_empty_str(&name, "sql", v)?.to_owned() },
                "wait_signal" => StepKind::Signal { name: non_empty_str(&name, "wait_signal", v)?.to_owned() },
                "workflow" => StepKind::Workflow {
                    workflow_type: non_empty_str(&name, "workflow", v)?.to_owned(),
                    client_driven: false,
                    idempotency_key: None,
                },
                _ => StepKind::Sleep(match v {
                    Value::Object(o) => match (o.len(), o.get("until")) {
                        (1, Some(Value::String(field))) if !field.is_empty() => Sleep::UntilInputField(field.clone()),
                        _ => {
                            return fail(
                                step,
                                "field \"sleep\" as an object must be {\"until\": \"<workflow input field holding a timestamp>\"}",
                            )
                        }
                    },
                    other => Sleep::For(duration(step, "sleep", other)?),
                }),
            }
        }
        many => return fail(step, format!("has {} kinds ({}); give exactly one", many.len(), many.join(", "))),
    };

    let mut depends_on = Vec::new();
    if let Some(v) = obj.get("depends_on") {
        let items = match v.as_array() {
            Some(a) => a,
            None => return fail(step, format!("field \"depends_on\" must be an array of step names, got {}", show(v))),
        };
        for item in items {
            let dep = match item.as_str() {
                Some(s) => s.to_owned(),
                None => return fail(step, format!("field \"depends_on\" must hold step names, got {}", show(item))),
            };
            if dep == name {
                return fail(step, "depends on itself; remove it from its own depends_on");
            }
            if depends_on.contains(&dep) {
                return fail(step, format!("lists \"{dep}\" twice in depends_on"));
            }
            depends_on.push(dep);
        }
    }

    let map = match obj.get("map") {
        None => None,
        Some(v) => {
            let source = non_empty_str(&name, "map", v)?.to_owned();
            if !depends_on.contains(&source) {
                return fail(step, format!("maps over \"{source}\", which must also be listed in depends_on"));
            }
            if matches!(kind, StepKind::Sleep(_) | StepKind::Signal { .. }) {
                return fail(step, format!("a {} step cannot have \"map\"", kind.name()));
            }
            Some(source)
        }
    };
    let max_concurrency = match obj.get("max_concurrency") {
        None => None,
        Some(_) if map.is_none() => return fail(step, "field \"max_concurrency\" only applies to a step with \"map\""),
        Some(v) => Some(int32(&name, "max_concurrency", v, 1)?),
    };
    let queue = match obj.get("queue") {
        None => None,
        Some(v) => Some(non_empty_str(&name, "queue", v)?.to_owned()),
    };
    let priority = match obj.get("priority") {
        None => None,
        Some(v) => match v.as_i64() {
            Some(n) if n >= i32::MIN as i64 && n <= i32::MAX as i64 => Some(n as i32),
            _ => return fail(step, format!("field \"priority\" must be a whole number, got {}", show(v))),
        },
    };
    let retry_json = obj.get("retry").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let retry = RetryPolicy::from_json(&retry_json, "retry").or_else(|e| fail(step, e))?;
    let opt_duration = |field: &str| obj.get(field).map(|v| duration(step, field, v)).transpose();
    // A step's key reads what the step is given: the workflow input, its dependencies'
    // outputs, a map item.
    let roots: Vec<&str> = ["input", "item"].into_iter().chain(depends_on.iter().map(String::as_str)).collect();
    let concurrency = concurrency::parse(obj, &roots).or_else(|e| fail(step, e))?;
    if concurrency.is_some() && !matches!(kind, StepKind::Task { .. }) {
        return fail(step, "\"concurrency_key\" and \"max_running\" apply to activity steps only");
    }
    Ok(Step {
        concurrency,
        timeout: opt_duration("timeout")?,
        heartbeat_timeout: opt_duration("heartbeat_timeout")?,
        schedule_to_close: opt_duration("schedule_to_close")?,
        name,
        kind,
        depends_on,
        map,
        max_concurrency,
        queue,
        priority,
        retry,
        retry_json,
    })
}

/// Fields a client-driven step (`workflow_schedule_activity` options) may carry.
const CLIENT_FIELDS: &[&str] = &[
    "queue",
    "priority",
    "retry",
    "timeout",
    "heartbeat_timeout",
    "schedule_to_close",
    "sleep",
    "wait_signal",
    "workflow",
    "client_driven",
    "idempotency_key",
    "lease_token",
];

/// A client-driven step as `workflow_schedule_activity` asks for it.
#[derive(Debug, Clone)]
pub struct ClientStep {
    pub step: Step,
    /// The replay lease the caller holds (`workflow_claim_executions`), to be checked.
    pub lease_token: Option<i32>,
}

/// Reads the options of a client-driven step: a task of `activity_type`, or, with
/// `sleep` / `wait_signal` / `workflow` in the options, a timer, a signal wait or a child.
pub fn parse_client_step(activity_type: Option<&str>, options: &Value) -> Result<ClientStep, String> {
    let obj =
        options.as_object().ok_or_else(|| format!("options must be a JSON object, got {}", json_kind(options)))?;
    if let Some(key) = obj.keys().find(|k| !CLIENT_FIELDS.contains(&k.as_str())) {
        return Err(format!("options has unknown field \"{key}\"; known fields are {}", CLIENT_FIELDS.join(", ")));
    }
    let mut step = obj.clone();
    let lease_token = match step.remove("lease_token") {
        None => None,
        Some(v) => Some(v.as_i64().and_then(|t| i32::try_from(t).ok()).ok_or_else(|| {
            format!("options.lease_token must be the integer workflow_claim_executions returned, got {v}")
        })?),
    };
    let child_client_driven = match step.remove("client_driven") {
        None => false,
        Some(Value::Bool(b)) if obj.contains_key("workflow") => b,
        Some(Value::Bool(_)) => {
            return Err("options.client_driven goes with options.workflow (a child execution)".into())
        }
        Some(v) => return Err(format!("options.client_driven must be true or false, got {}", json_kind(&v))),
    };
    let child_key = match step.remove("idempotency_key") {
        None => None,
        Some(Value::String(k)) if obj.contains_key("workflow") && !k.is_empty() && k.len() <= 200 => Some(k),
        Some(_) if !obj.contains_key("workflow") => {
            return Err("options.idempotency_key goes with options.workflow (the child's key)".into())
        }
        Some(v) => {
            return Err(format!("options.idempotency_key must be a non-empty string of at most 200 bytes, got {v}"))
        }
    };
    step.insert("name".into(), Value::String("client".into()));
    let waits = ["sleep", "wait_signal", "workflow"].iter().any(|k| obj.contains_key(*k));
    match (activity_type, waits) {
        (Some(t), false) => {
            step.insert("activity".into(), Value::String(t.to_owned()));
        }
        (None, false) => {
            return Err("activity_type must not be NULL for a task; pass the type workers claim, \
                        or give options.sleep, options.wait_signal or options.workflow"
                .into())
        }
        (Some(_), true) => {
            return Err("activity_type must be NULL for a sleep, a signal wait or a child workflow".into())
        }
        (None, true) => {}
    }
    let mut step =
        parse_step(0, &Value::Object(step)).map_err(|e| e.message.replace("field \"", "options field \""))?;
    if let StepKind::Workflow { client_driven, idempotency_key, .. } = &mut step.kind {
        *client_driven = child_client_driven;
        *idempotency_key = child_key;
    }
    Ok(ClientStep { step, lease_token })
}

/// Validates a definition. Every rejection names the step and the field.
pub fn parse(value: &Value) -> Result<Definition, DefinitionError> {
    let top = match value.as_object() {
        Some(o) => o,
        None => {
            return fail(None, format!("a definition must be a JSON object with \"steps\", got {}", json_kind(value)))
        }
    };
    for key in top.keys() {
        if !TOP_FIELDS.contains(&key.as_str()) {
            return fail(
                None,
                format!("unknown top-level field \"{key}\"; known fields are {}", TOP_FIELDS.join(", ")),
            );
        }
    }
    let raw_steps = match top.get("steps") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return fail(None, "\"steps\" is empty; a workflow needs at least one step"),
        Some(other) => {
            return fail(None, format!("\"steps\" must be an array of step objects, got {}", json_kind(other)))
        }
        None => return fail(None, "a definition needs \"steps\": an array of step objects"),
    };
    if raw_steps.len() > MAX_STEPS {
        return fail(
            None,
            format!(
                "\"steps\" has {} steps; at most {MAX_STEPS} are allowed (use \"map\" for fan-out)",
                raw_steps.len()
            ),
        );
    }
    let mut steps = Vec::with_capacity(raw_steps.len());
    let mut seen = HashSet::new();
    for (i, raw) in raw_steps.iter().enumerate() {
        let step = parse_step(i, raw)?;
        if !seen.insert(step.name.clone()) {
            return fail(Some(&step.name), "the name is used by more than one step; step names must be unique");
        }
        steps.push(step);
    }
    for step in &steps {
        for dep in &step.depends_on {
            if !seen.contains(dep) {
                return fail(Some(&step.name), format!("depends on \"{dep}\", which is not a step of this workflow"));
            }
        }
    }
    check_acyclic(&steps)?;

    let mut compensate = BTreeMap::new();
    if let Some(v) = top.get("compensate") {
        let obj = match v.as_object() {
            Some(o) => o,
            None => {
                return fail(
                    None,
                    format!("\"compensate\" must map step names to activity types, got {}", json_kind(v)),
                )
            }
        };
        for (step_name, undo) in obj {
            if !seen.contains(step_name) {
                return fail(Some(step_name), "is named in \"compensate\" but is not a step of this workflow");
            }
            compensate.insert(step_name.clone(), compensation(step_name, undo)?);
        }
    }
    let timeout = top.get("timeout").map(|v| duration(None, "timeout", v)).transpose()?;
    let concurrency = concurrency::parse(top, &["input"]).or_else(|e| fail(None, e))?;
    Ok(Definition { steps, compensate, timeout, concurrency })
}

/// Kahn's algorithm; on a cycle, names the steps that are part of it or stuck behind it.
fn check_acyclic(steps: &[Step]) -> Result<(), DefinitionError> {
    let mut pending: HashMap<&str, usize> = steps.iter().map(|s| (s.name.as_str(), s.depends_on.len())).collect();
    let mut ready: Vec<&str> = steps.iter().filter(|s| s.depends_on.is_empty()).map(|s| s.name.as_str()).collect();
    let mut done = 0;
    while let Some(name) = ready.pop() {
        done += 1;
        for s in steps.iter().filter(|s| s.depends_on.iter().any(|d| d == name)) {
            let left = pending.get_mut(s.name.as_str()).expect("every step is counted");
            *left -= 1;
            if *left == 0 {
                ready.push(&s.name);
            }
        }
    }
    if done == steps.len() {
        return Ok(());
    }
    let stuck: Vec<&str> = steps.iter().map(|s| s.name.as_str()).filter(|n| pending[n] > 0).collect();
    fail(
        Some(stuck[0]),
        format!("depends_on forms a cycle among steps {}; remove one of those dependencies", stuck.join(", ")),
    )
}

impl Definition {
    /// `names` and every step that depends on one of them, directly or not: what must
    /// run again when the steps `names` were undone (their outputs are gone).
    pub fn downstream(&self, names: &[String]) -> Vec<String> {
        let mut found: Vec<String> = names.iter().filter(|n| self.step(n).is_some()).cloned().collect();
        loop {
            let more: Vec<String> = self
                .steps
                .iter()
                .filter(|s| !found.contains(&s.name) && s.depends_on.iter().any(|d| found.contains(d)))
                .map(|s| s.name.clone())
                .collect();
            if more.is_empty() {
                return found;
            }
            found.extend(more);
        }
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Steps no other step depends on: their outputs make up the execution's output.
    pub fn final_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(move |s| !self.steps.iter().any(|o| o.depends_on.contains(&s.name)))
    }

    /// What completing step `name` leads to, when the definition alone decides it (no
    /// need to read the other steps' states): the common chain and single-step shapes.
    /// None when the states matter (joins, maps, steps that may complete as they are
    /// scheduled); the engine then walks the whole DAG.
    pub fn after_completion(&self, name: &str) -> Option<AfterCompletion<'_>> {
        let step = self.step(name)?;
        if step.map.is_some() {
            return None;
        }
        let dependents: Vec<&Step> = self.steps.iter().filter(|s| s.depends_on.iter().any(|d| d == name)).collect();
        if dependents.is_empty() {
            // Done when every step is this one or one it (transitively) waited for.
            let mut ancestors: Vec<&str> = vec![name];
            let mut i = 0;
            while i < ancestors.len() {
                for dep in &self.step(ancestors[i])?.depends_on {
                    if !ancestors.contains(&dep.as_str()) {
                        ancestors.push(dep);
                    }
                }
                i += 1;
            }
            return (ancestors.len() == self.steps.len()).then_some(AfterCompletion::Finish);
        }
        let simple = |s: &&Step| {
            s.depends_on.len() == 1 && s.map.is_none() && matches!(s.kind, StepKind::Task { .. } | StepKind::Sql { .. })
        };
        dependents.iter().all(simple).then_some(AfterCompletion::Schedule(dependents))
    }
}

/// See `Definition::after_completion`.
#[derive(Debug, PartialEq)]
pub enum AfterCompletion<'a> {
    /// Every step is done: the execution completes.
    Finish,
    /// These steps waited for this one alone: schedule them.
    Schedule(Vec<&'a Step>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn after_completion_is_decided_by_the_definition_only_for_chains() {
        let def = parse(&json!({"steps": [
            {"name": "a", "activity": "x"},
            {"name": "b", "activity": "x", "depends_on": ["a"]},
            {"name": "c", "sql": "SELECT 1", "depends_on": ["b"]}]}))
        .unwrap();
        let names = |r: Option<AfterCompletion>| match r {
            Some(AfterCompletion::Schedule(steps)) => {
                steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>().join(",")
            }
            Some(AfterCompletion::Finish) => "finish".into(),
            None => "walk".into(),
        };
        assert_eq!(names(def.after_completion("a")), "b");
        assert_eq!(names(def.after_completion("b")), "c");
        assert_eq!(names(def.after_completion("c")), "finish");
        assert_eq!(names(def.after_completion("a[0]")), "walk", "map items are not steps");

        let single = parse(&json!({"steps": [{"name": "only", "activity": "x"}]})).unwrap();
        assert_eq!(names(single.after_completion("only")), "finish");

        // A join, a parallel sibling, a fan-out source and a wait all need the states.
        let dag = parse(&json!({"steps": [
            {"name": "a", "activity": "x"},
            {"name": "b", "activity": "x"},
            {"name": "j", "activity": "x", "depends_on": ["a", "b"]},
            {"name": "s", "activity": "x", "depends_on": ["j"]},
            {"name": "m", "activity": "x", "depends_on": ["s"], "map": "s"},
            {"name": "w", "wait_signal": "go", "depends_on": ["m"]},
            {"name": "t", "activity": "x", "depends_on": ["w"]}]}))
        .unwrap();
        assert_eq!(names(dag.after_completion("a")), "walk", "j also waits for b");
        assert_eq!(names(dag.after_completion("j")), "s");
        assert_eq!(names(dag.after_completion("s")), "walk", "m fans out");
        assert_eq!(names(dag.after_completion("m")), "walk", "a map step");
        assert_eq!(names(dag.after_completion("w")), "t");
        assert_eq!(names(dag.after_completion("t")), "finish");
        let fork = parse(&json!({"steps": [
            {"name": "a", "activity": "x"},
            {"name": "b", "activity": "x", "depends_on": ["a"]},
            {"name": "c", "activity": "x", "depends_on": ["a"]}]}))
        .unwrap();
        assert_eq!(names(fork.after_completion("a")), "b,c");
        assert_eq!(names(fork.after_completion("b")), "walk", "c may still be open");
    }

    #[test]
    fn accepts_the_design_example() {
        let def = parse(&json!({
          "steps": [
            {"name": "fetch",   "activity": "http.fetch", "queue": "io"},
            {"name": "chunk",   "activity": "text.chunk", "depends_on": ["fetch"]},
            {"name": "extract", "activity": "llm.extract", "depends_on": ["chunk"], "map": "chunk",
             "retry": {"max_attempts": 5, "initial_interval": "1s", "backoff_coefficient": 2,
                       "max_interval": "5m", "jitter": 0.2, "non_retryable": ["ValidationError"]},
             "timeout": "2m", "heartbeat_timeout": "30s"},
            {"name": "approve", "wait_signal": "approved", "timeout": "7 days", "depends_on": ["extract"]},
            {"name": "store",   "sql": "SELECT kb.store_entities($1)", "depends_on": ["approve"]},
            {"name": "pause",   "sleep": "1 hour", "depends_on": ["store"]},
            {"name": "notify",  "workflow": "send_digest", "depends_on": ["pause"]}
          ],
          "compensate": {"fetch": "http.cleanup"},
          "timeout": "30 days"
        }))
        .unwrap();
        assert_eq!(def.steps.len(), 7);
        assert_eq!(def.step("extract").unwrap().retry.max_attempts, 5);
        assert_eq!(def.final_steps().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["notify"]);
        assert_eq!(def.compensate["fetch"], Compensation { activity: "http.cleanup".into(), queue: None });
        let mut again = def.downstream(&["store".to_owned(), "nonsense".to_owned()]);
        again.sort();
        assert_eq!(again, vec!["notify", "pause", "store"]);
        assert_eq!(def.downstream(&[]), Vec::<String>::new());
    }

    #[test]
    fn rejections_name_step_and_field() {
        let cases = [
            (json!([]), "JSON object"),
            (json!({}), "needs \"steps\""),
            (json!({"steps": []}), "empty"),
            (json!({"steps": [{"name": "a", "activity": "x"}], "extra": 1}), "unknown top-level field \"extra\""),
            (json!({"steps": [{"activity": "x"}]}), "no \"name\""),
            (json!({"steps": [{"name": "a b", "activity": "x"}]}), "not a valid step name"),
            (json!({"steps": [{"name": "input", "activity": "x"}]}), "reserved"),
            (json!({"steps": [{"name": "a"}]}), "step \"a\": says nothing to do"),
            (json!({"steps": [{"name": "a", "activity": "x", "sql": "select 1"}]}), "exactly one"),
            (json!({"steps": [{"name": "a", "activity": "x", "depend_on": ["b"]}]}), "unknown field \"depend_on\""),
            (json!({"steps": [{"name": "a", "activity": ""}]}), "field \"activity\""),
            (json!({"steps": [{"name": "a", "activity": 5}]}), "field \"activity\""),
            (json!({"steps": [{"name": "a", "activity": "x"}, {"name": "a", "activity": "y"}]}), "unique"),
            (json!({"steps": [{"name": "a", "activity": "x", "depends_on": ["zz"]}]}), "\"zz\", which is not a step"),
            (json!({"steps": [{"name": "a", "activity": "x", "depends_on": ["a"]}]}), "depends on itself"),
            (json!({"steps": [{"name": "a", "activity": "x", "depends_on": "b"}]}), "field \"depends_on\""),
            (
                json!({"steps": [{"name": "a", "activity": "x", "depends_on": ["b"]}, {"name": "b", "activity": "y", "depends_on": ["a"]}]}),
                "cycle",
            ),
            (
                json!({"steps": [{"name": "a", "activity": "x", "map": "b"}, {"name": "b", "activity": "y"}]}),
                "also be listed in depends_on",
            ),
            (json!({"steps": [{"name": "a", "activity": "x", "max_concurrency": 2}]}), "only applies"),
            (json!({"steps": [{"name": "a", "activity": "x", "timeout": "soon"}]}), "field \"timeout\""),
            (json!({"steps": [{"name": "a", "activity": "x", "timeout": -1}]}), "field \"timeout\""),
            (json!({"steps": [{"name": "a", "sleep": "1000000 weeks"}]}), "100 years"),
            (json!({"steps": [{"name": "a", "sleep": {"at": 1}}]}), "field \"sleep\""),
            (json!({"steps": [{"name": "a", "activity": "x", "retry": {"max_attempts": -1}}]}), "retry.max_attempts"),
            (json!({"steps": [{"name": "a", "activity": "x", "priority": 1.5}]}), "field \"priority\""),
            (json!({"steps": [{"name": "a", "activity": "x"}], "compensate": {"b": "undo"}}), "step \"b\""),
            (json!({"steps": [{"name": "a", "activity": "x"}], "timeout": "never"}), "field \"timeout\""),
            (
                json!({"steps": [{"name": "a", "activity": "x", "timeout": "0s"}]}),
                "field \"timeout\" is \"0s\", which is zero",
            ),
            (json!({"steps": [{"name": "a", "activity": "x", "timeout": 0}]}), "field \"timeout\" is 0, which is zero"),
            (
                json!({"steps": [{"name": "a", "activity": "x", "heartbeat_timeout": "0ms"}]}),
                "field \"heartbeat_timeout\"",
            ),
            (
                json!({"steps": [{"name": "a", "activity": "x", "schedule_to_close": 0.0}]}),
                "field \"schedule_to_close\"",
            ),
            (json!({"steps": [{"name": "a", "sleep": "0s"}]}), "field \"sleep\""),
            (json!({"steps": [{"name": "a", "activity": "x"}], "timeout": 0}), "field \"timeout\""),
            (
                json!({"steps": [{"name": "a", "activity": "x"}], "compensate": {"a": {"queue": "io"}}}),
                "needs \"activity\"",
            ),
            (
                json!({"steps": [{"name": "a", "activity": "x"}], "compensate": {"a": {"activity": "u", "q": 1}}}),
                "unknown field \"q\"",
            ),
            (
                json!({"steps": [{"name": "a", "activity": "x"}], "compensate": {"a": {"activity": "u", "queue": ""}}}),
                "compensate.queue",
            ),
        ];
        for (def, expected) in cases {
            let message = err(def.clone());
            assert!(message.contains(expected), "{def}: got {message:?}, expected it to contain {expected:?}");
        }
    }

    use proptest::prelude::*;

    /// JSON shaped like definitions: known keys and step names, in any arrangement.
    fn arb_json() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "steps",
            "name",
            "activity",
            "sql",
            "sleep",
            "wait_signal",
            "workflow",
            "depends_on",
            "map",
            "max_concurrency",
            "retry",
            "max_attempts",
            "jitter",
            "initial_interval",
            "timeout",
            "compensate",
            "priority",
            "queue",
            "until",
            "a",
            "b",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec!["a", "b", "c", "1s", "5m", "-1s", "7 days", "x y", "", "input"])
                .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    proptest! {
        // PROPTEST_CASES=100000 cargo pgrx test ... runs it longer.
        #[test]
        fn the_validator_never_panics_and_accepts_only_dags(value in arb_json()) {
            match parse(&value) {
                Err(e) => prop_assert!(!e.message.is_empty()),
                Ok(def) => {
                    let names: HashSet<&str> = def.steps.iter().map(|s| s.name.as_str()).collect();
                    prop_assert_eq!(names.len(), def.steps.len());
                    for s in &def.steps {
                        prop_assert!(s.depends_on.iter().all(|d| names.contains(d.as_str()) && d != &s.name));
                    }
                    prop_assert!(check_acyclic(&def.steps).is_ok());
                }
            }
        }

        #[test]
        fn a_chain_of_any_length_is_valid(n in 1usize..200) {
            let steps: Vec<Value> = (0..n)
                .map(|i| if i == 0 { json!({"name": "s0", "activity": "x"}) }
                     else { json!({"name": format!("s{i}"), "activity": "x", "depends_on": [format!("s{}", i - 1)]}) })
                .collect();
            let def = parse(&json!({"steps": steps})).unwrap();
            prop_assert_eq!(def.final_steps().count(), 1);
        }
    }

    #[test]
    fn limits_step_count() {
        let steps: Vec<Value> = (0..MAX_STEPS + 1).map(|i| json!({"name": format!("s{i}"), "activity": "x"})).collect();
        assert!(err(json!({ "steps": steps })).contains("at most"));
    }
}
