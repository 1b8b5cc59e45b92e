import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { LINTS, type LintId } from '../src/review/lint.js';
import type { Persona } from '../src/review/persona.js';
import { reviewDatabase } from '../src/review/review-database.js';
import type { ReviewReport } from '../src/review/types.js';
import { memoryIO } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

const FIXTURES = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'fixtures',
  'review',
  'lints',
);

/** Personas for the lints the matrix decides (cross-tenant-access). */
const PERSONAS: Persona[] = [
  {
    name: 'member-a',
    source: 'given',
    claims: {
      role: 'authenticated',
      sub: 'b0000000-0000-4000-8000-000000000001',
      org_id: 'a0000000-0000-4000-8000-000000000001',
      user_role: 'member',
    },
  },
];
const NEEDS_MATRIX = new Set<LintId>(['cross-tenant-access']);

let db: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase({ template: 'kit' });
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
  await db?.drop();
});

/** Loads `<lint>.<variant>.sql` into a fresh schema and reviews only that schema. */
async function reviewFixture(lint: LintId, variant: 'broken' | 'fixed'): Promise<ReviewReport> {
  const schema = `${lint.replace(/-/g, '_')}_${variant}`;
  const sql = readFileSync(path.join(FIXTURES, `${lint}.${variant}.sql`), 'utf8').replaceAll(
    '{{schema}}',
    pg.escapeIdentifier(schema),
  );
  await client.query(`create schema ${pg.escapeIdentifier(schema)}`);
  await client.query(sql);
  return reviewDatabase({
    url: db.url,
    schemas: [schema],
    matrix: NEEDS_MATRIX.has(lint),
    personas: NEEDS_MATRIX.has(lint) ? PERSONAS : undefined,
    largeTableRows: 1000,
  });
}

describe('every lint fires on its broken schema and not on the fixed one', () => {
  for (const lint of Object.keys(LINTS) as LintId[]) {
    it(`${lint} (${LINTS[lint]})`, async () => {
      const broken = await reviewFixture(lint, 'broken');
      const fired = broken.findings.filter((f) => f.lint === lint);
      expect(fired.length, JSON.stringify(broken.findings, null, 1)).toBeGreaterThan(0);
      for (const f of fired) {
        expect(f.level).toBe(LINTS[lint]);
        expect(f.object).not.toBe('');
        expect(f.why.length).toBeGreaterThan(20);
        expect(f.fix.length).toBeGreaterThan(10);
      }
      const fixed = await reviewFixture(lint, 'fixed');
      expect(
        fixed.findings.filter((f) => f.lint === lint),
        JSON.stringify(fixed.findings, null, 1),
      ).toEqual([]);
      // The review's own problems (review-*) never appear on these schemas.
      for (const report of [broken, fixed]) {
        expect(report.findings.filter((f) => f.lint.startsWith('review-'))).toEqual([]);
      }
    });
  }
});

