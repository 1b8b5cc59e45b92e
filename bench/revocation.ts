import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import pg from 'pg';
import { describeUrl, openDatabase } from '../src/db/index.js';
import { migrate } from '../src/db/migrate.js';
import {
  createRevocationList,
  createRevocationRelay,
  type RevocationList,
} from '../src/revocation/index.js';
import type { RevocationCheck } from '../src/tokens/revocation-check.js';
import { createVerifier } from '../src/tokens/verify.js';
import { redisAnswers } from '../test/helpers/redis.js';
import { spawnRevocationWatcher } from '../test/helpers/revocation-watcher.js';
import { prepareBenchDatabase } from './lib/bench-database.js';
import { measureGuardCost, renderGuardCost } from './lib/guard-cost.js';
import { round1, round3 } from './lib/stats.js';
import type { BenchReport, Cell } from './run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MIGRATIONS_DIR = path.join(ROOT, 'supabase', 'migrations');
const BENCH_DB = 'rls_kit_bench_revocation';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SIZES = [0, 10_000, 1_000_000] as const;
const PROBES = 4096;
const ORGS = 200;
const DOCS_PER_ORG = 500;
const ISS = 'https://bench.rls-kit.invalid';
const AUD = 'bench';

const log = (line: string) => process.stderr.write(`[bench revocation] ${line}\n`);

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replace(/[_,]/g, ''));
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
}

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

const ROLES = ['owner', 'admin', 'member', 'viewer'] as const;
const ROLE_ARRAY = `array[${ROLES.map((r) => `'${r}'`).join(', ')}]`;
const GENERATE_SQL: readonly string[] = [
  `insert into public.organizations (id, name)
   select md5('rev-org:' || o)::uuid, 'Org ' || o from generate_series(1, ${ORGS}) o`,
  `insert into auth.users (id, aud, role, email, created_at, updated_at)
   select md5('rev-user:' || o || ':' || r.role)::uuid, 'authenticated', 'authenticated',
          'org' || o || '-' || r.role || '@bench.example.com', now(), now()
   from generate_series(1, ${ORGS}) o cross join unnest(${ROLE_ARRAY}) as r(role)`,
  `insert into public.memberships (org_id, user_id, role)
   select md5('rev-org:' || o)::uuid, md5('rev-user:' || o || ':' || r.role)::uuid, r.role
   from generate_series(1, ${ORGS}) o cross join unnest(${ROLE_ARRAY}) as r(role)`,
  // Time order with organizations interleaved, as in the rls benchmark.
  `insert into public.documents (org_id, owner_id, title, body, created_at)
   select md5('rev-org:' || (g % ${ORGS} + 1))::uuid,
          md5('rev-user:' || (g % ${ORGS} + 1) || ':owner')::uuid,
          'Document ' || g, 'Lorem ipsum dolor sit amet. Document ' || g,
          timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
   from generate_series(0, ${ORGS * DOCS_PER_ORG - 1}) g`,
];

async function fingerprint(): Promise<string> {
  const hash = createHash('sha256');
  for (const f of (await fs.readdir(MIGRATIONS_DIR)).sort()) {
    hash.update(f);
    hash.update(await fs.readFile(path.join(MIGRATIONS_DIR, f)));
  }
  hash.update(GENERATE_SQL.join('\n'));
  return hash.digest('hex');
}

async function buildData(url: string): Promise<void> {
  await migrate({ url, dir: MIGRATIONS_DIR });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('set session_replication_role = replica');
    for (const sql of GENERATE_SQL) await client.query(sql);
    await client.query('set session_replication_role = origin');
    await client.query(
      'vacuum (analyze) public.organizations, public.memberships, auth.users, public.documents',
    );
  } finally {
    await client.end();
  }
}

/** Fills the denylist up to `n` rows of random 22-character jtis, without notifications. */
async function fillDenylist(admin: pg.Client, n: number): Promise<void> {
  const { rows } = await admin.query<{ n: number }>(
    'select count(*)::int as n from rls_kit.revoked_tokens',
  );
  const missing = n - rows[0]!.n;
  if (missing <= 0) return;
  await admin.query('begin');
  await admin.query("set local session_replication_role = 'replica'");
  await admin.query(
    `insert into rls_kit.revoked_tokens (jti, expires_at)
     select translate(rtrim(encode(uuid_send(gen_random_uuid()), 'base64'), '='), '+/', '-_'),
            now() + interval '1 hour' + (g % 3600) * interval '1 second'
     from generate_series(1, $1::int) g
     on conflict do nothing`,
    [missing],
  );
  await admin.query('commit');
}

