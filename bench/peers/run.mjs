// make bench-peers: pg_workflow beside the job queues a user would pick instead
// (pg-boss, graphile-worker), on one cluster, driven from this one Node process with the
// same concurrency and the same producer. Workloads: three-step workflows and single jobs
// (throughput with one enqueuing client), pickup latency on an idle system (enqueue
// commit -> handler start), backlog drain. Then the steady-state runs, with a bare
// pgmq-style queue (one insert, one read, one delete, in plain SQL) beside them: a producer
// keeps PEERS_DEPTH jobs queued for PEERS_STEADY_WORKERS workers claiming one at a time
// (throughput), and a producer sending PEERS_RATE jobs/s one transaction each to
// PEERS_RATE_WORKERS idle workers (claim latency, enqueue commit -> handler start).
// Medians of interleaved rounds; ratios against the best peer; JSON written.
//
//   node run.mjs CONNECTION_STRING OUT.json
// Environment: PEERS_ROUNDS (3), PEERS_SECONDS (8), PEERS_CONCURRENCY (8),
// PEERS_BACKLOG (5000), PEERS_PICKUPS (200), PEERS_DEPTH (4000), PEERS_STEADY_WORKERS (16),
// PEERS_RATE (600), PEERS_RATE_WORKERS (32), PEERS_POLL_MS (5, the SQL loops' poll while
// their queue is empty), PEERS_ONLY (a part of the systems' names), PEERS_STEADY (0: skip
// the steady-state runs).

import { performance } from "node:perf_hooks";
import { writeFileSync } from "node:fs";
import pg from "pg";
import { PgBoss } from "pg-boss";
import { run as runGraphile, makeWorkerUtils } from "graphile-worker";
import { Worker, WorkflowSql } from "../../clients/typescript/dist/src/index.js";

const [connectionString, outFile] = process.argv.slice(2);
if (!connectionString || !outFile) throw new Error("usage: node run.mjs CONNECTION_STRING OUT.json");
const env = (name, fallback) => Number(process.env[name] ?? fallback);
const ROUNDS = env("PEERS_ROUNDS", 3);
const SECONDS = env("PEERS_SECONDS", 8);
const WARMUP_SECONDS = 2;
const CONCURRENCY = env("PEERS_CONCURRENCY", 8);
const BACKLOG = env("PEERS_BACKLOG", 5000);
const PICKUPS = env("PEERS_PICKUPS", 200);
const IN_FLIGHT = 256; // the producer keeps at most this many unfinished
const DEPTH = env("PEERS_DEPTH", 4000);
const STEADY_WORKERS = env("PEERS_STEADY_WORKERS", 16);
const RATE = env("PEERS_RATE", 600);
const RATE_WORKERS = env("PEERS_RATE_WORKERS", 32);
const POLL_MS = env("PEERS_POLL_MS", 5);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const quiet = () => {};

// Counts what finished; a workload waits on it.
class Tally {
  constructor() {
    this.done = 0;
    this.starts = new Map(); // job key -> handler start time (pickup workload)
  }
}

