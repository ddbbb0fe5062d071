// Errors from pg_workflow, by SQLSTATE (README: Errors). Every error a call raises is a
// PgWorkflowError (or a subclass naming what went wrong) that keeps the server's
// SQLSTATE, message and hint; errors found before a call reaches the server (an
// `undefined` argument) are InvalidArgumentError with no SQLSTATE.

export class PgWorkflowError extends Error {
  /** The server's SQLSTATE; undefined when the client refused the call itself. */
  readonly sqlstate: string | undefined;
  readonly hint: string | undefined;

  constructor(message: string, options: { sqlstate?: string | undefined; hint?: string | undefined; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.sqlstate = options.sqlstate;
    this.hint = options.hint;
  }
}

/** 22023 / 22P02: an argument is missing, malformed or out of range. */
export class InvalidArgumentError extends PgWorkflowError {}
/** P0002: no such execution or activity (or another tenant's). */
export class NotFoundError extends PgWorkflowError {}
/** 42704: an undefined workflow type or role. */
export class UndefinedObjectError extends PgWorkflowError {}
/** 55000: the object is not in a state that allows this (a stale claim, a finished execution). */
export class ConflictError extends PgWorkflowError {}
/** 42501: the role may not do this (a missing grant part, another tenant). */
export class PermissionDeniedError extends PgWorkflowError {}
/** 54000: an input, output, error or payload over workflow.max_payload_bytes. */
export class PayloadTooLargeError extends PgWorkflowError {}
/** 22000: a replay asked for another step under a step key the journal has. */
export class NonDeterministicReplayError extends PgWorkflowError {}
/** 0A000: something pg_workflow does not support yet. */
export class UnsupportedError extends PgWorkflowError {}

const BY_SQLSTATE: Record<string, new (message: string, options: { sqlstate?: string; hint?: string; cause?: unknown }) => PgWorkflowError> = {
  "22023": InvalidArgumentError,
  "22P02": InvalidArgumentError,
  P0002: NotFoundError,
  "42704": UndefinedObjectError,
  "55000": ConflictError,
  "42501": PermissionDeniedError,
  "54000": PayloadTooLargeError,
  "0A000": UnsupportedError,
  "22000": NonDeterministicReplayError,
};

interface DatabaseErrorLike {
  code?: unknown;
  message?: unknown;
  hint?: unknown;
}

/** Turns a driver error into a typed PgWorkflowError; anything else is returned as is. */
export function fromDriverError(error: unknown): unknown {
  if (error instanceof PgWorkflowError || typeof error !== "object" || error === null) return error;
  const e = error as DatabaseErrorLike;
  if (typeof e.code !== "string" || !/^[0-9A-Z]{5}$/.test(e.code)) return error;
  const Class = BY_SQLSTATE[e.code] ?? PgWorkflowError;
  const hint = typeof e.hint === "string" ? e.hint : undefined;
  return new Class(String(e.message), { sqlstate: e.code, ...(hint === undefined ? {} : { hint }), cause: error });
}
