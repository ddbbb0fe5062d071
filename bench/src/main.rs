//! `make bench`: pg_workflow next to the raw-Postgres ceiling, measured in the same run
//! on the same cluster. Every workload is self-sustaining (each finished job starts the
//! next in the same transaction), so the backlog stays constant while it is measured.
//!
//!   W1  three-step declared workflows, workers claim in batches of 10 and complete each
//!       batch in one call (workflow_complete_activities): one commit per batch
//!   W3  single-activity workflows (the job-queue case), batches of 1
//!   ceiling  the same cycle on a plain table: SKIP LOCKED claim, then one transaction
//!            that marks the job (W3) or the batch (W1) done and inserts the next ones
//!   W2  pickup latency: LISTENing workers, single-step workflows started at a steady
//!       pace, from the start's commit to the worker's claim
//!
//! Usage: pg_workflow_bench <conninfo without dbname> <seconds per run> <result.json>

use fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const WORKER_COUNTS: [usize; 3] = [1, 4, 16];
const SEED: i64 = 2000;
const WARMUP: Duration = Duration::from_secs(2);

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).expect("connect")
}

fn fresh_db(base: &str, name: &str) -> String {
    let mut admin = connect(&format!("{base} dbname=postgres"));
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    format!("{base} dbname={name}")
}

fn wal_lsn(db: &mut Client) -> i64 {
    db.query_one("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8", &[]).unwrap().get(0)
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    ThreeStep,
    Job,
}

#[derive(Clone, Copy, PartialEq)]
enum System {
    PgWorkflow,
    Ceiling,
}

struct Measured {
    steps_per_s: f64,
    workflows_per_s: f64,
    commits_per_step: f64,
    wal_bytes_per_step: f64,
}

fn setup(url: &str, system: System) {
    let mut db = connect(url);
    match system {
        System::PgWorkflow => db
            .batch_execute(&format!(
                r#"CREATE EXTENSION pg_workflow;
                   SELECT workflow_define('three', '{{"steps": [{{"name": "a", "activity": "t"}},
                       {{"name": "b", "activity": "t", "depends_on": ["a"]}},
                       {{"name": "c", "activity": "t", "depends_on": ["b"]}}]}}');
                   SELECT workflow_define('job', '{{"steps": [{{"name": "run", "activity": "t"}}]}}');
                   SELECT count(workflow_start('three', '{{"doc": 1}}')) FROM generate_series(1, {SEED});
                   SELECT count(workflow_start('job', '{{"doc": 1}}')) FROM generate_series(1, {SEED});
                   {limit}"#,
                // PGWORKFLOW_BENCH_QUEUE_LIMIT=1: the queue has limits that never bind (a
                // concurrency limit of 10,000 and a rate of a million a second), so every
                // claim pays for admission without being refused.
                limit = if std::env::var("PGWORKFLOW_BENCH_QUEUE_LIMIT").is_ok() {
                    r#"SELECT workflow_queue_configure('default', '{"max_running": 10000, "rate_limit": {"count": 1000000, "per": "1 second"}}');"#
                } else {
                    ""
                }
            ))
            .unwrap(),
        System::Ceiling => db
            .batch_execute(&format!(
                r#"CREATE TABLE ceiling_jobs (id bigserial PRIMARY KEY, queue text NOT NULL DEFAULT 'default',
                       status text NOT NULL DEFAULT 'scheduled', payload jsonb NOT NULL DEFAULT '{{}}',
                       attempt int NOT NULL DEFAULT 0, worker text, lease_expires_at timestamptz,
                       created_at timestamptz NOT NULL DEFAULT now());
                   CREATE INDEX ON ceiling_jobs (queue, id) WHERE status = 'scheduled';
                   INSERT INTO ceiling_jobs (payload) SELECT '{{"doc": 1}}' FROM generate_series(1, {SEED});"#
            ))
            .unwrap(),
    }
}

