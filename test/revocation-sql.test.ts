import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUserPg } from '../src/db/as-user-pg.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/*
 * The revocation SQL (issue 4, items 1 and 6) on the example app: the guard
 * rls_kit.is_token_active() behind rls_kit.protect(), the revoking functions,
 * token_status, pre_request, purge_expired, the NOTIFY batches, the
 * auth.users and membership triggers, privileges, bad input and idempotency.
 * Requests run through the kit's as-user API, as an application would.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const revocationFile = path.join(root, 'migrations', '20250101000002_rls_kit_revocation.sql');

const ACME = 'a0000000-0000-4000-8000-000000000001';
const ACME_DOCS = 36;
const CHANNEL = 'rls_kit_revocations';

let db: TestDatabase;
/** The test's superuser pool (owner of everything, like a migration runner). */
let admin: pg.Pool;
/** Pool for the kit's as-user API. */
let pool: pg.Pool;

interface User {
  id: string;
  org: string;
  role: string;
}

type Claims = Record<string, unknown>;

/** The database's clock in whole seconds (cut-offs come from it, not from Node's). */
async function dbNow(): Promise<number> {
  const { rows } = await admin.query<{ s: string }>(
    `select extract(epoch from date_trunc('second', now()))::bigint::text as s`,
  );
  return Number(rows[0]?.s);
}

/** A fresh user (auth.users row) who is a member of Acme, so tests never share a subject. */
async function newUser(role = 'member'): Promise<User> {
  const id = randomUUID();
  await admin.query('insert into auth.users (id, email) values ($1, $2)', [
    id,
    `${id}@test.example`,
  ]);
  await admin.query('insert into public.memberships (org_id, user_id, role) values ($1, $2, $3)', [
    ACME,
    id,
    role,
  ]);
  return { id, org: ACME, role };
}

/** A session row as Supabase Auth writes it. */
async function newSession(user: User): Promise<string> {
  const id = randomUUID();
  await admin.query(
    'insert into auth.sessions (id, user_id, created_at, updated_at) values ($1, $2, now(), now())',
    [id, user.id],
  );
  return id;
}

/** Claims of an access token of `user`, issued a minute ago. */
async function tokenOf(user: User, extra: Claims = {}): Promise<Claims> {
  const now = await dbNow();
  return {
    sub: user.id,
    role: 'authenticated',
    org_id: user.org,
    user_role: user.role,
    iat: now - 60,
    exp: now + 600,
    jti: randomBytes(16).toString('base64url'),
    ...extra,
  };
}

/** How many Acme documents the token sees (through the kit's as-user API). */
async function visibleDocs(claims: Claims): Promise<number> {
  return asUserPg(pool, claims, async (c) => {
    const { rows } = await c.query<{ n: string }>(
      'select count(*)::text as n from public.documents',
    );
    return Number(rows[0]?.n);
  });
}

/** Tries to insert a document as the token's user; rolls back; returns the SQLSTATE or 'ok'. */
async function tryInsert(claims: Claims): Promise<string> {
  const marker = new Error('rollback');
  try {
    await asUserPg(pool, claims, async (c) => {
      try {
        await c.query(
          `insert into public.documents (org_id, owner_id, title) values ($1, $2, 'probe')`,
          [claims.org_id, claims.sub],
        );
      } catch (err) {
        throw Object.assign(marker, { code: (err as { code?: string }).code });
      }
      throw Object.assign(marker, { code: 'ok' });
    });
  } catch (err) {
    if (err === marker) return (marker as Error & { code: string }).code;
    throw err;
  }
  throw new Error('unreachable');
}

/** Runs `sql` on a dedicated connection as `role` with `claims`, in a rolled-back transaction. */
async function asRole<T extends pg.QueryResultRow>(
  role: string,
  claims: Claims | null,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = await admin.connect();
  try {
    await client.query('begin');
    await client.query(
      `select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`,
      [role, claims === null ? '' : JSON.stringify(claims)],
    );
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.query('rollback');
    client.release();
  }
}

async function sqlstate(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/** Every row of the three revocation tables, for "nothing changed" checks. */
async function revocationState(): Promise<string> {
  const { rows } = await admin.query<{ s: string }>(
    `select concat_ws(' | ',
       (select string_agg(jti || ',' || expires_at::text, ';' order by jti) from rls_kit.revoked_tokens),
       (select string_agg(sub::text || ',' || not_before::text, ';' order by sub) from rls_kit.subject_revocations),
       (select string_agg(session_id::text || ',' || expires_at::text, ';' order by session_id) from rls_kit.revoked_sessions)
     ) as s`,
  );
  return rows[0]?.s ?? '';
}

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  admin = new pg.Pool({ connectionString: db.url, max: 4 });
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
});

afterAll(async () => {
  await pool?.end();
  await admin?.end();
  await db?.drop();
});

