/**
 * `npm run bench -- service`: requests/s and p99 latency of the token
 * service's authenticated `GET /api/documents` against the floor — the
 * same query served with no auth at all — side by side in one run.
 *
 * - **service**: `startTokenService` (Hono on `@hono/node-server`) with the
 *   seeded example app; every request carries a bearer token of one of the
 *   seeded users (kit tokens minted with the service's keyring), so each is
 *   verified (signature or cache), checked against the revocation list, and
 *   its query runs as the user under row level security — the list is one
 *   statement, so through `queryAsUser` in one round trip.
 * - **floor**: in the same process as the service, a Hono app on
 *   `@hono/node-server` with a `pg` pool of the same size, answering the
 *   same columns in the same order with the equivalent `where org_id = $1`
 *   as `postgres` (no token, no transaction, no RLS) — a named prepared
 *   statement, as the service's are; the organization comes from the query
 *   string, cycling through the same users' organizations.
 *
 * - **asUser, no token** (a split of the difference, not a goal): the same
 *   stack and pool size, the query run as the user under RLS through the
 *   kit's `asUser` with each user's claims, but no token: service/asUser is
 *   what the token layer costs (parsing, verification cache, revocation),
 *   asUser/floor what the RLS transaction costs.
 *
 * - **one write, no token** (what-if, not a goal): the same transaction as
 *   asUser's — BEGIN, the settings statement, the query, the still-ours
 *   check, COMMIT — sent as one pipelined write (the kit's internal
 *   `PipelinedQuery`), i.e. one round trip like the floor's: the ceiling
 *   for an `asUser` that pipelines one-statement requests whole.
 * - **implicit** (what-if): the settings statement and the query alone
 *   before one Sync — Postgres runs them as one implicit transaction, so the
 *   transaction-local settings apply to the query and end with it (checked
 *   at start: nothing is left on the connection) — two statements instead
 *   of five.
 *
 * Each target runs in a child process of its own (one Node thread, as in
 * production; no target's JIT feedback or garbage-collector state taxes
 * another's), the load generator (autocannon) in this one. Every child
 * turns V8's allocation-site pretenuring off as `rls-kit start` does
 * (`tuneGarbageCollector`; `BENCH_SERVICE_GC_TUNING=0` keeps V8's defaults
 * everywhere, floor included). Rounds
 * alternate floor/service (order flipped each round) so drift and
 * background load hit both alike; the median round of each is reported and
 * the ratio is the median of per-round ratios. Every response must be 200
 * (a non-200 fails the benchmark: a fast error is not a result).
 *
 * Goal (issue 7, item 6): service ≥ 0.8× the floor in requests/s.
 *
 * Knobs (environment): `BENCH_SERVICE_SECONDS` (per round, default 5),
 * `BENCH_SERVICE_ROUNDS` (default 3), `BENCH_SERVICE_CONNECTIONS` (default
 * 16), `BENCH_SERVICE_POOL` (pool size of each, default 10),
 * `BENCH_SERVICE_GC_TUNING` (`0`: V8's defaults). Uses
 * `DATABASE_URL`, else the embedded default; the database
 * `rls_kit_bench_service` is (re)built from the example's migrations and
 * seed when they change, and left in place.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { describeUrl, openDatabase } from '../src/db/index.js';
import { migrate, runSqlFile } from '../src/db/migrate.js';
import { createKeyring, generateKey, rotate, writeKeyringFile } from '../src/keys/index.js';
import { createMinter, exampleClaimSchema } from '../src/tokens/index.js';
import { prepareBenchDatabase } from './lib/bench-database.js';
import { round1, round3 } from './lib/stats.js';
import type { BenchReport, Cell } from './run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SELF = fileURLToPath(import.meta.url);
const MIGRATIONS_DIR = path.join(ROOT, 'supabase', 'migrations');
const SEED = path.join(ROOT, 'supabase', 'seed.sql');
const BENCH_DB = 'rls_kit_bench_service';
const ISSUER = 'https://bench.rls-kit.test';
const AUDIENCE = 'authenticated';
/** The floor's query: the service's columns and order, with the policy's condition written out. */
const FLOOR_SQL =
  'select id, org_id, owner_id, title, body, created_at from public.documents ' +
  'where org_id = $1 order by created_at desc, id limit 50';

