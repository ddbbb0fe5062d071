// The seed's pipeline as an @effect/workflow workflow, made durable by pg_workflow:
// fetch a document -> chunk it -> extract entities per chunk with a flaky model (retried)
// -> resolve entities -> wait for approval -> cool off -> store. `organizationId` is the
// tenant. Run it (README: TypeScript):
//   DATABASE_URL=postgres://postgres@127.0.0.1:28815/postgres node dist/examples/extraction-pipeline.js
// (or `bun examples/extraction-pipeline.ts`; `make run-ts` does it against the demo cluster).

import * as Activity from "@effect/workflow/Activity";
import * as DurableClock from "@effect/workflow/DurableClock";
import * as DurableDeferred from "@effect/workflow/DurableDeferred";
import * as Workflow from "@effect/workflow/Workflow";
import * as Effect from "effect/Effect";
import * as Layer from "effect/Layer";
import * as Schema from "effect/Schema";
import pg from "pg";
import * as PgWorkflowEngine from "pg-workflow/effect";

export const Entity = Schema.Struct({ name: Schema.String, kind: Schema.String });
export class ModelOverloaded extends Schema.TaggedError<ModelOverloaded>()("ModelOverloaded", {
  chunk: Schema.Number,
}) {}

export const ExtractionPipeline = Workflow.make({
  name: "ExtractionPipeline",
  payload: { organizationId: Schema.String, documentUrl: Schema.String },
  success: Schema.Struct({ stored: Schema.Number, approvedBy: Schema.String }),
  error: ModelOverloaded,
  idempotencyKey: ({ organizationId, documentUrl }) => `${organizationId}:${documentUrl}`,
});

export const Approval = DurableDeferred.make("approval", { success: Schema.Struct({ by: Schema.String }) });

/** Every call the pipeline makes to the outside, recorded (the tests count them). */
export const callLog = (pool: pg.Pool) => (call: string, executionId: string) =>
  Effect.promise(() =>
    pool.query("INSERT INTO extraction_calls (call, execution_id, pid) VALUES ($1, $2, $3)", [call, executionId, process.pid]),
  );

/** The workflow's code; `workMs` makes each call take that long (the crash tests need time to kill). */
export const ExtractionPipelineLive = (pool: pg.Pool, workMs = 0) => {
  const record = callLog(pool);
  const work = (call: string, executionId: string) =>
    record(call, executionId).pipe(Effect.zipRight(Effect.sleep(workMs)));
  return ExtractionPipeline.toLayer((payload, executionId) =>
    Effect.gen(function* () {
      const text = yield* Activity.make({
        name: "fetch",
        success: Schema.String,
        execute: work("fetch", executionId).pipe(
          Effect.as(`Ada Lovelace worked with Charles Babbage in London on the Analytical Engine`),
        ),
      });
      const chunks = yield* Activity.make({
        name: "chunk",
        success: Schema.Array(Schema.String),
        execute: work("chunk", executionId).pipe(Effect.as(text.match(/(\S+\s+){0,3}\S+/g) ?? [])),
      });
      // One model call per chunk, four at a time; the model is overloaded on the first
      // attempt of every other chunk, and the activity is retried.
      const extracted = yield* Effect.forEach(
        chunks,
        (chunk, i) =>
          Activity.make({
            name: `extract/${i}`,
            success: Schema.Array(Entity),
            error: ModelOverloaded,
            execute: Effect.gen(function* () {
              const attempt = yield* Activity.CurrentAttempt;
              yield* work(`extract/${i}/${attempt}`, executionId);
              if (i % 2 === 0 && attempt === 1) return yield* new ModelOverloaded({ chunk: i });
              return chunk
                .split(/\s+/)
                .filter((w) => /^[A-Z]/.test(w))
                .map((name) => ({ name, kind: name === "London" ? "place" : "person" }));
            }),
          }).pipe(Activity.retry({ times: 3 })),
        { concurrency: 4 },
      );
      const entities = yield* Activity.make({
        name: "resolve",
        success: Schema.Array(Entity),
        execute: work("resolve", executionId).pipe(
          Effect.as([...new Map(extracted.flat().map((e) => [e.name, e])).values()]),
        ),
      });
      const approval = yield* DurableDeferred.await(Approval);
      yield* DurableClock.sleep({ name: "cool-off", duration: "1 second", inMemoryThreshold: "0 millis" });
      const stored = yield* Activity.make({
        name: "store",
        success: Schema.Number,
        execute: work("store", executionId).pipe(
          Effect.zipRight(
            Effect.promise(() =>
              pool.query(
                "INSERT INTO extracted_entities (organization_id, name, kind) SELECT $1, e->>'name', e->>'kind' FROM jsonb_array_elements($2::jsonb) e",
                [payload.organizationId, JSON.stringify(entities)],
              ),
            ),
          ),
          Effect.map((r) => r.rowCount ?? 0),
        ),
      });
      return { stored, approvedBy: approval.by };
    }),
  );
};

/** The tables the example writes (the application's own, beside pg_workflow's). */
export const createTables = (pool: pg.Pool) =>
  pool.query(`
    CREATE TABLE IF NOT EXISTS extraction_calls (id bigserial PRIMARY KEY, call text, execution_id text, pid int,
                                                 at timestamptz DEFAULT clock_timestamp());
    CREATE TABLE IF NOT EXISTS extracted_entities (organization_id text, name text, kind text)`);

/** The engine, with the organization as the tenant. */
export const EngineLive = (connection: string | pg.PoolConfig) =>
  PgWorkflowEngine.layer({
    connection,
    tenant: (_name, payload) => (payload as { organizationId?: string }).organizationId,
  });

// Run directly: start a document, approve it when it waits, print the result.
if (process.argv[1] && /extraction-pipeline\.(ts|js)$/.test(process.argv[1])) {
  const connection = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:28815/postgres";
  const pool = new pg.Pool({ connectionString: connection });
  await pool.query("CREATE EXTENSION IF NOT EXISTS pg_workflow");
  await createTables(pool);
  const payload = { organizationId: "acme", documentUrl: `https://example.com/doc-${Date.now()}` };
  const program = Effect.gen(function* () {
    const executionId = yield* ExtractionPipeline.execute(payload, { discard: true });
    console.log(`started ${executionId}; waiting for the approval step`);
    yield* Effect.promise(async () => {
      for (;;) {
        const r = await pool.query(
          "SELECT 1 FROM workflow_activity a JOIN workflow_execution e ON e.id = a.execution_id WHERE e.idempotency_key = $1 AND a.step_key = 'deferred/approval'",
          [executionId],
        );
        if (r.rowCount) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });
    console.log("approving");
    yield* DurableDeferred.succeed(Approval, {
      token: DurableDeferred.tokenFromExecutionId(Approval, { workflow: ExtractionPipeline, executionId }),
      value: { by: "ann" },
    });
    const result = yield* ExtractionPipeline.execute(payload);
    console.log("result:", result);
  });
  await Effect.runPromise(
    program.pipe(Effect.provide(ExtractionPipelineLive(pool).pipe(Layer.provideMerge(EngineLive(connection))))),
  );
  await pool.end();
  process.exit(0);
}
