-- Engines on client-driven executions (README: SQL API): finding an execution by its key,
-- one replay turn at a time with a fencing token, claiming one activity, non-deterministic
-- replays refused, retries that make the execution ready, and client-driven children.

-- Finding without starting.
SELECT workflow_start('rp_doc', '{"doc": 1}', 'doc-1', '{"client_driven": true}') AS id \gset
SELECT workflow_find('rp_doc', 'doc-1') = :'id' AS found, workflow_find('rp_doc', 'doc-2') IS NULL AS not_started;
SELECT workflow_find('rp_doc', 'doc-1', 'other-tenant') IS NULL AS other_tenant;
SELECT expect_error($$SELECT workflow_find(NULL, 'doc-1')$$);

-- A new client-driven execution is ready: one process gets a turn, nobody else does.
SELECT execution_id = :'id' AS mine, workflow_type, input, lease_token
FROM workflow_claim_executions(ARRAY['rp_doc'], 'proc-a', 10, '1 minute');
SELECT count(*) AS second_claim FROM workflow_claim_executions(ARRAY['rp_doc'], 'proc-b', 10);
SELECT replay_worker, replay_token, ready_at > now() AS ready_at_parked_at_lease_end
FROM workflow_execution WHERE id = :'id';

-- Steps are scheduled under the turn's token; a replay asking for the same step gets it back.
SELECT workflow_schedule_activity(:'id', 'fetch', 'http.fetch', '{"url": "u"}', '{"lease_token": 1}') AS fetch_id \gset
SELECT workflow_schedule_activity(:'id', 'fetch', 'http.fetch', '{"url": "u"}', '{"lease_token": 1}') = :'fetch_id' AS same_step;
SELECT workflow_renew_execution(:'id', 1, '1 minute') AS renewed, workflow_renew_execution(:'id', 7) AS wrong_token;

-- Non-deterministic replays: another type, another input, another kind under the same key.
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, %L, %L)', :'id', 'fetch', 'http.get', '{"url": "u"}'));
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, %L, %L)', :'id', 'fetch', 'http.fetch', '{"url": "v"}'));
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, NULL, %L, %L)', :'id', 'fetch', '{"url": "u"}', '{"sleep": "1h"}'));

-- The turn ends; nothing finished during it, so the execution waits for its step.
SELECT workflow_release_execution(:'id', 1) AS released, workflow_release_execution(:'id', 1) AS released_again;
SELECT replay_worker IS NULL AS no_turn, ready_at IS NULL AS not_ready FROM workflow_execution WHERE id = :'id';

-- The engine runs its own activity: claim it by id (once), fail it: the retry makes the
-- execution ready when it is due.
SELECT step_key, attempt FROM workflow_claim_activity(:'fetch_id', 'proc-a', '30 seconds');
SELECT count(*) AS claimed_twice FROM workflow_claim_activity(:'fetch_id', 'proc-b');
SELECT workflow_fail_activity(:'fetch_id', '{"type": "Flaky", "message": "try again"}', 1);
SELECT count(*) AS before_the_backoff_ends FROM workflow_claim_activity(:'fetch_id', 'proc-a');
SELECT e.ready_at = a.scheduled_at AS ready_when_the_retry_is_due
FROM workflow_execution e JOIN workflow_activity a ON a.execution_id = e.id WHERE a.id = :'fetch_id';
UPDATE workflow_activity SET scheduled_at = now() - interval '1 second' WHERE id = :'fetch_id';
UPDATE workflow_execution SET ready_at = now() - interval '1 second' WHERE id = :'id';
SELECT lease_token FROM workflow_claim_executions(ARRAY['rp_doc'], 'proc-b');
SELECT step_key, attempt FROM workflow_claim_activity(:'fetch_id', 'proc-b');

-- Something finishing during a turn leaves the execution ready when the turn ends.
SELECT workflow_complete_activity(:'fetch_id', '{"body": "b"}', 2);
SELECT workflow_release_execution(:'id', 2) AS released;
SELECT lease_token FROM workflow_claim_executions(ARRAY['rp_doc'], 'proc-a');

