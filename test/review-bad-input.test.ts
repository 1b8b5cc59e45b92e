import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reviewDatabase } from '../src/review/review-database.js';
import type { ReviewReport } from '../src/review/types.js';
import { createTestDatabase, serverUrl, type TestDatabase } from './helpers/db.js';

const ACME = 'a0000000-0000-4000-8000-000000000001';
const CAROL = 'b0000000-0000-4000-8000-000000000003';

let db: TestDatabase;
let tmp: string;

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rls-kit-review-'));
});

afterAll(() => db?.drop());

function lints(report: ReviewReport): string[] {
  return report.findings.map((f) => `${f.lint} ${f.object}`);
}

describe('the review goes on past bad input, reporting it against the object', () => {
  it('a login that may not read pg_policy: reported against the catalog, the rest reviewed', async () => {
    const role = `rls_kit_t_reviewer_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query(`create role ${role} login password '${password}'`);
      // Catalog privileges are per database: this only affects the test's copy.
      await admin.query('revoke select on pg_catalog.pg_policy from public');
      await admin.query(`grant authenticated, anon to ${role}`);
      const url = new URL(db.url);
      url.username = role;
      url.password = password;
      const report = await reviewDatabase({ url: url.toString(), lockTimeoutMs: 500 });
      expect(report.volatile.reviewer).toBe(role);
      expect(lints(report)).toContain('review-catalog-unreadable pg_catalog.pg_policy');
      const finding = report.findings.find((f) => f.lint === 'review-catalog-unreadable')!;
      expect(finding.why).toContain('42501');
      expect(finding.fix).toContain('grant');
      // Tables, grants and the matrix are still there.
      expect(report.tables.map((t) => t.name)).toEqual([
        'public.documents',
        'public.memberships',
        'public.organizations',
      ]);
      expect(report.tables[0]!.grants.authenticated?.select).toBe(true);
      // The login cannot read the rows (no grant), so personas use placeholders and
      // UPDATE/DELETE have nothing to aim at: said per table, not an ERROR.
      expect(report.findings.filter((f) => f.level === 'error')).toEqual([]);
      expect(report.matrix.length).toBeGreaterThan(0);
      expect(lints(report).some((l) => l.startsWith('review-reviewer-filtered'))).toBe(true);
      // No policy was readable: no "RLS on but no policy" noise.
      expect(lints(report).some((l) => l.startsWith('rls-enabled-no-policy'))).toBe(false);
    } finally {
      await admin.query('grant select on pg_catalog.pg_policy to public');
      await admin.end();
      const server = new pg.Client({ connectionString: serverUrl() });
      await server.connect();
      await server.query(`drop role if exists ${role}`);
      await server.end();
    }
  });

  it('a table another session has locked: lock_timeout, reported against that table', async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table public.documents in access exclusive mode');
      const started = Date.now();
      const report = await reviewDatabase({ url: db.url, lockTimeoutMs: 300 });
      expect(Date.now() - started).toBeLessThan(15_000);
      const timeout = report.findings.find(
        (f) => f.lint === 'review-probe-timeout' && f.object === 'public.documents',
      );
      expect(timeout?.why).toContain('55P03');
      const documents = report.matrix.filter((m) => m.table === 'public.documents');
      for (const row of documents) {
        if (row.persona === 'anon') continue; // no grant: nothing to wait for
        expect(row.select.outcome).toBe('timeout');
      }
      // The other tables are reviewed as usual.
      const orgs = report.matrix.find(
        (m) => m.table === 'public.organizations' && m.persona === 'owner',
      );
      expect(orgs?.select).toMatchObject({ outcome: 'allowed', rows: 1 });
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
  });

  it('writes blocked by a lock: reads still probed, writes time out once per table', async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table public.documents in exclusive mode');
      const report = await reviewDatabase({ url: db.url, lockTimeoutMs: 300 });
      const owner = report.matrix.find(
        (m) => m.table === 'public.documents' && m.persona === 'owner',
      )!;
      expect(owner.select).toMatchObject({ outcome: 'allowed', rows: 36 });
      expect(owner.insert.outcome).toBe('timeout');
      expect(lints(report)).toContain('review-probe-timeout public.documents');
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
  });

  it('a policy that errors when evaluated: reported against that policy', async () => {
    const report = await reviewDatabase({
      url: db.url,
      personas: [
        {
          name: 'bad-org',
          source: 'given',
          claims: { role: 'authenticated', sub: CAROL, org_id: 'not-a-uuid', user_role: 'member' },
        },
        {
          name: 'member',
          source: 'given',
          claims: { role: 'authenticated', sub: CAROL, org_id: ACME, user_role: 'member' },
        },
      ],
    });
    const bad = report.matrix.find(
      (m) => m.table === 'public.documents' && m.persona === 'bad-org',
    )!;
    expect(bad.select.outcome).toBe('error');
    expect(bad.select.detail).toContain('22P02');
    const finding = report.findings.find(
      (f) =>
        f.lint === 'review-policy-error' &&
        f.object === 'documents_select_own_org on public.documents',
    );
    expect(finding?.why).toContain('persona bad-org');
    expect(finding?.why).toContain('22P02');
    // The good persona next to it is unaffected.
    const good = report.matrix.find(
      (m) => m.table === 'public.documents' && m.persona === 'member',
    )!;
    expect(good.select).toMatchObject({ outcome: 'allowed', rows: 36 });
  });

  it('a personas file with invalid YAML: reported, derived personas used instead', async () => {
    const file = path.join(tmp, 'broken.yaml');
    writeFileSync(file, 'member:\n  role: authenticated\n  sub: [unclosed\n');
    const report = await reviewDatabase({ url: db.url, personasFile: file, matrix: true });
    const finding = report.findings.find((f) => f.lint === 'review-personas-invalid');
    expect(finding).toMatchObject({ level: 'error', objectType: 'personas-file', object: file });
    expect(finding?.why).toContain('neither valid JSON nor valid YAML');
    expect(report.settings.personasFrom).toBe('derived');
    expect(report.personas.map((p) => p.name)).toContain('viewer');
  });

  it('a personas file with a typo: the unknown claim and the bad role are reported, the rest probed', async () => {
    const file = path.join(tmp, 'typo.yaml');
    writeFileSync(
      file,
      [
        'member:',
        '  role: authenticated',
        `  sub: ${CAROL}`,
        `  org_idd: ${ACME}`,
        '  user_role: member',
        'boss:',
        '  role: postgres',
        'nobody: 42',
        'anon:',
        '  role: anon',
      ].join('\n'),
    );
    const report = await reviewDatabase({ url: db.url, personasFile: file });
    expect(report.settings.personasFrom).toBe('file');
    expect(report.personas.map((p) => p.name)).toEqual(['member', 'anon']);
    const typo = report.findings.find((f) => f.lint === 'review-persona-unknown-claim');
    expect(typo?.object).toBe(`member (${file})`);
    expect(typo?.why).toContain('"org_idd"');
    expect(lints(report)).toContain(`review-persona-invalid boss (${file})`);
    expect(lints(report)).toContain(`review-persona-invalid nobody (${file})`);
    // Without org_id the member sees nothing, and the review says so in the matrix.
    const member = report.matrix.find(
      (m) => m.table === 'public.documents' && m.persona === 'member',
    )!;
    expect(member.select).toMatchObject({ outcome: 'no-rows', rows: 0 });
  });

  it('a personas file that does not exist: reported, the review goes on', async () => {
    const report = await reviewDatabase({
      url: db.url,
      personasFile: path.join(tmp, 'missing.yaml'),
    });
    expect(report.findings.find((f) => f.lint === 'review-personas-invalid')?.why).toContain(
      'does not exist',
    );
    expect(report.matrix.length).toBeGreaterThan(0);
  });
});
