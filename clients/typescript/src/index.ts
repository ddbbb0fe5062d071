// pg-workflow: the TypeScript client and worker for pg_workflow (README: TypeScript).
export { Client, type ClientOptions } from "./client.js";
export {
  ConflictError,
  InvalidArgumentError,
  NonDeterministicReplayError,
  NotFoundError,
  PayloadTooLargeError,
  PermissionDeniedError,
  PgWorkflowError,
  UndefinedObjectError,
  UnsupportedError,
  fromDriverError,
} from "./errors.js";
export { jsonParam, type Json } from "./json.js";
export { WorkflowSql, type ClaimOptions, type Queryable } from "./sql.js";
export type * from "./types.js";
export {
  ActivityFailure,
  NonRetryableFailure,
  Worker,
  type ActivityContext,
  type ActivityHandler,
  type WorkerOptions,
} from "./worker.js";
