// A small test runner that Node (compiled) and Bun (from source) both run the same way:
// tests run one after another; a failure prints its error and makes the exit code 1.

import pg from "pg";

type TestFn = () => Promise<void>;
const tests: { name: string; fn: TestFn }[] = [];
/** Databases made by the running test, dropped when it ends (each has a dispatcher). */
const created: string[] = [];

export function test(name: string, fn: TestFn): void {
  tests.push({ name, fn });
}

export async function runAll(): Promise<void> {
  const only = process.env.PGWORKFLOW_TS_TEST_ONLY;
  const skip = process.env.PGWORKFLOW_TS_TEST_SKIP;
  let failed = 0;
  const runtime = typeof (globalThis as { Bun?: unknown }).Bun === "undefined" ? `node ${process.version}` : `bun ${process.versions.bun}`;
  console.log(`pg-workflow TypeScript tests (${runtime})`);
  for (const t of tests) {
    if ((only && !t.name.includes(only)) || (skip && t.name.includes(skip))) continue;
    const started = Date.now();
    try {
      await t.fn();
      console.log(`ok      ${t.name} (${Date.now() - started} ms)`);
    } catch (error) {
      failed++;
      console.log(`FAILED  ${t.name}`);
      console.log(error);
    }
    await dropCreated();
  }
  console.log(failed === 0 ? "all passed" : `${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

/** The test cluster (PGWORKFLOW_TEST_URL, libpq "key=value" form), as node-postgres config. */
export function clusterConfig(): pg.ClientConfig {
  const url = process.env.PGWORKFLOW_TEST_URL;
  if (!url) throw new Error("PGWORKFLOW_TEST_URL is not set; run these tests through `make test`");
  const config: Record<string, string | number> = {};
  for (const pair of url.trim().split(/\s+/)) {
    const [key, value] = pair.split("=", 2) as [string, string];
    config[key === "dbname" ? "database" : key] = key === "port" ? Number(value) : value;
  }
  return config as pg.ClientConfig;
}

async function dropCreated(): Promise<void> {
  const admin = new pg.Client({ ...clusterConfig(), database: "postgres" });
  await admin.connect();
  for (const name of created.splice(0)) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

/** A fresh database with pg_workflow created (dropped when the test ends); its config. */
export async function freshDatabase(name: string): Promise<pg.ClientConfig> {
  const admin = new pg.Client({ ...clusterConfig(), database: "postgres" });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  created.push(name);
  await admin.end();
  const config = { ...clusterConfig(), database: name };
  const db = new pg.Client(config);
  await db.connect();
  await db.query("CREATE EXTENSION pg_workflow");
  await db.end();
  return config;
}

/** Runs `fn` with a connected client, then closes it. */
export async function withClient<T>(config: pg.ClientConfig, fn: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client(config);
  await db.connect();
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}

/** Waits until `check` is true, asking every 50 ms, for at most `seconds`. */
export async function eventually(what: string, seconds: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertEqual(actual: unknown, expected: unknown, message = ""): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`assertion failed${message ? ` (${message})` : ""}: expected ${e}, got ${a}`);
}

export async function assertRejects(
  promise: Promise<unknown> | (() => Promise<unknown>),
  check: (error: any) => boolean,
  message: string,
): Promise<void> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (error) {
    if (!check(error)) throw new Error(`assertion failed: ${message}; got ${String(error)}`);
    return;
  }
  throw new Error(`assertion failed: ${message}; it did not throw`);
}
