-- Hostile input: every bad argument gets the documented SQLSTATE and a message that
-- names the field; nothing crashes the backend (the postmaster's start time is the same
-- at the end).
SELECT pg_postmaster_start_time() AS started \gset
-- NULL in every argument of every function.
SELECT f, expect_error(format('SELECT %s', f)) FROM unnest(ARRAY[
  'workflow_define(NULL, NULL)', 'workflow_start(NULL, NULL, NULL, NULL)',
  'workflow_claim(NULL, NULL, NULL, NULL, NULL)', 'workflow_complete_activity(NULL, NULL, NULL)',
  'workflow_complete_activities(NULL, NULL, NULL)', 'workflow_fail_activity(NULL, NULL, NULL, NULL)',
  'workflow_heartbeat(NULL, NULL, NULL)', 'workflow_signal(NULL, NULL, NULL, NULL)', 'workflow_cancel(NULL, NULL)',
  'workflow_retry(NULL)', 'workflow_schedule_activity(NULL, NULL, NULL, NULL, NULL)', 'workflow_complete(NULL, NULL)',
  'workflow_fail(NULL, NULL)', 'workflow_status(NULL)', 'workflow_await(NULL, NULL)', 'workflow_dispatch(NULL)'
]) AS f;
-- Adversarial definitions.
SELECT expect_error($$SELECT workflow_define('h', (repeat('[', 3000) || repeat(']', 3000))::jsonb)$$);
SELECT expect_error($$SELECT workflow_define('h', jsonb_build_object('steps', (SELECT jsonb_agg(jsonb_build_object('name', 's' || g, 'activity', 'x')) FROM generate_series(1, 10000) g)))$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a", "activity": "x", "depends_on": ["a"]}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a", "activity": "x", "depends_on": ["c"]}, {"name": "b", "activity": "x", "depends_on": ["a"]}, {"name": "c", "activity": "x", "depends_on": ["b"]}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a", "activity": "x", "timeout": 1e400}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a", "activity": "x", "timeout": "99999999999 weeks"}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a", "activity": "x", "timeout": -0.5}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a", "activity": "x", "retry": {"max_attempts": 1e10}}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a", "activity": "x", "retry": {"backoff_coefficient": "fast"}}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a", "activity": "x", "priority": 99999999999}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a", "activity": ["x"]}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "a\nb", "activity": "x"}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": [{"name": "", "activity": "x"}]}')$$);
SELECT expect_error($$SELECT workflow_define('h', '{"steps": {"name": "a"}}')$$);
SELECT expect_error($$SELECT workflow_define('h', '"steps"')$$);
SELECT expect_error($$SELECT workflow_define('h', 'null')$$);
SELECT expect_error($$SELECT workflow_define(E'tab\there', '{"steps": [{"name": "a", "activity": "x"}]}')$$);
SELECT expect_error($$SELECT workflow_define(repeat('n', 1000), '{"steps": [{"name": "a", "activity": "x"}]}')$$);
-- Extreme values elsewhere.
SELECT expect_error($$SELECT workflow_start('h', (repeat('{"a":', 200) || '1' || repeat('}', 200))::jsonb)$$);
SELECT expect_error($$SELECT workflow_start('h', '{}', NULL, '{"delay": "100000000 days"}')$$);
SELECT expect_error($$SELECT workflow_start('h', '{}', NULL, '{"priority": 1e20}')$$);
SELECT expect_error($$SELECT workflow_start('h', '{}', NULL, '{"start_at": "2030-13-45"}')$$);
SELECT expect_error($$SELECT workflow_claim('default', 'w', 100000)$$);
SELECT expect_error($$SELECT workflow_claim('default', 'w', 1, '1 month')$$);
SELECT expect_error($$SELECT workflow_claim('default', 'w', 1, '5 minutes', ARRAY[NULL]::text[])$$);
SELECT expect_error($$SELECT workflow_await('00000000-0000-0000-0000-000000000000', '-1 second')$$);
-- Oversized payloads (54000).
SET workflow.max_payload_bytes = 1024;
SELECT expect_error(format('SELECT workflow_start(%L, %L)', 'h', jsonb_build_object('blob', repeat('x', 5000))));
SELECT workflow_start('h_client', '{}', NULL, '{"client_driven": true}') AS c \gset
SELECT expect_error(format('SELECT workflow_signal(%L, %L, %L)', :'c', 'big', jsonb_build_object('blob', repeat('x', 5000))));
SELECT expect_error(format('SELECT workflow_complete(%L, %L)', :'c', jsonb_build_object('blob', repeat('x', 5000))));
RESET workflow.max_payload_bytes;
-- Still the same server process: nothing above crashed a backend.
SELECT pg_postmaster_start_time() = :'started' AS no_restart;
