/**
 * `npm run bench -- service`: requests/s and p99 latency of the token
 * service's authenticated `GET /api/documents` against the floor — the
 * same query served with no auth at all — side by side in one run.
 *
 * - **service**: `startTokenService` (Hono on `@hono/node-server`) with the
 *   seeded example app; every request carries a bearer token of one of the
 *   seeded users (kit tokens minted with the service's keyring), so each is
 *   verified (signature or cache), checked against the revocation list, and
 *   its query runs as the user under row level security.
 * - **floor**: in the same process as the service, a Hono app on
 *   `@hono/node-server` with a `pg` pool of the same size, answering the
 *   same columns in the same order with the equivalent `where org_id = $1`
 *   as `postgres` (no token, no transaction, no RLS); the organization comes
 *   from the query string, cycling through the same users' organizations.
 *
 * Both servers run in one child process (one core for the server, as in
 * production), the load generator (autocannon) in this one. Rounds
 * alternate floor/service (order flipped each round) so drift and
 * background load hit both alike; the median round of each is reported and
 * the ratio is the median of per-round ratios. Every response must be 200
 * (a non-200 fails the benchmark: a fast error is not a result).
 *
 * Goal (issue 7, item 6): service ≥ 0.8× the floor in requests/s.
 *
 * Knobs (environment): `BENCH_SERVICE_SECONDS` (per round, default 5),
 * `BENCH_SERVICE_ROUNDS` (default 3), `BENCH_SERVICE_CONNECTIONS` (default
 * 16), `BENCH_SERVICE_POOL` (pool size of both, default 10). Uses
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

/** What the child prints once both servers listen. */
interface Served {
  service: string;
  floor: string;
}

/** One user of the seed: who the requests come from. */
interface Persona {
  sub: string;
  org: string;
  role: string;
}

interface Measured {
  target: 'floor' | 'service';
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
  const [{ Hono }, { serve: listen }, { pino }, server] = await Promise.all([
    import('hono'),
    import('@hono/node-server'),
    import('pino'),
    import('../src/server/index.js'),
  ]);
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

  const pool = new pg.Pool({ connectionString: databaseUrl, max: POOL });
  pool.on('error', () => undefined);
  const app = new Hono();
  app.get('/api/documents', async (c) => {
    const org = c.req.query('org') ?? '';
    const { rows } = await pool.query({ text: FLOOR_SQL, values: [org], name: 'floor_docs' });
    return new Response(JSON.stringify(rows), {
      status: 200,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  });
  const floor = await new Promise<{ url: string; close: () => Promise<void> }>((resolve) => {
    const s = listen({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) =>
      resolve({
        url: `http://127.0.0.1:${info.port}`,
        close: () => new Promise<void>((r) => s.close(() => r())),
      }),
    );
  });
  const served: Served = { service: service.url, floor: floor.url };
  process.stdout.write(`${JSON.stringify(served)}\n`);
  const stop = async () => {
    await Promise.allSettled([service.close(), floor.close(), pool.end()]);
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
  let child: ChildProcess | undefined;
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

    child = spawn(process.execPath, ['--import', 'tsx', SELF, '--serve'], {
      cwd: ROOT,
      env: { ...process.env, BENCH_SERVICE_DB: url, BENCH_SERVICE_KEYS: keysFile },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const served = await firstLine(child);
    log(`service ${served.service}, floor ${served.floor}`);

    // Correctness first: the service answers each user exactly what the floor answers for their org.
    for (const [i, p] of personas.entries()) {
      const a = await (
        await fetch(`${served.service}/api/documents`, {
          headers: { authorization: `Bearer ${tokens[i]}` },
        })
      ).text();
      const b = await (await fetch(`${served.floor}/api/documents?org=${p.org}`)).text();
      if (a !== b) {
        throw new Error(
          `service and floor disagree for user ${p.sub} (the comparison is not fair)`,
        );
      }
    }

    const load = (target: 'floor' | 'service', seconds: number) => {
      let next = 0;
      return autocannon({
        url: target === 'floor' ? served.floor : served.service,
        connections: CONNECTIONS,
        duration: seconds,
        requests: [
          {
            method: 'GET',
            setupRequest: (req) => {
              const i = next++ % personas.length;
              return target === 'floor'
                ? { ...req, path: `/api/documents?org=${personas[i]!.org}` }
                : {
                    ...req,
                    path: '/api/documents',
                    headers: { authorization: `Bearer ${tokens[i]}` },
                  };
            },
          },
        ],
      });
    };

    log('warm-up');
    await load('floor', 2);
    await load('service', 2);
    const rounds: Measured[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order: ('floor' | 'service')[] =
        r % 2 === 0 ? ['floor', 'service'] : ['service', 'floor'];
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
        log(`round ${r + 1} ${target}: ${m.rps} req/s, p99 ${m.p99Ms} ms`);
        if (m.non200 > 0 || m.errors > 0) {
          throw new Error(
            `${target} answered ${m.non200} non-200 responses and ${m.errors} errors in round ${r + 1}`,
          );
        }
      }
    }

    const of = (t: Measured['target']) => rounds.filter((m) => m.target === t);
    const medianRound = (t: Measured['target']) => {
      const sorted = [...of(t)].sort((a, b) => a.rps - b.rps);
      return sorted[Math.floor(sorted.length / 2)]!;
    };
    const ratios = of('service').map(
      (s) => s.rps / of('floor').find((f) => f.round === s.round)!.rps,
    );
    const p99Ratios = of('service').map(
      (s) => s.p99Ms / of('floor').find((f) => f.round === s.round)!.p99Ms,
    );
    const ratio = round3(median(ratios));
    const floor = medianRound('floor');
    const svc = medianRound('service');
    const loadAfter = os.loadavg();
    const rows: Record<string, Cell>[] = [
      row('floor: same query, no auth (postgres, WHERE org_id)', floor),
      row('service: bearer token, revocation, RLS as the user', svc),
    ];
    return {
      title: 'Token service: authenticated GET /api/documents vs the no-auth floor',
      rows,
      summary: {
        'service / floor (req/s, median of per-round ratios)': ratio,
        'service p99 / floor p99 (median of rounds)': round3(median(p99Ratios)),
        'goal (≥ 0.8× the floor)': ratio >= 0.8 ? 'met' : 'not met',
        'load average (1m) before → after': `${round1(loadBefore[0]!)} → ${round1(loadAfter[0]!)}`,
      },
      notes: [
        `${ROUNDS} rounds × ${SECONDS} s per target, ${CONNECTIONS} connections, pool ${POOL} each; ` +
          `${personas.length} seeded users cycled; both servers in one child process, autocannon in the parent.`,
        'The service logs at warn (no per-request lines) and runs without rate limits; the floor has no transaction, no role switch, no RLS.',
      ],
      details: { rounds, personas: personas.length, loadBefore, loadAfter },
    };
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
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

function firstLine(child: ChildProcess): Promise<Served> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      child.stdout!.off('data', onData);
      try {
        resolve(JSON.parse(buffered.slice(0, nl)) as Served);
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
