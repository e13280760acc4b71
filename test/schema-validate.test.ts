/**
 * The schema check (src/schema-check, `npm run schema:validate`): every hand-made change that
 * matters for security or correctness is named in one line, the answer is the same for the owner
 * and for a non-owner application role, and the check never writes a file.
 *
 * The drift cases run in-process, each inside a transaction that is rolled back (PostgreSQL's DDL
 * is transactional), and are compared with a freshly migrated database exactly as the command
 * does; the command itself then runs as CI runs it, as a child process.
 *
 * Objects are found in the catalog by their role (the SECURITY DEFINER function, a trigger with a
 * WHEN clause, the first foreign key of `records`, ...) rather than by today's names, so later
 * migrations can rename them without making these tests vacuous.
 */
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { addJournal, describeCatalog, readJournal, type CatalogDescription } from '../src/schema-check/catalog.js';
import { compareCatalogs } from '../src/schema-check/compare.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createAppRole, type AppRole } from './support/app-role.js';
import { PROJECT_ROOT, runCli, type CliResult } from './support/cli.js';

const databases: TestDatabase[] = [];
const roles: AppRole[] = [];
let db: TestDatabase;
let owner: pg.Client;
let reference: CatalogDescription;

async function describeWithJournal(client: pg.Client): Promise<CatalogDescription> {
  const description = await describeCatalog(client);
  addJournal(description, await readJournal(client));
  return description;
}

beforeAll(async () => {
  const [checked, fresh] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  databases.push(checked, fresh);
  db = checked;
  owner = new pg.Client(pgConnectionConfig(db.url));
  await owner.connect();
  const other = new pg.Client(pgConnectionConfig(fresh.url));
  await other.connect();
  try {
    reference = await describeWithJournal(other);
  } finally {
    await other.end();
  }
});

afterAll(async () => {
  await owner?.end();
  for (const role of roles) await role.drop().catch(() => {});
  await Promise.all(databases.map((d) => d.drop()));
});

/** The differences the check reports after `change` ran in a transaction that is then rolled back. */
async function differencesAfter(change: (client: pg.Client) => Promise<unknown>): Promise<string[]> {
  await owner.query('begin');
  try {
    await change(owner);
    return compareCatalogs(await describeWithJournal(owner), reference);
  } finally {
    await owner.query('rollback');
  }
}

async function one<T extends object>(client: pg.Client, sql: string): Promise<T> {
  const { rows } = await client.query<T>(sql);
  if (!rows[0]) throw new Error(`nothing found by: ${sql}`);
  return rows[0];
}

const triggerOnRecords = (client: pg.Client) =>
  one<{ name: string }>(client, `select tgname as name from pg_trigger where tgrelid = 'public.records'::regclass and not tgisinternal order by tgname limit 1`);
const definerFunction = (client: pg.Client) =>
  one<{ signature: string; name: string; definition: string }>(
    client,
    `select p.oid::regprocedure::text as signature, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' as name,
            pg_get_functiondef(p.oid) as definition
       from pg_proc p where p.pronamespace = 'public'::regnamespace and p.prosecdef order by 1 limit 1`,
  );
const policyOnRecords = (client: pg.Client) =>
  one<{ name: string }>(client, `select polname as name from pg_policy where polrelid = 'public.records'::regclass order by 1 limit 1`);
const foreignKeyOfRecords = (client: pg.Client) =>
  one<{ name: string; definition: string }>(
    client,
    `select conname as name, pg_get_constraintdef(oid) as definition from pg_constraint where conrelid = 'public.records'::regclass and contype = 'f' order by 1 limit 1`,
  );

test('a database the migrations built has no difference from another one', async () => {
  expect(reference.size).toBeGreaterThan(50);
  expect(await differencesAfter(async () => {})).toEqual([]);
});

