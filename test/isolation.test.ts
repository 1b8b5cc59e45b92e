import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUserPg } from '../src/db/as-user-pg.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/**
 * Cross-tenant isolation of the example app (issue 2, item 8): every seeded
 * membership (so every user_role) × select / insert / update / delete, run
 * as that user through the kit's as-user API against the real policies.
 * Every write is rolled back, so each case starts from the seed.
 */

interface Membership {
  user_id: string;
  email: string;
  org_id: string;
  role: 'owner' | 'admin' | 'member' | 'viewer';
}

type Outcome = { rows: number } | { code: string };

class Rollback {
  constructor(readonly outcome: Outcome) {}
}

let db: TestDatabase;
let pool: pg.Pool;
let admin: pg.Pool;
let memberships: Membership[];
let docsPerOrg: Map<string, number>;
let orgIds: string[];

/** The registered claims a live kit token carries (the revocation guard needs `iat`). */
const live = () => {
  const now = Math.floor(Date.now() / 1000);
  return { iat: now, exp: now + 600, jti: randomBytes(16).toString('base64url') };
};

const claimsOf = (m: Membership) => ({
  ...live(),
  sub: m.user_id,
  role: 'authenticated',
  org_id: m.org_id,
  user_role: m.role,
});

/** Runs one statement as the user and rolls it back; reports rows touched or the SQLSTATE. */
async function attempt(
  claims: Record<string, unknown>,
  sql: string,
  params: unknown[] = [],
): Promise<Outcome> {
  try {
    await asUserPg(pool, claims, async (client) => {
      let outcome: Outcome;
      try {
        const res = await client.query(sql, params);
        outcome = { rows: res.rowCount ?? 0 };
      } catch (err) {
        outcome = { code: String((err as { code?: string }).code) };
      }
      throw new Rollback(outcome);
    });
  } catch (err) {
    if (err instanceof Rollback) return err.outcome;
    throw err;
  }
  throw new Error('unreachable: the callback always rolls back');
}

async function select<T extends pg.QueryResultRow>(
  claims: Record<string, unknown>,
  sql: string,
  params: unknown[] = [],
) {
  return asUserPg(pool, claims, async (client) => (await client.query<T>(sql, params)).rows);
}

/** A document of `org` owned by someone other than `userId` (as seen by postgres). */
async function someoneElsesDoc(org: string, userId: string): Promise<string> {
  const { rows } = await admin.query<{ id: string }>(
    'select id from public.documents where org_id = $1 and owner_id <> $2 order by id limit 1',
    [org, userId],
  );
  if (!rows[0]) throw new Error(`seed has no document of ${org} owned by someone else`);
  return rows[0].id;
}

const denied = (o: Outcome) => ('code' in o ? o.code === '42501' : o.rows === 0);

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  admin = new pg.Pool({ connectionString: db.url, max: 2 });
  memberships = (
    await admin.query<Membership>(
      `select m.user_id, u.email, m.org_id, m.role
         from public.memberships m join auth.users u on u.id = m.user_id order by u.email, m.org_id`,
    )
  ).rows;
  const counts = await admin.query<{ org_id: string; n: string }>(
    'select org_id, count(*) as n from public.documents group by org_id',
  );
  docsPerOrg = new Map(counts.rows.map((r) => [r.org_id, Number(r.n)]));
  orgIds = (
    await admin.query<{ id: string }>('select id from public.organizations order by id')
  ).rows.map((r) => r.id);
});

afterAll(async () => {
  await pool?.end();
  await admin?.end();
  await db?.drop();
});

describe('the seed covers the matrix', () => {
  it('has every user_role, several orgs, and documents in each', () => {
    expect(new Set(memberships.map((m) => m.role))).toEqual(
      new Set(['owner', 'admin', 'member', 'viewer']),
    );
    expect(orgIds.length).toBeGreaterThanOrEqual(3);
    for (const org of orgIds) expect(docsPerOrg.get(org) ?? 0).toBeGreaterThan(0);
  });
});

