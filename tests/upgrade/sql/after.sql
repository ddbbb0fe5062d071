-- Phase 2, after installing this version's library and restarting: the old objects
-- are refused until ALTER EXTENSION UPDATE; then every execution finishes, and what
-- completed before the update is kept, not redone.
SELECT expect_error($$SELECT workflow_status(id) FROM upg WHERE label = 'completed'$$);
ALTER EXTENSION pg_workflow UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_workflow';

-- Completed before, unchanged after.
SELECT workflow_status(id)->>'status' AS status, workflow_status(id)->'output' AS output
FROM upg WHERE label = 'completed';
SELECT workflow_start('upg_doc', '{}', 'key-1') = (SELECT id FROM upg WHERE label = 'completed') AS same_key_same_execution;

-- Finish everything: the claimed activity with its old attempt, the signal, the client,
-- resume the failed and the cancelled one, and work every queue until all are done
-- (retries, the sleep, the delayed start and the sql step are the dispatcher's).
SELECT workflow_complete_activity(activity_id, '{"late": true}', attempt) FROM upg_claim WHERE label = 'running';
SELECT workflow_signal(id, 'approve', '{"by": "ops"}') IS NOT NULL AS signalled FROM upg WHERE label = 'waiting';
SELECT workflow_retry(id) FROM upg WHERE label IN ('failed', 'cancelled') ORDER BY label;
-- The hour-long sleep and delayed start fall due now (the dispatcher moves them).
UPDATE workflow_activity SET scheduled_at = now()
WHERE status = 'waiting' AND execution_id = (SELECT id FROM upg WHERE label = 'sleeping');
UPDATE workflow_execution SET started_at = now() WHERE id = (SELECT id FROM upg WHERE label = 'pending');
SELECT workflow_wake() IS NOT NULL AS woken;
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '60 seconds';
    open int;
BEGIN
    LOOP
        PERFORM work(label) FROM upg;
        PERFORM workflow_complete(upg.id, '{"client": "done"}') FROM upg JOIN workflow_execution e ON e.id = upg.id
        WHERE upg.label = 'client' AND e.ready_at IS NOT NULL AND e.status = 'running';
        SELECT count(*) INTO open FROM upg JOIN workflow_execution e ON e.id = upg.id WHERE e.status <> 'completed';
        EXIT WHEN open = 0;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION '% executions did not finish within 60 seconds', open;
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;

SELECT upg.label, e.status, (SELECT string_agg(a.step_key || '#' || a.attempt || '=' || a.status, ' ' ORDER BY a.step_key)
                             FROM workflow_activity a WHERE a.execution_id = e.id) AS steps
FROM upg JOIN workflow_execution e ON e.id = upg.id ORDER BY upg.label;
SELECT label, workflow_status(id)->'output' AS output FROM upg
WHERE label IN ('running', 'waiting', 'sleeping', 'mapping', 'client') ORDER BY label;
-- Nothing completed before the update ran again or changed.
SELECT count(*) AS completed_before, count(*) FILTER (WHERE a.output IS DISTINCT FROM d.output
                                                   OR a.finished_at <> d.finished_at OR a.attempt <> d.attempt) AS changed
FROM done_before d JOIN workflow_activity a ON a.id = d.id;
