-- Bad input gets the documented SQLSTATE and a message naming the field.
-- 22023 invalid_parameter_value
SELECT expect_error($$SELECT workflow_define(NULL, '{"steps": []}')$$);
SELECT expect_error($$SELECT workflow_define('x', NULL)$$);
SELECT expect_error($$SELECT workflow_define('x', '[]')$$);
SELECT expect_error($$SELECT workflow_define('x', '{"steps": []}')$$);
SELECT expect_error($$SELECT workflow_define('x', '{"steps": [{"name": "a"}]}')$$);
SELECT expect_error($$SELECT workflow_define('x', '{"steps": [{"name": "a", "activity": "t", "depend_on": ["b"]}]}')$$);
SELECT expect_error($$SELECT workflow_define('x', '{"steps": [{"name": "a", "activity": "t"}, {"name": "a", "activity": "u"}]}')$$);
SELECT expect_error($$SELECT workflow_define('x', '{"steps": [{"name": "a", "activity": "t", "depends_on": ["b"]}, {"name": "b", "activity": "t", "depends_on": ["a"]}]}')$$);
SELECT expect_error($$SELECT workflow_define('x', '{"steps": [{"name": "a", "activity": "t", "timeout": "forever"}]}')$$);
SELECT expect_error($$SELECT workflow_define('x', '{"steps": [{"name": "a", "activity": "t", "retry": {"jitter": 5}}]}')$$);
SELECT expect_error($$SELECT workflow_start(NULL)$$);
SELECT expect_error($$SELECT workflow_start('x', '{}', NULL, '{"delay": "-1s"}')$$);
SELECT expect_error($$SELECT workflow_start('x', '{}', NULL, '{"start_at": "tomorrowish"}')$$);
SELECT expect_error($$SELECT workflow_start('x', '{}', NULL, '{"colour": "red"}')$$);
SELECT expect_error($$SELECT workflow_claim(NULL, 'w')$$);
SELECT expect_error($$SELECT workflow_claim('default', NULL)$$);
SELECT expect_error($$SELECT workflow_claim('default', 'w', 0)$$);
SELECT expect_error($$SELECT workflow_claim('default', 'w', 1, '-1 minute')$$);
-- workflow_claim_wait: the same checks, and its timeout; it cannot wait where it would
-- never see new work.
SELECT expect_error($$SELECT workflow_claim_wait('default', 'w', 0)$$);
SELECT expect_error($$SELECT workflow_claim_wait('default', 'w', 1, '1 minute', NULL, '61 seconds')$$);
SELECT expect_error($$SELECT workflow_claim_wait('default', 'w', 1, '1 minute', NULL, '-1 second')$$);
SELECT expect_error($$SELECT workflow_claim_wait('default', 'w', 1, '1 minute', NULL, '1 month')$$);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT expect_error($$SELECT workflow_claim_wait('default', 'w')$$);
ROLLBACK;
-- Nothing to claim: it returns empty once its timeout has passed.
SELECT count(*) AS nothing_after_waiting FROM workflow_claim_wait('errors_empty_queue', 'w', 1, '1 minute', NULL, '20 milliseconds');
SELECT expect_error($$SELECT workflow_complete_activity(NULL)$$);
SELECT expect_error($$SELECT workflow_dispatch(0)$$);
-- P0002 no_data_found
SELECT expect_error($$SELECT workflow_complete_activity('00000000-0000-0000-0000-000000000000')$$);
SELECT expect_error($$SELECT workflow_fail_activity('00000000-0000-0000-0000-000000000000', '"x"')$$);
SELECT expect_error($$SELECT workflow_heartbeat('00000000-0000-0000-0000-000000000000')$$);
SELECT expect_error($$SELECT workflow_status('00000000-0000-0000-0000-000000000000')$$);
-- 55000 object_not_in_prerequisite_state: a stale claim
SELECT workflow_define('fenced', '{"steps": [{"name": "only", "activity": "fenced.task"}]}');
SELECT workflow_start('fenced') IS NOT NULL AS started;
SELECT activity_id AS act FROM workflow_claim('default', 'w', 1, '1 minute', ARRAY['fenced.task']) \gset
SELECT expect_error(format('SELECT workflow_complete_activity(%L, %L, 99)', :'act', 'null'));
SELECT expect_error(format('SELECT workflow_fail_activity(%L, %L, 99)', :'act', '"x"'));
SELECT workflow_complete_activity(:'act', '"done"', 1);
SELECT expect_error(format('SELECT workflow_fail_activity(%L, %L)', :'act', '"too late"'));
-- Nothing is granted to PUBLIC.
SELECT count(*) AS public_functions FROM pg_proc p
JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_workflow'
WHERE has_function_privilege('public', p.oid, 'EXECUTE');

