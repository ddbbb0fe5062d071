-- The NULL rule: SQL NULL in an argument is 22023 naming that argument, unless the README
-- gives NULL a meaning there (then the call goes on: here it reaches the unknown id
-- 0000... and answers P0002, or succeeds). One argument NULL at a time, the others valid.
SELECT workflow_define('nul', '{"steps": [{"name": "a", "activity": "nul.t", "queue": "nulq"}, {"name": "w", "wait_signal": "go"}]}') AS version;
SELECT workflow_start('nul', '{}', 'nul-1') AS e \gset
SELECT workflow_start('nul_client', '{}', NULL, '{"client_driven": true}') AS c \gset
SELECT activity_id AS a FROM workflow_claim('nulq', 'w', 1, '5 minutes', ARRAY['nul.t']) \gset
\set z '00000000-0000-0000-0000-000000000000'
CREATE ROLE nul_role;
SELECT regexp_replace(call, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g') AS call,
       expect_error('SELECT ' || call) AS outcome
FROM unnest(ARRAY[
  format('workflow_define(NULL, %L)', '{"steps": [{"name": "a", "activity": "t"}]}'),
  'workflow_define(''nul2'', NULL)',
  'workflow_start(NULL, ''{}'', NULL, ''{}'')',
  'workflow_start(''nul'', NULL, NULL, ''{}'')',
  'workflow_start(''nul'', ''{}'', NULL, NULL)',
  'workflow_claim(NULL, ''w'', 1, ''1 minute'', NULL)',
  'workflow_claim(''default'', NULL, 1, ''1 minute'', NULL)',
  'workflow_claim(''default'', ''w'', NULL, ''1 minute'', NULL)',
  'workflow_claim(''default'', ''w'', 1, NULL, NULL)',
  'workflow_claim_wait(NULL, ''w'', 1, ''1 minute'', NULL, ''0'')',
  'workflow_claim_wait(''default'', NULL, 1, ''1 minute'', NULL, ''0'')',
  'workflow_claim_wait(''default'', ''w'', NULL, ''1 minute'', NULL, ''0'')',
  'workflow_claim_wait(''default'', ''w'', 1, NULL, NULL, ''0'')',
  'workflow_claim_wait(''default'', ''w'', 1, ''1 minute'', NULL, NULL)',
  format('workflow_complete_activity(NULL, %L, 1)', '1'),
  format('workflow_complete_activity(%L, NULL, 1)', :'a'),
  format('workflow_complete_activity(%L, %L, NULL)', :'z', '1'),
  format('workflow_complete_activities(NULL, NULL, NULL)'),
  format('workflow_complete_activities(ARRAY[NULL]::uuid[], NULL, NULL)'),
  format('workflow_complete_activities(ARRAY[%L]::uuid[], NULL, NULL)', :'z'),
  format('workflow_complete_activities(ARRAY[%L]::uuid[], ARRAY[NULL]::jsonb[], ARRAY[NULL]::int[])', :'z'),
  format('workflow_fail_activity(NULL, %L, 1, true)', '"x"'),
  format('workflow_fail_activity(%L, NULL, 1, true)', :'a'),
  format('workflow_fail_activity(%L, %L, NULL, true)', :'z', '"x"'),
  format('workflow_fail_activity(%L, %L, 1, NULL)', :'a', '"x"'),
  'workflow_heartbeat(NULL, 1, NULL)',
  format('workflow_heartbeat(%L, NULL, NULL)', :'z'),
  format('workflow_signal(NULL, %L, %L, NULL)', 'go', '1'),
  format('workflow_signal(%L, NULL, %L, NULL)', :'e', '1'),
  format('workflow_signal(%L, %L, NULL, NULL)', :'e', 'go'),
  format('workflow_signal(%L, %L, %L, NULL)', :'z', 'go', '1'),
  'workflow_cancel(NULL, ''why'')',
  format('workflow_cancel(%L, NULL)', :'z'),
  'workflow_retry(NULL)',
  'workflow_status(NULL)',
  'workflow_await(NULL, ''1 second'')',
  format('workflow_await(%L, NULL)', :'e'),
  format('workflow_schedule_activity(NULL, %L, %L, %L, %L)', 'k', 't', '{}', '{}'),
  format('workflow_schedule_activity(%L, NULL, %L, %L, %L)', :'c', 't', '{}', '{}'),
  format('workflow_schedule_activity(%L, %L, NULL, %L, %L)', :'c', 'k', '{}', '{}'),
  format('workflow_schedule_activity(%L, %L, %L, NULL, %L)', :'c', 'k', 't', '{}'),
  format('workflow_schedule_activity(%L, %L, %L, %L, NULL)', :'c', 'k', 't', '{}'),
  format('workflow_complete(NULL, %L)', '1'),
  format('workflow_complete(%L, NULL)', :'c'),
  format('workflow_fail(NULL, %L)', '"x"'),
  format('workflow_fail(%L, NULL)', :'c'),
  'workflow_dispatch(NULL)',
  'workflow_grant(NULL, ''worker'')',
  'workflow_grant(''nul_role'', NULL)',
  'workflow_revoke(NULL)',
  'workflow_bind_tenant(NULL, ''t'')',
  'workflow_bind_tenant(''nul_role'', NULL)',
  'workflow_unbind_tenant(NULL)',
  'workflow_find(NULL, ''k'', NULL)',
  'workflow_find(''nul'', NULL, NULL)',
  'workflow_find(''nul'', ''nul-1'', NULL)',
  'workflow_claim_executions(NULL, ''w'', 1, ''1 minute'')',
  'workflow_claim_executions(ARRAY[''nul_client''], NULL, 1, ''1 minute'')',
  'workflow_claim_executions(ARRAY[''nul_client''], ''w'', NULL, ''1 minute'')',
  'workflow_claim_executions(ARRAY[''nul_client''], ''w'', 1, NULL)',
  format('workflow_renew_execution(NULL, 1, %L)', '1 minute'),
  format('workflow_renew_execution(%L, NULL, %L)', :'z', '1 minute'),
  format('workflow_renew_execution(%L, 1, NULL)', :'z'),
  'workflow_release_execution(NULL, 1)',
  format('workflow_release_execution(%L, NULL)', :'z'),
  'workflow_claim_activity(NULL, ''w'', ''1 minute'')',
  format('workflow_claim_activity(%L, NULL, %L)', :'z', '1 minute'),
  format('workflow_claim_activity(%L, %L, NULL)', :'z', 'w'),
  format('workflow_complete(NULL, %L, 1)', '1'),
  format('workflow_complete(%L, NULL, 1)', :'c'),
  format('workflow_complete(%L, %L, NULL)', :'c', '1'),
  format('workflow_fail(NULL, %L, 1)', '"x"'),
  format('workflow_fail(%L, NULL, 1)', :'c'),
  format('workflow_fail(%L, %L, NULL)', :'c', '"x"')
]) AS call;
-- The documented NULLs that succeed: no idempotency key, every activity type, no
-- signal key (the signal completes the waiting step).
SELECT workflow_start('nul', '{}', NULL) IS NOT NULL AS started_without_key;
SELECT count(*) AS claimed_any_type FROM workflow_claim('nulq', 'w2', 10, '1 minute', NULL);
SELECT workflow_start('nul', '{}', NULL) IS NOT NULL AS started_again;
SELECT count(*) AS waited_for_any_type FROM workflow_claim_wait('nulq', 'w2', 10, '1 minute', NULL, '0');
SELECT workflow_signal(:'e', 'go', '1', NULL) IS NOT NULL AS signalled_without_key;
SELECT status FROM workflow_activity WHERE execution_id = :'e' AND step_key = 'w';
DROP ROLE nul_role;