describe('each change of #14.2 is named in one line', () => {
  test('a trigger dropped', async () => {
    const lines = await differencesAfter(async (c) => {
      const { name } = await triggerOnRecords(c);
      await c.query(`drop trigger "${name}" on records`);
    });
    const { name } = await triggerOnRecords(owner);
    expect(lines).toEqual([`missing trigger public.records.${name}`]);
  });

  test('a trigger disabled', async () => {
    const { name } = await triggerOnRecords(owner);
    const lines = await differencesAfter((c) => c.query(`alter table records disable trigger "${name}"`));
    expect(lines).toEqual([`trigger public.records.${name}: state is "disabled", expected "enabled"`]);
  });

  test('a trigger replaced without its WHEN clause', async () => {
    const found = await one<{ name: string; table: string; fn: string }>(
      owner,
      `select t.tgname as name, t.tgrelid::regclass::text as table, t.tgfoid::regproc::text as fn from pg_trigger t
        where t.tgqual is not null and not t.tgisinternal order by 1 limit 1`,
    );
    const lines = await differencesAfter(async (c) => {
      await c.query(`drop trigger "${found.name}" on ${found.table}`);
      await c.query(`create trigger "${found.name}" before update on ${found.table} for each row execute function ${found.fn}()`);
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^trigger public\\.${found.table}\\.${found.name}: definition (is|differs).*, expected ".*WHEN.*"$`));
  });

  test('an extra BEFORE DELETE trigger that skips deletes', async () => {
    const lines = await differencesAfter(async (c) => {
      await c.query(`create function skip_delete() returns trigger language plpgsql as $$ begin return null; end $$`);
      await c.query(`create trigger records_skip_delete before delete on records for each row execute function skip_delete()`);
    });
    expect(lines).toEqual(['extra function public.skip_delete()', 'extra trigger public.records.records_skip_delete']);
  });

  test('the SECURITY DEFINER owner check replaced by a no-op', async () => {
    const fn = await definerFunction(owner);
    const noop = fn.definition.replace(/\$function\$[\s\S]*\$function\$/, '$function$ begin return new; end $function$');
    expect(noop).not.toBe(fn.definition);
    const lines = await differencesAfter((c) => c.query(noop));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^function public\\.${fn.name.replace(/[()]/g, '\\$&')}: body (is|differs)`));
  });

  test('the owner check made SECURITY INVOKER', async () => {
    const fn = await definerFunction(owner);
    const lines = await differencesAfter((c) => c.query(`alter function ${fn.signature} security invoker`));
    expect(lines).toEqual([`function public.${fn.name}: security is "SECURITY INVOKER", expected "SECURITY DEFINER"`]);
  });

  test('row-level security disabled', async () => {
    const lines = await differencesAfter((c) => c.query('alter table records disable row level security'));
    expect(lines).toEqual(['table public.records: row-level security is "disabled", expected "enabled"']);
  });

  test('a policy dropped', async () => {
    const { name } = await policyOnRecords(owner);
    const lines = await differencesAfter((c) => c.query(`drop policy "${name}" on records`));
    expect(lines).toEqual([`missing policy public.records.${name}`]);
  });

  test('a policy changed to using (true)', async () => {
    const { name } = await policyOnRecords(owner);
    const lines = await differencesAfter((c) => c.query(`alter policy "${name}" on records using (true)`));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^policy public\\.records\\.${name}: using is "true", expected ".+"$`));
  });

  test('a hash index in place of a btree', async () => {
    const lines = await differencesAfter(async (c) => {
      await c.query('drop index idx_records_user_id');
      await c.query('create index idx_records_user_id on records using hash (user_id)');
    });
    expect(lines).toEqual([
      'index public.idx_records_user_id: definition is "CREATE INDEX idx_records_user_id ON public.records USING hash (user_id)", expected "CREATE INDEX idx_records_user_id ON public.records USING btree (user_id)"',
    ]);
  });

  test('a partial index in place of a full one', async () => {
    const lines = await differencesAfter(async (c) => {
      await c.query('drop index idx_records_user_id');
      await c.query('create index idx_records_user_id on records (user_id) where not deleted');
    });
    expect(lines).toEqual([
      'index public.idx_records_user_id: definition is "CREATE INDEX idx_records_user_id ON public.records USING btree (user_id) WHERE (NOT deleted)", expected "CREATE INDEX idx_records_user_id ON public.records USING btree (user_id)"',
    ]);
  });

  test('the unique constraint swapped for a unique index on lower(user_id)', async () => {
    const lines = await differencesAfter(async (c) => {
      await c.query('alter table vaults drop constraint idx_vaults_user_id');
      await c.query('create unique index idx_vaults_user_id on vaults (lower(user_id))');
    });
    expect(lines).toEqual([
      'missing constraint public.vaults.idx_vaults_user_id',
      'index public.idx_vaults_user_id: definition is "CREATE UNIQUE INDEX idx_vaults_user_id ON public.vaults USING btree (lower(user_id))", expected "CREATE UNIQUE INDEX idx_vaults_user_id ON public.vaults USING btree (user_id)"',
    ]);
  });

  test('a foreign key made NOT VALID', async () => {
    const fk = await foreignKeyOfRecords(owner);
    const lines = await differencesAfter(async (c) => {
      await c.query(`alter table records drop constraint "${fk.name}"`);
      await c.query(`alter table records add constraint "${fk.name}" ${fk.definition} not valid`);
    });
    expect(lines).toContain(`constraint public.records.${fk.name}: validation is "NOT VALID", expected "validated"`);
    expect(lines.every((l) => l.startsWith(`constraint public.records.${fk.name}: `))).toBe(true);
  });

  test('a column collation changed', async () => {
    // staged_records.record_id: records' text columns appear in trigger definitions, which forbid the change.
    const lines = await differencesAfter((c) => c.query(`alter table staged_records alter column record_id type text collate "C"`));
    expect(lines).toEqual(['column public.staged_records.record_id: collation is "pg_catalog.\\"C\\"", expected not set']);
  });

  test('a table made UNLOGGED', async () => {
    const lines = await differencesAfter((c) => c.query('alter table records set unlogged'));
    expect(lines).toEqual(['table public.records: persistence is "unlogged", expected "permanent"']);
  });

  test('grant all ... to public', async () => {
    const lines = await differencesAfter((c) => c.query('grant all on vaults to public'));
    expect(lines).toHaveLength(1);
    // MAINTAIN exists from PostgreSQL 17 on.
    expect(lines[0]).toMatch(/^table public\.vaults: grants: PUBLIC has DELETE, INSERT, (MAINTAIN, )?REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE, expected nothing$/);
  });

  test('a privilege beyond reading and writing rows granted to another role (TRUNCATE ignores row-level security)', async () => {
    const role = `vault_drift_${process.pid}`;
    const lines = await differencesAfter(async (c) => {
      await c.query(`create role ${role}`);
      // Row privileges for an application role are the operator's business (docs/app-role.sql)...
      await c.query(`grant select, insert, update, delete on records to ${role}`);
      // ...but not this one.
      await c.query(`grant truncate on records to ${role}`);
    });
    expect(lines).toHaveLength(1);
    expect(lines).toEqual([`table public.records: grants: ${role} has TRUNCATE, expected nothing`]);
  });

  test('a row deleted from vault_db_migrations', async () => {
    const { name } = await one<{ name: string }>(owner, 'select name from vault_db_migrations order by id desc limit 1');
    const lines = await differencesAfter((c) => c.query('delete from vault_db_migrations where name = $1', [name]));
    expect(lines).toEqual([`missing migration ${name}`]);
  });

  test('a stray table, and a function made volatile-with-a-search-path-hole, are named too', async () => {
    const fn = await definerFunction(owner);
    const lines = await differencesAfter(async (c) => {
      await c.query('create table stray (x int)');
      await c.query(`alter function ${fn.signature} reset search_path`);
    });
    expect(lines).toContain('extra table public.stray');
    expect(lines).toContain('extra column public.stray.x');
    expect(lines.some((l) => l.startsWith(`function public.${fn.name}: settings is not set, expected "search_path=`))).toBe(true);
  });
});

