//! `workflow_graph` (README: Observability): a picture of one execution, as Mermaid or
//! Graphviz DOT text. A declared workflow is drawn from its definition (every step, done
//! or not, with its dependencies); a client-driven one from its journal, in the order its
//! steps were scheduled. Each node says the step's status, attempts and duration; a map
//! step is one node with its items counted by status; a child workflow names its child.

use super::arg;
use super::plan::{run, Statement};
use super::rows;
use super::tenancy::Caller;
use crate::error::{Result, WorkflowError};
use crate::model::definition::StepKind;
use pgrx::pg_sys::BuiltinOid::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use std::collections::BTreeMap;

static STEPS: Statement = Statement {
    sql: "SELECT a.step_key, a.kind, a.status, a.attempt, a.activity_type, \
                 greatest((extract(epoch FROM a.finished_at - a.started_at) * 1000)::int8, 0), \
                 (SELECT c.id::text || ' ' || c.status FROM @extschema@.workflow_execution c \
                  WHERE c.parent_id = a.execution_id AND c.parent_step = a.step_key ORDER BY c.created_at DESC LIMIT 1) \
          FROM @extschema@.workflow_activity a WHERE a.execution_id = $1 ORDER BY a.created_at, a.step_key",
    args: &[UUIDOID],
};

struct Row {
    kind: String,
    status: String,
    attempts: i32,
    activity_type: Option<String>,
    millis: Option<i64>,
    child: Option<String>,
}

/// A node of the picture: its text lines and the status that colours it.
struct Node {
    lines: Vec<String>,
    status: String,
}

fn describe(name: &str, row: Option<&Row>, items: &[&Row]) -> Node {
    let mut lines = vec![name.to_owned()];
    let status = match row {
        Some(r) => r.status.clone(),
        None if !items.is_empty() => "running".to_owned(),
        None => "pending".to_owned(),
    };
    if !items.is_empty() {
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for item in items {
            *by_status.entry(item.status.as_str()).or_default() += 1;
        }
        let counts: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
        lines.push(format!("map: {} items, {}", items.len(), counts.join(", ")));
    } else {
        let mut facts = vec![status.clone()];
        if let Some(r) = row {
            if r.attempts > 0 {
                facts.push(format!("{} attempt{}", r.attempts, if r.attempts == 1 { "" } else { "s" }));
            }
            if let Some(ms) = r.millis {
                facts.push(if ms >= 1000 { format!("{:.1} s", ms as f64 / 1000.0) } else { format!("{ms} ms") });
            }
        }
        lines.push(facts.join(" · "));
    }
    if let Some(r) = row {
        match r.kind.as_str() {
            "workflow" => {
                let child = r.child.as_deref().map_or("not started".to_owned(), |c| {
                    let (id, st) = c.split_once(' ').unwrap_or((c, ""));
                    format!("child {} ({st})", &id[..8.min(id.len())])
                });
                lines.push(format!("workflow {}: {child}", r.activity_type.as_deref().unwrap_or("?")));
            }
            "task" | "sql" | "sleep" | "signal" => {
                if let Some(t) = &r.activity_type {
                    lines.push(format!("{}: {t}", r.kind));
                } else {
                    lines.push(r.kind.clone());
                }
            }
            _ => {}
        }
    }
    Node { lines, status }
}