-- A turn that was lost: its lease ran out and another process took the execution. The
-- old token no longer schedules nor ends it; the new one does, and the turn ends with it.
UPDATE workflow_execution SET replay_lease_expires_at = now() - interval '1 second',
                              ready_at = now() - interval '1 second' WHERE id = :'id';
SELECT lease_token FROM workflow_claim_executions(ARRAY['rp_doc'], 'proc-b');
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, %L, %L, %L)', :'id', 'store', 'db.store', '{}', '{"lease_token": 3}'));
SELECT expect_error(format('SELECT workflow_complete(%L, %L, 3)', :'id', '"done"'));
SELECT workflow_renew_execution(:'id', 3) AS old_turn_renewed;
SELECT workflow_complete(:'id', '"done"', 4) AS completed;
SELECT status, output, replay_worker IS NULL AS turn_over FROM workflow_execution WHERE id = :'id';
SELECT workflow_complete(:'id', '"done"', 4) AS completed_again;

-- An activity that fails during a turn, its retry due after the turn ends: renewing and
-- releasing the turn keep the execution ready for when the retry is due (the release
-- forgot it, and the execution waited for ever). First a retry due before the lease ends,
-- then one due after it.
SELECT workflow_start('rp_doc', '{"doc": 3}', 'doc-3', '{"client_driven": true}') AS id3 \gset
SELECT lease_token AS t3 FROM workflow_claim_executions(ARRAY['rp_doc'], 'proc-a', 10, '1 hour') \gset
SELECT workflow_schedule_activity(:'id3', 'fetch', 'http.fetch', '{}',
    format('{"lease_token": %s, "retry": {"initial_interval": "1 minute"}}', :t3)::jsonb) AS fetch3 \gset
SELECT attempt FROM workflow_claim_activity(:'fetch3', 'proc-a', '30 seconds');
SELECT workflow_fail_activity(:'fetch3', '{"type": "Flaky", "message": "try again"}', 1);
SELECT workflow_renew_execution(:'id3', :t3, '1 hour') AS renewed;
SELECT e.ready_at = a.scheduled_at AS renewing_keeps_the_retry
FROM workflow_execution e JOIN workflow_activity a ON a.execution_id = e.id WHERE a.id = :'fetch3';
SELECT workflow_release_execution(:'id3', :t3) AS released;
SELECT e.ready_at = a.scheduled_at AS ready_when_the_retry_is_due
FROM workflow_execution e JOIN workflow_activity a ON a.execution_id = e.id WHERE a.id = :'fetch3';
UPDATE workflow_activity SET scheduled_at = now() - interval '1 second' WHERE id = :'fetch3';
UPDATE workflow_execution SET ready_at = now() - interval '1 second' WHERE id = :'id3';
SELECT lease_token AS t3 FROM workflow_claim_executions(ARRAY['rp_doc'], 'proc-a', 10, '1 minute') \gset
SELECT attempt FROM workflow_claim_activity(:'fetch3', 'proc-a', '30 seconds');
SELECT workflow_fail_activity(:'fetch3', '{"type": "Flaky", "message": "again"}', 2);
SELECT workflow_renew_execution(:'id3', :t3, '1 minute') AS renewed;
SELECT e.ready_at < a.scheduled_at AS parked_at_the_lease_end
FROM workflow_execution e JOIN workflow_activity a ON a.execution_id = e.id WHERE a.id = :'fetch3';
SELECT workflow_release_execution(:'id3', :t3) AS released;
SELECT e.ready_at = a.scheduled_at AS ready_when_the_later_retry_is_due
FROM workflow_execution e JOIN workflow_activity a ON a.execution_id = e.id WHERE a.id = :'fetch3';

