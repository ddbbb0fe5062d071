-- Observability (README): attempt history, stats, search, the inbox, metrics, the graph.

-- History: every attempt of a step is kept, through retries, lease expiry, cancellation,
-- compensation and workflow_retry.
SELECT workflow_define('obs_doc', '{"steps": [
    {"name": "fetch", "activity": "obs.fetch", "queue": "obs",
     "retry": {"max_attempts": 2, "initial_interval": "1ms", "jitter": 0}},
    {"name": "chunk", "activity": "obs.chunk", "queue": "obs", "depends_on": ["fetch"]},
    {"name": "extract", "activity": "obs.extract", "queue": "obs", "map": "chunk", "depends_on": ["chunk"]},
    {"name": "approve", "wait_signal": "obs_approved", "depends_on": ["extract"]},
    {"name": "notify", "workflow": "obs_digest", "depends_on": ["approve"]}],
  "compensate": {"fetch": {"activity": "obs.unfetch", "queue": "obs"}}}') AS version;
SELECT workflow_define('obs_digest', '{"steps": [{"name": "send", "activity": "obs.send", "queue": "obs"}]}') AS version;
SELECT workflow_start('obs_doc', '{"doc": 1}', 'obs-1', '{"labels": {"team": "search"}}') AS id \gset

CREATE FUNCTION obs_history(execution uuid, step text) RETURNS TABLE (attempt int, worker text, outcome text, error_type text)
LANGUAGE sql AS $$
    SELECT (a->>'attempt')::int, a->>'worker_id', a->>'outcome', a->'error'->>'type'
    FROM jsonb_array_elements(workflow_status(execution)->'steps') s, jsonb_array_elements(s->'attempts') a
    WHERE s->>'step_key' = step ORDER BY a->>'finished_at', (a->>'attempt')::int
$$;

-- Attempt 1 fails (retried), attempt 2's lease expires (failed for good: 2 attempts).
SELECT workflow_fail_activity(activity_id, '{"type": "Flaky", "message": "x"}', attempt)
FROM workflow_claim('obs', 'w1');
UPDATE workflow_activity SET scheduled_at = now() - interval '1 second' WHERE execution_id = :'id';
SELECT activity_id AS fetch_id FROM workflow_claim('obs', 'w2', 1, '1 minute') \gset
UPDATE workflow_activity SET lease_expires_at = now() - interval '1 second' WHERE id = :'fetch_id';
SELECT workflow_dispatch() >= 1 AS moved;
SELECT * FROM obs_history(:'id', 'fetch');
SELECT status FROM workflow_execution WHERE id = :'id';

-- workflow_retry: a new fetch row; the old attempts stay in the step's history.
SELECT workflow_retry(:'id');
SELECT workflow_complete_activity(activity_id, '{"body": "a b c"}', attempt) FROM workflow_claim('obs', 'w3');
SELECT * FROM obs_history(:'id', 'fetch');
SELECT workflow_complete_activity(activity_id, '["a", "b", "c"]', attempt) FROM workflow_claim('obs', 'w3');
SELECT count(*) AS claimed FROM (SELECT workflow_complete_activity(activity_id, '1', attempt)
                                 FROM workflow_claim('obs', 'w3', 2)) c;
SELECT activity_id AS last_item, attempt AS last_attempt FROM workflow_claim('obs', 'w4') \gset

-- The graph while an item runs: a map node with counts, a child not started yet.
SELECT workflow_graph(:'id');
SELECT workflow_graph(:'id', 'dot');

-- Stats and the Prometheus text while it runs.
SELECT queue, ready, delayed, running, expired_leases, completed_last_hour, failed_last_hour
FROM workflow_queue_stats() WHERE queue = 'obs';
SELECT s->>'workflow_type' AS workflow_type, s->'executions' AS executions,
       (jsonb_path_query_array(s->'steps', '$[*] ? (@.step == "fetch")') -> 0) - 'duration_ms' AS fetch
FROM jsonb_array_elements(workflow_execution_stats(now() - interval '1 hour')) s WHERE s->>'workflow_type' = 'obs_doc';
SELECT line FROM regexp_split_to_table(workflow_metrics(), E'\n') line
WHERE line LIKE '%obs%' OR line LIKE '# TYPE%' ORDER BY line;

-- Cancellation: the running item's attempt ends cancelled, compensation runs and is kept too.
SELECT workflow_cancel(:'id', 'enough');
SELECT * FROM obs_history(:'id', 'extract[2]');
SELECT workflow_complete_activity(activity_id, 'null', attempt) FROM workflow_claim('obs', 'w5');
SELECT * FROM obs_history(:'id', 'compensate:fetch');

-- Search: filters, keyset pagination, the inbox.
SELECT count(workflow_start('obs_doc', jsonb_build_object('doc', i), 'obs-page-' || i,
                            jsonb_build_object('labels', jsonb_build_object('batch', 'p', 'n', i)))) AS started
