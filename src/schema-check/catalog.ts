/**
 * Reads a database's schema back from `pg_catalog` as a flat map of named objects and their
 * attributes, so that two databases (the live one and a freshly migrated scratch one) can be
 * compared generically, object by object, without knowing which objects the migrations create.
 *
 * Only `pg_catalog` is read, never `information_schema`: the latter hides objects (CHECK
 * constraints, for one) from roles that don't own them, and the description must be the same
 * whichever role reads it. Role names are normalized: the role that owns the migration journal
 * (the one that ran the migrations) reads as {@link MIGRATOR}, so a database migrated by `owner`
 * and a scratch database migrated by `root` compare equal.
 *
 * @module
 */

/** Anything that runs a query and returns rows: a `pg.Client`, a `pg.Pool`, a `pg.PoolClient`. */
export interface Queryable {
  query<R extends object>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

/** How the role that ran the migrations (the owner of the journal table) appears in a description. */
export const MIGRATOR = '(migrations owner)';

/** How the PUBLIC pseudo-role (every role) appears in grants. */
export const PUBLIC = 'PUBLIC';

/** The attributes of one object, as text; `null` means "not set". */
export type ObjectAttributes = Record<string, string | null>;

/**
 * A database's schema: object key (`table public.records`, `trigger public.vaults.name`, ...) to
 * the attributes that matter for it. Keys and attributes contain no OIDs, so they compare across
 * databases.
 */
export type CatalogDescription = Map<string, ObjectAttributes>;

/** Where the migration journal lives; vault-db's own `public.vault_db_migrations` (see src/migrations-runner/journal.ts). */
export interface JournalLocation {
  schema: string;
  table: string;
}

/** The journal used by vault-db (see `createConfig`'s `migrations.tableName`). */
export const DEFAULT_JOURNAL: JournalLocation = { schema: 'public', table: 'vault_db_migrations' };

/** Schemas that belong to PostgreSQL itself, never to the migrations. */
const USER_SCHEMAS = `n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%'`;

/** Objects that an extension created are the extension's business, not the migrations'. */
const NOT_FROM_EXTENSION = (classTable: string, oid: string) =>
  `not exists (select 1 from pg_catalog.pg_depend d where d.classid = '${classTable}'::regclass and d.objid = ${oid} and d.deptype = 'e')`;

const RELATION_KINDS: Record<string, string> = {
  r: 'table',
  p: 'partitioned table',
  v: 'view',
  m: 'materialized view',
  S: 'sequence',
  f: 'foreign table',
};

const TRIGGER_ENABLED: Record<string, string> = { O: 'enabled', D: 'disabled', R: 'replica only', A: 'always' };
const VOLATILITY: Record<string, string> = { i: 'immutable', s: 'stable', v: 'volatile' };
const PARALLEL: Record<string, string> = { s: 'safe', r: 'restricted', u: 'unsafe' };
const POLICY_COMMAND: Record<string, string> = { r: 'SELECT', a: 'INSERT', w: 'UPDATE', d: 'DELETE', '*': 'ALL' };
const PERSISTENCE: Record<string, string> = { p: 'permanent', u: 'unlogged', t: 'temporary' };

/** An ACL as rows of `aclexplode`, rendered as `grantee: PRIV, PRIV*` (a star: with grant option). */
const ACL_COLUMNS = (acl: string) => `(select coalesce(json_agg(json_build_object(
      'grantee', case when e.grantee = 0 then '${PUBLIC}' else pg_catalog.pg_get_userbyid(e.grantee) end,
      'privilege', e.privilege_type, 'grantable', e.is_grantable)), '[]'::json)
    from pg_catalog.aclexplode(${acl}) e)`;

interface AclEntry {
  grantee: string;
  privilege: string;
  grantable: boolean;
}

/**
 * Privileges an application role ordinarily gets from the operator (docs/app-role.sql), by kind
 * of object. Grants to roles other than the migrations' owner and PUBLIC don't come from the
 * migrations, so only privileges beyond these (or with grant option) are part of a description.
 */
const ORDINARY_PRIVILEGES: Record<'table' | 'sequence' | 'schema' | 'function' | 'type' | 'defaults', ReadonlySet<string>> = {
  table: new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE']),
  sequence: new Set(['USAGE', 'SELECT', 'UPDATE']),
  schema: new Set(['USAGE']),
  function: new Set(['EXECUTE']),
  type: new Set(['USAGE']),
  defaults: new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'USAGE', 'EXECUTE']),
};

