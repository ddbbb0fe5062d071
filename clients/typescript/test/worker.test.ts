// The worker: many executions with failures injected, a worker process killed mid-batch,
// Postgres restarted mid-run, a graceful shutdown, cancellation reaching a handler.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { ActivityFailure, NonRetryableFailure, Worker, WorkflowSql } from "../src/index.js";
import { assert, assertEqual, eventually, freshDatabase, test, withClient } from "./harness.js";
import { exited, startProcess, withChildren } from "./processes.js";

const THREE_STEPS = {
  steps: [
    { name: "fetch", activity: "step", retry: { max_attempts: 5, initial_interval: "100ms", jitter: 0 } },
    { name: "chunk", activity: "step", depends_on: ["fetch"], retry: { max_attempts: 5, initial_interval: "100ms", jitter: 0 } },
    { name: "store", activity: "step", depends_on: ["chunk"], retry: { max_attempts: 5, initial_interval: "100ms", jitter: 0 } },
  ],
};

async function startMany(config: pg.ClientConfig, type: string, n: number): Promise<void> {
  await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    await sql.define(type, THREE_STEPS);
    await db.query("SELECT workflow_start($1, jsonb_build_object('n', i)) FROM generate_series(1, $2) i", [type, n]);
  });
}

async function count(config: pg.ClientConfig, query: string): Promise<number> {
  return withClient(config, async (db) => Number((await db.query(query)).rows[0].n));
}

test("4 workers finish 1,000 three-step executions with failures injected", async () => {
  const config = await freshDatabase("pgw_ts_many");
  await startMany(config, "ts_many", 1000);
  const succeeded = new Map<string, number>();
  let failuresInjected = 0;
  const workers = [0, 1, 2, 3].map(
    (i) =>
      new Worker({
        connection: config as pg.PoolConfig,
        workerId: `w${i}`,
        concurrency: 8,
        handlers: {
          step: async (input: { input: { n: number } }, ctx) => {
            // Every 10th execution fails each step's first attempt: retried by the policy.
            if (input.input.n % 10 === 0 && ctx.attempt === 1) {
              failuresInjected++;
              throw new ActivityFailure("model overloaded", { type: "Overloaded" });
            }
            succeeded.set(ctx.activityId, (succeeded.get(ctx.activityId) ?? 0) + 1);
            return { step: ctx.stepKey, n: input.input.n };
          },
        },
      }),
  );
  await Promise.all(workers.map((w) => w.start()));
  await eventually("1,000 completed executions", 120, async () =>
    (await count(config, "SELECT count(*) AS n FROM workflow_execution WHERE status = 'completed'")) === 1000,
  );
  await Promise.all(workers.map((w) => w.stop()));
  assertEqual(failuresInjected, 300, "failures injected");
  assertEqual(succeeded.size, 3000, "activities that succeeded");
  assert([...succeeded.values()].every((n) => n === 1), "no activity succeeded twice");
  assertEqual(await count(config, "SELECT count(*) AS n FROM workflow_activity WHERE status <> 'completed'"), 0);
  assertEqual(
    await count(config, "SELECT count(*) AS n FROM workflow_activity WHERE attempt <> CASE WHEN (SELECT (input->>'n')::int % 10 FROM workflow_execution e WHERE e.id = execution_id) = 0 THEN 2 ELSE 1 END"),
    0,
    "attempts: 2 where a failure was injected, else 1",
  );
});

test("with the preload an idle worker waits in workflow_claim_wait, and the commit that starts work wakes it", async () => {
  const config = await freshDatabase("pgw_ts_claim_wait");
  await withClient(config, (db) => new WorkflowSql(db).define("ts_wait", { steps: [{ name: "a", activity: "a", queue: "tsw" }] }));
  let ran = 0;
  const worker = new Worker({
    connection: config as pg.PoolConfig,
    queue: "tsw",
    concurrency: 2,
    // Longer than the wait for the handler below: only a wake-up can pick the work up in
    // time, not the wait's end (the listener does not claim while the worker waits).
    claimWaitMs: 6_000,
    handlers: { a: async () => void ran++ },
  });
  await worker.start();
  const waiting = `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()
                     AND wait_event_type = 'Extension' AND query LIKE '%workflow_claim_wait%'`;
  await eventually("the worker to wait in workflow_claim_wait", 30, async () => (await count(config, waiting)) === 1);
  await withClient(config, (db) => new WorkflowSql(db).start("ts_wait", {}));
  await eventually("the handler to run before the 6 s wait ends", 4, async () => ran === 1);
  await worker.stop();
  // The setting it decided by (off without the preload: then it LISTENs).
  await withClient(config, async (db) => assertEqual(await new WorkflowSql(db).preloaded(), true));
});

