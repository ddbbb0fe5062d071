// make bench-peers: pg_workflow beside the job queues a user would pick instead
// (pg-boss, graphile-worker), on one cluster, driven from this one Node process with the
// same concurrency and the same producer. Workloads: three-step workflows and single jobs
// (throughput with one enqueuing client), pickup latency on an idle system (enqueue
// commit -> handler start), backlog drain. Medians of interleaved rounds; ratios against
// the best peer; JSON written.
//
//   node run.mjs CONNECTION_STRING OUT.json
// Environment: PEERS_ROUNDS (3), PEERS_SECONDS (8), PEERS_CONCURRENCY (8),
// PEERS_BACKLOG (5000), PEERS_PICKUPS (200), PEERS_ONLY (a part of the systems' names).

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
    async startWorkers(tally) {
      const finished = async (input) => {
        tally.done++;
        const key = input?.input?.key; // a step's input holds the workflow input under "input"
        if (key !== undefined) tally.starts.set(key, performance.now());
        return null;
      };
      const handlers = { job: finished, s1: async () => null, s2: async () => null, s3: finished };
      const options = { connection: connectionString, queue: "peers", handlers, onError: quiet, dispatchIntervalMs: false };
      const workers =
        mode === "batch"
          ? [new Worker({ ...options, concurrency: CONCURRENCY })]
          : Array.from({ length: CONCURRENCY }, () => new Worker({ ...options, concurrency: 1, completionBatchSize: 1 }));
      await Promise.all(workers.map((w) => w.start()));
      return () => Promise.all(workers.map((w) => w.stop()));
    },
    close: () => pool.end(),
  };
}

// --- pg-boss ----------------------------------------------------------------------------
// Its setup for low latency: LISTEN/NOTIFY on, notify-enabled queues, the shortest polling
// intervals (0.5 s; with notify on, the default backstop is 30 s). Two ways to run 8 at
// once: 8 local workers fetching one job each, or one fetching batches of 8 (processed
// together) that keeps fetching while batches come back full.
function pgBoss(batched) {
  const boss = new PgBoss({ connectionString, useListenNotify: true, max: 10 });
  boss.on("error", quiet);
  let run = 0;
  let queues = {};
  return {
    name: batched ? "pg-boss 12.38.0, batches of 8" : "pg-boss 12.38.0, 8 x 1",
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
    async startWorkers(tally) {
      const polling = { pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 };
      const options = batched
        ? { ...polling, localConcurrency: 1, batchSize: CONCURRENCY, burstWhenBatchFull: true }
        : { ...polling, localConcurrency: CONCURRENCY, batchSize: 1 };
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
    async startWorkers(tally) {
      const finished = async (payload) => {
        tally.done++;
        if (payload?.key !== undefined) tally.starts.set(payload.key, performance.now());
      };
      const runner = await runGraphile({
        connectionString,
        concurrency: CONCURRENCY,
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

// --- workloads ---------------------------------------------------------------------------
// Throughput: one producer keeps up to IN_FLIGHT unfinished (each enqueue its own
// transaction); completions per second over SECONDS after a warm-up.
async function throughput(system, kind) {
  await system.reset();
  const tally = new Tally();
  const stop = await system.startWorkers(tally);
  let enqueued = 0;
  let producing = true;
  const producer = (async () => {
    while (producing) {
      if (enqueued - tally.done >= IN_FLIGHT) {
        await sleep(1);
        continue;
      }
      enqueued++;
      await (kind === "workflow" ? system.enqueueWorkflow({ n: enqueued }) : system.enqueueJob({ n: enqueued }));
    }
  })();
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
  const latencies = [...committed].map(([key, at]) => Math.max(0, (tally.starts.get(key) ?? Infinity) - at)).sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return { p50: at(0.5), p99: at(0.99) };
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

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  // PEERS_ONLY=text: only the systems whose name contains it (a quick look at one).
  const systems = [pgWorkflow("batch"), pgWorkflow("one"), pgBoss(false), pgBoss(true), graphileWorker()].filter(
    (s) => s.name.includes(process.env.PEERS_ONLY ?? ""),
  );
  for (const s of systems) await s.prepare();
  const results = Object.fromEntries(systems.map((s) => [s.name, { workflows: [], jobs: [], pickup_p50: [], pickup_p99: [], drain: [] }]));
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
  }
  for (const s of systems) await s.close();

  const rows = [
    ["3-step workflows/s", "workflows", "higher"],
    ["single jobs/s", "jobs", "higher"],
    ["pickup p50 ms (idle)", "pickup_p50", "lower"],
    ["pickup p99 ms (idle)", "pickup_p99", "lower"],
    ["backlog drain, jobs/s", "drain", "higher"],
  ];
  const names = systems.map((s) => s.name);
  const medians = Object.fromEntries(names.map((n) => [n, Object.fromEntries(rows.map(([, k]) => [k, median(results[n][k])]))]));
  const peers = names.filter((n) => !n.startsWith("pg_workflow"));
  const ours = names.filter((n) => n.startsWith("pg_workflow"));
  console.log(`\npg_workflow beside the job queues: medians of ${ROUNDS} interleaved rounds, concurrency ${CONCURRENCY}, one enqueuing client, ${SECONDS} s runs`);
  console.log(["workload".padEnd(24), ...names.map((n) => n.padStart(Math.max(12, n.length))), "best pgw / best peer".padStart(22)].join(" "));
  const ratios = {};
  for (const [label, key, better] of rows) {
    const pick = (list) => (better === "higher" ? Math.max : Math.min)(...list.map((n) => medians[n][key]));
    const ratio = better === "higher" ? pick(ours) / pick(peers) : pick(peers) / pick(ours);
    ratios[key] = ratio;
    const cells = names.map((n) => {
      const v = medians[n][key];
      return (key.startsWith("pickup") ? v.toFixed(2) : v.toFixed(0)).padStart(Math.max(12, n.length));
    });
    console.log([label.padEnd(24), ...cells, `${ratio.toFixed(2)}x`.padStart(22)].join(" "));
  }
  console.log("(ratio > 1: pg_workflow ahead; for latency the ratio is the best peer's over ours)");
  writeFileSync(
    outFile,
    JSON.stringify({ rounds: ROUNDS, seconds: SECONDS, concurrency: CONCURRENCY, backlog: BACKLOG, runs: results, medians, ratios }, null, 2),
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
