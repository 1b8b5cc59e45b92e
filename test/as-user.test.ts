import { randomBytes, randomUUID } from 'node:crypto';
import { CompiledQuery, type Generated, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import {
  type AsUserOptions,
  asUser,
  asUserPg,
  type ClaimsSource,
  MAX_CLAIMS_BYTES,
} from '../src/db/index.js';
import { RlsKitError } from '../src/errors.js';
import { createTestDatabase, dropDatabase } from './helpers/db.js';

// Real Postgres only: a scratch database per file, roles and a table with a
// PostgREST-style policy created here, dropped afterwards.

interface DB {
  notes: { id: Generated<number>; owner: string; body: string };
}

/** What a callback sees, the same for both variants. */
type Query = <R = Record<string, unknown>>(text: string, params?: unknown[]) => Promise<R[]>;

interface Target {
  readonly pool: pg.Pool;
  readonly kysely: Kysely<DB>;
  /** ReadyForQuery messages seen since the last reset: one per round trip. */
  roundTrips: number;
}

interface Variant {
  readonly name: 'kysely' | 'pg';
  /** Round trips of a call whose callback runs one query. */
  readonly roundTripsWithOneQuery: number;
  run<T>(
    target: Target,
    claims: ClaimsSource,
    fn: (q: Query) => Promise<T>,
    options?: AsUserOptions,
  ): Promise<T>;
}

const variants: Variant[] = [
  {
    name: 'kysely',
    // BEGIN + settings pipelined, the query, the still-ours check + COMMIT pipelined
    roundTripsWithOneQuery: 3,
    run: (target, claims, fn, options) =>
      asUser(
        target.kysely,
        claims,
        (trx) =>
          fn(async <R>(text: string, params: unknown[] = []) => {
            const result = await trx.executeQuery<R>(CompiledQuery.raw(text, params));
            return [...result.rows];
          }),
        options,
      ),
  },
  {
    name: 'pg',
    // BEGIN + settings pipelined, the query, COMMIT
    roundTripsWithOneQuery: 3,
    run: (target, claims, fn, options) =>
      asUserPg(
        target.pool,
        claims,
        (client) =>
          fn(async <R>(text: string, params: unknown[] = []) => {
            const result = await client.query(text, params);
            return result.rows as R[];
          }),
        options,
      ),
  },
];

const suffix = randomBytes(4).toString('hex');
const loginRole = `rls_kit_t_login_${suffix}`;
const superRole = `rls_kit_t_super_${suffix}`;
const appRole = `rls_kit_t_app_${suffix}`;
const flipRole = `rls_kit_t_flip_${suffix}`;
const appPassword = randomBytes(12).toString('hex');

const alice = randomUUID();
const bob = randomUUID();
const crowd = Array.from({ length: 50 }, () => randomUUID());

let database: { url: string; drop(): Promise<void> };
let admin: pg.Client;
const targets: Target[] = [];
/** max 1: every call reuses the same connection, so leftovers would show. */
let one: Target;
let five: Target;

function claimsOf(sub: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub,
    role: 'authenticated',
    aud: 'authenticated',
    email: `${sub}@example.test`,
    ...extra,
  };
}

function makeTarget(url: string, max: number): Target {
  const pool = new pg.Pool({ connectionString: url, max });
  const target: Target = {
    pool,
    kysely: new Kysely<DB>({ dialect: new PostgresDialect({ pool }) }),
    roundTrips: 0,
  };
  pool.on('connect', (client) => {
    client.connection.on('readyForQuery', () => {
      target.roundTrips++;
    });
    // A connection killed while checked out must not crash the test process.
    client.on('error', () => undefined);
  });
  targets.push(target);
  return target;
}

async function scratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  // Under the suite's global setup, clone the empty template; run alone
  // (no setup), create a database on DATABASE_URL or the local server.
  if (inject('databaseUrl')) return createTestDatabase({ template: 'blank' });
  const serverUrl = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `rls_kit_t_as_user_${suffix}`;
  const c = new pg.Client({ connectionString: serverUrl });
  await c.connect();
  await c.query(`create database ${pg.escapeIdentifier(name)}`);
  await c.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => dropDatabase(serverUrl, name),
  };
}