FROM generate_series(1, 5) i;
-- One that fails for good on a Flaky fetch, for the error_type filter.
SELECT workflow_start('obs_doc', '{}', 'obs-flaky') AS flaky \gset
SELECT workflow_fail_activity(id, '{"type": "Flaky", "message": "again"}', NULL, false)
FROM workflow_activity WHERE execution_id = :'flaky';
SELECT count(*) AS first_page FROM workflow_list('{"labels": {"batch": "p"}}', 2);
SELECT id AS page_end FROM workflow_list('{"labels": {"batch": "p"}}', 2) ORDER BY id LIMIT 1 \gset
SELECT count(*) AS second_page, bool_and(id < :'page_end') AS older FROM workflow_list('{"labels": {"batch": "p"}}', 2, :'page_end');
SELECT labels->>'n' AS n FROM workflow_list('{"workflow_type": "obs_doc", "status": ["running"], "labels": {"batch": "p"}}', 10) ORDER BY 1;
SELECT count(*) = (SELECT count(*) FROM workflow_execution) AS empty_labels_filter_lists_every_execution
FROM workflow_list('{"labels": {}}', 1000);
-- The labels' index holds labelled executions only; a labels filter still reads it.
SET enable_seqscan = off;
SET enable_indexscan = off;
SELECT coalesce(idx_scan, 0) AS labels_scans FROM pg_stat_user_indexes WHERE indexrelname = 'workflow_execution_labels' \gset
SELECT count(*) AS labelled FROM workflow_list('{"labels": {"batch": "p"}}', 10);
SELECT pg_stat_force_next_flush();
SELECT idx_scan > :labels_scans AS read_the_labels_index FROM pg_stat_user_indexes WHERE indexrelname = 'workflow_execution_labels';
RESET enable_seqscan;
RESET enable_indexscan;
SELECT count(*) AS cancelled FROM workflow_list('{"status": "cancelled", "workflow_type": "obs_doc"}');
SELECT count(*) AS created_tomorrow FROM workflow_list(jsonb_build_object('created_after', (now() + interval '1 day')::text));
SELECT count(*) AS flaky_failures FROM workflow_list('{"error_type": "Flaky"}');
SELECT expect_error($$SELECT * FROM workflow_list('{"state": "running"}')$$);
SELECT expect_error($$SELECT * FROM workflow_list('{"status": "stuck"}')$$);
SELECT expect_error($$SELECT * FROM workflow_list('{}', 0)$$);
SELECT expect_error($$SELECT * FROM workflow_list('{"created_after": "yesterday-ish"}')$$);
SELECT expect_error($$SELECT workflow_graph('00000000-0000-0000-0000-000000000000')$$);
SELECT expect_error(format('SELECT workflow_graph(%L, %L)', :'id', 'png'));

-- An approval inbox: the executions waiting for a signal, oldest first.
SELECT workflow_define('obs_approval', '{"steps": [{"name": "approve", "wait_signal": "obs_ok"}]}') AS version;
SELECT count(workflow_start('obs_approval', jsonb_build_object('doc', i), NULL,
                            jsonb_build_object('labels', jsonb_build_object('n', i)))) AS started
FROM generate_series(1, 3) i;
SELECT workflow_type, step_key, input, labels FROM workflow_waiting('obs_ok');
SELECT count(*) AS waiting_via_list FROM workflow_list('{"waiting_for": "obs_ok"}');
SELECT workflow_signal(execution_id, 'obs_ok') IS NOT NULL AS approved FROM workflow_waiting('obs_ok', 1);
SELECT count(*) AS still_waiting FROM workflow_waiting('obs_ok');

-- Who may see what: the worker part sees queues and metrics; a bound starter its tenant.
CREATE ROLE obs_worker;
CREATE ROLE obs_tenant;
CREATE ROLE obs_starter IN ROLE obs_tenant;
SELECT workflow_grant('obs_worker', 'worker'), workflow_grant('obs_starter', 'starter'),
       workflow_bind_tenant('obs_tenant', 'obs-t');
SELECT workflow_start('obs_approval', '{}', NULL, '{"tenant_id": "obs-t"}') IS NOT NULL AS tenant_started;
SET ROLE obs_worker;
SELECT count(*) > 0 AS worker_sees_queues FROM workflow_queue_stats();
SELECT workflow_metrics() LIKE '%pg_workflow_queue_ready%' AS worker_reads_metrics;
RESET ROLE;
SELECT as_role('obs_worker', 'SELECT count(*) FROM workflow_list()') AS worker_lists;
SET ROLE obs_starter;
SELECT count(*) AS starter_sees_own_tenant FROM workflow_waiting('obs_ok');
SELECT count(*) AS starter_lists_own_tenant FROM workflow_list('{}');
SELECT count(*) AS starter_attempt_rows FROM workflow_attempt;
RESET ROLE;
SELECT as_role('obs_starter', 'SELECT count(*) FROM workflow_execution_stats()') AS starter_stats;

SELECT workflow_revoke('obs_worker'), workflow_revoke('obs_starter'), workflow_unbind_tenant('obs_tenant');
DROP OWNED BY obs_worker, obs_starter, obs_tenant;
DROP ROLE obs_worker, obs_starter, obs_tenant;
-- History goes with its execution (what retention deletes).
SELECT count(*) > 0 AS obs_attempts FROM workflow_attempt WHERE queue = 'obs';
DELETE FROM workflow_execution WHERE workflow_type LIKE 'obs\_%';
DELETE FROM workflow_definition WHERE name LIKE 'obs\_%';
SELECT count(*) AS obs_attempts_left FROM workflow_attempt WHERE queue = 'obs';
DROP FUNCTION obs_history(uuid, text);
