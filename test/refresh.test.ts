import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUserPg } from '../src/db/as-user-pg.js';
import { isRlsKitError, type RlsKitErrorCode } from '../src/errors.js';
import { createKeyring, generateKey, publicJwks } from '../src/keys/index.js';
import {
  createRefreshTokens,
  generateRefreshToken,
  hashRefreshToken,
  type RefreshTokens,
  type RefreshTokensOptions,
} from '../src/refresh/index.js';
import {
  createMinter,
  createVerifier,
  exampleClaimSchema,
  type Minter,
  type Verifier,
} from '../src/tokens/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/*
 * Refresh tokens (issue 4, items 4 and 6) on the example app: rotation,
 * reuse detection after the grace interval, the 50-way parallel-refresh
 * race, idle and absolute lifetimes, bad tokens, the real
 * rls_kit.end_refresh_families behind revoke_subject, and privileges.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const refreshFile = path.join(root, 'migrations', '20250101000003_rls_kit_refresh_tokens.sql');
const revocationFile = path.join(root, 'migrations', '20250101000002_rls_kit_revocation.sql');

const ISS = 'https://api.example.com';
const AUD = 'authenticated';
const ACME = 'a0000000-0000-4000-8000-000000000001';

type Schema = typeof exampleClaimSchema.definitions;

let db: TestDatabase;
let admin: pg.Pool;
let minter: Minter<Schema>;
let verifier: Verifier;
const stores: RefreshTokens<Schema>[] = [];

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  admin = new pg.Pool({ connectionString: db.url, max: 8 });
  const keyring = createKeyring([await generateKey({ alg: 'ES256' })]);
  minter = await createMinter({
    keyring,
    issuer: ISS,
    audience: AUD,
    claimSchema: exampleClaimSchema,
  });
  verifier = createVerifier({
    issuer: ISS,
    audience: AUD,
    keys: { jwks: publicJwks(keyring) },
    cache: false,
  });
});

afterAll(async () => {
  for (const s of stores) await s.close();
  await admin?.end();
  await db?.drop();
});

function store(extra: Partial<RefreshTokensOptions<Schema>> = {}): RefreshTokens<Schema> {
  const s = createRefreshTokens<Schema>({ pool: admin, minter, ...extra });
  stores.push(s);
  return s;
}

/** A fresh Acme member, so no two tests share a subject. */
async function newUser(): Promise<string> {
  const id = randomUUID();
  await admin.query('insert into auth.users (id, email) values ($1, $2)', [
    id,
    `${id}@test.example`,
  ]);
  await admin.query(
    `insert into public.memberships (org_id, user_id, role) values ($1, $2, 'member')`,
    [ACME, id],
  );
  return id;
}

const claims = { org_id: ACME, user_role: 'member' } as const;

async function errorOf(p: Promise<unknown>): Promise<{ code: RlsKitErrorCode; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isRlsKitError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a rejection');
}

interface Row {
  hash: Buffer;
  parent: Buffer | null;
  used: boolean;
  revoked: boolean;
  reason: string | null;
}

async function familyRows(sid: string): Promise<Row[]> {
  const { rows } = await admin.query<Row>(
    `select hash, parent, used_at is not null as used, revoked_at is not null as revoked, reason
       from rls_kit.refresh_tokens where family = $1 order by issued_at, used_at nulls last`,
    [sid],
  );
  return rows;
}

/** Every row of the table, to prove that a refused refresh changed nothing. */
async function tableState(): Promise<string> {
  const { rows } = await admin.query<{ s: string }>(
    `select coalesce(string_agg(concat_ws('|', encode(hash, 'hex'), family, used_at, revoked_at, reason),
                                ',' order by hash), '') as s
       from rls_kit.refresh_tokens`,
  );
  return `${rows[0]?.s}/${(await admin.query('select 1 from rls_kit.revoked_sessions')).rowCount}`;
}

/** Documents the access token's user sees through the kit's as-user API (RLS + guard). */
async function visibleDocs(accessToken: string): Promise<number> {
  const verified = await verifier.verify(accessToken);
  return asUserPg(admin, { ...verified }, async (c) => {
    const { rows } = await c.query<{ n: string }>(
      'select count(*)::text as n from public.documents',
    );
    return Number(rows[0]?.n);
  });
}

