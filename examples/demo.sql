-- The `make run` demo: a document pipeline, declared once, run by a worker loop
-- written in plain SQL (any language that can call these functions works the same),
-- with the background worker doing the rest: no workflow_dispatch() calls anywhere.
\set ON_ERROR_STOP on
\pset footer off
CREATE EXTENSION IF NOT EXISTS pg_workflow;
CREATE TABLE IF NOT EXISTS demo_documents (url text PRIMARY KEY, chunks int, approved_by text, stored_at timestamptz DEFAULT now());

\echo '==> define a pipeline: fetch -> chunk -> embed each chunk (map) -> wait for approval (signal) -> store (sql step)'
SELECT workflow_define('document_pipeline', $json${
  "steps": [
    {"name": "fetch",   "activity": "http.fetch"},
    {"name": "chunk",   "activity": "text.chunk", "depends_on": ["fetch"]},
    {"name": "embed",   "activity": "llm.embed",  "depends_on": ["chunk"], "map": "chunk",
     "retry": {"max_attempts": 3, "initial_interval": "100ms", "jitter": 0}},
    {"name": "approve", "wait_signal": "approved", "depends_on": ["embed"], "timeout": "1 day"},
    {"name": "store",   "depends_on": ["approve", "embed"],
     "sql": "INSERT INTO demo_documents (url, chunks, approved_by) SELECT $1->'input'->>'url', jsonb_array_length($1->'embed'), $1->'approve'->>'by' ON CONFLICT (url) DO NOTHING"}
  ]}$json$) AS version;

\echo '==> start three executions (starting doc-1 again returns the same id)'
SELECT workflow_start('document_pipeline', '{"url": "https://example.com/doc-1", "text": "Durable workflows keep their state in Postgres"}', 'doc-1') AS id;
SELECT workflow_start('document_pipeline', '{"url": "https://example.com/doc-2", "text": "A crash loses no completed step"}', 'doc-2') AS id;
SELECT workflow_start('document_pipeline', '{"url": "https://example.com/doc-3", "text": "Workers claim with SKIP LOCKED"}', 'doc-3') AS id;
SELECT workflow_start('document_pipeline', '{"url": "ignored"}', 'doc-1') AS same_id_again;

\echo '==> run a worker: claim activities, do the work, complete them, commit'
DO $$
DECLARE
    job record;
    result jsonb;
    idle int := 0;
    failed_once boolean := false;
BEGIN
    LOOP
        FOR job IN SELECT * FROM workflow_claim('default', 'demo-worker', 10, '1 minute') LOOP
            idle := 0;
            IF job.activity_type = 'llm.embed' AND NOT failed_once THEN
                failed_once := true;  -- show a retry: the first embedding fails once
                RAISE NOTICE '% of %: attempt % fails (model overloaded), retried by policy',
                    job.step_key, job.input->'input'->>'url', job.attempt;
                PERFORM workflow_fail_activity(job.activity_id, '{"type": "Overloaded"}', job.attempt);
                CONTINUE;
            END IF;
            result := CASE job.activity_type
                WHEN 'http.fetch' THEN jsonb_build_object('body', job.input->'input'->>'text')
                WHEN 'text.chunk' THEN to_jsonb(string_to_array(job.input->'fetch'->>'body', ' '))
                WHEN 'llm.embed'  THEN jsonb_build_array(length(job.input->>'item'), job.input->'index')
            END;
            PERFORM workflow_complete_activity(job.activity_id, result, job.attempt);
            RAISE NOTICE '% of %: completed attempt %', job.step_key, job.input->'input'->>'url', job.attempt;
        END LOOP;
        COMMIT;
        -- Done when every execution waits for its approval.
        EXIT WHEN (SELECT count(*) FROM workflow_activity WHERE step_key = 'approve' AND status = 'waiting') = 3;
        idle := idle + 1;
        IF idle > 400 THEN RAISE EXCEPTION 'the demo worker found no work for 20 seconds'; END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;

\echo '==> every execution now waits for a human'
SELECT idempotency_key AS doc, e.status, a.step_key, a.status AS step_status
FROM workflow_execution e JOIN workflow_activity a ON a.execution_id = e.id AND a.step_key = 'approve'
ORDER BY 1;

\echo '==> approve them (workflow_signal), then wait for the background worker to run the sql step'
SELECT workflow_signal(id, 'approved', '{"by": "demo-reviewer"}') IS NOT NULL AS approved FROM workflow_execution ORDER BY idempotency_key;
SELECT idempotency_key AS doc, workflow_await(id, '20 seconds')->>'status' AS status FROM workflow_execution ORDER BY 1;

\echo '==> what the sql step stored'
SELECT url, chunks, approved_by FROM demo_documents ORDER BY url;

\echo '==> the journal of doc-1 (workflow_status)'
SELECT s->>'step_key' AS step, s->>'kind' AS kind, s->>'status' AS status, s->>'attempt' AS attempts, s->'output' AS output
FROM workflow_execution e, jsonb_array_elements(workflow_status(e.id)->'steps') s
WHERE e.idempotency_key = 'doc-1';
