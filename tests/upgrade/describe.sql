-- Everything pg_workflow's SQL objects are, one line each, for comparing an updated
-- database with a new one.
WITH ext AS (SELECT oid, extnamespace FROM pg_extension WHERE extname = 'pg_workflow'),
members AS (SELECT d.classid, d.objid FROM pg_depend d, ext WHERE d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT 'relation ' || relname || ' ' || relkind::text || ' rls=' || relrowsecurity || ' options=' || coalesce(reloptions::text, '')
       || ' acl=' || coalesce(relacl::text, '') FROM rels
UNION ALL
SELECT 'column ' || r.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = r.oid AND d.adnum = a.attnum
UNION ALL
SELECT 'index ' || regexp_replace(pg_get_indexdef(i.indexrelid), ' ON \S+\.', ' ON ')
FROM rels r JOIN pg_index i ON i.indrelid = r.oid
UNION ALL
SELECT 'constraint ' || r.relname || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
FROM rels r JOIN pg_constraint c ON c.conrelid = r.oid
UNION ALL
SELECT 'trigger ' || r.relname || ' ' || pg_get_triggerdef(t.oid)
FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
UNION ALL
SELECT 'policy ' || p.tablename || ' ' || p.policyname || ' ' || p.cmd || ' ' || coalesce(p.qual, '')
FROM pg_policies p JOIN rels r ON r.relname = p.tablename
UNION ALL
SELECT 'function ' || p.proname || '(' || pg_get_function_arguments(p.oid) || ') ' || pg_get_function_result(p.oid)
       || ' ' || p.provolatile::text || p.proparallel::text || CASE WHEN p.proisstrict THEN ' strict' ELSE '' END
       || ' ' || l.lanname || ' acl=' || coalesce(p.proacl::text, '') || ' config=' || coalesce(p.proconfig::text, '')
       || ' body=' || md5(p.prosrc)
FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
JOIN pg_language l ON l.oid = p.prolang
UNION ALL
SELECT 'type ' || t.typname FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
ORDER BY 1;
