import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { type Database, openDatabase } from '../db/database.js';
import { migrate, runSqlFile } from '../db/migrate.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The example app: the kit's migrations plus its own (`supabase/migrations`). */
export const EXAMPLE_MIGRATIONS_DIR = path.join(root, 'supabase', 'migrations');
export const EXAMPLE_SEED_FILE = path.join(root, 'supabase', 'seed.sql');
/** The database of the embedded demo (the tour's too). */
export const DEMO_DATABASE = 'rls_kit_demo';

/** The database the service runs on, ready for use. */
export interface ServiceDatabase {
  /** Connection string of the service's database (never log it). */
  readonly url: string;
  readonly embedded: boolean;
  /** Stops the embedded server if the service started it. */
  close(): Promise<void>;
}

/**
 * Opens the service's database: `databaseUrl` as given, or the embedded
 * Postgres in `home` with a `rls_kit_demo` database created when missing
 * (kept across runs: its sessions and revocations survive a restart).
 * Then applies the example's migrations (kit + example, idempotent) unless
 * `migrate` is false, and the seed when `seed` is true (safe twice).
 *
 * @example
 * ```ts
 * const db = await prepareDatabase({ seed: true });
 * ```
 */
export async function prepareDatabase(options: {
  databaseUrl?: string | undefined;
  home?: string | undefined;
  embeddedName?: string | undefined;
  migrate?: boolean;
  seed?: boolean;
}): Promise<ServiceDatabase> {
  let server: Database;
  if (options.databaseUrl !== undefined) {
    server = await openDatabase({ url: options.databaseUrl });
  } else {
    // Not openDatabase(): it would read DATABASE_URL, and "no databaseUrl" means embedded here.
    const { startEmbeddedPostgres } = await import('../db/embedded.js');
    const embedded = await startEmbeddedPostgres({
      ...(options.home === undefined ? {} : { home: options.home }),
      ...(options.embeddedName === undefined ? {} : { name: options.embeddedName }),
    });
    server = { url: embedded.url, embedded: true, close: () => embedded.stop() };
  }
  try {
    const url = server.embedded ? await ensureDatabase(server.url, DEMO_DATABASE) : server.url;
    if (options.migrate ?? true) await migrate({ url, dir: EXAMPLE_MIGRATIONS_DIR });
    if (options.seed) await runSqlFile(url, EXAMPLE_SEED_FILE);
    return { url, embedded: server.embedded, close: () => server.close() };
  } catch (err) {
    await server.close().catch(() => undefined);
    throw err;
  }
}

async function ensureDatabase(serverUrl: string, database: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  // The server going away (Ctrl-C while starting) must reject the query, not crash.
  admin.on('error', () => undefined);
  await admin.connect();
  try {
    const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [
      database,
    ]);
    if (rowCount === 0) {
      await admin.query(`create database ${pg.escapeIdentifier(database)}`).catch((err) => {
        if ((err as { code?: string }).code !== '42P04') throw err; // created concurrently
      });
    }
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${database}`;
  return u.toString();
}