describe('the same answer for every role', () => {
  let app: AppRole;
  beforeAll(async () => {
    app = await createAppRole(db);
    roles.push(app);
  });

  test('the application role reads the same catalog as the owner, CHECK constraints included', async () => {
    const asApp = new pg.Client(pgConnectionConfig(app.url));
    await asApp.connect();
    try {
      const fromApp = await describeCatalog(asApp);
      const fromOwner = await describeCatalog(owner);
      // information_schema.check_constraints would hide this one from a role that doesn't own the table.
      expect([...fromApp.keys()].filter((k) => k.startsWith('constraint public.records.') && fromApp.get(k)?.type === 'c')).not.toEqual([]);
      expect(fromApp).toEqual(fromOwner);
    } finally {
      await asApp.end();
    }
  });
});

/** Runs the command; DATABASE_URL points at the test server so it never starts its own. */
function validate(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli('npx', ['tsx', 'scripts/schema-validate.ts', ...args], { DATABASE_URL: inject('serverUrl'), ...env }, 120_000);
}

/** The command run in another folder (a copy of the project), with only PATH and HOME passed on. */
function validateIn(cwd: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      'npx',
      ['tsx', 'scripts/schema-validate.ts'],
      { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: inject('serverUrl') }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
    );
  });
}

describe.concurrent('npm run schema:validate', () => {
  // One application role on the shared database, made before the concurrent tests: two GRANTs on
  // the same table at once fail with "tuple concurrently updated".
  let app: AppRole;
  beforeAll(async () => {
    app = await createAppRole(db);
    roles.push(app);
  });

  test('exits 0 on a freshly migrated database, for the owner', async ({ expect }) => {
    const result = await validate(['--database-url', db.url]);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(result.stdout).toContain('the entities match the migrations');
    expect(result.stdout).toContain('a freshly migrated database matches the entities');
    expect(result.stdout).toMatch(/matches a freshly migrated database \(\d+ objects and journal rows compared\)/);
  });

  test('exits 1 naming each difference, with the same lines for the owner and for the application role (journal read through DIRECT_URL)', async ({ expect }) => {
    const drifted = await createTestDatabase();
    databases.push(drifted);
    const app = await createAppRole(drifted);
    roles.push(app);
    const c = new pg.Client(pgConnectionConfig(drifted.url));
    await c.connect();
    try {
      const { name } = await triggerOnRecords(c);
      await c.query(`alter table records disable trigger "${name}"`);
      await c.query('grant select on records to public');
    } finally {
      await c.end();
    }
    const [asOwner, asApp] = await Promise.all([
      validate(['--database-url', drifted.url]),
      validate(['--database-url', app.url], { DIRECT_URL: drifted.url }),
    ]);
    for (const result of [asOwner, asApp]) {
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(/differs from a freshly migrated database in 2 place\(s\):/);
      expect(result.stderr).toMatch(/^ {2}trigger public\.records\.\w+: state is "disabled", expected "enabled"$/m);
      expect(result.stderr).toMatch(/^ {2}table public\.records: grants: PUBLIC has SELECT, expected nothing$/m);
    }
    const differences = (r: CliResult) => r.stderr.split('\n').filter((l) => l.startsWith('  '));
    expect(differences(asApp)).toEqual(differences(asOwner));
  });

  test('as the application role on a clean database, with DIRECT_URL: exit 0, no false drift', async ({ expect }) => {
    const result = await validate(['--database-url', app.url], { DIRECT_URL: db.url });
    expect(result, result.stderr).toMatchObject({ code: 0 });
  });

  test('as the application role without DIRECT_URL: exit 2 and one line saying what to set', async ({ expect }) => {
    const result = await validate(['--database-url', app.url], { DATABASE_URL: app.url });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/may not create databases; set DIRECT_URL to a URL of the same server whose role has CREATEDB/);
  });
});

