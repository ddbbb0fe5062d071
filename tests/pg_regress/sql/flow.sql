-- Flow control (README): pausing a queue, a concurrency limit, a rate limit, and failed
-- work retried or cancelled in bulk.
SELECT workflow_define('fl_job', '{"steps": [{"name": "call", "activity": "llm.call", "queue": "fl_llm",
                                              "retry": {"max_attempts": 1}}]}') AS version;
SELECT count(workflow_start('fl_job', jsonb_build_object('i', i))) AS started FROM generate_series(1, 12) i;

-- Paused: claims get nothing, nothing is lost.
SELECT workflow_queue_configure('fl_llm', '{"paused": true}');
SELECT count(*) AS claimed_while_paused FROM workflow_claim('fl_llm', 'w', 10);
SELECT count(*) AS still_scheduled FROM workflow_activity WHERE queue = 'fl_llm' AND status = 'scheduled';

-- At most 2 running across all workers: claims get fewer rows rather than waiting.
SELECT workflow_queue_configure('fl_llm', '{"max_running": 2}');
SELECT count(*) AS first_claim FROM workflow_claim('fl_llm', 'w1', 10);
SELECT count(*) AS second_claim FROM workflow_claim('fl_llm', 'w2', 10);
SELECT count(*) AS completed FROM (SELECT workflow_complete_activity(id, '1', attempt)
                                   FROM workflow_activity WHERE queue = 'fl_llm' AND status = 'running' LIMIT 1) c;
SELECT count(*) AS after_one_finished FROM workflow_claim('fl_llm', 'w2', 10);

-- A provider's rate limit: 3 claims an hour (bursts of 3), on top of the concurrency limit.
SELECT workflow_queue_configure('fl_llm', '{"max_running": 100, "rate_limit": {"count": 3, "per": "1 hour"}}');
SELECT count(*) AS within_the_rate FROM workflow_claim('fl_llm', 'w3', 10);
SELECT count(*) AS over_the_rate FROM workflow_claim('fl_llm', 'w3', 10);
-- An hour later the bucket is full again (its last refill moved back).
UPDATE workflow_queue SET refilled_at = refilled_at - interval '1 hour' WHERE queue = 'fl_llm';
SELECT count(*) AS an_hour_later FROM workflow_claim('fl_llm', 'w3', 10);
SELECT queue, paused, max_running, rate_count, rate_per_us, burst FROM workflow_queue;

-- {} removes the limits; other queues never had any.
SELECT workflow_queue_configure('fl_llm', '{}');
SELECT count(*) AS unlimited FROM workflow_claim('fl_llm', 'w4', 10);
SELECT count(*) AS queues_configured FROM workflow_queue;

-- Bad options.
SELECT expect_error($$SELECT workflow_queue_configure('fl_llm', '{"max_running": 0}')$$);
SELECT expect_error($$SELECT workflow_queue_configure('fl_llm', '{"rate_limit": {"count": 5}}')$$);
SELECT expect_error($$SELECT workflow_queue_configure('fl_llm', '{"rate_limit": {"count": 5, "per": "0s"}}')$$);
SELECT expect_error($$SELECT workflow_queue_configure('fl_llm', '{"rate_limit": 5}')$$);
SELECT expect_error($$SELECT workflow_queue_configure('fl_llm', '{"paused": "yes"}')$$);
SELECT expect_error($$SELECT workflow_queue_configure('fl_llm', '{"concurrency": 3}')$$);
SELECT expect_error($$SELECT workflow_queue_configure('', '{}')$$);
SELECT expect_error($$SELECT workflow_queue_configure(NULL, '{}')$$);
SELECT expect_error($$SELECT workflow_queue_configure('fl_llm', NULL)$$);

-- A bad deploy failed them: retry them all in bulk (batches of 5), then cancel in bulk.
SELECT count(*) AS failed FROM (SELECT workflow_fail_activity(id, '{"type": "BadDeploy", "message": "x"}', attempt)
                                FROM workflow_activity WHERE queue = 'fl_llm' AND status = 'running') f;
SELECT status, count(*) FROM workflow_execution WHERE workflow_type = 'fl_job' GROUP BY 1 ORDER BY 1;
CALL workflow_retry_many('{"workflow_type": "fl_job", "error_type": "BadDeploy"}', 5);
SELECT status, count(*) FROM workflow_execution WHERE workflow_type = 'fl_job' GROUP BY 1 ORDER BY 1;
CALL workflow_cancel_many('{"workflow_type": "fl_job"}', 'cleanup', 5);
SELECT status, count(*) FROM workflow_execution WHERE workflow_type = 'fl_job' GROUP BY 1 ORDER BY 1;
CALL workflow_retry_many('{"workflow_type": "no_such_type"}');
SELECT expect_error($$CALL workflow_retry_many('{}', 0)$$);
SELECT expect_error($$CALL workflow_cancel_many('{}', 'x', 5000)$$);

