import { randomBytes } from 'node:crypto';
import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, queryAsUser } from '../src/db/index.js';
import { RlsKitError } from '../src/errors.js';
import type { ExampleDatabase } from '../src/server/example-database.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  CLEAN_SESSION,
  type ExamplePersonas,
  examplePersonas,
  oneConnectionPool,
  sessionState,
} from './helpers/one-connection.js';
import { kitClaims } from './helpers/tokens.js';

/*
 * queryAsUser: one statement as the token's user in one round trip (the
 * settings and the query before one Sync, run by Postgres as one implicit
 * transaction), on the seeded example app.
 */

let db: TestDatabase;
let pool: pg.Pool;
let kysely: Kysely<ExampleDatabase>;
let trips: ReturnType<typeof oneConnectionPool>;

let member: ExamplePersonas['member'];
let viewer: ExamplePersonas['viewer'];
let otherOrg: string;

/** A kit token's claims for `p`, issued 5 s ago. */
const claimsOf = (p: ExamplePersonas['member'], extra: Record<string, unknown> = {}) =>
  kitClaims({ sub: p.sub, org_id: p.org, user_role: p.role, ...extra }, Date.now() - 5000);

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  // One connection: every call below shares it, so anything left behind would show.
  const one = oneConnectionPool(db.url);
  pool = one.pool;
  trips = one;
  kysely = new Kysely<ExampleDatabase>({ dialect: new PostgresDialect({ pool }) });
  ({ member, viewer, otherOrg } = await examplePersonas(pool));
});

afterAll(async () => {
  await kysely?.destroy();
  await db?.drop();
});

const listQuery = () =>
  kysely
    .selectFrom('documents')
    .select(['id', 'org_id', 'title'])
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .limit(50);

/** An insert row level security refuses: viewers do not write. */
const viewerInsert = () =>
  kysely
    .insertInto('documents')
    .values({ org_id: viewer.org, owner_id: viewer.sub, title: 'viewers cannot' });

