// The Worker: claims activities of one queue and runs their handlers.
//
// One LISTEN connection wakes it when work appears in its queue (and a slow poll covers
// a lost notification); claims take as many activities as there are free slots
// (`concurrency`); each running activity heartbeats at a fraction of its lease, and its
// AbortSignal fires when the execution is cancelled or the claim went stale; results go
// back in batches (one call and one commit per batch); failures carry {type, message,
// stack} and whether a retry may help. Connection loss and Postgres restarts are waited
// out. `stop()` (or SIGTERM with `handleSignals`) stops claiming, lets running handlers
// finish for `shutdownGraceMs`, then aborts them and hands their activities back as
// retryable failures. Without the preload, it runs `workflow_dispatch()` on an interval
// so timers and retries still move.

import { hostname } from "node:os";
import pg from "pg";
import { ConflictError, PermissionDeniedError, PgWorkflowError, fromDriverError } from "./errors.js";
import type { Json } from "./json.js";
import { Listener } from "./listener.js";
import { WorkflowSql } from "./sql.js";
import type { ClaimedActivity, ErrorJson } from "./types.js";

/** What a handler is told about the activity it runs. */
export interface ActivityContext {
  activityId: string;
  executionId: string;
  workflowType: string;
  stepKey: string;
  activityType: string;
  attempt: number;
  /** Fires when the execution was cancelled, the claim went stale, or the worker shuts down. */
  signal: AbortSignal;
  /** Records progress details now (heartbeats are also sent automatically). */
  heartbeat(details?: Json): Promise<void>;
}

/** A handler: the activity's input in, its output (JSON) out; `undefined` completes it with null. */
export type ActivityHandler = (input: any, context: ActivityContext) => Promise<Json | void> | Json | void;

/** Throw this (or a subclass) to say what failed: `type` is matched by a retry policy's non_retryable. */
export class ActivityFailure extends Error {
  readonly type: string;
  readonly retryable: boolean;
  readonly details: Json | undefined;
  constructor(message: string, options: { type?: string; retryable?: boolean; details?: Json; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.type = options.type ?? new.target.name;
    this.retryable = options.retryable ?? true;
    this.details = options.details;
  }
}

/** A failure no retry can fix: the step fails at once. */
export class NonRetryableFailure extends ActivityFailure {
  constructor(message: string, options: { type?: string; details?: Json; cause?: unknown } = {}) {
    super(message, { ...options, retryable: false });
  }
}

export interface WorkerOptions {
  connection: pg.PoolConfig | string;
  schema?: string;
  /** The queue to work (default "default"). */
  queue?: string;
  /** A handler per activity type; only these types are claimed. */
  handlers: Record<string, ActivityHandler>;
  /** Most activities running at once (default 10). */
  concurrency?: number;
  /** Lease per claim in ms (default 60 s); heartbeats extend it. */
  leaseMs?: number;
  /** Heartbeat every leaseMs × this (default 1/3). */
  heartbeatFraction?: number;
  workerId?: string;
  /** Completions are sent together after at most this long (default 5 ms) ... */
  completionBatchMs?: number;
  /** ... or once this many are waiting (default 100). */
  completionBatchSize?: number;
  /**
   * Calls workflow_dispatch() this often (ms). "auto" (default): every second when the
   * server runs without the preload (needs the admin part), never with it; false: never.
   */
  dispatchIntervalMs?: number | "auto" | false;
  /** Looks for work this often even without a notification (default 5 s). */
  pollIntervalMs?: number;
  /**
   * With free slots, wait for work in the claim itself (workflow_claim_wait) for up to
   * this long (ms, default 100, at most 60000) instead of waiting for a notification.
   * "auto" (default): when the server preloads pg_workflow, whose commits then wake one
   * waiting worker each (without the preload the call polls, so the worker LISTENs);
   * false: always LISTEN.
   */
  claimWaitMs?: number | "auto" | false;
  /** How long stop() lets running handlers finish (default 30 s). */
  shutdownGraceMs?: number;
  /** stop() on SIGTERM and SIGINT (default false). */
  handleSignals?: boolean;
  /** Errors the worker recovered from (connection loss, a stale claim, ...). */
  onError?: (error: unknown) => void;
}

interface Running {
  activity: ClaimedActivity;
  controller: AbortController;
  done: Promise<void>;
}

interface Completion {
  activity: ClaimedActivity;
  output: Json;
  resolve: () => void;
}

const leaseExpiresAt = (c: Completion) => new Date(c.activity.lease_expires_at).getTime();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function errorJson(error: unknown): { json: ErrorJson; retryable: boolean } {
  if (error instanceof ActivityFailure) {
    const json: ErrorJson = { type: error.type, message: error.message };
    if (error.stack) json.stack = error.stack;
    if (error.details !== undefined) json.details = error.details;
    return { json, retryable: error.retryable };
  }
  if (error instanceof Error) {
    const json: ErrorJson = { type: error.name || "Error", message: error.message };
    if (error.stack) json.stack = error.stack;
    return { json, retryable: true };
  }
  return { json: { type: "Error", message: String(error) }, retryable: true };
}

export class Worker {
  readonly workerId: string;
  readonly #options: WorkerOptions;
  readonly #pool: pg.Pool;
  readonly #sql: WorkflowSql;
  readonly #queue: string;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #running = new Map<string, Running>();
  #listener: Listener | undefined;
  #stopping = false;
  #loop: Promise<void> | undefined;
  #wake: () => void = () => {};
  #woken = false;
  #moreWork = true;
  /** Set when the worker waits for work in the claim (workflow_claim_wait), for this long. */
  #claimWaitMs: number | undefined;
  #pending: Completion[] = [];
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #dispatchTimer: ReturnType<typeof setInterval> | undefined;
  #signalHandler: (() => void) | undefined;
  #stopped!: () => void;
  readonly #whenStopped = new Promise<void>((resolve) => (this.#stopped = resolve));

