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
