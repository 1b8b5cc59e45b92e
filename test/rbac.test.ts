import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/**
 * RBAC (issue 5, item 2): rls_kit.role_permissions and rls_kit.authorize(),
 * and the example's update/delete policies "owner of the document, or
 * authorized" with the same outcome as the former user_role in ('owner',
 * 'admin') rule, for every seeded membership.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

type Role = 'owner' | 'admin' | 'member' | 'viewer';
interface Membership {
  user_id: string;
  org_id: string;
  role: Role;
}

let db: TestDatabase;
let client: pg.Client;
let memberships: Membership[];

const claimsOf = (m: Membership, extra: Record<string, unknown> = {}) => {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: m.user_id,
    role: 'authenticated',
    iat: now,
    exp: now + 600,
    jti: randomBytes(16).toString('base64url'),
    org_id: m.org_id,
    user_role: m.role,
    ...extra,
  };
};

/** Runs `sql` as `role` with `claims` (as PostgREST sets them) in a transaction that is rolled back. */
async function as<T extends pg.QueryResultRow>(
  role: 'anon' | 'authenticated',
  claims: Record<string, unknown> | null,
  sql: string,
  params: unknown[] = [],
): Promise<pg.QueryResult<T>> {
  await client.query('begin');
  try {
    if (claims) {
      await client.query(`select set_config('request.jwt.claims', $1, true)`, [
        JSON.stringify(claims),
      ]);
    }
    await client.query(`set local role ${role}`);
    return await client.query<T>(sql, params);
  } finally {
    await client.query('rollback');
  }
}

async function authorize(
  claims: Record<string, unknown> | null,
  permission: string,
  role: 'anon' | 'authenticated' = 'authenticated',
): Promise<boolean> {
  const { rows } = await as<{ ok: boolean }>(role, claims, 'select rls_kit.authorize($1) as ok', [
    permission,
  ]);
  return rows[0]?.ok as boolean;
}

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
  memberships = (
    await client.query<Membership>(
      'select user_id, org_id, role from public.memberships order by user_id, org_id',
    )
  ).rows;
});

afterAll(async () => {
  await client?.end();
  await db?.drop();
});

describe('rls_kit.authorize', () => {
  const table: [Role, string, boolean][] = [
    ['owner', 'documents.update', true],
    ['owner', 'documents.delete', true],
    ['admin', 'documents.update', true],
    ['admin', 'documents.delete', true],
    ['member', 'documents.update', false],
    ['member', 'documents.delete', false],
    ['viewer', 'documents.update', false],
    ['viewer', 'documents.delete', false],
    ['owner', 'documents.publish', false],
  ];
  it.each(table)('%s holds %s: %s', async (role, permission, expected) => {
    const m = memberships.find((x) => x.role === role) as Membership;
    expect(await authorize(claimsOf(m), permission)).toBe(expected);
  });

  it('is false without a token, without user_role, and for anon', async () => {
    const m = memberships.find((x) => x.role === 'owner') as Membership;
    expect(await authorize(null, 'documents.delete')).toBe(false);
    expect(await authorize(claimsOf(m, { user_role: undefined }), 'documents.delete')).toBe(false);
    expect(await authorize({ role: 'anon' }, 'documents.delete', 'anon')).toBe(false);
  });

  it('reads the table: a permission granted to member works at once, and goes with its row', async () => {
    const carol = memberships.find((x) => x.role === 'member') as Membership;
    await client.query(
      `insert into rls_kit.role_permissions (role, permission) values ('member', 'documents.publish')`,
    );
    try {
      expect(await authorize(claimsOf(carol), 'documents.publish')).toBe(true);
    } finally {
      await client.query(
        `delete from rls_kit.role_permissions where role = 'member' and permission = 'documents.publish'`,
      );
    }
    expect(await authorize(claimsOf(carol), 'documents.publish')).toBe(false);
  });

  it('gives API roles no privilege on role_permissions (permission denied, not an empty result)', async () => {
    const m = memberships[0] as Membership;
    for (const role of ['anon', 'authenticated'] as const) {
      await expect(
        as(role, claimsOf(m), 'select * from rls_kit.role_permissions'),
        role,
      ).rejects.toMatchObject({ code: '42501' });
      await expect(
        as(
          role,
          claimsOf(m),
          `insert into rls_kit.role_permissions values ('viewer', 'documents.delete')`,
        ),
        role,
      ).rejects.toMatchObject({ code: '42501' });
    }
  });

  it('runs once per statement in a policy: an InitPlan, not a per-row filter call', async () => {
    const m = memberships.find((x) => x.role === 'member') as Membership;
    const { rows } = await as<{ 'QUERY PLAN': string }>(
      'authenticated',
      claimsOf(m),
      'explain (verbose, costs off) delete from public.documents',
    );
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(
      /InitPlan \d+(?: \(returns \$\d+\))?\n\s+->\s+Result\n\s+Output: rls_kit\.authorize\('documents\.delete'::text\)/,
    );
    const filter = plan.split('\n').find((l) => l.trim().startsWith('Filter:')) ?? '';
    expect(filter).not.toMatch(/authorize/);
  });
});

