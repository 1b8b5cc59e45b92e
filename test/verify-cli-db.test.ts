/**
 * `rls-kit verify --db-url`: revocation through `rls_kit.token_status` in a
 * real database. The function is a stand-in created here (the revocation
 * migration lands separately); the CLI must accept each documented answer
 * shape, refuse revoked tokens, fail closed on errors, and say clearly when
 * the kit's migrations are missing.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { AUD, ISS, kitToken, makeKey } from './helpers/tokens.js';

const cli = (argv: string[], stdin = '') => runCliCaptured(['verify', ...argv], { stdin });

const key = makeKey('ES256');
let db: TestDatabase;
let sql: pg.Client;
let args: string[];

beforeAll(async () => {
  db = await createTestDatabase({ template: 'blank' });
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  const dir = await mkdtemp(join(tmpdir(), 'rls-kit-verify-db-'));
  const jwks = join(dir, 'jwks.json');
  await writeFile(jwks, JSON.stringify({ keys: [key.jwk] }));
  args = ['--iss', ISS, '--aud', AUD, '--jwks', jwks, '--db-url', db.url];
});

afterAll(async () => {
  await sql?.end();
  await db?.drop();
});

/** (Re)defines the stand-in token_status with `body` returning `kind`. */
async function statusFunction(kind: 'jsonb' | 'boolean', body: string): Promise<void> {
  await sql.query('create schema if not exists rls_kit');
  await sql.query('create table if not exists rls_kit.test_revoked (jti text primary key)');
  await sql.query('drop function if exists rls_kit.token_status(jsonb)');
  await sql.query(
    `create function rls_kit.token_status(claims jsonb) returns ${kind} language plpgsql set search_path = '' as $$ begin ${body} end $$`,
  );
}

describe('rls-kit verify --db-url', () => {
  it('without the kit migrations: one line naming them, ERR_REVOCATION_UNAVAILABLE, exit 1', async () => {
    const run = await cli([...args, kitToken(key)]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/rls_kit\.token_status.*migrations.*\[ERR_REVOCATION_UNAVAILABLE\]/);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('refuses a revoked token and accepts a live one ({"active": bool} answer)', async () => {
    await statusFunction(
      'jsonb',
      `return jsonb_build_object('active', not exists (select 1 from rls_kit.test_revoked r where r.jti = claims->>'jti'), 'reason', null);`,
    );
    const live = kitToken(key, { jti: 'live-1' });
    const dead = kitToken(key, { jti: 'dead-1' });
    await sql.query("insert into rls_kit.test_revoked values ('dead-1') on conflict do nothing");
    expect((await cli([...args, live])).code).toBe(0);
    const run = await cli([...args, dead]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({ ok: false, code: 'ERR_TOKEN_REVOKED' });
  });

  it('streams stdin with the check on every line, the same token included', async () => {
    const live = kitToken(key, { jti: 'live-2' });
    const dead = kitToken(key, { jti: 'dead-1' });
    const run = await cli(args, [live, dead, live].join('\n'));
    expect(run.code).toBe(0);
    expect(
      run.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).ok),
    ).toEqual([true, false, true]);
  });

  it('accepts a boolean answer (true = active)', async () => {
    await statusFunction('boolean', `return coalesce(claims->>'jti', '') <> 'dead-1';`);
    expect((await cli([...args, kitToken(key, { jti: 'live-3' })])).code).toBe(0);
    expect(JSON.parse((await cli([...args, kitToken(key, { jti: 'dead-1' })])).stdout).code).toBe(
      'ERR_TOKEN_REVOKED',
    );
  });

  it('fails closed when the function raises or answers an unknown shape', async () => {
    await statusFunction('jsonb', `raise exception 'revocation tables locked';`);
    let run = await cli([...args, kitToken(key)]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({ ok: false, code: 'ERR_REVOCATION_UNAVAILABLE' });
    await statusFunction('jsonb', `return '{"maybe": true}'::jsonb;`);
    run = await cli([...args, kitToken(key)]);
    expect(JSON.parse(run.stdout)).toEqual({ ok: false, code: 'ERR_REVOCATION_UNAVAILABLE' });
  });
});
