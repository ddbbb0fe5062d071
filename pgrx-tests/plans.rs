// The shape of the engine's plans: whatever statistics a generic plan was made with, no
// engine statement may read its rows in a way that grows with the tables (a sequential
// scan, or a whole non-partial index), because the plan is kept while the tables grow.

/// Every path of the engine once, so that its statements are prepared in this backend.
fn exercise_the_engine() {
    Spi::run(
        r#"
        CREATE TABLE plan_effects (n int);
        SELECT workflow_define('plan_chain', '{"steps": [
            {"name": "a", "activity": "t", "retry": {"max_attempts": 3, "initial_interval": "1ms", "jitter": 0}},
            {"name": "b", "activity": "t", "depends_on": ["a"], "heartbeat_timeout": "1m"}],
            "compensate": {"a": "undo"}}');
        SELECT workflow_define('plan_dag', '{"steps": [
            {"name": "split", "activity": "t"},
            {"name": "each", "activity": "t", "depends_on": ["split"], "map": "split", "max_concurrency": 2},
            {"name": "nap", "sleep": "1ms", "depends_on": ["each"]},
            {"name": "ok", "wait_signal": "ok", "timeout": "1h", "depends_on": ["each"]},
            {"name": "store", "sql": "INSERT INTO plan_effects VALUES (1)", "depends_on": ["nap", "ok"]},
            {"name": "child", "workflow": "plan_chain", "depends_on": ["store"]}],
            "timeout": "1 day"}');
        SELECT workflow_start('plan_chain', '{}', 'k1');
        SELECT workflow_start('plan_chain', '{}', 'k1');
        SELECT workflow_start('plan_chain', '{}', NULL, '{"delay": "1h"}');
        SELECT workflow_start('plan_dag', '{}', 'dag');
        SELECT workflow_start('plan_client', '{}', NULL, '{"client_driven": true}');
        "#,
    )
    .unwrap();
    let dag = one::<Uuid>("SELECT id FROM workflow_execution WHERE workflow_type = 'plan_dag'");
    let client = one::<Uuid>("SELECT id FROM workflow_execution WHERE workflow_type = 'plan_client'");
    run(&format!("SELECT workflow_signal('{dag}', 'ok', '1', 'sig-1')"));
    run(&format!("SELECT workflow_signal('{dag}', 'ok', '1', 'sig-1')"));
    // Work the queue until nothing is claimable: fail each activity once, heartbeat it,
    // complete it in batches and alone; split returns three items.
    for round in 0..20 {
        let claimed: Vec<(Uuid, String, i32)> = Spi::connect(|c| {
            c.select("SELECT activity_id, step_key, attempt FROM workflow_claim('default', 'w', 10)", None, &[])
                .unwrap()
                .map(|r| (r.get(1).unwrap().unwrap(), r.get(2).unwrap().unwrap(), r.get(3).unwrap().unwrap()))
                .collect()
        });
        if claimed.is_empty() && round > 0 {
            break;
        }
        for (id, key, attempt) in claimed {
            run(&format!("SELECT workflow_heartbeat('{id}', {attempt}, '{{\"p\": 1}}')"));
            if attempt == 1 && key == "a" {
                run(&format!("SELECT workflow_fail_activity('{id}', '\"flaky\"', {attempt})"));
                run(&format!("UPDATE workflow_activity SET scheduled_at = now() - interval '1s' WHERE id = '{id}'"));
            } else if key == "split" {
                run(&format!(
                    "SELECT workflow_complete_activities(ARRAY['{id}']::uuid[], ARRAY['[1, 2, 3]']::jsonb[])"
                ));
            } else {
                run(&format!("SELECT workflow_complete_activity('{id}', '1', {attempt})"));
            }
        }
        run("UPDATE workflow_activity SET scheduled_at = now() - interval '1s' WHERE status = 'waiting' AND kind = 'sleep'");
        run("SELECT workflow_dispatch()");
    }
    run(&format!("SELECT workflow_status('{dag}')"));
    run(&format!("SELECT workflow_await('{dag}', '1 millisecond')"));
    // Client-driven: steps of each kind, then the end.
    run(&format!("SELECT workflow_schedule_activity('{client}', 's1', 't', '{{}}')"));
    run(&format!("SELECT workflow_schedule_activity('{client}', 's1', 't', '{{}}')"));
    run(&format!("SELECT workflow_schedule_activity('{client}', 'nap', NULL, '{{}}', '{{\"sleep\": \"1h\"}}')"));
    run(&format!("SELECT workflow_complete('{client}', '1')"));
    // Replay turns, one activity claimed by id, a client-driven child, finding by key.
    let replayed = one::<Uuid>("SELECT workflow_start('plan_replay', '{}', 'r1', '{\"client_driven\": true}')");
    run("SELECT workflow_find('plan_replay', 'r1')");
    let token = one::<i32>("SELECT lease_token FROM workflow_claim_executions(ARRAY['plan_replay'], 'p')");
    let step = one::<Uuid>(&format!(
        "SELECT workflow_schedule_activity('{replayed}', 'one', 'own', '{{}}', '{{\"lease_token\": {token}}}')"
    ));
    run(&format!("SELECT workflow_schedule_activity('{replayed}', 'kid', NULL, '{{}}', '{{\"workflow\": \"plan_kid\", \"client_driven\": true}}')"));
    run(&format!("SELECT workflow_renew_execution('{replayed}', {token})"));
    run(&format!("SELECT * FROM workflow_claim_activity('{step}', 'p')"));
    run(&format!("SELECT workflow_fail_activity('{step}', '\"again\"', 1)"));
    run(&format!("SELECT workflow_release_execution('{replayed}', {token})"));
    run(&format!("UPDATE workflow_execution SET ready_at = now() - interval '1s' WHERE id = '{replayed}'"));
    let token = one::<i32>("SELECT lease_token FROM workflow_claim_executions(ARRAY['plan_replay'], 'p')");
    run(&format!("SELECT workflow_complete('{replayed}', '1', {token})"));
    // Failure for good, compensation, cancellation, resume, expiry.
    let chain = one::<Uuid>("SELECT workflow_start('plan_chain', '{}', 'k2')");
    let (a, _, attempt) = claim_one("default");
    complete(&a, "1");
    let (b, _, attempt_b) = claim_one("default");
    run(&format!("SELECT workflow_fail_activity('{b}', '\"no\"', {attempt_b}, false)"));
    let _ = attempt;
    let (undo, _, undo_attempt) = claim_one("default");
    run(&format!("SELECT workflow_complete_activity('{undo}', 'null', {undo_attempt})"));
    run(&format!("SELECT workflow_retry('{chain}')"));
    run(&format!("SELECT workflow_cancel('{chain}', 'plan test')"));
    let lease = one::<Uuid>("SELECT workflow_start('plan_chain', '{}', 'k3')");
    let (c, _, _) = claim_one("default");
    run(&format!("UPDATE workflow_activity SET lease_expires_at = now() - interval '1s' WHERE id = '{c}'"));
    run(&format!("UPDATE workflow_execution SET deadline = now() - interval '1s' WHERE id = '{lease}'"));
    run("UPDATE workflow_execution SET started_at = now() - interval '1s' WHERE status = 'pending'");
    run("SELECT workflow_dispatch()");
    // A stale heartbeat (its error caught, the statements stay prepared).
    run(&format!("DO $$ BEGIN PERFORM workflow_heartbeat('{c}', 999); EXCEPTION WHEN OTHERS THEN NULL; END $$"));
    // A role bound to a tenant: its start, status, claim and completion are checked.
    run("CREATE ROLE plan_tenant_role");
    run("SELECT workflow_grant('plan_tenant_role', 'starter'), workflow_grant('plan_tenant_role', 'worker')");
    run("SELECT workflow_bind_tenant('plan_tenant_role', 'plan-t')");
    run("SET ROLE plan_tenant_role");
    let own = one::<Uuid>("SELECT workflow_start('plan_chain', '{}', 'tenant-key')");
    run(&format!("SELECT workflow_status('{own}')"));
    let (mine, _, attempt) = claim_one("default");
    run(&format!("SELECT workflow_complete_activity('{mine}', '1', {attempt})"));
    run("RESET ROLE");
    run("SELECT workflow_unbind_tenant('plan_tenant_role')");
    // What operators read: stats, the inbox, metrics, a graph of each kind of execution.
    run("SELECT * FROM workflow_queue_stats()");
    run("SELECT workflow_execution_stats(now() - interval '1 hour')");
    run("SELECT * FROM workflow_waiting('ok')");
    run("SELECT workflow_metrics()");
    run(&format!("SELECT workflow_graph('{dag}'), workflow_graph('{client}', 'dot')"));
    // What only the dispatcher runs: its next due time, sql steps due, retention, NOTIFYs.
    Spi::connect_mut(|c| {
        crate::engine::dispatch::next_due(c, true).unwrap();
        crate::engine::dispatch::sql_due(c).unwrap();
        crate::engine::dispatch::purge(c, 1, 10).unwrap();
        crate::engine::notices::send(c, vec!["plan_test".into()], vec!["x".into()], true).unwrap();
        crate::engine::notices::announce_ready_executions(c, 10).unwrap();
    });
}

