// The client: every wrapper against a real server, JSON as it goes in and comes out,
// `undefined` refused before a call, and server errors as typed errors with the SQLSTATE.

import pg from "pg";
import {
  Client,
  ConflictError,
  InvalidArgumentError,
  NonDeterministicReplayError,
  NotFoundError,
  PermissionDeniedError,
  UndefinedObjectError,
  WorkflowSql,
  type Json,
} from "../src/index.js";
import { assert, assertEqual, assertRejects, freshDatabase, test, withClient } from "./harness.js";

test("every wrapper works against a real server", async () => {
  const config = await freshDatabase("pgw_ts_wrappers");
  await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    const version = await sql.define("ts_doc", {
      steps: [
        { name: "fetch", activity: "fetch", queue: "ts" },
        { name: "approve", wait_signal: "approve", depends_on: ["fetch"] },
        { name: "store", activity: "store", queue: "ts", depends_on: ["approve"], retry: { max_attempts: 2, initial_interval: "1s", jitter: 0 } },
      ],
    });
    assertEqual(version, 1);
    const id = await sql.start("ts_doc", { url: "u" }, { idempotencyKey: "k1", options: { labels: { team: "ts" } } });
    assertEqual(await sql.start("ts_doc", {}, { idempotencyKey: "k1" }), id, "idempotent start");
    const [fetch] = await sql.claim({ queue: "ts", workerId: "w", maxCount: 5, lease: 30_000, activityTypes: ["fetch"] });
    assert(fetch, "claimed fetch");
    assertEqual([fetch.step_key, fetch.attempt, fetch.input], ["fetch", 1, { input: { url: "u" } }]);
    assert(fetch.lease_expires_at instanceof Date, "lease_expires_at is a Date");
    assertEqual(await sql.heartbeat(fetch.activity_id, { attempt: 1, details: { progress: 0.5 } }), false);
    assertEqual(await sql.completeActivity(fetch.activity_id, { body: "b" }, 1), true);
    const signalId = await sql.signal(id, "approve", { by: "ann" }, "s1");
    assertEqual(await sql.signal(id, "approve", { by: "ann" }, "s1"), signalId, "idempotent signal");
    const [store] = await sql.claimWait({ queue: "ts", workerId: "w", timeout: "10s" });
    assert(store, "claimed store (waiting: it is claimable at once)");
    assertEqual(await sql.claimWait({ queue: "ts", workerId: "w", timeout: 0 }), [], "nothing left, no wait");
    assertEqual(await sql.failActivity(store.activity_id, { type: "Flaky", message: "m" }, { attempt: 1 }), "retrying");
    assertEqual(await sql.dispatch(10), 0);
    const status = await sql.status(id);
    assertEqual([status.status, status.labels, status.steps.map((s) => [s.step_key, s.status])], [
      "running",
      { team: "ts" },
      [["fetch", "completed"], ["approve", "completed"], ["store", "scheduled"]],
    ]);
    assertEqual(await sql.cancel(id, "enough"), true);
    assertEqual((await sql.awaitOnServer(id, "5s")).status, "cancelled");
    assertEqual(await sql.retry(id), true);
    await sql.cancel(id);

    // Client-driven executions, and completing a batch.
    const cd = await sql.start("ts_cd", {}, { options: { client_driven: true } });
    const a1 = await sql.scheduleActivity(cd, "one", "t", { n: 1 }, { queue: "cd" });
    assertEqual(await sql.scheduleActivity(cd, "one", "t", { n: 1 }, { queue: "cd" }), a1, "idempotent per step key");
    await sql.scheduleActivity(cd, "two", "t", { n: 2 }, { queue: "cd" });
    await sql.scheduleActivity(cd, "nap", null, {}, { sleep: "1h" });
    const batch = await sql.claim({ queue: "cd", workerId: "w", maxCount: 2 });
    assertEqual(
      await sql.completeActivities(batch.map((a) => ({ activityId: a.activity_id, output: a.step_key, attempt: a.attempt }))),
      [true, true],
    );
    assertEqual(await sql.complete(cd, { done: true }), true);
    const cd2 = await sql.start("ts_cd", {}, { options: { client_driven: true } });
    assertEqual(await sql.fail(cd2, { type: "Nope", message: "failed on purpose" }), true);
    assertEqual((await sql.status(cd2)).error, { type: "Nope", message: "failed on purpose" });

    // Administration.
    await db.query("DROP ROLE IF EXISTS ts_worker; CREATE ROLE ts_worker; DROP ROLE IF EXISTS ts_tenant; CREATE ROLE ts_tenant");
    await sql.grant("ts_worker", "worker");
    const canClaim = await db.query("SELECT has_function_privilege('ts_worker', 'workflow_claim(text,text,int,interval,text[])', 'EXECUTE') AS ok");
    assertEqual(canClaim.rows[0].ok, true);
    await sql.revoke("ts_worker");
    await sql.bindTenant("ts_tenant", "acme");
    assertEqual(await sql.unbindTenant("ts_tenant"), true);
    assertEqual(await sql.currentTenant(), null);
    assert(/^[0-9a-f-]{36}$/.test(await sql.uuidv7()), "uuidv7");
    assertEqual(typeof (await sql.wake()), "boolean");
    await db.query("DROP OWNED BY ts_worker, ts_tenant; DROP ROLE ts_worker; DROP ROLE ts_tenant");
  });
});