test("completions wait for a batch only while other handlers still run", async () => {
  const config = await freshDatabase("pgw_ts_batch");
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  let fastReturned = false;
  const ids = await withClient(config, async (db) => {
    const s = new WorkflowSql(db);
    await s.define("ts_batch", { steps: [{ name: "a", activity: "a" }] });
    return [await s.start("ts_batch", { held: true }), await s.start("ts_batch", { held: false })];
  });
  const status = (id: string) =>
    withClient(config, async (db) => (await db.query("SELECT status FROM workflow_execution WHERE id = $1", [id])).rows[0].status);
  // A batch window of ten minutes: only "every running handler has finished" can send early.
  const worker = new Worker({
    connection: config as pg.PoolConfig,
    concurrency: 4,
    completionBatchMs: 600_000,
    handlers: {
      a: async (input: { input: { held: boolean } }) => {
        if (input.input.held) await held;
        else fastReturned = true;
        return null;
      },
    },
  });
  await worker.start();
  await eventually("the fast handler to return", 30, async () => fastReturned);
  assertEqual(await status(ids[1]!), "running", "the fast one's completion waits while the other handler runs");
  release();
  await eventually("both completed, without the ten-minute timer", 30, async () =>
    (await status(ids[0]!)) === "completed" && (await status(ids[1]!)) === "completed",
  );
  await worker.stop();
});

test("an output that cannot be stored fails its own attempt for good; the rest of its batch completes", async () => {
  const config = await freshDatabase("pgw_ts_bad_output");
  const ids = await withClient(config, async (db) => {
    // Outputs over 1 kB are refused by the server (54000) in this database.
    await db.query(`ALTER DATABASE ${config.database} SET workflow.max_payload_bytes = 1024`);
    const s = new WorkflowSql(db);
    await s.define("ts_out", { steps: [{ name: "a", activity: "a", retry: { max_attempts: 3 } }] });
    const ids: Record<string, string> = {};
    for (const kind of ["undefined", "large", "good1", "good2"]) ids[kind] = await s.start("ts_out", { kind });
    return ids;
  });
  const errors: unknown[] = [];
  const worker = new Worker({
    connection: config as pg.PoolConfig,
    concurrency: 4,
    completionBatchMs: 50, // all four in one batch
    onError: (e) => errors.push(e),
    handlers: {
      a: async (input: { input: { kind: string } }) => {
        switch (input.input.kind) {
          case "undefined":
            return { summary: undefined } as never; // a common slip: JSON has no undefined
          case "large":
            return { text: "x".repeat(2000) };
          default:
            return { ok: true };
        }
      },
    },
  });
  await worker.start();
  const row = (id: string) =>
    withClient(config, async (db) =>
      (await db.query("SELECT e.status, a.attempt, a.error FROM workflow_execution e JOIN workflow_activity a ON a.execution_id = e.id WHERE e.id = $1", [id])).rows[0],
    );
  // Within the lease (60 s): before, the batch was retried as if the connection were lost
  // until every lease in it ran out, the good results with it.
  await eventually("all four finished", 30, async () => {
    const rows = await Promise.all(Object.values(ids).map(row));
    return rows.every((r) => r.status === "completed" || r.status === "failed");
  });
  await worker.stop();
  for (const kind of ["good1", "good2"]) assertEqual((await row(ids[kind]!)).status, "completed", kind);
  const undef = await row(ids["undefined"]!);
  assertEqual(undef.status, "failed", "the undefined output");
  assertEqual(undef.attempt, 1, "not retried: the same output would be refused again");
  assertEqual(undef.error.type, "InvalidArgumentError");
  assert(String(undef.error.message).includes("output.summary is undefined"), `names the field: ${undef.error.message}`);
  const large = await row(ids["large"]!);
  assertEqual(large.status, "failed", "the large output");
  assertEqual(large.error.type, "PayloadTooLargeError");
  assert(errors.length >= 2, "both refusals reported to onError");
});

