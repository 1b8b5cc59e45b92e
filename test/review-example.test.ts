import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { renderJson } from '../src/review/render-json.js';
import { renderMarkdown } from '../src/review/render-markdown.js';
import { renderText } from '../src/review/render-text.js';
import { reviewDatabase } from '../src/review/review-database.js';
import type { MatrixRow, ReviewReport } from '../src/review/types.js';
import { memoryIO } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

let db: TestDatabase;
let report: ReviewReport;

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  report = await reviewDatabase({ url: db.url });
});

afterAll(() => db?.drop());

function cells(table: string, persona: string): MatrixRow {
  const row = report.matrix.find((m) => m.table === table && m.persona === persona);
  if (!row) throw new Error(`no matrix row for ${table} × ${persona}`);
  return row;
}

describe('review of the example app (kit migrations + example + seed)', () => {
  it('matches the JSON snapshot (stable part: no time, oids or database name)', async () => {
    // When the example changes (e.g. the revocation guard lands), update with
    // `npx vitest run test/review-example.test.ts -u` and read the diff. The
    // `.snap` suffix keeps the formatter off it: it must stay byte for byte
    // what renderJson prints.
    await expect(renderJson(report, { stable: true })).toMatchFileSnapshot(
      '__snapshots__/review-example.json.snap',
    );
  });

  it('has no ERROR finding', () => {
    expect(report.findings.filter((f) => f.level === 'error')).toEqual([]);
  });

  it('reads the claims each policy trusts', () => {
    const documents = report.tables.find((t) => t.name === 'public.documents')!;
    expect(documents.claims).toEqual(['org_id', 'sub', 'user_role']);
    const update = documents.policies.find((p) => p.name === 'documents_update_owner_or_admin')!;
    expect(update.claims.map((c) => `${c.path} via ${c.via}`)).toEqual([
      'org_id via auth.jwt()',
      'sub via auth.uid()',
      'user_role via auth.jwt()',
    ]);
    expect(report.findings.filter((f) => f.lint === 'auth-call-per-row')).toEqual([]);
  });

  it('derives personas from the claim schema and the memberships of one organization', () => {
    const names = report.personas.map((p) => p.name);
    expect(names.slice(0, 5)).toEqual(['anon', 'owner', 'admin', 'member', 'viewer']);
    const owner = report.personas.find((p) => p.name === 'owner')!;
    // Acme: the organization with all four roles; alice is its owner.
    expect(owner.claims).toMatchObject({
      role: 'authenticated',
      org_id: 'a0000000-0000-4000-8000-000000000001',
      sub: 'b0000000-0000-4000-8000-000000000001',
      user_role: 'owner',
    });
  });

  it('probes what each persona can do', () => {
    for (const persona of ['owner', 'admin', 'member', 'viewer']) {
      expect(cells('public.documents', persona).select).toEqual({
        outcome: 'allowed',
        rows: 36,
        otherTenantRows: 0,
      });
      expect(cells('public.organizations', persona).select).toMatchObject({ rows: 1 });
      expect(cells('public.memberships', persona).select).toMatchObject({
        rows: 4,
        otherTenantRows: 0,
      });
      // Grants: memberships and organizations are read-only for authenticated.
      expect(cells('public.memberships', persona).insert).toEqual({
        outcome: 'denied',
        detail: 'no privilege',
      });
    }
    expect(cells('public.documents', 'owner').insert).toEqual({
      outcome: 'allowed',
      crossTenant: 'blocked',
    });
    expect(cells('public.documents', 'member').update).toMatchObject({
      outcome: 'allowed',
      crossTenant: 'blocked',
    });
    expect(cells('public.documents', 'viewer').insert).toMatchObject({
      outcome: 'denied',
      detail: 'policy',
    });
    expect(cells('public.documents', 'viewer').update).toMatchObject({ outcome: 'no-rows' });
    expect(cells('public.documents', 'viewer').delete).toMatchObject({ outcome: 'no-rows' });
    for (const table of ['public.documents', 'public.memberships', 'public.organizations']) {
      expect(cells(table, 'anon').select).toEqual({ outcome: 'denied', detail: 'no privilege' });
    }
    const revoked = report.personas.find((p) => p.name === 'revoked');
    if (revoked) {
      // Once the revocation guard is in the example, a revoked token reaches nothing.
      for (const table of ['public.documents', 'public.memberships', 'public.organizations']) {
        expect(cells(table, 'revoked').select.rows ?? 0).toBe(0);
      }
    }
  });

  it('never leaves a change behind (catalog and data fingerprints)', async () => {
    const before = await fingerprint(db.url);
    await reviewDatabase({ url: db.url });
    await reviewDatabase({
      url: db.url,
      personas: [
        {
          name: 'intruder',
          source: 'given',
          claims: {
            role: 'authenticated',
            sub: 'b0000000-0000-4000-8000-000000000009',
            org_id: 'a0000000-0000-4000-8000-000000000003',
            user_role: 'owner',
          },
        },
      ],
    });
    expect(await fingerprint(db.url)).toEqual(before);
  });

  it('renders text (colour only when asked), markdown and json', () => {
    const plain = renderText(report, { color: false });
    expect(plain).not.toContain('\u001b[');
    expect(plain).toMatch(/public\.documents\s+on\s+yes\s+postgres\s+5\s+yes/);
    expect(plain).toMatch(/viewer\s+36 rows\s+denied\s+filtered\s+filtered/);
    expect(renderText(report, { color: true })).toContain('\u001b[');
    const md = renderMarkdown(report);
    expect(md).toContain('| persona | select | insert | update | delete |');
    expect(md).toContain('#### `public.documents`');
    const parsed = JSON.parse(renderJson(report)) as ReviewReport;
    expect(parsed.volatile.database).toBe(db.name);
    expect(JSON.parse(renderJson(report, { stable: true }))).not.toHaveProperty('volatile');
  });
});

