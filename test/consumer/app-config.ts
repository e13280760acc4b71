/**
 * An app that shares its ORM with vault-db (`withVaultDb`) and runs migrations of its own with
 * MikroORM's migrator, in `mikro_orm_migrations`, after vault-db's (`npx vault-db migrate`).
 * Its own schema diff must not touch vault-db's tables, and both journals end up with their own
 * rows only. Prints `app-config: ok`.
 */
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

class Migration20250101000000AppNotes extends Migration {
  override async up(): Promise<void> {
    this.addSql('create table "app_notes" ("id" serial primary key, "text" text not null);');
  }
}

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is not set');

let afterCreateRan = false;
const orm = await MikroORM.init(
  defineConfig(
    withVaultDb({
      clientUrl: url,
      entities: [NoteSchema],
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
  await em.flush();
  // vault-db's service on the app's own ORM.
  const sync = new SyncService(orm.em);
  if ((await sync.getVault('nobody')) !== null) throw new Error('a vault for nobody');
  if (!afterCreateRan) throw new Error("the app's pool.afterCreate never ran");
  console.log('app-config: ok');
} finally {
  await orm.close(true);
}
