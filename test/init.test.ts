import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { initProject } from '../src/db/init-project.js';
import { KIT_MIGRATIONS_DIR } from '../src/db/migrate.js';
import { isRlsKitError } from '../src/errors.js';
import { memoryIO } from './helpers/cli.js';

/*
 * `init` copies the kit's migrations into a Supabase project: fresh, strictly
 * increasing 14-digit UTC timestamps after everything already there, skipping
 * what the project already holds (by name), never overwriting. No database
 * needed: what init writes is applied by `migrate.test.ts`.
 */

const tmpDirs: string[] = [];
afterAll(async () => {
  await Promise.all(tmpDirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function tmp(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'rls-kit-init-'));
  tmpDirs.push(dir);
  return dir;
}

/** A stand-in for the kit's folder, so these tests do not depend on its current SQL. */
async function fakeKit(): Promise<string> {
  const dir = await tmp();
  await writeFile(path.join(dir, '20250101000000_rls_kit_supabase_compat.sql'), '-- compat\n');
  await writeFile(path.join(dir, '20250101000001_rls_kit_core.sql'), '-- core\n');
  await writeFile(path.join(dir, '20250101000002_rls_kit_revocation.sql'), '-- revocation\n');
  return dir;
}

const NOW = new Date('2026-03-04T05:06:07.890Z');

describe('initProject', () => {
  it('creates the folder and copies every kit migration under fresh increasing timestamps', async () => {
    const source = await fakeKit();
    const dir = path.join(await tmp(), 'supabase', 'migrations');
    const result = await initProject({ dir, now: NOW, source });
    expect(result.skipped).toEqual([]);
    expect(result.copied.map((c) => path.basename(c.to))).toEqual([
      '20260304050607_rls_kit_supabase_compat.sql',
      '20260304050608_rls_kit_core.sql',
      '20260304050609_rls_kit_revocation.sql',
    ]);
    for (const { from, to } of result.copied) {
      expect(path.dirname(to)).toBe(dir);
      expect(await readFile(to, 'utf8')).toBe(await readFile(from, 'utf8'));
    }
    expect(result.copied.map((c) => path.basename(c.from))).toEqual((await readdir(source)).sort());
  });

  it("sorts after the project's existing migrations, even ones dated in the future", async () => {
    const source = await fakeKit();
    const dir = await tmp();
    await writeFile(path.join(dir, '20260304050607_users.sql'), 'create table users ();');
    await writeFile(path.join(dir, '20301231235959_later.sql'), 'select 1;');
    const { copied } = await initProject({ dir, now: NOW, source });
    // 2030-12-31 23:59:59 + 1s rolls over the year.
    expect(copied.map((c) => path.basename(c.to))).toEqual([
      '20310101000000_rls_kit_supabase_compat.sql',
      '20310101000001_rls_kit_core.sql',
      '20310101000002_rls_kit_revocation.sql',
    ]);
    const all = (await readdir(dir)).sort();
    expect(all.slice(-3)).toEqual(copied.map((c) => path.basename(c.to)));
  });

  it('skips kit migrations the project already holds (by name) and never overwrites', async () => {
    const source = await fakeKit();
    const dir = await tmp();
    // The project already has the core migration under its own version, edited.
    const mine = path.join(dir, '20240101000000_rls_kit_core.sql');
    await writeFile(mine, '-- my edited copy\n');
    const first = await initProject({ dir, now: NOW, source });
    expect(first.skipped).toEqual([mine]);
    expect(first.copied.map((c) => path.basename(c.to))).toEqual([
      '20260304050607_rls_kit_supabase_compat.sql',
      '20260304050608_rls_kit_revocation.sql',
    ]);
    expect(await readFile(mine, 'utf8')).toBe('-- my edited copy\n');

    // Running init again copies nothing, whatever the clock says.
    const before = await snapshot(dir);
    const second = await initProject({ dir, now: new Date('2027-01-01T00:00:00Z'), source });
    expect(second.copied).toEqual([]);
    expect(second.skipped.map((p) => path.basename(p))).toEqual([
      '20260304050607_rls_kit_supabase_compat.sql',
      '20240101000000_rls_kit_core.sql',
      '20260304050608_rls_kit_revocation.sql',
    ]);
    expect(await snapshot(dir)).toEqual(before);
  });

  it('refuses a kit folder with a misnamed file', async () => {
    const source = await fakeKit();
    await writeFile(path.join(source, 'oops.sql'), 'select 1;');
    const err = await initProject({ dir: await tmp(), source }).catch((e: unknown) => e);
    expect(isRlsKitError(err, 'ERR_MIGRATION')).toBe(true);
    expect((err as Error).message).toContain('oops.sql');
  });

  it.skipIf(!existsSync(KIT_MIGRATIONS_DIR) || readdirSync(KIT_MIGRATIONS_DIR).length === 0)(
    "copies the kit's real migrations by default",
    async () => {
      const dir = await tmp();
      const { copied } = await initProject({ dir, now: NOW });
      const kit = readdirSync(KIT_MIGRATIONS_DIR)
        .filter((f) => f.endsWith('.sql'))
        .sort();
      expect(copied.map((c) => path.basename(c.to).slice(15))).toEqual(kit.map((f) => f.slice(15)));
      expect(copied.every((c) => c.from.startsWith(KIT_MIGRATIONS_DIR))).toBe(true);
    },
  );
});

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of (await readdir(dir)).sort()) out[f] = await readFile(path.join(dir, f), 'utf8');
  return out;
}

describe('rls-kit init', () => {
  it.skipIf(!existsSync(KIT_MIGRATIONS_DIR) || readdirSync(KIT_MIGRATIONS_DIR).length === 0)(
    'lists the copied files on stdout, one per line, and copies nothing the second time',
    async () => {
      const dir = path.join(await tmp(), 'supabase', 'migrations');
      const io = memoryIO();
      expect(await runCli(['init', '--dir', dir], io)).toBe(0);
      const listed = io.out().trimEnd().split('\n');
      expect(listed.map((p) => path.dirname(p))).toEqual(listed.map(() => dir));
      expect(listed.map((p) => path.basename(p)).sort()).toEqual((await readdir(dir)).sort());
      expect(listed.length).toBeGreaterThan(0);

      const again = memoryIO();
      expect(await runCli(['init', '--dir', dir], again)).toBe(0);
      expect(again.out()).toBe('');
      expect(again.err()).toContain(`0 kit migrations copied, ${listed.length} already present`);
    },
  );

  it('exits 2 for an unknown flag or a stray argument', async () => {
    const io = memoryIO();
    expect(await runCli(['init', '--force'], io)).toBe(2);
    expect(io.err()).toContain('--force');
    const stray = memoryIO();
    expect(await runCli(['init', 'supabase/migrations'], stray)).toBe(2);
  });

  it('exits 1 when the folder cannot be created', async () => {
    const file = path.join(await tmp(), 'a-file');
    await writeFile(file, '');
    const io = memoryIO();
    expect(await runCli(['init', '--dir', path.join(file, 'migrations')], io)).toBe(1);
    expect(io.err()).toMatch(
      /cannot create the migrations folder .*a-file\/migrations .*\[ERR_MIGRATION\]\n$/,
    );
  });
});
