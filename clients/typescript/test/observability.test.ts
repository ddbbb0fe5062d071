// Observability through the wrappers: the metrics text parsed by a Prometheus text-format
// parser, its figures agreeing with workflow_queue_stats; the list, the inbox, the graph.

import parsePrometheus from "parse-prometheus-text-format";
import { WorkflowSql } from "../src/index.js";
import { assert, assertEqual, freshDatabase, test, withClient } from "./harness.js";

test("workflow_metrics is valid Prometheus text and agrees with the queue stats", async () => {
  const config = await freshDatabase("pgw_ts_metrics");
  await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    await sql.define("ts_m", { steps: [{ name: "a", activity: "a", queue: "m\"q", retry: { max_attempts: 2, initial_interval: "1h", max_interval: "1h" } }] });
    for (let i = 0; i < 4; i++) await sql.start("ts_m", { i }, { options: { labels: { i } } });
    const [first, second] = await sql.claim({ queue: 'm"q', workerId: "w", maxCount: 2 });
    await sql.completeActivity(first!.activity_id, 1, first!.attempt);
    await sql.failActivity(second!.activity_id, { type: "Flaky", message: "x" }, { attempt: second!.attempt });
    const families = parsePrometheus(await sql.metrics());
    const value = (name: string, labels: Record<string, string>) =>
      families
        .find((f) => f.name === name)
        ?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value;
    const [stats] = (await sql.queueStats()).filter((q) => q.queue === 'm"q');
    assert(stats, "the queue's stats");
    assertEqual(value("pg_workflow_queue_ready", { queue: 'm"q' }), stats.ready, "ready");
    assertEqual([stats.ready, stats.delayed], ["2", "1"], "two ready, one waiting for its retry");
    assertEqual(value("pg_workflow_attempts", { queue: 'm"q', outcome: "completed", window: "1h" }), "1");
    assertEqual(value("pg_workflow_attempts", { queue: 'm"q', outcome: "failed", window: "1m" }), "1");
    assertEqual(value("pg_workflow_executions", { workflow_type: "ts_m", status: "running", tenant: "" }), "3");
    assertEqual(value("pg_workflow_executions", { workflow_type: "ts_m", status: "completed", tenant: "" }), "1");
    assert(families.every((f) => f.type === "GAUGE" && f.help.length > 0), "every family a documented gauge");
    // The list pages through executions, the graph draws one.
    const page = await sql.list({ workflow_type: "ts_m" }, { pageSize: 3 });
    const rest = await sql.list({ workflow_type: "ts_m" }, { pageSize: 3, after: page[2]!.id });
    assertEqual([page.length, rest.length], [3, 1]);
    assert((await sql.graph(page[0]!.id)).startsWith("flowchart LR"), "mermaid");
    assertEqual(await sql.waiting("nobody"), []);
  });
});