const SECONDS = Number(process.env.BENCH_SERVICE_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_SERVICE_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_SERVICE_CONNECTIONS ?? 16);
const POOL = Number(process.env.BENCH_SERVICE_POOL ?? 10);

/** The targets' URLs (each child prints its own once it listens). */
interface Served {
  service: string;
  floor: string;
  asuser: string;
  onewrite: string;
  implicit: string;
}

type Target = keyof Served;
/** Measured in this order in round 1, rotated by one each round. */
const TARGETS: readonly Target[] = ['floor', 'implicit', 'onewrite', 'asuser', 'service'];
const LABELS: Record<Target, string> = {
  floor: 'floor: same query, no auth (postgres, WHERE org_id)',
  onewrite: 'one write, no token: BEGIN, settings, query, check, COMMIT pipelined',
  implicit: 'one write, no token: settings + query in one implicit transaction',
  asuser: 'asUser, no token: RLS transaction as the user',
  service: 'service: bearer token, revocation, RLS as the user',
};

/** One user of the seed: who the requests come from. */
interface Persona {
  sub: string;
  org: string;
  role: string;
}

interface Measured {
  target: Target;
  round: number;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non200: number;
  errors: number;
}

// ---------------------------------------------------------------- child: the servers

async function serve(): Promise<void> {
  const databaseUrl = process.env.BENCH_SERVICE_DB!;
  const keysFile = process.env.BENCH_SERVICE_KEYS!;
  const target = process.env.BENCH_SERVICE_TARGET as Target;
  const [
    { Hono },
    { serve: listen },
    { pino },
    server,
    { asUser },
    { Kysely, PostgresDialect },
    { PipelinedQuery },
    settingsSql,
  ] = await Promise.all([
    import('hono'),
    import('@hono/node-server'),
    import('pino'),
    import('../src/server/index.js'),
    import('../src/db/as-user.js'),
    import('kysely'),
    import('../src/db/pipeline.js'),
    import('../src/db/request-settings.js'),
  ]);
  // As `rls-kit start` runs the service (its --no-gc-tuning keeps V8's defaults).
  if (process.env.BENCH_SERVICE_GC_TUNING !== '0') server.tuneGarbageCollector();

  const closers: (() => Promise<unknown>)[] = [];
  const start = (fetch: (r: Request) => Response | Promise<Response>) =>
    new Promise<string>((resolve) => {
      const s = listen({ fetch, port: 0, hostname: '127.0.0.1' }, (info) =>
        resolve(`http://127.0.0.1:${info.port}`),
      );
      closers.push(() => new Promise<void>((r) => s.close(() => r())));
    });
  const newPool = () => {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: POOL });
    pool.on('error', () => undefined);
    closers.push(() => pool.end());
    return pool;
  };
  const ok = (rows: unknown[]) =>
    new Response(JSON.stringify(rows), {
      status: 200,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });

  /** The no-token targets' claims, request settings and list query (one per user). */
  const asUsers = async () => {
    const userPool = newPool();
    // biome-ignore lint/suspicious/noExplicitAny: the bench queries one table by name only
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: userPool }) });
    const now = Math.floor(Date.now() / 1000);
    const claims = (await loadPersonas(databaseUrl)).map((p, i) => ({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: p.sub,
      role: 'authenticated',
      org_id: p.org,
      user_role: p.role,
      iat: now,
      exp: now + 3600,
      jti: `bench-${i}-${now}`,
    }));
    const listSql = db
      .selectFrom('documents')
      .select(['id', 'org_id', 'owner_id', 'title', 'body', 'created_at'])
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .limit(50)
      .compile();
    const settingsOf = await Promise.all(
      claims.map((c) =>
        settingsSql.resolveRequestSettings(c, {
          request: { method: 'GET', path: '/api/documents' },
        }),
      ),
    );
    return { db, userPool, claims, listSql, settingsOf };
  };
  // The pipeline describes one statement's rows: the settings run, their one row is dropped.
  const settingsNoRows = `select from (${settingsSql.SETTINGS_SQL}) s where s.applied < 0`;

  let url: string;
  if (target === 'service') {
    const service = await server.startTokenService({
      databaseUrl,
      keysFile,
      host: '127.0.0.1',
      port: 0,
      demo: false,
      migrate: false,
      issuer: ISSUER,
      audience: AUDIENCE,
      rateLimit: false,
      poolSize: POOL,
      logger: pino({ level: 'warn' }),
    });
    closers.push(() => service.close());
    url = service.url;
  } else if (target === 'floor') {
    const pool = newPool();
    const app = new Hono();
    app.get('/api/documents', async (c) => {
      const org = c.req.query('org') ?? '';
      // A named prepared statement, as the service's queryAsUser prepares its
      // statements: the floor gets the same plan caching, so the ratio is not
      // a planning cost one side skips.
      const { rows } = await pool.query({ name: 'bench_floor', text: FLOOR_SQL, values: [org] });
      return ok(rows);
    });
    url = await start(app.fetch);
  } else if (target === 'asuser') {
    // The service's query through asUser with each user's claims, no token.
    const { db, claims } = await asUsers();
    closers.push(() => db.destroy());
    const users = new Hono();
    users.get('/api/documents', async (c) => {
      const who = claims[Number(c.req.query('u'))]!;
      const rows = await asUser(db, who, (trx) =>
        trx
          .selectFrom('documents')
          .select(['id', 'org_id', 'owner_id', 'title', 'body', 'created_at'])
          .orderBy('created_at', 'desc')
          .orderBy('id')
          .limit(50)
          .execute(),
      );
      return ok(rows);
    });
    url = await start(users.fetch);
  } else if (target === 'onewrite') {
    // asUser's transaction as one pipelined write (one round trip).
    const { listSql, settingsOf } = await asUsers();
    const onePool = newPool();
    const one = new Hono();
    one.get('/api/documents', async (c) => {
      const settings = settingsOf[Number(c.req.query('u'))]!;
      const client = await onePool.connect();
      try {
        const result = await client.query(
          new PipelinedQuery([
            { text: 'begin' },
            { text: settingsNoRows, values: settings.values, prepare: true },
            {
              text: listSql.sql,
              values: listSql.parameters.map(String),
              rows: true,
              prepare: true,
            },
            { text: settingsSql.END_CHECK_SQL },
            { text: 'commit' },
          ]) as unknown as string,
        );
        return ok(result.rows);
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    });
    url = await start(one.fetch);
  } else {
    // implicit: the settings statement and the query before one Sync.
    const { listSql, settingsOf } = await asUsers();
    const onePool = newPool();
    const implicitQuery = (settings: (typeof settingsOf)[number]) =>
      new PipelinedQuery([
        { text: settingsNoRows, values: settings.values, prepare: true },
        { text: listSql.sql, values: listSql.parameters.map(String), rows: true, prepare: true },
      ]) as unknown as string;
    {
      // Nothing of the implicit transaction may survive on the connection.
      const client = await onePool.connect();
      try {
        await client.query(implicitQuery(settingsOf[0]!));
        const { rows } = await client.query(
          "select current_setting('role') as role, coalesce(current_setting('request.jwt.claims', true), '') as claims",
        );
        if (rows[0].role !== 'none' || rows[0].claims !== '') {
          throw new Error(
            'the implicit-transaction what-if leaves settings behind: not a fair row',
          );
        }
      } finally {
        client.release();
      }
    }
    const implicit = new Hono();
    implicit.get('/api/documents', async (c) => {
      const settings = settingsOf[Number(c.req.query('u'))]!;
      // A checked-out client: pg-pool's query() does not call back for a submittable.
      const client = await onePool.connect();
      try {
        return ok((await client.query(implicitQuery(settings))).rows);
      } finally {
        client.release();
      }
    });
    url = await start(implicit.fetch);
  }

  process.stdout.write(`${JSON.stringify({ [target]: url })}\n`);
  const stop = async () => {
    await Promise.allSettled(closers.map((close) => close()));
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.stdin.on('end', () => void stop()); // the parent went away
  process.stdin.resume();
}

// ---------------------------------------------------------------- parent: the load

/**
 * Runs the benchmark; see the file comment.
 *
 * @example
 * ```ts
 * const report = await run();
 * console.log(report.summary);
 * ```
 */
export async function run(): Promise<BenchReport> {
  const log = (line: string) => process.stderr.write(`[bench service] ${line}\n`);
  const database = await openDatabase();
  const loadBefore = os.loadavg();
  const children: ChildProcess[] = [];
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rls-kit-bench-service-'));
  try {
    const { url } = await prepareBenchDatabase({
      adminUrl: database.url,
      name: BENCH_DB,
      fingerprint: fingerprint(),
      log,
      build: async (target) => {
        await migrate({ url: target, dir: MIGRATIONS_DIR });
        await runSqlFile(target, SEED);
      },
    });
    log(
      `database ${BENCH_DB} on ${database.embedded ? 'the embedded server' : describeUrl(database.url)}`,
    );

    const keysFile = path.join(dir, 'keys.json');
    const keyring = (await rotate(createKeyring([await generateKey()]))).keyring;
    await writeKeyringFile(keysFile, keyring);
    const personas = await loadPersonas(url);
    const minter = await createMinter({
      keyring,
      issuer: ISSUER,
      audience: AUDIENCE,
      claimSchema: exampleClaimSchema,
      ttl: '1h',
    });
    const tokens = await Promise.all(
      personas.map((p) =>
        minter.mint({ sub: p.sub, claims: { org_id: p.org, user_role: p.role as 'member' } }),
      ),
    );

    // One process per target, so no target's JIT feedback or garbage-collector
    // state taxes another's (the service runs alone in production too); only
    // the process under load is busy.
    const spawnTarget = (target: Target) => {
      const child = spawn(process.execPath, ['--import', 'tsx', SELF, '--serve'], {
        cwd: ROOT,
        env: {
          ...process.env,
          BENCH_SERVICE_DB: url,
          BENCH_SERVICE_KEYS: keysFile,
          BENCH_SERVICE_TARGET: target,
        },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      children.push(child);
      return firstLine(child);
    };
    const served = Object.assign({}, ...(await Promise.all(TARGETS.map(spawnTarget)))) as Served;
    log(`service ${served.service}, floor ${served.floor}`);

    /** The path (and header) of request `i` of `target`: users cycled, the same for every target. */
    const request = (
      target: Target,
      i: number,
    ): { path: string; headers?: Record<string, string> } =>
      target === 'floor'
        ? { path: `/api/documents?org=${personas[i]!.org}` }
        : target === 'asuser' || target === 'onewrite' || target === 'implicit'
          ? { path: `/api/documents?u=${i}` }
          : { path: '/api/documents', headers: { authorization: `Bearer ${tokens[i]}` } };

    // Correctness first: all three answer each user byte for byte the same (else the comparison is unfair).
    for (const i of personas.keys()) {
      const bodies = await Promise.all(
        TARGETS.map(async (t) => {
          const { path: p, headers } = request(t, i);
          const res = await fetch(`${served[t]}${p}`, headers ? { headers } : {});
          return `${res.status} ${await res.text()}`;
        }),
      );
      if (!bodies[0]!.startsWith('200 [{') || bodies.some((b) => b !== bodies[0])) {
        throw new Error(
          `the targets disagree for user ${personas[i]!.sub}: the comparison is not fair`,
        );
      }
    }

    const load = (target: Target, seconds: number) => {
      let next = 0;
      return autocannon({
        url: served[target],
        connections: CONNECTIONS,
        duration: seconds,
        requests: [
          {
            method: 'GET',
            setupRequest: (req) => ({ ...req, ...request(target, next++ % personas.length) }),
          },
        ],
      });
    };

    log('warm-up');
    for (const t of TARGETS) await load(t, 2);
    const rounds: Measured[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = TARGETS.map((_, k) => TARGETS[(k + r) % TARGETS.length]!);
      for (const target of order) {
        const result = await load(target, SECONDS);
        const m: Measured = {
          target,
          round: r + 1,
          requests: result.requests.total,
          rps: Math.round(result.requests.total / (result.duration || SECONDS)),
          p50Ms: result.latency.p50,
          p99Ms: result.latency.p99,
          non200: result.requests.total - (result.statusCodeStats?.['200']?.count ?? 0),
          errors: result.errors + result.timeouts,
        };
        rounds.push(m);
        log(`round ${r + 1} ${target}: ${m.rps} req/s, p50 ${m.p50Ms} ms, p99 ${m.p99Ms} ms`);
        if (m.non200 > 0 || m.errors > 0) {
          throw new Error(
            `${target} answered ${m.non200} non-200 responses and ${m.errors} errors in round ${r + 1}`,
          );
        }
      }
    }

    const of = (t: Target) => rounds.filter((m) => m.target === t);
    const medianRound = (t: Target) => {
      const sorted = [...of(t)].sort((a, b) => a.rps - b.rps);
      return sorted[Math.floor(sorted.length / 2)]!;
    };
    /** Median over rounds of a/b for one measure. */
    const ratio = (a: Target, b: Target, measure: 'rps' | 'p99Ms' = 'rps') =>
      round3(
        median(of(a).map((x) => x[measure] / of(b).find((y) => y.round === x.round)![measure])),
      );
    const goal = ratio('service', 'floor');
    const loadAfter = os.loadavg();
    return {
      title: 'Token service: authenticated GET /api/documents vs the no-auth floor',
      rows: TARGETS.map((t) => row(LABELS[t], medianRound(t))),
      summary: {
        'service / floor, req/s (median of per-round ratios)': goal,
        'goal (≥ 0.8× the floor)': goal >= 0.8 ? 'met' : 'not met',
        'service / floor, p99 latency': ratio('service', 'floor', 'p99Ms'),
        'asUser / floor, req/s (the RLS transaction)': ratio('asuser', 'floor'),
        'service / asUser, req/s (the token layer)': ratio('service', 'asuser'),
        'one write / floor, req/s (asUser pipelined whole, what-if)': ratio('onewrite', 'floor'),
        'implicit / floor, req/s (settings + query, one implicit transaction, what-if)': ratio(
          'implicit',
          'floor',
        ),
        'V8 allocation-site pretenuring (every target)':
          process.env.BENCH_SERVICE_GC_TUNING === '0'
            ? 'on (V8 default)'
            : 'off, as rls-kit start runs the service',
        'load average (1m) before → after': `${round1(loadBefore[0]!)} → ${round1(loadAfter[0]!)}`,
      },
      notes: [
        `${ROUNDS} rounds × ${SECONDS} s per target (order rotated each round), ${CONNECTIONS} connections, ` +
          `pool ${POOL} each; ${personas.length} seeded users cycled; each server in a child process of its own ` +
          '(one Node thread, as in production), autocannon in the parent; 2 cores shared with Postgres.',
        'The service logs at warn (no per-request lines) and runs without rate limits; the floor has no transaction, no role switch, no RLS; rows are the rows of the median round by req/s.',
      ],
      details: {
        rounds,
        personas: personas.length,
        loadBefore,
        loadAfter,
        connections: CONNECTIONS,
        pool: POOL,
      },
    };
  } finally {
    await Promise.all(
      children
        .filter((child) => child.exitCode === null)
        .map((child) => {
          child.kill('SIGTERM');
          return new Promise((r) => child.once('exit', r));
        }),
    );
    await fs.rm(dir, { recursive: true, force: true });
    await database.close();
  }
}

function row(label: string, m: Measured): Record<string, Cell> {
  return {
    target: label,
    'req/s': m.rps,
    'p50 ms': m.p50Ms,
    'p99 ms': m.p99Ms,
    requests: m.requests,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The seeded users with their (first) organization and role there. */
async function loadPersonas(url: string): Promise<Persona[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<Persona>(
      `select distinct on (m.user_id) m.user_id::text as sub, m.org_id::text as org, m.role
         from public.memberships m order by m.user_id, m.org_id`,
    );
    if (rows.length === 0) throw new Error('the bench database has no memberships (seed missing?)');
    return rows;
  } finally {
    await client.end();
  }
}

function fingerprint(): string {
  const hash = createHash('sha256');
  for (const f of [
    ...readdirSorted(MIGRATIONS_DIR).map((n) => path.join(MIGRATIONS_DIR, n)),
    SEED,
    path.join(ROOT, 'src/db/migrate.ts'),
  ]) {
    hash.update(path.basename(f));
    hash.update(readFileSync(f));
  }
  return hash.digest('hex');
}

function readdirSorted(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
}

function firstLine(child: ChildProcess): Promise<Partial<Served>> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      child.stdout!.off('data', onData);
      try {
        resolve(JSON.parse(buffered.slice(0, nl)) as Partial<Served>);
      } catch (err) {
        reject(err);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the server process exited early (${code})`)));
  });
}

if (process.argv.includes('--serve') && process.argv[1] !== undefined) {
  if (import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
    await serve();
  }
}
