import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, asUserPg, queryAsUser } from '../src/db/index.js';
import { mayPrepare } from '../src/db/pipeline.js';
import type { ExampleDatabase } from '../src/server/example-database.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { systemTool } from './helpers/system-tool.js';
import { kitClaims } from './helpers/tokens.js';

/*
 * The kit behind a real pooler in transaction mode: Debian's PgBouncer 1.18,
 * which does not carry protocol-level prepared statements between server
 * connections. The kit's prepared statements go missing (26000) or turn up
 * where the client did not make them (42P05); every call must still answer
 * correctly, and after a mismatch that recurs at once the kit stops
 * preparing on that pool.
 */

const PGBOUNCER = process.env.RLS_KIT_PGBOUNCER ?? '/usr/sbin/pgbouncer';
const available = systemTool({
  test: 'transaction-pooler',
  program: PGBOUNCER,
  present: spawnSync(PGBOUNCER, ['--version']).status === 0,
  pkg: 'pgbouncer',
  env: 'RLS_KIT_PGBOUNCER',
});

describe.skipIf(!available)('behind PgBouncer in transaction mode', () => {
  let db: TestDatabase;
  let dir: string;
  let bouncer: ChildProcess | undefined;
  let pool: pg.Pool;
  let kysely: Kysely<ExampleDatabase>;
  let member: { sub: string; org: string; role: string };
  let mismatches = 0;

  /** A kit token's claims for the member, issued 5 s ago. */
  const claims = () =>
    kitClaims({ sub: member.sub, org_id: member.org, user_role: member.role }, Date.now() - 5000);

  beforeAll(async () => {
    db = await createTestDatabase({ template: 'example' });
    const target = new URL(db.url);
    const port = await freePort();
    dir = mkdtempSync(path.join(os.tmpdir(), 'rls-kit-pgbouncer-'));
    // Traversable, not listable: PgBouncer drops to another user and must read its file.
    chmodSync(dir, 0o711);
    const ini = path.join(dir, 'pgbouncer.ini');
    writeFileSync(
      ini,
      [
        '[databases]',
        `* = host=${target.hostname} port=${target.port || 5432} user=${decodeURIComponent(target.username) || 'postgres'}${
          target.password ? ` password=${decodeURIComponent(target.password)}` : ''
        }`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = any',
        'pool_mode = transaction',
        // Several server connections, so consecutive transactions of one client land on different ones.
        'default_pool_size = 3',
        'server_round_robin = 1',
        'max_client_conn = 100',
        'ignore_startup_parameters = extra_float_digits,options',
        '',
      ].join('\n'),
    );
    chmodSync(ini, 0o644);
    // PgBouncer refuses to run as root; it only reads its file and logs to stderr.
    const asUserArgs = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    bouncer = spawn(PGBOUNCER, [...asUserArgs, ini], { stdio: ['ignore', 'ignore', 'pipe'] });
    await waitForPort(port, bouncer);
    pool = new pg.Pool({
      connectionString: `postgresql://postgres@127.0.0.1:${port}/${target.pathname.slice(1)}`,
      max: 6,
    });
    pool.on('error', () => undefined);
    // The server's answers that say a prepared statement is missing or already there.
    pool.on('connect', (client) => {
      (client as unknown as { connection: NodeJS.EventEmitter }).connection.on(
        'errorMessage',
        (msg: { code?: string }) => {
          if (msg.code === '26000' || msg.code === '42P05') mismatches++;
        },
      );
    });
    kysely = new Kysely<ExampleDatabase>({ dialect: new PostgresDialect({ pool }) });
    const direct = new pg.Client({ connectionString: db.url });
    await direct.connect();
    try {
      const { rows } = await direct.query<{ sub: string; org: string; role: string }>(
        `select m.user_id::text as sub, m.org_id::text as org, m.role from public.memberships m
          where m.role = 'member' and exists (select from public.documents d where d.org_id = m.org_id)
          order by m.org_id limit 1`,
      );
      member = rows[0]!;
    } finally {
      await direct.end();
    }
  });

  afterAll(async () => {
    await kysely?.destroy().catch(() => undefined);
    bouncer?.kill('SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  it('answers every call correctly while its prepared statements go missing', async () => {
    const list = () =>
      kysely
        .selectFrom('documents')
        .select(['id', 'org_id'])
        .orderBy('created_at', 'desc')
        .limit(50);
    const one = async (i: number) => {
      const rows =
        i % 3 === 0
          ? (await queryAsUser(kysely, claims(), list())).rows
          : i % 3 === 1
            ? await asUser(kysely, claims(), (trx) =>
                trx.selectFrom('documents').select(['id', 'org_id']).execute(),
              )
            : (
                await asUserPg(pool, claims(), (c) =>
                  c.query<{ id: string; org_id: string }>('select id, org_id from documents'),
                )
              ).rows;
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.org_id === member.org)).toBe(true);
    };
    // Concurrent callers, so PgBouncer hands each client's transactions to different server connections.
    for (let round = 0; round < 20; round++) {
      await Promise.all(Array.from({ length: 6 }, (_, k) => one(round * 6 + k)));
    }
    // The pooler did move sessions: the server refused kit statements, and the kit recovered.
    expect(mismatches).toBeGreaterThan(0);
    console.log(
      `transaction-pooler: ${mismatches} mismatches recovered; still preparing on the Kysely pool: ${mayPrepare(kysely)}, on the pg pool: ${mayPrepare(pool)}`,
    );
    // And from then on, unprepared, still correct.
    await Promise.all(Array.from({ length: 6 }, (_, k) => one(k)));
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString('utf8');
  });
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited: ${stderr.trim()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pgbouncer did not listen on ${port}: ${stderr.trim()}`);
}