test("JSON values go in and come out unchanged: arrays, strings, numbers, null, nested", async () => {
  const config = await freshDatabase("pgw_ts_json");
  await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    await sql.define("ts_echo", { steps: [{ name: "echo", activity: "echo" }] });
    const values: Json[] = [
      [1, "two", null, { three: [3] }],
      "a string with \"quotes\", a \\ and ünïcødé ✓",
      42.5,
      -0.000001,
      null,
      true,
      { nested: { deeper: { list: [[], {}, [null]], empty: "" } } },
      [],
    ];
    for (const value of values) {
      const id = await sql.start("ts_echo", { value });
      const [a] = await sql.claim({ queue: "default", workerId: "w" });
      assert(a, "claimed");
      assertEqual(a.input, { input: { value } }, "input");
      await sql.completeActivity(a.activity_id, value, a.attempt);
      const status = await sql.status(id);
      assertEqual(status.output, { echo: value }, "output");
    }
  });
});

test("undefined, NaN and the like are refused before the call, naming where they are", async () => {
  const config = await freshDatabase("pgw_ts_undefined");
  await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    await sql.define("ts_u", { steps: [{ name: "a", activity: "a" }] });
    const refused = (where: string) => (e: unknown) =>
      e instanceof InvalidArgumentError && e.sqlstate === undefined && e.message.includes(where);
    await assertRejects(sql.start("ts_u", { a: undefined } as unknown as Json), refused("input.a is undefined"), "undefined property");
    await assertRejects(sql.start("ts_u", [1, undefined] as unknown as Json), refused("input[1] is undefined"), "undefined in an array");
    await assertRejects(sql.start("ts_u", { n: NaN }), refused("input.n is NaN"), "NaN");
    await assertRejects(sql.start("ts_u", { n: 1n } as unknown as Json), refused("input.n is a bigint"), "bigint");
    await assertRejects(sql.start(undefined as unknown as string), refused("workflowType is undefined"), "undefined type");
    await assertRejects(sql.completeActivity("00000000-0000-0000-0000-000000000000", undefined as unknown as Json), refused("output is undefined"), "undefined output");
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    await assertRejects(sql.start("ts_u", cycle as Json), refused("input.self refers to itself"), "a cycle");
    const started = await db.query("SELECT count(*)::int AS n FROM workflow_execution");
    assertEqual(started.rows[0].n, 0, "nothing reached the server");
  });
});

