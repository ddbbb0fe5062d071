-- Phase 1, on the previous release (its own library): executions in every state.
CREATE EXTENSION pg_workflow;
SELECT extversion FROM pg_extension WHERE extname = 'pg_workflow';

CREATE FUNCTION expect_error(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END
$$;

CREATE TABLE upg (label text PRIMARY KEY, id uuid NOT NULL);
CREATE TABLE upg_claim (label text PRIMARY KEY, activity_id uuid, attempt int);

SELECT workflow_define('upg_doc', '{"steps": [
    {"name": "fetch", "activity": "fetch"},
    {"name": "store", "activity": "store", "depends_on": ["fetch"],
     "retry": {"max_attempts": 5, "initial_interval": "1s", "jitter": 0}}]}');
SELECT workflow_define('upg_wait', '{"steps": [
    {"name": "approve", "wait_signal": "approve"},
    {"name": "store", "activity": "store", "depends_on": ["approve"]}]}');
SELECT workflow_define('upg_sleep', '{"steps": [
    {"name": "nap", "sleep": "1 hour"},
    {"name": "count", "sql": "SELECT to_jsonb(42)", "depends_on": ["nap"]}]}');
SELECT workflow_define('upg_parent', '{"steps": [{"name": "child", "workflow": "upg_doc"}]}');
SELECT workflow_define('upg_map', '{"steps": [
    {"name": "split", "activity": "split"},
    {"name": "each", "activity": "each", "depends_on": ["split"], "map": "split"}]}');

-- One queue per execution, so that each can be worked on its own.
INSERT INTO upg
SELECT label, workflow_start(type, input::jsonb, key, jsonb_build_object('queue', label) || options::jsonb)
FROM (VALUES
    ('completed', 'upg_doc', '{"n": 1}', 'key-1', '{}'),
    ('failed', 'upg_doc', '{"n": 2}', NULL, '{}'),
    ('cancelled', 'upg_doc', '{"n": 3}', NULL, '{}'),
    ('scheduled', 'upg_doc', '{"n": 4}', NULL, '{}'),
    ('running', 'upg_doc', '{"n": 5}', NULL, '{}'),
    ('retrying', 'upg_doc', '{"n": 6}', NULL, '{}'),
    ('pending', 'upg_doc', '{"n": 7}', NULL, '{"delay": "1 hour"}'),
    ('waiting', 'upg_wait', '{}', NULL, '{}'),
    ('sleeping', 'upg_sleep', '{}', NULL, '{}'),
    ('parent', 'upg_parent', '{"n": 8}', NULL, '{}'),
    ('mapping', 'upg_map', '{}', NULL, '{}'),
    ('client', 'upg_client', '{}', NULL, '{}')
) v(label, type, input, key, options);

-- A worker, in SQL: claims up to n activities of an execution's queue and completes
-- them ("split" with a list, the others with their step's name and input).
CREATE FUNCTION work(which text, n int = 100) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(c.step_key || '#' || c.attempt || ':' ||
                      workflow_complete_activity(c.activity_id,
                          CASE c.step_key WHEN 'split' THEN '["a", "b", "c"]'
                          ELSE jsonb_build_object('step', c.step_key, 'item', c.input->'item') END, c.attempt),
                      ',' ORDER BY c.step_key)
    FROM workflow_claim(which, 'upgrade-worker', n, '1 hour') c
$$;

SELECT work('completed'), work('completed');
SELECT workflow_fail_activity(activity_id, '{"type": "Fatal", "message": "no"}', attempt, false)
FROM workflow_claim('failed', 'upgrade-worker', 1);
SELECT workflow_cancel(id, 'changed my mind') FROM upg WHERE label = 'cancelled';
INSERT INTO upg_claim SELECT 'running', activity_id, attempt FROM workflow_claim('running', 'upgrade-worker', 1, '1 hour');
SELECT work('retrying');
SELECT workflow_fail_activity(activity_id, '{"type": "Flaky"}', attempt)
FROM workflow_claim('retrying', 'upgrade-worker', 1);
SELECT work('mapping'), regexp_replace(work('mapping', 2), '\[\d\]', '[i]', 'g') AS two_items;
SELECT workflow_schedule_activity(id, 'k1', 'fetch', '{"url": "u"}') IS NOT NULL AS scheduled
FROM upg WHERE label = 'client';
-- The parent's child is running, its first step not yet claimed.

SELECT upg.label, e.status, (SELECT string_agg(s || '=' || n, ' ' ORDER BY s)
                             FROM (SELECT a.status s, count(*) n FROM workflow_activity a
                                   WHERE a.execution_id = e.id GROUP BY 1) x) AS steps
FROM upg JOIN workflow_execution e ON e.id = upg.id ORDER BY upg.label;

-- What completed on the old release, to compare after the update.
CREATE TABLE done_before AS
SELECT id, output, finished_at, attempt FROM workflow_activity WHERE status = 'completed' AND kind = 'task';
SELECT count(*) AS completed_steps FROM done_before;
