// The shapes pg_workflow's functions take and return (README: SQL API). Field names are
// the server's, as workflow_status returns them.

import type { Json } from "./json.js";

export type ExecutionState = "pending" | "running" | "completed" | "failed" | "cancelled";
export type StepState =
  | "pending"
  | "scheduled"
  | "running"
  | "waiting"
  | "completed"
  | "failed"
  | "cancelled"
  | "skipped";

/** A duration as pg_workflow reads it ("30s", "5m", "1h30m", "7 days"), or milliseconds. */
export type Duration = string | number;

export interface RetryPolicy {
  max_attempts?: number;
  initial_interval?: string;
  backoff_coefficient?: number;
  max_interval?: string;
  jitter?: number;
  non_retryable?: string[];
}

/** Where and how a step runs: the fields a definition's step and a client-driven one share. */
export interface StepSettings {
  queue?: string;
  priority?: number;
  retry?: RetryPolicy;
  timeout?: string;
  heartbeat_timeout?: string;
  schedule_to_close?: string;
}

export interface StepDefinition extends StepSettings {
  name: string;
  activity?: string;
  sql?: string;
  sleep?: string | { until: string };
  wait_signal?: string;
  workflow?: string;
  depends_on?: string[];
  map?: string;
  max_concurrency?: number;
  description?: string;
}

export interface WorkflowDefinition {
  steps: StepDefinition[];
  compensate?: Record<string, string | { activity: string; queue?: string }>;
  timeout?: string;
  description?: string;
}

export interface StartOptions {
  delay?: string;
  start_at?: string;
  timeout?: string;
  priority?: number;
  queue?: string;
  tenant_id?: string;
  labels?: { [key: string]: Json };
  client_driven?: boolean;
}

export interface ScheduleOptions extends StepSettings {
  sleep?: string;
  wait_signal?: string;
  /** A child execution of this type (activityType null); `client_driven` for one your code drives. */
  workflow?: string;
  client_driven?: boolean;
  /** The child's own idempotency key (with `workflow`). */
  idempotency_key?: string;
  /** The replay turn's fencing token (claimExecutions). */
  lease_token?: number;
}

/** A client-driven execution handed to this process for a replay turn. */
export interface ClaimedExecution {
  execution_id: string;
  workflow_type: string;
  input: Json;
  lease_token: number;
  lease_expires_at: Date;
}

export interface ClaimedActivity {
  activity_id: string;
  execution_id: string;
  workflow_type: string;
  step_key: string;
  activity_type: string;
  input: Json;
  attempt: number;
  lease_expires_at: Date;
}

/** What a failed activity or execution stores: `type` decides retries (non_retryable). */
export interface ErrorJson {
  type?: string;
  message: string;
  stack?: string;
  [key: string]: Json | undefined;
}

export interface StepStatus {
  step_key: string;
  kind: "task" | "sql" | "sleep" | "signal" | "workflow";
  status: StepState;
  activity_type: string | null;
  attempt: number;
  max_attempts: number;
  output: Json;
  error: ErrorJson | null;
  worker_id: string | null;
  heartbeat: Json;
  cancel_requested: boolean;
  scheduled_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  lease_expires_at: string | null;
  /** A claimable step its queue's flow control holds back (README: Flow control). */
  waiting_for:
    | { reason: "queue_paused"; queue: string }
    | { reason: "queue_concurrency_limit"; queue: string; max_running: number }
    | { reason: "queue_rate_limit"; queue: string; next_claim_at: string }
    | null;
}

export interface ExecutionStatus {
  id: string;
  workflow_type: string;
  definition_version: number | null;
  status: ExecutionState;
  input: Json;
  output: Json;
  error: ErrorJson | null;
  queue: string;
  priority: number;
  idempotency_key: string | null;
  tenant_id: string | null;
  labels: { [key: string]: Json };
  parent_id: string | null;
  parent_step: string | null;
  ready_at: string | null;
  deadline: string | null;
  compensation: Json;
  /** Its type's concurrency key, if the type has a limit. */
  concurrency_key: string | null;
  /** Why a pending execution has not started. */
  waiting_for: "start_time" | "concurrency_key" | "paused_workflow_type" | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  steps: StepStatus[];
}

export type GrantPart = "owner" | "admin" | "starter" | "worker";

export interface QueueStats {
  queue: string;
  ready: string; // bigint columns arrive as strings from node-postgres
  delayed: string;
  running: string;
  expired_leases: string;
  oldest_ready_age: unknown;
  completed_last_minute: string;
  failed_last_minute: string;
  completed_last_hour: string;
  failed_last_hour: string;
}

export interface ListFilter {
  workflow_type?: string;
  status?: ExecutionState | ExecutionState[];
  labels?: { [key: string]: Json };
  tenant_id?: string;
  created_after?: string;
  created_before?: string;
  waiting_for?: string;
  error_type?: string;
}

export interface ListedExecution {
  id: string;
  workflow_type: string;
  status: ExecutionState;
  tenant_id: string | null;
  labels: { [key: string]: Json };
  created_at: Date;
  finished_at: Date | null;
  error: ErrorJson | null;
}

export interface WaitingExecution {
  execution_id: string;
  workflow_type: string;
  step_key: string;
  waiting_since: Date;
  input: Json;
  labels: { [key: string]: Json };
  tenant_id: string | null;
}

/** workflow_queue_configure's options; `{}` removes every limit. */
export interface QueueConfig {
  paused?: boolean;
  /** At most this many activities of the queue running across all workers. */
  max_running?: number;
  /** A token bucket: `count` claims per `per` ("1m", "1s"), bursts of `burst` (default `count`). */
  rate_limit?: { count: number; per: Duration; burst?: number };
}

/** workflow_schedule_create's options. */
export interface CronScheduleOptions {
  /** An IANA time zone the cron fields are read in; default "UTC". */
  timezone?: string;
  /** While the previous fire's run is open: skip (default), buffer_one, allow_all. */
  overlap?: "skip" | "buffer_one" | "allow_all";
  /** After downtime: run the latest missed fire once (default) or skip them. */
  catch_up?: "latest" | "skip";
  paused?: boolean;
  /** workflow_start's options for every fire. */
  start?: StartOptions;
}

/** A schedule as workflow_schedule_list returns it. */
export interface CronSchedule {
  name: string;
  schedule: string;
  timezone: string;
  workflow_type: string;
  input: Json;
  options: StartOptions;
  overlap: "skip" | "buffer_one" | "allow_all";
  catch_up: "latest" | "skip";
  paused: boolean;
  next_fire_at: string | null;
  last_fire_at: string | null;
  last_execution: string | null;
  last_error: ErrorJson | null;
  buffered_fire_at: string | null;
}