describe('the example: update/delete = owner of the document, or authorized (same as owner/admin before)', () => {
  it('every membership × a document of each owner in the org: allowed exactly when owner_id = sub or user_role in (owner, admin)', async () => {
    let checked = 0;
    for (const m of memberships) {
      const docs = (
        await client.query<{ id: string; owner_id: string }>(
          `select distinct on (owner_id) id, owner_id from public.documents
           where org_id = $1 order by owner_id, id`,
          [m.org_id],
        )
      ).rows;
      expect(docs.length).toBeGreaterThan(1);
      for (const d of docs) {
        const expected = d.owner_id === m.user_id || m.role === 'owner' || m.role === 'admin';
        const upd = await as(
          'authenticated',
          claimsOf(m),
          `update public.documents set title = title || '!' where id = $1`,
          [d.id],
        );
        const del = await as(
          'authenticated',
          claimsOf(m),
          'delete from public.documents where id = $1',
          [d.id],
        );
        expect(upd.rowCount, `${m.role} update ${d.id}`).toBe(expected ? 1 : 0);
        expect(del.rowCount, `${m.role} delete ${d.id}`).toBe(expected ? 1 : 0);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('an owner or admin still cannot touch another organization', async () => {
    const admin = memberships.find((x) => x.role === 'admin') as Membership;
    const { rows } = await client.query<{ id: string }>(
      'select id from public.documents where org_id <> $1 limit 1',
      [admin.org_id],
    );
    const other = rows[0]?.id;
    const del = await as(
      'authenticated',
      claimsOf(admin),
      'delete from public.documents where id = $1',
      [other],
    );
    expect(del.rowCount).toBe(0);
  });

  it('ships its permissions in the migration, not the seed', async () => {
    expect(readFileSync(path.join(root, 'supabase', 'seed.sql'), 'utf8')).not.toMatch(
      /role_permissions/,
    );
    const fresh = await createTestDatabase({ template: 'blank' });
    try {
      await migrate({ url: fresh.url, dir: path.join(root, 'supabase', 'migrations') });
      const c = new pg.Client({ connectionString: fresh.url });
      await c.connect();
      try {
        const { rows } = await c.query(
          'select role, permission from rls_kit.role_permissions order by 1, 2',
        );
        expect(rows).toEqual([
          { role: 'admin', permission: 'documents.delete' },
          { role: 'admin', permission: 'documents.update' },
          { role: 'owner', permission: 'documents.delete' },
          { role: 'owner', permission: 'documents.update' },
        ]);
      } finally {
        await c.end();
      }
    } finally {
      await fresh.drop();
    }
  });
});
