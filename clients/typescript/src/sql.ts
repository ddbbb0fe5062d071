// Typed wrappers for every SQL function of pg_workflow (README: SQL API). Each is one
// statement on the connection (or pool) it is given, so it runs in that connection's
// transaction. Optional arguments left out take the server's defaults (named notation);
// JSON is serialized explicitly; `undefined` where a value is needed is refused before
// the call (InvalidArgumentError), never sent as NULL.

import { fromDriverError } from "./errors.js";
import { jsonParam, required, type Json } from "./json.js";
import type {
  ClaimedActivity,
  ClaimedExecution,
  CronSchedule,
  CronScheduleOptions,
  Duration,
  ErrorJson,
  ExecutionStatus,
  GrantPart,
  ListedExecution,
  ListFilter,
  QueueConfig,
  QueueStats,
  ScheduleOptions,
  WaitingExecution,
  StartOptions,
  WorkflowDefinition,
} from "./types.js";

/** Anything with node-postgres' `query`: a Pool, a Client, a PoolClient. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

type Arg = readonly [name: string, value: unknown, cast: string];

/** An interval parameter: milliseconds, or a duration string pg_workflow reads. */
export function interval(field: string, d: Duration): string {
  if (typeof d === "number") {
    if (!Number.isFinite(d) || d < 0) throw new RangeError(`${field} must be a non-negative number of milliseconds`);
    return `${d} milliseconds`;
  }
  return required(field, d);
}

/** What a worker asks workflow_claim (and workflow_claim_wait) for. */
export interface ClaimOptions {
  queue: string;
  workerId: string;
  maxCount?: number;
  lease?: Duration;
  activityTypes?: string[];
}