describe('queryAsUser', () => {
  it("returns what asUser returns — the user's organization only — in one round trip once the role is checked", async () => {
    const claims = claimsOf(member);
    const expected = await asUser(kysely, claims, (trx) =>
      trx
        .selectFrom('documents')
        .select(['id', 'org_id', 'title'])
        .orderBy('created_at', 'desc')
        .orderBy('id')
        .limit(50)
        .execute(),
    );
    expect(expected.length).toBeGreaterThan(0);
    expect(new Set(expected.map((d) => d.org_id))).toEqual(new Set([member.org]));

    trips.reset();
    const { rows } = await queryAsUser(kysely, claims, listQuery());
    expect(rows).toEqual(expected);
    expect(trips.roundTrips()).toBe(1);
    // A compiled query and a claims function work the same.
    trips.reset();
    const again = await queryAsUser(kysely, async () => claims, listQuery().compile());
    expect(again.rows).toEqual(expected);
    expect(trips.roundTrips()).toBe(1);
    // Nothing of the request is left on the connection.
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
  });

  it('never shows another organization, and reports affected rows of writes', async () => {
    const foreign = await queryAsUser(
      kysely,
      claimsOf(member),
      kysely.selectFrom('documents').select('id').where('org_id', '=', otherOrg),
    );
    expect(foreign.rows).toEqual([]);
    const inserted = await queryAsUser(
      kysely,
      claimsOf(member),
      kysely
        .insertInto('documents')
        .values({ org_id: member.org, owner_id: member.sub, title: 'one round trip' })
        .returning(['id', 'title']),
    );
    expect(inserted.rows).toMatchObject([{ title: 'one round trip' }]);
    const removed = await queryAsUser(
      kysely,
      claimsOf(member),
      kysely.deleteFrom('documents').where('id', '=', inserted.rows[0]!.id),
    );
    expect(removed.numAffectedRows).toBe(1n);
  });

  it("passes the database's refusal through unchanged and leaves the connection clean", async () => {
    await queryAsUser(kysely, claimsOf(viewer), listQuery()); // role checked: fast path next
    const err = await queryAsUser(kysely, claimsOf(viewer), viewerInsert()).catch(
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe('42501');
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
    const syntax = await queryAsUser(kysely, claimsOf(viewer), CompiledQuery.raw('selec 1')).catch(
      (e: unknown) => e,
    );
    expect((syntax as { code?: string }).code).toBe('42601');
    expect((await queryAsUser(kysely, claimsOf(viewer), listQuery())).rows.length).toBeGreaterThan(
      0,
    );
  });

  it("runs raw SQL inside asUser's transaction block, where a procedure cannot commit and go on as the login user", async () => {
    await pool.query('create table public.qau_probe (who text, claims text)');
    await pool.query('grant insert on public.qau_probe to authenticated');
    await pool.query(`create procedure public.qau_commits() language plpgsql as $$
      begin
        insert into public.qau_probe values (current_user, current_setting('request.jwt.claims', true));
        commit;
        insert into public.qau_probe values (current_user, current_setting('request.jwt.claims', true));
      end $$`);
    await pool.query('grant execute on procedure public.qau_commits() to authenticated');
    await queryAsUser(kysely, claimsOf(member), listQuery()); // role checked: builder queries go fast
    trips.reset();
    const err = await queryAsUser(
      kysely,
      claimsOf(member),
      CompiledQuery.raw('call public.qau_commits()'),
    ).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('2D000'); // invalid transaction termination
    expect(trips.roundTrips()).toBeGreaterThan(1); // asUser's path, not the one-write one
    const { rows } = await pool.query('select who from public.qau_probe');
    expect(rows).toEqual([]);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
    // A raw data statement still works, through asUser's path.
    const raw = await queryAsUser<ExampleDatabase, { n: string }>(
      kysely,
      claimsOf(member),
      sql<{ n: string }>`select count(*)::text as n from public.documents`.compile(kysely),
    );
    expect(Number(raw.rows[0]?.n)).toBeGreaterThan(0);
    // One statement there too: a COMMIT smuggled after the first statement
    // never runs the rest as the login user.
    const smuggled = await queryAsUser(
      kysely,
      claimsOf(member),
      CompiledQuery.raw(
        "select 1; commit; insert into public.qau_probe values (current_user, 'after commit')",
      ),
    ).catch((e: unknown) => e);
    expect((smuggled as { code?: string }).code).toBe('42601');
    expect((await pool.query('select who from public.qau_probe')).rows).toEqual([]);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
    // Values still bind on that path, and writes report their rows.
    const updated = await queryAsUser(
      kysely,
      claimsOf(member),
      CompiledQuery.raw('update public.documents set title = title where org_id = $1', [
        member.org,
      ]),
    );
    expect(Number(updated.numAffectedRows)).toBeGreaterThan(0);
  });

  it('refuses to run inside a transaction some code leaked onto the pooled connection', async () => {
    await queryAsUser(kysely, claimsOf(member), listQuery());
    const leaked = await pool.connect();
    await leaked.query('begin');
    leaked.release();
    const err = await queryAsUser(kysely, claimsOf(member), listQuery()).catch((e: unknown) => e);
    expect((err as RlsKitError).code).toBe('ERR_DB_QUERY');
    expect((err as RlsKitError).message).toMatch(/inside a transaction block.*rolled back/);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
    // Also when the query fails (pg reports the error before the server is done).
    const again = await pool.connect();
    await again.query('begin');
    again.release();
    const failed = await queryAsUser(kysely, claimsOf(viewer), viewerInsert()).catch(
      (e: unknown) => e,
    );
    expect((failed as RlsKitError).code).toBe('ERR_DB_QUERY');
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
  });

  it('checks claims and roles before taking a connection, like asUser', async () => {
    trips.reset();
    for (const [claims, code] of [
      [{ ...claimsOf(member), role: 'service_role' }, 'ERR_ROLE_NOT_ALLOWED'],
      [{ ...claimsOf(member), role: 'postgres' }, 'ERR_ROLE_NOT_ALLOWED'],
      [[] as unknown as Record<string, unknown>, 'ERR_CLAIMS'],
    ] as const) {
      const err = await queryAsUser(kysely, claims, listQuery()).catch((e: unknown) => e);
      expect((err as RlsKitError).code).toBe(code);
    }
    expect(trips.roundTrips()).toBe(0);
    await expect(
      kysely
        .transaction()
        .execute((trx) =>
          queryAsUser(trx as Kysely<ExampleDatabase>, claimsOf(member), listQuery()),
        ),
    ).rejects.toMatchObject({ code: 'ERR_USAGE' });
  });

  it('runs the query only when the settings applied: a role dropped after its check fails the call', async () => {
    const role = `rls_kit_t_qau_${randomBytes(4).toString('hex')}`;
    await pool.query(`create role ${role} nologin noinherit`);
    await pool.query(`grant usage on schema public, auth to ${role}`);
    await pool.query(`grant select on public.documents to ${role}`);
    const claims = { ...claimsOf(member), role };
    const options = { allowRoles: [role] };
    await queryAsUser(kysely, claims, kysely.selectFrom('documents').select('id'), options);
    await pool.query(`drop owned by ${role}`);
    await pool.query(`drop role ${role}`);
    const err = await queryAsUser(
      kysely,
      claims,
      kysely.selectFrom('documents').select('id'),
      options,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RlsKitError);
    expect((err as RlsKitError).code).toBe('ERR_ROLE_NOT_ALLOWED');
    expect((err as RlsKitError).message).toMatch(/does not exist/);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
  });
});