/** Starts test/worker-process in a process of its own, with this runtime. */
function workerProcess(config: pg.ClientConfig, env: Record<string, string> = {}) {
  return startProcess("worker-process", { PGWORKFLOW_WORKER_CONFIG: JSON.stringify(config), ...env });
}

const RUNS_TABLE =
  "CREATE TABLE ts_runs (id bigserial PRIMARY KEY, activity_id uuid, attempt int, pid int, started_at timestamptz DEFAULT clock_timestamp(), finished_at timestamptz)";

test("a worker process killed mid-batch: its attempts come back after the lease, nothing completed runs again", () =>
  withChildren(async () => {
  const config = await freshDatabase("pgw_ts_kill");
  await withClient(config, (db) => db.query(RUNS_TABLE));
  await startMany(config, "ts_kill", 100);
  const first = await workerProcess(config, { PGWORKFLOW_WORK_MS: "300", PGWORKFLOW_LEASE_MS: "2000" });
  await eventually("the first worker to be mid-batch", 30, async () => (await count(config, "SELECT count(*) AS n FROM ts_runs WHERE finished_at IS NULL")) >= 4);
  first.kill("SIGKILL");
  await exited(first);
  const abandoned = await count(config, "SELECT count(*) AS n FROM workflow_activity WHERE status = 'running'");
  assert(abandoned > 0, "the killed worker left claimed activities behind");
  const second = await workerProcess(config, { PGWORKFLOW_WORK_MS: "20", PGWORKFLOW_LEASE_MS: "2000" });
  await eventually("100 completed executions", 120, async () =>
    (await count(config, "SELECT count(*) AS n FROM workflow_execution WHERE status = 'completed'")) === 100,
  );
  second.kill("SIGTERM");
  assertEqual(await exited(second), 0, "the second worker stops cleanly");
  // No run of an activity started after it had completed, and every claim ran at most once.
  assertEqual(
    await count(config, "SELECT count(*) AS n FROM ts_runs r JOIN workflow_activity a ON a.id = r.activity_id WHERE r.started_at > a.finished_at"),
    0,
    "runs after completion",
  );
  assertEqual(await count(config, "SELECT count(*) AS n FROM (SELECT 1 FROM ts_runs GROUP BY activity_id, attempt HAVING count(*) > 1) d"), 0, "an attempt ran twice");
  }),
);

test("Postgres restarted mid-run: the workers reconnect and finish", async () => {
  const pgdata = process.env.PGWORKFLOW_TEST_PGDATA;
  if (!pgdata) throw new Error("PGWORKFLOW_TEST_PGDATA is not set; run these tests through `make test`");
  const config = await freshDatabase("pgw_ts_restart");
  await startMany(config, "ts_restart", 200);
  let done = 0;
  const workers = [0, 1].map(
    (i) =>
      new Worker({
        connection: config as pg.PoolConfig,
        workerId: `r${i}`,
        concurrency: 4,
        leaseMs: 3000,
        onError: () => {},
        handlers: {
          step: async () => {
            await new Promise((resolve) => setTimeout(resolve, 10));
            done++;
            return null;
          },
        },
      }),
  );
  await Promise.all(workers.map((w) => w.start()));
  await eventually("some work done before the restart", 60, async () => done >= 100);
  const root = fileURLToPath(new URL("../".repeat(fileURLToPath(import.meta.url).includes("/dist/") ? 4 : 3), import.meta.url));
  const restart = spawnSync(`${root}/scripts/cluster.sh`, ["restart", pgdata], { stdio: "inherit" });
  assertEqual(restart.status, 0, "scripts/cluster.sh restart");
  await eventually("200 completed executions after the restart", 120, async () => {
    try {
      return (await count(config, "SELECT count(*) AS n FROM workflow_execution WHERE status = 'completed'")) === 200;
    } catch {
      return false; // still starting
    }
  });
  await Promise.all(workers.map((w) => w.stop()));
});

