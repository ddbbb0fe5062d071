// Flow control through the wrappers: a queue's limit, bulk retry and cancel (procedures,
// each batch its own transaction), and a schedule's life cycle.

import { InvalidArgumentError, WorkflowSql } from "../src/index.js";
import { assert, assertEqual, freshDatabase, test, withClient } from "./harness.js";

test("queue limits, bulk retry and cancel, and schedules through the wrappers", async () => {
  const config = await freshDatabase("pgw_ts_flow");
  await withClient(config, async (db) => {
    const sql = new WorkflowSql(db);
    await sql.define("ts_flow", { steps: [{ name: "call", activity: "llm.call", queue: "ts_llm", retry: { max_attempts: 1 } }] });
    for (let i = 0; i < 5; i++) await sql.start("ts_flow", { i });
    await sql.queueConfigure("ts_llm", { max_running: 2, rate_limit: { count: 60, per: "1m" } });
    const claimed = await sql.claim({ queue: "ts_llm", workerId: "w", maxCount: 10 });
    assertEqual(claimed.length, 2, "the concurrency limit holds");
    await sql.queueConfigure("ts_llm", {});
    claimed.push(...(await sql.claim({ queue: "ts_llm", workerId: "w", maxCount: 10 })));
    assertEqual(claimed.length, 5, "no limit once removed");
    for (const a of claimed) await sql.failActivity(a.activity_id, { type: "BadDeploy", message: "x" }, { attempt: a.attempt });
    assertEqual(await sql.retryMany({ workflow_type: "ts_flow", error_type: "BadDeploy" }, 2), 5);
    assertEqual(await sql.cancelMany({ workflow_type: "ts_flow", status: "running" }, "cleanup"), 5);
    assertEqual(await sql.retryMany({ workflow_type: "no_such_type" }), 0);

    const created = await sql.scheduleCreate("nightly", "0 2 * * *", "ts_flow", { corpus: "all" }, {
      timezone: "Europe/Berlin",
      paused: true,
    });
    assertEqual([created.name, created.timezone, created.paused], ["nightly", "Europe/Berlin", true]);
    assert(created.next_fire_at !== null, "next fire time");
    assertEqual(await sql.scheduleResume("nightly"), true);
    assertEqual(await sql.schedulePause("nightly"), true);
    assertEqual((await sql.scheduleList()).map((s) => s.name), ["nightly"]);
    assertEqual(await sql.scheduleDelete("nightly"), true);
    assertEqual(await sql.scheduleDelete("nightly"), false);
    // A paused type: the start waits, with the reason in its status.
    assertEqual(await sql.typePause("ts_flow"), true);
    const waiting = await sql.start("ts_flow", { i: 99 });
    const status = await sql.status(waiting);
    assertEqual([status.status, status.waiting_for], ["pending", "paused_workflow_type"]);
    assertEqual(await sql.typeResume("ts_flow"), true);
    await sql.dispatch();
    assertEqual((await sql.status(waiting)).status, "running");

    let refused: unknown;
    await sql.scheduleCreate("bad", "0 2 * *", "ts_flow").catch((e) => (refused = e));
    assert(refused instanceof InvalidArgumentError && /4 fields/.test(refused.message), `typed 22023: ${refused}`);
  });
});
