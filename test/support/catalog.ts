/**
 * Reads the schema back from pg_catalog, by name only (no OIDs), so two databases or two points
 * in time can be compared with a plain deep equality. PostgreSQL's own deparsers
 * (`format_type`, `pg_get_expr`, `pg_get_constraintdef`, ...) give the same text on 15 and 17.
 *
 * These are the narrow, table-by-table views that schema tests assert on. The complete
 * description (every object, its security, grants and the journal), which the drift check and the
 * migration round-trip tests compare, is src/schema-check/catalog.ts.
 */
import type pg from 'pg';

/** One column, as PostgreSQL reports it. */
export interface ColumnInfo {
  name: string;
  /** `format_type()`: `uuid`, `text`, `timestamp with time zone`, ... */
  type: string;
  nullable: boolean;
  /** `pg_get_expr()` of the default, or null when there is none. */
  default: string | null;
}

/** One index, including those behind primary keys and unique constraints. */
export interface IndexInfo {
  name: string;
  unique: boolean;
  primary: boolean;
  columns: string[];
}

/** One constraint; `onDelete`/`onUpdate`/`references` are set only for foreign keys. */
export interface ConstraintInfo {
  name: string;
  /** `p` primary key, `u` unique, `f` foreign key, `c` check. */
  type: string;
  columns: string[];
  definition: string;
  references: string | null;
  /** `confdeltype`: `c` cascade, `a` no action, ... */
  onDelete: string | null;
  onUpdate: string | null;
}

/** One user-defined trigger. */
export interface TriggerInfo {
  name: string;
  table: string;
  function: string;
  enabled: boolean;
  definition: string;
}

/** One row-level security policy. */
export interface PolicyInfo {
  table: string;
  name: string;
  command: string;
  using: string | null;
  check: string | null;
}

/** Everything the migrations create in `public`, by name. */
export interface SchemaDescription {
  tables: string[];
  /** Tables with row-level security enabled / forced. */
  rowSecurity: Record<string, { enabled: boolean; forced: boolean }>;
  policies: PolicyInfo[];
  columns: Record<string, ColumnInfo[]>;
  indexes: Record<string, IndexInfo[]>;
  constraints: Record<string, ConstraintInfo[]>;
  triggers: TriggerInfo[];
  /** `pg_get_functiondef()` of each function, keyed by name. */
  functions: Record<string, string>;
}

type Queryable = Pick<pg.Pool, 'query'>;

/** Ordinary tables of the `public` schema, sorted. */
export async function listTables(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1`,
  );
  return rows.map((r) => r.name);
}

/** Columns of `table` in their physical order. */
export async function listColumns(db: Queryable, table: string): Promise<ColumnInfo[]> {
  const { rows } = await db.query<ColumnInfo>(
    `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, not a.attnotnull as nullable,
            pg_get_expr(d.adbin, d.adrelid) as default
     from pg_attribute a
     left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped
     order by a.attnum`,
    [`public.${table}`],
  );
  return rows;
}

/** Indexes of `table`, sorted by name. */
export async function listIndexes(db: Queryable, table: string): Promise<IndexInfo[]> {
  const { rows } = await db.query<IndexInfo>(
    `select ic.relname as name, i.indisunique as unique, i.indisprimary as primary,
            array(select a.attname::text from unnest(i.indkey) with ordinality k(attnum, ord)
                  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum order by k.ord) as columns
     from pg_index i join pg_class ic on ic.oid = i.indexrelid
     where i.indrelid = to_regclass($1)
     order by 1`,
    [`public.${table}`],
  );
  return rows;
}

/** Constraints of `table` (not NOT NULL ones, which PostgreSQL 17 doesn't list here), sorted by name. */
export async function listConstraints(db: Queryable, table: string): Promise<ConstraintInfo[]> {
  const { rows } = await db.query<ConstraintInfo>(
    `select c.conname as name, c.contype::text as type,
            array(select a.attname::text from unnest(c.conkey) with ordinality k(attnum, ord)
                  join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum
                  -- a check's columns come in expression order, which means nothing: sort them
                  order by case when c.contype = 'c' then a.attname::text end, k.ord) as columns,
            pg_get_constraintdef(c.oid) as definition,
            case when c.contype = 'f' then c.confrelid::regclass::text end as references,
            case when c.contype = 'f' then c.confdeltype::text end as "onDelete",
            case when c.contype = 'f' then c.confupdtype::text end as "onUpdate"
     from pg_constraint c
     where c.conrelid = to_regclass($1) and c.contype in ('p', 'u', 'f', 'c')
     order by 1`,
    [`public.${table}`],
  );
  return rows;
}

/** User-defined triggers of the `public` tables, sorted by table and name. */
export async function listTriggers(db: Queryable): Promise<TriggerInfo[]> {
  const { rows } = await db.query<TriggerInfo>(
    `select t.tgname as name, c.relname as table, p.proname as function, t.tgenabled <> 'D' as enabled,
            pg_get_triggerdef(t.oid) as definition
     from pg_trigger t
     join pg_class c on c.oid = t.tgrelid
     join pg_namespace n on n.oid = c.relnamespace
     join pg_proc p on p.oid = t.tgfoid
     where not t.tgisinternal and n.nspname = 'public'
     order by c.relname, t.tgname`,
  );
  return rows;
}

/** Functions of the `public` schema, keyed by name, with their full definitions. */
export async function listFunctions(db: Queryable): Promise<Record<string, string>> {
  const { rows } = await db.query<{ name: string; definition: string }>(
    `select p.proname as name, pg_get_functiondef(p.oid) as definition
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'public' order by 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.definition]));
}

/** Row-level security policies of the `public` tables, sorted by table and name. */
export async function listPolicies(db: Queryable): Promise<PolicyInfo[]> {
  const { rows } = await db.query<PolicyInfo>(
    `select tablename as table, policyname as name, cmd as command, qual as using, with_check as check
     from pg_policies where schemaname = 'public' order by 1, 2`,
  );
  return rows;
}

/** The whole `public` schema by name, for comparing two databases or two moments. */
export async function describeSchema(db: Queryable): Promise<SchemaDescription> {
  const tables = await listTables(db);
  const columns: Record<string, ColumnInfo[]> = {};
  const indexes: Record<string, IndexInfo[]> = {};
  const constraints: Record<string, ConstraintInfo[]> = {};
  const { rows: security } = await db.query<{ name: string; enabled: boolean; forced: boolean }>(
    `select c.relname as name, c.relrowsecurity as enabled, c.relforcerowsecurity as forced
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1`,
  );
  const rowSecurity = Object.fromEntries(security.map((r) => [r.name, { enabled: r.enabled, forced: r.forced }]));
  for (const table of tables) {
    columns[table] = await listColumns(db, table);
    indexes[table] = await listIndexes(db, table);
    constraints[table] = await listConstraints(db, table);
  }
  return {
    tables,
    rowSecurity,
    policies: await listPolicies(db),
    columns,
    indexes,
    constraints,
    triggers: await listTriggers(db),
    functions: await listFunctions(db),
  };
}

/** Names of the migrations recorded as applied, in order; null when the table doesn't exist. */
export async function appliedMigrations(db: Queryable): Promise<string[] | null> {
  const { rows: exists } = await db.query<{ present: boolean }>(
    `select to_regclass('public.vault_db_migrations') is not null as present`,
  );
  if (!exists[0]?.present) return null;
  const { rows } = await db.query<{ name: string }>('select name from vault_db_migrations order by id');
  return rows.map((r) => r.name);
}