async function tokenStatus(accessToken: string): Promise<{ active: boolean; reason: string }> {
  const verified = await verifier.verify(accessToken);
  const { rows } = await admin.query<{ s: { active: boolean; reason: string } }>(
    'select rls_kit.token_status($1::jsonb) as s',
    [JSON.stringify(verified)],
  );
  return rows[0]?.s as { active: boolean; reason: string };
}

describe('opaque refresh tokens', () => {
  it('are rk1_ + 256 random bits in base64url, stored only as their SHA-256', async () => {
    const t = generateRefreshToken();
    expect(t).toMatch(/^rk1_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(t.slice(4), 'base64url')).toHaveLength(32);
    expect(generateRefreshToken()).not.toBe(t);
    expect(hashRefreshToken('rk1_short')).toBeUndefined();
    expect(hashRefreshToken(`${t}=`)).toBeUndefined();

    const sub = await newUser();
    const login = await store().issue({ sub, claims });
    const { rows } = await admin.query<{ hash: Buffer; t: string }>(
      'select hash, to_jsonb(r)::text as t from rls_kit.refresh_tokens r where family = $1',
      [login.sid],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]?.hash.equals(hashRefreshToken(login.refreshToken) as Buffer)).toBe(true);
    expect(rows[0]?.t).not.toContain(login.refreshToken.slice(4));
  });
});

