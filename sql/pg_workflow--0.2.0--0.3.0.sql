-- pg_workflow 0.2.0 -> 0.3.0 (CHANGELOG: 0.3.0).

-- Installable by a non-superuser (the control file now says trusted = true): the grant
-- recipes move into the library, which runs the GRANTs as the owner of the objects (in
-- a trusted install that is the bootstrap superuser, not the role that created the
-- extension) after checking that the caller is bound to no tenant; they gain the `owner`
-- part. CREATE OR REPLACE keeps the functions' grants. An installed 0.2.0 was created by
-- a superuser, so no role needs the owner part here.
CREATE OR REPLACE FUNCTION @extschema@.workflow_grant("role" pg_catalog.regrole, "part" pg_catalog.text) RETURNS void
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_grant_wrapper';
CREATE OR REPLACE FUNCTION @extschema@.workflow_revoke("role" pg_catalog.regrole) RETURNS void
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_revoke_wrapper';
