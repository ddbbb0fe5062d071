-- Signals, fan-out, cancellation, resume and client-driven executions through plain SQL.
SELECT workflow_define('review', '{
  "steps": [
    {"name": "chunk",   "activity": "text.chunk"},
    {"name": "extract", "activity": "llm.extract", "depends_on": ["chunk"], "map": "chunk"},
    {"name": "approve", "wait_signal": "approved", "depends_on": ["extract"]},
    {"name": "publish", "activity": "kb.publish", "depends_on": ["approve"]}
  ]}');
SELECT workflow_start('review', '{"doc": "d1"}') AS id \gset

-- Fan out: one activity per chunk, each with its item and index.
SELECT work('text.chunk', '["alpha", "beta", "gamma"]');
SELECT step_key, input - 'input' AS item_input FROM workflow_activity
WHERE execution_id = :'id' AND starts_with(step_key, 'extract[') ORDER BY step_key;
SELECT workflow_complete_activity(id, to_jsonb(upper(input->>'item')))
FROM workflow_activity WHERE execution_id = :'id' AND starts_with(step_key, 'extract[') ORDER BY step_key DESC;
SELECT output FROM workflow_activity WHERE execution_id = :'id' AND step_key = 'extract';

-- Now it waits for a human.
SELECT step_key, status FROM workflow_activity WHERE execution_id = :'id' AND step_key = 'approve';
SELECT workflow_signal(:'id', 'approved', '{"by": "ann"}', 'approval-1') IS NOT NULL AS sent;
SELECT workflow_signal(:'id', 'approved', '{"by": "ann"}', 'approval-1') IS NOT NULL AS sent_again_no_op;
SELECT count(*) AS signals FROM workflow_signal WHERE execution_id = :'id';
SELECT input->'approve' AS publish_sees FROM workflow_activity WHERE execution_id = :'id' AND step_key = 'publish';
SELECT work('kb.publish', '"published"');
SELECT status, output FROM workflow_execution WHERE id = :'id';

-- Signals to unknown or finished executions.
SELECT expect_error($$SELECT workflow_signal('00000000-0000-0000-0000-000000000000', 'x')$$);
SELECT expect_error(format('SELECT workflow_signal(%L, %L)', :'id', 'approved'));
SELECT expect_error(format('SELECT workflow_signal(%L, NULL)', :'id'));

-- Cancel a running execution; a cancelled one can be resumed, keeping finished steps.
SELECT workflow_start('review', '{"doc": "d2"}') AS id2 \gset
SELECT work('text.chunk', '[]');
SELECT workflow_cancel(:'id2', 'operator stopped it');
SELECT workflow_cancel(:'id2');
SELECT status, error FROM workflow_execution WHERE id = :'id2';
SELECT step_key, status FROM workflow_activity WHERE execution_id = :'id2' ORDER BY created_at, step_key;
SELECT workflow_retry(:'id2');
SELECT step_key, status FROM workflow_activity WHERE execution_id = :'id2' ORDER BY created_at, step_key;
SELECT expect_error(format('SELECT workflow_retry(%L)', :'id'));

-- A client-driven execution: the client's code schedules steps by key.
SELECT workflow_start('sdk_flow', '{"n": 1}', NULL, '{"client_driven": true}') AS c \gset
SELECT workflow_schedule_activity(:'c', 'step-1', 'sdk.task', '{"a": 1}') AS s1 \gset
SELECT workflow_schedule_activity(:'c', 'step-1', 'sdk.task', '{"a": 1}') = :'s1' AS replay_same_id;
SELECT work('sdk.task', '"r1"');
SELECT ready_at IS NOT NULL AS ready FROM workflow_execution WHERE id = :'c';
SELECT workflow_complete(:'c', '{"result": "r1"}');
SELECT workflow_complete(:'c');
SELECT status, output FROM workflow_execution WHERE id = :'c';
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, %L)', :'id', 'x', 't'));
SELECT expect_error(format('SELECT workflow_fail(%L, %L)', :'c', '"late"'));
SELECT expect_error($$SELECT workflow_schedule_activity('00000000-0000-0000-0000-000000000000', 'k', 't')$$);
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, NULL)', :'c', 'k'));