/**
 * Renders ACL entries as one stable line: `grantee: PRIV, PRIV*` (a star: with grant option),
 * with the migrations' owner normalized. Every privilege of the owner and of PUBLIC is listed;
 * of any other role, only those beyond `ordinary`.
 */
function renderAcl(entries: AclEntry[], role: (name: string) => string, ordinary: ReadonlySet<string>): string {
  const byGrantee = new Map<string, string[]>();
  for (const e of entries) {
    const grantee = role(e.grantee);
    const listed = grantee === MIGRATOR || grantee === PUBLIC || e.grantable || !ordinary.has(e.privilege);
    if (!listed) continue;
    const list = byGrantee.get(grantee) ?? [];
    list.push(e.privilege + (e.grantable ? '*' : ''));
    byGrantee.set(grantee, list);
  }
  return [...byGrantee.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([grantee, privileges]) => `${grantee}: ${privileges.sort().join(', ')}`)
    .join('; ');
}

/**
 * Describes every object of the user schemas of the database `db` is connected to. Run it inside
 * a read-only repeatable-read transaction (see {@link readCatalog}) so the picture is consistent.
 *
 * @param journal where the migration journal is: its owner is the "migrations owner"
 */
export async function describeCatalog(db: Queryable, journal: JournalLocation = DEFAULT_JOURNAL): Promise<CatalogDescription> {
  const out: CatalogDescription = new Map();
  const { rows: owners } = await db.query<{ migrator: string | null }>(
    `select pg_catalog.pg_get_userbyid(c.relowner) as migrator from pg_catalog.pg_class c
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2`,
    [journal.schema, journal.table],
  );
  const migrator = owners[0]?.migrator ?? null;
  const role = (name: string) => (name === migrator ? MIGRATOR : name);
  const add = (key: string, attributes: ObjectAttributes) => out.set(key, attributes);

  const { rows: schemas } = await db.query<{ name: string; owner: string; acl: AclEntry[] }>(
    `select n.nspname as name, pg_catalog.pg_get_userbyid(n.nspowner) as owner,
            ${ACL_COLUMNS(`coalesce(n.nspacl, pg_catalog.acldefault('n'::"char", n.nspowner))`)} as acl
       from pg_catalog.pg_namespace n where ${USER_SCHEMAS} and ${NOT_FROM_EXTENSION('pg_namespace', 'n.oid')}`,
  );
  for (const s of schemas) add(`schema ${s.name}`, { owner: role(s.owner), grants: renderAcl(s.acl, role, ORDINARY_PRIVILEGES.schema) });

  const { rows: relations } = await db.query<{
    schema: string; name: string; kind: string; persistence: string; rls: boolean; force_rls: boolean; owner: string;
    acl: AclEntry[]; options: string | null; view: string | null; partition_key: string | null; replica_identity: string;
    sequence: string | null;
  }>(
    `select n.nspname as schema, c.relname as name, c.relkind::text as kind, c.relpersistence::text as persistence,
            c.relrowsecurity as rls, c.relforcerowsecurity as force_rls, pg_catalog.pg_get_userbyid(c.relowner) as owner,
            ${ACL_COLUMNS(`coalesce(c.relacl, pg_catalog.acldefault((case when c.relkind = 'S' then 's' else 'r' end)::"char", c.relowner))`)} as acl,
            array_to_string(c.reloptions, ', ') as options,
            case when c.relkind in ('v', 'm') then pg_catalog.pg_get_viewdef(c.oid) end as view,
            case when c.relkind = 'p' then pg_catalog.pg_get_partkeydef(c.oid) end as partition_key,
            c.relreplident::text as replica_identity,
            (select format('%s start %s increment %s min %s max %s cache %s%s', pg_catalog.format_type(s.seqtypid, null),
                    s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, case when s.seqcycle then ' cycle' else '' end)
               from pg_catalog.pg_sequence s where s.seqrelid = c.oid) as sequence
       from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where ${USER_SCHEMAS} and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and ${NOT_FROM_EXTENSION('pg_class', 'c.oid')}`,
  );
  for (const r of relations) {
    add(`${RELATION_KINDS[r.kind] ?? `relation (${r.kind})`} ${r.schema}.${r.name}`, {
      persistence: PERSISTENCE[r.persistence] ?? r.persistence,
      'row-level security': r.rls ? 'enabled' : 'disabled',
      'forced row-level security': r.force_rls ? 'forced' : 'not forced',
      owner: role(r.owner),
      grants: renderAcl(r.acl, role, r.kind === 'S' ? ORDINARY_PRIVILEGES.sequence : ORDINARY_PRIVILEGES.table),
      options: r.options,
      'view definition': r.view,
      'partition key': r.partition_key,
      'replica identity': r.replica_identity,
      sequence: r.sequence,
    });
  }

  const { rows: columns } = await db.query<{
    schema: string; table: string; name: string; position: string; type: string; not_null: boolean; default: string | null;
    collation: string | null; identity: string; generated: string; acl: AclEntry[] | null;
  }>(
    `select n.nspname as schema, c.relname as table, a.attname as name,
            row_number() over (partition by c.oid order by a.attnum)::text as position,
            pg_catalog.format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null,
            pg_catalog.pg_get_expr(d.adbin, d.adrelid) as default,
            case when a.attcollation <> t.typcollation then (select quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
              from pg_catalog.pg_collation co join pg_catalog.pg_namespace cn on cn.oid = co.collnamespace where co.oid = a.attcollation) end as collation,
            a.attidentity::text as identity, a.attgenerated::text as generated,
            case when a.attacl is not null then ${ACL_COLUMNS('a.attacl')} end as acl
       from pg_catalog.pg_attribute a
       join pg_catalog.pg_class c on c.oid = a.attrelid
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
       join pg_catalog.pg_type t on t.oid = a.atttypid
       left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where ${USER_SCHEMAS} and c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped
        and ${NOT_FROM_EXTENSION('pg_class', 'c.oid')}`,
  );
  for (const c of columns) {
    add(`column ${c.schema}.${c.table}.${c.name}`, {
      position: c.position,
      type: c.type,
      nullable: c.not_null ? 'not null' : 'null',
      default: c.default,
      collation: c.collation,
      identity: c.identity || null,
      generated: c.generated || null,
      grants: c.acl ? renderAcl(c.acl, role, ORDINARY_PRIVILEGES.table) || null : null,
    });
  }

  const { rows: constraints } = await db.query<{
    schema: string; owner_name: string; name: string; type: string; definition: string; validated: boolean;
    deferrable: boolean; deferred: boolean; no_inherit: boolean; on_domain: boolean;
  }>(
    `select n.nspname as schema, coalesce(c.relname, t.typname) as owner_name, k.conname as name, k.contype::text as type,
            pg_catalog.pg_get_constraintdef(k.oid) as definition, k.convalidated as validated,
            k.condeferrable as deferrable, k.condeferred as deferred, k.connoinherit as no_inherit, k.contypid <> 0 as on_domain
       from pg_catalog.pg_constraint k
       join pg_catalog.pg_namespace n on n.oid = k.connamespace
       left join pg_catalog.pg_class c on c.oid = k.conrelid
       left join pg_catalog.pg_type t on t.oid = k.contypid
      where ${USER_SCHEMAS} and (k.conrelid <> 0 or k.contypid <> 0) and ${NOT_FROM_EXTENSION('pg_constraint', 'k.oid')}`,
  );
  for (const k of constraints) {
    add(`${k.on_domain ? 'domain constraint' : 'constraint'} ${k.schema}.${k.owner_name}.${k.name}`, {
      type: k.type,
      definition: k.definition,
      validation: k.validated ? 'validated' : 'NOT VALID',
      deferrable: k.deferrable ? (k.deferred ? 'deferrable initially deferred' : 'deferrable') : 'not deferrable',
      inheritance: k.no_inherit ? 'no inherit' : null,
    });
  }

  const { rows: indexes } = await db.query<{ schema: string; name: string; table: string; definition: string; valid: boolean }>(
    `select n.nspname as schema, ic.relname as name, c.relname as table, pg_catalog.pg_get_indexdef(i.indexrelid) as definition,
            i.indisvalid as valid
       from pg_catalog.pg_index i
       join pg_catalog.pg_class ic on ic.oid = i.indexrelid
       join pg_catalog.pg_class c on c.oid = i.indrelid
       join pg_catalog.pg_namespace n on n.oid = ic.relnamespace
      where ${USER_SCHEMAS} and ${NOT_FROM_EXTENSION('pg_class', 'c.oid')}`,
  );
  for (const i of indexes) {
    add(`index ${i.schema}.${i.name}`, { table: i.table, definition: i.definition, validity: i.valid ? 'valid' : 'INVALID' });
  }

  const { rows: triggers } = await db.query<{ schema: string; table: string; name: string; enabled: string; definition: string }>(
    `select n.nspname as schema, c.relname as table, t.tgname as name, t.tgenabled::text as enabled,
            pg_catalog.pg_get_triggerdef(t.oid) as definition
       from pg_catalog.pg_trigger t
       join pg_catalog.pg_class c on c.oid = t.tgrelid
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where ${USER_SCHEMAS} and not t.tgisinternal`,
  );
  for (const t of triggers) {
    add(`trigger ${t.schema}.${t.table}.${t.name}`, { state: TRIGGER_ENABLED[t.enabled] ?? t.enabled, definition: t.definition });
  }

  const { rows: functions } = await db.query<{
    schema: string; signature: string; kind: string; result: string | null; language: string; definer: boolean;
    volatility: string; strict: boolean; leakproof: boolean; parallel: string; config: string | null; body: string | null;
    owner: string; acl: AclEntry[];
  }>(
    `select n.nspname as schema, p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' as signature,
            p.prokind::text as kind, pg_catalog.pg_get_function_result(p.oid) as result, l.lanname as language,
            p.prosecdef as definer, p.provolatile::text as volatility, p.proisstrict as strict, p.proleakproof as leakproof,
            p.proparallel::text as parallel, array_to_string(p.proconfig, ', ') as config,
            coalesce(p.prosrc, '') || coalesce(' ' || p.probin, '') as body,
            pg_catalog.pg_get_userbyid(p.proowner) as owner,
            ${ACL_COLUMNS(`coalesce(p.proacl, pg_catalog.acldefault('f'::"char", p.proowner))`)} as acl
       from pg_catalog.pg_proc p
       join pg_catalog.pg_namespace n on n.oid = p.pronamespace
       join pg_catalog.pg_language l on l.oid = p.prolang
      where ${USER_SCHEMAS} and ${NOT_FROM_EXTENSION('pg_proc', 'p.oid')}`,
  );
  for (const f of functions) {
    add(`${f.kind === 'p' ? 'procedure' : 'function'} ${f.schema}.${f.signature}`, {
      returns: f.result,
      language: f.language,
      security: f.definer ? 'SECURITY DEFINER' : 'SECURITY INVOKER',
      volatility: VOLATILITY[f.volatility] ?? f.volatility,
      strict: f.strict ? 'strict' : 'called on null input',
      leakproof: f.leakproof ? 'leakproof' : 'not leakproof',
      parallel: PARALLEL[f.parallel] ?? f.parallel,
      settings: f.config,
      body: f.body,
      owner: role(f.owner),
      grants: renderAcl(f.acl, role, ORDINARY_PRIVILEGES.function),
    });
  }

  const { rows: policies } = await db.query<{
    schema: string; table: string; name: string; command: string; permissive: boolean; roles: string[]; using: string | null;
    check: string | null;
  }>(
    `select n.nspname as schema, c.relname as table, p.polname as name, p.polcmd::text as command, p.polpermissive as permissive,
            array(select (case when r = 0 then '${PUBLIC}' else pg_catalog.pg_get_userbyid(r)::text end) from unnest(p.polroles) r order by 1)::text[] as roles,
            pg_catalog.pg_get_expr(p.polqual, p.polrelid) as using, pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) as check
       from pg_catalog.pg_policy p
       join pg_catalog.pg_class c on c.oid = p.polrelid
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where ${USER_SCHEMAS}`,
  );
  for (const p of policies) {
    add(`policy ${p.schema}.${p.table}.${p.name}`, {
      command: POLICY_COMMAND[p.command] ?? p.command,
      kind: p.permissive ? 'permissive' : 'restrictive',
      roles: p.roles.map(role).sort().join(', '),
      using: p.using,
      'with check': p.check,
    });
  }

  const { rows: types } = await db.query<{
    schema: string; name: string; kind: string; labels: string | null; base: string | null; not_null: boolean;
    default: string | null; owner: string; acl: AclEntry[];
  }>(
    `select n.nspname as schema, t.typname as name, t.typtype::text as kind,
            (select string_agg(e.enumlabel, ', ' order by e.enumsortorder) from pg_catalog.pg_enum e where e.enumtypid = t.oid) as labels,
            case when t.typtype = 'd' then pg_catalog.format_type(t.typbasetype, t.typtypmod) end as base,
            t.typnotnull as not_null, t.typdefault as default, pg_catalog.pg_get_userbyid(t.typowner) as owner,
            ${ACL_COLUMNS(`coalesce(t.typacl, pg_catalog.acldefault('T'::"char", t.typowner))`)} as acl
       from pg_catalog.pg_type t
       join pg_catalog.pg_namespace n on n.oid = t.typnamespace
      where ${USER_SCHEMAS} and t.typtype in ('e', 'd', 'r', 'c')
        and (t.typrelid = 0 or (select c.relkind from pg_catalog.pg_class c where c.oid = t.typrelid) = 'c')
        and ${NOT_FROM_EXTENSION('pg_type', 't.oid')}`,
  );
  for (const t of types) {
    add(`type ${t.schema}.${t.name}`, {
      kind: t.kind,
      labels: t.labels,
      'base type': t.base,
      nullable: t.kind === 'd' ? (t.not_null ? 'not null' : 'null') : null,
      default: t.default,
      owner: role(t.owner),
      grants: renderAcl(t.acl, role, ORDINARY_PRIVILEGES.type),
    });
  }

  const { rows: rules } = await db.query<{ schema: string; table: string; name: string; definition: string; enabled: string }>(
    `select n.nspname as schema, c.relname as table, r.rulename as name, pg_catalog.pg_get_ruledef(r.oid) as definition,
            r.ev_enabled::text as enabled
       from pg_catalog.pg_rewrite r
       join pg_catalog.pg_class c on c.oid = r.ev_class
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where ${USER_SCHEMAS} and r.rulename <> '_RETURN'`,
  );
  for (const r of rules) add(`rule ${r.schema}.${r.table}.${r.name}`, { definition: r.definition, state: TRIGGER_ENABLED[r.enabled] ?? r.enabled });

  const { rows: extensions } = await db.query<{ name: string; schema: string; version: string }>(
    `select e.extname as name, n.nspname as schema, e.extversion as version
       from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace`,
  );
  for (const e of extensions) add(`extension ${e.name}`, { schema: e.schema, version: e.version });

  const { rows: eventTriggers } = await db.query<{ name: string; event: string; enabled: string; function: string; tags: string | null }>(
    `select e.evtname as name, e.evtevent as event, e.evtenabled::text as enabled, e.evtfoid::regprocedure::text as function,
            array_to_string(e.evttags, ', ') as tags
       from pg_catalog.pg_event_trigger e`,
  );
  for (const e of eventTriggers) {
    add(`event trigger ${e.name}`, { event: e.event, state: TRIGGER_ENABLED[e.enabled] ?? e.enabled, function: e.function, tags: e.tags });
  }

  const { rows: defaults } = await db.query<{ role: string; schema: string | null; type: string; acl: AclEntry[] }>(
    `select pg_catalog.pg_get_userbyid(d.defaclrole) as role, n.nspname as schema, d.defaclobjtype::text as type,
            ${ACL_COLUMNS('d.defaclacl')} as acl
       from pg_catalog.pg_default_acl d left join pg_catalog.pg_namespace n on n.oid = d.defaclnamespace`,
  );
  for (const d of defaults) {
    const grants = renderAcl(d.acl, role, ORDINARY_PRIVILEGES.defaults);
    // An operator's default grants of row privileges to an application role are not drift.
    if (grants) add(`default privileges of ${role(d.role)} in ${d.schema ?? 'every schema'} on ${d.type}`, { grants });
  }
  return out;
}