describe.each(['owner', 'admin', 'member', 'viewer'] as const)('user_role %s', (role) => {
  const cases = () => memberships.filter((m) => m.role === role);

  it('SELECT sees exactly its own organization: all its documents, none of another', async () => {
    for (const m of cases()) {
      const docs = await select<{ org_id: string }>(
        claimsOf(m),
        'select org_id from public.documents',
      );
      expect(docs.length, m.email).toBe(docsPerOrg.get(m.org_id));
      expect(
        docs.every((d) => d.org_id === m.org_id),
        m.email,
      ).toBe(true);
      const orgs = await select<{ id: string }>(claimsOf(m), 'select id from public.organizations');
      expect(orgs.map((o) => o.id)).toEqual([m.org_id]);
      const mems = await select<{ org_id: string }>(
        claimsOf(m),
        'select org_id from public.memberships',
      );
      expect(mems.length).toBeGreaterThan(0);
      expect(mems.every((r) => r.org_id === m.org_id)).toBe(true);
      // Asking for another org explicitly still returns nothing.
      for (const other of orgIds.filter((o) => o !== m.org_id)) {
        const leaked = await select(
          claimsOf(m),
          'select id from public.documents where org_id = $1',
          [other],
        );
        expect(leaked, `${m.email} reads ${other}`).toEqual([]);
      }
    }
  });

  it('INSERT: into its own org as itself only for non-viewers; never into another org or as someone else', async () => {
    for (const m of cases()) {
      const own = await attempt(
        claimsOf(m),
        `insert into public.documents (org_id, owner_id, title) values ($1, $2, 'probe')`,
        [m.org_id, m.user_id],
      );
      if (role === 'viewer') expect(own, m.email).toEqual({ code: '42501' });
      else expect(own, m.email).toEqual({ rows: 1 });

      const asOther = await attempt(
        claimsOf(m),
        `insert into public.documents (org_id, owner_id, title) values ($1, gen_random_uuid(), 'probe')`,
        [m.org_id],
      );
      expect(asOther, m.email).toEqual({ code: '42501' });

      for (const other of orgIds.filter((o) => o !== m.org_id)) {
        const cross = await attempt(
          claimsOf(m),
          `insert into public.documents (org_id, owner_id, title) values ($1, $2, 'probe')`,
          [other, m.user_id],
        );
        expect(cross, `${m.email} → ${other}`).toEqual({ code: '42501' });
      }
    }
  });

  it("UPDATE: own documents; others' only as owner/admin; never another org's, never moved out", async () => {
    for (const m of cases()) {
      const mine = await attempt(
        claimsOf(m),
        'update public.documents set title = title where owner_id = $1',
        [m.user_id],
      );
      const ownedCount = Number(
        (
          await admin.query<{ n: string }>(
            'select count(*) as n from public.documents where owner_id = $1 and org_id = $2',
            [m.user_id, m.org_id],
          )
        ).rows[0]?.n,
      );
      expect(mine, m.email).toEqual({ rows: ownedCount });

      const target = await someoneElsesDoc(m.org_id, m.user_id);
      const others = await attempt(
        claimsOf(m),
        `update public.documents set title = 'x' where id = $1`,
        [target],
      );
      if (role === 'owner' || role === 'admin') expect(others, m.email).toEqual({ rows: 1 });
      else expect(others, m.email).toEqual({ rows: 0 });

      for (const other of orgIds.filter((o) => o !== m.org_id)) {
        const cross = await attempt(
          claimsOf(m),
          `update public.documents set title = 'x' where org_id = $1`,
          [other],
        );
        expect(cross, `${m.email} → ${other}`).toEqual({ rows: 0 });
        // Moving a document it may update into another org: the WITH CHECK refuses it.
        if (ownedCount > 0) {
          const moved = await attempt(
            claimsOf(m),
            'update public.documents set org_id = $1 where id = (select id from public.documents where owner_id = $2 limit 1)',
            [other, m.user_id],
          );
          expect(moved, `${m.email} moves to ${other}`).toEqual({ code: '42501' });
        }
      }
    }
  });

  it("DELETE: own documents; others' only as owner/admin; never another org's", async () => {
    for (const m of cases()) {
      const target = await someoneElsesDoc(m.org_id, m.user_id);
      const others = await attempt(claimsOf(m), 'delete from public.documents where id = $1', [
        target,
      ]);
      if (role === 'owner' || role === 'admin') expect(others, m.email).toEqual({ rows: 1 });
      else expect(others, m.email).toEqual({ rows: 0 });

      const all = await attempt(claimsOf(m), 'delete from public.documents');
      const expected =
        role === 'owner' || role === 'admin'
          ? docsPerOrg.get(m.org_id)
          : Number(
              (
                await admin.query<{ n: string }>(
                  'select count(*) as n from public.documents where owner_id = $1 and org_id = $2',
                  [m.user_id, m.org_id],
                )
              ).rows[0]?.n,
            );
      expect(all, m.email).toEqual({ rows: expected });

      for (const other of orgIds.filter((o) => o !== m.org_id)) {
        const cross = await attempt(claimsOf(m), 'delete from public.documents where org_id = $1', [
          other,
        ]);
        expect(cross, `${m.email} → ${other}`).toEqual({ rows: 0 });
      }
    }
  });
});

describe('tokens without a usable tenant', () => {
  it('anon gets permission denied on every table', async () => {
    for (const table of ['documents', 'organizations', 'memberships']) {
      expect(await attempt({ role: 'anon' }, `select * from public.${table}`)).toEqual({
        code: '42501',
      });
    }
  });

  it('an authenticated token without org_id sees nothing and writes nothing', async () => {
    const m = memberships.find((x) => x.role === 'owner')!;
    const claims = { ...live(), sub: m.user_id, role: 'authenticated', user_role: 'owner' };
    expect(await select(claims, 'select id from public.documents')).toEqual([]);
    expect(await select(claims, 'select id from public.organizations')).toEqual([]);
    const ins = await attempt(
      claims,
      `insert into public.documents (org_id, owner_id, title) values ($1, $2, 'probe')`,
      [m.org_id, m.user_id],
    );
    expect(denied(ins)).toBe(true);
    expect(await attempt(claims, 'delete from public.documents')).toEqual({ rows: 0 });
  });

  it('an unknown user_role gets read access only', async () => {
    const m = memberships.find((x) => x.role === 'owner')!;
    const claims = { ...claimsOf(m), user_role: 'superadmin' };
    expect((await select(claims, 'select id from public.documents')).length).toBe(
      docsPerOrg.get(m.org_id),
    );
    const ins = await attempt(
      claims,
      `insert into public.documents (org_id, owner_id, title) values ($1, $2, 'probe')`,
      [m.org_id, m.user_id],
    );
    expect(ins).toEqual({ code: '42501' });
    const target = await someoneElsesDoc(m.org_id, m.user_id);
    expect(await attempt(claims, 'delete from public.documents where id = $1', [target])).toEqual({
      rows: 0,
    });
  });
});
