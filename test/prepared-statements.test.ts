import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, asUserPg, queryAsUser } from '../src/db/index.js';
import { MAX_PREPARED_PER_CONNECTION, PREPARED_PREFIX } from '../src/db/pipeline.js';
import { RlsKitError } from '../src/errors.js';
import { createKeyring, generateKey, writeKeyringFile } from '../src/keys/index.js';
import { createTokenService } from '../src/server/create-token-service.js';
import type { ExampleDatabase } from '../src/server/example-database.js';
import { createMinter, exampleClaimSchema } from '../src/tokens/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { kitClaims } from './helpers/tokens.js';

/*
 * Named prepared statements: the settings statement (asUser, asUserPg,
 * queryAsUser) and queryAsUser's query are parsed and planned once per
 * pooled connection; preparedStatements: false turns it off; the kit recovers
 * when the server's statements are not what the client believes.
 */

let db: TestDatabase;
let pool: pg.Pool;
let kysely: Kysely<ExampleDatabase>;
let member: { sub: string; org: string; role: string };

/** A kit token's claims for the member, issued 5 s ago. */
const claims = () =>
  kitClaims({ sub: member.sub, org_id: member.org, user_role: member.role }, Date.now() - 5000);

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  // One connection: every call shares it, so its prepared statements are observable.
  pool = new pg.Pool({ connectionString: db.url, max: 1 });
  kysely = new Kysely<ExampleDatabase>({ dialect: new PostgresDialect({ pool }) });
  const { rows } = await pool.query<{ sub: string; org: string; role: string }>(
    `select m.user_id::text as sub, m.org_id::text as org, m.role
       from public.memberships m
      where m.role = 'member' and exists (select from public.documents d where d.org_id = m.org_id)
      order by m.org_id limit 1`,
  );
  member = rows[0]!;
});

afterAll(async () => {
  await kysely?.destroy();
  await db?.drop();
});

const listQuery = (on: Kysely<ExampleDatabase> = kysely) =>
  on.selectFrom('documents').select(['id', 'org_id']).orderBy('created_at', 'desc').limit(50);

/** The kit's statements on the (only) connection, as the server lists them. */
async function kitStatements(): Promise<string[]> {
  const { rows } = await pool.query<{ name: string }>(
    'select name from pg_catalog.pg_prepared_statements where name like $1 order by name',
    [`${PREPARED_PREFIX}%`],
  );
  return rows.map((r) => r.name);
}

async function forgetEverything(): Promise<void> {
  await pool.query('deallocate all');
  const client = await pool.connect();
  const conn = (client as unknown as { connection: { parsedStatements: Record<string, string> } })
    .connection;
  conn.parsedStatements = {};
  client.release();
}