// --- pg_workflow ----------------------------------------------------------------------
// Workers are pg-workflow's TypeScript Worker: LISTEN, claim as many as free slots,
// batched completions ("claim n / batch"), or one Worker per slot completing one at a
// time ("claim 1 / complete 1").
function pgWorkflow(mode) {
  const pool = new pg.Pool({ connectionString, max: 4 });
  const sql = new WorkflowSql(pool);
  return {
    name: mode === "batch" ? "pg_workflow, claim n / batched completion" : "pg_workflow, claim 1 / complete 1",
    async prepare() {
      await sql.define("peers_job", { steps: [{ name: "job", activity: "job", queue: "peers" }] });
      await sql.define("peers_wf", {
        steps: [
          { name: "s1", activity: "s1", queue: "peers" },
          { name: "s2", activity: "s2", queue: "peers", depends_on: ["s1"] },
          { name: "s3", activity: "s3", queue: "peers", depends_on: ["s2"] },
        ],
      });
    },
    async reset() {
      await pool.query("DELETE FROM workflow_execution");
      await pool.query("VACUUM ANALYZE workflow_execution, workflow_activity, workflow_attempt");
    },
    enqueueJob: (payload) => sql.start("peers_job", payload),
    enqueueWorkflow: (payload) => sql.start("peers_wf", payload),
    async enqueueBacklog(n) {
      await pool.query("SELECT count(workflow_start('peers_job', jsonb_build_object('i', i))) FROM generate_series(1, $1) i", [n]);
    },
    async startWorkers(tally, workerCount = CONCURRENCY) {
      const finished = async (input) => {
        tally.done++;
        const key = input?.input?.key; // a step's input holds the workflow input under "input"
        if (key !== undefined) tally.starts.set(key, performance.now());
        return null;
      };
      const handlers = { job: finished, s1: async () => null, s2: async () => null, s3: finished };
      // PEERS_CLAIM_WAIT=0: the workers LISTEN instead of waiting in the claim; a number:
      // each waiting claim's longest wait (ms).
      const wait = process.env.PEERS_CLAIM_WAIT;
      const claimWaitMs = wait === undefined || wait === "auto" ? "auto" : wait === "0" ? false : Number(wait);
      const options = { connection: connectionString, queue: "peers", handlers, onError: quiet, dispatchIntervalMs: false, claimWaitMs };
      const workers =
        mode === "batch"
          ? [new Worker({ ...options, concurrency: workerCount })]
          : Array.from({ length: workerCount }, () => new Worker({ ...options, concurrency: 1, completionBatchSize: 1 }));
      await Promise.all(workers.map((w) => w.start()));
      return () => Promise.all(workers.map((w) => w.stop()));
    },
    close: () => pool.end(),
  };
}

// --- pg-boss ----------------------------------------------------------------------------
// Its setup for low latency: LISTEN/NOTIFY on, notify-enabled queues, the shortest polling
// intervals (0.5 s; with notify on, the default backstop is 30 s). Two ways to run n at
// once: n local workers fetching one job each (fetching again at once while its cached
// count of ready jobs is above 1, the least it takes: without that, each waits out the polling interval
// after every job, 16 workers drained 16 jobs/s), or one fetching batches of n
// (processed together) that keeps fetching while batches come back full.
function pgBoss(batched) {
  const boss = new PgBoss({ connectionString, useListenNotify: true, max: 10 });
  boss.on("error", quiet);
  let run = 0;
  let queues = {};
  return {
    name: batched ? "pg-boss 12.38.0, batched fetch" : "pg-boss 12.38.0, one per fetch",
    async prepare() {
      await boss.start();
    },
    async reset() {
      run++;
      queues = { job: `job_${run}`, s1: `s1_${run}`, s2: `s2_${run}`, s3: `s3_${run}` };
      for (const q of Object.values(queues)) await boss.createQueue(q, { notify: true });
    },
    enqueueJob: (payload) => boss.send(queues.job, payload),
    enqueueWorkflow: (payload) => boss.send(queues.s1, payload),
    async enqueueBacklog(n) {
      for (let i = 0; i < n; i += 1000) {
        const jobs = Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ data: { i: i + k } }));
        await boss.insert(queues.job, jobs);
      }
    },
    async startWorkers(tally, workerCount = CONCURRENCY) {
      const polling = { pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 };
      const options = batched
        ? { ...polling, localConcurrency: 1, batchSize: workerCount, burstWhenBatchFull: true }
        : { ...polling, localConcurrency: workerCount, batchSize: 1, burstWhenReadyExceeds: 1 };
      const each = (handle) => async (jobs) => void (await Promise.all(jobs.map(handle)));
      const finished = each(async (job) => {
        tally.done++;
        if (job.data?.key !== undefined) tally.starts.set(job.data.key, performance.now());
      });
      const ids = [
        await boss.work(queues.job, options, finished),
        await boss.work(queues.s1, options, each(async (job) => void (await boss.send(queues.s2, job.data)))),
        await boss.work(queues.s2, options, each(async (job) => void (await boss.send(queues.s3, job.data)))),
        await boss.work(queues.s3, options, finished),
      ];
      return async () => {
        for (const q of Object.values(queues)) await boss.offWork(q, { wait: true });
        void ids;
      };
    },
    close: () => boss.stop({ graceful: false, wait: true }),
  };
}

