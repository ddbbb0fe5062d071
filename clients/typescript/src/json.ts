// JSON arguments, serialized explicitly. node-postgres sends a JS array as a Postgres
// array literal (invalid JSON: 22P02) and `undefined` as SQL NULL; JSON.stringify drops
// `undefined` properties and turns NaN into null. Every value that would not survive a
// round trip unchanged is refused here, naming the field and the path inside it.

import { InvalidArgumentError } from "./errors.js";

/** A JSON value, as pg_workflow stores it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function problem(value: unknown, path: string, seen: Set<object>): string | undefined {
  switch (typeof value) {
    case "undefined":
      return `${path} is undefined (JSON has no undefined; pass null, or leave the key out)`;
    case "function":
    case "symbol":
      return `${path} is a ${typeof value}, which JSON cannot hold`;
    case "bigint":
      return `${path} is a bigint; pass a number or a string`;
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON cannot hold`;
    case "string":
    case "boolean":
      return undefined;
  }
  if (value === null) return undefined;
  const object = value as object;
  if (typeof (object as { toJSON?: unknown }).toJSON === "function") return undefined; // Date, ...
  if (seen.has(object)) return `${path} refers to itself`;
  seen.add(object);
  try {
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) {
        const p = problem(object[i], `${path}[${i}]`, seen);
        if (p) return p;
      }
      return undefined;
    }
    for (const [key, v] of Object.entries(object)) {
      const p = problem(v, `${path}.${key}`, seen);
      if (p) return p;
    }
    return undefined;
  } finally {
    seen.delete(object);
  }
}

/** The JSON text of `value` for a jsonb parameter, or an InvalidArgumentError naming `field`. */
export function jsonParam(field: string, value: unknown): string {
  const p = problem(value, field, new Set());
  if (p) throw new InvalidArgumentError(p);
  return JSON.stringify(value);
}

/** Refuses `undefined` for an argument that must be given. */
export function required<T>(field: string, value: T | undefined): T {
  if (value === undefined) throw new InvalidArgumentError(`${field} is undefined; pass a value`);
  return value;
}