describe('prepared statements', () => {
  it('queryAsUser prepares the settings statement and its query once, then reuses them', async () => {
    await forgetEverything();
    // The first call for a role takes asUser's path (the role check); later ones the pipeline.
    await queryAsUser(kysely, claims(), listQuery());
    const first = await queryAsUser(kysely, claims(), listQuery());
    expect(first.rows.length).toBeGreaterThan(0);
    expect(first.rows.every((r) => r.org_id === member.org)).toBe(true);
    const names = await kitStatements();
    expect(names).toHaveLength(2); // the settings statement and the list query
    const { rows: before } = await pool.query<{ name: string; calls: string }>(
      `select name, generic_plans + custom_plans as calls from pg_catalog.pg_prepared_statements where name = any($1)`,
      [names],
    );
    for (let i = 0; i < 5; i++) await queryAsUser(kysely, claims(), listQuery());
    expect(await kitStatements()).toEqual(names); // reused, not re-created
    const { rows: after } = await pool.query<{ name: string; calls: string }>(
      `select name, generic_plans + custom_plans as calls from pg_catalog.pg_prepared_statements where name = any($1)`,
      [names],
    );
    const calls = (rows: { name: string; calls: string }[]) =>
      rows.reduce((n, r) => n + Number(r.calls), 0);
    // Both statements ran 5 more times each, from the statements prepared before.
    expect(calls(after) - calls(before)).toBe(10);
  });

  it('keeps one statement per role, so roles taking turns do not re-plan each other', async () => {
    await forgetEverything();
    const anon = { role: 'anon', iat: Math.floor(Date.now() / 1000) - 5 };
    // Something anon may run too (it has no grants on the example's tables).
    const count = () => kysely.selectNoFrom(sql<string>`current_user`.as('who'));
    for (let i = 0; i < 3; i++) {
      await queryAsUser(kysely, claims(), count());
      await queryAsUser(kysely, anon, count());
    }
    // The settings statement (role-independent) and the query once per role.
    expect(await kitStatements()).toHaveLength(3);
    const { rows } = await pool.query<{ n: string }>(
      `select count(*) as n from pg_catalog.pg_prepared_statements
        where name like $1 and statement like '%current_user%'`,
      [`${PREPARED_PREFIX}%`],
    );
    expect(Number(rows[0]!.n)).toBe(2);
  });

  it('asUser and asUserPg prepare their settings statement', async () => {
    await forgetEverything();
    await asUser(kysely, claims(), (trx) => listQuery(trx).execute()); // the role check
    await asUser(kysely, claims(), (trx) => trx.selectFrom('documents').select('id').execute());
    expect(await kitStatements()).toHaveLength(1);
    await forgetEverything();
    await asUserPg(pool, claims(), (c) => c.query('select 1'));
    await asUserPg(pool, claims(), (c) => c.query('select 1'));
    expect(await kitStatements()).toHaveLength(1);
  });

  it('preparedStatements: false leaves nothing prepared', async () => {
    await forgetEverything();
    const off = { preparedStatements: false };
    await queryAsUser(kysely, claims(), listQuery(), off);
    const { rows } = await queryAsUser(kysely, claims(), listQuery(), off);
    expect(rows.length).toBeGreaterThan(0);
    await asUser(kysely, claims(), (trx) => listQuery(trx).execute(), off);
    await asUserPg(pool, claims(), (c) => c.query('select 1'), off);
    expect(await kitStatements()).toEqual([]);
  });

  it('recovers after the statements were deallocated behind its back (26000)', async () => {
    await forgetEverything();
    await queryAsUser(kysely, claims(), listQuery());
    await queryAsUser(kysely, claims(), listQuery());
    expect(await kitStatements()).toHaveLength(2);
    // Code inside a callback (or an admin) drops every prepared statement of the session.
    await asUser(kysely, claims(), (trx) => sql`deallocate all`.execute(trx));
    expect(await kitStatements()).toEqual([]);
    const { rows } = await queryAsUser(kysely, claims(), listQuery());
    expect(rows.length).toBeGreaterThan(0);
    expect(await kitStatements()).toHaveLength(2);
    // asUser's settings statement too.
    await asUser(kysely, claims(), (trx) => sql`deallocate all`.execute(trx));
    const docs = await asUser(kysely, claims(), (trx) => listQuery(trx).execute());
    expect(docs.length).toBeGreaterThan(0);
  });

  it('recovers when the server holds statements the client forgot (42P05)', async () => {
    await forgetEverything();
    await queryAsUser(kysely, claims(), listQuery());
    await queryAsUser(kysely, claims(), listQuery());
    const names = await kitStatements();
    expect(names).toHaveLength(2);
    // pg's bookkeeping lost, the server's statements still there.
    const client = await pool.connect();
    (
      client as unknown as { connection: { parsedStatements: Record<string, string> } }
    ).connection.parsedStatements = {};
    client.release();
    const { rows } = await queryAsUser(kysely, claims(), listQuery());
    expect(rows.length).toBeGreaterThan(0);
    expect(await kitStatements()).toEqual(names);
    const again = await queryAsUser(kysely, claims(), listQuery());
    expect(again.rows).toEqual(rows);
  });

  it('recovers for a query it never prepared after the client lost its bookkeeping', async () => {
    await forgetEverything();
    await queryAsUser(kysely, claims(), listQuery());
    await queryAsUser(kysely, claims(), listQuery());
    const client = await pool.connect();
    (
      client as unknown as { connection: { parsedStatements: Record<string, string> } }
    ).connection.parsedStatements = {};
    client.release();
    // A new query: its Parse succeeds or not depending on what the client thinks exists.
    const fresh = kysely.selectFrom('documents').select(['id', 'title']).limit(3);
    const first = await queryAsUser(kysely, claims(), fresh);
    const second = await queryAsUser(kysely, claims(), fresh);
    expect(first.rows.length).toBeGreaterThan(0);
    expect(second.rows).toEqual(first.rows);
    expect(await kitStatements()).toHaveLength(3);
  });

  it("passes the caller's own 26000 and 42P05 through unchanged, run once", async () => {
    await forgetEverything();
    await pool.query(`
      create sequence if not exists public.ps_calls;
      grant usage on sequence public.ps_calls to authenticated;
      create or replace function public.ps_raise(code text) returns boolean
      language plpgsql volatile set search_path = '' as $$
      begin
        perform pg_catalog.nextval('public.ps_calls');
        raise exception using errcode = code, message = 'prepared statement "mine" says ' || code;
      end $$;
      grant execute on function public.ps_raise(text) to authenticated;`);
    await queryAsUser(kysely, claims(), listQuery()); // the role check
    const CALLS = 'select case when is_called then last_value else 0 end as n from public.ps_calls';
    for (const code of ['26000', '42P05']) {
      const before = Number((await pool.query(CALLS)).rows[0].n);
      const err = await queryAsUser(
        kysely,
        claims(),
        kysely
          .selectFrom('documents')
          .select(sql<boolean>`public.ps_raise(${code})`.as('x'))
          .limit(1),
      ).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe(code);
      expect((err as Error).message).toBe(`prepared statement "mine" says ${code}`);
      const after = Number((await pool.query(CALLS)).rows[0].n);
      expect(after - before).toBe(1);
    }
    // The kit's own statements are still known and used.
    const { rows } = await queryAsUser(kysely, claims(), listQuery());
    expect(rows.length).toBeGreaterThan(0);
  });

  it(`keeps at most ${MAX_PREPARED_PER_CONNECTION} per connection, replacing the least recently used`, async () => {
    await forgetEverything();
    const distinct = (i: number) =>
      kysely.selectFrom('documents').select((eb) => eb.val(i).as(`c${i}`));
    await queryAsUser(kysely, claims(), listQuery()); // the role check
    for (let i = 0; i < MAX_PREPARED_PER_CONNECTION + 20; i++) {
      const { rows } = await queryAsUser(kysely, claims(), distinct(i));
      expect(rows.length).toBeGreaterThan(0);
      // The list runs between them all: it stays among the most recently used.
      await queryAsUser(kysely, claims(), listQuery());
    }
    const { rows } = await pool.query<{ statement: string }>(
      'select statement from pg_catalog.pg_prepared_statements where name like $1',
      [`${PREPARED_PREFIX}%`],
    );
    expect(rows).toHaveLength(MAX_PREPARED_PER_CONNECTION);
    const texts = rows.map((r) => r.statement);
    expect(texts).toContain(listQuery().compile().sql); // hot: never replaced
    expect(texts).toContain(distinct(MAX_PREPARED_PER_CONNECTION + 19).compile().sql); // newest
    expect(texts).not.toContain(distinct(0).compile().sql); // oldest: closed on the server
    // Still correct past the cap.
    const list = await queryAsUser(kysely, claims(), listQuery());
    expect(list.rows.every((r) => r.org_id === member.org)).toBe(true);
  });

  it('refuses a preparedStatements that is not a boolean, before touching the database', async () => {
    const bad = { preparedStatements: 'yes' as unknown as boolean };
    for (const call of [
      () => queryAsUser(kysely, claims(), listQuery(), bad),
      () => asUser(kysely, claims(), async () => 1, bad),
      () => asUserPg(pool, claims(), async () => 1, bad),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RlsKitError);
      expect((err as RlsKitError).code).toBe('ERR_USAGE');
      expect((err as Error).message).toMatch(/^preparedStatements must be true or false/);
    }
  });
});