describe('rotation', () => {
  it('issue → refresh gives a new pair in the same family; the old token is used', async () => {
    const sub = await newUser();
    const s = store();
    const login = await s.issue({ sub, claims });
    expect(login.expiresAt.getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    const first = await verifier.verify(login.accessToken);
    expect(first.sid).toBe(login.sid);
    expect(first.sub).toBe(sub);

    const next = await s.refresh(login.refreshToken, { claims: () => claims });
    expect(next.sid).toBe(login.sid);
    expect(next.refreshToken).not.toBe(login.refreshToken);
    expect(next.accessToken).not.toBe(login.accessToken);
    expect(next.expiresAt.getTime()).toBe(login.expiresAt.getTime());
    const second = await verifier.verify(next.accessToken);
    expect(second).toMatchObject({ sub, sid: login.sid, org_id: ACME, user_role: 'member' });
    expect(second.jti).not.toBe(first.jti);
    expect(await visibleDocs(next.accessToken)).toBeGreaterThan(0);

    const rows = await familyRows(login.sid);
    expect(rows.map((r) => [r.used, r.revoked])).toEqual([
      [true, false],
      [false, false],
    ]);
    expect(rows[1]?.parent?.equals(rows[0]?.hash as Buffer)).toBe(true);
    // The child refreshes in turn.
    const third = await s.refresh(next.refreshToken);
    expect(third.sid).toBe(login.sid);
  });

  it('a resolver gets the session sub and sid and supplies fresh claims', async () => {
    const sub = await newUser();
    const s = store();
    const login = await s.issue({ sub, claims });
    const seen: unknown[] = [];
    const next = await s.refresh(login.refreshToken, {
      claims: (session) => {
        seen.push(session);
        return { org_id: ACME, user_role: 'viewer' };
      },
    });
    expect(seen).toEqual([{ sub, sid: login.sid }]);
    expect((await verifier.verify(next.accessToken)).user_role).toBe('viewer');
  });

  it('claims the minter refuses roll the refresh back: the token stays usable', async () => {
    const sub = await newUser();
    const s = store();
    const login = await s.issue({ sub, claims });
    const before = await tableState();
    const bad = await errorOf(
      s.refresh(login.refreshToken, {
        claims: { org_id: ACME, user_role: 'emperor' } as unknown as typeof claims,
      }),
    );
    expect(bad.code).toBe('ERR_TOKEN_CLAIMS');
    expect(await tableState()).toBe(before);
    expect((await s.refresh(login.refreshToken, { claims })).sid).toBe(login.sid);
  });
});

describe('reuse detection', () => {
  it('reuse after the grace interval ends the family: the latest child and its access tokens die', async () => {
    const sub = await newUser();
    const s = store({ reuseGrace: '0s' });
    const login = await s.issue({ sub, claims });
    const next = await s.refresh(login.refreshToken, { claims });
    expect(await visibleDocs(next.accessToken)).toBeGreaterThan(0);
    expect(await tokenStatus(next.accessToken)).toEqual({ active: true, reason: null });

    const reused = await errorOf(s.refresh(login.refreshToken, { claims }));
    expect(reused.code).toBe('ERR_REFRESH_REUSED');
    expect(reused.message).not.toContain(login.refreshToken);

    const rows = await familyRows(login.sid);
    expect(rows).toHaveLength(2);
    expect(rows.every((r) => r.revoked)).toBe(true);
    expect(rows.map((r) => r.reason)).toEqual(['refresh token reuse', 'refresh token reuse']);
    const { rows: ended } = await admin.query(
      'select reason from rls_kit.revoked_sessions where session_id = $1',
      [login.sid],
    );
    expect(ended).toEqual([{ reason: 'refresh token reuse' }]);

    // The thief's (or the client's) latest token is dead too…
    expect((await errorOf(s.refresh(next.refreshToken, { claims }))).code).toBe(
      'ERR_REFRESH_INVALID',
    );
    // …and so are the access tokens with that sid, in RLS.
    expect(await tokenStatus(next.accessToken)).toEqual({
      active: false,
      reason: 'session_revoked',
    });
    expect(await tokenStatus(login.accessToken)).toEqual({
      active: false,
      reason: 'session_revoked',
    });
    expect(await visibleDocs(next.accessToken)).toBe(0);
    // Another login of the same user is untouched.
    const other = await s.issue({ sub, claims });
    expect(await visibleDocs(other.accessToken)).toBeGreaterThan(0);
  });

  it('within the grace interval a used token is refused as concurrent, and nothing changes', async () => {
    const sub = await newUser();
    const s = store(); // default grace: 10s
    const login = await s.issue({ sub, claims });
    const next = await s.refresh(login.refreshToken, { claims });
    const before = await tableState();
    const again = await errorOf(s.refresh(login.refreshToken, { claims }));
    expect(again.code).toBe('ERR_REFRESH_CONCURRENT');
    expect(await tableState()).toBe(before);
    expect((await s.refresh(next.refreshToken, { claims })).sid).toBe(login.sid);
  });

  it('50 parallel refreshes of one token: exactly one succeeds and the family has one live token', async () => {
    const sub = await newUser();
    const s = store();
    const login = await s.issue({ sub, claims });
    // 30 connections: the first 30 refreshes meet in the database at once and
    // the other 20 follow while those are still settling. Not 50: the server's
    // limit (100 on a stock PostgreSQL) is shared with the test file running
    // beside this one, and running out of it would make the suite flaky.
    const racePool = new pg.Pool({ connectionString: db.url, max: 30 });
    const racers = createRefreshTokens<Schema>({ pool: racePool, minter });
    let results: PromiseSettledResult<{ refreshToken: string }>[];
    try {
      results = await Promise.allSettled(
        Array.from({ length: 50 }, () => racers.refresh(login.refreshToken, { claims })),
      );
    } finally {
      await racePool.end();
    }
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok).toHaveLength(1);
    const codes = results.flatMap((r) =>
      r.status === 'rejected' && isRlsKitError(r.reason) ? [r.reason.code] : [],
    );
    expect(codes).toEqual(Array(49).fill('ERR_REFRESH_CONCURRENT'));
    const { rows } = await admin.query<{ live: string; all: string }>(
      `select count(*) filter (where used_at is null and revoked_at is null)::text as live,
              count(*)::text as all
         from rls_kit.refresh_tokens where family = $1`,
      [login.sid],
    );
    expect(rows).toEqual([{ live: '1', all: '2' }]);
    const winner = (ok[0] as PromiseFulfilledResult<{ refreshToken: string }>).value;
    const live = await familyRows(login.sid);
    expect(
      live.find((r) => !r.used)?.hash.equals(hashRefreshToken(winner.refreshToken) as Buffer),
    ).toBe(true);
  });

  it('the database allows one live token per family even to a writer that skips the kit', async () => {
    const sub = await newUser();
    const login = await store().issue({ sub, claims });
    const err = await admin
      .query(
        `insert into rls_kit.refresh_tokens (hash, family, sub, expires_at, idle_expires_at)
         values ($1, $2, $3, now() + interval '1d', now() + interval '1h')`,
        [hashRefreshToken(generateRefreshToken()), login.sid, sub],
      )
      .then(
        () => null,
        (e: { code?: string }) => e.code,
      );
    expect(err).toBe('23505');
  });
});