describe('read-only', () => {
  /** sha256 of every file under `root`, skipping what git ignores here. */
  async function treeDigest(root: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    async function walk(dir: string): Promise<void> {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        if (['node_modules', '.data', '.git', 'dist'].includes(entry.name)) continue;
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else out.set(path.relative(root, full), createHash('sha256').update(await readFile(full)).digest('hex'));
      }
    }
    await walk(root);
    return out;
  }

  test('entities that differ from the migrations: exit 1 naming the missing column, and not one file written', async () => {
    // A copy of the project inside .data (git-ignored; node_modules resolve from the real root),
    // with one property added to an entity, as if someone forgot `npm run db:create-migration`.
    const copy = path.join(PROJECT_ROOT, '.data', `readonly-check-${process.pid}-${Date.now()}`);
    await mkdir(copy, { recursive: true });
    try {
      for (const item of ['src', 'scripts', 'package.json', 'tsconfig.json']) await cp(path.join(PROJECT_ROOT, item), path.join(copy, item), { recursive: true });
      const entity = path.join(copy, 'src/entities/vault.ts');
      const source = await readFile(entity, 'utf8');
      const drifted = source.replace(/(\n\s*@Property\()/, "\n  @Property({ type: 'text', nullable: true })\n  forgottenColumn?: string;\n$1");
      expect(drifted).not.toBe(source);
      await writeFile(entity, drifted);
      const statusBefore = execFileSync('git', ['status', '--porcelain'], { cwd: PROJECT_ROOT, encoding: 'utf8' });
      const before = await treeDigest(copy);

      const result = await validateIn(copy);

      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toContain('the entities differ from the migrations');
      expect(result.stderr).toMatch(/alter table "vaults" add column "forgotten_column" text null/);
      // Asked twice, it gives the same answer: nothing was "fixed" by writing a migration or snapshot.
      const again = await validateIn(copy);
      expect(again.code).toBe(1);
      expect(await treeDigest(copy)).toEqual(before);
      expect(execFileSync('git', ['status', '--porcelain'], { cwd: PROJECT_ROOT, encoding: 'utf8' })).toBe(statusBefore);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });
});
