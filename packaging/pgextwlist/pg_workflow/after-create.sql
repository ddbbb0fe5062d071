-- pgextwlist custom script for pg_workflow (README: Install, managed Postgres).
-- Install it as ${extwlist.custom_path}/pg_workflow/after-create.sql.
--
-- pgextwlist runs CREATE EXTENSION as the bootstrap superuser: the extension and all its
-- objects belong to that superuser, and the role that asked for it gets nothing. This
-- script, which pgextwlist runs right after (as that superuser too), gives the session's
-- login role the owner part, as a trusted install gives it to the creating role: every
-- function, read access to the tables, the right to grant parts and bind tenants. Never
-- write access to the tables. (pgextwlist's @current_user@ names the superuser here, so
-- the login role is taken from session_user; to give it to the database owner instead,
-- replace session_user with '@database_owner@'.)
DO $$
DECLARE creator pg_catalog.regrole := pg_catalog.quote_ident(session_user)::pg_catalog.regrole;
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) creator) THEN
        PERFORM @extschema@.workflow_grant(creator, 'owner');
    END IF;
END
$$;
