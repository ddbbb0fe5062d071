// A worker in a process of its own, for the tests that kill or stop it. It records every
// run of a handler in ts_runs (started, and finished once the work is done), works for
// PGWORKFLOW_WORK_MS per activity, and stops gracefully on SIGTERM.

import pg from "pg";
import { Worker } from "../src/index.js";

const config = JSON.parse(process.env.PGWORKFLOW_WORKER_CONFIG ?? "{}") as pg.PoolConfig;
const workMs = Number(process.env.PGWORKFLOW_WORK_MS ?? "200");
const runs = new pg.Pool({ ...config, max: 4 });

const work = async (_input: unknown, ctx: { activityId: string; attempt: number }) => {
  const { rows } = await runs.query(
    "INSERT INTO ts_runs (activity_id, attempt, pid) VALUES ($1, $2, $3) RETURNING id",
    [ctx.activityId, ctx.attempt, process.pid],
  );
  await new Promise((resolve) => setTimeout(resolve, workMs));
  await runs.query("UPDATE ts_runs SET finished_at = clock_timestamp() WHERE id = $1", [rows[0].id]);
  return { by: process.pid };
};

const worker = new Worker({
  connection: config,
  handlers: { step: work },
  concurrency: 8,
  leaseMs: Number(process.env.PGWORKFLOW_LEASE_MS ?? "3000"),
  workerId: `proc-${process.pid}`,
  handleSignals: true,
  shutdownGraceMs: 10_000,
  onError: () => {},
});
await worker.start();
process.stdout.write("ready\n");
// SIGTERM runs worker.stop() (handleSignals); the process ends once it has finished.
await worker.whenStopped();
await runs.end();
process.exit(0);
