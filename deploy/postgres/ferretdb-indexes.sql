-- deploy/postgres/ferretdb-indexes.sql makes FerretDB v1's equality
-- filters index-backed on its PostgreSQL backend. deploy/stack.sh runs it on
-- the "ferretdb" database at every start; it is idempotent. Run it the same
-- way on any PostgreSQL that serves FerretDB v1 in production.
--
-- Why: FerretDB v1 stores a collection as a table with one jsonb column,
-- _jsonb, and turns an index the application creates on field f into a
-- btree index on the expression (_jsonb -> 'f'). But it pushes an equality
-- filter {f: v} down as
--
--     SELECT _jsonb FROM t WHERE _jsonb->$1 @> $2      -- $1 = 'f'
--
-- which a btree cannot serve (@> is containment, not =), so every lookup
-- is a sequential scan of the collection: 60-100 ms at 100,000 documents
-- on the machines we measured, growing with the collection. Two things fix
-- it, and neither changes what FerretDB returns:
--
-- 1. A GIN index (jsonb_path_ops, which supports @>) on the same
--    expression next to every btree index FerretDB creates: a "twin". An
--    event trigger creates the twin in the same transaction as the btree,
--    so collections created later get theirs too; the DO block at the end
--    gives existing indexes theirs.
-- 2. plan_cache_mode = force_custom_plan for the database. FerretDB sends
--    the key as a bind parameter of a prepared statement; PostgreSQL's
--    generic plan for "_jsonb->$1" cannot match any index expression, and
--    after five executions it would switch to that generic plan. A custom
--    plan sees "_jsonb->'f'" and uses the twin.
--
-- Measured with 100,000 documents of 2 KB: {rid: v} 67 ms -> 1.2 ms,
-- {_id: v} 59 ms -> 0.5 ms. Only single-key expressions (_jsonb -> 'f')
-- get twins: dotted keys are not pushed down by FerretDB v1 anyway.
--
-- On MongoDB none of this applies: the same application indexes serve the
-- same equality filters directly.

DO $do$
BEGIN
	EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = force_custom_plan', current_database());
END
$do$;

-- fieldsync_twin_index creates the GIN twins of one btree index: one per
-- key column of the form (_jsonb -> 'f'). Other indexes are ignored, the
-- twins themselves included (they are not btree), so the trigger does not
-- recurse.
CREATE OR REPLACE FUNCTION fieldsync_twin_index(idx oid) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
	tbl regclass;
	ncols int;
	col int;
	expr text;
	key text;
	twin text;
BEGIN
	SELECT i.indrelid::regclass, i.indnkeyatts INTO tbl, ncols
	FROM pg_index i
	JOIN pg_class c ON c.oid = i.indexrelid
	JOIN pg_am am ON am.oid = c.relam
	WHERE i.indexrelid = idx AND am.amname = 'btree';
	IF tbl IS NULL THEN
		RETURN;
	END IF;
	FOR col IN 1..ncols LOOP
		expr := pg_get_indexdef(idx, col, true);
		key := substring(expr FROM $re$^\(_jsonb -> '((?:[^']|'')*)'::text\)$$re$);
		IF key IS NULL THEN
			CONTINUE;
		END IF;
		key := replace(key, '''''', '''');
		twin := 'fsgin_' || substr(md5(tbl::text || '/' || key), 1, 24);
		EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb -> %L) jsonb_path_ops)',
			twin, tbl, key);
	END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION fieldsync_twin_indexes() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
	obj record;
BEGIN
	FOR obj IN SELECT objid FROM pg_event_trigger_ddl_commands()
		WHERE command_tag = 'CREATE INDEX' AND object_type = 'index'
	LOOP
		PERFORM fieldsync_twin_index(obj.objid);
	END LOOP;
END
$fn$;

DROP EVENT TRIGGER IF EXISTS fieldsync_twin_indexes;
CREATE EVENT TRIGGER fieldsync_twin_indexes ON ddl_command_end
	WHEN TAG IN ('CREATE INDEX')
	EXECUTE FUNCTION fieldsync_twin_indexes();

-- Twins for the indexes that exist already (a data folder from before).
DO $do$
DECLARE
	idx oid;
BEGIN
	FOR idx IN SELECT i.indexrelid FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
	LOOP
		PERFORM fieldsync_twin_index(idx);
	END LOOP;
END
$do$;