  constructor(options: WorkerOptions) {
    this.#options = options;
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.#queue = options.queue ?? "default";
    this.#concurrency = options.concurrency ?? 10;
    this.#leaseMs = options.leaseMs ?? 60_000;
    const config = typeof options.connection === "string" ? { connectionString: options.connection } : options.connection;
    this.#pool = new pg.Pool({ max: 4, ...config });
    this.#pool.on("error", (error) => this.#report(error));
    this.#sql = new WorkflowSql(this.#pool, options.schema === undefined ? {} : { schema: options.schema });
  }

  /** Starts working; resolves once it listens (the loop runs until stop()). */
  async start(): Promise<void> {
    if (this.#loop) return;
    this.#listener = new Listener({
      connection: this.#options.connection,
      channels: ["workflow_activity_ready"],
      onNotification: (_channel, queue) => {
        if (queue === this.#queue) this.#signal(true);
      },
      onConnected: () => this.#signal(true),
      onError: (error) => this.#report(error),
    });
    await this.#listener.ready();
    const wait = this.#options.claimWaitMs ?? "auto";
    if (wait === "auto") this.#claimWaitMs = (await this.#sql.preloaded()) ? 100 : undefined;
    else if (wait !== false) this.#claimWaitMs = wait;
    await this.#startDispatching();
    if (this.#options.handleSignals) {
      this.#signalHandler = () => void this.stop();
      process.once("SIGTERM", this.#signalHandler);
      process.once("SIGINT", this.#signalHandler);
    }
    this.#loop = this.#run();
  }

  /** Resolves once stop() (called, or run by a signal) has finished. */
  whenStopped(): Promise<void> {
    return this.#whenStopped;
  }

  /** How many activities are running now. */
  get running(): number {
    return this.#running.size;
  }

  #report(error: unknown): void {
    this.#options.onError?.(fromDriverError(error));
  }

  /** Wakes the loop; `more`: there may be claimable work. */
  #signal(more: boolean): void {
    if (more) this.#moreWork = true;
    this.#woken = true;
    this.#wake();
  }

