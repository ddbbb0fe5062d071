-- The `make run` demo: a document pipeline, declared once, run by a worker loop
-- written in plain SQL (any language that can call these functions works the same).
\set ON_ERROR_STOP on
\pset footer off
CREATE EXTENSION IF NOT EXISTS pg_workflow;

\echo '==> define a document pipeline: fetch -> (chunk, detect_language) -> summarize'
SELECT workflow_define('document_pipeline', '{
  "steps": [
    {"name": "fetch",           "activity": "http.fetch"},
    {"name": "chunk",           "activity": "text.chunk",  "depends_on": ["fetch"]},
    {"name": "detect_language", "activity": "text.lang",   "depends_on": ["fetch"]},
    {"name": "summarize",       "activity": "llm.summarize", "depends_on": ["chunk", "detect_language"],
     "retry": {"max_attempts": 3, "initial_interval": "100ms", "jitter": 0}}
  ]}') AS version;

\echo '==> start three executions (the second start of doc-1 returns the same id)'
SELECT workflow_start('document_pipeline', '{"url": "https://example.com/doc-1", "text": "Durable workflows keep their state in Postgres"}', 'doc-1') AS id;
SELECT workflow_start('document_pipeline', '{"url": "https://example.com/doc-2", "text": "A crash loses no completed step"}', 'doc-2') AS id;
SELECT workflow_start('document_pipeline', '{"url": "https://example.com/doc-3", "text": "Workers claim with SKIP LOCKED and finish under a lease"}', 'doc-3') AS id;
SELECT workflow_start('document_pipeline', '{"url": "ignored"}', 'doc-1') AS same_id_again;

\echo '==> run a worker: claim activities, do the work, complete them, commit'
DO $$
DECLARE
    job record;
    result jsonb;
    rounds int := 0;
    failed_once boolean := false;
BEGIN
    LOOP
        rounds := rounds + 1;
        FOR job IN SELECT * FROM workflow_claim('default', 'demo-worker', 10, '1 minute') LOOP
            IF job.activity_type = 'llm.summarize' AND NOT failed_once THEN
                -- Show a retry: the first summarize attempt fails with a retryable error.
                failed_once := true;
                RAISE NOTICE '% %: attempt % fails (model overloaded), will retry',
                    job.step_key, job.input->'input'->>'url', job.attempt;
                PERFORM workflow_fail_activity(job.activity_id,
                    '{"type": "Overloaded", "message": "model overloaded"}', job.attempt);
                CONTINUE;
            END IF;
            result := CASE job.activity_type
                WHEN 'http.fetch' THEN jsonb_build_object('body', job.input->'input'->>'text', 'status', 200)
                WHEN 'text.chunk' THEN to_jsonb(string_to_array(job.input->'fetch'->>'body', ' '))
                WHEN 'text.lang'  THEN '"en"'::jsonb
                WHEN 'llm.summarize' THEN jsonb_build_object(
                    'words', jsonb_array_length(job.input->'chunk'),
                    'language', job.input->'detect_language',
                    'summary', left(job.input->'input'->>'text', 24) || '...')
            END;
            PERFORM workflow_complete_activity(job.activity_id, result, job.attempt);
            RAISE NOTICE '% %: completed attempt %', job.step_key, job.input->'input'->>'url', job.attempt;
        END LOOP;
        COMMIT;
        EXIT WHEN NOT EXISTS (SELECT FROM workflow_execution WHERE status IN ('pending', 'running'));
        IF rounds > 200 THEN RAISE EXCEPTION 'demo did not finish'; END IF;
        PERFORM workflow_dispatch();
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;

\echo '==> every execution, its status and output'
SELECT idempotency_key AS doc, status, output FROM workflow_execution ORDER BY idempotency_key;

\echo '==> the journal of doc-1 (workflow_status)'
SELECT s->>'step_key' AS step, s->>'status' AS status, s->>'attempt' AS attempts, s->'output' AS output
FROM workflow_execution e, jsonb_array_elements(workflow_status(e.id)->'steps') s
WHERE e.idempotency_key = 'doc-1';
