import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/**
 * rls_kit.act_as (issue 5, item 3, SQL half): a user's own SQL policy test
 * becomes a persona — Postgres role plus the full claims JSON — for the rest
 * of a transaction, exactly as PostgREST sets up a request.
 */

const ACME = 'a0000000-0000-4000-8000-000000000001';
const GLOBEX = 'a0000000-0000-4000-8000-000000000002';
const CAROL = 'b0000000-0000-4000-8000-000000000003';
const DAVE = 'b0000000-0000-4000-8000-000000000004';

let db: TestDatabase;
let client: pg.Client;

const claims = (sub: string, extra: Record<string, unknown> = {}) => {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: 'https://abcdefghijklmnopqrst.supabase.co/auth/v1',
    aud: 'authenticated',
    sub,
    iat: now,
    exp: now + 600,
    email: 'carol@acme.test',
    phone: '',
    aal: 'aal1',
    session_id: '4b938a09-5372-4177-a314-cfa292099ea2',
    is_anonymous: false,
    jti: randomBytes(16).toString('base64url'),
    ...extra,
  };
};

async function one<T>(sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await client.query(sql, params);
  return rows[0] as T;
}

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
  await db?.drop();
});

describe('rls_kit.act_as', () => {
  it('becomes the persona for the transaction: role, claims, policies — and rollback ends it', async () => {
    const carol = claims(CAROL, { role: 'authenticated', org_id: ACME, user_role: 'member' });
    await client.query('begin');
    try {
      await client.query('select rls_kit.act_as($1, $2::jsonb)', [
        'authenticated',
        JSON.stringify(carol),
      ]);
      expect(
        await one(
          'select current_user as cu, auth.uid()::text as uid, auth.role() as role, auth.email() as email, auth.jwt() as jwt',
        ),
      ).toEqual({
        cu: 'authenticated',
        uid: CAROL,
        role: 'authenticated',
        email: 'carol@acme.test',
        jwt: carol,
      });
      const docs = await client.query<{ org_id: string }>('select org_id from public.documents');
      expect(docs.rowCount).toBe(36);
      expect(docs.rows.every((r) => r.org_id === ACME)).toBe(true);
    } finally {
      await client.query('rollback');
    }
    expect(
      await one("select current_user as cu, current_setting('request.jwt.claims', true) as c"),
    ).toEqual({ cu: 'postgres', c: '' });
  });

  it('adds the role to the claims when they lack it', async () => {
    await client.query('begin');
    try {
      await client.query('select rls_kit.act_as($1, $2::jsonb)', [
        'authenticated',
        JSON.stringify(claims(DAVE, { org_id: ACME, user_role: 'viewer' })),
      ]);
      expect(await one("select auth.jwt() ->> 'role' as r")).toEqual({ r: 'authenticated' });
      // A viewer cannot insert: the policy's WITH CHECK refuses the row.
      await expect(
        client.query(
          `insert into public.documents (org_id, owner_id, title) values ($1, $2, 'x')`,
          [ACME, DAVE],
        ),
      ).rejects.toMatchObject({ code: '42501' });
    } finally {
      await client.query('rollback');
    }
  });

  it('blanks the legacy request.jwt.claim* settings, so a stale value cannot win', async () => {
    await client.query(`select set_config('request.jwt.claim.sub', $1, false)`, [DAVE]);
    await client.query(`select set_config('request.jwt.claim', '{"sub":"${DAVE}"}', false)`);
    await client.query(`select set_config('request.jwt.claim.org_id', $1, false)`, [GLOBEX]);
    try {
      await client.query('begin');
      try {
        await client.query('select rls_kit.act_as($1, $2::jsonb)', [
          'authenticated',
          JSON.stringify(claims(CAROL, { org_id: ACME, user_role: 'member' })),
        ]);
        expect(
          await one(
            `select auth.uid()::text as uid, auth.jwt() ->> 'sub' as sub,
                    current_setting('request.jwt.claim.org_id') as org`,
          ),
        ).toEqual({ uid: CAROL, sub: CAROL, org: '' });
      } finally {
        await client.query('rollback');
      }
    } finally {
      await client.query('reset all');
    }
  });

  it('acts as anon (no claims needed)', async () => {
    await client.query('begin');
    try {
      await client.query(`select rls_kit.act_as('anon')`);
      expect(await one('select current_user as cu, auth.role() as role')).toEqual({
        cu: 'anon',
        role: 'anon',
      });
      await expect(client.query('select * from public.documents')).rejects.toMatchObject({
        code: '42501',
      });
    } finally {
      await client.query('rollback');
    }
  });

  it.each([
    ['service_role', `select rls_kit.act_as('service_role', '{}')`, /not an API role/],
    ['postgres', `select rls_kit.act_as('postgres', '{}')`, /not an API role/],
    ['NULL role', 'select rls_kit.act_as(null)', /not an API role/],
    ['claims as an array', `select rls_kit.act_as('authenticated', '[]')`, /must be a JSON object/],
    [
      'a claims role that differs',
      `select rls_kit.act_as('authenticated', '{"role": "service_role"}')`,
      /differs from role/,
    ],
  ])('refuses %s', async (_name, sql, message) => {
    await client.query('begin');
    try {
      await expect(client.query(sql)).rejects.toMatchObject({
        code: '22023',
        message: expect.stringMatching(message),
      });
    } finally {
      await client.query('rollback');
    }
  });

  it('acts as another role only when allowed explicitly', async () => {
    await client.query('begin');
    try {
      await client.query(
        `select rls_kit.act_as('service_role', '{"role": "service_role"}', allow_other_role => true)`,
      );
      expect(await one('select current_user as cu')).toEqual({ cu: 'service_role' });
    } finally {
      await client.query('rollback');
    }
  });

  it('is refused to the API roles (permission denied), so a persona cannot switch itself', async () => {
    for (const role of ['anon', 'authenticated', 'service_role']) {
      await client.query('begin');
      try {
        await client.query(`set local role ${role}`);
        await expect(
          client.query(`select rls_kit.act_as('authenticated', '{}')`),
          role,
        ).rejects.toMatchObject({ code: '42501' });
      } finally {
        await client.query('rollback');
      }
    }
    // Nor after act_as itself: the persona cannot call it again.
    await client.query('begin');
    try {
      await client.query(`select rls_kit.act_as('authenticated', '{}')`);
      await expect(
        client.query(`select rls_kit.act_as('authenticated', '{}')`),
      ).rejects.toMatchObject({ code: '42501' });
    } finally {
      await client.query('rollback');
    }
  });
});

describe('the documented example (docs/supabase-hook.md)', () => {
  it('runs as written: the viewer sees their organization and deletes nothing', async () => {
    const doc = readFileSync(
      path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'supabase-hook.md'),
      'utf8',
    );
    const block = [...doc.matchAll(/```sql\n([\s\S]*?)```/g)]
      .map((m) => m[1] as string)
      .find((sql) => sql.includes('rls_kit.act_as('));
    expect(block).toBeDefined();
    const results = (await client.query(block as string)) as unknown as pg.QueryResult[];
    const seen = results.find((r) => r.fields.some((f) => f.name === 'sees_own_org'));
    expect(seen?.rows).toEqual([{ sees_own_org: true }]);
    const deleted = results.find((r) => r.command === 'DELETE');
    expect(deleted?.rowCount).toBe(0);
    expect(results.at(-1)?.command).toBe('ROLLBACK');
    expect(await one('select current_user as cu')).toEqual({ cu: 'postgres' });
  });
});