-- Client-driven children: the parent's step waits for the child; the child's end
-- completes the step and makes the parent ready; cancelling the parent cancels it.
SELECT workflow_start('rp_parent', '{}', NULL, '{"client_driven": true}') AS parent \gset
SELECT workflow_schedule_activity(:'parent', 'child-1', NULL, '{"part": 1}', '{"workflow": "rp_child", "client_driven": true}') IS NOT NULL AS scheduled;
SELECT id AS child, workflow_type, input, parent_step, definition_version IS NULL AS client_driven
FROM workflow_execution WHERE parent_id = :'parent' \gset
SELECT :'workflow_type' AS child_type, :'input' AS child_input, :'parent_step' AS parent_step, :'client_driven' AS child_client_driven;
UPDATE workflow_execution SET ready_at = NULL WHERE id = :'parent';
SELECT workflow_complete(:'child', '{"pages": 3}');
SELECT status, output FROM workflow_activity WHERE execution_id = :'parent' AND step_key = 'child-1';
SELECT ready_at IS NOT NULL AS parent_ready FROM workflow_execution WHERE id = :'parent';
SELECT workflow_schedule_activity(:'parent', 'child-2', NULL, '{}', '{"workflow": "rp_child", "client_driven": true}') IS NOT NULL AS scheduled;
SELECT workflow_cancel(:'parent', 'enough');
SELECT status FROM workflow_execution WHERE parent_id = :'parent' ORDER BY created_at;
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, NULL, %L, %L)', :'parent', 'c3', '{}', '{"workflow": "rp_child"}'));
SELECT workflow_start('rp_parent2', '{}', NULL, '{"client_driven": true}') AS parent2 \gset
SELECT workflow_define('rp_declared', '{"steps": [{"name": "a", "activity": "a"}]}') AS declared_version;
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, NULL, %L, %L)', :'parent2', 'c', '{}', '{"workflow": "rp_declared", "client_driven": true}'));
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, NULL, %L, %L)', :'parent2', 'c', '{}', '{"client_driven": true}'));
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, %L, %L, %L)', :'parent2', 'c', 't', '{}', '{"lease_token": "x"}'));
-- An undeclared child without client_driven fails its step (UndefinedWorkflow), as a declared parent's would.
SELECT workflow_schedule_activity(:'parent2', 'c-undeclared', NULL, '{}', '{"workflow": "rp_nobody"}') IS NOT NULL AS scheduled;
SELECT status, error->>'type' AS error FROM workflow_activity WHERE execution_id = :'parent2' AND step_key = 'c-undeclared';

-- A child with a key of its own is found by it, like any started execution.
SELECT workflow_schedule_activity(:'parent2', 'keyed', NULL, '{}', '{"workflow": "rp_child", "client_driven": true, "idempotency_key": "child-key"}') IS NOT NULL AS scheduled;
SELECT workflow_find('rp_child', 'child-key') = (SELECT id FROM workflow_execution WHERE parent_id = :'parent2' AND parent_step = 'keyed') AS found_by_its_key;
SELECT expect_error(format('SELECT workflow_schedule_activity(%L, %L, %L, %L, %L)', :'parent2', 'k2', 't', '{}', '{"idempotency_key": "k"}'));

-- Bad arguments.
SELECT expect_error($$SELECT * FROM workflow_claim_executions(ARRAY[]::text[], 'p')$$);
SELECT expect_error($$SELECT * FROM workflow_claim_executions(ARRAY['x'], 'p', 0)$$);
SELECT expect_error($$SELECT * FROM workflow_claim_executions(ARRAY['x', NULL], 'p')$$);
SELECT expect_error($$SELECT * FROM workflow_claim_executions(ARRAY['x'], 'p', 1, '0 seconds')$$);
SELECT expect_error($$SELECT * FROM workflow_claim_activity(NULL, 'p')$$);
SELECT expect_error($$SELECT workflow_complete('00000000-0000-0000-0000-000000000000', 'null', NULL)$$);

DELETE FROM workflow_execution WHERE workflow_type LIKE 'rp\_%';
DELETE FROM workflow_definition WHERE name = 'rp_declared';
