-- Retries with exponential backoff, moved through workflow_dispatch(); fencing.
SELECT workflow_define('flaky', '{"steps": [
  {"name": "call", "activity": "api.call",
   "retry": {"max_attempts": 3, "initial_interval": "10s", "backoff_coefficient": 3, "jitter": 0,
             "non_retryable": ["BadRequest"]}}]}');
SELECT workflow_start('flaky', '{"n": 1}') AS id \gset

SELECT activity_id AS act, attempt FROM workflow_claim('default', 'w1', 1, '1 minute', ARRAY['api.call']) \gset
SELECT :attempt AS attempt;
-- Attempt 1 fails: retried after initial_interval (10s).
SELECT workflow_fail_activity(:'act', '{"type": "Unavailable", "message": "503"}', :attempt);
SELECT status, attempt, error, round(extract(epoch FROM scheduled_at - now())) AS backoff_seconds
FROM workflow_activity WHERE id = :'act';
-- Not claimable until its time comes.
SELECT count(*) FROM workflow_claim('default', 'w1', 1, '1 minute', ARRAY['api.call']);
UPDATE workflow_activity SET scheduled_at = now() WHERE id = :'act';

SELECT attempt FROM workflow_claim('default', 'w2', 1, '1 minute', ARRAY['api.call']);
-- The lease of attempt 2 expires; workflow_dispatch() turns it into a Timeout failure,
-- retried after 10s * 3 = 30s.
UPDATE workflow_activity SET lease_expires_at = now() - interval '1 second' WHERE id = :'act';
-- The background worker may get there first; either way it expires exactly once.
SELECT workflow_dispatch() IS NOT NULL AS dispatched;
SELECT status, attempt, error->>'type' AS error_type, round(extract(epoch FROM scheduled_at - now())) AS backoff_seconds
FROM workflow_activity WHERE id = :'act';
-- The worker of attempt 2 wakes up late: fenced out.
SELECT expect_error(format('SELECT workflow_complete_activity(%L, %L, 2)', :'act', '{}'));
SELECT expect_error(format('SELECT workflow_heartbeat(%L, 2)', :'act'));

UPDATE workflow_activity SET scheduled_at = now() WHERE id = :'act';
SELECT attempt FROM workflow_claim('default', 'w3', 1, '1 minute', ARRAY['api.call']);
SELECT workflow_heartbeat(:'act', 3, '{"progress": 0.9}');
-- Attempt 3 of 3 fails: the step and the execution fail.
SELECT workflow_fail_activity(:'act', '"still down"', 3);
SELECT status, error FROM workflow_execution WHERE id = :'id';

-- A non-retryable error type fails at once, whatever attempts remain.
SELECT workflow_start('flaky', '{"n": 2}') AS id2 \gset
SELECT workflow_fail_activity(activity_id, '{"type": "BadRequest"}', attempt)
FROM workflow_claim('default', 'w1', 1, '1 minute', ARRAY['api.call']);
SELECT status FROM workflow_execution WHERE id = :'id2';

-- retryable => false also fails at once.
SELECT workflow_start('flaky', '{"n": 3}') AS id3 \gset
SELECT workflow_fail_activity(activity_id, '"gave up"', attempt, false)
FROM workflow_claim('default', 'w1', 1, '1 minute', ARRAY['api.call']);
SELECT status FROM workflow_execution WHERE id = :'id3';

-- Completing twice: the second call returns false and changes nothing.
SELECT workflow_start('flaky', '{"n": 4}') AS id4 \gset
SELECT activity_id AS act4, attempt AS attempt4 FROM workflow_claim('default', 'w1', 1, '1 minute', ARRAY['api.call']) \gset
SELECT workflow_complete_activity(:'act4', '{"v": 1}', :attempt4);
SELECT workflow_complete_activity(:'act4', '{"v": 2}', :attempt4);
SELECT output FROM workflow_execution WHERE id = :'id4';