describe('the guard on the example tables', () => {
  it('is one RESTRICTIVE policy FOR ALL TO authenticated per table, and protect() is idempotent', async () => {
    await admin.query(`select rls_kit.protect('public.documents')`);
    await admin.query(`select rls_kit.protect('public.documents')`);
    const { rows } = await admin.query<{
      tbl: string;
      n: number;
      permissive: string;
      cmd: string;
      roles: string[];
      qual: string;
      with_check: string | null;
    }>(
      `select tablename as tbl, count(*) over (partition by tablename)::int as n, permissive, cmd,
              roles::text[] as roles, qual, with_check
         from pg_policies where policyname = 'rls_kit_token_active' order by tablename`,
    );
    expect(rows.map((r) => r.tbl)).toEqual(['documents', 'memberships', 'organizations']);
    for (const r of rows) {
      expect(r).toMatchObject({
        n: 1,
        permissive: 'RESTRICTIVE',
        cmd: 'ALL',
        roles: ['authenticated'],
        with_check: null,
      });
      expect(r.qual).toBe('( SELECT rls_kit.is_token_active() AS is_token_active)');
    }
  });

  it('protect() replaces a policy of that name in another shape, and refuses tables without RLS', async () => {
    const client = await admin.connect();
    try {
      await client.query('begin');
      await client.query(`drop policy rls_kit_token_active on public.documents`);
      await client.query(
        `create policy rls_kit_token_active on public.documents as permissive for select to public using (true)`,
      );
      await client.query(`select rls_kit.protect('public.documents')`);
      const { rows } = await client.query(
        `select permissive, cmd, roles::text[] as roles from pg_policies
          where tablename = 'documents' and policyname = 'rls_kit_token_active'`,
      );
      expect(rows).toEqual([{ permissive: 'RESTRICTIVE', cmd: 'ALL', roles: ['authenticated'] }]);
      await client.query('create table public.no_rls (id int)');
      await client.query('savepoint s');
      await expect(client.query(`select rls_kit.protect('public.no_rls')`)).rejects.toMatchObject({
        code: '55000',
        message: expect.stringContaining('row level security is not enabled'),
      });
      await client.query('rollback to savepoint s');
      await expect(client.query('select rls_kit.protect(null)')).rejects.toMatchObject({
        code: '22023',
      });
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  it('runs once per statement as an InitPlan, never in the per-row filter, and keeps the index', async () => {
    const user = await newUser();
    const claims = await tokenOf(user);
    const client = await admin.connect();
    try {
      await client.query('begin');
      // With few seed rows the planner would scan anyway; forbid that so the
      // plan shows whether the tenant condition can still use the index.
      await client.query('set local enable_seqscan = off');
      await client.query(
        `select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)`,
        [JSON.stringify(claims)],
      );
      for (const sql of [
        'select id, title from public.documents order by created_at desc limit 50',
        'select count(*) from public.documents',
      ]) {
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(
          `explain (analyze, verbose, costs off, timing off, summary off) ${sql}`,
        );
        const plan = rows.map((r) => r['QUERY PLAN']);
        const text = plan.join('\n');
        expect(text, text).toMatch(/InitPlan \d+/);
        expect(text, text).toMatch(
          /(Index (Only )?Scan using|Bitmap Index Scan on) documents_org_id_created_at_idx/,
        );
        // The parameter is `$n` up to PostgreSQL 16, `(InitPlan n).col1` from 17.
        expect(text, text).toMatch(
          /Index Cond: \(documents\.org_id = (\$\d+|\(InitPlan \d+\)\.col1)\)/,
        );
        expect(text, text).not.toMatch(/Seq Scan on public\.documents/);
        // The function appears once, as the output of an InitPlan's Result
        // node that ran once; filters reference only its parameter.
        const calls = plan.filter((l) => l.includes('is_token_active'));
        expect(calls, text).toHaveLength(1);
        const at = plan.findIndex((l) => l.includes('is_token_active'));
        expect(plan[at - 1], text).toMatch(/Result \(actual rows=1 loops=1\)/);
        for (const line of plan.filter((l) => l.includes('Filter:'))) {
          expect(line).not.toContain('is_token_active');
        }
      }
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});

describe('a revocation is seen by RLS in the next statement after commit', () => {
  it('revoke_token: reads go empty and writes are refused', async () => {
    const user = await newUser();
    const claims = await tokenOf(user);
    const other = await tokenOf(user);
    expect(await visibleDocs(claims)).toBe(ACME_DOCS);
    expect(await tryInsert(claims)).toBe('ok');

    await admin.query('select rls_kit.revoke_token($1, to_timestamp($2), $3, $4)', [
      claims.jti,
      claims.exp,
      'test',
      user.id,
    ]);
    expect(await visibleDocs(claims)).toBe(0);
    expect(await tryInsert(claims)).toBe('42501');
    // Another token of the same user is untouched.
    expect(await visibleDocs(other)).toBe(ACME_DOCS);
  });

  it('inside an open transaction, the next statement already sees it', async () => {
    const user = await newUser();
    const claims = await tokenOf(user);
    const seen = await asUserPg(pool, claims, async (c) => {
      const count = async () =>
        Number(
          (await c.query<{ n: string }>('select count(*)::text as n from public.documents')).rows[0]
            ?.n,
        );
      const before = await count();
      await admin.query('select rls_kit.revoke_token($1, to_timestamp($2))', [
        claims.jti,
        claims.exp,
      ]);
      return [before, await count()];
    });
    expect(seen).toEqual([ACME_DOCS, 0]);
  });

  it('revoke_subject: tokens issued up to the cut-off die, one issued in a later second lives', async () => {
    const user = await newUser();
    const old = await tokenOf(user);
    expect(await visibleDocs(old)).toBe(ACME_DOCS);
    const { rows } = await admin.query<{ cutoff: string }>(
      `select extract(epoch from rls_kit.revoke_subject($1, 'test'))::bigint::text as cutoff`,
      [user.id],
    );
    const cutoff = Number(rows[0]?.cutoff);
    expect(cutoff).toBe(Math.floor(cutoff));
    expect(await visibleDocs(old)).toBe(0);
    expect(await tryInsert(old)).toBe('42501');
    // Minted in the cut-off's own second: dead too (iat <= cut-off).
    expect(await visibleDocs({ ...old, jti: 'same-second', iat: cutoff })).toBe(0);
    // Minted in the next second (after the revocation): alive.
    expect(await visibleDocs({ ...old, jti: 'next-second', iat: cutoff + 1 })).toBe(ACME_DOCS);
    // A fractional iat counts by its whole second.
    expect(await visibleDocs({ ...old, jti: 'fraction', iat: cutoff + 0.5 })).toBe(0);
  });

  it('revoke_session: tokens of that session (session_id or sid) die, other sessions live', async () => {
    const user = await newUser();
    const session = await newSession(user);
    const otherSession = await newSession(user);
    const supabaseToken = await tokenOf(user, { session_id: session });
    const kitToken = await tokenOf(user, { sid: session });
    const otherToken = await tokenOf(user, { session_id: otherSession });
    for (const t of [supabaseToken, kitToken, otherToken])
      expect(await visibleDocs(t)).toBe(ACME_DOCS);

    await admin.query(`select rls_kit.revoke_session($1, 'signed out')`, [session]);
    expect(await visibleDocs(supabaseToken)).toBe(0);
    expect(await visibleDocs(kitToken)).toBe(0);
    expect(await tryInsert(supabaseToken)).toBe('42501');
    expect(await visibleDocs(otherToken)).toBe(ACME_DOCS);
    // Supabase's session row is gone, so it cannot refresh either.
    const left = await admin.query('select id from auth.sessions where user_id = $1', [user.id]);
    expect(left.rows).toEqual([{ id: otherSession }]);
    const recorded = await admin.query(
      'select sub, reason from rls_kit.revoked_sessions where session_id = $1',
      [session],
    );
    expect(recorded.rows).toEqual([{ sub: user.id, reason: 'signed out' }]);
    // Idempotent.
    await admin.query('select rls_kit.revoke_session($1)', [session]);
  });

  it("revoke_session of a kit refresh family records the family's subject", async () => {
    const user = await newUser();
    const family = randomUUID();
    // A refresh family as the refresh-token migration stores it (hashes only).
    await admin.query(
      `insert into rls_kit.refresh_tokens (hash, family, sub, expires_at, idle_expires_at)
       values ($1, $2, $3, now() + interval '30 days', now() + interval '7 days')`,
      [randomBytes(32), family, user.id],
    );
    const kitToken = await tokenOf(user, { sid: family });
    expect(await visibleDocs(kitToken)).toBe(ACME_DOCS);
    await admin.query(`select rls_kit.revoke_session($1, 'signed out')`, [family]);
    expect(await visibleDocs(kitToken)).toBe(0);
    const recorded = await admin.query(
      'select sub, reason from rls_kit.revoked_sessions where session_id = $1',
      [family],
    );
    expect(recorded.rows).toEqual([{ sub: user.id, reason: 'signed out' }]);
    // The family can no longer refresh.
    const live = await admin.query(
      'select 1 from rls_kit.refresh_tokens where family = $1 and revoked_at is null',
      [family],
    );
    expect(live.rowCount).toBe(0);
    // A session nobody knows is still ended, without a subject.
    const unknown = randomUUID();
    await admin.query('select rls_kit.revoke_session($1)', [unknown]);
    const { rows } = await admin.query(
      'select sub from rls_kit.revoked_sessions where session_id = $1',
      [unknown],
    );
    expect(rows).toEqual([{ sub: null }]);
  });

  it('revoke_subject ends the sessions (recording them), unless end_sessions => false', async () => {
    const kept = await newUser();
    const keptSession = await newSession(kept);
    await admin.query('select rls_kit.revoke_subject($1, null, false)', [kept.id]);
    expect(
      (await admin.query('select 1 from auth.sessions where id = $1', [keptSession])).rowCount,
    ).toBe(1);

    const ended = await newUser();
    const s1 = await newSession(ended);
    const s2 = await newSession(ended);
    await admin.query(`select rls_kit.revoke_subject($1, 'compromised')`, [ended.id]);
    expect(
      (await admin.query('select 1 from auth.sessions where user_id = $1', [ended.id])).rowCount,
    ).toBe(0);
    const { rows } = await admin.query<{ session_id: string }>(
      'select session_id from rls_kit.revoked_sessions where sub = $1 order by 1',
      [ended.id],
    );
    expect(rows.map((r) => r.session_id)).toEqual([s1, s2].sort());
  });

  it('revoke_subject and revoke_session end kit refresh families through the replaceable hook', async () => {
    const user = await newUser();
    const family = randomUUID();
    const client = await admin.connect();
    try {
      await client.query('begin');
      // What the refresh-token migration does: replace the no-op hook.
      await client.query(`
        create or replace function rls_kit.end_refresh_families(sub uuid, family uuid)
        returns setof uuid language sql volatile set search_path = '' as $$
          select '${family}'::uuid where sub = '${user.id}' or family = '${family}'
        $$`);
      await client.query('select rls_kit.revoke_subject($1)', [user.id]);
      const { rows } = await client.query(
        'select sub from rls_kit.revoked_sessions where session_id = $1',
        [family],
      );
      expect(rows).toEqual([{ sub: user.id }]);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});

describe('tokens the guard refuses without any revocation', () => {
  it('missing sub or iat (or the wrong JSON types) is inactive; a malformed uuid raises 22P02', async () => {
    const user = await newUser();
    const good = await tokenOf(user);
    expect(await visibleDocs(good)).toBe(ACME_DOCS);
    const { sub: _sub, ...noSub } = good;
    const { iat: _iat, ...noIat } = good;
    for (const claims of [noSub, noIat, { ...good, iat: String(good.iat) }, { ...good, sub: 42 }]) {
      expect(await visibleDocs(claims), JSON.stringify(claims)).toBe(0);
      const active = await asRole<{ a: boolean }>(
        'authenticated',
        claims,
        'select rls_kit.is_token_active() as a',
      );
      expect(active).toEqual([{ a: false }]);
    }
    for (const claims of [
      { ...good, sub: 'not-a-uuid' },
      { ...good, session_id: 'not-a-uuid' },
      { ...good, sid: 'x' },
    ]) {
      expect(
        await sqlstate(asRole('authenticated', claims, 'select rls_kit.is_token_active()')),
      ).toBe('22P02');
    }
    // No token at all.
    expect(await asRole('authenticated', null, 'select rls_kit.is_token_active() as a')).toEqual([
      { a: false },
    ]);
  });
});

describe('token_status (service_role and the server only)', () => {
  it('gives the verdict with its reason', async () => {
    const user = await newUser();
    const session = await newSession(user);
    const live = await tokenOf(user, { session_id: session });
    const status = async (claims: unknown) =>
      (
        await asRole<{ s: unknown }>('service_role', null, 'select rls_kit.token_status($1) as s', [
          claims === null ? null : JSON.stringify(claims),
        ])
      )[0]?.s;
    expect(await status(live)).toEqual({ active: true, reason: null });
    expect(await status(null)).toEqual({ active: false, reason: 'no_claims' });
    expect(await status({ ...live, sub: undefined })).toEqual({
      active: false,
      reason: 'missing_sub',
    });
    expect(await status({ ...live, sub: 'nope' })).toEqual({
      active: false,
      reason: 'malformed_sub',
    });
    expect(await status({ ...live, iat: undefined })).toEqual({
      active: false,
      reason: 'missing_iat',
    });
    expect(await status({ ...live, session_id: 'x' })).toEqual({
      active: false,
      reason: 'malformed_session_id',
    });
    expect(await status({ ...live, sid: 7 })).toEqual({ active: false, reason: 'malformed_sid' });

    await admin.query('select rls_kit.revoke_token($1, to_timestamp($2))', [live.jti, live.exp]);
    expect(await status(live)).toEqual({ active: false, reason: 'token_revoked' });
    const fresh = { ...live, jti: 'fresh' };
    expect(await status(fresh)).toEqual({ active: true, reason: null });
    await admin.query('select rls_kit.revoke_session($1)', [session]);
    expect(await status(fresh)).toEqual({ active: false, reason: 'session_revoked' });
    await admin.query('select rls_kit.revoke_subject($1)', [user.id]);
    expect(await status({ ...fresh, session_id: undefined })).toEqual({
      active: false,
      reason: 'subject_revoked',
    });
  });
});

describe('API roles cannot read or probe the revocation state', () => {
  const tables = [
    'rls_kit.revoked_tokens',
    'rls_kit.subject_revocations',
    'rls_kit.revoked_sessions',
  ];

  it('get permission denied (42501) on the tables themselves, not an empty result', async () => {
    const user = await newUser();
    const claims = await tokenOf(user);
    for (const role of ['anon', 'authenticated']) {
      for (const table of tables) {
        expect(
          await sqlstate(asRole(role, claims, `select * from ${table}`)),
          `${role} ${table}`,
        ).toBe('42501');
        expect(
          await sqlstate(asRole(role, claims, `delete from ${table}`)),
          `${role} delete ${table}`,
        ).toBe('42501');
        const { rows } = await admin.query<{ any: boolean }>(
          `select has_table_privilege($1, $2, 'select,insert,update,delete,truncate,references,trigger') as any`,
          [role, table],
        );
        expect(rows[0]?.any, `${role} ${table}`).toBe(false);
      }
    }
  });

  it('cannot call token_status, the revoking functions, purge or protect; may call is_token_active and pre_request', async () => {
    const user = await newUser();
    const claims = await tokenOf(user);
    const forbidden = [
      [`select rls_kit.token_status('{"sub":"${user.id}","iat":1}')`],
      [`select rls_kit.revoke_token('x', now() + interval '1 hour')`],
      [`select rls_kit.revoke_subject('${user.id}')`],
      [`select rls_kit.revoke_subjects(array['${user.id}'::uuid])`],
      [`select rls_kit.revoke_session('${randomUUID()}')`],
      [`select rls_kit.end_exchanged_families(array['${randomUUID()}'::uuid], 'x')`],
      ['select rls_kit.purge_expired()'],
      [`select rls_kit.protect('public.documents')`],
    ];
    for (const role of ['anon', 'authenticated']) {
      for (const [sql] of forbidden) {
        expect(await sqlstate(asRole(role, claims, sql as string)), `${role}: ${sql}`).toBe(
          '42501',
        );
      }
      expect(await asRole(role, claims, 'select rls_kit.is_token_active() as a')).toEqual([
        { a: true },
      ]);
      expect(await sqlstate(asRole(role, claims, 'select rls_kit.pre_request()'))).toBeUndefined();
    }
    // service_role revokes.
    expect(
      await sqlstate(
        asRole('service_role', null, `select rls_kit.revoke_subject('${randomUUID()}')`),
      ),
    ).toBeUndefined();
    // Nothing else in rls_kit is executable by PUBLIC.
    const { rows } = await admin.query<{ fn: string }>(
      `select p.oid::regprocedure::text as fn from pg_proc p
        where p.pronamespace = 'rls_kit'::regnamespace
          and exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                      where a.grantee = 0 and a.privilege_type = 'EXECUTE')`,
    );
    expect(rows).toEqual([]);
  });
});

describe('pre_request (PostgREST db_pre_request)', () => {
  it('answers 401 through a PGRST error for a revoked token, passes live tokens and API keys', async () => {
    const user = await newUser();
    const claims = await tokenOf(user);
    expect(await sqlstate(asRole('authenticated', claims, 'select rls_kit.pre_request()'))).toBe(
      undefined,
    );
    expect(
      await sqlstate(
        asRole('anon', { role: 'anon', iss: 'supabase' }, 'select rls_kit.pre_request()'),
      ),
    ).toBe(undefined);
    expect(
      await sqlstate(
        asRole('service_role', { role: 'service_role' }, 'select rls_kit.pre_request()'),
      ),
    ).toBe(undefined);
    expect(await sqlstate(asRole('anon', null, 'select rls_kit.pre_request()'))).toBe(undefined);

    await admin.query('select rls_kit.revoke_token($1, to_timestamp($2))', [
      claims.jti,
      claims.exp,
    ]);
    const err = await asRole('authenticated', claims, 'select rls_kit.pre_request()').then(
      () => undefined,
      (e: pg.DatabaseError) => e,
    );
    expect(err?.code).toBe('PGRST');
    expect(JSON.parse(err?.message ?? '')).toMatchObject({
      code: 'PGRST301',
      message: 'JWT revoked',
    });
    expect(JSON.parse(err?.detail ?? '')).toEqual({
      status: 401,
      headers: {
        'WWW-Authenticate': 'Bearer error="invalid_token", error_description="JWT revoked"',
      },
    });
    // A token of role authenticated without sub is refused too.
    const { sub: _sub, ...noSub } = claims;
    expect(
      await sqlstate(
        asRole('authenticated', { ...noSub, jti: 'other' }, 'select rls_kit.pre_request()'),
      ),
    ).toBe('PGRST');
  });

  it('lets the rest of the request reuse its verdict, for exactly these claims in this transaction', async () => {
    const user = await newUser();
    const claims = await tokenOf(user);
    const client = await admin.connect();
    const setClaims = (c: Claims) =>
      client.query(`select set_config('request.jwt.claims', $1, true)`, [JSON.stringify(c)]);
    const active = async () =>
      (await client.query<{ a: boolean }>('select rls_kit.is_token_active() as a')).rows[0]?.a;
    try {
      await client.query('begin');
      await client.query(`select set_config('role', 'authenticated', true)`);
      await setClaims(claims);
      await client.query('select rls_kit.pre_request()');
      // Revoked by someone else after the request started: the request was
      // authorized at its start and finishes with that verdict ...
      await admin.query('select rls_kit.revoke_token($1, to_timestamp($2))', [
        claims.jti,
        claims.exp,
      ]);
      expect(await active()).toBe(true);
      // ... but other claims in the same transaction get the full check,
      await setClaims({ ...claims, user_role: 'admin' });
      expect(await active()).toBe(false);
      // and a memo that does not match this transaction is worthless.
      await setClaims(claims);
      await client.query(`select set_config('rls_kit.pre_request_active', $1, true)`, [
        `2000-01-01 00:00:00+00 ${JSON.stringify(claims)}`,
      ]);
      expect(await active()).toBe(false);
    } finally {
      await client.query('rollback');
      client.release();
    }
    // The next request (transaction) sees the revocation.
    expect(await visibleDocs(claims)).toBe(0);
  });
});

describe('bad input: a clear error and nothing changed', () => {
  it('revoke_token refuses an expiry in the past, a missing or over-long jti, a malformed uuid', async () => {
    const before = await revocationState();
    const cases: [string, unknown[], string, RegExp][] = [
      [
        'select rls_kit.revoke_token($1, $2)',
        ['j1', new Date(Date.now() - 1000)],
        '22023',
        /expires_at .* is not in the future/,
      ],
      [
        'select rls_kit.revoke_token($1, $2)',
        [null, new Date(Date.now() + 60_000)],
        '22023',
        /jti must be/,
      ],
      [
        'select rls_kit.revoke_token($1, $2)',
        ['', new Date(Date.now() + 60_000)],
        '22023',
        /jti must be/,
      ],
      [
        'select rls_kit.revoke_token($1, $2)',
        ['x'.repeat(256), new Date(Date.now() + 60_000)],
        '22023',
        /256 characters long/,
      ],
      ['select rls_kit.revoke_token($1, $2)', ['j2', null], '22023', /expires_at must be given/],
      [
        'select rls_kit.revoke_token($1, $2, null, $3)',
        ['j3', new Date(Date.now() + 60_000), 'not-a-uuid'],
        '22P02',
        /invalid input syntax for type uuid/,
      ],
      ['select rls_kit.revoke_subject($1)', [null], '22023', /sub must be a uuid/],
      ['select rls_kit.revoke_subject($1)', ['b0000000'], '22P02', /uuid/],
      ['select rls_kit.revoke_subjects($1)', [[randomUUID(), null]], '22023', /every sub/],
      ['select rls_kit.revoke_subject($1, null, null)', [randomUUID()], '22023', /end_sessions/],
      ['select rls_kit.revoke_session($1)', [null], '22023', /session_id must be a uuid/],
      ['select rls_kit.revoke_session($1)', ['zzz'], '22P02', /uuid/],
    ];
    for (const [sql, params, code, message] of cases) {
      const err = await admin.query(sql, params).then(
        () => undefined,
        (e: pg.DatabaseError) => e,
      );
      expect(err?.code, `${sql} ${JSON.stringify(params)}`).toBe(code);
      expect(err?.message).toMatch(message);
    }
    expect(await revocationState()).toBe(before);
  });

  it('revoking the same token twice is one row, keeping the later expiry', async () => {
    const exp1 = new Date(Date.now() + 3_600_000);
    const exp2 = new Date(Date.now() + 7_200_000);
    await admin.query('select rls_kit.revoke_token($1, $2)', ['twice', exp2]);
    await admin.query('select rls_kit.revoke_token($1, $2)', ['twice', exp1]);
    await admin.query('select rls_kit.revoke_token($1, $2)', ['twice', exp2]);
    const { rows } = await admin.query<{ expires_at: Date }>(
      `select expires_at from rls_kit.revoked_tokens where jti = 'twice'`,
    );
    expect(rows.map((r) => r.expires_at.getTime())).toEqual([exp2.getTime()]);
  });
});

describe('purge_expired', () => {
  it('removes only rows past their expiry and reports how many', async () => {
    const client = await admin.connect();
    try {
      await client.query('begin');
      await client.query(
        `insert into rls_kit.revoked_tokens (jti, expires_at) values
           ('purge-old-1', now() - interval '1 second'), ('purge-old-2', now() - interval '1 day'),
           ('purge-live', now() + interval '1 hour')`,
      );
      const oldSession = randomUUID();
      const liveSession = randomUUID();
      await client.query(
        `insert into rls_kit.revoked_sessions (session_id, expires_at) values
           ($1, now() - interval '1 minute'), ($2, now() + interval '1 day')`,
        [oldSession, liveSession],
      );
      const before = await client.query<{ n: string }>(
        `select (select count(*) from rls_kit.revoked_tokens where expires_at <= now())
              + (select count(*) from rls_kit.revoked_sessions where expires_at <= now()) as n`,
      );
      const { rows } = await client.query<{ n: string }>('select rls_kit.purge_expired() as n');
      expect(Number(rows[0]?.n)).toBe(Number(before.rows[0]?.n));
      expect(Number(rows[0]?.n)).toBeGreaterThanOrEqual(3);
      const left = await client.query(
        `select jti from rls_kit.revoked_tokens where jti like 'purge-%'
         union all select session_id::text from rls_kit.revoked_sessions where session_id in ($1, $2)`,
        [oldSession, liveSession],
      );
      expect(left.rows.map((r) => Object.values(r)[0]).sort()).toEqual(
        ['purge-live', liveSession].sort(),
      );
      const expired = await client.query(
        `select 1 from rls_kit.revoked_tokens where expires_at <= now()
         union all select 1 from rls_kit.revoked_sessions where expires_at <= now()`,
      );
      expect(expired.rowCount).toBe(0);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});

describe('NOTIFY rls_kit_revocations', () => {
  /** Listens on the channel while `work` runs; returns the payloads that arrived within `ms` after. */
  async function collect(work: () => Promise<void>, until: (p: string[]) => boolean) {
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const payloads: string[] = [];
    listener.on('notification', (m) => {
      if (m.channel === CHANNEL && m.payload !== undefined) payloads.push(m.payload);
    });
    try {
      await listener.query(`listen ${CHANNEL}`);
      await work();
      const deadline = Date.now() + 10_000;
      while (!until(payloads) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      // A little longer, to catch anything unexpected after the last awaited one.
      await new Promise((r) => setTimeout(r, 100));
      return payloads;
    } finally {
      await listener.end();
    }
  }

  it('carries 10,000 revocations of one transaction in payloads below 8000 bytes each', async () => {
    const tag = randomBytes(4).toString('hex');
    const count = (p: string[]) =>
      p.reduce((n, s) => n + (JSON.parse(s).t === 'jti' ? JSON.parse(s).v.length : 0), 0);
    const payloads = await collect(
      async () => {
        await admin.query(
          `insert into rls_kit.revoked_tokens (jti, expires_at, reason)
           select 'bulk-${tag}-' || g, timestamptz '2100-01-01 00:00:00.25+00', 'bulk'
           from generate_series(1, 10000) g`,
        );
      },
      (p) => count(p) >= 10_000,
    );
    expect(payloads.length).toBeGreaterThan(1);
    const jtis = new Set<string>();
    for (const p of payloads) {
      expect(Buffer.byteLength(p, 'utf8')).toBeLessThan(8000);
      const msg = JSON.parse(p) as { t: string; op: string; v: [string, number][] };
      expect(msg).toMatchObject({ t: 'jti', op: '+' });
      for (const [jti, exp] of msg.v) {
        jtis.add(jti);
        // 2100-01-01 00:00:00.25 rounded up to the next whole second.
        expect(exp).toBe(4102444801);
      }
    }
    expect(jtis.size).toBe(10_000);
    for (let g = 1; g <= 10_000; g++) expect(jtis.has(`bulk-${tag}-${g}`)).toBe(true);
    // Large batches are packed, not sent one row at a time.
    expect(payloads.length).toBeLessThan(100);
  });

  it('announces subjects, sessions, deletions and truncation in the documented shapes', async () => {
    const user = await newUser();
    const session = randomUUID();
    const cutoff = await dbNow();
    const payloads = await collect(
      async () => {
        await admin.query('select rls_kit.revoke_subject($1, null, false)', [user.id]);
        await admin.query('select rls_kit.revoke_session($1)', [session]);
        await admin.query(
          `insert into rls_kit.revoked_tokens (jti, expires_at) values ('gone-"quoted"', now() - interval '1 second')`,
        );
        await admin.query('select rls_kit.purge_expired()');
        const client = await admin.connect();
        try {
          // TRUNCATE in a rolled-back transaction sends nothing; commit one on an empty copy instead.
          await client.query('begin');
          await client.query('truncate rls_kit.revoked_sessions');
          await client.query('rollback');
        } finally {
          client.release();
        }
      },
      (p) => p.some((s) => JSON.parse(s).op === '-'),
    );
    const msgs = payloads.map((p) => JSON.parse(p));
    const sub = msgs.find((m) => m.t === 'sub');
    expect(sub.op).toBe('+');
    expect(sub.v).toHaveLength(1);
    expect(sub.v[0][0]).toBe(user.id);
    expect(sub.v[0][1]).toBeGreaterThanOrEqual(cutoff);
    expect(sub.v[0][1]).toBeLessThanOrEqual(cutoff + 5);
    const sid = msgs.find((m) => m.t === 'sid');
    expect(sid).toMatchObject({ op: '+', v: [[session, expect.any(Number)]] });
    expect(sid.v[0][1]).toBeGreaterThan(cutoff + 6 * 86400);
    expect(msgs).toContainEqual({ t: 'jti', op: '+', v: [['gone-"quoted"', expect.any(Number)]] });
    const removed = msgs.filter((m) => m.t === 'jti' && m.op === '-');
    expect(removed.flatMap((m) => m.v)).toContain('gone-"quoted"');
    // The rolled-back TRUNCATE announced nothing.
    expect(msgs.filter((m) => m.op === '*')).toEqual([]);
    // Raw shape: compact, no spaces between members.
    expect(payloads.find((p) => p.includes('"t":"sub"'))).toMatch(
      /^\{"t":"sub","op":"\+","v":\[\["/,
    );
  });

  it('announces a committed TRUNCATE as op "*"', async () => {
    const client = await admin.connect();
    try {
      await client.query('begin');
      // Work on a snapshot of the table so the rest of the file keeps its rows.
      await client.query('create temp table keep as select * from rls_kit.revoked_sessions');
      await client.query('commit');
      const payloads = await collect(
        async () => {
          await client.query('truncate rls_kit.revoked_sessions');
        },
        (p) => p.some((s) => JSON.parse(s).op === '*'),
      );
      expect(payloads.map((p) => JSON.parse(p))).toContainEqual({ t: 'sid', op: '*' });
      await client.query('insert into rls_kit.revoked_sessions select * from keep');
    } finally {
      client.release();
    }
  });
});

describe('Supabase Auth triggers on auth.users and auth.sessions (its column names, run as supabase_auth_admin)', () => {
  // On Supabase, Supabase Auth's role owns its tables (so row level security,
  // enabled there without policies, does not hide rows from it). The compat
  // schema leaves them to the migration runner; hand them over as Supabase has them.
  beforeAll(async () => {
    await admin.query('alter table auth.users owner to supabase_auth_admin');
    await admin.query('alter table auth.sessions owner to supabase_auth_admin');
  });

  /** Runs `sql` as supabase_auth_admin, as Supabase Auth would. */
  async function asAuthAdmin(sql: string, params: unknown[]): Promise<void> {
    const client = await admin.connect();
    try {
      await client.query('begin');
      await client.query('set local role supabase_auth_admin');
      await client.query(sql, params);
      await client.query('commit');
    } catch (err) {
      await client.query('rollback');
      throw err;
    } finally {
      client.release();
    }
  }
  const cutoffOf = async (id: string) =>
    (
      await admin.query<{ reason: string }>(
        'select reason from rls_kit.subject_revocations where sub = $1',
        [id],
      )
    ).rows[0]?.reason;

  it('a changed encrypted_password revokes the user and ends their sessions', async () => {
    const user = await newUser();
    await newSession(user);
    const claims = await tokenOf(user);
    expect(await visibleDocs(claims)).toBe(ACME_DOCS);
    await asAuthAdmin(`update auth.users set encrypted_password = '$2a$10$new' where id = $1`, [
      user.id,
    ]);
    expect(await cutoffOf(user.id)).toBe('auth.users: password changed');
    expect(await visibleDocs(claims)).toBe(0);
    expect(
      (await admin.query('select 1 from auth.sessions where user_id = $1', [user.id])).rowCount,
    ).toBe(0);
  });

  it('a ban into the future revokes; one in the past, or an unrelated update, does not', async () => {
    const past = await newUser();
    await asAuthAdmin(
      `update auth.users set banned_until = now() - interval '1 day', last_sign_in_at = now() where id = $1`,
      [past.id],
    );
    await asAuthAdmin(`update auth.users set raw_user_meta_data = '{"a":1}' where id = $1`, [
      past.id,
    ]);
    expect(await cutoffOf(past.id)).toBeUndefined();
    const claims = await tokenOf(past);
    expect(await visibleDocs(claims)).toBe(ACME_DOCS);

    await asAuthAdmin(
      `update auth.users set banned_until = now() + interval '1 day' where id = $1`,
      [past.id],
    );
    expect(await cutoffOf(past.id)).toBe('auth.users: banned');
    expect(await visibleDocs(claims)).toBe(0);
  });

  it('a soft delete (deleted_at set) revokes', async () => {
    const user = await newUser();
    await asAuthAdmin('update auth.users set deleted_at = now() where id = $1', [user.id]);
    expect(await cutoffOf(user.id)).toBe('auth.users: soft-deleted');
  });

  it("a deleted auth.sessions row (Supabase Auth's sign-out) ends that session's tokens and the kit logins exchanged from it", async () => {
    const user = await newUser();
    const signedOut = await newSession(user);
    const other = await newSession(user);
    const family = randomUUID();
    // A kit login exchanged from the Supabase session, as the token service stores it.
    await admin.query(
      `insert into rls_kit.refresh_tokens (hash, family, sub, expires_at, idle_expires_at, upstream_session)
       values ($1, $2, $3, now() + interval '30 days', now() + interval '7 days', $4)`,
      [randomBytes(32), family, user.id, signedOut],
    );
    const supabaseToken = await tokenOf(user, { session_id: signedOut });
    const kitToken = await tokenOf(user, { sid: family });
    const otherToken = await tokenOf(user, { session_id: other });
    for (const t of [supabaseToken, kitToken, otherToken])
      expect(await visibleDocs(t)).toBe(ACME_DOCS);

    // GoTrue's logout (scope local): one DELETE of the session row, as supabase_auth_admin.
    await asAuthAdmin('delete from auth.sessions where id = $1', [signedOut]);

    expect(await visibleDocs(supabaseToken)).toBe(0);
    expect(await visibleDocs(kitToken)).toBe(0);
    expect(await visibleDocs(otherToken)).toBe(ACME_DOCS);
    const recorded = await admin.query(
      'select session_id, sub, reason from rls_kit.revoked_sessions where session_id = any($1) order by session_id',
      [[signedOut, family, other]],
    );
    expect(recorded.rows).toEqual(
      [
        { session_id: signedOut, sub: user.id, reason: 'auth.sessions: deleted' },
        { session_id: family, sub: user.id, reason: 'auth.sessions: deleted' },
      ].sort((a, b) => (a.session_id < b.session_id ? -1 : 1)),
    );
    const live = await admin.query(
      'select 1 from rls_kit.refresh_tokens where family = $1 and revoked_at is null',
      [family],
    );
    expect(live.rowCount).toBe(0);

    // A global sign-out deletes the rest in one statement; revoke_session keeps its own reason.
    await asAuthAdmin('delete from auth.sessions where user_id = $1', [user.id]);
    expect(await visibleDocs(otherToken)).toBe(0);
    const third = await newSession(user);
    await admin.query(`select rls_kit.revoke_session($1, 'signed out by support')`, [third]);
    const reason = await admin.query(
      'select reason from rls_kit.revoked_sessions where session_id = $1',
      [third],
    );
    expect(reason.rows).toEqual([{ reason: 'signed out by support' }]);
  });

  it('a hard delete revokes, and the cut-off outlives the row', async () => {
    const a = await newUser();
    const b = await newUser();
    const claims = await tokenOf(a);
    await asAuthAdmin('delete from auth.users where id = any($1)', [[a.id, b.id]]);
    expect(await cutoffOf(a.id)).toBe('auth.users: deleted');
    expect(await cutoffOf(b.id)).toBe('auth.users: deleted');
    expect(await visibleDocs(claims)).toBe(0);
  });
});

describe('membership triggers of the example', () => {
  it('removing a membership revokes the access tokens but keeps the sessions', async () => {
    const user = await newUser();
    const session = await newSession(user);
    const claims = await tokenOf(user, { session_id: session });
    expect(await visibleDocs(claims)).toBe(ACME_DOCS);
    await admin.query('delete from public.memberships where user_id = $1', [user.id]);
    expect(await visibleDocs(claims)).toBe(0);
    const { rows } = await admin.query(
      'select reason from rls_kit.subject_revocations where sub = $1',
      [user.id],
    );
    expect(rows).toEqual([{ reason: 'membership removed' }]);
    expect(
      (await admin.query('select 1 from auth.sessions where id = $1', [session])).rowCount,
    ).toBe(1);
    expect(
      (await admin.query('select 1 from rls_kit.revoked_sessions where session_id = $1', [session]))
        .rowCount,
    ).toBe(0);
  });

  it('changing the role revokes (sessions kept); an update that changes nothing does not', async () => {
    const same = await newUser('member');
    await admin.query(`update public.memberships set role = role where user_id = $1`, [same.id]);
    expect(
      (await admin.query('select 1 from rls_kit.subject_revocations where sub = $1', [same.id]))
        .rowCount,
    ).toBe(0);

    const user = await newUser('member');
    const session = await newSession(user);
    const claims = await tokenOf(user, { session_id: session });
    await admin.query(`update public.memberships set role = 'viewer' where user_id = $1`, [
      user.id,
    ]);
    expect(await visibleDocs(claims)).toBe(0);
    expect(
      (
        await admin.query('select reason from rls_kit.subject_revocations where sub = $1', [
          user.id,
        ])
      ).rows,
    ).toEqual([{ reason: 'membership changed' }]);
    expect(
      (await admin.query('select 1 from auth.sessions where id = $1', [session])).rowCount,
    ).toBe(1);
    // The refreshed token (next second, new claims) works.
    const cutoff = await dbNow();
    expect(
      await visibleDocs({ ...claims, jti: 'refreshed', user_role: 'viewer', iat: cutoff + 1 }),
    ).toBe(ACME_DOCS);
  });
});

describe('the kit migration applied again', () => {
  it('succeeds and leaves the catalog unchanged, keeping a replaced refresh hook', async () => {
    const snapshot = async (client: pg.PoolClient) =>
      (
        await client.query<{ line: string }>(`
          select concat_ws(' | ', kind, name, detail, acl, description) as line from (
            select 'function' as kind, p.oid::regprocedure::text as name,
                   p.proowner::regrole::text || ',' || pg_get_functiondef(p.oid) as detail,
                   p.proacl::text as acl, obj_description(p.oid, 'pg_proc') as description
              from pg_proc p where p.pronamespace = 'rls_kit'::regnamespace
            union all
            select 'relation', c.oid::regclass::text, c.relkind::text || ',' || coalesce(pg_get_indexdef(c.oid), ''),
                   c.relacl::text, obj_description(c.oid, 'pg_class')
              from pg_class c where c.relnamespace = 'rls_kit'::regnamespace
            union all
            select 'trigger', t.tgrelid::regclass::text || '.' || t.tgname, pg_get_triggerdef(t.oid),
                   null, obj_description(t.oid, 'pg_trigger')
              from pg_trigger t where not t.tgisinternal
               and t.tgrelid in (select oid from pg_class where relnamespace in
                                 ('rls_kit'::regnamespace, 'auth'::regnamespace, 'public'::regnamespace))
            union all
            select 'policy', schemaname || '.' || tablename || '.' || policyname,
                   concat_ws(',', permissive, cmd, roles::text, qual, with_check), null, null
              from pg_policies
            union all
            select 'schema', n.nspname, null, n.nspacl::text, obj_description(n.oid, 'pg_namespace')
              from pg_namespace n where n.nspname = 'rls_kit'
          ) o order by 1`)
      ).rows.map((r) => r.line);
    const sql = readFileSync(revocationFile, 'utf8');
    const client = await admin.connect();
    try {
      await client.query('begin');
      await client.query(`
        create or replace function rls_kit.end_refresh_families(sub uuid, family uuid)
        returns setof uuid language sql volatile set search_path = '' as $$ select family $$`);
      const before = await snapshot(client);
      expect(
        before.some((l) => l.startsWith('trigger | auth.users.rls_kit_revoke_on_user_update')),
      ).toBe(true);
      expect(before.some((l) => l.includes('select family'))).toBe(true);
      await client.query(sql);
      expect(await snapshot(client)).toEqual(before);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});