// --- graphile-worker -----------------------------------------------------------------------
function graphileWorker() {
  let utils;
  let run = 0;
  let names = {};
  return {
    name: "graphile-worker 0.18.0",
    async prepare() {
      utils = await makeWorkerUtils({ connectionString });
      await utils.migrate();
    },
    async reset() {
      run++;
      names = { job: `job_${run}`, s1: `s1_${run}`, s2: `s2_${run}`, s3: `s3_${run}` };
    },
    enqueueJob: (payload) => utils.addJob(names.job, payload),
    enqueueWorkflow: (payload) => utils.addJob(names.s1, payload),
    async enqueueBacklog(n) {
      for (let i = 0; i < n; i += 1000) {
        const specs = Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ identifier: names.job, payload: { i: i + k } }));
        await utils.addJobs(specs);
      }
    },
    async startWorkers(tally, workerCount = CONCURRENCY) {
      const finished = async (payload) => {
        tally.done++;
        if (payload?.key !== undefined) tally.starts.set(payload.key, performance.now());
      };
      const runner = await runGraphile({
        connectionString,
        concurrency: workerCount,
        noHandleSignals: true,
        pollInterval: 1000,
        logger: new (await import("graphile-worker")).Logger(() => quiet),
        taskList: {
          [names.job]: finished,
          [names.s1]: async (payload, helpers) => void (await helpers.addJob(names.s2, payload)),
          [names.s2]: async (payload, helpers) => void (await helpers.addJob(names.s3, payload)),
          [names.s3]: finished,
        },
      });
      return () => runner.stop();
    },
    close: () => utils.release(),
  };
}

// --- plain SQL loops ------------------------------------------------------------------------
// Workers that are a connection each running claim -> handler -> finish in a loop, polling
// every POLL_MS while their queue is empty (no LISTEN): the shape of a pgmq consumer.
// Prepared statements on both sides.
function sqlLoop({ name, setup, reset, enqueueOne, enqueueMany, claim, keyOf, finish }) {
  const pool = new pg.Pool({ connectionString, max: 2 });
  return {
    name,
    prepare: async () => {
      for (const statement of setup) await pool.query(statement);
    },
    reset: async () => {
      for (const statement of reset) await pool.query(statement);
    },
    enqueueJob: (payload) => pool.query(enqueueOne, [payload]),
    enqueueBacklog: (n) => pool.query(enqueueMany, [n]),
    async startWorkers(tally, workerCount = CONCURRENCY) {
      let running = true;
      const loops = Array.from({ length: workerCount }, async (_, w) => {
        const client = new pg.Client({ connectionString });
        await client.connect();
        const claimQuery = claim(`loop-${w}`);
        while (running) {
          const { rows } = await client.query(claimQuery);
          if (rows.length === 0) {
            await sleep(POLL_MS);
            continue;
          }
          tally.done++;
          const key = keyOf(rows[0]);
          if (key !== undefined) tally.starts.set(key, performance.now());
          await client.query(finish(rows[0]));
        }
        await client.end();
      });
      return async () => {
        running = false;
        await Promise.all(loops);
      };
    },
    close: () => pool.end(),
  };
}

// A bare pgmq-style queue: pgmq's table shape, its read (visibility timeout pushed forward,
// FOR UPDATE SKIP LOCKED) and its delete.
const pgmqStyle = () =>
  sqlLoop({
    name: "pgmq-style SQL queue",
    setup: [
      "DROP TABLE IF EXISTS peers_pgmq",
      `CREATE TABLE peers_pgmq (msg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, read_ct int NOT NULL DEFAULT 0,
         enqueued_at timestamptz NOT NULL DEFAULT now(), vt timestamptz NOT NULL DEFAULT clock_timestamp(), message jsonb)`,
      "CREATE INDEX ON peers_pgmq (vt)",
    ],
    reset: ["TRUNCATE peers_pgmq", "VACUUM ANALYZE peers_pgmq"],
    enqueueOne: "INSERT INTO peers_pgmq (message) VALUES ($1) RETURNING msg_id",
    enqueueMany: "INSERT INTO peers_pgmq (message) SELECT jsonb_build_object('i', i) FROM generate_series(1, $1) i",
    claim: () => ({
      name: "pgmq_read",
      text: `WITH cte AS (SELECT msg_id FROM peers_pgmq WHERE vt <= clock_timestamp() ORDER BY msg_id LIMIT 1 FOR UPDATE SKIP LOCKED)
             UPDATE peers_pgmq m SET vt = clock_timestamp() + interval '30 seconds', read_ct = read_ct + 1
             FROM cte WHERE m.msg_id = cte.msg_id RETURNING m.msg_id, m.message`,
    }),
    keyOf: (row) => row.message?.key,
    finish: (row) => ({ name: "pgmq_delete", text: "DELETE FROM peers_pgmq WHERE msg_id = $1", values: [row.msg_id] }),
  });