describe('lint details', () => {
  it('user-metadata-in-policy names the path; claims are read one level into SQL helpers', async () => {
    const schema = 'helper_claims';
    await client.query(`
      create schema ${schema};
      create function ${schema}.is_admin() returns boolean language sql stable set search_path = ''
        as $$ select (auth.jwt() -> 'user_metadata' ->> 'role') = 'admin' $$;
      create function ${schema}.tier() returns text language plpgsql stable set search_path = ''
        as $$ begin return auth.jwt() ->> 'tier'; end $$;
      create table ${schema}.notes (id uuid primary key, org_id uuid);
      alter table ${schema}.notes enable row level security;
      create policy notes_select on ${schema}.notes for select to authenticated
        using ((select ${schema}.is_admin()) and (select ${schema}.tier()) = 'gold');`);
    const report = await reviewDatabase({ url: db.url, schemas: [schema], matrix: false });
    const policy = report.tables[0]!.policies[0]!;
    expect(policy.claims).toEqual([
      {
        claim: 'user_metadata',
        path: 'user_metadata.role',
        via: 'auth.jwt()',
        in: `${schema}.is_admin()`,
      },
    ]);
    expect(policy.functions).toEqual([`${schema}.is_admin()`, `${schema}.tier()`]);
    const finding = report.findings.find((f) => f.lint === 'user-metadata-in-policy');
    expect(finding?.object).toBe(`notes_select on ${schema}.notes`);
    expect(finding?.why).toContain('user_metadata.role');
    const fn = report.functions.find((f) => f.name === `${schema}.is_admin()`);
    expect(fn).toMatchObject({
      language: 'sql',
      searchPath: '""',
      calledBy: [`notes_select on ${schema}.notes`],
    });
  });

  it('immutable-reads-request: an IMMUTABLE plpgsql policy helper reading the claims is an error, STABLE is not', async () => {
    // The helper lives outside the reviewed schema: only the policy reaches it.
    await client.query(`
      create schema imm_helpers;
      create function imm_helpers.org_id() returns uuid language plpgsql immutable
        set search_path = ''
        as $$ begin
          return (current_setting('request.jwt.claims', true)::jsonb ->> 'org_id')::uuid;
        end $$;
      create schema imm_reads;
      create table imm_reads.docs (id uuid primary key, org_id uuid not null);
      alter table imm_reads.docs enable row level security;
      create policy docs_select on imm_reads.docs for select to authenticated
        using (org_id = (select imm_helpers.org_id()));`);
    const review = () => reviewDatabase({ url: db.url, schemas: ['imm_reads'], matrix: false });
    const fired = (await review()).findings.filter((f) => f.lint === 'immutable-reads-request');
    expect(fired).toEqual([
      expect.objectContaining({
        level: 'error',
        objectType: 'function',
        object: 'imm_helpers.org_id()',
        fix: 'alter function imm_helpers.org_id() stable;',
      }),
    ]);
    expect(fired[0]!.why).toContain('imm_helpers.org_id() (called by policies) is IMMUTABLE');
    await client.query('alter function imm_helpers.org_id() stable');
    expect((await review()).findings.filter((f) => f.lint === 'immutable-reads-request')).toEqual(
      [],
    );
  });

  it('exposed schemas default to public, follow pgrst.db_schemas, and report missing ones', async () => {
    const empty = await reviewDatabase({ url: db.url, matrix: false });
    expect(empty.settings).toMatchObject({ schemas: ['public'], schemasFrom: 'default' });
    await client.query(`create schema api_one; create schema api_two`);
    const dbName = (await client.query('select current_database() as d')).rows[0].d as string;
    await client.query(
      `alter role authenticator in database ${pg.escapeIdentifier(dbName)} set pgrst.db_schemas = 'api_one, "api_two", nowhere'`,
    );
    try {
      const report = await reviewDatabase({ url: db.url, matrix: false });
      expect(report.settings).toMatchObject({
        schemas: ['api_one', 'api_two'],
        schemasFrom: 'pgrst.db_schemas',
      });
      expect(report.findings.find((f) => f.lint === 'review-schema-missing')?.object).toBe(
        'nowhere',
      );
      const chosen = await reviewDatabase({ url: db.url, schemas: ['api_two'], matrix: false });
      expect(chosen.settings).toMatchObject({ schemas: ['api_two'], schemasFrom: 'option' });
    } finally {
      await client.query(
        `alter role authenticator in database ${pg.escapeIdentifier(dbName)} reset pgrst.db_schemas`,
      );
    }
  });
});

describe('rls-kit review --fail-on', () => {
  it('exits 1 when a finding at or above the level exists, else 0', async () => {
    await client.query(`
      create schema fail_info;
      create table fail_info.t (id int primary key);
      alter table fail_info.t enable row level security;
      create schema fail_warn;
      create table fail_warn.t (id int primary key, owner_id uuid);
      alter table fail_warn.t enable row level security;
      create policy t_select on fail_warn.t for select to authenticated using (owner_id = auth.uid());
      create schema fail_error;
      create table fail_error.t (id int primary key);
      grant usage on schema fail_error to anon;
      grant select on fail_error.t to anon;`);
    const cases: [string, 'info' | 'warn' | 'error', Record<string, number>][] = [
      ['fail_info', 'info', { info: 1, warn: 0, error: 0 }],
      ['fail_warn', 'warn', { info: 1, warn: 1, error: 0 }],
      ['fail_error', 'error', { info: 1, warn: 1, error: 1 }],
    ];
    for (const [schema, worst, expected] of cases) {
      const report = await reviewDatabase({ url: db.url, schemas: [schema], matrix: false });
      expect(report.findings[0]?.level, schema).toBe(worst);
      for (const level of ['info', 'warn', 'error'] as const) {
        const io = memoryIO();
        const code = await runCli(
          [
            'review',
            '--db-url',
            db.url,
            '--schema',
            schema,
            '--no-matrix',
            '--format',
            'json',
            '--fail-on',
            level,
          ],
          io,
        );
        expect(code, `${schema} --fail-on ${level}: ${io.err()}`).toBe(expected[level]);
        expect(JSON.parse(io.out()).settings.schemas).toEqual([schema]);
      }
      const io = memoryIO();
      expect(
        await runCli(['review', '--db-url', db.url, '--schema', schema, '--no-matrix'], io),
      ).toBe(0);
    }
  });
});
