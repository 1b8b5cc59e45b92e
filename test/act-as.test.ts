/**
 * Policy tests the way an app writes them (this file is the example in
 * docs/supabase.md): personas built with gotrueClaims, each test body run
 * with actAs as that persona in a transaction that is always rolled back.
 * Real Postgres, the example app's policies.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRlsKitError } from '../src/errors.js';
import { actAs, gotrueClaims } from '../src/supabase/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  ACME,
  ALICE,
  DAVE,
  type ExampleDB,
  exampleKysely,
  GLOBEX,
  SEEDED_DOCS,
} from './helpers/supabase-fixture.js';

let database: TestDatabase;
let pool: pg.Pool;
let kysely: ReturnType<typeof exampleKysely>;

beforeAll(async () => {
  database = await createTestDatabase({ template: 'example' });
  pool = new pg.Pool({ connectionString: database.url, max: 3 });
  kysely = exampleKysely(database.url, 2);
});
afterAll(async () => {
  await pool?.end();
  await kysely?.db.destroy();
  await database?.drop();
});

// Personas: the full claims a signed-in user's token carries, not just sub.
const alice = gotrueClaims({
  sub: ALICE,
  email: 'alice@acme.test',
  org_id: ACME,
  user_role: 'owner',
});
const dave = gotrueClaims({
  sub: DAVE,
  email: 'dave@acme.test',
  org_id: ACME,
  user_role: 'viewer',
});
const noOrg = gotrueClaims({ sub: randomUUID(), email: 'new@example.test' });

async function countDocuments(title: string): Promise<number> {
  const { rows } = await pool.query('select count(*)::int as n from documents where title = $1', [
    title,
  ]);
  return rows[0].n;
}

describe('gotrueClaims', () => {
  it('builds the claims Supabase Auth issues, plus the app claims', () => {
    expect(alice).toMatchObject({
      iss: 'http://127.0.0.1:54321/auth/v1',
      sub: ALICE,
      aud: 'authenticated',
      role: 'authenticated',
      email: 'alice@acme.test',
      phone: '',
      aal: 'aal1',
      is_anonymous: false,
      org_id: ACME,
      user_role: 'owner',
    });
    expect(alice.session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(alice.exp - alice.iat).toBe(3600);
    expect(alice).not.toHaveProperty('app_metadata');
    const full = gotrueClaims({ metadata: true, projectUrl: 'https://ref.supabase.co/' });
    expect(full.iss).toBe('https://ref.supabase.co/auth/v1');
    expect(full.app_metadata).toEqual({ provider: 'email', providers: ['email'] });
    expect(full.amr).toEqual([{ method: 'password', timestamp: full.iat }]);
    expect(() => gotrueClaims({ sub: 'alice' })).toThrow(/uuid/);
  });
});

describe('actAs with a pg.Pool', () => {
  it('a member reads only their organization’s documents', async () => {
    const orgs = await actAs(pool, alice, async (client) => {
      const { rows } = await client.query<{ org_id: string }>('select org_id from documents');
      return rows.map((r) => r.org_id);
    });
    expect(orgs).toHaveLength(SEEDED_DOCS[ACME]);
    expect(new Set(orgs)).toEqual(new Set([ACME]));
  });

  it('the whole claims JSON is visible to SQL, as with a real token', async () => {
    const seen = await actAs(pool, alice, async (client) => {
      const { rows } = await client.query(
        `select auth.uid() as uid, auth.role() as role, auth.email() as email,
                auth.jwt() ->> 'session_id' as session_id, auth.jwt() ->> 'aal' as aal,
                current_user as pg_role`,
      );
      return rows[0];
    });
    expect(seen).toEqual({
      uid: ALICE,
      role: 'authenticated',
      email: 'alice@acme.test',
      session_id: alice.session_id,
      aal: 'aal1',
      pg_role: 'authenticated',
    });
  });

  it('writes are rolled back afterwards, always', async () => {
    const title = `draft ${randomUUID()}`;
    const inside = await actAs(pool, alice, async (client) => {
      await client.query('insert into documents (org_id, owner_id, title) values ($1, $2, $3)', [
        ACME,
        ALICE,
        title,
      ]);
      return (
        await client.query('select count(*)::int as n from documents where title = $1', [title])
      ).rows[0].n;
    });
    expect(inside).toBe(1);
    expect(await countDocuments(title)).toBe(0);
  });

  it('a viewer cannot insert: the RLS error comes back as it is (42501)', async () => {
    const error = await actAs(pool, dave, (client) =>
      client.query("insert into documents (org_id, owner_id, title) values ($1, $2, 'nope')", [
        ACME,
        DAVE,
      ]),
    ).catch((err: unknown) => err);
    expect((error as { code?: string }).code).toBe('42501');
  });

  it('a user without an organization sees nothing (no org_id claim = no access, not an error)', async () => {
    const n = await actAs(pool, noOrg, async (client) => {
      return (await client.query('select count(*)::int as n from documents')).rows[0].n;
    });
    expect(n).toBe(0);
  });

  it('anon gets nothing of the example app', async () => {
    const error = await actAs(pool, 'anon', (client) =>
      client.query('select 1 from documents'),
    ).catch((err: unknown) => err);
    expect((error as { code?: string }).code).toBe('42501');
  });

  it('refuses service_role unless opted in, and a callback that commits', async () => {
    const service = gotrueClaims({ role: 'service_role' });
    const refused = await actAs(pool, service, async () => 1).catch((err: unknown) => err);
    expect(isRlsKitError(refused, 'ERR_ROLE_NOT_ALLOWED')).toBe(true);
    const committed = await actAs(pool, alice, async (client) => {
      await client.query('commit');
    }).catch((err: unknown) => err);
    expect(isRlsKitError(committed, 'ERR_USAGE')).toBe(true);
  });
});

describe('actAs with Kysely', () => {
  it('runs the callback in the rolled-back transaction, as the persona', async () => {
    const title = `kysely draft ${randomUUID()}`;
    const result = await actAs(kysely.db, alice, async (trx) => {
      await trx
        .insertInto('documents')
        .values({ org_id: ACME, owner_id: ALICE, title, body: '' } as never)
        .execute();
      const mine = await trx
        .selectFrom('documents')
        .select(sql<number>`count(*)::int`.as('n'))
        .where('title', '=', title)
        .executeTakeFirstOrThrow();
      const globex = await trx
        .selectFrom('documents')
        .select(sql<number>`count(*)::int`.as('n'))
        .where('org_id', '=', GLOBEX)
        .executeTakeFirstOrThrow();
      return { mine: mine.n, globex: globex.n };
    });
    expect(result).toEqual({ mine: 1, globex: 0 });
    expect(await countDocuments(title)).toBe(0);
  });

  it('a swallowed error still rolls back cleanly', async () => {
    const value = await actAs(
      kysely.db as import('kysely').Kysely<ExampleDB>,
      dave,
      async (trx) => {
        await sql`insert into documents (org_id, owner_id, title) values (${ACME}, ${DAVE}, 'x')`
          .execute(trx)
          .catch(() => undefined);
        return 'done';
      },
    );
    expect(value).toBe('done');
  });
});
