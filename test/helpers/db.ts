import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { TemplateName } from './templates.js';

/** A database of one test file, cloned from a template and dropped afterwards. */
export interface TestDatabase {
  /** Superuser connection string of this database. */
  readonly url: string;
  readonly name: string;
  /** Drops the database (terminating its connections). */
  drop(): Promise<void>;
}

/** The test server's superuser connection string for `database`. */
export function serverUrl(database = 'postgres'): string {
  const u = new URL(inject('databaseUrl'));
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * Creates a fresh database for one test file from a template:
 * `blank` (empty), `kit` (kit migrations) or `example` (kit + example app +
 * seed). Cloning takes milliseconds, so every file gets its own.
 *
 * @example
 * ```ts
 * let db: TestDatabase;
 * beforeAll(async () => { db = await createTestDatabase({ template: 'example' }); });
 * afterAll(() => db.drop());
 * ```
 */
export async function createTestDatabase(
  options: { template?: TemplateName } = {},
): Promise<TestDatabase> {
  const templates = inject('templates');
  const template = templates[options.template ?? 'example'];
  const name = `rls_kit_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  try {
    // Cloning fails while another session is connected to the template; retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(
          `create database ${pg.escapeIdentifier(name)} template ${pg.escapeIdentifier(template)}`,
        );
        break;
      } catch (err) {
        if (attempt >= 20 || (err as { code?: string }).code !== '55006') throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await admin.end();
  }
  return {
    url: serverUrl(name),
    name,
    drop: () => dropDatabase(serverUrl(), name),
  };
}

/**
 * Drops database `name` on the server of `adminUrl`, once its sessions have
 * left (up to 2 s), then with FORCE. pg-pool's end() resolves before its
 * clients' sockets have closed; a session killed by FORCE while its client is
 * still closing makes that client emit 'error' through a pool that may have no
 * listener (an uncaught exception in the test worker).
 *
 * @example
 * ```ts
 * afterAll(() => dropDatabase(serverUrl(), 'rls_kit_t_scratch'));
 * ```
 */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    for (let waited = 0; waited < 2000; waited += 20) {
      const { rows } = await c.query<{ n: number }>(
        'select count(*)::int as n from pg_catalog.pg_stat_activity where datname = $1',
        [name],
      );
      if (rows[0]!.n === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  } finally {
    await c.end();
  }
}