  async #startDispatching(): Promise<void> {
    let every = this.#options.dispatchIntervalMs ?? "auto";
    if (every === "auto") {
      try {
        // workflow_wake() says whether the server runs the background worker.
        every = (await this.#sql.wake()) ? false : 1000;
      } catch (error) {
        if (!(error instanceof PermissionDeniedError)) throw error;
        every = false; // a role with only the worker part cannot dispatch; someone else must
      }
    }
    if (every === false) return;
    this.#dispatchTimer = setInterval(() => {
      this.#sql.dispatch().catch((error) => this.#report(error));
    }, every);
  }

  async #run(): Promise<void> {
    const types = Object.keys(this.#options.handlers);
    let backoffMs = 100;
    while (!this.#stopping) {
      const free = this.#concurrency - this.#running.size;
      // Waiting in the claim, a free slot always asks: the call returns when work comes.
      const waitMs = this.#claimWaitMs;
      if (free > 0 && (this.#moreWork || waitMs !== undefined)) {
        this.#moreWork = false;
        let claimed: ClaimedActivity[];
        try {
          const request = {
            queue: this.#queue,
            workerId: this.workerId,
            maxCount: free,
            lease: this.#leaseMs,
            activityTypes: types,
          };
          claimed =
            waitMs === undefined ? await this.#sql.claim(request) : await this.#sql.claimWait({ ...request, timeout: waitMs });
          backoffMs = 100;
        } catch (error) {
          this.#report(error);
          this.#moreWork = true;
          await sleep(backoffMs);
          backoffMs = Math.min(backoffMs * 2, 5000);
          continue;
        }
        if (this.#stopping) {
          // Claimed while stopping: give them back at once.
          await Promise.all(claimed.map((a) => this.#giveBack(a)));
          break;
        }
        for (const activity of claimed) this.#execute(activity);
        if (claimed.length === free) this.#moreWork = true;
        continue;
      }
      if (!this.#woken) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            this.#moreWork = true;
            resolve();
          }, this.#options.pollIntervalMs ?? 5000);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      this.#woken = false;
    }
  }

  #execute(activity: ClaimedActivity): void {
    const controller = new AbortController();
    const handler = this.#options.handlers[activity.activity_type];
    const heartbeat = async (details?: Json) => {
      try {
        const cancelled = await this.#sql.heartbeat(activity.activity_id, {
          attempt: activity.attempt,
          ...(details === undefined ? {} : { details }),
        });
        if (cancelled) controller.abort(new ActivityFailure("the execution was cancelled", { type: "Cancelled" }));
      } catch (error) {
        if (error instanceof ConflictError) controller.abort(error); // the claim is stale: stop
        else this.#report(error);
      }
    };
    const context: ActivityContext = {
      activityId: activity.activity_id,
      executionId: activity.execution_id,
      workflowType: activity.workflow_type,
      stepKey: activity.step_key,
      activityType: activity.activity_type,
      attempt: activity.attempt,
      signal: controller.signal,
      heartbeat,
    };
    const every = Math.max(50, this.#leaseMs * (this.#options.heartbeatFraction ?? 1 / 3));
    const timer = setInterval(() => void heartbeat(), every);
    const done = (async () => {
      try {
        if (!handler) throw new ActivityFailure(`no handler for ${activity.activity_type}`, { retryable: false });
        const output = await handler(activity.input, context);
        clearInterval(timer);
        if (controller.signal.aborted) throw controller.signal.reason;
        await this.#complete(activity, output === undefined ? null : (output as Json));
      } catch (error) {
        clearInterval(timer);
        await this.#fail(activity, controller.signal.aborted ? controller.signal.reason ?? error : error);
      } finally {
        this.#running.delete(activity.activity_id);
        this.#signal(false);
      }
    })();
    this.#running.set(activity.activity_id, { activity, controller, done });
  }

  #complete(activity: ClaimedActivity, output: Json): Promise<void> {
    return new Promise((resolve) => {
      this.#pending.push({ activity, output, resolve });
      // Waiting for more to join the batch is pointless once every running handler has
      // finished (a backlog drained 8 at a time waited the whole timer each round).
      const full = Math.min(this.#options.completionBatchSize ?? 100, this.#running.size);
      if (this.#pending.length >= full) this.#flush();
      else this.#flushTimer ??= setTimeout(() => this.#flush(), this.#options.completionBatchMs ?? 5);
    });
  }

  #flush(): void {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    this.#flushing = this.#flushing.then(() => this.#send(batch));
  }

  /** Sends a batch; a stale claim in it (which rolls the whole call back) sends the rest one by one. */
  async #send(batch: Completion[]): Promise<void> {
    for (;;) {
      try {
        await this.#sql.completeActivities(
          batch.map(({ activity, output }) => ({ activityId: activity.activity_id, output, attempt: activity.attempt })),
        );
        batch.forEach((c) => c.resolve());
        return;
      } catch (error) {
        // Refused, by the server or before the call: find which one, alone.
        if (error instanceof PgWorkflowError) {
          if (batch.length === 1) {
            const c = batch[0]!;
            this.#report(error);
            // A stale claim: another attempt owns it now. Anything else was refused in the
            // output itself (not JSON, over workflow.max_payload_bytes): the same output
            // would be refused again, so the attempt fails with that error, for good.
            if (!(error instanceof ConflictError)) {
              await this.#fail(c.activity, new NonRetryableFailure(error.message, { type: error.name, cause: error }));
            }
            c.resolve();
            return;
          }
          for (const c of batch) await this.#send([c]);
          return;
        }
        // The connection is gone (a restart?): retry while a lease can still be valid.
        this.#report(error);
        const live = batch.filter((c) => leaseExpiresAt(c) > Date.now());
        batch.filter((c) => leaseExpiresAt(c) <= Date.now()).forEach((c) => c.resolve());
        if (live.length === 0) return;
        batch = live;
        await sleep(250);
      }
    }
  }

  async #fail(activity: ClaimedActivity, error: unknown): Promise<void> {
    const { json, retryable } = errorJson(error);
    const until = new Date(activity.lease_expires_at).getTime();
    for (;;) {
      try {
        await this.#sql.failActivity(activity.activity_id, json, { attempt: activity.attempt, retryable });
        return;
      } catch (e) {
        this.#report(e);
        if (e instanceof PgWorkflowError && e.sqlstate !== undefined) return; // stale: nothing to hand back
        if (Date.now() >= until) return; // the lease ran out: the attempt comes back anyway
        await sleep(250);
      }
    }
  }

  async #giveBack(activity: ClaimedActivity): Promise<void> {
    await this.#fail(activity, new ActivityFailure("the worker is shutting down", { type: "WorkerShutdown" }));
  }

  /** Stops claiming, lets running handlers finish (shutdownGraceMs), then aborts and hands back the rest. */
  async stop(): Promise<void> {
    if (this.#stopping) return this.#loop;
    this.#stopping = true;
    if (this.#signalHandler) {
      process.off("SIGTERM", this.#signalHandler);
      process.off("SIGINT", this.#signalHandler);
    }
    if (this.#dispatchTimer) clearInterval(this.#dispatchTimer);
    this.#signal(false);
    await this.#loop;
    const all = () => Promise.all([...this.#running.values()].map((r) => r.done));
    const grace = this.#options.shutdownGraceMs ?? 30_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([all(), new Promise((resolve) => (timer = setTimeout(resolve, grace)))]);
    clearTimeout(timer);
    for (const r of this.#running.values()) {
      r.controller.abort(new ActivityFailure("the worker is shutting down", { type: "WorkerShutdown" }));
    }
    await all();
    this.#flush();
    await this.#flushing;
    await this.#listener?.close();
    await this.#pool.end();
    this.#stopped();
  }
}