/** Session state of a connection outside any asUser call. */
async function sessionState(pool: pg.Pool) {
  const { rows } = await pool.query<{
    pid: number;
    same_user: boolean;
    role: string;
    claims: string;
    method: string;
  }>(
    `select pg_backend_pid() as pid, current_user = session_user as same_user,
            current_setting('role') as role,
            coalesce(current_setting('request.jwt.claims', true), '') as claims,
            coalesce(current_setting('request.method', true), '') as method`,
  );
  return rows[0]!;
}

async function catchError(promise: Promise<unknown>): Promise<RlsKitError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof RlsKitError) {
      // One line naming the problem and what to do.
      expect(err.message).not.toContain('\n');
      return err;
    }
    throw err;
  }
  throw new Error('expected the call to be refused');
}

beforeAll(async () => {
  database = await scratchDatabase();
  admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  // Roles are cluster-wide: Supabase's API roles are created when missing
  // (and left in place, other suites and the kit's migrations share them);
  // the test's own roles carry a unique suffix and are dropped afterwards.
  await admin.query(`do $$
    begin
      begin create role anon nologin noinherit;
      exception when duplicate_object or unique_violation then null; end;
      begin create role authenticated nologin noinherit;
      exception when duplicate_object or unique_violation then null; end;
      begin create role service_role nologin noinherit bypassrls;
      exception when duplicate_object or unique_violation then null; end;
    end $$`);
  await admin.query(`create role ${loginRole} login`);
  await admin.query(`create role ${superRole} superuser nologin`);
  await admin.query(`create role ${flipRole} nologin`);
  await admin.query(`create role ${appRole} login password '${appPassword}'`);
  await admin.query(`grant anon to ${appRole}`);
  await admin.query(`
    create table notes (
      id serial primary key,
      owner uuid not null,
      body text not null
    );
    alter table notes enable row level security;
    grant select, insert, update, delete on notes to anon, authenticated, service_role;
    grant usage on sequence notes_id_seq to authenticated;
    create policy own_notes on notes for all to authenticated
      using (owner = (select (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid))
      with check (owner = (select (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid));
    -- Supabase's auth.uid(): the legacy setting wins when non-empty.
    create schema legacy;
    grant usage on schema legacy to anon, authenticated, service_role;
    create function legacy.uid() returns uuid language sql stable set search_path = '' as $$
      select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $$;
  `);
  await admin.query(
    `insert into notes (owner, body)
     select u, b from unnest($1::uuid[]) u, unnest(array['first', 'second']) b`,
    [[alice, bob, ...crowd]],
  );
  one = makeTarget(database.url, 1);
  five = makeTarget(database.url, 5);
});

afterAll(async () => {
  for (const target of targets) {
    // Kysely ends the pool only if it ever used it.
    await target.kysely.destroy();
    if (!target.pool.ending) await target.pool.end();
  }
  await admin.end();
  await database.drop();
  // After the database is gone nothing depends on the test roles any more.
  const serverUrl = new URL(database.url);
  serverUrl.pathname = '/postgres';
  const c = new pg.Client({ connectionString: serverUrl.toString() });
  await c.connect();
  try {
    for (const role of [loginRole, superRole, appRole, flipRole]) {
      await c.query(`drop role if exists ${role}`);
    }
  } finally {
    await c.end();
  }
});