-- Schedules: the nightly re-extraction, 02:00 Berlin time. Created paused here so the
-- dispatcher never fires it while this file runs (firing is tested in pgrx-tests and
-- tests/client); the next fire time is shown as Berlin wall time.
SELECT s - 'next_fire_at' AS created,
       (s->>'next_fire_at')::timestamptz AT TIME ZONE 'Europe/Berlin' > now() AT TIME ZONE 'Europe/Berlin' AS in_the_future,
       to_char((s->>'next_fire_at')::timestamptz AT TIME ZONE 'Europe/Berlin', 'HH24:MI') AS berlin_time
FROM workflow_schedule_create('nightly-reextract', '0 2 * * *', 'fl_job', '{"corpus": "all"}',
                              '{"timezone": "Europe/Berlin", "paused": true, "start": {"labels": {"job": "reextract"}}}') s;
-- Creating it again replaces it (this is how a schedule is updated).
SELECT s->>'schedule' AS schedule, s->>'overlap' AS overlap, s->>'catch_up' AS catch_up, s->'paused' AS paused
FROM workflow_schedule_create('nightly-reextract', '@every 90s', 'fl_job', '{}',
                              '{"paused": true, "overlap": "buffer_one", "catch_up": "skip"}') s;
SELECT workflow_schedule_create('hourly', '@hourly', 'fl_job', '{}', '{"paused": true}') ? 'next_fire_at' AS has_next_fire;
SELECT jsonb_array_length(workflow_schedule_list()) AS schedules,
       jsonb_path_query_array(workflow_schedule_list(), '$[*].name') AS names;
SELECT workflow_schedule_resume('hourly') AS resumed, workflow_schedule_pause('hourly') AS paused_again,
       workflow_schedule_pause('no-such-schedule') AS unknown;
SELECT workflow_schedule_delete('hourly') AS deleted, workflow_schedule_delete('hourly') AS deleted_twice;

-- Bad schedules: each names the field and what to write.
SELECT expect_error($$SELECT workflow_schedule_create('x', '0 2 * *', 'fl_job')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '61 * * * *', 'fl_job')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '0 0 30 2 *', 'fl_job')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '@every 0s', 'fl_job')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '@fortnightly', 'fl_job')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '0 2 * * *', 'fl_job', '{}', '{"timezone": "Mars/Olympus"}')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '0 2 * * *', 'fl_job', '{}', '{"overlap": "queue"}')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '0 2 * * *', 'fl_job', '{}', '{"catch_up": "all"}')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '0 2 * * *', 'fl_job', '{}', '{"every": "1h"}')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '0 2 * * *', 'fl_job', '{}', '{"start": 5}')$$);
SELECT expect_error($$SELECT workflow_schedule_create('', '0 2 * * *', 'fl_job')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', NULL, 'fl_job')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '0 2 * * *', NULL)$$);
SELECT expect_error($$SELECT workflow_schedule_delete(NULL)$$);
SELECT count(*) AS none_created FROM workflow_schedule WHERE name = 'x';
SELECT workflow_schedule_delete('nightly-reextract') AS cleaned_up;
-- What would make every fire fail is refused when the schedule is created.
SELECT expect_error($$SELECT workflow_schedule_create('x', '@hourly', 'no_such_type')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '@hourly', 'fl_job', '{}', '{"start": {"priority": "high"}}')$$);
SELECT expect_error($$SELECT workflow_schedule_create('x', '@hourly', 'fl_job', '{}', '{"start": {"labels": 7}}')$$);
SELECT count(*) AS still_none FROM workflow_schedule WHERE name = 'x';

-- One extraction per document: a concurrency key on the workflow. The second start for
-- document A waits (pending, no start time); B runs in parallel.
SELECT workflow_define('fl_extract', '{"concurrency_key": "input.document_id", "max_running": 1,
                                       "steps": [{"name": "extract", "activity": "llm.extract", "queue": "fl_ck"}]}') AS version;