async function emptyDenylist(admin: pg.Client): Promise<void> {
  await admin.query('begin');
  await admin.query("set local session_replication_role = 'replica'");
  await admin.query(
    'truncate rls_kit.revoked_tokens, rls_kit.subject_revocations, rls_kit.revoked_sessions',
  );
  await admin.query('commit');
}

// ---------------------------------------------------------------------------
// 1. Lookup
// ---------------------------------------------------------------------------

const gc: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

interface LookupResult {
  entries: number;
  loadMs: number;
  listBytesPerEntry: number | null;
  setBytesPerEntry: number | null;
  listNs: number;
  setNs: number;
  dbUs: number;
  verifyNoneNs: number;
  verifySetNs: number;
  verifyListNs: number;
}

/** ns per call of `fn(i)` over `n` calls, best of `rounds` (other load on the machine only ever adds). */
function nsPerOp(n: number, rounds: number, fn: (i: number) => boolean): number {
  let best = Number.POSITIVE_INFINITY;
  let sink = 0;
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) if (fn(i)) sink++;
    const ns = Number(process.hrtime.bigint() - start) / n;
    if (ns < best) best = ns;
  }
  if (sink < 0) throw new Error('unreachable');
  return best;
}

async function measureLookup(
  url: string,
  admin: pg.Client,
  entries: number,
  lookups: number,
): Promise<LookupResult> {
  await fillDenylist(admin, entries);
  const revokedJtis =
    entries === 0
      ? []
      : (
          await admin.query<{ jti: string }>(
            'select jti from rls_kit.revoked_tokens where random() < $1 limit $2',
            [Math.min(1, (PROBES * 2) / entries), PROBES / 2],
          )
        ).rows.map((r) => r.jti);

  const before = heapAfterGc();
  const t0 = performance.now();
  const list = createRevocationList({ url });
  await list.start();
  const loadMs = performance.now() - t0;
  const listBytes = heapAfterGc() - before;
  if (list.size !== entries) throw new Error(`list holds ${list.size}, expected ${entries}`);

  const setBefore = heapAfterGc();
  const set = new Set<string>();
  {
    const { rows } = await admin.query<[string]>({
      text: 'select jti from rls_kit.revoked_tokens',
      rowMode: 'array',
    });
    for (const [jti] of rows) set.add(jti);
  }
  const setBytes = heapAfterGc() - setBefore;

  const now = Math.floor(Date.now() / 1000);
  const subs = Array.from({ length: 64 }, () => randomUUID());
  const probes = Array.from({ length: PROBES }, (_, i) => ({
    sub: subs[i % subs.length]!,
    role: 'authenticated',
    iat: now - 60,
    exp: now + 600,
    jti:
      i % 2 === 0 && revokedJtis.length > 0
        ? revokedJtis[(i / 2) % revokedJtis.length]!
        : randomBytes(16).toString('base64url'),
    // Half carry a refresh family, as tokens issued through refresh do.
    ...(i % 4 < 2 ? { sid: randomUUID() } : {}),
  }));
  const expectRevoked = probes.filter((p) => set.has(p.jti)).length;
  const seenRevoked = probes.filter((p) => list.isRevoked(p) === true).length;
  if (seenRevoked !== expectRevoked) {
    throw new Error(`list says ${seenRevoked} revoked, the Set ${expectRevoked}`);
  }

  const mask = PROBES - 1;
  // Many short loops, best one kept: on a busy machine a short loop is more likely to run unpreempted.
  const perLoop = 4 * PROBES;
  const loops = Math.max(10, Math.round(lookups / perLoop));
  const listNs = nsPerOp(perLoop, loops, (i) => list.isRevoked(probes[i & mask]!) === true);
  const setNs = nsPerOp(perLoop, loops, (i) => set.has(probes[i & mask]!.jti));

  // The fallback the list uses past its stale bound: one round trip per check.
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  const dbCalls = 500;
  const dbStart = process.hrtime.bigint();
  for (let i = 0; i < dbCalls; i++) {
    await pool.query('select rls_kit.token_status($1::jsonb) as s', [
      JSON.stringify(probes[i & mask]),
    ]);
  }
  const dbUs = Number(process.hrtime.bigint() - dbStart) / 1000 / dbCalls;
  await pool.end();

  const verify = await measureVerifyCached(list, set, Math.max(256, Math.round(lookups / 50)));
  await list.stop();
  return {
    entries,
    loadMs: round1(loadMs),
    listBytesPerEntry: entries === 0 ? null : round1(listBytes / entries),
    setBytesPerEntry: entries === 0 ? null : round1(setBytes / entries),
    listNs: round1(listNs),
    setNs: round1(setNs),
    dbUs: round1(dbUs),
    ...verify,
  };
}

