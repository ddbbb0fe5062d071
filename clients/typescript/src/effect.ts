// PgWorkflowEngine: @effect/workflow's WorkflowEngine on pg_workflow's client-driven
// executions (README: TypeScript, "The Effect engine"). Import from "pg-workflow/effect";
// it needs `effect` and `@effect/workflow` (peer dependencies; versions in the README).
//
// How the pieces map:
// - a workflow execution is a client-driven execution of type `workflow.name`, started
//   with the Effect execution id as its idempotency key; its input is
//   {executionId, payload} (the payload encoded by the workflow's schema);
// - every process that provides the layer LISTENs on `workflow_execution_ready` and
//   takes ready executions with `workflow_claim_executions`: one replay turn per
//   execution at a time, fenced by its token, renewed while the replay runs;
// - `Activity.make` steps are journaled as activities keyed `activity/<name>/<attempt>`
//   (`workflow_schedule_activity`, with the turn's token); the replaying process claims
//   and runs one itself (`workflow_claim_activity`) and stores its encoded Exit as the
//   output; a completed one is never run again, a replay returns its stored Exit;
// - `DurableDeferred` = a `wait_signal` step + `workflow_signal`; `DurableClock` = a
//   `sleep` step; child workflows are `workflow` steps with a client-driven child;
// - the workflow's own Exit is stored as the output (`workflow_complete`), or, for a
//   failure, as `error.exit` (`workflow_fail`); interrupt is `workflow_cancel`.
// Every call runs in a span (`Effect.withSpan("PgWorkflowEngine.<operation>")`).

import * as Workflow from "@effect/workflow/Workflow";
import * as WorkflowEngine from "@effect/workflow/WorkflowEngine";
import * as Cause from "effect/Cause";
import * as Effect from "effect/Effect";
import * as Exit from "effect/Exit";
import * as Duration from "effect/Duration";
import * as Fiber from "effect/Fiber";
import * as FiberId from "effect/FiberId";
import * as Layer from "effect/Layer";
import * as Schema from "effect/Schema";
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import pg from "pg";
import type { Json } from "./json.js";
import { Listener } from "./listener.js";
import { WorkflowSql } from "./sql.js";

export interface PgWorkflowEngineOptions {
  connection: pg.PoolConfig | string;
  /** The extension's schema, when it is not on the search_path. */
  schema?: string;
  workerId?: string;
  /** How long a replay turn (and an activity this process runs) is held; renewed while it runs (default 60 s). */
  leaseMs?: number;
  /** Replays running at once in this process (default 8). */
  concurrency?: number;
  /** Looks for ready executions this often even without a notification (default 5 s). */
  pollIntervalMs?: number;
  /** The tenant an execution belongs to (pg_workflow's `tenant_id`), from its payload. */
  tenant?: (workflowName: string, payload: unknown) => string | undefined;
  /** Errors the engine recovered from (a non-deterministic replay among them). */
  onError?: (error: unknown) => void;
}

/**
 * What the journal checks an activity against on a replay, beside its name and attempt:
 * the shape of its result. Code that changed an activity's success or error schema under
 * the same name replays with a NonDeterministicReplayError instead of decoding an old
 * result into the new shape.
 */
const schemaFingerprint = (activity: { successSchema: Schema.Schema.Any; errorSchema: Schema.Schema.All }) =>
  createHash("sha256").update(`${String(activity.successSchema.ast)}|${String(activity.errorSchema.ast)}`).digest("hex").slice(0, 16);

/** An Exit whose values are already encoded (or plain JSON), as JSON. */
const ExitJson = Schema.Exit({ success: Schema.Unknown, failure: Schema.Unknown, defect: Schema.Defect });
const encodeExitJson = Schema.encodeSync(ExitJson);
const decodeExitJson = Schema.decodeUnknownSync(ExitJson);

/** A schema whose context is empty (the workflow's schemas need no services). */
type PlainSchema<A = any> = Schema.Schema<A, any, never>;

const workflowExitSchema = (workflow: Workflow.Any) =>
  Schema.Exit({ success: workflow.successSchema, failure: workflow.errorSchema, defect: Schema.Defect }) as unknown as PlainSchema<
    Exit.Exit<unknown, unknown>
  >;