/** One row of the migration journal. */
export interface JournalEntry {
  name: string;
  /** The checksum the runner recorded, or null when the journal has none (see the runner). */
  checksum: string | null;
}

/**
 * What the migration journal says was applied, in order, as `migration <name>` objects; `null`
 * when the journal table doesn't exist. Throws PostgreSQL's 42501 when the role may not read it.
 */
export async function readJournal(db: Queryable, journal: JournalLocation = DEFAULT_JOURNAL): Promise<JournalEntry[] | null> {
  const { rows: present } = await db.query<{ checksum: boolean | null }>(
    `select (select true from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attname = 'checksum' and not a.attisdropped) as checksum
       from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2`,
    [journal.schema, journal.table],
  );
  if (present.length === 0) return null;
  const table = `${quoteIdent(journal.schema)}.${quoteIdent(journal.table)}`;
  const { rows } = await db.query<JournalEntry>(
    `select name, ${present[0]?.checksum ? 'checksum' : 'null::text as checksum'} from ${table} order by id`,
  );
  return rows;
}

/** Adds the journal's rows to a description as `migration <name>` objects. */
export function addJournal(description: CatalogDescription, entries: JournalEntry[] | null): void {
  // Presence and checksum only: the order may legitimately differ (a migration merged late with
  // an older timestamp is applied after newer ones in production, in name order in a scratch one).
  for (const e of entries ?? []) description.set(`migration ${e.name}`, { checksum: e.checksum });
}

/** Quotes an identifier for SQL, as PostgreSQL's `quote_ident` does. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
