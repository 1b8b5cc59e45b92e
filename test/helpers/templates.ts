import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrate, runSqlFile } from '../../src/db/migrate.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Database templates the tests clone from (`CREATE DATABASE … TEMPLATE`), so a
 * test file gets a fully migrated database in a few milliseconds:
 * - `blank`: an empty database (`template0`);
 * - `kit`: the kit's migrations only;
 * - `example`: the Supabase project (kit + example app) and its seed.
 */
export type TemplateName = 'blank' | 'kit' | 'example';

const sources: Record<Exclude<TemplateName, 'blank'>, { dirs: string[]; seed?: string }> = {
  kit: { dirs: [path.join(root, 'migrations')] },
  example: {
    dirs: [path.join(root, 'supabase', 'migrations')],
    seed: path.join(root, 'supabase', 'seed.sql'),
  },
};

function sqlFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Name of a template: its kind plus a digest of every input, so edits rebuild it. */
function templateName(kind: Exclude<TemplateName, 'blank'>): string {
  const hash = createHash('sha256');
  const { dirs, seed } = sources[kind];
  const inputs = [
    ...dirs.flatMap(sqlFiles),
    ...(seed ? [seed] : []),
    path.join(root, 'src/db/migrate.ts'),
    path.join(root, 'src/db/migration-files.ts'),
  ];
  for (const file of inputs) {
    hash.update(path.basename(file));
    if (existsSync(file)) hash.update(readFileSync(file));
  }
  return `rls_kit_tpl_${kind}_${hash.digest('hex').slice(0, 12)}`;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Builds the templates that are missing and drops outdated ones; returns their names. */
export async function prepareTemplates(adminUrl: string): Promise<Record<TemplateName, string>> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  // Two test runs on one server (two checkouts, or CI beside a developer)
  // must not build the same template at once.
  await admin.query(`select pg_advisory_lock(hashtext('rls_kit_test_templates'))`);
  try {
    const names: Record<TemplateName, string> = { blank: 'template0', kit: '', example: '' };
    for (const kind of ['kit', 'example'] as const) {
      const name = templateName(kind);
      names[kind] = name;
      const { rows } = await admin.query<{ datname: string; built: string | null }>(
        `select datname, shobj_description(oid, 'pg_database') as built
           from pg_database where datname like $1`,
        [`rls_kit_tpl_${kind}_%`],
      );
      // Outdated templates go once they are an hour old: a concurrent run on
      // the same server (another checkout) may still be cloning from them.
      for (const { datname, built } of rows) {
        if (datname === name || Date.now() - Number(built ?? 0) < 3_600_000) continue;
        await admin.query(`alter database ${pg.escapeIdentifier(datname)} with is_template false`);
        await admin.query(`drop database if exists ${pg.escapeIdentifier(datname)} with (force)`);
      }
      if (rows.some((r) => r.datname === name)) continue;
      const building = `${name}_building`;
      await admin.query(`drop database if exists ${pg.escapeIdentifier(building)} with (force)`);
      await admin.query(`create database ${pg.escapeIdentifier(building)} template template0`);
      const url = withDatabase(adminUrl, building);
      for (const dir of sources[kind].dirs) await migrate({ url, dir });
      const seed = sources[kind].seed;
      if (seed && existsSync(seed)) await runSqlFile(url, seed);
      await admin.query(
        `alter database ${pg.escapeIdentifier(building)} rename to ${pg.escapeIdentifier(name)}`,
      );
      await admin.query(`alter database ${pg.escapeIdentifier(name)} with is_template true`);
      await admin.query(`comment on database ${pg.escapeIdentifier(name)} is '${Date.now()}'`);
    }
    return names;
  } finally {
    await admin.end();
  }
}