/// What the check knows of an index on a table that grows with work.
struct IndexShape {
    name: String,
    /// The first key column (`None` for an expression).
    leading: Option<String>,
    partial: bool,
}

/// Scans of the tables that grow with work (not definitions, which grow with deploys and
/// stay small) that read more than the rows they need. An index scan is bounded when its
/// condition constrains the index's leading column (it descends to the rows it wants),
/// when it reads the head of a partial index under a LIMIT (a queue's head, a due time),
/// or when it reads a partial index whole for an aggregate or keeps every row it reads
/// (the statement wants them all: a count of what is open, per tenant). A partial index read whole through a filter is not
/// bounded: `workflow_execution_open` holds every open execution, and a completion's plan
/// made while the statistics said "empty" read all of them to find one by id.
fn unbounded_scans(plan: &Value, indexes: &[IndexShape], under_limit: bool, counted: bool, found: &mut Vec<String>) {
    let tables = ["workflow_activity", "workflow_execution", "workflow_signal"];
    let node = plan["Node Type"].as_str().unwrap_or_default();
    let index_name = plan.get("Index Name").and_then(Value::as_str).unwrap_or_default();
    let index = indexes.iter().find(|i| i.name == index_name);
    let relation = plan.get("Relation Name").and_then(Value::as_str).unwrap_or_default();
    let scanned = tables.contains(&relation) || index.is_some();
    if scanned && node != "ModifyTable" && node != "Bitmap Heap Scan" {
        let bounded = match (node, index) {
            ("Index Scan" | "Index Only Scan" | "Bitmap Index Scan", Some(index)) => {
                let condition = plan.get("Index Cond").and_then(Value::as_str).unwrap_or_default();
                let descends = match &index.leading {
                    Some(column) => mentions(condition, column),
                    None => !condition.is_empty(),
                };
                let filtered = plan.get("Filter").is_some();
                descends || (index.partial && ((under_limit && node != "Bitmap Index Scan") || counted || !filtered))
            }
            _ => false,
        };
        if !bounded {
            found.push(format!("{node} on {relation} {index_name}"));
        }
    }
    let under_limit = under_limit || node == "Limit";
    let counted = counted || node == "Aggregate";
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for child in children {
            unbounded_scans(child, indexes, under_limit, counted, found);
        }
    }
}