describe('lifetimes', () => {
  it('an idle token expires after idleLifetime; nothing changes', async () => {
    const sub = await newUser();
    const s = store({ idleLifetime: '1s', absoluteLifetime: '1h' });
    const login = await s.issue({ sub, claims });
    const next = await s.refresh(login.refreshToken, { claims }); // within 1s
    await new Promise((r) => setTimeout(r, 1300));
    const before = await tableState();
    const err = await errorOf(s.refresh(next.refreshToken, { claims }));
    expect(err.code).toBe('ERR_REFRESH_EXPIRED');
    expect(await tableState()).toBe(before);
  });

  it('the absolute lifetime bounds the family, however often it refreshes', async () => {
    const sub = await newUser();
    const s = store({ idleLifetime: '1h', absoluteLifetime: '2s' });
    const login = await s.issue({ sub, claims });
    expect(login.expiresAt.getTime()).toBeLessThanOrEqual(Date.now() + 2500);
    let current = login.refreshToken;
    for (let i = 0; i < 3; i++) {
      const next = await s.refresh(current, { claims });
      expect(next.expiresAt.getTime()).toBe(login.expiresAt.getTime());
      current = next.refreshToken;
    }
    const { rows } = await admin.query<{ ok: boolean }>(
      `select bool_and(idle_expires_at <= expires_at) and count(distinct expires_at) = 1 as ok
         from rls_kit.refresh_tokens where family = $1`,
      [login.sid],
    );
    expect(rows).toEqual([{ ok: true }]);
    await new Promise((r) =>
      setTimeout(r, Math.max(0, login.expiresAt.getTime() - Date.now()) + 200),
    );
    const before = await tableState();
    expect((await errorOf(s.refresh(current, { claims }))).code).toBe('ERR_REFRESH_EXPIRED');
    expect(await tableState()).toBe(before);
  });
});

