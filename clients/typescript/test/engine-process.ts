// An engine process for the Effect tests: provides PgWorkflowEngine with the example's
// ExtractionPipeline registered (PGWORKFLOW_VARIANT=v2: a changed `fetch` activity, for
// the non-deterministic replay test), prints "ready" once it listens and "error <SQLSTATE>
// <message>" for every error the engine recovers from, and runs until killed.

import * as Activity from "@effect/workflow/Activity";
import * as Effect from "effect/Effect";
import * as Layer from "effect/Layer";
import * as Schema from "effect/Schema";
import pg from "pg";
import { ExtractionPipeline, ExtractionPipelineLive } from "../examples/extraction-pipeline.js";
import * as PgWorkflowEngine from "../src/effect.js";

const config = JSON.parse(process.env.PGWORKFLOW_ENGINE_CONFIG ?? "{}") as pg.PoolConfig;
const pool = new pg.Pool({ ...config, max: 4 });
const report = (error: unknown) => {
  const e = error as { sqlstate?: string; message?: string };
  process.stdout.write(`error ${e?.sqlstate ?? "-"} ${String(e?.message ?? error).split("\n")[0]}\n`);
};

// v2: the same workflow whose `fetch` now returns a number (a deploy that changed it).
const ChangedPipeline = ExtractionPipeline.toLayer(() =>
  Effect.gen(function* () {
    yield* Activity.make({ name: "fetch", success: Schema.Number, execute: Effect.succeed(42) });
    return { stored: 0, approvedBy: "nobody" };
  }),
);

const workflows =
  process.env.PGWORKFLOW_VARIANT === "v2" ? ChangedPipeline : ExtractionPipelineLive(pool, Number(process.env.PGWORKFLOW_WORK_MS ?? "0"));
const engine = PgWorkflowEngine.layer({
  connection: config,
  leaseMs: Number(process.env.PGWORKFLOW_LEASE_MS ?? "3000"),
  pollIntervalMs: 500,
  tenant: (_name, payload) => (payload as { organizationId?: string }).organizationId,
  onError: report,
});

// "ready" once the engine listens and the workflow is registered (the layers it needs are built first).
const ready = Layer.effectDiscard(Effect.sync(() => process.stdout.write("ready\n")));
await Effect.runPromise(Layer.launch(ready.pipe(Layer.provide(workflows.pipe(Layer.provideMerge(engine))))));
