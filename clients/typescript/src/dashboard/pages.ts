// The dashboard's HTML, rendered on the server from what the SQL functions return. Every
// value from the database goes through `esc`; long JSON is cut. No script but Mermaid's
// (served by the dashboard itself, no CDN), no connection details anywhere in a page.

import type { Json } from "../json.js";
import type { ExecutionStatus, ListedExecution, QueueStats } from "../types.js";

export const esc = (v: unknown): string =>
  String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** JSON shown in a page: at most `max` characters. */
const json = (v: Json | unknown, max = 600) => {
  const text = v === null || v === undefined ? "" : JSON.stringify(v);
  return esc(text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text);
};

const time = (v: unknown) => (v ? esc(new Date(v as string).toISOString().replace("T", " ").slice(0, 19)) : "");

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2937;background:#f8fafc}
header{background:#1e293b;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#cbd5e1;text-decoration:none}header a:hover{color:#fff}header b{margin-right:10px}
main{padding:16px 20px}table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e2e8f0;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f1f5f9;font-weight:600}code,pre{font:12px ui-monospace,monospace}
.status{padding:1px 7px;border-radius:9px;font-size:12px}
.completed{background:#d7f5dd}.running,.scheduled{background:#dbeafe}.waiting,.pending{background:#fef9c3}
.failed{background:#fee2e2}.cancelled,.skipped{background:#e5e7eb}
form.filters{display:flex;gap:8px;margin-bottom:12px;flex-wrap:wrap}
.graph{background:#fff;padding:10px;border:1px solid #e2e8f0;margin:10px 0;overflow:auto}
.muted{color:#64748b}.actions form{display:inline}`;

export function layout(title: string, body: string, options: { mermaid?: boolean } = {}): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · pg_workflow</title>
<style>${STYLE}</style></head><body>
<header><b>pg_workflow</b><a href="/">Executions</a><a href="/queues">Queues</a></header>
<main><h1>${esc(title)}</h1>${body}</main>
${options.mermaid ? `<script src="/static/mermaid.min.js"></script><script>mermaid.initialize({startOnLoad:true,securityLevel:"strict"});</script>` : ""}
</body></html>`;
}

const badge = (status: string) => `<span class="status ${esc(status)}">${esc(status)}</span>`;

export interface ListQuery {
  workflow_type?: string;
  status?: string;
  label?: string;
  waiting_for?: string;
}

export function listPage(rows: ListedExecution[], query: ListQuery, nextAfter: string | undefined): string {
  const field = (name: keyof ListQuery, placeholder: string) =>
    `<input name="${name}" placeholder="${placeholder}" value="${esc(query[name] ?? "")}">`;
  const statuses = ["", "pending", "running", "completed", "failed", "cancelled"]
    .map((s) => `<option${s === query.status ? " selected" : ""}>${s}</option>`)
    .join("");
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v) as [string, string][]);
  const more = nextAfter ? `<p><a id="older" href="/?${params}&after=${esc(nextAfter)}">Older executions →</a></p>` : "";
  const table = rows
    .map(
      (e) => `<tr><td><a class="execution" href="/executions/${esc(e.id)}"><code>${esc(e.id)}</code></a></td>
<td>${esc(e.workflow_type)}</td><td>${badge(e.status)}</td><td>${esc(e.tenant_id ?? "")}</td>
<td><code>${json(e.labels, 120)}</code></td><td>${time(e.created_at)}</td><td>${time(e.finished_at)}</td>
<td>${esc((e.error as { message?: string } | null)?.message ?? "")}</td></tr>`,
    )
    .join("");
  return layout(
    "Executions",
    `<form class="filters" method="get" action="/">${field("workflow_type", "workflow type")}
<select name="status">${statuses}</select>${field("label", "label key=value")}${field("waiting_for", "waiting for signal")}
<button>Filter</button></form>
<table><tr><th>id</th><th>type</th><th>status</th><th>tenant</th><th>labels</th><th>created</th><th>finished</th><th>error</th></tr>
${table || `<tr><td colspan="8" class="muted">No executions match.</td></tr>`}</table>${more}`,
  );
}

export interface SignalRow {
  name: string;
  payload: Json;
  created_at: string;
  consumed_by: string | null;
}

export function executionPage(
  status: ExecutionStatus,
  graph: string,
  signals: SignalRow[],
  options: { actions: boolean; mermaid: boolean },
): string {
  const steps = status.steps
    .map((s) => {
      const attempts = (s as { attempts?: { attempt: number; outcome: string; worker_id: string | null; error: { type?: string; message?: string } | null }[] })
        .attempts ?? [];
      const history = attempts
        .map((a) => `${a.attempt}: ${badge(a.outcome)} ${esc(a.worker_id ?? "")} ${esc(a.error?.type ?? "")} ${esc(a.error?.message ?? "")}`)
        .join("<br>");
      return `<tr><td><code>${esc(s.step_key)}</code></td><td>${esc(s.kind)}</td><td>${badge(s.status)}</td>
<td>${esc(s.attempt)}</td><td>${history}</td><td>${time(s.started_at)}</td><td>${time(s.finished_at)}</td>
<td><code>${json(s.output, 200)}</code></td><td><code>${json(s.error, 200)}</code></td></tr>`;
    })
    .join("");
  const signalRows = signals
    .map((g) => `<tr><td>${esc(g.name)}</td><td><code>${json(g.payload, 200)}</code></td><td>${time(g.created_at)}</td><td>${esc(g.consumed_by ?? "waiting")}</td></tr>`)
    .join("");
  const actions = options.actions
    ? `<p class="actions"><form method="post" action="/executions/${esc(status.id)}/cancel"><button>Cancel</button></form>
<form method="post" action="/executions/${esc(status.id)}/retry"><button>Retry</button></form></p>`
    : "";
  const picture = options.mermaid
    ? `<pre class="mermaid">${esc(graph)}</pre>`
    : `<pre>${esc(graph)}</pre><p class="muted">Install the mermaid package to see it drawn.</p>`;
  return layout(
    `${status.workflow_type} ${status.id}`,
    `<p>${badge(status.status)} tenant ${esc(status.tenant_id ?? "none")} · created ${time(status.created_at)} · finished ${time(status.finished_at) || "—"}</p>${actions}
<div class="graph">${picture}</div>
<h2>Steps</h2><table><tr><th>step</th><th>kind</th><th>status</th><th>attempt</th><th>attempts</th><th>started</th><th>finished</th><th>output</th><th>error</th></tr>${steps}</table>
<h2>Input, output, error</h2><p><code>${json(status.input)}</code></p><p><code>${json(status.output)}</code></p><p><code>${json(status.error)}</code></p>
<h2>Signals</h2><table><tr><th>name</th><th>payload</th><th>sent</th><th>taken by</th></tr>${signalRows || `<tr><td colspan="4" class="muted">None.</td></tr>`}</table>`,
    { mermaid: options.mermaid },
  );
}

export function queuesPage(queues: QueueStats[]): string {
  const rows = queues
    .map(
      (q) => `<tr><td>${esc(q.queue)}</td><td>${esc(q.ready)}</td><td>${esc(q.delayed)}</td><td>${esc(q.running)}</td>
<td>${esc(q.expired_leases)}</td><td>${esc(JSON.stringify(q.oldest_ready_age ?? ""))}</td><td>${esc(q.completed_last_minute)} / ${esc(q.failed_last_minute)}</td>
<td>${esc(q.completed_last_hour)} / ${esc(q.failed_last_hour)}</td></tr>`,
    )
    .join("");
  return layout(
    "Queues",
    `<table><tr><th>queue</th><th>ready</th><th>delayed</th><th>running</th><th>leases expired</th><th>oldest ready</th>
<th>last minute (completed / failed)</th><th>last hour (completed / failed)</th></tr>${rows || `<tr><td colspan="8" class="muted">No queues.</td></tr>`}</table>`,
  );
}