CREATE TEMP TABLE fl_runs AS
SELECT doc, workflow_start('fl_extract', jsonb_build_object('document_id', doc)) AS id
FROM unnest(ARRAY['A', 'A', 'B']) WITH ORDINALITY AS d(doc, n) ORDER BY n;
SELECT r.doc, e.status, e.concurrency_key, workflow_status(r.id)->>'waiting_for' AS waiting_for
FROM fl_runs r JOIN workflow_execution e ON e.id = r.id ORDER BY r.id;
-- The first run for A completes: the next one for A starts (made due; the dispatcher or
-- workflow_dispatch() starts it).
SELECT workflow_complete_activity(a.activity_id, '1', a.attempt) AS completed
FROM workflow_claim('fl_ck', 'w', 1) a WHERE a.input->'input'->>'document_id' = 'A';
SELECT count(*) >= 0 AS dispatched FROM workflow_dispatch();
SELECT r.doc, e.status FROM fl_runs r JOIN workflow_execution e ON e.id = r.id ORDER BY r.id;
-- The key must be in the input, and a step's key must read what the step is given.
SELECT expect_error($$SELECT workflow_start('fl_extract', '{"doc": "A"}')$$);
SELECT expect_error($$SELECT workflow_define('fl_bad', '{"concurrency_key": "document_id", "steps": [{"name": "a", "activity": "a"}]}')$$);
SELECT expect_error($$SELECT workflow_define('fl_bad', '{"max_running": 0, "steps": [{"name": "a", "activity": "a"}]}')$$);
SELECT expect_error($$SELECT workflow_define('fl_bad', '{"steps": [{"name": "a", "sleep": "1s", "concurrency_key": "input.x"}]}')$$);
SELECT expect_error($$SELECT workflow_define('fl_bad', '{"steps": [{"name": "a", "activity": "a", "concurrency_key": "fetch.x"}]}')$$);

-- A key on a step: the provider account allows one call at a time. The execution runs;
-- its step is held while another with the key runs.
SELECT workflow_define('fl_step_key', '{"steps": [{"name": "call", "activity": "llm.call", "queue": "fl_sk",
                                        "concurrency_key": "input.account", "max_running": 1}]}') AS version;
CREATE TEMP TABLE fl_sk AS
SELECT n, workflow_start('fl_step_key', '{"account": "acct-1"}') AS id FROM generate_series(1, 2) n;
SELECT f.n, e.status, workflow_status(f.id)->'steps'->0->'waiting_for' AS waiting_for
FROM fl_sk f JOIN workflow_execution e ON e.id = f.id ORDER BY f.n;
SELECT count(*) AS claimed FROM workflow_claim('fl_sk', 'w', 10);
SELECT workflow_complete_activity(a.id, '1', a.attempt) AS completed
FROM workflow_activity a JOIN fl_sk f ON f.id = a.execution_id WHERE f.n = 1;
SELECT count(*) AS claimed_after FROM workflow_claim('fl_sk', 'w', 10);

-- Pausing a workflow type: starts are accepted and wait; resuming starts them.
SELECT workflow_type_pause('fl_job') AS paused, workflow_type_pause('fl_job') AS paused_again;
SELECT count(workflow_start('fl_job', jsonb_build_object('i', i))) AS started_while_paused FROM generate_series(1, 3) i;
SELECT status, workflow_status(id)->>'waiting_for' AS waiting_for, count(*)
FROM workflow_execution WHERE workflow_type = 'fl_job' AND status = 'pending' GROUP BY 1, 2;
SELECT workflow_type_resume('fl_job') AS resumed, workflow_type_resume('fl_job') AS resumed_again;
SELECT count(*) >= 0 AS dispatched FROM workflow_dispatch();
SELECT count(*) AS still_pending FROM workflow_execution WHERE workflow_type = 'fl_job' AND status = 'pending';
SELECT expect_error($$SELECT workflow_type_pause('no_such_type')$$);
SELECT expect_error($$SELECT workflow_type_pause(NULL)$$);

-- A rate-limited step says so in workflow_status.
SELECT workflow_queue_configure('fl_ck', '{"rate_limit": {"count": 1, "per": "1 hour"}}');
SELECT count(*) AS claimed FROM workflow_claim('fl_ck', 'w', 10);
SELECT workflow_status(id)->'steps'->0->'waiting_for'->>'reason' AS reason,
       (workflow_status(id)->'steps'->0->'waiting_for'->>'next_claim_at')::timestamptz > now() AS later
FROM fl_runs WHERE id = (SELECT execution_id FROM workflow_activity WHERE queue = 'fl_ck' AND status = 'scheduled' LIMIT 1);
SELECT workflow_queue_configure('fl_ck', '{}');

DELETE FROM workflow_execution WHERE workflow_type IN ('fl_job', 'fl_extract', 'fl_step_key');
DELETE FROM workflow_definition WHERE name IN ('fl_job', 'fl_extract', 'fl_step_key');