interface Turn {
  id: string;
  token: number;
  /** The replay's instance (engine faults suspend it). */
  instance?: WorkflowEngine.WorkflowInstance["Type"];
}

interface Registered {
  workflow: Workflow.Any;
  execute: (
    payload: object,
    executionId: string,
  ) => Effect.Effect<unknown, unknown, WorkflowEngine.WorkflowInstance | WorkflowEngine.WorkflowEngine>;
}

/** The engine's durations as pg_workflow reads them. */
const millis = (ms: number) => `${Math.max(1, Math.ceil(ms))}ms`;

export const make = (options: PgWorkflowEngineOptions) =>
  Effect.gen(function* () {
    const config = typeof options.connection === "string" ? { connectionString: options.connection } : options.connection;
    const pool = new pg.Pool({ max: (options.concurrency ?? 8) + 2, ...config });
    pool.on("error", (error) => options.onError?.(error));
    yield* Effect.addFinalizer(() => Effect.promise(() => pool.end()));
    const sql = new WorkflowSql(pool, options.schema === undefined ? {} : { schema: options.schema });
    const prefix = options.schema ? `"${options.schema.replace(/"/g, '""')}".` : "";
    const workerId = options.workerId ?? `${hostname()}-${process.pid}-effect`;
    const leaseMs = options.leaseMs ?? 60_000;
    const registry = new Map<string, Registered>();
    /** Executions this process replays now, by Effect execution id. */
    const turns = new Map<string, Turn>();

    const db = <A>(what: string, f: () => Promise<A>, attributes: Record<string, unknown> = {}) =>
      Effect.tryPromise({ try: f, catch: (error) => error }).pipe(
        Effect.orDie,
        Effect.withSpan(`PgWorkflowEngine.${what}`, { attributes }),
      );

    const row = <T>(text: string, values: unknown[]) =>
      pool.query(text, values).then((r) => r.rows[0] as T | undefined);

    /** The pg_workflow execution of an Effect execution id, if it was started. */
    // By type and key whatever its tenant (the Effect execution id already names one
    // execution; workflow_find would need the tenant, which poll and interrupt are not given).
    const findExecution = (workflow: Workflow.Any | string, executionId: string) =>
      db(
        "find",
        () =>
          row<{ id: string }>(
            `SELECT id FROM ${prefix}workflow_execution WHERE workflow_type = $1 AND idempotency_key = $2 LIMIT 1`,
            [typeof workflow === "string" ? workflow : workflow.name, executionId],
          ).then((r) => r?.id),
        { executionId },
      );

    /**
     * What broke a replay from the engine's side (a lost turn, a non-deterministic
     * replay, a lost connection), by Effect execution id. Such an error must not become
     * the workflow's own failure (CaptureDefects would store it as the result): the
     * replay is suspended instead, the turn released, and the error reported.
     */
    const faults = new Map<string, unknown>();
    const guarded =
      (instance: WorkflowEngine.WorkflowInstance["Type"]) =>
      <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
        Effect.catchAllDefect(effect, (defect) =>
          Effect.suspend(() => {
            faults.set(instance.executionId, defect);
            instance.suspended = true;
            return Effect.interrupt;
          }),
        );

    const turnOf = (executionId: string): Turn => {
      const turn = turns.get(executionId);
      if (!turn) throw new Error(`execution ${executionId} is not being replayed in this process`);
      return turn;
    };

    /** The step under `key` in the execution's journal. */
    const step = (executionId: string, key: string) =>
      row<{ id: string; kind: string; status: string; output: Json }>(
        `SELECT id, kind, status, output FROM ${prefix}workflow_activity WHERE execution_id = $1 AND step_key = $2`,
        [executionId, key],
      );

    const resultOf = (workflow: Workflow.Any, status: { status: string; output: Json; error: { exit?: unknown } | null }) => {
      if (status.status === "completed") {
        return new Workflow.Complete({ exit: Schema.decodeUnknownSync(workflowExitSchema(workflow))(status.output) });
      }
      if ((status.status === "failed" || status.status === "cancelled") && status.error?.exit !== undefined) {
        return new Workflow.Complete({ exit: Schema.decodeUnknownSync(workflowExitSchema(workflow))(status.error.exit) });
      }
      if (status.status === "cancelled") {
        return new Workflow.Complete({ exit: Exit.interrupt(FiberId.none) as Exit.Exit<unknown, unknown> });
      }
      return undefined;
    };

    // The claim loop sleeps until woken (a notification, a registration, a free slot) or polled.
    let woken = false;
    let waiter: (() => void) | undefined;
    const wake = () => {
      woken = true;
      waiter?.();
    };

    const engine: WorkflowEngine.WorkflowEngine["Type"] = WorkflowEngine.makeUnsafe({
      register: (workflow, execute) =>
        Effect.sync(() => {
          registry.set(workflow.name, { workflow, execute });
          wake();
        }),

      execute: (workflow, opts) =>
        Effect.gen(function* () {
          const payload = yield* Effect.orDie(Schema.encode(workflow.payloadSchema as unknown as PlainSchema)(opts.payload));
          const input = { executionId: opts.executionId, payload } as Json;
          let id: string;
          if (opts.parent) {
            // A child: a `workflow` step of the parent, whose end makes the parent ready.
            const parent = turnOf(opts.parent.executionId);
            yield* guarded(opts.parent)(db("startChild", () =>
              sql.scheduleActivity(parent.id, `workflow/${workflow.name}/${opts.executionId}`, null, input, {
                workflow: workflow.name,
                client_driven: true,
                idempotency_key: opts.executionId,
                lease_token: parent.token,
              }),
            ));
            id = (yield* findExecution(workflow, opts.executionId))!;
          } else {
            const tenant = options.tenant?.(workflow.name, payload);
            id = yield* db("start", () =>
              sql.start(workflow.name, input, {
                idempotencyKey: opts.executionId,
                options: tenant === undefined ? { client_driven: true } : { client_driven: true, tenant_id: tenant },
              }),
            );
          }
          wake();
          if (opts.discard) return undefined as never;
          const status = yield* db("status", () => sql.status(id));
          return (resultOf(workflow, status as never) ?? new Workflow.Suspended({})) as never;
        }),

      poll: (workflow, executionId) =>
        Effect.gen(function* () {
          const id = yield* findExecution(workflow, executionId);
          if (!id) return undefined;
          return resultOf(workflow, (yield* db("status", () => sql.status(id))) as never);
        }),

      interrupt: (workflow, executionId) =>
        Effect.gen(function* () {
          const id = yield* findExecution(workflow, executionId);
          if (id) yield* db("interrupt", () => sql.cancel(id, "interrupted"), { executionId });
        }),

      resume: (workflow, executionId) =>
        Effect.gen(function* () {
          const id = yield* findExecution(workflow, executionId);
          if (!id) return;
          const status = yield* db("status", () => sql.status(id));
          if (status.status === "failed" || status.status === "cancelled") yield* db("resume", () => sql.retry(id));
        }),

      activityExecute: (activity, attempt) =>
        Effect.flatMap(WorkflowEngine.WorkflowInstance, (instance) =>
          guarded(instance)(activityExecute(instance, activity, attempt)),
        ),

      deferredResult: (deferred) =>
        Effect.flatMap(WorkflowEngine.WorkflowInstance, (instance) => guarded(instance)(deferredResult(instance, deferred))),

      deferredDone: (options) =>
        Effect.gen(function* () {
          const id = yield* findExecution(options.workflowName, options.executionId);
          if (!id) return yield* Effect.dieMessage(`no execution ${options.executionId} of ${options.workflowName}`);
          yield* db(
            "deferredDone",
            () => sql.signal(id, options.deferredName, encodeExitJson(options.exit) as Json, options.deferredName),
            { executionId: options.executionId, deferred: options.deferredName },
          );
        }),

      scheduleClock: (_workflow, options) =>
        Effect.suspend(() => {
          const turn = turnOf(options.executionId);
          const schedule = db("scheduleClock", () =>
            sql.scheduleActivity(turn.id, `deferred/${options.clock.deferred.name}`, null, {}, {
              sleep: millis(Duration.toMillis(options.clock.duration)),
              lease_token: turn.token,
            }),
          );
          const instance = turn.instance;
          return (instance ? guarded(instance)(schedule) : schedule).pipe(Effect.asVoid);
        }),
    });

    function activityExecute(
      instance: WorkflowEngine.WorkflowInstance["Type"],
      activity: Parameters<WorkflowEngine.Encoded["activityExecute"]>[0],
      attempt: number,
    ) {
        return Effect.gen(function* () {
          const turn = turnOf(instance.executionId);
          const key = `activity/${activity.name}/${attempt}`;
          const activityId = yield* db(
            "scheduleActivity",
            () =>
              sql.scheduleActivity(turn.id, key, activity.name, { attempt, schema: schemaFingerprint(activity) }, {
                lease_token: turn.token,
                // A process that dies running it: the lease runs out, it is retried, for ever.
                retry: { max_attempts: 0, initial_interval: "100ms", max_interval: "10s" },
              }),
            { executionId: instance.executionId, activity: activity.name, attempt },
          );
          const journaled = yield* db("readActivity", () => step(turn.id, key));
          if (journaled?.status === "completed") {
            return new Workflow.Complete({ exit: decodeExitJson(journaled.output) });
          }
          const claimed = yield* db("claimActivity", () => sql.claimActivity(activityId, workerId, leaseMs));
          if (!claimed) return new Workflow.Suspended({}); // another process runs it, or its retry is not due
          const activityInstance = WorkflowEngine.WorkflowInstance.initial(instance.workflow, instance.executionId);
          activityInstance.interrupted = instance.interrupted;
          const heartbeat = yield* Effect.forkScoped(
            Effect.sleep(leaseMs / 3).pipe(
              Effect.zipRight(db("heartbeat", () => sql.heartbeat(activityId, { attempt: claimed.attempt })).pipe(Effect.ignore)),
              Effect.forever,
            ),
          );
          const result = yield* activity.executeEncoded.pipe(
            Workflow.intoResult,
            Effect.provideService(WorkflowEngine.WorkflowInstance, activityInstance),
          );
          yield* Fiber.interrupt(heartbeat);
          if (result._tag === "Suspended") return result;
          yield* db("completeActivity", () =>
            sql.completeActivity(activityId, encodeExitJson(result.exit) as Json, claimed.attempt),
          );
          return result;
        }).pipe(Effect.scoped);
    }

    function deferredResult(
      instance: WorkflowEngine.WorkflowInstance["Type"],
      deferred: Parameters<WorkflowEngine.Encoded["deferredResult"]>[0],
    ) {
      return Effect.gen(function* () {
        const turn = turnOf(instance.executionId);
        const key = `deferred/${deferred.name}`;
        let journaled = yield* db("readDeferred", () => step(turn.id, key));
        if (!journaled) {
          yield* db("waitDeferred", () =>
            sql.scheduleActivity(turn.id, key, null, {}, { wait_signal: deferred.name, lease_token: turn.token }),
          );
          journaled = yield* db("readDeferred", () => step(turn.id, key));
        }
        if (journaled?.status !== "completed") return undefined;
        // A DurableClock's sleep ends with no value; a signal carries the encoded Exit.
        return journaled.kind === "sleep" ? Exit.void : decodeExitJson(journaled.output);
      });
    }

    /** One replay turn of a claimed execution. */
    const replay = (claimed: { execution_id: string; workflow_type: string; input: Json; lease_token: number }) =>
      Effect.gen(function* () {
        const entry = registry.get(claimed.workflow_type);
        const input = claimed.input as { executionId: string; payload: unknown };
        const turn: Turn = { id: claimed.execution_id, token: claimed.lease_token };
        if (!entry) {
          yield* db("release", () => sql.releaseExecution(turn.id, turn.token));
          return;
        }
        const { workflow } = entry;
        turns.set(input.executionId, turn);
        const renew = yield* Effect.forkScoped(
          Effect.sleep(leaseMs / 3).pipe(
            Effect.zipRight(db("renew", () => sql.renewExecution(turn.id, turn.token, leaseMs))),
            Effect.forever,
          ),
        );
        const payload = yield* Effect.orDie(Schema.decodeUnknown(workflow.payloadSchema as unknown as PlainSchema)(input.payload));
        const instance = WorkflowEngine.WorkflowInstance.initial(workflow, input.executionId);
        turn.instance = instance;
        faults.delete(input.executionId);
        const outcome = yield* entry.execute(payload, input.executionId).pipe(
          Workflow.intoResult,
          Effect.provideService(WorkflowEngine.WorkflowInstance, instance),
          Effect.provideService(WorkflowEngine.WorkflowEngine, engine),
          Effect.exit,
        );
        yield* Fiber.interrupt(renew);
        turns.delete(input.executionId);
        const fault = faults.get(input.executionId);
        faults.delete(input.executionId);
        if (fault !== undefined || Exit.isFailure(outcome) || outcome.value._tag === "Suspended") {
          // Suspended, or the replay broke on the engine's side (a lost turn, a
          // non-deterministic replay, a lost connection): the turn ends and the run is
          // left as it is; what it waits for (or a fixed deploy) makes it ready again.
          if (fault !== undefined) options.onError?.(fault);
          else if (Exit.isFailure(outcome)) options.onError?.(Cause.squash(outcome.cause));
          yield* db("release", () => sql.releaseExecution(turn.id, turn.token)).pipe(Effect.ignore);
          return;
        }
        const exit = outcome.value.exit;
        const encoded = Schema.encodeSync(workflowExitSchema(workflow))(exit as never) as Json;
        if (Exit.isSuccess(exit)) {
          yield* db("complete", () => sql.complete(turn.id, encoded, { leaseToken: turn.token }));
        } else {
          const message = Cause.pretty(exit.cause).split("\n")[0] ?? "failed";
          yield* db("fail", () =>
            sql.fail(turn.id, { type: "WorkflowFailure", message, exit: encoded }, { leaseToken: turn.token }),
          );
        }
      }).pipe(
        Effect.scoped,
        Effect.withSpan("PgWorkflowEngine.replay", { attributes: { executionId: claimed.execution_id } }),
        Effect.catchAllCause((cause) => Effect.sync(() => options.onError?.(Cause.squash(cause)))),
      );

    // The claim loop: ready executions of the registered types, as many as there are free slots.
    const concurrency = options.concurrency ?? 8;
    const running = new Set<string>();
    const listener = new Listener({
      connection: options.connection,
      channels: ["workflow_execution_ready"],
      onNotification: () => wake(),
      onConnected: () => wake(),
      ...(options.onError ? { onError: options.onError } : {}),
    });
    yield* Effect.addFinalizer(() => Effect.promise(() => listener.close()));
    yield* Effect.promise(() => listener.ready());
    const loop = Effect.gen(function* () {
      for (;;) {
        const free = concurrency - running.size;
        const types = [...registry.keys()];
        let claimed: { execution_id: string; workflow_type: string; input: Json; lease_token: number }[] = [];
        if (free > 0 && types.length > 0) {
          claimed = yield* Effect.tryPromise(() =>
            sql.claimExecutions({ workflowTypes: types, workerId, maxCount: free, lease: leaseMs }),
          ).pipe(Effect.catchAll((error) => Effect.sync(() => (options.onError?.(error), []))));
        }
        for (const c of claimed) {
          running.add(c.execution_id);
          yield* Effect.forkDaemon(replay(c).pipe(Effect.ensuring(Effect.sync(() => (running.delete(c.execution_id), wake())))));
        }
        if (claimed.length > 0 && claimed.length === free) continue;
        if (!woken) {
          yield* Effect.async<void>((resume) => {
            const timer = setTimeout(() => resume(Effect.void), options.pollIntervalMs ?? 5_000);
            waiter = () => {
              clearTimeout(timer);
              waiter = undefined;
              resume(Effect.void);
            };
            return Effect.sync(() => clearTimeout(timer));
          });
        }
        woken = false;
      }
    });
    yield* Effect.forkScoped(loop);
    return engine;
  });

/** The WorkflowEngine layer: provide it to `Workflow.toLayer` layers and callers of `Workflow.execute`. */
export const layer = (options: PgWorkflowEngineOptions): Layer.Layer<WorkflowEngine.WorkflowEngine> =>
  Layer.scoped(WorkflowEngine.WorkflowEngine, make(options));
