// The Client: define, start, signal, cancel, retry, read and await executions. Awaiting
// listens on `workflow_execution_finished` (one shared connection), so waiting for a run
// costs no queries while it runs; a slow safety check catches a notification lost to a
// reconnect.

import pg from "pg";
import { ConflictError } from "./errors.js";
import type { Json } from "./json.js";
import { Listener } from "./listener.js";
import { WorkflowSql, type Queryable } from "./sql.js";
import type { ErrorJson, ExecutionStatus, StartOptions, WorkflowDefinition } from "./types.js";

export interface ClientOptions {
  /** A connection string or node-postgres config; a pool is made from it. */
  connection: pg.PoolConfig | string;
  /** The extension's schema, when it is not on the search_path. */
  schema?: string;
  /** Pool size (default 10). */
  maxConnections?: number;
}

const FINISHED = new Set(["completed", "failed", "cancelled"]);

export class Client {
  readonly pool: pg.Pool;
  readonly sql: WorkflowSql;
  readonly #options: ClientOptions;
  #listener: Listener | undefined;
  readonly #waiters = new Map<string, Set<() => void>>();

  constructor(options: ClientOptions) {
    this.#options = options;
    const config = typeof options.connection === "string" ? { connectionString: options.connection } : options.connection;
    this.pool = new pg.Pool({ max: options.maxConnections ?? 10, ...config });
    this.pool.on("error", () => {}); // an idle connection lost: the pool makes a new one
    this.sql = new WorkflowSql(this.pool, options.schema === undefined ? {} : { schema: options.schema });
  }

  /** The same functions in a transaction of yours (a PoolClient or Client you hold). */
  in(db: Queryable): WorkflowSql {
    return new WorkflowSql(db, this.#options.schema === undefined ? {} : { schema: this.#options.schema });
  }

  define(name: string, definition: WorkflowDefinition): Promise<number> {
    return this.sql.define(name, definition);
  }
  start(workflowType: string, input: Json = {}, options: { idempotencyKey?: string; options?: StartOptions } = {}) {
    return this.sql.start(workflowType, input, options);
  }
  signal(executionId: string, name: string, payload: Json = null, idempotencyKey?: string) {
    return this.sql.signal(executionId, name, payload, idempotencyKey);
  }
  cancel(executionId: string, reason?: string) {
    return this.sql.cancel(executionId, reason);
  }
  retry(executionId: string) {
    return this.sql.retry(executionId);
  }
  status(executionId: string): Promise<ExecutionStatus> {
    return this.sql.status(executionId);
  }

  /**
   * Waits until the execution finishes (or `timeoutMs` passes: then its status as it is)
   * and returns its status. Listens; does not poll.
   */
  async wait(executionId: string, options: { timeoutMs?: number } = {}): Promise<ExecutionStatus> {
    await this.#ensureListener();
    const timeoutMs = options.timeoutMs ?? 30_000;
    // A notification sets `notified` (and ends the current wait): one that arrives while
    // the status is being read is not lost.
    let notified = false;
    let wake: () => void = () => {};
    const waiter = () => {
      notified = true;
      wake();
    };
    const set = this.#waiters.get(executionId) ?? new Set();
    set.add(waiter);
    this.#waiters.set(executionId, set);
    const deadline = Date.now() + timeoutMs;
    try {
      // Registered before the first look: a finish between the two is not missed.
      let status = await this.status(executionId);
      while (!FINISHED.has(status.status)) {
        const left = deadline - Date.now();
        if (left <= 0) return status;
        if (!notified) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          await new Promise<void>((resolve) => {
            wake = resolve;
            timer = setTimeout(resolve, Math.min(left, 5_000));
          });
          clearTimeout(timer);
        }
        notified = false;
        status = await this.status(executionId);
      }
      return status;
    } finally {
      set.delete(waiter);
      if (set.size === 0) this.#waiters.delete(executionId);
    }
  }

  /** `wait`, then the output of a completed execution; a failed or cancelled one throws. */
  async result(executionId: string, options: { timeoutMs?: number } = {}): Promise<Json> {
    const status = await this.wait(executionId, options);
    if (status.status === "completed") return status.output;
    const error = status.error as ErrorJson | null;
    throw new ConflictError(
      `execution ${executionId} is ${status.status}${error?.message ? `: ${error.message}` : ""}`,
    );
  }

  async #ensureListener(): Promise<void> {
    if (!this.#listener) {
      this.#listener = new Listener({
        connection: this.#options.connection,
        channels: ["workflow_execution_finished"],
        onNotification: (_channel, id) => this.#waiters.get(id)?.forEach((wake) => wake()),
        // Back after a lost connection: everyone looks again.
        onConnected: () => this.#waiters.forEach((set) => set.forEach((wake) => wake())),
      });
    }
    await this.#listener.ready();
  }

  async close(): Promise<void> {
    await this.#listener?.close();
    await this.pool.end();
  }
}
