import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/**
 * Supabase's own linter (`supabase db advisors`, CLI 2.117.0) over the kit's
 * migrations plus the example app: nothing at WARN or ERROR (issue 2, item 4).
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'node_modules', '.bin', 'supabase');

interface Advisory {
  name: string;
  level: 'INFO' | 'WARN' | 'ERROR';
  detail: string;
}

function advisors(url: string): { status: number | null; results: Advisory[]; stderr: string } {
  const u = new URL(url);
  u.searchParams.set('sslmode', 'disable');
  const run = spawnSync(
    cli,
    [
      'db',
      'advisors',
      '--db-url',
      u.toString(),
      '--level',
      'info',
      '--fail-on',
      'warn',
      '--output-format',
      'json',
    ],
    { cwd: root, encoding: 'utf8', timeout: 60_000 },
  );
  const start = run.stdout.indexOf('{');
  const parsed =
    start >= 0 ? (JSON.parse(run.stdout.slice(start)) as { results?: Advisory[] }) : {};
  return { status: run.status, results: parsed.results ?? [], stderr: run.stderr };
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
});
afterAll(() => db?.drop());

describe('supabase db advisors', () => {
  it('finds nothing at WARN or ERROR in the kit and the example app', () => {
    const { status, results, stderr } = advisors(db.url);
    const serious = results.filter((r) => r.level !== 'INFO');
    expect(serious, JSON.stringify(serious, null, 2)).toEqual([]);
    expect(status, stderr).toBe(0);
    // Only freshly created, never-scanned indexes may show up, as INFO.
    expect(results.every((r) => r.name === 'unused_index')).toBe(true);
  });

  it('does flag a function with a mutable search_path (so the check above can fail)', async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query(
        `create function public.rls_kit_probe_fn() returns int language sql as 'select 1'`,
      );
      const { status, results } = advisors(db.url);
      expect(
        results.some((r) => r.level === 'WARN' && r.name === 'function_search_path_mutable'),
      ).toBe(true);
      expect(status).not.toBe(0);
    } finally {
      await c.query('drop function if exists public.rls_kit_probe_fn()');
      await c.end();
    }
  });
});
