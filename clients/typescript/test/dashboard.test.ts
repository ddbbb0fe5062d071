// The dashboard in a real browser (headless Chromium from Debian's packages): the list,
// a link followed to an execution whose graph Mermaid draws, the queues; screenshots
// written to test-output/ (and the one the README shows, docs/dashboard.png). Read-only
// unless started with allowActions; no connection details in any page.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { startDashboard } from "../src/dashboard/server.js";
import { WorkflowSql } from "../src/index.js";
import { assert, assertEqual, freshDatabase, test, withClient } from "./harness.js";

const pkg = fileURLToPath(new URL(fileURLToPath(import.meta.url).includes("/dist/") ? "../../" : "../", import.meta.url));
const outputDir = `${pkg}/test-output`;

const run = promisify(execFile);

/** Chromium, headless: the DOM after scripts ran (and a screenshot, if asked). Not
 * synchronous: the dashboard answering it runs in this process. */
async function browse(url: string, screenshot?: string): Promise<string> {
  const common = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=15000"];
  if (screenshot) {
    await run("chromium", [...common, "--window-size=1400,900", `--screenshot=${screenshot}`, url], { timeout: 60_000 });
  }
  return (await run("chromium", [...common, "--dump-dom", url], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 })).stdout;
}

async function workload(config: pg.ClientConfig): Promise<string> {
  return withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    await sql.define("dash_digest", { steps: [{ name: "send", activity: "send" }] });
    await sql.define("dash_doc", {
      steps: [
        { name: "fetch", activity: "fetch", retry: { max_attempts: 3, initial_interval: "1ms", jitter: 0 } },
        { name: "chunk", activity: "chunk", depends_on: ["fetch"] },
        { name: "extract", activity: "extract", map: "chunk", depends_on: ["chunk"] },
        { name: "approve", wait_signal: "approved", depends_on: ["extract"] },
        { name: "notify", workflow: "dash_digest", depends_on: ["approve"] },
      ],
    });
    const id = await sql.start("dash_doc", { url: "https://example.com/a" }, { options: { labels: { team: "search" } } });
    await sql.start("dash_doc", { url: "https://example.com/b" }, { options: { labels: { team: "ops" } } });
    const work = async (output: (key: string) => unknown, fail = false) => {
      for (const a of await sql.claim({ queue: "default", workerId: "dash-worker", maxCount: 10 })) {
        if (a.execution_id !== id) continue;
        if (fail) await sql.failActivity(a.activity_id, { type: "Flaky", message: "model overloaded" }, { attempt: a.attempt });
        else await sql.completeActivity(a.activity_id, output(a.step_key) as never, a.attempt);
      }
    };
    await work(() => null, true);
    await db.query("UPDATE workflow_activity SET scheduled_at = now() - interval '1 second' WHERE status = 'scheduled'");
    await work(() => ({ body: "a b c" }));
    await work(() => ["a", "b", "c"]);
    await work(() => 1);
    await sql.signal(id, "approved", { by: "ann" });
    return id;
  });
}

test("the dashboard in headless Chromium: list, a link to an execution with its graph drawn, queues; read-only", async () => {
  mkdirSync(outputDir, { recursive: true });
  const config = await freshDatabase("pgw_ts_dashboard");
  const id = await workload(config);
  const dashboard = await startDashboard({ connection: config as pg.PoolConfig, port: 0 });
  try {
    const list = await browse(`${dashboard.url}/?workflow_type=dash_doc`, `${outputDir}/dashboard-list.png`);
    assert(list.includes("dash_doc") && list.includes("search"), "the list shows the executions");
    assert(list.includes(`href="/executions/${id}"`), "the list links to the execution");
    const page = await browse(`${dashboard.url}/executions/${id}`, `${outputDir}/dashboard-execution.png`);
    assert(/<svg[^>]*aria-roledescription="flowchart/.test(page), "Mermaid drew the graph as SVG");
    for (const text of ["fetch", "extract", "map: 3 items", "model overloaded", "approved", "ann"]) {
      assert(page.includes(text), `the execution page shows ${text}`);
    }
    assert(!page.includes("Cancel</button>"), "no actions on a read-only dashboard");
    const filtered = await browse(`${dashboard.url}/?label=team%3Dops`);
    assert(filtered.includes("ops") && !filtered.includes(id), "the label filter");
    const queues = await browse(`${dashboard.url}/queues`, `${outputDir}/dashboard-queues.png`);
    assert(queues.includes("default"), "the queues page lists the queue");
    for (const html of [list, page, queues]) {
      assert(!html.includes("postgres://") && !html.includes(`port=${config.port}`) && !html.includes("user="), "no connection details");
    }
    const refused = await fetch(`${dashboard.url}/executions/${id}/cancel`, { method: "POST", redirect: "manual" });
    assertEqual(refused.status, 403, "POST on a read-only dashboard");
  } finally {
    await dashboard.close();
  }
  // With actions allowed (and a role that may cancel), the button works.
  const acting = await startDashboard({ connection: config as pg.PoolConfig, port: 0, allowActions: true });
  try {
    assert((await browse(`${acting.url}/executions/${id}`)).includes("Cancel</button>"), "the admin sees Cancel");
    const done = await fetch(`${acting.url}/executions/${id}/cancel`, { method: "POST", redirect: "manual" });
    assertEqual(done.status, 303);
    const status = await withClient(config, (db) => new WorkflowSql(db).status(id));
    assertEqual(status.status, "cancelled");
  } finally {
    await acting.close();
  }
});