fn mermaid(nodes: &[Node], edges: &[(usize, usize)]) -> String {
    let escape = |s: &str| s.replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;");
    let mut out = String::from("flowchart LR\n");
    for (i, n) in nodes.iter().enumerate() {
        let text: Vec<String> = n.lines.iter().map(|l| escape(l)).collect();
        out.push_str(&format!("  s{i}[\"{}\"]:::{}\n", text.join("<br/>"), n.status));
    }
    for (from, to) in edges {
        out.push_str(&format!("  s{from} --> s{to}\n"));
    }
    for (status, style) in [
        ("completed", "fill:#d7f5dd,stroke:#2e7d32"),
        ("running", "fill:#dbeafe,stroke:#1d4ed8"),
        ("scheduled", "fill:#e0f2fe,stroke:#0369a1"),
        ("waiting", "fill:#fef9c3,stroke:#a16207"),
        ("failed", "fill:#fee2e2,stroke:#b91c1c"),
        ("cancelled", "fill:#e5e7eb,stroke:#4b5563"),
        ("skipped", "fill:#f3f4f6,stroke:#9ca3af"),
        ("pending", "fill:#ffffff,stroke:#9ca3af,stroke-dasharray:3 3"),
    ] {
        out.push_str(&format!("  classDef {status} {style}\n"));
    }
    out
}

fn dot(nodes: &[Node], edges: &[(usize, usize)]) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let color = |status: &str| match status {
        "completed" => "#d7f5dd",
        "running" => "#dbeafe",
        "scheduled" => "#e0f2fe",
        "waiting" => "#fef9c3",
        "failed" => "#fee2e2",
        "cancelled" | "skipped" => "#e5e7eb",
        _ => "#ffffff",
    };
    let mut out = String::from("digraph workflow {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\"];\n");
    for (i, n) in nodes.iter().enumerate() {
        let text: Vec<String> = n.lines.iter().map(|l| escape(l)).collect();
        out.push_str(&format!("  s{i} [label=\"{}\", fillcolor=\"{}\"];\n", text.join("\\n"), color(&n.status)));
    }
    for (from, to) in edges {
        out.push_str(&format!("  s{from} -> s{to};\n"));
    }
    out.push_str("}\n");
    out
}

/// `workflow_graph`.
pub fn graph(client: &mut SpiClient<'_>, caller: &Caller, id: Uuid, format: &str) -> Result<String> {
    if format != "mermaid" && format != "dot" {
        return Err(WorkflowError::invalid(format!("format must be 'mermaid' or 'dot', got '{format}'")));
    }
    let exec = rows::read_execution(client, id, caller.tenant.as_deref())?;
    let mut rows: Vec<(String, Row)> = Vec::new();
    for r in run(client, &STEPS, &[arg(id)])? {
        rows.push((
            r.get::<String>(1)?.unwrap_or_default(),
            Row {
                kind: r.get(2)?.unwrap_or_default(),
                status: r.get(3)?.unwrap_or_default(),
                attempts: r.get(4)?.unwrap_or(0),
                activity_type: r.get(5)?,
                millis: r.get(6)?,
                child: r.get(7)?,
            },
        ));
    }
    let find = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, r)| r);
    let (nodes, edges): (Vec<Node>, Vec<(usize, usize)>) = match &exec.definition {
        Some(def) => {
            let index: BTreeMap<&str, usize> =
                def.steps.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
            let nodes = def
                .steps
                .iter()
                .map(|s| {
                    let prefix = format!("{}[", s.name);
                    let items: Vec<&Row> = if s.map.is_some() {
                        rows.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(_, r)| r).collect()
                    } else {
                        Vec::new()
                    };
                    let mut node = describe(&s.name, find(&s.name), &items);
                    if find(&s.name).is_none() {
                        if let StepKind::Workflow { workflow_type, .. } = &s.kind {
                            node.lines.push(format!("workflow {workflow_type}"));
                        }
                    }
                    node
                })
                .collect();
            let edges = def
                .steps
                .iter()
                .enumerate()
                .flat_map(|(to, s)| {
                    s.depends_on
                        .iter()
                        .filter_map(|d| index.get(d.as_str()).map(|from| (*from, to)))
                        .collect::<Vec<_>>()
                })
                .collect();
            (nodes, edges)
        }
        None => (rows.iter().map(|(k, r)| describe(k, Some(r), &[])).collect(), Vec::new()),
    };
    Ok(if format == "mermaid" { mermaid(&nodes, &edges) } else { dot(&nodes, &edges) })
}
