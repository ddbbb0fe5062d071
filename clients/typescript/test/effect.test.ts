// PgWorkflowEngine: the example pipeline end to end on two engine processes, an engine
// killed between activities, a non-deterministic replay, interrupt. Engines run in
// processes of their own (test/engine-process); this process starts, approves and reads
// executions through the same layer.

import * as DurableDeferred from "@effect/workflow/DurableDeferred";
import * as Workflow from "@effect/workflow/Workflow";
import * as Effect from "effect/Effect";
import * as Exit from "effect/Exit";
import pg from "pg";
import { Approval, createTables, EngineLive, ExtractionPipeline } from "../examples/extraction-pipeline.js";
import { assert, assertEqual, eventually, freshDatabase, test } from "./harness.js";
import { exited, startProcess, withChildren } from "./processes.js";

type Config = pg.ClientConfig;

async function database(name: string): Promise<{ config: Config; pool: pg.Pool }> {
  const config = await freshDatabase(name);
  const pool = new pg.Pool({ ...config, max: 4 });
  pool.on("error", () => {}); // its database is dropped when the test ends
  await createTables(pool);
  return { config, pool };
}

const engine = (config: Config, env: Record<string, string> = {}) =>
  startProcess("engine-process", { PGWORKFLOW_ENGINE_CONFIG: JSON.stringify(config), ...env });

/** Runs an Effect program with the engine layer (this process registers no workflow). */
const run = <A>(config: Config, program: Effect.Effect<A, unknown, any>) =>
  Effect.runPromise(program.pipe(Effect.provide(EngineLive(config as pg.PoolConfig))) as Effect.Effect<A, unknown, never>);

const count = async (pool: pg.Pool, text: string, values: unknown[] = []) => Number((await pool.query(text, values)).rows[0].n);

/** Waits until the execution of `executionId` waits for its approval, then approves it. */
async function approve(config: Config, pool: pg.Pool, executionId: string): Promise<void> {
  await eventually("the approval step", 60, async () =>
    (await count(
      pool,
      "SELECT count(*) AS n FROM workflow_activity a JOIN workflow_execution e ON e.id = a.execution_id \
       WHERE e.idempotency_key = $1 AND a.step_key = 'deferred/approval'",
      [executionId],
    )) === 1,
  );
  await run(
    config,
    DurableDeferred.succeed(Approval, {
      token: DurableDeferred.tokenFromExecutionId(Approval, { workflow: ExtractionPipeline, executionId }),
      value: { by: "ann" },
    }),
  );
}

const statusOf = async (pool: pg.Pool, executionId: string) =>
  (await pool.query("SELECT status, tenant_id FROM workflow_execution WHERE idempotency_key = $1", [executionId])).rows[0] as
    | { status: string; tenant_id: string }
    | undefined;

test("the example pipeline runs end to end on two engine processes; each activity runs once", () =>
  withChildren(async () => {
    const { config, pool } = await database("pgw_ts_effect_e2e");
    await engine(config, { PGWORKFLOW_WORK_MS: "20" });
    await engine(config, { PGWORKFLOW_WORK_MS: "20" });
    const docs = [0, 1, 2, 3, 4, 5].map((i) => ({
      organizationId: i % 2 === 0 ? "acme" : "globex",
      documentUrl: `https://example.com/doc-${i}`,
    }));
    const ids = await run(config, Effect.forEach(docs, (d) => ExtractionPipeline.execute(d, { discard: true })));
    for (const id of ids) await approve(config, pool, id);
    await eventually("6 completed pipelines", 120, async () =>
      (await count(pool, "SELECT count(*) AS n FROM workflow_execution WHERE status = 'completed'")) === 6,
    );
    for (const [i, id] of ids.entries()) {
      const result = await run(config, ExtractionPipeline.poll(id));
      assert(result && result._tag === "Complete" && Exit.isSuccess(result.exit), `pipeline ${i} completed: ${String(result)}`);
      assertEqual(result.exit.value, { stored: 7, approvedBy: "ann" }, `pipeline ${i} result`);
      assertEqual((await statusOf(pool, id))?.tenant_id, docs[i]!.organizationId, "the organization is the tenant");
    }
    // Each call ran once: fetch, chunk, an extract per chunk (3) and attempt (chunks 0 and 2
    // twice), resolve, store: 9 per pipeline.
    assertEqual(await count(pool, "SELECT count(*) AS n FROM (SELECT 1 FROM extraction_calls GROUP BY execution_id, call HAVING count(*) > 1) d"), 0, "calls made twice");
    assertEqual(await count(pool, "SELECT count(*) AS n FROM extraction_calls WHERE call LIKE 'extract/%/2'"), 6 * 2, "retried extractions (chunks 0 and 2)");
    assertEqual(await count(pool, "SELECT count(*) AS n FROM extraction_calls"), 6 * 9, "calls in all");
    // The approval was a signal wait, the cool-off a durable sleep.
    assertEqual(
      (await pool.query("SELECT kind, count(*)::int AS n FROM workflow_activity WHERE step_key IN ('deferred/approval', 'deferred/DurableClock/cool-off') AND status = 'completed' GROUP BY kind ORDER BY kind")).rows,
      [{ kind: "signal", n: 6 }, { kind: "sleep", n: 6 }],
    );
    await pool.end();
  }),
);