test("SIGTERM: the worker stops claiming, finishes what it runs, and exits 0", () =>
  withChildren(async () => {
  const config = await freshDatabase("pgw_ts_sigterm");
  await withClient(config, (db) => db.query(RUNS_TABLE));
  await startMany(config, "ts_sigterm", 40);
  const child = await workerProcess(config, { PGWORKFLOW_WORK_MS: "1000", PGWORKFLOW_LEASE_MS: "30000" });
  await eventually("work in flight", 30, async () => (await count(config, "SELECT count(*) AS n FROM ts_runs")) >= 8);
  child.kill("SIGTERM");
  assertEqual(await exited(child), 0, "exit code");
  const unfinished = await count(config, "SELECT count(*) AS n FROM ts_runs WHERE finished_at IS NULL");
  assertEqual(unfinished, 0, "handlers interrupted");
  const left = await count(config, `SELECT count(*) AS n FROM workflow_activity WHERE status = 'running' AND worker_id = 'proc-${child.pid}'`);
  assertEqual(left, 0, "activities left claimed by the stopped worker");
  assertEqual(
    await count(config, "SELECT count(*) AS n FROM ts_runs r JOIN workflow_activity a ON a.id = r.activity_id AND a.attempt = r.attempt WHERE a.status <> 'completed' AND a.step_key = 'fetch'"),
    0,
    "every run that finished was completed",
  );
  }),
);

test("a cancelled execution aborts its running handler; a NonRetryableFailure fails the step at once", async () => {
  const config = await freshDatabase("pgw_ts_cancel");
  let aborted = false;
  const worker = new Worker({
    connection: config as pg.PoolConfig,
    leaseMs: 600, // heartbeats every 200 ms
    handlers: {
      slow: (_input, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener("abort", () => {
            aborted = true;
            reject(ctx.signal.reason);
          });
        }),
      bad: () => {
        throw new NonRetryableFailure("the document is not a PDF", { type: "BadInput" });
      },
    },
  });
  await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    await sql.define("ts_slow", { steps: [{ name: "s", activity: "slow" }] });
    await sql.define("ts_bad", { steps: [{ name: "b", activity: "bad", retry: { max_attempts: 5 } }] });
    await worker.start();
    const slow = await sql.start("ts_slow");
    await eventually("the slow activity to run", 30, async () => worker.running === 1);
    await sql.cancel(slow, "stop");
    await eventually("the handler to see the cancellation", 30, async () => aborted);
    const bad = await sql.start("ts_bad");
    const status = await sql.awaitOnServer(bad, "30s");
    assertEqual([status.status, status.steps[0]?.attempt, status.steps[0]?.error?.type], ["failed", 1, "BadInput"]);
  });
  await worker.stop();
});

// Run by make test against its cluster without the preload (setup 2).
test("without the preload, the worker runs workflow_dispatch itself: a sleep ends and a retry comes back", async () => {
  const config = await freshDatabase("pgw_ts_no_preload");
  const preloaded = await withClient(config, async (db) => (await db.query("SELECT workflow_wake() AS on")).rows[0].on);
  assertEqual(preloaded, false, "this test needs a cluster without the preload");
  let attempts = 0;
  const worker = new Worker({
    connection: config as pg.PoolConfig,
    dispatchIntervalMs: "auto",
    handlers: {
      after: (_input, ctx) => {
        attempts = ctx.attempt;
        if (ctx.attempt === 1) throw new ActivityFailure("not yet", { type: "NotYet" });
        return "done";
      },
    },
  });
  await worker.start();
  const status = await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    await sql.define("ts_np", {
      steps: [
        { name: "nap", sleep: "1s" },
        { name: "after", activity: "after", depends_on: ["nap"], retry: { max_attempts: 3, initial_interval: "1s", jitter: 0 } },
      ],
    });
    const id = await sql.start("ts_np");
    return sql.awaitOnServer(id, "60s");
  });
  await worker.stop();
  assertEqual([status.status, attempts], ["completed", 2]);
});