// pg_workflow driven the same way: one-step workflows, claim 1 -> complete 1, the claim
// being workflow_claim_wait (up to 1 s), so the loop's own poll never runs while the
// preload wakes it.
const pgWorkflowSqlLoop = () =>
  sqlLoop({
    name: "pg_workflow, SQL loop",
    setup: [`SELECT workflow_define('peers_job', '{"steps": [{"name": "job", "activity": "job", "queue": "peers"}]}')`],
    reset: ["DELETE FROM workflow_execution", "VACUUM ANALYZE workflow_execution, workflow_activity, workflow_attempt"],
    enqueueOne: "SELECT workflow_start('peers_job', $1)",
    enqueueMany: "SELECT count(workflow_start('peers_job', jsonb_build_object('i', i))) FROM generate_series(1, $1) i",
    claim: (workerId) => ({
      name: "pgw_claim",
      text: "SELECT activity_id, input, attempt FROM workflow_claim_wait('peers', $1, 1, '30 seconds', NULL, '1 second')",
      values: [workerId],
    }),
    keyOf: (row) => row.input?.input?.key,
    finish: (row) => ({
      name: "pgw_complete",
      text: "SELECT workflow_complete_activity($1, 'null', $2)",
      values: [row.activity_id, row.attempt],
    }),
  });

// --- workloads ---------------------------------------------------------------------------
// Throughput: one producer keeps up to IN_FLIGHT unfinished (each enqueue its own
// transaction); completions per second over SECONDS after a warm-up.
async function throughput(system, kind) {
  await system.reset();
  const tally = new Tally();
  const stop = await system.startWorkers(tally);
  let enqueued = 0;
  return completionsPerSecond(tally, stop, async (producing) => {
    while (producing()) {
      if (enqueued - tally.done >= IN_FLIGHT) {
        await sleep(1);
        continue;
      }
      enqueued++;
      await (kind === "workflow" ? system.enqueueWorkflow({ n: enqueued }) : system.enqueueJob({ n: enqueued }));
    }
  });
}

// Runs the producer (a loop while `producing()`) and returns the completions per second
// over SECONDS after a warm-up; then stops the producer and the workers.
async function completionsPerSecond(tally, stop, produce) {
  let producing = true;
  const producer = produce(() => producing);
  await sleep(WARMUP_SECONDS * 1000);
  const from = tally.done;
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const rate = ((tally.done - from) * 1000) / (performance.now() - t0);
  producing = false;
  await producer;
  await stop();
  return rate;
}

// p50 and p99 of the time from each key's commit to its handler's start.
function latencies(committed, tally) {
  const sorted = [...committed].map(([key, at]) => Math.max(0, (tally.starts.get(key) ?? Infinity) - at)).sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p99: at(0.99) };
}

// Pickup latency on an idle system: one job every 20 ms; from the enqueue's commit (its
// promise resolved) to the handler's start, in this process's clock.
async function pickup(system) {
  await system.reset();
  const tally = new Tally();
  const stop = await system.startWorkers(tally);
  await sleep(500);
  const committed = new Map();
  for (let key = 0; key < PICKUPS; key++) {
    await system.enqueueJob({ key });
    committed.set(key, performance.now());
    await sleep(20);
  }
  const deadline = performance.now() + 30_000;
  while (tally.done < PICKUPS && performance.now() < deadline) await sleep(10);
  await stop();
  return latencies(committed, tally);
}

// Backlog drain: BACKLOG jobs enqueued first, then the workers start; jobs per second
// until the backlog is gone (or over the first 30 s, for a worker that polls slowly).
async function drain(system) {
  await system.reset();
  await system.enqueueBacklog(BACKLOG);
  const tally = new Tally();
  const t0 = performance.now();
  const stop = await system.startWorkers(tally);
  const deadline = t0 + 30_000;
  while (tally.done < BACKLOG && performance.now() < deadline) await sleep(2);
  const rate = (tally.done * 1000) / (performance.now() - t0);
  await stop();
  return rate;
}