/// Runs `workers` threads for warm-up + `secs`; counts steps and commits in the window.
fn run(url: &str, system: System, workload: Workload, workers: usize, secs: u64) -> Measured {
    let batch: i32 = if workload == Workload::ThreeStep { 10 } else { 1 };
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let steps = Arc::new(AtomicU64::new(0));
    let workflows = Arc::new(AtomicU64::new(0));
    let commits = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (url, measuring, stop) = (url.to_owned(), measuring.clone(), stop.clone());
            let (steps, workflows, commits) = (steps.clone(), workflows.clone(), commits.clone());
            thread::spawn(move || {
                let mut db = connect(&url);
                let worker = format!("bench-{w}");
                let (claim, complete) = match system {
                    System::PgWorkflow => (
                        db.prepare("SELECT activity_id, step_key, attempt FROM workflow_claim('default', $1, $2, '5 minutes')").unwrap(),
                        db.prepare(match workload {
                            // The whole claimed batch in one call and one commit; finished
                            // workflows are replaced by new ones in the same transaction.
                            Workload::ThreeStep => "SELECT workflow_complete_activities($1::uuid[], NULL, $2::int4[]), \
                                 (SELECT count(workflow_start('three', '{\"doc\": 1}')) FROM generate_series(1, $3::int4))",
                            Workload::Job => "SELECT workflow_complete_activity($1, '{\"ok\": true}', $3), \
                                 workflow_start('job', '{\"doc\": 1}'), $2::text",
                        })
                        .unwrap(),
                    ),
                    System::Ceiling => (
                        db.prepare(
                            "UPDATE ceiling_jobs SET status = 'running', attempt = attempt + 1, worker = $1, \
                               lease_expires_at = now() + interval '5 minutes' \
                             WHERE id IN (SELECT id FROM ceiling_jobs WHERE status = 'scheduled' AND queue = 'default' \
                                          ORDER BY id LIMIT $2::int4 FOR UPDATE SKIP LOCKED) \
                             RETURNING id, 'x'::text, attempt",
                        )
                        .unwrap(),
                        db.prepare(match workload {
                            Workload::ThreeStep => "WITH done AS (UPDATE ceiling_jobs SET status = 'done' \
                                   WHERE id = ANY($1::int8[]) AND attempt = ANY($2::int4[]) AND $3::int4 IS NOT NULL RETURNING payload) \
                                 INSERT INTO ceiling_jobs (payload) SELECT payload FROM done",
                            Workload::Job => "WITH done AS (UPDATE ceiling_jobs SET status = 'done' WHERE id = $1 \
                                   AND $2::text IS NOT NULL AND attempt = $3 RETURNING payload) \
                                 INSERT INTO ceiling_jobs (payload) SELECT payload FROM done",
                        })
                        .unwrap(),
                    ),
                };
                while !stop.load(Ordering::Relaxed) {
                    let rows = db.query(&claim, &[&worker, &batch]).unwrap();
                    let counting = measuring.load(Ordering::Relaxed);
                    if counting {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                    if workload == Workload::ThreeStep {
                        if rows.is_empty() {
                            continue;
                        }
                        let attempts: Vec<i32> = rows.iter().map(|r| r.get(2)).collect();
                        let finished = rows.iter().filter(|r| r.get::<_, String>(1) == "c").count() as i32;
                        match system {
                            System::PgWorkflow => {
                                let ids: Vec<UuidBytes> = rows.iter().map(|r| r.get(0)).collect();
                                db.execute(&complete, &[&ids, &attempts, &finished]).unwrap();
                            }
                            System::Ceiling => {
                                let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                                db.execute(&complete, &[&ids, &attempts, &finished]).unwrap();
                            }
                        }
                        if counting {
                            commits.fetch_add(1, Ordering::Relaxed);
                            steps.fetch_add(rows.len() as u64, Ordering::Relaxed);
                            let wf = if system == System::Ceiling { rows.len() as u64 } else { finished as u64 };
                            workflows.fetch_add(wf, Ordering::Relaxed);
                        }
                        continue;
                    }
                    for row in rows {
                        let key: String = row.get(1);
                        let attempt: i32 = row.get(2);
                        match system {
                            System::PgWorkflow => {
                                let activity: UuidBytes = row.get(0);
                                db.execute(&complete, &[&activity, &key, &attempt]).unwrap();
                            }
                            System::Ceiling => {
                                let id: i64 = row.get(0);
                                db.execute(&complete, &[&id, &key, &attempt]).unwrap();
                            }
                        }
                        if counting {
                            steps.fetch_add(1, Ordering::Relaxed);
                            commits.fetch_add(1, Ordering::Relaxed);
                            if workload == Workload::Job || key == "c" || system == System::Ceiling {
                                workflows.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let mut db = connect(url);
    thread::sleep(WARMUP);
    let wal_before = wal_lsn(&mut db);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    thread::sleep(Duration::from_secs(secs));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let wal = (wal_lsn(&mut db) - wal_before) as f64;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let steps = steps.load(Ordering::Relaxed) as f64;
    Measured {
        steps_per_s: steps / elapsed,
        workflows_per_s: workflows.load(Ordering::Relaxed) as f64 / elapsed,
        commits_per_step: commits.load(Ordering::Relaxed) as f64 / steps.max(1.0),
        wal_bytes_per_step: wal / steps.max(1.0),
    }
}

/// A uuid column read as raw bytes and sent back as a uuid (no uuid crate needed).
struct UuidBytes([u8; 16]);

impl<'a> postgres::types::FromSql<'a> for UuidBytes {
    fn from_sql(_: &postgres::types::Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(UuidBytes(raw.try_into()?))
    }
    fn accepts(ty: &postgres::types::Type) -> bool {
        *ty == postgres::types::Type::UUID
    }
}

impl postgres::types::ToSql for UuidBytes {
    fn to_sql(
        &self,
        _: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(postgres::types::IsNull::No)
    }
    fn accepts(ty: &postgres::types::Type) -> bool {
        *ty == postgres::types::Type::UUID
    }
    postgres::types::to_sql_checked!();
}

impl std::fmt::Debug for UuidBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x?}", self.0)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// W2: LISTENing workers; starts at a steady pace; commit-to-claim latency in ms.
fn pickup_latency(url: &str, secs: u64) -> Vec<f64> {
    let started_at: Arc<Mutex<HashMap<[u8; 16], Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (url, started_at, latencies, stop) =
                (url.to_owned(), started_at.clone(), latencies.clone(), stop.clone());
            thread::spawn(move || {
                let mut db = connect(&url);
                db.batch_execute("LISTEN workflow_activity_ready").unwrap();
                let worker = format!("listener-{w}");
                while !stop.load(Ordering::Relaxed) {
                    let _ = db.notifications().timeout_iter(Duration::from_millis(200)).next();
                    loop {
                        let rows = db
                            .query(
                                "SELECT activity_id, execution_id, attempt FROM workflow_claim('ping', $1, 10)",
                                &[&worker],
                            )
                            .unwrap();
                        let now = Instant::now();
                        if rows.is_empty() {
                            break;
                        }
                        for row in &rows {
                            let exec: UuidBytes = row.get(1);
                            // The start's commit time is recorded right after it returns; wait for it.
                            let t0 = loop {
                                if let Some(t) = started_at.lock().unwrap().get(&exec.0) {
                                    break *t;
                                }
                                thread::yield_now();
                            };
                            latencies.lock().unwrap().push(now.saturating_duration_since(t0).as_secs_f64() * 1000.0);
                            let activity: UuidBytes = row.get(0);
                            let attempt: i32 = row.get(2);
                            db.execute("SELECT workflow_complete_activity($1, 'null', $2)", &[&activity, &attempt])
                                .unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    let mut starter = connect(url);
    let start = starter.prepare("SELECT workflow_start('ping')").unwrap();
    thread::sleep(Duration::from_millis(500));
    let pace = Duration::from_millis(20);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let tick = Instant::now();
        let row = starter.query_one(&start, &[]).unwrap();
        let committed = Instant::now();
        let id: UuidBytes = row.get(0);
        started_at.lock().unwrap().insert(id.0, committed);
        thread::sleep(pace.saturating_sub(tick.elapsed()));
    }
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for h in workers {
        h.join().unwrap();
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(|a, b| a.partial_cmp(b).unwrap());
    l
}

/// CPU used by pg_workflow's background processes over `secs` of idleness, in percent of one core.
fn idle_cpu(url: &str, secs: u64) -> f64 {
    let mut db = connect(url);
    let pids: Vec<i32> = db
        .query("SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'pg_workflow%'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let ticks = |pid: i32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let fields: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
                Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    let before: u64 = pids.iter().map(|p| ticks(*p)).sum();
    thread::sleep(Duration::from_secs(secs));
    let after: u64 = pids.iter().map(|p| ticks(*p)).sum();
    (after - before) as f64 / 100.0 / secs as f64 * 100.0
}

/// `make bench-long`: `total` three-step executions through 4 workers (batch claims and
/// completions), reported per tenth of the run: is it as fast at the end as at the start?
fn long_run(base: &str, total: u64) {
    let url = fresh_db(base, "pgw_bench_long");
    setup(&url, System::PgWorkflow);
    let started = Arc::new(AtomicU64::new(SEED as u64)); // the three-step executions setup seeded
    let finished = Arc::new(AtomicU64::new(0));
    let claim_ms: Arc<Mutex<Vec<Vec<f64>>>> = Arc::new(Mutex::new(vec![Vec::new(); 10]));
    let tenth = (total / 10).max(1);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (url, started, finished, claim_ms) = (url.clone(), started.clone(), finished.clone(), claim_ms.clone());
            thread::spawn(move || {
                let mut db = connect(&url);
                let worker = format!("long-{w}");
                let claim = db
                    .prepare(
                        "SELECT activity_id, step_key, attempt FROM workflow_claim('default', $1, $2, '5 minutes')",
                    )
                    .unwrap();
                let complete = db
                    .prepare(
                        "SELECT workflow_complete_activities($1::uuid[], NULL, $2::int4[]), \
                         (SELECT count(workflow_start('three', '{\"doc\": 1}')) FROM generate_series(1, $3::int4))",
                    )
                    .unwrap();
                while finished.load(Ordering::Relaxed) < total {
                    let t = Instant::now();
                    let rows = db.query(&claim, &[&worker, &10i32]).unwrap();
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    if rows.is_empty() {
                        thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    let decile = ((finished.load(Ordering::Relaxed) / tenth) as usize).min(9);
                    claim_ms.lock().unwrap()[decile].push(ms);
                    let ids: Vec<UuidBytes> = rows.iter().map(|r| r.get(0)).collect();
                    let attempts: Vec<i32> = rows.iter().map(|r| r.get(2)).collect();
                    let done = rows.iter().filter(|r| r.get::<_, String>(1) == "c").count() as u64;
                    // Replace finished workflows until `total` have been started.
                    let mut replace = 0i32;
                    for _ in 0..done {
                        if started.fetch_add(1, Ordering::Relaxed) < total {
                            replace += 1;
                        }
                    }
                    db.execute(&complete, &[&ids, &attempts, &replace]).unwrap();
                    finished.fetch_add(done, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut db = connect(&url);
    println!(
        "{:>6} {:>12} {:>14} {:>16} {:>16} {:>12}",
        "tenth", "wf/s", "claim p50 ms", "dead activity", "dead execution", "size MB"
    );
    let mut last = (Instant::now(), 0u64);
    let mut rows = Vec::new();
    for d in 0..10u64 {
        while finished.load(Ordering::Relaxed) < (d + 1) * tenth {
            thread::sleep(Duration::from_millis(100));
        }
        let now = (Instant::now(), finished.load(Ordering::Relaxed));
        let rate = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64();
        last = now;
        let mut lat = claim_ms.lock().unwrap()[d as usize].clone();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let stats = db
            .query_one(
                "SELECT coalesce(sum(n_dead_tup) FILTER (WHERE relname = 'workflow_activity'), 0)::int8, \
                        coalesce(sum(n_dead_tup) FILTER (WHERE relname = 'workflow_execution'), 0)::int8, \
                        (pg_total_relation_size('workflow_activity') + pg_total_relation_size('workflow_execution'))::int8 \
                 FROM pg_stat_user_tables",
                &[],
            )
            .unwrap();
        let (dead_a, dead_e, size): (i64, i64, i64) = (stats.get(0), stats.get(1), stats.get(2));
        println!(
            "{:>6} {:>12.0} {:>14.2} {:>16} {:>16} {:>12.1}",
            d + 1,
            rate,
            percentile(&lat, 0.5),
            dead_a,
            dead_e,
            size as f64 / 1e6
        );
        rows.push(json!({"tenth": d + 1, "workflows_per_s": rate, "claim_p50_ms": percentile(&lat, 0.5),
                         "dead_activity": dead_a, "dead_execution": dead_e, "size_bytes": size}));
    }
    for w in workers {
        w.join().unwrap();
    }
    let first = rows[0]["workflows_per_s"].as_f64().unwrap_or(0.0);
    let last = rows[9]["workflows_per_s"].as_f64().unwrap_or(0.0);
    println!("last tenth / first tenth throughput: {:.2}", last / first);
    std::fs::write(
        "bench/results-long.json",
        serde_json::to_string_pretty(&json!({"executions": total, "tenths": rows})).unwrap(),
    )
    .unwrap();
    println!("results written to bench/results-long.json");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args.get(1).cloned().unwrap_or_else(|| "host=127.0.0.1 port=28817 user=postgres".into());
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let out = args.get(3).cloned().unwrap_or_else(|| "bench/results.json".into());
    if let Some(total) = std::env::var("PGWORKFLOW_BENCH_LONG").ok().and_then(|v| v.parse().ok()) {
        println!(
            "pg_workflow long run: {total} three-step executions, 4 workers, batches of 10, workflow.retention on"
        );
        long_run(&base, total);
        return;
    }
    let mut results = Vec::new();
    let mode = match std::env::var("PGWORKFLOW_BENCH_MODE").as_deref() {
        Ok("no_preload") => "without the preload (each transaction notifies)",
        _ => "preloaded (the dispatcher notifies)",
    };
    println!("pg_workflow benchmark, {mode}: {secs} s per run after {} s warm-up; each figure beside the ceiling of the same cycle on a plain table", WARMUP.as_secs());
    println!();
    println!(
        "{:<34} {:>7} {:>14} {:>14} {:>7} {:>12} {:>12}",
        "workload", "workers", "pg_workflow", "ceiling", "ratio", "commits/step", "WAL B/step"
    );
    // PGWORKFLOW_BENCH_ONLY=w1|w3|w2 and PGWORKFLOW_BENCH_WORKERS=4 narrow a run while profiling.
    let only = std::env::var("PGWORKFLOW_BENCH_ONLY").unwrap_or_default();
    let worker_counts: Vec<usize> = std::env::var("PGWORKFLOW_BENCH_WORKERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| WORKER_COUNTS.to_vec());
    for (workload, label, key) in [
        (Workload::Job, "W3 single-activity jobs/s", "w3"),
        (Workload::ThreeStep, "W1 3-step workflows, batch 10", "w1"),
    ] {
        if !only.is_empty() && only != key {
            continue;
        }
        for &workers in &worker_counts {
            let pgw_url = fresh_db(&base, "pgw_bench");
            setup(&pgw_url, System::PgWorkflow);
            let pgw = run(&pgw_url, System::PgWorkflow, workload, workers, secs);
            let ceil_url = fresh_db(&base, "pgw_bench_ceiling");
            setup(&ceil_url, System::Ceiling);
            let ceiling = run(&ceil_url, System::Ceiling, workload, workers, secs);
            let ratio = pgw.steps_per_s / ceiling.steps_per_s;
            let shown = match workload {
                Workload::Job => format!("{:.0} jobs/s", pgw.steps_per_s),
                Workload::ThreeStep => format!("{:.0} wf/s", pgw.workflows_per_s),
            };
            println!(
                "{:<34} {:>7} {:>14} {:>14} {:>7.2} {:>12} {:>12}",
                label,
                workers,
                shown,
                format!("{:.0} steps/s", ceiling.steps_per_s),
                ratio,
                format!("{:.2} / {:.2}", pgw.commits_per_step, ceiling.commits_per_step),
                format!("{:.0} / {:.0}", pgw.wal_bytes_per_step, ceiling.wal_bytes_per_step),
            );
            if workload == Workload::ThreeStep {
                println!("{:<34} {:>7} {:>14}", "", "", format!("{:.0} steps/s", pgw.steps_per_s));
            }
            results.push(json!({
                "workload": label, "workers": workers,
                "pg_workflow": {"steps_per_s": pgw.steps_per_s, "workflows_per_s": pgw.workflows_per_s,
                                "commits_per_step": pgw.commits_per_step, "wal_bytes_per_step": pgw.wal_bytes_per_step},
                "ceiling": {"steps_per_s": ceiling.steps_per_s, "commits_per_step": ceiling.commits_per_step,
                            "wal_bytes_per_step": ceiling.wal_bytes_per_step},
                "ratio_steps": ratio,
            }));
        }
    }
    if !only.is_empty() && only != "w2" {
        return;
    }
    let url = fresh_db(&base, "pgw_bench_latency");
    connect(&url)
        .batch_execute(r#"CREATE EXTENSION pg_workflow; SELECT workflow_define('ping', '{"steps": [{"name": "a", "activity": "t", "queue": "ping"}]}');"#)
        .unwrap();
    thread::sleep(Duration::from_secs(1)); // the launcher starts this database's dispatcher (if preloaded)
    let lat = pickup_latency(&url, secs);
    let (p50, p95, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.95), percentile(&lat, 0.99));
    println!();
    println!("W2 pickup latency (start commit -> claim, 4 LISTENing workers, 50 starts/s): p50 {p50:.2} ms, p95 {p95:.2} ms, p99 {p99:.2} ms ({} samples)", lat.len());
    let cpu = idle_cpu(&url, 5);
    println!("idle CPU of pg_workflow's background processes: {cpu:.2}% of one core (5 s idle)");
    let report = json!({
        "mode": mode, "seconds_per_run": secs, "warmup_seconds": WARMUP.as_secs(), "throughput": results,
        "pickup_latency_ms": {"p50": p50, "p95": p95, "p99": p99, "samples": lat.len()},
        "idle_cpu_percent": cpu,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("results written to {out}");
}