/// Whether `condition` (EXPLAIN's text) names `column` as a whole word.
fn mentions(condition: &str, column: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    condition.match_indices(column).any(|(at, _)| {
        let before = condition[..at].chars().next_back();
        let after = condition[at + column.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

fn plans_that_read_whole_tables(stats: &str) -> Vec<String> {
    let indexes: Vec<IndexShape> = Spi::connect(|c| {
        c.select(
            "SELECT i.indexrelid::regclass::text, a.attname::text, i.indpred IS NOT NULL FROM pg_index i \
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid IN ('workflow_activity'::regclass, 'workflow_execution'::regclass, 'workflow_signal'::regclass)",
            None,
            &[],
        )
        .unwrap()
        .map(|r| IndexShape {
            name: r.get::<String>(1).unwrap().unwrap(),
            leading: r.get::<String>(2).unwrap(),
            partial: r.get::<bool>(3).unwrap().unwrap(),
        })
        .collect()
    });
    let statements = crate::engine::plan::prepared_statements();
    let mut bad = Vec::new();
    Spi::connect_mut(|c| {
        for stmt in &statements {
            let explained = crate::engine::plan::explain_generic(c, stmt).expect("EXPLAIN");
            let mut found = Vec::new();
            unbounded_scans(&explained[0]["Plan"], &indexes, false, false, &mut found);
            if !found.is_empty() {
                bad.push(format!("with {stats} statistics, {found:?} in: {}", stmt.sql));
            }
        }
    });
    bad
}

#[pg_test]
fn no_statistics_give_an_engine_statement_a_plan_that_grows_with_the_tables() {
    exercise_the_engine();
    let checked = crate::engine::plan::prepared_statements().len();
    assert!(checked >= 65, "only {checked} engine statements were prepared; the workload misses some paths");
    let mut bad = Vec::new();
    // Small tables, freshly analyzed: what a new database looks like.
    run("ANALYZE workflow_activity; ANALYZE workflow_execution; ANALYZE workflow_signal; ANALYZE workflow_definition");
    bad.extend(plans_that_read_whole_tables("small-table"));
    // The same tables as the planner sees them when they hold millions of rows.
    run("UPDATE pg_class SET reltuples = 5e7, relpages = 1 \
         WHERE oid IN ('workflow_activity'::regclass, 'workflow_execution'::regclass)");
    bad.extend(plans_that_read_whole_tables("large-table"));
    // No statistics at all, as right after CREATE EXTENSION.
    run("DELETE FROM pg_statistic WHERE starelid IN ('workflow_activity'::regclass, 'workflow_execution'::regclass)");
    run("UPDATE pg_class SET reltuples = -1, relpages = 0 \
         WHERE oid IN ('workflow_activity'::regclass, 'workflow_execution'::regclass)");
    bad.extend(plans_that_read_whole_tables("no"));
    // Analyzed while nearly everything had finished (a quiet hour: `status = 'running'`
    // looks as rare as an id), then a burst before the next ANALYZE: thousands of pending
    // and running executions, scheduled, running and waiting activities in the partial
    // indexes. This is what `DELETE` of every execution, `VACUUM ANALYZE` (which keeps
    // the old column statistics when it samples no rows) and a burst look like.
    run("DELETE FROM workflow_execution");
    run("INSERT INTO workflow_execution (id, workflow_type, status, started_at, finished_at) \
         SELECT gen_random_uuid(), 'plan_bulk', 'completed', now(), now() FROM generate_series(1, 30000) i");
    run("INSERT INTO workflow_activity (id, execution_id, step_key, kind, activity_type, queue, status, started_at, lease_expires_at) \
         SELECT gen_random_uuid(), e.id, s.status, s.kind, 't', 'default', 'completed', now(), now() + interval '1 hour' \
         FROM workflow_execution e, (VALUES ('scheduled', 'task'), ('running', 'task'), ('waiting', 'sleep')) s(status, kind) \
         WHERE e.workflow_type = 'plan_bulk'");
    run("ANALYZE workflow_activity; ANALYZE workflow_execution");
    run("UPDATE workflow_execution SET finished_at = NULL, \
         status = CASE WHEN random() < 0.25 THEN 'pending' ELSE 'running' END WHERE workflow_type = 'plan_bulk'");
    run("UPDATE workflow_activity a SET status = a.step_key FROM workflow_execution e \
         WHERE e.id = a.execution_id AND e.workflow_type = 'plan_bulk'");
    // ... and the sizes a VACUUM of the emptied tables recorded.
    run("UPDATE pg_class SET reltuples = 0, relpages = 0 \
         WHERE oid IN ('workflow_activity'::regclass, 'workflow_execution'::regclass, 'workflow_signal'::regclass)");
    run("UPDATE pg_class SET reltuples = 0, relpages = 1 WHERE oid IN (SELECT indexrelid FROM pg_index \
         WHERE indrelid IN ('workflow_activity'::regclass, 'workflow_execution'::regclass, 'workflow_signal'::regclass))");
    bad.extend(plans_that_read_whole_tables("stale"));
    assert!(bad.is_empty(), "plans that read whole tables:\n{}", bad.join("\n"));
}