// Steady state: DEPTH jobs queued before the workers start, and the producer tops the
// queue up (batches of up to 1,000, one statement each) while STEADY_WORKERS workers
// claim one job at a time; completions per second over SECONDS after a warm-up.
async function steady(system) {
  await system.reset();
  await system.enqueueBacklog(DEPTH);
  const tally = new Tally();
  let enqueued = DEPTH;
  const stop = await system.startWorkers(tally, STEADY_WORKERS);
  return completionsPerSecond(tally, stop, async (producing) => {
    while (producing()) {
      const missing = DEPTH - (enqueued - tally.done);
      if (missing < 100) {
        await sleep(1);
        continue;
      }
      const n = Math.min(missing, 1000);
      await system.enqueueBacklog(n);
      enqueued += n;
    }
  });
}

// Claim latency under a steady load: RATE jobs per second for SECONDS, each its own
// transaction on a schedule (a late producer catches up), RATE_WORKERS workers; from each
// enqueue's commit to its handler's start.
async function fixedRate(system) {
  await system.reset();
  const tally = new Tally();
  const stop = await system.startWorkers(tally, RATE_WORKERS);
  await sleep(500);
  const committed = new Map();
  const total = RATE * SECONDS;
  const t0 = performance.now();
  for (let key = 0; key < total; key++) {
    const wait = t0 + (key * 1000) / RATE - performance.now();
    if (wait >= 1) await sleep(wait);
    await system.enqueueJob({ key });
    committed.set(key, performance.now());
  }
  const sent = (total * 1000) / (performance.now() - t0);
  const deadline = performance.now() + 30_000;
  while (tally.done < total && performance.now() < deadline) await sleep(10);
  await stop();
  return { ...latencies(committed, tally), sent };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Prints one table: a column per system, a row per measure, and the best pg_workflow
// column against the best of `peers`; returns those ratios.
function table(title, names, rows, medians, peers) {
  const ours = names.filter((n) => n.startsWith("pg_workflow"));
  console.log(`\n${title}`);
  console.log(["workload".padEnd(34), ...names.map((n) => n.padStart(Math.max(12, n.length))), "best pgw / best peer".padStart(22)].join(" "));
  const ratios = {};
  for (const [label, key, better] of rows) {
    const pick = (list) => (better === "higher" ? Math.max : Math.min)(...list.map((n) => medians[n][key]));
    const ratio = better === "higher" ? pick(ours) / pick(peers) : pick(peers) / pick(ours);
    ratios[key] = ratio;
    const cells = names.map((n) => {
      const v = medians[n][key];
      return (key.includes("p50") || key.includes("p99") ? v.toFixed(2) : v.toFixed(0)).padStart(Math.max(12, n.length));
    });
    console.log([label.padEnd(34), ...cells, `${ratio.toFixed(2)}x`.padStart(22)].join(" "));
  }
  return ratios;
}

function mediansOf(names, results, keys) {
  return Object.fromEntries(names.map((n) => [n, Object.fromEntries(keys.map((k) => [k, median(results[n][k])]))]));
}

async function main() {
  // PEERS_ONLY=text: only the systems whose name contains it (a quick look at one).
  const only = (list) => list.filter((s) => s.name.includes(process.env.PEERS_ONLY ?? ""));
  const [batch, one, boss, bossBatched, graphile] = [pgWorkflow("batch"), pgWorkflow("one"), pgBoss(false), pgBoss(true), graphileWorker()];
  const systems = only([batch, one, boss, bossBatched, graphile]);
  const steadySystems = process.env.PEERS_STEADY === "0" ? [] : only([batch, one, pgWorkflowSqlLoop(), pgmqStyle(), boss, graphile]);
  const all = [...new Set([...systems, ...steadySystems])];
  for (const s of all) await s.prepare();
  const results = Object.fromEntries(systems.map((s) => [s.name, { workflows: [], jobs: [], pickup_p50: [], pickup_p99: [], drain: [] }]));
  const steadyResults = Object.fromEntries(steadySystems.map((s) => [s.name, { steady: [], rate_p50: [], rate_p99: [], rate_sent: [] }]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const s of systems) {
      const r = results[s.name];
      r.workflows.push(await throughput(s, "workflow"));
      r.jobs.push(await throughput(s, "job"));
      const p = await pickup(s);
      r.pickup_p50.push(p.p50);
      r.pickup_p99.push(p.p99);
      r.drain.push(await drain(s));
      console.error(
        `round ${round}: ${s.name}: ${r.workflows.at(-1).toFixed(0)} wf/s, ${r.jobs.at(-1).toFixed(0)} jobs/s, ` +
          `pickup p50 ${p.p50.toFixed(2)} ms p99 ${p.p99.toFixed(2)} ms, drain ${r.drain.at(-1).toFixed(0)} jobs/s`,
      );
    }
    for (const s of steadySystems) {
      const r = steadyResults[s.name];
      r.steady.push(await steady(s));
      const f = await fixedRate(s);
      r.rate_p50.push(f.p50);
      r.rate_p99.push(f.p99);
      r.rate_sent.push(f.sent);
      console.error(
        `round ${round}: ${s.name}: steady ${r.steady.at(-1).toFixed(0)} jobs/s; at ${f.sent.toFixed(0)} jobs/s ` +
          `claim latency p50 ${f.p50.toFixed(2)} ms p99 ${f.p99.toFixed(2)} ms`,
      );
    }
  }
  for (const s of all) await s.close();

  const names = systems.map((s) => s.name);
  const keys = ["workflows", "jobs", "pickup_p50", "pickup_p99", "drain"];
  const medians = mediansOf(names, results, keys);
  let ratios = {};
  if (names.length > 0) {
    ratios = table(
      `pg_workflow beside the job queues: medians of ${ROUNDS} interleaved rounds, concurrency ${CONCURRENCY}, one enqueuing client, ${SECONDS} s runs`,
      names,
      [
        ["3-step workflows/s", "workflows", "higher"],
        ["single jobs/s", "jobs", "higher"],
        ["pickup p50 ms (idle)", "pickup_p50", "lower"],
        ["pickup p99 ms (idle)", "pickup_p99", "lower"],
        ["backlog drain, jobs/s", "drain", "higher"],
      ],
      medians,
      names.filter((n) => !n.startsWith("pg_workflow")),
    );
  }
  const steadyNames = steadySystems.map((s) => s.name);
  const steadyMedians = mediansOf(steadyNames, steadyResults, ["steady", "rate_p50", "rate_p99", "rate_sent"]);
  const steadyRows = [
    [`steady state, jobs/s (${STEADY_WORKERS} workers)`, "steady", "higher"],
    [`claim p50 ms (${RATE}/s, ${RATE_WORKERS} workers)`, "rate_p50", "lower"],
    [`claim p99 ms (${RATE}/s, ${RATE_WORKERS} workers)`, "rate_p99", "lower"],
    ["  (rate the producer reached)", "rate_sent", "higher"],
  ];
  const steadyRatios = {};
  const title = `Steady state: ${DEPTH} jobs kept queued, one-step workflows for pg_workflow; claim latency at a fixed rate; the SQL loops poll every ${POLL_MS} ms when empty; medians of ${ROUNDS} rounds, ${SECONDS} s runs`;
  const queuePeers = steadyNames.filter((n) => !n.startsWith("pg_workflow") && !n.startsWith("pgmq"));
  const pgmq = steadyNames.filter((n) => n.startsWith("pgmq"));
  if (steadyNames.some((n) => n.startsWith("pg_workflow")) && queuePeers.length > 0) {
    steadyRatios.against_job_queues = table(`${title}\n(ratio: against the best job queue)`, steadyNames, steadyRows, steadyMedians, queuePeers);
  }
  if (steadyNames.some((n) => n.startsWith("pg_workflow")) && pgmq.length > 0) {
    steadyRatios.against_pgmq_style = table("(the same medians; ratio: against the pgmq-style queue)", steadyNames, steadyRows, steadyMedians, pgmq);
  }
  console.log("(ratio > 1: pg_workflow ahead; for latency the ratio is the best peer's over ours)");
  writeFileSync(
    outFile,
    JSON.stringify(
      {
        rounds: ROUNDS,
        seconds: SECONDS,
        concurrency: CONCURRENCY,
        backlog: BACKLOG,
        runs: results,
        medians,
        ratios,
        steady: { depth: DEPTH, workers: STEADY_WORKERS, rate: RATE, rate_workers: RATE_WORKERS, poll_ms: POLL_MS, runs: steadyResults, medians: steadyMedians, ratios: steadyRatios },
      },
      null,
      2,
    ),
  );
  console.log(`results written to ${outFile}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