describe('the token service', () => {
  const ISSUER = 'https://prepared.rls-kit.test';

  async function listWith(preparedStatements: boolean | undefined): Promise<string[]> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rls-kit-prepared-'));
    const keysFile = path.join(dir, 'keys.json');
    const keyring = createKeyring([await generateKey()]);
    await writeKeyringFile(keysFile, keyring);
    const service = await createTokenService({
      databaseUrl: db.url,
      keysFile,
      demo: false,
      migrate: false,
      issuer: ISSUER,
      rateLimit: false,
      keyRotation: false,
      poolSize: 1, // one connection: its prepared statements are the service's
      ...(preparedStatements === undefined ? {} : { preparedStatements }),
    });
    try {
      const minter = await createMinter({
        keyring,
        issuer: ISSUER,
        audience: 'authenticated',
        claimSchema: exampleClaimSchema,
      });
      const token = await minter.mint({
        sub: member.sub,
        claims: { org_id: member.org, user_role: 'member' },
      });
      for (let i = 0; i < 3; i++) {
        const res = await service.fetch(
          new Request(`${ISSUER}/api/documents`, { headers: { authorization: `Bearer ${token}` } }),
        );
        expect(res.status).toBe(200);
        expect(((await res.json()) as unknown[]).length).toBeGreaterThan(0);
      }
      const { rows } = await service.pool.query<{ name: string }>(
        'select name from pg_catalog.pg_prepared_statements where name like $1',
        [`${PREPARED_PREFIX}%`],
      );
      return rows.map((r) => r.name);
    } finally {
      await service.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  it('prepares the list by default and not with preparedStatements: false', async () => {
    expect(await listWith(undefined)).toHaveLength(2);
    expect(await listWith(false)).toEqual([]);
  });

  it('refuses a preparedStatements that is not a boolean with ERR_CONFIG', async () => {
    const err = await createTokenService({
      databaseUrl: db.url,
      preparedStatements: 'no' as unknown as boolean,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RlsKitError);
    expect((err as RlsKitError).code).toBe('ERR_CONFIG');
    expect((err as Error).message).toMatch(/^preparedStatements must be true or false/);
  });
});
