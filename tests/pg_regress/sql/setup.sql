-- Creates the extension (unless the setup under test created it already, as a
-- non-superuser: scripts/test.sh) and a helper that shows an error's SQLSTATE and
-- message with ids masked, so that expected output is stable.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_workflow;
RESET client_min_messages;

CREATE FUNCTION expect_error(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END
$$;

-- A worker, in SQL: claims one activity of a type and completes it with the given output.
CREATE FUNCTION work(activity text, output jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(c.step_key || ':' || workflow_complete_activity(c.activity_id, output, c.attempt), ',')
    FROM workflow_claim('default', 'regress-worker', 1, '5 minutes', ARRAY[activity]) c
$$;

-- expect_error, with the hint (what the message tells the caller to do).
CREATE FUNCTION expect_hint(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE hint text;
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN regexp_replace(SQLSTATE || ': ' || SQLERRM || E'\nHINT: ' || hint,
        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END
$$;