-- Zero durations are rejected like negative ones: a zero timeout would hand out a lease
-- that has already expired.
SELECT expect_error($$SELECT workflow_define('z', '{"steps": [{"name": "a", "activity": "t", "timeout": "0s"}]}')$$);
SELECT expect_error($$SELECT workflow_define('z', '{"steps": [{"name": "a", "activity": "t", "timeout": 0}]}')$$);
SELECT expect_error($$SELECT workflow_define('z', '{"steps": [{"name": "a", "activity": "t", "heartbeat_timeout": "0ms"}]}')$$);
SELECT expect_error($$SELECT workflow_define('z', '{"steps": [{"name": "a", "activity": "t", "schedule_to_close": "0 minutes"}]}')$$);
SELECT expect_error($$SELECT workflow_define('z', '{"steps": [{"name": "a", "sleep": "0s"}]}')$$);
SELECT expect_error($$SELECT workflow_define('z', '{"steps": [{"name": "a", "wait_signal": "s", "timeout": 0.0}]}')$$);
SELECT expect_error($$SELECT workflow_define('z', '{"steps": [{"name": "a", "activity": "t"}], "timeout": "0 days"}')$$);
SELECT expect_error($$SELECT workflow_start('fenced', '{}', NULL, '{"timeout": 0}')$$);
SELECT workflow_start('z_client', '{}', NULL, '{"client_driven": true}') AS zc \gset
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, %L, %L, %L)', :'zc', 'k', 't', '{}', '{"timeout": "0s"}'));
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, NULL, %L, %L)', :'zc', 'k', '{}', '{"sleep": 0}'));

-- Typos are errors, not executions that wait forever.
SELECT workflow_define('extraction_pipeline', '{"steps": [{"name": "approve", "wait_signal": "approved"}]}');
SELECT expect_hint($$SELECT workflow_start('extraction_pipline')$$);
SELECT expect_error($$SELECT workflow_start('extraction_pipeline', '{}', NULL, '{"client_driven": true}')$$);
SELECT expect_error($$SELECT workflow_start('x', '{}', NULL, '{"client_driven": "yes"}')$$);
SELECT workflow_start('extraction_pipeline') AS ep \gset
SELECT expect_error(format('SELECT workflow_signal(%L, %L)', :'ep', 'aproved'));
SELECT workflow_signal(:'ep', 'approved') IS NOT NULL AS approved;
SELECT workflow_define('no_waits', '{"steps": [{"name": "a", "activity": "no_waits.t"}]}');
SELECT expect_error(format('SELECT workflow_signal(%L, %L)', workflow_start('no_waits'), 'approved'));
-- A workflow step naming an undefined type fails, naming the type.
SELECT workflow_define('parent_of_typo', '{"steps": [{"name": "notify", "workflow": "send_digset"}]}');
SELECT workflow_start('parent_of_typo') AS pt \gset
SELECT status, error->'error'->>'type' AS type, error->'error'->>'message' AS message
FROM workflow_execution WHERE id = :'pt';

-- Stale claims say what became of the activity.
SELECT workflow_define('gone', '{"steps": [{"name": "s", "activity": "gone.t", "retry": {"max_attempts": 1}}]}');
SELECT workflow_start('gone') AS g \gset
SELECT activity_id AS ga, attempt AS gatt FROM workflow_claim('default', 'w', 1, '5 minutes', ARRAY['gone.t']) \gset
SELECT workflow_fail_activity(:'ga', '"broken"', :gatt);
SELECT expect_hint(format('SELECT workflow_complete_activity(%L, %L, %s)', :'ga', '1', :gatt));
SELECT workflow_start('gone') AS g2 \gset
SELECT activity_id AS gb, attempt AS gbatt FROM workflow_claim('default', 'w', 1, '5 minutes', ARRAY['gone.t']) \gset
SELECT workflow_cancel(:'g2');
SELECT workflow_fail_activity(:'gb', '"late"', :gbatt) AS failed_after_cancel;
SELECT workflow_complete_activity(:'gb', '1', :gbatt) AS completed_after_cancel;

-- A retry waits for compensation to end.
SELECT workflow_define('comp', '{"steps": [{"name": "a", "activity": "comp.a", "queue": "compq"},
  {"name": "b", "activity": "comp.b", "depends_on": ["a"], "retry": {"max_attempts": 1}}],
  "compensate": {"a": {"activity": "comp.undo_a", "queue": "cleanup"}}}');
SELECT workflow_start('comp') AS cp \gset
SELECT c.step_key, workflow_complete_activity(c.activity_id, '1', c.attempt) FROM workflow_claim('compq', 'w') c;
SELECT workflow_fail_activity(activity_id, '"no"', attempt) FROM workflow_claim('default', 'w', 1, '5 minutes', ARRAY['comp.b']);
SELECT step_key, queue, status FROM workflow_activity WHERE execution_id = :'cp' AND starts_with(step_key, 'compensate:');
SELECT expect_hint(format('SELECT workflow_retry(%L)', :'cp'));
SELECT c.step_key, workflow_complete_activity(c.activity_id, 'null', c.attempt) FROM workflow_claim('cleanup', 'w') c;
SELECT workflow_retry(:'cp') AS retried;
SELECT step_key, status FROM workflow_activity WHERE execution_id = :'cp' ORDER BY step_key;