test("an engine killed between activities: the run resumes elsewhere, completed activities do not run again", () =>
  withChildren(async () => {
    const { config, pool } = await database("pgw_ts_effect_kill");
    const first = await engine(config, { PGWORKFLOW_WORK_MS: "400", PGWORKFLOW_LEASE_MS: "1500" });
    const [id] = await run(config, Effect.forEach([{ organizationId: "acme", documentUrl: "https://example.com/k" }], (d) => ExtractionPipeline.execute(d, { discard: true })));
    await eventually("fetch done and chunk running", 60, async () => (await count(pool, "SELECT count(*) AS n FROM extraction_calls WHERE call = 'chunk'")) === 1);
    first.kill("SIGKILL");
    await exited(first);
    await engine(config, { PGWORKFLOW_WORK_MS: "20", PGWORKFLOW_LEASE_MS: "1500" });
    await approve(config, pool, id!);
    await eventually("the pipeline to complete", 120, async () => (await statusOf(pool, id!))?.status === "completed");
    const calls = (await pool.query("SELECT call, count(*)::int AS n FROM extraction_calls GROUP BY call ORDER BY call")).rows as { call: string; n: number }[];
    const byCall = Object.fromEntries(calls.map((c) => [c.call, c.n]));
    assertEqual(byCall.fetch, 1, "fetch had completed before the kill");
    assert((byCall.chunk ?? 0) <= 2, "chunk ran at most twice (it was running when the engine was killed)");
    assertEqual(calls.filter((c) => c.call !== "chunk" && c.n !== 1), [], "every other call ran once");
    await pool.end();
  }),
);

test("a replay by changed code is a non-deterministic replay: reported, and the run is left as it was", () =>
  withChildren(async () => {
    const { config, pool } = await database("pgw_ts_effect_nondeterministic");
    const first = await engine(config, { PGWORKFLOW_WORK_MS: "0" });
    const [id] = await run(config, Effect.forEach([{ organizationId: "acme", documentUrl: "https://example.com/nd" }], (d) => ExtractionPipeline.execute(d, { discard: true })));
    await eventually("the approval step", 60, async () =>
      (await count(pool, "SELECT count(*) AS n FROM workflow_activity WHERE step_key = 'deferred/approval'")) === 1,
    );
    first.kill("SIGKILL");
    await exited(first);
    const changed = await engine(config, { PGWORKFLOW_VARIANT: "v2" });
    await approve(config, pool, id!); // the approval makes it ready: the changed code replays it
    await eventually("the non-deterministic replay to be reported", 60, async () =>
      changed.output.some((line) => line.startsWith("error 22000 non-deterministic replay")),
    );
    assertEqual((await statusOf(pool, id!))?.status, "running", "the execution is left running, for a fixed deploy");
    await pool.end();
  }),
);

test("interrupt cancels the execution; poll reports it", () =>
  withChildren(async () => {
    const { config, pool } = await database("pgw_ts_effect_interrupt");
    await engine(config, { PGWORKFLOW_WORK_MS: "0" });
    const payload = { organizationId: "acme", documentUrl: "https://example.com/i" };
    const id = await run(config, ExtractionPipeline.execute(payload, { discard: true }));
    await eventually("the approval step", 60, async () =>
      (await count(pool, "SELECT count(*) AS n FROM workflow_activity WHERE step_key = 'deferred/approval' AND status = 'waiting'")) === 1,
    );
    await run(config, ExtractionPipeline.interrupt(id));
    assertEqual((await statusOf(pool, id))?.status, "cancelled");
    const result = await run(config, ExtractionPipeline.poll(id));
    assert(result instanceof Workflow.Complete && Exit.isInterrupted(result.exit), "poll: an interrupted Complete");
    await pool.end();
  }),
);