function claimArgs(options: ClaimOptions): Arg[] {
  return [
    ["queue", required("queue", options.queue), "text"],
    ["worker_id", required("workerId", options.workerId), "text"],
    ["max_count", options.maxCount, "int"],
    ["lease", options.lease === undefined ? undefined : interval("lease", options.lease), "interval"],
    ["activity_types", options.activityTypes, "text[]"],
  ];
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The SQL functions, on one connection or pool, in the extension's schema (or the search_path). */
export class WorkflowSql {
  readonly #db: Queryable;
  readonly #prefix: string;

  constructor(db: Queryable, options: { schema?: string } = {}) {
    this.#db = db;
    this.#prefix = options.schema ? `${quoteIdent(options.schema)}.` : "";
  }

  /** Calls `fn` with the given arguments (named; `undefined` ones left out). */
  async #call(fn: string, args: readonly Arg[], shape: "value" | "rows" = "value"): Promise<any> {
    const given = args.filter(([, value]) => value !== undefined);
    const list = given.map(([name, , cast], i) => `${name} => $${i + 1}::${cast}`).join(", ");
    const text =
      shape === "rows" ? `SELECT * FROM ${this.#prefix}${fn}(${list})` : `SELECT ${this.#prefix}${fn}(${list}) AS value`;
    try {
      const result = await this.#db.query(text, given.map(([, value]) => value));
      return shape === "rows" ? result.rows : result.rows[0]?.value;
    } catch (error) {
      throw fromDriverError(error);
    }
  }

  // A procedure (CALL): its INOUT result column.
  async #procedure(fn: string, out: string, args: readonly Arg[]): Promise<unknown> {
    const given = args.filter(([, value]) => value !== undefined);
    const list = given.map(([name, , cast], i) => `${name} => $${i + 1}::${cast}`).join(", ");
    try {
      const result = await this.#db.query(`CALL ${this.#prefix}${fn}(${list})`, given.map(([, value]) => value));
      return result.rows[0]?.[out];
    } catch (error) {
      throw fromDriverError(error);
    }
  }

  /** workflow_define: stores a declared workflow; its version. */
  async define(name: string, definition: WorkflowDefinition): Promise<number> {
    return this.#call("workflow_define", [
      ["name", required("name", name), "text"],
      ["definition", jsonParam("definition", definition), "jsonb"],
    ]);
  }

  /** workflow_start: the execution's id (the existing one for a repeated idempotency key). */
  async start(
    workflowType: string,
    input: Json = {},
    options: { idempotencyKey?: string; options?: StartOptions } = {},
  ): Promise<string> {
    return this.#call("workflow_start", [
      ["workflow_type", required("workflowType", workflowType), "text"],
      ["input", jsonParam("input", input), "jsonb"],
      ["idempotency_key", options.idempotencyKey, "text"],
      ["options", options.options === undefined ? undefined : jsonParam("options", options.options), "jsonb"],
    ]);
  }

  /** workflow_claim: up to `maxCount` due activities of a queue, leased to `workerId`. */
  async claim(options: ClaimOptions): Promise<ClaimedActivity[]> {
    return this.#call("workflow_claim", claimArgs(options), "rows");
  }

  /**
   * workflow_claim_wait: like claim, but when nothing is claimable the call waits up to
   * `timeout` (default 1 s, at most 60 s) for a commit that makes work claimable.
   */
  async claimWait(options: ClaimOptions & { timeout?: Duration }): Promise<ClaimedActivity[]> {
    return this.#call(
      "workflow_claim_wait",
      [
        ...claimArgs(options),
        ["timeout", options.timeout === undefined ? undefined : interval("timeout", options.timeout), "interval"],
      ],
      "rows",
    );
  }

  /** Whether the server preloads pg_workflow (then claimWait is woken by commits). */
  async preloaded(): Promise<boolean> {
    try {
      const { rows } = await this.#db.query("SELECT current_setting('workflow.preloaded', true) = 'on' AS on");
      return rows[0]?.on === true;
    } catch (error) {
      throw fromDriverError(error);
    }
  }

  /** workflow_complete_activity: false if it was already completed or cancelled. */
  async completeActivity(activityId: string, output: Json, attempt?: number): Promise<boolean> {
    return this.#call("workflow_complete_activity", [
      ["activity_id", required("activityId", activityId), "uuid"],
      ["output", jsonParam("output", output), "jsonb"],
      ["attempt", attempt, "int"],
    ]);
  }

  /** workflow_complete_activities: a batch in one call and one commit. */
  async completeActivities(items: { activityId: string; output: Json; attempt: number }[]): Promise<boolean[]> {
    return this.#call("workflow_complete_activities", [
      ["activity_ids", items.map((it, i) => required(`items[${i}].activityId`, it.activityId)), "uuid[]"],
      ["outputs", items.map((it, i) => jsonParam(`items[${i}].output`, it.output)), "jsonb[]"],
      ["attempts", items.map((it, i) => required(`items[${i}].attempt`, it.attempt)), "int[]"],
    ]);
  }

  /** workflow_fail_activity: 'retrying', 'failed', or 'cancelled'. */
  async failActivity(
    activityId: string,
    error: ErrorJson | string,
    options: { attempt?: number; retryable?: boolean } = {},
  ): Promise<"retrying" | "failed" | "cancelled"> {
    return this.#call("workflow_fail_activity", [
      ["activity_id", required("activityId", activityId), "uuid"],
      ["error", jsonParam("error", error), "jsonb"],
      ["attempt", options.attempt, "int"],
      ["retryable", options.retryable, "boolean"],
    ]);
  }

  /** workflow_heartbeat: extends the lease; true when cancellation was requested. */
  async heartbeat(activityId: string, options: { attempt?: number; details?: Json } = {}): Promise<boolean> {
    return this.#call("workflow_heartbeat", [
      ["activity_id", required("activityId", activityId), "uuid"],
      ["attempt", options.attempt, "int"],
      ["details", options.details === undefined ? undefined : jsonParam("details", options.details), "jsonb"],
    ]);
  }

  /** workflow_signal: the signal's id (the same for a repeated idempotency key). */
  async signal(executionId: string, name: string, payload: Json = null, idempotencyKey?: string): Promise<string> {
    return this.#call("workflow_signal", [
      ["execution_id", required("executionId", executionId), "uuid"],
      ["name", required("name", name), "text"],
      ["payload", jsonParam("payload", payload), "jsonb"],
      ["idempotency_key", idempotencyKey, "text"],
    ]);
  }

  /** workflow_cancel: false if it had already finished. */
  async cancel(executionId: string, reason?: string): Promise<boolean> {
    return this.#call("workflow_cancel", [
      ["execution_id", required("executionId", executionId), "uuid"],
      ["reason", reason, "text"],
    ]);
  }

  /** workflow_retry: resumes a failed or cancelled execution; false if it was neither. */
  async retry(executionId: string): Promise<boolean> {
    return this.#call("workflow_retry", [["execution_id", required("executionId", executionId), "uuid"]]);
  }

  /** workflow_schedule_activity (client-driven executions): the activity's id, idempotent per step key. */
  async scheduleActivity(
    executionId: string,
    stepKey: string,
    activityType: string | null,
    input: Json = {},
    options: ScheduleOptions = {},
  ): Promise<string> {
    return this.#call("workflow_schedule_activity", [
      ["execution_id", required("executionId", executionId), "uuid"],
      ["step_key", required("stepKey", stepKey), "text"],
      ["activity_type", required("activityType", activityType), "text"],
      ["input", jsonParam("input", input), "jsonb"],
      ["options", jsonParam("options", options), "jsonb"],
    ]);
  }

  /** workflow_complete (client-driven executions): false if it already ended that way; fenced by a replay turn's token. */
  async complete(executionId: string, output: Json = null, options: { leaseToken?: number } = {}): Promise<boolean> {
    return this.#call("workflow_complete", [
      ["execution_id", required("executionId", executionId), "uuid"],
      ["output", jsonParam("output", output), "jsonb"],
      ["lease_token", options.leaseToken, "int"],
    ]);
  }

  /** workflow_fail (client-driven executions): false if it already ended that way; fenced by a replay turn's token. */
  async fail(executionId: string, error: ErrorJson | string, options: { leaseToken?: number } = {}): Promise<boolean> {
    return this.#call("workflow_fail", [
      ["execution_id", required("executionId", executionId), "uuid"],
      ["error", jsonParam("error", error), "jsonb"],
      ["lease_token", options.leaseToken, "int"],
    ]);
  }

  /** workflow_find: the execution started with this idempotency key, or null. */
  async find(workflowType: string, idempotencyKey: string, tenantId?: string): Promise<string | null> {
    return this.#call("workflow_find", [
      ["workflow_type", required("workflowType", workflowType), "text"],
      ["idempotency_key", required("idempotencyKey", idempotencyKey), "text"],
      ["tenant_id", tenantId, "text"],
    ]);
  }

  /** workflow_claim_executions: client-driven executions waiting for a replay, one turn each. */
  async claimExecutions(options: {
    workflowTypes: string[];
    workerId: string;
    maxCount?: number;
    lease?: Duration;
  }): Promise<ClaimedExecution[]> {
    return this.#call(
      "workflow_claim_executions",
      [
        ["workflow_types", required("workflowTypes", options.workflowTypes), "text[]"],
        ["worker_id", required("workerId", options.workerId), "text"],
        ["max_count", options.maxCount, "int"],
        ["lease", options.lease === undefined ? undefined : interval("lease", options.lease), "interval"],
      ],
      "rows",
    );
  }

  /** workflow_renew_execution: false once the turn is over. */
  async renewExecution(executionId: string, leaseToken: number, lease?: Duration): Promise<boolean> {
    return this.#call("workflow_renew_execution", [
      ["execution_id", required("executionId", executionId), "uuid"],
      ["lease_token", required("leaseToken", leaseToken), "int"],
      ["lease", lease === undefined ? undefined : interval("lease", lease), "interval"],
    ]);
  }

  /** workflow_release_execution: ends a turn; false if it was already over. */
  async releaseExecution(executionId: string, leaseToken: number): Promise<boolean> {
    return this.#call("workflow_release_execution", [
      ["execution_id", required("executionId", executionId), "uuid"],
      ["lease_token", required("leaseToken", leaseToken), "int"],
    ]);
  }

  /** workflow_claim_activity: one activity by id, if it is claimable now. */
  async claimActivity(activityId: string, workerId: string, lease?: Duration): Promise<ClaimedActivity | undefined> {
    const rows: ClaimedActivity[] = await this.#call(
      "workflow_claim_activity",
      [
        ["id", required("activityId", activityId), "uuid"],
        ["worker_id", required("workerId", workerId), "text"],
        ["lease", lease === undefined ? undefined : interval("lease", lease), "interval"],
      ],
      "rows",
    );
    return rows[0];
  }

  /** workflow_status: the execution and every step. */
  async status(executionId: string): Promise<ExecutionStatus> {
    return this.#call("workflow_status", [["execution_id", required("executionId", executionId), "uuid"]]);
  }

  /** workflow_await: blocks this connection until the execution finishes or `timeout` passes. */
  async awaitOnServer(executionId: string, timeout: Duration): Promise<ExecutionStatus> {
    return this.#call("workflow_await", [
      ["execution_id", required("executionId", executionId), "uuid"],
      ["timeout", interval("timeout", timeout), "interval"],
    ]);
  }

  /** workflow_dispatch: one pass of due work; how many items moved. */
  async dispatch(maxItems?: number): Promise<number> {
    return this.#call("workflow_dispatch", [["max_items", maxItems, "int"]]);
  }

  /** workflow_wake: wakes the dispatcher at commit; false without the preload. */
  async wake(): Promise<boolean> {
    return this.#call("workflow_wake", []);
  }

  /** workflow_grant: gives a role one of the four parts. */
  async grant(role: string, part: GrantPart): Promise<void> {
    await this.#call("workflow_grant", [
      ["role", quoteIdent(required("role", role)), "regrole"],
      ["part", required("part", part), "text"],
    ]);
  }

  /** workflow_revoke: takes every part back. */
  async revoke(role: string): Promise<void> {
    await this.#call("workflow_revoke", [["role", quoteIdent(required("role", role)), "regrole"]]);
  }

  /** workflow_bind_tenant: binds a role (and every role inheriting its rights) to a tenant. */
  async bindTenant(role: string, tenantId: string): Promise<void> {
    await this.#call("workflow_bind_tenant", [
      ["role", required("role", role), "text"],
      ["tenant_id", required("tenantId", tenantId), "text"],
    ]);
  }

  /** workflow_unbind_tenant: false if the role was not bound. */
  async unbindTenant(role: string): Promise<boolean> {
    return this.#call("workflow_unbind_tenant", [["role", required("role", role), "text"]]);
  }

  /** workflow_current_tenant: the tenant the current role acts for; null for every tenant. */
  async currentTenant(): Promise<string | null> {
    return this.#call("workflow_current_tenant", []);
  }

  /** workflow_queue_stats: per queue, depth and the last minute's and hour's outcomes. */
  async queueStats(): Promise<QueueStats[]> {
    return this.#call("workflow_queue_stats", [], "rows");
  }

  /** workflow_execution_stats: per workflow type and version, counts, durations and steps since `since`. */
  async executionStats(since?: Date): Promise<Json> {
    return this.#call("workflow_execution_stats", [["since", since, "timestamptz"]]);
  }

  /** workflow_list: executions matching `filter`, newest first; `after` = the last id of the previous page. */
  async list(filter: ListFilter = {}, options: { pageSize?: number; after?: string } = {}): Promise<ListedExecution[]> {
    return this.#call(
      "workflow_list",
      [
        ["filter", jsonParam("filter", filter), "jsonb"],
        ["page_size", options.pageSize, "int"],
        ["after", options.after, "uuid"],
      ],
      "rows",
    );
  }

  /** workflow_waiting: executions waiting for a signal, longest waiting first (an approval inbox). */
  async waiting(signalName: string, maxCount?: number): Promise<WaitingExecution[]> {
    return this.#call(
      "workflow_waiting",
      [
        ["signal_name", required("signalName", signalName), "text"],
        ["max_count", maxCount, "int"],
      ],
      "rows",
    );
  }

  /** workflow_metrics: the Prometheus text exposition format. */
  async metrics(): Promise<string> {
    return this.#call("workflow_metrics", []);
  }

  /** workflow_graph: Mermaid or DOT text of one execution. */
  async graph(executionId: string, format: "mermaid" | "dot" = "mermaid"): Promise<string> {
    return this.#call("workflow_graph", [
      ["execution_id", required("executionId", executionId), "uuid"],
      ["format", format, "text"],
    ]);
  }

  /** workflow_queue_configure: pause a queue or limit it; the queue's settings. */
  async queueConfigure(queue: string, config: QueueConfig): Promise<Json> {
    return this.#call("workflow_queue_configure", [
      ["queue", required("queue", queue), "text"],
      ["options", jsonParam("config", config as Json), "jsonb"],
    ]);
  }

  /**
   * workflow_retry_many: retries every failed or cancelled execution `filter` finds, a
   * batch per transaction; how many. Call it outside a transaction (on a pool or a client
   * not inside BEGIN): each batch commits.
   */
  async retryMany(filter: ListFilter, batchSize?: number): Promise<number> {
    return Number(
      await this.#procedure("workflow_retry_many", "retried", [
        ["filter", jsonParam("filter", filter as Json), "jsonb"],
        ["batch_size", batchSize, "int"],
      ]),
    );
  }

  /** workflow_cancel_many: cancels every pending or running execution `filter` finds; how many. */
  async cancelMany(filter: ListFilter, reason?: string, batchSize?: number): Promise<number> {
    return Number(
      await this.#procedure("workflow_cancel_many", "cancelled", [
        ["filter", jsonParam("filter", filter as Json), "jsonb"],
        ["reason", reason, "text"],
        ["batch_size", batchSize, "int"],
      ]),
    );
  }

  /** workflow_schedule_create: creates or replaces the schedule `name`; it, with its next fire. */
  async scheduleCreate(
    name: string,
    schedule: string,
    workflowType: string,
    input: Json = {},
    options: CronScheduleOptions = {},
  ): Promise<CronSchedule> {
    return this.#call("workflow_schedule_create", [
      ["name", required("name", name), "text"],
      ["schedule", required("schedule", schedule), "text"],
      ["workflow_type", required("workflowType", workflowType), "text"],
      ["input", jsonParam("input", input), "jsonb"],
      ["options", jsonParam("options", options as Json), "jsonb"],
    ]);
  }

  /** workflow_schedule_delete: false if there was none. */
  async scheduleDelete(name: string): Promise<boolean> {
    return this.#call("workflow_schedule_delete", [["name", required("name", name), "text"]]);
  }

  /** workflow_schedule_pause: false if there is none. */
  async schedulePause(name: string): Promise<boolean> {
    return this.#call("workflow_schedule_pause", [["name", required("name", name), "text"]]);
  }

  /** workflow_schedule_resume: false if there is none; missed fires follow its catch-up policy. */
  async scheduleResume(name: string): Promise<boolean> {
    return this.#call("workflow_schedule_resume", [["name", required("name", name), "text"]]);
  }

  /** workflow_schedule_list: every schedule with its next fire time. */
  async scheduleList(): Promise<CronSchedule[]> {
    return this.#call("workflow_schedule_list", []);
  }

  /** workflow_type_pause: the type's starts are accepted and wait; false if paused already. */
  async typePause(workflowType: string): Promise<boolean> {
    return this.#call("workflow_type_pause", [["workflow_type", required("workflowType", workflowType), "text"]]);
  }

  /** workflow_type_resume: what waited for the type starts; false if it was not paused. */
  async typeResume(workflowType: string): Promise<boolean> {
    return this.#call("workflow_type_resume", [["workflow_type", required("workflowType", workflowType), "text"]]);
  }

  /** workflow_uuidv7: a new time-ordered id. */
  async uuidv7(): Promise<string> {
    return this.#call("workflow_uuidv7", []);
  }
}