describe.each(variants)('$name', (variant) => {
  it('runs as the claims role with claims, request settings and blanked legacy settings', async () => {
    // Stale session-level values, as a careless earlier user of the
    // connection might leave them; Supabase's auth.uid() would prefer them.
    await one.pool.query(`set request.jwt.claim.sub = '${bob}'`);
    await one.pool.query(`set request.jwt.claim = '{"sub":"${bob}"}'`);
    await one.pool.query(`set request.jwt.claim.role = 'service_role'`);
    await one.pool.query(`set request.jwt.claim.email = 'bob@example.test'`);
    try {
      const claims = claimsOf(alice, { org_id: randomUUID(), nested: { list: [1, 'two', null] } });
      const seen = await variant.run(
        one,
        claims,
        async (q) =>
          (
            await q(
              `select current_user as current_user, session_user as session_user,
                    current_setting('role') as role,
                    current_setting('request.jwt.claims', true) as claims,
                    current_setting('request.method', true) as method,
                    current_setting('request.path', true) as path,
                    current_setting('request.headers', true) as headers,
                    current_setting('request.jwt.claim', true) as legacy,
                    current_setting('request.jwt.claim.sub', true) as legacy_sub,
                    current_setting('request.jwt.claim.role', true) as legacy_role,
                    current_setting('request.jwt.claim.email', true) as legacy_email,
                    legacy.uid() as uid`,
            )
          )[0]!,
        {
          request: {
            method: 'PATCH',
            path: '/rest/v1/notes?id=eq.1',
            headers: {
              'X-Trace-Id': 'abc',
              Accept: ['application/json', 'text/plain'],
              Authorization: 'Bearer not-for-sql',
              Cookie: 'sb-access-token=also-not',
              'x-trace-id': 'def',
            },
          },
        },
      );
      expect(seen.current_user).toBe('authenticated');
      expect(seen.session_user).not.toBe('authenticated');
      expect(seen.role).toBe('authenticated');
      expect(JSON.parse(String(seen.claims))).toEqual(claims);
      expect(seen.method).toBe('PATCH');
      expect(seen.path).toBe('/rest/v1/notes?id=eq.1');
      expect(JSON.parse(String(seen.headers))).toEqual({
        'x-trace-id': 'abc, def',
        accept: 'application/json, text/plain',
      });
      expect(seen.legacy).toBe('');
      expect(seen.legacy_sub).toBe('');
      expect(seen.legacy_role).toBe('');
      expect(seen.legacy_email).toBe('');
      expect(seen.uid).toBe(alice);
    } finally {
      await one.pool.query('reset all');
    }
  });

  it('sets empty request settings (headers {}) when no request is given', async () => {
    await one.pool.query(`set request.method = 'STALE'`);
    try {
      const seen = await variant.run(one, claimsOf(alice), async (q) => {
        const rows = await q<{ method: string; path: string; headers: string }>(
          `select current_setting('request.method', true) as method,
                  current_setting('request.path', true) as path,
                  current_setting('request.headers', true) as headers`,
        );
        return rows[0]!;
      });
      expect(seen).toEqual({ method: '', path: '', headers: '{}' });
    } finally {
      await one.pool.query('reset all');
    }
  });

  it('accepts a fetch Headers object', async () => {
    // Credentials never reach SQL: bearer tokens, cookies, Supabase API keys.
    const headers = new Headers({
      'X-Client': 'edge',
      authorization: 'Bearer x',
      apikey: 'service-role-key',
      cookie: 'sb=1',
    });
    const seen = await variant.run(
      five,
      claimsOf(alice),
      async (q) =>
        (await q<{ h: string }>(`select current_setting('request.headers', true) as h`))[0]!.h,
      { request: { headers } },
    );
    expect(JSON.parse(seen)).toEqual({ 'x-client': 'edge' });
  });

  it('lets RLS filter rows per user', async () => {
    const select = (q: Query) =>
      q<{ owner: string; body: string }>('select owner, body from notes order by body');
    const aliceRows = await variant.run(five, claimsOf(alice), select);
    const bobRows = await variant.run(five, claimsOf(bob), select);
    expect(aliceRows).toEqual([
      { owner: alice, body: 'first' },
      { owner: alice, body: 'second' },
    ]);
    expect(bobRows.map((r) => r.owner)).toEqual([bob, bob]);
    // anon has no policy: RLS hides everything.
    expect(await variant.run(five, { role: 'anon' }, select)).toEqual([]);
    // Writes are checked too: alice cannot insert a note owned by bob.
    const err = await variant
      .run(five, claimsOf(alice), (q) =>
        q('insert into notes (owner, body) values ($1, $2)', [bob, 'forged']),
      )
      .catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('42501');
  });

  it('leaves the pooled connection clean after success and after a throw', async () => {
    const pidInside = await variant.run(one, claimsOf(alice), async (q) => {
      return (await q<{ pid: number }>('select pg_backend_pid() as pid'))[0]!.pid;
    });
    const afterSuccess = await sessionState(one.pool);
    expect(afterSuccess).toEqual({
      pid: pidInside,
      same_user: true,
      role: 'none',
      claims: '',
      method: '',
    });

    const boom = new Error('callback failed');
    let pidThrow = 0;
    const rejected = await variant
      .run(one, claimsOf(bob), async (q) => {
        pidThrow = (await q<{ pid: number }>('select pg_backend_pid() as pid'))[0]!.pid;
        throw boom;
      })
      .catch((e: unknown) => e);
    expect(rejected).toBe(boom);
    expect(pidThrow).toBe(pidInside);
    expect(await sessionState(one.pool)).toEqual(afterSuccess);
    expect(one.pool.totalCount).toBe(1);
  });

  it('rolls back the writes of a callback that throws', async () => {
    const body = `rolled back ${variant.name} ${suffix}`;
    const rejected = await variant
      .run(one, claimsOf(alice), async (q) => {
        await q('insert into notes (owner, body) values ($1, $2)', [alice, body]);
        const mine = await q('select 1 from notes where body = $1', [body]);
        expect(mine).toHaveLength(1);
        throw new Error('changed my mind');
      })
      .catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(Error);
    const { rows } = await admin.query('select 1 from notes where body = $1', [body]);
    expect(rows).toHaveLength(0);
  });

  it('commits the writes of a callback that returns', async () => {
    const body = `kept ${variant.name} ${suffix}`;
    await variant.run(one, claimsOf(alice), (q) =>
      q('insert into notes (owner, body) values ($1, $2)', [alice, body]),
    );
    const { rows } = await admin.query('select owner from notes where body = $1', [body]);
    expect(rows).toEqual([{ owner: alice }]);
    await admin.query('delete from notes where body = $1', [body]);
  });

  it('refuses a callback that swallowed a database error instead of pretending to commit', async () => {
    const body = `swallowed ${variant.name} ${suffix}`;
    const err = await variant
      .run(one, claimsOf(alice), async (q) => {
        await q('insert into notes (owner, body) values ($1, $2)', [alice, body]);
        await q('select 1/0').catch(() => undefined);
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    const { rows } = await admin.query('select 1 from notes where body = $1', [body]);
    expect(rows).toHaveLength(0);
    expect((await sessionState(one.pool)).role).toBe('none');
  });

  it('refuses (loudly) a callback that ended the request transaction itself', async () => {
    let after: { current_user: string } | undefined;
    const err = await variant
      .run(one, claimsOf(alice), async (q) => {
        await q('commit');
        // Runs outside the request transaction: as the pool's login user.
        after = (await q<{ current_user: string }>('select current_user'))[0];
      })
      .catch((e: unknown) => e);
    expect(after?.current_user).not.toBe('authenticated');
    expect(err).toBeInstanceOf(RlsKitError);
    expect((err as RlsKitError).code).toBe('ERR_DB_QUERY');
    expect((err as RlsKitError).message).toContain('ended the request transaction');
  });

  it('never commits work a callback did after ending the request transaction and opening its own', async () => {
    const body = `reopened ${variant.name} ${suffix}`;
    let after: { current_user: string } | undefined;
    const err = await variant
      .run(one, claimsOf(alice), async (q) => {
        await q('commit');
        await q('begin');
        // Runs as the pool's login user, not as the request's role.
        after = (await q<{ current_user: string }>('select current_user'))[0];
        await q('insert into notes (owner, body) values ($1, $2)', [bob, body]);
      })
      .catch((e: unknown) => e);
    expect(after?.current_user).not.toBe('authenticated');
    expect(err).toBeInstanceOf(RlsKitError);
    expect((err as RlsKitError).code).toBe('ERR_DB_QUERY');
    expect((err as RlsKitError).message).toContain('ended the request transaction');
    const { rows } = await admin.query('select 1 from notes where body = $1', [body]);
    expect(rows).toHaveLength(0);
    // The connection is usable and clean afterwards.
    expect(await sessionState(one.pool)).toMatchObject({ role: 'none', same_user: true });
    const n = await variant.run(one, claimsOf(alice), async (q) => {
      return (await q<{ n: number }>('select count(*)::int as n from notes'))[0]!.n;
    });
    expect(n).toBe(2);
  });

  it('destroys a connection that died during the callback instead of returning it', async () => {
    const target = makeTarget(database.url, 1);
    const err = await variant
      .run(target, claimsOf(alice), async (q) => {
        const pid = (await q<{ pid: number }>('select pg_backend_pid() as pid'))[0]!.pid;
        await admin.query('select pg_terminate_backend($1, 5000)', [pid]);
        await q('select 1');
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    // Give pg-pool the tick it needs to drop the destroyed client.
    await new Promise((r) => setTimeout(r, 50));
    expect(target.pool.totalCount).toBe(0);
    const after = await variant.run(target, claimsOf(alice), async (q) => {
      return (await q<{ n: number }>('select count(*)::int as n from notes'))[0]!.n;
    });
    expect(after).toBe(2);
  });

  it('runs service_role only when the caller opts in', async () => {
    const count = (q: Query) => q<{ n: number }>('select count(*)::int as n from notes');
    const untouched = makeTarget(database.url, 1);
    let called = false;
    const refused = await catchError(
      variant.run(untouched, { role: 'service_role' }, async (q) => {
        called = true;
        return count(q);
      }),
    );
    expect(refused.code).toBe('ERR_ROLE_NOT_ALLOWED');
    expect(refused.message).toMatch(/service_role.*allowRoles/);
    expect(called).toBe(false);
    expect(untouched.pool.totalCount).toBe(0);

    const rows = await variant.run(
      five,
      { role: 'service_role' },
      async (q) =>
        (
          await q<{ user: string; n: number }>(
            'select current_user as user, (select count(*)::int from notes) as n',
          )
        )[0]!,
      { allowRoles: ['service_role'] },
    );
    // BYPASSRLS: sees every note.
    expect(rows).toEqual({ user: 'service_role', n: 2 * (crowd.length + 2) });
  });

  it.each([
    ['postgres (login superuser)', () => 'postgres', /superuser/],
    ['a login role', () => loginRole, /can log in/],
    ['a NOLOGIN superuser', () => superRole, /superuser/],
    ['a role that does not exist', () => `rls_kit_t_missing_${suffix}`, /does not exist/],
  ])('refuses %s even when opted in, executing nothing', async (_label, roleOf, why) => {
    const role = roleOf();
    let called = false;
    const before = await sessionState(one.pool);
    const refused = await catchError(
      variant.run(
        one,
        { sub: alice, role },
        async (q) => {
          called = true;
          await q('delete from notes');
        },
        { allowRoles: [role] },
      ),
    );
    expect(refused.code).toBe('ERR_ROLE_NOT_ALLOWED');
    expect(refused.message).toMatch(why);
    expect(called).toBe(false);
    expect(await sessionState(one.pool)).toEqual(before);
    const { rows } = await admin.query('select count(*)::int as n from notes');
    expect(rows[0].n).toBe(2 * (crowd.length + 2));
  });

  it.each([
    ['none', { role: 'none' }, { allowRoles: [] }, 'ERR_ROLE_NOT_ALLOWED'],
    ['a predefined pg_ role', { role: 'pg_read_all_data' }, {}, 'ERR_ROLE_NOT_ALLOWED'],
    ['allowRoles naming none', { role: 'authenticated' }, { allowRoles: ['NONE'] }, 'ERR_USAGE'],
    [
      'allowRoles naming a pg_ role',
      { role: 'authenticated' },
      { allowRoles: ['pg_write_server_files'] },
      'ERR_USAGE',
    ],
  ] as const)('refuses %s before touching the database', async (_label, claims, options, code) => {
    const untouched = makeTarget(database.url, 1);
    const refused = await catchError(
      variant.run(untouched, claims, async () => undefined, options),
    );
    expect(refused.code).toBe(code);
    expect(untouched.pool.totalCount).toBe(0);
  });

  it('maps a role the database user cannot switch to onto ERR_ROLE_NOT_ALLOWED', async () => {
    const url = new URL(database.url);
    url.username = appRole;
    url.password = appPassword;
    const app = makeTarget(url.toString(), 1);
    // A member of anon: allowed, and the pg_roles check works for non-superusers.
    const user = await variant.run(
      app,
      { role: 'anon' },
      async (q) => (await q<{ u: string }>('select current_user as u'))[0]!.u,
    );
    expect(user).toBe('anon');
    // Not a member of authenticated: Postgres refuses the switch.
    const refused = await catchError(variant.run(app, claimsOf(alice), async () => undefined));
    expect(refused.code).toBe('ERR_ROLE_NOT_ALLOWED');
    expect(refused.message).toMatch(/cannot switch to role "authenticated"/);
    // The refusal left a usable connection behind.
    expect(
      await variant.run(
        app,
        { role: 'anon' },
        async (q) => (await q<{ u: string }>('select current_user as u'))[0]!.u,
      ),
    ).toBe('anon');
  });

  it("re-checks a role's attributes once the cached check is a minute old", async () => {
    const target = makeTarget(database.url, 1);
    const whoami = () =>
      variant.run(
        target,
        { role: flipRole },
        async (q) => (await q<{ u: string }>('select current_user as u'))[0]!.u,
        { allowRoles: [flipRole] },
      );
    expect(await whoami()).toBe(flipRole);
    await admin.query(`alter role ${flipRole} login`);
    try {
      // Within the minute the cached verdict stands (no pg_roles lookup per call)...
      expect(await whoami()).toBe(flipRole);
      // ...after it, the role is looked at again and refused.
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + 61_000);
      const refused = await catchError(whoami());
      expect(refused.code).toBe('ERR_ROLE_NOT_ALLOWED');
      expect(refused.message).toMatch(/can log in/);
    } finally {
      vi.useRealTimers();
      await admin.query(`alter role ${flipRole} nologin`);
    }
  });

  it('sets the role and the claims from the same read of the claims', async () => {
    let reads = 0;
    const claims = {
      sub: alice,
      get role() {
        reads++;
        return reads === 1 ? 'authenticated' : 'service_role';
      },
    };
    const seen = await variant.run(five, claims, async (q) => {
      return (
        await q<{ u: string; r: string }>(
          `select current_user as u, current_setting('request.jwt.claims')::jsonb ->> 'role' as r`,
        )
      )[0]!;
    });
    expect(seen).toEqual({ u: 'authenticated', r: 'authenticated' });
  });

  it('takes claims from a verifier function before taking a connection', async () => {
    const untouched = makeTarget(database.url, 1);
    const verifierFailure = new RlsKitError('ERR_TOKEN_EXPIRED', 'token expired');
    const rejected = await variant
      .run(
        untouched,
        async () => {
          throw verifierFailure;
        },
        async () => undefined,
      )
      .catch((e: unknown) => e);
    expect(rejected).toBe(verifierFailure);
    expect(untouched.pool.totalCount).toBe(0);

    const sub = await variant.run(
      five,
      async () => claimsOf(bob),
      async (q) => (await q<{ s: string }>('select legacy.uid() as s'))[0]!.s,
    );
    expect(sub).toBe(bob);
  });

  it('uses BEGIN + one settings statement (+ COMMIT): round trips counted on the wire', async () => {
    const target = makeTarget(database.url, 1);
    // Warm the connection (the first call also checks the role's attributes,
    // inside the same statement: no extra round trip either).
    await target.pool.query('select 1');
    for (const call of ['first', 'cached']) {
      target.roundTrips = 0;
      await variant.run(target, claimsOf(alice), (q) => q('select 1'));
      expect(target.roundTrips, call).toBe(variant.roundTripsWithOneQuery);
    }
    target.roundTrips = 0;
    await target.pool.query('select 1');
    expect(target.roundTrips).toBe(1);
  });

  it('keeps 50 parallel users apart on a pool of 5', async () => {
    const seen = await Promise.all(
      crowd.map((sub, i) =>
        variant.run(five, claimsOf(sub, { i }), async (q) => {
          const first = await q<{ owner: string }>('select owner from notes');
          // Yield between queries so calls interleave on the pool.
          await new Promise((r) => setTimeout(r, i % 3));
          const second = await q<{ sub: string; uid: string }>(
            `select current_setting('request.jwt.claims')::jsonb ->> 'sub' as sub, legacy.uid() as uid`,
          );
          return { sub, first: first.map((r) => r.owner), second: second[0]! };
        }),
      ),
    );
    for (const s of seen) {
      expect(s.first).toEqual([s.sub, s.sub]);
      expect(s.second).toEqual({ sub: s.sub, uid: s.sub });
    }
    expect(five.pool.totalCount).toBeLessThanOrEqual(5);
  });
});

describe('claims validation (before any connection is taken)', () => {
  const cyclic: Record<string, unknown> = { role: 'authenticated' };
  cyclic.self = cyclic;
  const bad: [string, unknown, RegExp][] = [
    ['an array', [{ role: 'authenticated' }], /plain JSON object, got an array/],
    ['null', null, /got null/],
    ['a string (even of JSON)', '{"role":"authenticated"}', /not a string/],
    ['a number', 42, /got a number/],
    ['a class instance', new URL('https://example.test'), /got a URL/],
    ['no role', { sub: 'x' }, /no "role" string/],
    ['an empty role', { role: '' }, /no "role" string/],
    ['a non-string role', { role: ['authenticated'] }, /no "role" string/],
    ['a BigInt', { role: 'authenticated', n: 1n }, /claim "n" is a bigint/],
    ['a function', { role: 'authenticated', f: () => 1 }, /claim "f" is a function/],
    ['NaN', { role: 'authenticated', n: Number.NaN }, /claim "n" is NaN/],
    ['a Map', { role: 'authenticated', m: new Map() }, /claim "m" is a Map/],
    ['a cycle', cyclic, /cannot be serialized/],
    ['a NUL character', { role: 'authenticated', s: 'a\0b' }, /NUL/],
    ['an unpaired surrogate', { role: 'authenticated', s: '\uD800' }, /surrogate/],
    [
      'more than the size cap',
      { role: 'authenticated', blob: 'x'.repeat(MAX_CLAIMS_BYTES) },
      /larger than 16384 bytes/,
    ],
  ];

  it.each(variants)('$name refuses each with ERR_CLAIMS and one line', async (variant) => {
    const untouched = makeTarget(database.url, 1);
    for (const [label, claims, why] of bad) {
      let called = false;
      const refused = await catchError(
        variant.run(untouched, claims as ClaimsSource, async () => {
          called = true;
        }),
      );
      expect(refused.code, label).toBe('ERR_CLAIMS');
      expect(refused.message, label).toMatch(why);
      expect(called, label).toBe(false);
    }
    expect(untouched.pool.totalCount).toBe(0);
  });

  it('accepts claims just under the size cap', async () => {
    const claims = { role: 'authenticated', sub: alice, pad: '' };
    claims.pad = 'x'.repeat(MAX_CLAIMS_BYTES - JSON.stringify(claims).length);
    expect(Buffer.byteLength(JSON.stringify(claims))).toBe(MAX_CLAIMS_BYTES);
    const n = await asUserPg(five.pool, claims, async (c) => {
      return (await c.query(`select length(current_setting('request.jwt.claims')) as n`)).rows[0].n;
    });
    expect(n).toBe(MAX_CLAIMS_BYTES);
  });

  it('refuses asUser on a transaction', async () => {
    await five.kysely.transaction().execute(async (trx) => {
      const refused = await catchError(
        asUser<DB, undefined>(trx, claimsOf(alice), async () => undefined),
      );
      expect(refused.code).toBe('ERR_USAGE');
    });
  });
});

describe('asUser on a Postgres driver that is not node-postgres', () => {
  it('falls back to one statement per round trip, with the same settings and checks', async () => {
    const target = makeTarget(database.url, 1);
    // A driver that only ever sends text (as a non-pg driver would): the
    // pipelined query is turned into its string form, which runs nothing.
    const sent: string[] = [];
    const textOnly = new Kysely<DB>({
      dialect: new PostgresDialect({
        pool: {
          connect: async () => {
            const client = await target.pool.connect();
            return {
              query: (sql: unknown, parameters: unknown[]) => {
                const text = String(sql);
                sent.push(text);
                return client.query(text, parameters);
              },
              release: () => client.release(),
            } as unknown as pg.PoolClient;
          },
          end: async () => undefined,
        },
      }),
    });
    try {
      for (const call of ['first', 'second']) {
        sent.length = 0;
        const seen = await asUser(textOnly, claimsOf(alice), async (trx) => {
          const r = await trx.executeQuery<{ role: string; sub: string; n: number }>(
            CompiledQuery.raw(
              `select current_user as role, current_setting('request.jwt.claims')::jsonb ->> 'sub' as sub,
                      (select count(*)::int from notes) as n`,
            ),
          );
          return r.rows[0]!;
        });
        expect(seen, call).toEqual({ role: 'authenticated', sub: alice, n: 2 });
        // begin, settings, the query, check + commit (plain statements); the
        // first call first tried the pipeline (it ran nothing) and rolled back.
        const plain = sent.filter((t) => !t.startsWith('/*'));
        if (call === 'first') expect(plain.shift()).toBe('rollback');
        else expect(sent.some((t) => t.startsWith('/*'))).toBe(false);
        expect(plain[0]).toBe('begin');
        expect(plain.length, call).toBe(4);
      }
      const ended = await asUser(textOnly, claimsOf(alice), async (trx) => {
        await trx.executeQuery(CompiledQuery.raw('commit'));
      }).catch((e: unknown) => e);
      expect((ended as RlsKitError).message).toContain('ended the request transaction');
      expect(await sessionState(target.pool)).toMatchObject({ role: 'none', same_user: true });
    } finally {
      await textOnly.destroy();
    }
  });
});
