-- A declared workflow from define to completion, through plain SQL.
SELECT workflow_define('doc_pipeline', '{
  "steps": [
    {"name": "fetch", "activity": "http.fetch"},
    {"name": "chunk", "activity": "text.chunk", "depends_on": ["fetch"]},
    {"name": "embed", "activity": "llm.embed", "depends_on": ["chunk"]},
    {"name": "tag",   "activity": "llm.tag",   "depends_on": ["chunk"]},
    {"name": "store", "activity": "db.store",  "depends_on": ["embed", "tag"]}
  ]}');

-- Defining the same thing again keeps the version.
SELECT workflow_define('doc_pipeline', '{
  "steps": [
    {"name": "fetch", "activity": "http.fetch"},
    {"name": "chunk", "activity": "text.chunk", "depends_on": ["fetch"]},
    {"name": "embed", "activity": "llm.embed", "depends_on": ["chunk"]},
    {"name": "tag",   "activity": "llm.tag",   "depends_on": ["chunk"]},
    {"name": "store", "activity": "db.store",  "depends_on": ["embed", "tag"]}
  ]}');

SELECT workflow_start('doc_pipeline', '{"url": "https://example.com/a"}', 'doc-a') AS id \gset

-- Idempotent start: same type and key, same execution, nothing new created.
SELECT workflow_start('doc_pipeline', '{"url": "ignored"}', 'doc-a') = :'id' AS same_execution;
SELECT count(*) FROM workflow_execution WHERE workflow_type = 'doc_pipeline';

-- Steps appear when they become ready.
SELECT step_key, status FROM workflow_activity WHERE execution_id = :'id' ORDER BY created_at, step_key;
SELECT s->>'step_key' AS step, s->>'status' AS status
FROM jsonb_array_elements(workflow_status(:'id')->'steps') s;

SELECT work('http.fetch', '{"text": "a b c"}');
SELECT work('text.chunk', '["a", "b", "c"]');
-- embed and tag run in parallel; each gets the workflow input and its dependency's output.
SELECT step_key, input FROM workflow_activity WHERE execution_id = :'id' AND step_key IN ('embed', 'tag') ORDER BY step_key;
SELECT work('llm.embed', '[[0.1], [0.2], [0.3]]');
SELECT status FROM workflow_execution WHERE id = :'id';
SELECT work('llm.tag', '["news"]');
SELECT input - 'input' AS store_input_from_dependencies FROM workflow_activity WHERE execution_id = :'id' AND step_key = 'store';
SELECT work('db.store', '{"rows": 3}');

-- Completed, with the outputs of the final steps keyed by step name.
SELECT status, output, finished_at IS NOT NULL AS finished FROM workflow_execution WHERE id = :'id';
SELECT step_key, status, attempt FROM workflow_activity WHERE execution_id = :'id' ORDER BY created_at, step_key;

-- A rolled-back start never happened (the transactional outbox).
BEGIN;
SELECT workflow_start('doc_pipeline', '{}', 'doc-rolled-back') IS NOT NULL AS started;
ROLLBACK;
SELECT count(*) FROM workflow_execution WHERE idempotency_key = 'doc-rolled-back';

-- Delayed start: pending until its time, then started by workflow_dispatch().
SELECT workflow_start('doc_pipeline', '{}', 'doc-later', '{"delay": "1 hour", "priority": 7}') AS later \gset
SELECT status FROM workflow_execution WHERE id = :'later';
SELECT workflow_dispatch();
UPDATE workflow_execution SET started_at = now() - interval '1 second' WHERE id = :'later';
-- The background worker may get there first; either way it is started exactly once.
SELECT workflow_dispatch() IS NOT NULL AS dispatched;
SELECT e.status, a.step_key, a.priority FROM workflow_execution e JOIN workflow_activity a ON a.execution_id = e.id WHERE e.id = :'later';
