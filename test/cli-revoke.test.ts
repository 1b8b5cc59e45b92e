/**
 * `rls-kit revoke` and `rls-kit revocations list|purge` against a real
 * database (template 'kit'): what they write, what they print, and the exit
 * codes for bad input (1) and bad usage (2), with nothing changed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

const cli = (argv: string[], env: NodeJS.ProcessEnv = {}) => runCliCaptured(argv, { env });

let db: TestDatabase;
let blank: TestDatabase;
let sql: pg.Client;

beforeAll(async () => {
  [db, blank] = await Promise.all([
    createTestDatabase({ template: 'kit' }),
    createTestDatabase({ template: 'blank' }),
  ]);
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
});

afterAll(async () => {
  await sql?.end();
  await db?.drop();
  await blank?.drop();
});

async function counts(): Promise<number[]> {
  const { rows } = await sql.query<{ t: number; s: number; x: number }>(
    `select (select count(*)::int from rls_kit.revoked_tokens) as t,
            (select count(*)::int from rls_kit.subject_revocations) as s,
            (select count(*)::int from rls_kit.revoked_sessions) as x`,
  );
  return [rows[0]!.t, rows[0]!.s, rows[0]!.x];
}

async function status(claims: Record<string, unknown>): Promise<string | null> {
  const { rows } = await sql.query<{ s: { reason: string | null } }>(
    'select rls_kit.token_status($1::jsonb) as s',
    [JSON.stringify(claims)],
  );
  return rows[0]!.s.reason;
}

const iat = () => Math.floor(Date.now() / 1000) - 5;

describe('rls-kit revoke', () => {
  it('--jti --exp revokes one token and prints what it did', async () => {
    const jti = randomBytes(16).toString('base64url');
    const exp = new Date(Date.now() + 3_600_000).toISOString();
    const run = await cli([
      'revoke',
      '--db-url',
      db.url,
      // `=`: a base64url jti may start with '-', which parseArgs would
      // otherwise take for an option (1 run in 64 failed that way).
      `--jti=${jti}`,
      '--exp',
      exp,
      '--reason',
      'leak',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      revoked: 'token',
      jti,
      expires_at: exp,
      reason: 'leak',
    });
    expect(await status({ sub: randomUUID(), iat: iat(), jti })).toBe('token_revoked');
  });

  it('--jti with --exp as epoch seconds, and --db-url from DATABASE_URL', async () => {
    const jti = randomBytes(16).toString('base64url');
    const exp = Math.floor(Date.now() / 1000) + 600;
    const run = await cli(['revoke', `--jti=${jti}`, '--exp', String(exp)], {
      DATABASE_URL: db.url,
    });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).expires_at).toBe(new Date(exp * 1000).toISOString());
    expect(await status({ sub: randomUUID(), iat: iat(), jti })).toBe('token_revoked');
  });

  it('--sub revokes the user and prints the cut-off; --keep-sessions is passed on', async () => {
    const sub = randomUUID();
    const run = await cli(['revoke', '--db-url', db.url, '--sub', sub.toUpperCase()]);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({ revoked: 'subject', sub, end_sessions: true, reason: null });
    expect(new Date(out.not_before).getTime() % 1000).toBe(0);
    expect(await status({ sub, iat: iat() })).toBe('subject_revoked');

    const kept = await cli([
      'revoke',
      '--db-url',
      db.url,
      '--sub',
      randomUUID(),
      '--keep-sessions',
    ]);
    expect(kept.code).toBe(0);
    expect(JSON.parse(kept.stdout).end_sessions).toBe(false);
  });

  it('--session ends a session', async () => {
    const sid = randomUUID();
    const run = await cli(['revoke', '--db-url', db.url, '--session', sid]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ revoked: 'session', session_id: sid, reason: null });
    expect(await status({ sub: randomUUID(), iat: iat(), sid })).toBe('session_revoked');
  });

  it('rejects malformed input with one line, ERR_REVOKE_INPUT, exit 1, nothing changed', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const before = await counts();
    const cases: [string[], RegExp][] = [
      [['--jti', 'has space', '--exp', future], /--jti is malformed/],
      [['--jti', 'x'.repeat(256), '--exp', future], /--jti is malformed/],
      [['--jti', 'abc', '--exp', 'tomorrow'], /--exp "tomorrow" is not a timestamp/],
      [['--jti', 'abc', '--exp', '2030-01-01T00:00:00'], /is not a timestamp/],
      [['--jti', 'abc', '--exp', '2030-02-31T00:00:00Z'], /not a valid date|not a timestamp/],
      [['--jti', 'abc', '--exp', '2020-01-01T00:00:00Z'], /is not in the future/],
      [['--sub', 'not-a-uuid'], /--sub "not-a-uuid" is not a uuid/],
      [['--session', '1234'], /--session "1234" is not a uuid/],
    ];
    for (const [argv, message] of cases) {
      const run = await cli(['revoke', '--db-url', db.url, ...argv]);
      expect([argv, run.code]).toEqual([argv, 1]);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(message);
      expect(run.stderr).toMatch(/ \[ERR_REVOKE_INPUT\]\n$/);
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    const longReason = await cli([
      'revoke',
      '--db-url',
      db.url,
      '--sub',
      randomUUID(),
      '--reason',
      'r'.repeat(1001),
    ]);
    expect(longReason.code).toBe(1);
    expect(longReason.stderr).toMatch(/--reason is over 1000 characters \[ERR_REVOKE_INPUT\]\n$/);
    expect(await counts()).toEqual(before);
  });

  it('a jti starting with a dash: one-line hint to use --jti=…, and that form works', async () => {
    const jti = `-${randomBytes(15).toString('base64url')}`;
    const exp = new Date(Date.now() + 3_600_000).toISOString();
    const bad = await cli(['revoke', '--db-url', db.url, '--jti', jti, '--exp', exp]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('--jti=-XYZ');
    const good = await cli(['revoke', '--db-url', db.url, `--jti=${jti}`, '--exp', exp]);
    expect(good.code).toBe(0);
    expect(JSON.parse(good.stdout).jti).toBe(jti);
  });

  it('rejects bad usage with exit 2', async () => {
    const uuid = randomUUID();
    const cases: string[][] = [
      [],
      ['--jti', 'abc'],
      ['--exp', '2030-01-01T00:00:00Z', '--sub', uuid],
      ['--sub', uuid, '--session', uuid],
      ['--session', uuid, '--keep-sessions'],
      ['--sub', uuid, '--bogus'],
    ];
    for (const argv of cases) {
      const run = await cli(['revoke', '--db-url', db.url, ...argv]);
      expect([argv, run.code]).toEqual([argv, 2]);
      expect(run.stderr).toMatch(/^rls-kit: .*\[ERR_USAGE\]\n$/);
    }
    const noDb = await cli(['revoke', '--sub', uuid]);
    expect(noDb.code).toBe(2);
    expect(noDb.stderr).toMatch(/--db-url is required/);
  });

  it('a database without the kit: one line naming the migrations, exit 1', async () => {
    const run = await cli(['revoke', '--db-url', blank.url, '--sub', randomUUID()]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/rls-kit migrate.*\[ERR_MIGRATION\]/);
  });
});

describe('rls-kit revocations', () => {
  it('list prints JSON lines, newest first, up to --limit', async () => {
    const sid = randomUUID();
    await sql.query('select rls_kit.revoke_session($1, $2)', [sid, 'listed']);
    const run = await cli(['revocations', 'list', '--db-url', db.url, '--limit', '3']);
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ kind: 'session', session_id: sid, reason: 'listed' });
    const all = await cli(['revocations', 'list'], { DATABASE_URL: db.url });
    const kinds = new Set(
      all.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).kind),
    );
    expect([...kinds].sort()).toEqual(['session', 'subject', 'token']);
    const bad = await cli(['revocations', 'list', '--db-url', db.url, '--limit', '0']);
    expect(bad.code).toBe(2);
  });

  it('purge deletes expired revocations and expired refresh families, and prints both counts', async () => {
    // Rows already past their expiry (written directly: revoke_token refuses a past expiry).
    await sql.query(
      "insert into rls_kit.revoked_tokens (jti, expires_at) select 'old-' || g, now() - interval '1 minute' from generate_series(1, 3) g",
    );
    // Two refresh families: one past its absolute end (2 rows: used parent + child), one live.
    const dead = randomUUID();
    const live = randomUUID();
    await sql.query(
      `insert into rls_kit.refresh_tokens (hash, family, parent, sub, expires_at, idle_expires_at, used_at)
       values (sha256($1::bytea), $3, null, $5, now() - interval '1 second', now() - interval '1 second', now() - interval '1 hour'),
              (sha256($2::bytea), $3, sha256($1::bytea), $5, now() - interval '1 second', now() - interval '1 second', null),
              (sha256($6::bytea), $4, null, $5, now() + interval '1 day', now() + interval '1 hour', null)`,
      [randomBytes(32), randomBytes(32), dead, live, randomUUID(), randomBytes(32)],
    );
    const run = await cli(['revocations', 'purge', '--db-url', db.url]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ revocations: 3, refresh_tokens: 2 });
    expect(run.stderr).toBe('purged 3 expired revocations and 2 refresh tokens\n');
    const { rows } = await sql.query<{ family: string }>(
      'select family::text from rls_kit.refresh_tokens where family = any($1::uuid[])',
      [[dead, live]],
    );
    expect(rows).toEqual([{ family: live }]);
    const again = await cli(['revocations', 'purge', '--db-url', db.url]);
    expect(JSON.parse(again.stdout)).toEqual({ revocations: 0, refresh_tokens: 0 });
  });

  it('a database without the kit: ERR_MIGRATION, exit 1', async () => {
    const run = await cli(['revocations', 'list', '--db-url', blank.url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/rls-kit migrate.*\[ERR_MIGRATION\]/);
  });
});