test("server errors come back typed, with the SQLSTATE and hint", async () => {
  const config = await freshDatabase("pgw_ts_errors");
  await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    await assertRejects(sql.status("00000000-0000-0000-0000-000000000000"), (e) => e instanceof NotFoundError && e.sqlstate === "P0002", "missing execution");
    await assertRejects(sql.start("no_such_type"), (e) => e instanceof UndefinedObjectError && e.sqlstate === "42704" && /workflow_define/.test(e.hint ?? ""), "undefined type");
    await assertRejects(sql.define("bad", { steps: [] }), (e) => e instanceof InvalidArgumentError && e.sqlstate === "22023", "invalid definition");
    await sql.define("ts_e", { steps: [{ name: "a", activity: "a" }] });
    await sql.start("ts_e");
    const [a] = await sql.claim({ queue: "default", workerId: "w" });
    assert(a, "claimed");
    await assertRejects(sql.completeActivity(a.activity_id, 1, a.attempt + 1), (e) => e instanceof ConflictError && e.sqlstate === "55000", "stale attempt");
    await db.query("DROP ROLE IF EXISTS ts_nobody; CREATE ROLE ts_nobody");
    await db.query("SET ROLE ts_nobody");
    await assertRejects(sql.start("ts_e"), (e) => e instanceof PermissionDeniedError && e.sqlstate === "42501", "no grant");
    await db.query("RESET ROLE; DROP ROLE ts_nobody");
  });
});

test("Client.wait listens for the finish; result() returns the output or throws", async () => {
  const config = await freshDatabase("pgw_ts_wait");
  const client = new Client({ connection: config as pg.PoolConfig });
  try {
    await client.define("ts_w", { steps: [{ name: "a", activity: "a" }] });
    const id = await client.start("ts_w", { x: 1 });
    const early = await client.wait(id, { timeoutMs: 200 });
    assertEqual(early.status, "running", "a timeout returns the status as it is");
    const waiting = client.result(id, { timeoutMs: 30_000 });
    const [a] = await client.sql.claim({ queue: "default", workerId: "w" });
    assert(a, "claimed");
    await client.sql.completeActivity(a.activity_id, { y: 2 }, a.attempt);
    assertEqual(await waiting, { a: { y: 2 } });
    const failing = await client.start("ts_w");
    await client.cancel(failing, "no");
    await assertRejects(client.result(failing), (e) => e instanceof ConflictError && /cancelled/.test(e.message), "cancelled");
    // Inside a transaction of the caller's: a rolled-back start never happened.
    const own = await client.pool.connect();
    await own.query("BEGIN");
    const gone = await client.in(own).start("ts_w");
    await own.query("ROLLBACK");
    own.release();
    await assertRejects(client.status(gone), (e) => e instanceof NotFoundError, "rolled back");
  } finally {
    await client.close();
  }
});

test("replay turns, claiming one activity, and non-deterministic replays, through the wrappers", async () => {
  const config = await freshDatabase("pgw_ts_replay");
  await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    const id = await sql.start("ts_engine", { doc: 1 }, { idempotencyKey: "d1", options: { client_driven: true } });
    assertEqual(await sql.find("ts_engine", "d1"), id);
    assertEqual(await sql.find("ts_engine", "d2"), null);
    const [turn] = await sql.claimExecutions({ workflowTypes: ["ts_engine"], workerId: "p1", lease: 30_000 });
    assert(turn, "a turn");
    assertEqual([turn.execution_id, turn.input, turn.lease_token], [id, { doc: 1 }, 1]);
    assertEqual(await sql.claimExecutions({ workflowTypes: ["ts_engine"], workerId: "p2" }), [], "held");
    const step = await sql.scheduleActivity(id, "fetch", "fetch", { u: 1 }, { lease_token: turn.lease_token });
    await assertRejects(
      sql.scheduleActivity(id, "fetch", "fetch", { u: 2 }, { lease_token: turn.lease_token }),
      (e) => e instanceof NonDeterministicReplayError && e.sqlstate === "22000",
      "another input under the same key",
    );
    assertEqual(await sql.renewExecution(id, turn.lease_token, "30s"), true);
    const claimed = await sql.claimActivity(step, "p1", 10_000);
    assertEqual([claimed?.step_key, claimed?.attempt], ["fetch", 1]);
    assertEqual(await sql.claimActivity(step, "p1"), undefined, "claimed once");
    await sql.completeActivity(step, "page", 1);
    assertEqual(await sql.releaseExecution(id, turn.lease_token), true);
    const [next] = await sql.claimExecutions({ workflowTypes: ["ts_engine"], workerId: "p2" });
    assertEqual(next?.lease_token, 2, "ready again after the activity finished");
    await assertRejects(sql.complete(id, "done", { leaseToken: 1 }), (e) => e instanceof ConflictError, "an old turn");
    assertEqual(await sql.complete(id, "done", { leaseToken: 2 }), true);
  });
});