describe('bad input', () => {
  it('garbage and unknown tokens: ERR_REFRESH_INVALID in one line without the token, nothing changed', async () => {
    const sub = await newUser();
    const s = store();
    await s.issue({ sub, claims });
    const before = await tableState();
    const unknown = generateRefreshToken();
    for (const bad of [
      '',
      'garbage',
      `${unknown}x`,
      unknown.replace('rk1_', 'rk2_'),
      'eyJhbGciOiJIUzI1NiJ9.e30.x',
      unknown,
      null as unknown as string,
    ]) {
      const err = await errorOf(s.refresh(bad, { claims }));
      expect(err.code, String(bad)).toBe('ERR_REFRESH_INVALID');
      expect(err.message).not.toContain('\n');
      if (bad) expect(err.message).not.toContain(bad);
    }
    expect(await tableState()).toBe(before);
  });

  it("a token of another (ended) family stays refused and never touches the user's live family", async () => {
    const sub = await newUser();
    const s = store();
    const a = await s.issue({ sub, claims });
    const b = await s.issue({ sub, claims });
    await s.revokeFamily(a.sid);
    const before = await tableState();
    expect((await errorOf(s.refresh(a.refreshToken, { claims }))).code).toBe('ERR_REFRESH_INVALID');
    expect(await tableState()).toBe(before);
    expect(await tokenStatus(a.accessToken)).toEqual({ active: false, reason: 'session_revoked' });
    expect(await tokenStatus(b.accessToken)).toEqual({ active: true, reason: null });
    expect((await s.refresh(b.refreshToken, { claims })).sid).toBe(b.sid);
  });

  it('a lost database connection is an error, never a new pair', async () => {
    const sub = await newUser();
    const login = await store().issue({ sub, claims });
    const dead = createRefreshTokens<Schema>({
      url: 'postgresql://nobody:secret@127.0.0.1:1/none',
      minter,
    });
    try {
      const err = await errorOf(dead.refresh(login.refreshToken, { claims }));
      expect(err.code).toBe('ERR_DB_UNREACHABLE');
      expect(err.message).not.toContain('secret');
      expect(err.message).not.toContain(login.refreshToken);
    } finally {
      await dead.close();
    }
    // A connection killed mid-refresh, while the refresh waits for the row lock.
    const s = store();
    const holder = await admin.connect();
    try {
      await holder.query('begin');
      await holder.query('select 1 from rls_kit.refresh_tokens where hash = $1 for update', [
        hashRefreshToken(login.refreshToken),
      ]);
      const pending = errorOf(s.refresh(login.refreshToken, { claims }));
      await expect
        .poll(async () => {
          const { rows } = await admin.query<{ pid: number }>(
            `select pid from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock'
                and query like 'update rls_kit.refresh_tokens%'`,
          );
          for (const { pid } of rows) await admin.query('select pg_terminate_backend($1)', [pid]);
          return rows.length;
        })
        .toBeGreaterThan(0);
      expect((await pending).code).toBe('ERR_DB_UNREACHABLE');
    } finally {
      await holder.query('rollback');
      holder.release();
    }
    expect((await familyRows(login.sid)).map((r) => r.used)).toEqual([false]);
  });

  it('rejects bad options and a sid that is not a uuid', async () => {
    expect(() => createRefreshTokens({ minter })).toThrow(/pool or url/);
    expect(() => createRefreshTokens({ pool: admin, minter, idleLifetime: '1.5h' })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG' }),
    );
    expect(() => createRefreshTokens({ pool: admin, minter, absoluteLifetime: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG' }),
    );
    expect((await errorOf(store().revokeFamily("x'; drop table x; --"))).code).toBe('ERR_USAGE');
    expect((await errorOf(store().issue({ sub: 'not-a-uuid', claims }))).code).toBe(
      'ERR_TOKEN_CLAIMS',
    );
  });
});

describe('the database side', () => {
  it('revoke_subject ends every family of the user (the real end_refresh_families)', async () => {
    const sub = await newUser();
    const bystander = await newUser();
    const s = store();
    const a = await s.issue({ sub, claims });
    const b = await s.issue({ sub, claims });
    const c = await s.issue({ sub: bystander, claims });
    await admin.query('select rls_kit.revoke_subject($1, $2)', [sub, 'password changed']);
    for (const x of [a, b]) {
      expect((await errorOf(s.refresh(x.refreshToken, { claims }))).code).toBe(
        'ERR_REFRESH_INVALID',
      );
      expect((await familyRows(x.sid)).every((r) => r.revoked)).toBe(true);
    }
    const { rows } = await admin.query<{ session_id: string }>(
      'select session_id from rls_kit.revoked_sessions where sub = $1 order by 1',
      [sub],
    );
    expect(rows.map((r) => r.session_id)).toEqual([a.sid, b.sid].sort());
    expect((await s.refresh(c.refreshToken, { claims })).sid).toBe(c.sid);
  });

  it('revoke_session ends one family; a direct hook call returns the families it ended', async () => {
    const sub = await newUser();
    const s = store();
    const a = await s.issue({ sub, claims });
    const b = await s.issue({ sub, claims });
    await admin.query('select rls_kit.revoke_session($1)', [a.sid]);
    expect((await familyRows(a.sid)).every((r) => r.revoked)).toBe(true);
    expect((await familyRows(b.sid)).some((r) => r.revoked)).toBe(false);
    const client = await admin.connect();
    try {
      await client.query('begin');
      const { rows } = await client.query<{ f: string }>(
        'select f::text from rls_kit.end_refresh_families($1, null) as f',
        [sub],
      );
      expect(rows).toEqual([{ f: b.sid }]);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  it('anon and authenticated get permission denied; service_role may use the table', async () => {
    for (const role of ['anon', 'authenticated']) {
      const client = await admin.connect();
      try {
        await client.query('begin');
        await client.query(`set local role ${role}`);
        const err = await client.query('select count(*) from rls_kit.refresh_tokens').then(
          () => 'ok',
          (e: { code?: string }) => e.code,
        );
        expect(err, role).toBe('42501');
      } finally {
        await client.query('rollback');
        client.release();
      }
    }
    const client = await admin.connect();
    try {
      await client.query('begin');
      await client.query('set local role service_role');
      await client.query('select count(*) from rls_kit.refresh_tokens');
      const fn = await client
        .query('select * from rls_kit.end_refresh_families(null, $1)', [randomUUID()])
        .then(
          () => 'ok',
          (e: { code?: string }) => e.code,
        );
      expect(fn).toBe('42501');
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  it('a store on a service_role connection issues, refreshes and detects reuse', async () => {
    const sub = await newUser();
    // service_role cannot log in; each connection of this pool starts as it.
    const pool = new pg.Pool({ connectionString: db.url, max: 4, options: '-c role=service_role' });
    const s = createRefreshTokens<Schema>({ pool, minter, reuseGrace: '0s' });
    try {
      const { rows } = await pool.query<{ r: string }>('select current_user as r');
      expect(rows).toEqual([{ r: 'service_role' }]);
      const login = await s.issue({ sub, claims });
      await s.refresh(login.refreshToken, { claims });
      expect((await errorOf(s.refresh(login.refreshToken, { claims }))).code).toBe(
        'ERR_REFRESH_REUSED',
      );
      expect(await tokenStatus(login.accessToken)).toEqual({
        active: false,
        reason: 'session_revoked',
      });
    } finally {
      await pool.end();
    }
  });
});

describe('housekeeping', () => {
  it('purge_refresh_tokens drops whole families past their absolute end, nothing of live ones', async () => {
    const sub = await newUser();
    const s = store({ reuseGrace: '0s' });
    const old = await s.issue({ sub, claims });
    const live = await s.issue({ sub, claims });
    await s.refresh(live.refreshToken, { claims });
    await s.refresh(old.refreshToken, { claims });
    const client = await admin.connect();
    try {
      await client.query('begin');
      await client.query(
        `update rls_kit.refresh_tokens set expires_at = now() - interval '1s' where family = $1`,
        [old.sid],
      );
      // Other tests' families may be past their end as well (the absolute-lifetime test).
      const due = await client.query<{ n: string }>(
        'select count(*)::text as n from rls_kit.refresh_tokens where expires_at <= now()',
      );
      expect(Number(due.rows[0]?.n)).toBeGreaterThanOrEqual(2);
      const { rows } = await client.query<{ n: string }>(
        'select rls_kit.purge_refresh_tokens()::text as n',
      );
      expect(rows).toEqual(due.rows);
      const after = await client.query(
        'select 1 from rls_kit.refresh_tokens where expires_at <= now()',
      );
      expect(after.rowCount).toBe(0);
      const left = await client.query<{ family: string }>(
        'select family::text from rls_kit.refresh_tokens where family = any($1::uuid[])',
        [[old.sid, live.sid]],
      );
      expect(left.rows.map((r) => r.family)).toEqual([live.sid, live.sid]);
    } finally {
      await client.query('rollback');
      client.release();
    }
    // The used token of the live family is still there: a replay is reuse.
    expect((await errorOf(s.refresh(live.refreshToken, { claims }))).code).toBe(
      'ERR_REFRESH_REUSED',
    );
  });
});

describe('the migration applied again', () => {
  it('leaves the catalog unchanged, and the revocation migration applied later keeps the real hook', async () => {
    const snapshot = async (c: pg.PoolClient): Promise<string[]> =>
      (
        await c.query<{ line: string }>(`
          select concat_ws(' | ', kind, name, def, acl, note) as line from (
            select 'relation' as kind, c.oid::regclass::text as name,
                   coalesce(pg_get_indexdef(c.oid), c.relkind::text) as def,
                   c.relacl::text as acl, obj_description(c.oid, 'pg_class') as note
              from pg_class c where c.relnamespace = 'rls_kit'::regnamespace
                and c.relname like 'refresh_tokens%'
            union all
            select 'column', a.attrelid::regclass::text || '.' || a.attname,
                   format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text,
                   null, col_description(a.attrelid, a.attnum)
              from pg_attribute a where a.attrelid = 'rls_kit.refresh_tokens'::regclass
               and a.attnum > 0 and not a.attisdropped
            union all
            select 'constraint', conname, pg_get_constraintdef(oid), null,
                   obj_description(oid, 'pg_constraint')
              from pg_constraint where conrelid = 'rls_kit.refresh_tokens'::regclass
            union all
            select 'function', p.oid::regprocedure::text, pg_get_functiondef(p.oid),
                   p.proacl::text, obj_description(p.oid, 'pg_proc')
              from pg_proc p where p.oid in ('rls_kit.end_refresh_families(uuid, uuid)'::regprocedure,
                                             'rls_kit.purge_refresh_tokens()'::regprocedure)
          ) o order by 1`)
      ).rows.map((r) => r.line);
    const client = await admin.connect();
    try {
      await client.query('begin');
      const before = await snapshot(client);
      expect(before.some((l) => l.includes('rls_kit.refresh_tokens'))).toBe(true);
      expect(before.some((l) => l.includes('refresh_tokens_live_idx'))).toBe(true);
      expect(before.some((l) => l.includes('update rls_kit.refresh_tokens'))).toBe(true);
      await client.query(readFileSync(refreshFile, 'utf8'));
      expect(await snapshot(client)).toEqual(before);
      await client.query(readFileSync(revocationFile, 'utf8'));
      expect(await snapshot(client)).toEqual(before);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});
