import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUserPg, queryAsUserPg } from '../src/db/index.js';
import { isDataStatement } from '../src/db/one-statement.js';
import type { RlsKitError } from '../src/errors.js';
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
 * queryAsUserPg: queryAsUser on a plain pg pool — the settings and one
 * statement before one Sync (one implicit transaction), on the seeded
 * example app.
 */

let db: TestDatabase;
let pool: pg.Pool;
let trips: ReturnType<typeof oneConnectionPool>;

let member: ExamplePersonas['member'];
let viewer: ExamplePersonas['viewer'];
let otherOrg: string;

const claimsOf = (p: ExamplePersonas['member'], extra: Record<string, unknown> = {}) =>
  kitClaims({ sub: p.sub, org_id: p.org, user_role: p.role, ...extra }, Date.now() - 5000);

const LIST = {
  text: 'select id::text, org_id::text, title from public.documents order by created_at desc, id limit $1',
  values: [50],
};

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  // One connection: every call below shares it, so anything left behind would show.
  const one = oneConnectionPool(db.url);
  pool = one.pool;
  trips = one;
  ({ member, viewer, otherOrg } = await examplePersonas(pool));
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('queryAsUserPg', () => {
  it("returns what asUserPg returns — the user's organization only — in one round trip once the role is checked", async () => {
    const claims = claimsOf(member);
    const expected = (await asUserPg(pool, claims, (c) => c.query(LIST.text, LIST.values))).rows;
    expect(expected.length).toBeGreaterThan(0);
    expect(new Set(expected.map((d) => d.org_id))).toEqual(new Set([member.org]));

    trips.reset();
    const { rows } = await queryAsUserPg(pool, claims, LIST);
    expect(rows).toEqual(expected);
    expect(trips.roundTrips()).toBe(1);
    // Text alone, a leading comment, and a claims function work the same.
    const counted = await queryAsUserPg<{ n: string }>(
      pool,
      async () => claims,
      '-- the org\n/* of /* the */ token */ (select count(*)::text as n from public.documents)',
    );
    const total = await asUserPg(pool, claims, (c) =>
      c.query<{ n: string }>('select count(*)::text as n from public.documents'),
    );
    expect(counted.rows).toEqual(total.rows);
    trips.reset();
    await queryAsUserPg(pool, claims, '/* once more */ (select 1)');
    expect(trips.roundTrips()).toBe(1);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
    // The kit's statements are prepared on the connection (settings, and the query per role).
    const { rows: prepared } = await pool.query<{ n: number }>(
      "select count(*)::int as n from pg_prepared_statements where name like 'rls\\_kit\\_%'",
    );
    expect(prepared[0]!.n).toBeGreaterThanOrEqual(3);
  });

  it('never shows another organization, and reports affected rows of writes', async () => {
    const foreign = await queryAsUserPg(pool, claimsOf(member), {
      text: 'select id from public.documents where org_id = $1',
      values: [otherOrg],
    });
    expect(foreign.rows).toEqual([]);
    const inserted = await queryAsUserPg<{ id: string; title: string }>(pool, claimsOf(member), {
      text: 'insert into public.documents (org_id, owner_id, title) values ($1, $2, $3) returning id, title',
      values: [member.org, member.sub, 'one round trip, plain pg'],
    });
    expect(inserted.rows).toMatchObject([{ title: 'one round trip, plain pg' }]);
    const removed = await queryAsUserPg(pool, claimsOf(member), {
      text: 'delete from public.documents where id = $1',
      values: [inserted.rows[0]!.id],
    });
    expect(removed.rowCount).toBe(1);
  });

  it("passes the database's refusal through unchanged and leaves the connection clean", async () => {
    await queryAsUserPg(pool, claimsOf(viewer), LIST); // role checked: fast path next
    trips.reset();
    const refused = await queryAsUserPg(pool, claimsOf(viewer), {
      text: 'insert into public.documents (org_id, owner_id, title) values ($1, $2, $3)',
      values: [viewer.org, viewer.sub, 'viewers cannot'],
    }).catch((e: unknown) => e);
    expect((refused as { code?: string }).code).toBe('42501');
    expect(trips.roundTrips()).toBe(1);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
    const twoStatements = await queryAsUserPg(pool, claimsOf(viewer), 'select 1; select 2').catch(
      (e: unknown) => e,
    );
    expect((twoStatements as { code?: string }).code).toBe('42601'); // one command per statement
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
    expect((await queryAsUserPg(pool, claimsOf(viewer), LIST)).rows.length).toBeGreaterThan(0);
  });

  it("runs anything but a data statement inside asUserPg's transaction block, where a procedure cannot commit and go on as the login user", async () => {
    await pool.query('create table public.qaupg_probe (who text)');
    await pool.query('grant insert on public.qaupg_probe to authenticated');
    await pool.query(`create procedure public.qaupg_commits() language plpgsql as $$
      begin
        insert into public.qaupg_probe values (current_user);
        commit;
        insert into public.qaupg_probe values (current_user);
      end $$`);
    await pool.query('grant execute on procedure public.qaupg_commits() to authenticated');
    await queryAsUserPg(pool, claimsOf(member), LIST);
    trips.reset();
    const err = await queryAsUserPg(pool, claimsOf(member), 'call public.qaupg_commits()').catch(
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe('2D000'); // invalid transaction termination
    expect(trips.roundTrips()).toBeGreaterThan(1); // asUserPg's path, not the one-write one
    expect((await pool.query('select who from public.qaupg_probe')).rows).toEqual([]);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
    // That path runs one statement too: a COMMIT smuggled after the first
    // statement never runs the rest as the login user.
    for (const text of [
      'commit; insert into public.qaupg_probe values (current_user)',
      'set local work_mem = 1000; commit; insert into public.qaupg_probe values (current_user)',
    ]) {
      const smuggled = await queryAsUserPg(pool, claimsOf(member), text).catch((e: unknown) => e);
      expect((smuggled as { code?: string }).code, text).toBe('42601');
    }
    expect((await pool.query('select who from public.qaupg_probe')).rows).toEqual([]);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
  });

  it('refuses to run inside a transaction some code leaked onto the pooled connection', async () => {
    await queryAsUserPg(pool, claimsOf(member), LIST);
    const leaked = await pool.connect();
    await leaked.query('begin');
    leaked.release();
    const err = await queryAsUserPg(pool, claimsOf(member), LIST).catch((e: unknown) => e);
    expect((err as RlsKitError).code).toBe('ERR_DB_QUERY');
    expect((err as RlsKitError).message).toMatch(/inside a transaction block.*rolled back/);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
  });

  it('recovers when the server forgot its prepared statements (DEALLOCATE ALL)', async () => {
    const before = await queryAsUserPg(pool, claimsOf(member), LIST);
    await pool.query('deallocate all');
    const after = await queryAsUserPg(pool, claimsOf(member), LIST);
    expect(after.rows).toEqual(before.rows);
    expect(await sessionState(pool)).toEqual(CLEAN_SESSION);
  });

  it('checks its arguments, claims and roles before taking a connection', async () => {
    trips.reset();
    for (const [claims, query, code] of [
      [{ ...claimsOf(member), role: 'service_role' }, LIST, 'ERR_ROLE_NOT_ALLOWED'],
      [{ ...claimsOf(member), role: 'postgres' }, LIST, 'ERR_ROLE_NOT_ALLOWED'],
      [[] as unknown as Record<string, unknown>, LIST, 'ERR_CLAIMS'],
      [claimsOf(member), '  ', 'ERR_USAGE'],
      [claimsOf(member), { text: 'select $1', values: 'x' }, 'ERR_USAGE'],
      [claimsOf(member), undefined, 'ERR_USAGE'],
    ] as const) {
      const err = await queryAsUserPg(
        pool,
        claims,
        query as unknown as Parameters<typeof queryAsUserPg>[2],
      ).catch((e: unknown) => e);
      expect((err as RlsKitError).code).toBe(code);
      expect((err as Error).message).not.toContain('\n');
    }
    expect(trips.roundTrips()).toBe(0);
  });
});

describe('isDataStatement', () => {
  it('sees the first keyword past blanks, comments (nested too) and parentheses', () => {
    for (const text of [
      'select 1',
      '  SELECT 1',
      '(select 1) union (select 2)',
      'with x as (delete from t returning 1) select * from x',
      'insert into t values (1)',
      'update t set a = 1',
      'delete from t',
      'merge into t using s on true when matched then do nothing',
      'values (1)',
      'table t',
      '-- note\nselect 1',
      '/* a /* nested */ comment */ select 1',
      '--a\rselect 1',
      '\v\fselect 1',
    ]) {
      expect(isDataStatement(text), text).toBe(true);
    }
    for (const text of [
      'call p()',
      'do $$ begin end $$',
      'set role postgres',
      'commit',
      'selective',
      'select_x()',
      '-- only a comment',
      '--\rcall p(\ninsert => 1)', // PostgreSQL ends a line comment at \r too
      '\u00a0select 1', // not a blank to PostgreSQL
      '\ufeffselect 1',
      '/* unterminated select 1',
      'explain analyze delete from t',
      '',
    ]) {
      expect(isDataStatement(text), text).toBe(false);
    }
  });
});