/** `verifyCached` on cache hits (live tokens): no check, the Set, the list. */
async function measureVerifyCached(
  list: RevocationList,
  set: Set<string>,
  calls: number,
): Promise<{ verifyNoneNs: number; verifySetNs: number; verifyListNs: number }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-key-1', alg: 'ES256', use: 'sig' };
  const now = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  for (let i = 0; i < 256; i++) {
    tokens.push(
      await new SignJWT({ role: 'authenticated', sid: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', kid: 'bench-key-1', typ: 'JWT' })
        .setIssuer(ISS)
        .setAudience(AUD)
        .setSubject(randomUUID())
        .setIssuedAt(now - 5)
        .setExpirationTime(now + 3600)
        .setJti(randomBytes(16).toString('base64url'))
        .sign(privateKey),
    );
  }
  const setCheck: RevocationCheck = { isRevoked: (c) => set.has(c.jti as string) };
  const make = (revocation?: RevocationCheck) =>
    createVerifier({
      issuer: ISS,
      audience: AUD,
      keys: { jwks: { keys: [jwk] } },
      ...(revocation === undefined ? {} : { revocation }),
      metricsParent: null,
    });
  const verifiers = { none: make(), set: make(setCheck), list: make(list) };
  for (const v of Object.values(verifiers)) for (const t of tokens) await v.verify(t);
  const time = (v: (typeof verifiers)['none']) =>
    round1(
      nsPerOp(
        4096,
        Math.max(10, Math.round(calls / 4096)),
        (i) => v.verifyCached(tokens[i & 255]!) !== undefined,
      ),
    );
  return {
    verifyNoneNs: time(verifiers.none),
    verifySetNs: time(verifiers.set),
    verifyListNs: time(verifiers.list),
  };
}

// ---------------------------------------------------------------------------
// 2. Propagation
// ---------------------------------------------------------------------------

interface PropagationResult {
  transport: 'listen' | 'redis';
  processes: number;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Median round trip of the revoking call itself (BEGIN..COMMIT as one statement). */
  commitP50Ms: number;
  /** Postgres connections the N processes hold in steady state (the relay's not counted). */
  pgConnections: number;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;

async function measurePropagation(
  url: string,
  admin: pg.Client,
  transport: 'listen' | 'redis',
  processes: number,
  rounds: number,
): Promise<PropagationResult> {
  const channel = `rls_kit:bench:${randomBytes(6).toString('hex')}`;
  const relay =
    transport === 'redis'
      ? createRevocationRelay({ url, redis: REDIS_URL, channel, heartbeatMs: 500 })
      : undefined;
  await relay?.start();
  const app = `rls_kit_bench_child_${randomBytes(4).toString('hex')}`;
  // node-postgres takes application_name from PGAPPNAME: the children's backends are countable.
  const children = Array.from({ length: processes }, () =>
    spawnRevocationWatcher({
      url,
      ...(transport === 'redis' ? { redis: REDIS_URL, channel } : {}),
      // Many processes starting on 2 cores: give them time.
      timeoutMs: 120_000,
      env: { PGAPPNAME: app },
    }),
  );
  try {
    await Promise.all(children.map((c) => c.next('ready')));
    const readyAt = performance.now();
    const latencies: number[] = [];
    const commits: number[] = [];
    const warmup = 3;
    for (let round = -warmup; round < rounds; round++) {
      const jti = `bench-${round}-${randomBytes(8).toString('base64url')}`;
      for (const c of children) c.proc.stdin.write(`${jti}\n`);
      await Promise.all(children.map((c) => c.next(`watching ${jti}`)));
      const t0 = performance.timeOrigin + performance.now();
      await admin.query("select rls_kit.revoke_token($1, now() + interval '10 minutes')", [jti]);
      const t1 = performance.timeOrigin + performance.now();
      const seen = await Promise.all(children.map((c) => c.next(`seen ${jti} `)));
      if (round < 0) continue;
      commits.push(t1 - t0);
      for (const line of seen) latencies.push(Number(line.split(' ')[2]) - t0);
    }
    latencies.sort((a, b) => a - b);
    commits.sort((a, b) => a - b);
    // Steady state: pooled connections (the Redis lists' snapshot loads) idle out after
    // node-postgres's default 10 s; a LISTEN connection stays for the process's life.
    const settle = transport === 'redis' ? 11_000 - (performance.now() - readyAt) : 0;
    if (settle > 0) await new Promise((r) => setTimeout(r, settle));
    const { rows } = await admin.query<{ n: number }>(
      'select count(*)::int as n from pg_stat_activity where application_name = $1',
      [app],
    );
    return {
      transport,
      processes,
      samples: latencies.length,
      p50Ms: round1(pct(latencies, 0.5)),
      p99Ms: round1(pct(latencies, 0.99)),
      maxMs: round1(latencies.at(-1)!),
      commitP50Ms: round1(pct(commits, 0.5)),
      pgConnections: rows[0]!.n,
    };
  } finally {
    await Promise.all(children.map((c) => c.end()));
    await relay?.stop();
  }
}

// ---------------------------------------------------------------------------
// Run
// ---------------------------------------------------------------------------

/**
 * Runs the three parts and returns the report (the runner writes
 * `bench/results/revocation.json` and prints the Markdown).
 *
 * @example
 * ```ts
 * const report = await run();
 * ```
 */
export async function run(): Promise<BenchReport> {
  const started = performance.now();
  const procs = (process.env.BENCH_REVOCATION_PROCS ?? '4,16')
    .split(',')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
  const rounds = positiveInt('BENCH_REVOCATION_ROUNDS', 100);
  const lookups = positiveInt('BENCH_REVOCATION_LOOKUPS', 2_000_000);
  const guardIterations = positiveInt('BENCH_REVOCATION_GUARD_ITERATIONS', 1000);
  const parts = new Set(
    (process.env.BENCH_REVOCATION_PARTS ?? 'propagation,lookup,guard')
      .split(',')
      .map((s) => s.trim()),
  );

  const loadBefore = os.loadavg()[0] ?? 0;
  const database = await openDatabase();
  let admin: pg.Client | undefined;
  try {
    log(`server ${describeUrl(database.url)}${database.embedded ? ' (embedded default)' : ''}`);
    const bench = await prepareBenchDatabase({
      adminUrl: database.url,
      name: BENCH_DB,
      fingerprint: await fingerprint(),
      rebuild: process.env.BENCH_REVOCATION_REBUILD === '1',
      build: buildData,
      log,
    });
    const url = bench.url;
    admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const version = (
      await admin.query<{ v: string }>("select current_setting('server_version') as v")
    ).rows[0]!.v;
    await emptyDenylist(admin);

    // 2. Propagation first, while the denylist is empty (every child loads it).
    const redisUp = await redisAnswers(REDIS_URL);
    if (!redisUp) log(`no Redis at ${REDIS_URL}: the Redis rows are skipped`);
    const propagation: PropagationResult[] = [];
    for (const n of parts.has('propagation') ? procs : []) {
      for (const transport of ['listen', 'redis'] as const) {
        if (transport === 'redis' && !redisUp) continue;
        log(`propagation: ${transport}, ${n} processes, ${rounds} revocations`);
        propagation.push(await measurePropagation(url, admin, transport, n, rounds));
        await emptyDenylist(admin);
      }
    }

    // 1. Lookup at growing sizes (the table only grows between them).
    const lookup: LookupResult[] = [];
    for (const size of parts.has('lookup') ? SIZES : []) {
      log(`lookup: ${size.toLocaleString('en-US')} entries`);
      lookup.push(await measureLookup(url, admin, size, lookups));
    }

    // 3. The guard, with the denylist at its largest.
    if (parts.has('guard')) {
      await fillDenylist(admin, SIZES.at(-1)!);
      log(`guard: ${guardIterations} iterations per variant and query`);
    }
    const guard = parts.has('guard')
      ? await measureGuardCost({
          url,
          iterations: guardIterations,
          warmup: Math.max(50, Math.round(guardIterations / 10)),
          log,
        })
      : { rows: [], config: {}, revocationRows: {} };
    await emptyDenylist(admin);

    return report({
      version,
      embedded: database.embedded,
      benchUrl: describeUrl(url),
      lookup,
      propagation,
      guard,
      redisUp,
      config: { procs, rounds, lookups, guardIterations, probes: PROBES },
      load: {
        before: round1(loadBefore),
        after: round1(os.loadavg()[0] ?? 0),
        cpus: os.cpus().length,
      },
      totalMs: Math.round(performance.now() - started),
    });
  } finally {
    await admin?.end().catch(() => undefined);
    await database.close();
  }
}

interface Parts {
  version: string;
  embedded: boolean;
  benchUrl: string;
  lookup: LookupResult[];
  propagation: PropagationResult[];
  guard: Pick<Awaited<ReturnType<typeof measureGuardCost>>, 'rows' | 'revocationRows'> & {
    config: unknown;
  };
  redisUp: boolean;
  config: Record<string, unknown>;
  load: { before: number; after: number; cpus: number };
  totalMs: number;
}

function report(p: Parts): BenchReport {
  const rows: Record<string, Cell>[] = [];
  for (const l of p.lookup) {
    rows.push({
      part: 'lookup',
      case: `${l.entries.toLocaleString('en-US')} entries`,
      'kit list ns/op': l.listNs,
      'Set.has ns/op': l.setNs,
      'list/Set': round3(l.listNs / l.setNs),
      'db check µs/op': l.dbUs,
      'db/list': Math.round((l.dbUs * 1000) / l.listNs),
      'verifyCached none ns': l.verifyNoneNs,
      'verifyCached +Set ns': l.verifySetNs,
      'verifyCached +list ns': l.verifyListNs,
      'list B/entry': l.listBytesPerEntry,
      'Set B/entry': l.setBytesPerEntry,
      'load ms': l.loadMs,
    });
  }
  for (const r of p.propagation) {
    rows.push({
      part: 'propagation',
      case: `${r.transport}, ${r.processes} processes`,
      p50_ms: r.p50Ms,
      p99_ms: r.p99Ms,
      max_ms: r.maxMs,
      samples: r.samples,
      commit_p50_ms: r.commitP50Ms,
      pg_connections: r.pgConnections,
    });
  }
  for (const g of p.guard.rows) {
    rows.push({
      part: 'guard',
      case: `${g.query} ${g.path} ${g.variant}`,
      median_us: g.latency.medianUs,
      p95_us: g.latency.p95Us,
      overhead: g.overhead,
    });
  }

  const lines: string[] = [
    `PostgreSQL ${p.version}${p.embedded ? ' (embedded)' : ''}, database ${p.benchUrl}; total ${(p.totalMs / 1000).toFixed(1)} s; load average ${p.load.before} → ${p.load.after} on ${p.load.cpus} CPUs${p.load.before > p.load.cpus ? ' (the machine was busy: absolute numbers are inflated)' : ''}`,
    '',
    '### Lookup: the verifier’s RevocationCheck, in process',
    '',
    '| entries | kit list ns/op | Set.has ns/op | list / Set | db check µs/op | db / list | verifyCached: none / +Set / +list ns | list B/entry | Set B/entry | list load ms |',
    '|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|',
  ];
  for (const l of p.lookup) {
    lines.push(
      `| ${l.entries.toLocaleString('en-US')} | ${l.listNs} | ${l.setNs} | ${round3(l.listNs / l.setNs)} | ${l.dbUs} | ${Math.round((l.dbUs * 1000) / l.listNs).toLocaleString('en-US')}× | ${l.verifyNoneNs} / ${l.verifySetNs} / ${l.verifyListNs} | ${l.listBytesPerEntry ?? '–'} | ${l.setBytesPerEntry ?? '–'} | ${l.loadMs} |`,
    );
  }
  lines.push(
    '',
    '### Propagation: SQL revoke → isRevoked true in N separate processes',
    '',
    '| transport | processes | p50 ms | p99 ms | max ms | samples | revoke call p50 ms | Postgres connections of the N processes (steady) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of p.propagation) {
    lines.push(
      `| ${r.transport === 'listen' ? 'LISTEN (per process)' : 'Redis (1 relay)'} | ${r.processes} | ${r.p50Ms} | ${r.p99Ms} | ${r.maxMs} | ${r.samples} | ${r.commitP50Ms} | ${r.pgConnections} |`,
    );
  }
  if (!p.redisUp) lines.push('', `Redis rows skipped: no Redis at ${REDIS_URL}.`);
  const ratioLines: string[] = [];
  for (const n of p.config.procs as number[]) {
    const l = p.propagation.find((r) => r.transport === 'listen' && r.processes === n);
    const r = p.propagation.find((x) => x.transport === 'redis' && x.processes === n);
    if (l && r) {
      ratioLines.push(
        `- ${n} processes: Redis / LISTEN p50 ${round3(r.p50Ms / l.p50Ms)}, p99 ${round3(r.p99Ms / l.p99Ms)}`,
      );
    }
  }
  if (ratioLines.length > 0) lines.push('', ...ratioLines);
  lines.push(
    '',
    `### Guard: rls_kit.protect() on the example’s queries (denylist: ${JSON.stringify(p.guard.revocationRows)})`,
    '',
    p.guard.rows.length > 0
      ? renderGuardCost(p.guard as Parameters<typeof renderGuardCost>[0])
      : '(not run)',
  );

  const big = p.lookup.find((l) => l.entries === 1_000_000);
  const p99s = p.propagation.map((r) => r.p99Ms);
  const worst = (path: string, variant: string) => {
    const of = p.guard.rows.filter((g) => g.path === path && g.variant === variant);
    return of.length ? round3(Math.max(...of.map((g) => g.overhead))) : null;
  };
  const summary: Record<string, Cell> = {
    'lookup ns/op at 0 / 10k / 1M (kit list)': p.lookup.map((l) => l.listNs).join(' / '),
    'bytes per entry at 1M (goal ≤ 150)': big?.listBytesPerEntry ?? null,
    'memory goal met': big?.listBytesPerEntry != null ? big.listBytesPerEntry <= 150 : null,
    'propagation p99, worst series (ms; goal ≤ 100 for 4 processes)': p99s.length
      ? Math.max(...p99s)
      : null,
    'guard overhead, queryAsUser, worst of q1/q2 (goal ≤ 0.10)': worst('queryAsUser', 'guard'),
    'guard overhead, asUserPg (query planned per call), worst of q1/q2': worst('asUserPg', 'guard'),
    'pre_request + guard overhead, asUserPg (an extra statement), worst of q1/q2': worst(
      'asUserPg',
      'guard+pre_request',
    ),
  };
  return {
    title: 'Revocation: lookup, propagation, guard',
    rows,
    markdown: lines.join('\n'),
    summary,
    notes: [
      'Lookup: best of many 16,384-call loops per peer (a short loop can run unpreempted on a busy machine) over 4,096 rotating claims (half revoked when the list is not empty); the list applies all of token_status’s rules (uuid sub, iat range, jti, subject cut-off, session), the Set only jti.',
      'Propagation: latency from the start of the revoking SQL call to the child seeing it (cross-process wall clocks); 3 warm-up rounds not counted. 2 cores: with many processes, scheduling dominates.',
      'Guard: bench/lib/guard-cost.ts (none = unguarded copy of public.documents, interleaved; tokens with session_id and a fresh jti); overhead = median ratio − 1 against the same path’s none.',
    ],
    details: {
      lookup: p.lookup,
      propagation: p.propagation,
      guard: p.guard,
      config: p.config,
      load: p.load,
      totalMs: p.totalMs,
    },
  };
}

if (
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href
) {
  const { main } = await import('./run.js');
  process.exitCode = await main(['revocation']);
}
