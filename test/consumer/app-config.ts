/**
 * An app that shares its ORM with vault-db (`withVaultDb`) and runs migrations of its own with
 * MikroORM's migrator, in `mikro_orm_migrations`, after vault-db's (`npx vault-db migrate`).
 * Its own schema diff must not touch vault-db's tables, and both journals end up with their own
 * rows only. The app has an entity of its own named `Vault` (and one named `VaultRecord`), as a
 * bookmark app might: MikroORM names entities after their classes, and vault-db's must not
 * collide with them. Prints `app-config: ok`.
 */
import { randomBytes } from 'node:crypto';
import { EntitySchema, MikroORM, defineConfig } from '@mikro-orm/postgresql';
import { Migration, Migrator } from '@mikro-orm/migrations';
import { SyncService, VAULT_DB_TABLES, withVaultDb } from 'vault-db';

interface Note {
  id: number;
  text: string;
}

const NoteSchema = new EntitySchema<Note>({
  name: 'Note',
  tableName: 'app_notes',
  properties: { id: { type: 'integer', primary: true }, text: { type: 'text' } },
});

// The app's own entities, named as vault-db's exports are.
interface AppVault {
  id: number;
  label: string;
}
const AppVaultSchema = new EntitySchema<AppVault>({
  name: 'Vault',
  tableName: 'app_vaults',
  properties: { id: { type: 'integer', primary: true }, label: { type: 'text' } },
});
interface AppVaultRecord {
  id: number;
}
const AppVaultRecordSchema = new EntitySchema<AppVaultRecord>({
  name: 'VaultRecord',
  tableName: 'app_vault_records',
  properties: { id: { type: 'integer', primary: true } },
});

class Migration20250101000000AppNotes extends Migration {
  override async up(): Promise<void> {
    this.addSql('create table "app_notes" ("id" serial primary key, "text" text not null);');
    this.addSql('create table "app_vaults" ("id" serial primary key, "label" text not null);');
    this.addSql('create table "app_vault_records" ("id" serial primary key);');
  }
}

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is not set');

let afterCreateRan = false;
const orm = await MikroORM.init(
  defineConfig(
    withVaultDb({
      clientUrl: url,
      entities: [NoteSchema, AppVaultSchema, AppVaultRecordSchema],
      extensions: [Migrator],
      migrations: { migrationsList: [{ name: 'Migration20250101000000AppNotes', class: Migration20250101000000AppNotes }], snapshot: false },
      pool: { afterCreate: (conn: unknown, done: (err: Error | null, conn: unknown) => void) => { afterCreateRan = true; done(null, conn); } },
    }),
  ),
);
try {
  const pending = await orm.schema.getUpdateSchemaSQL({ wrap: false });
  for (const table of VAULT_DB_TABLES) {
    if (new RegExp(`"${table}"`).test(pending)) throw new Error(`the app's schema diff touches vault-db's table ${table}:\n${pending}`);
  }
  await orm.migrator.up();
  await orm.migrator.up(); // once only
  const [journal] = await orm.em.getConnection().execute<{ app: string; vault: number }[]>(
    `select (select string_agg(name, ',') from mikro_orm_migrations) as app, (select count(*)::int from vault_db_migrations) as vault`,
  );
  if (journal?.app !== 'Migration20250101000000AppNotes') throw new Error(`mikro_orm_migrations holds ${journal?.app}`);
  if (!journal.vault) throw new Error('vault_db_migrations is empty: run npx vault-db migrate first');
  const em = orm.em.fork();
  em.create(NoteSchema, { id: 1, text: 'hello' });
  em.create(AppVaultSchema, { id: 1, label: "the app's own vault" });
  em.create(AppVaultRecordSchema, { id: 1 });
  await em.flush();
  // vault-db's service on the app's own ORM, beside the app's own Vault entity.
  const sync = new SyncService(orm.em);
  if ((await sync.getVault('nobody')) !== null) throw new Error('a vault for nobody');
  const userId = `user_app_config_${randomBytes(6).toString('hex')}`;
  await sync.enableVault(userId, { wrappedKey: randomBytes(60), salt: randomBytes(16), kdfParams: { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 } });
  const pushed = await sync.push(userId, { changes: [{ recordId: 'bookmark-1', baseVersion: 0, ciphertext: randomBytes(48) }], cursor: null });
  if (pushed.applied.length !== 1) throw new Error(`push beside the app's Vault applied ${pushed.applied.length} change(s)`);
  const [counts] = await orm.em.getConnection().execute<{ app: number; records: number }[]>(
    `select (select count(*)::int from app_vaults) as app, (select count(*)::int from records r join vaults v on v.id = r.vault_id where v.user_id = ?) as records`,
    [userId],
  );
  if (counts?.app !== 1 || counts.records !== 1) throw new Error(`app_vaults/records hold ${JSON.stringify(counts)}`);
  const found = await orm.em.fork().findOneOrFail(AppVaultSchema, 1);
  if (found.label !== "the app's own vault") throw new Error(`the app's Vault reads back as ${JSON.stringify(found)}`);
  if (!afterCreateRan) throw new Error("the app's pool.afterCreate never ran");
  console.log('app-config: ok');
} finally {
  await orm.close(true);
}