describe('rls-kit review (CLI)', () => {
  const cliIO = (isTTY = false) => memoryIO({ isTTY });

  it('prints the report in each format and exits 0 without --fail-on', async () => {
    for (const format of ['text', 'json', 'markdown', 'html']) {
      const io = cliIO();
      const code = await runCli(
        ['review', '--db-url', db.url, '--format', format, '--no-matrix'],
        io,
      );
      expect(code, io.err()).toBe(0);
      expect(io.out().length).toBeGreaterThan(200);
      expect(io.err()).toMatch(/3 tables/);
    }
  });

  it('colours text on a TTY only', async () => {
    const tty = cliIO(true);
    await runCli(['review', '--db-url', db.url, '--no-matrix'], tty);
    expect(tty.out()).toContain('\u001b[');
  });

  it('rejects bad usage with exit 2 and one line on stderr', async () => {
    for (const args of [
      ['--format', 'pdf'],
      ['--fail-on', 'fatal'],
      ['--lock-timeout', 'soon'],
    ]) {
      const io = cliIO();
      expect(await runCli(['review', '--db-url', db.url, ...args], io)).toBe(2);
      expect(io.err().trim().split('\n')).toHaveLength(1);
    }
  });
});

/** A digest of what a review could conceivably change: catalog objects and every row. */
async function fingerprint(url: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const catalog = await client.query<{ part: string; digest: string }>(`
      select 'classes' as part, md5(string_agg(format('%s.%s %s %s %s %s %s', n.nspname, c.relname, c.relkind,
               c.relacl, c.relrowsecurity, c.relforcerowsecurity, c.relowner::regrole), ',' order by 1)) as digest
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname not like 'pg_temp%' and n.nspname not like 'pg_toast_temp%'
      union all
      select 'policies', md5(string_agg(format('%s %s %s %s %s', polrelid::regclass, polname, polcmd,
               pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)), ',' order by 1)) from pg_policy
      union all
      select 'functions', md5(string_agg(format('%s %s %s %s', oid::regprocedure, proacl, proconfig, md5(prosrc)), ',' order by 1))
        from pg_proc where pronamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
      union all
      select 'settings', coalesce(md5(string_agg(array_to_string(setconfig, ','), ';' order by 1)), '') from pg_db_role_setting`);
    const data = await client.query<{ part: string; digest: string }>(`
      select 'organizations' as part, md5(string_agg(t::text, ',' order by t::text)) as digest from public.organizations t
      union all select 'memberships', md5(string_agg(t::text, ',' order by t::text)) from public.memberships t
      union all select 'documents', md5(string_agg(t::text, ',' order by t::text)) from public.documents t
      union all select 'users', md5(string_agg(t::text, ',' order by t::text)) from auth.users t
      union all select 'sessions', coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from auth.sessions t`);
    const extra = await client.query<{ part: string; digest: string }>(`
      select 'rls_kit.' || c.relname as part, c.relname as digest
        from pg_class c where c.relnamespace = 'rls_kit'::regnamespace and c.relkind = 'r'`);
    const out: Record<string, string> = {};
    for (const r of [...catalog.rows, ...data.rows]) out[r.part] = r.digest;
    // Tables of the kit's own schema (the revocation list, once it exists): their rows too.
    for (const r of extra.rows) {
      const rows = await client.query<{ d: string }>(
        `select coalesce(md5(string_agg(t::text, ',' order by t::text)), '') as d from rls_kit.${pg.escapeIdentifier(r.digest)} t`,
      );
      out[r.part] = rows.rows[0]!.d;
    }
    return out;
  } finally {
    await client.end();
  }
}
