/**
 * What the revocation guard (`rls_kit.protect`, issue 4 item 1) adds to the
 * example's benchmark queries: (q1) a page of the 50 newest documents of the
 * user's organization, (q2) `count(*)` of them — each a whole request on a
 * pooled connection in steady state, with tokens that carry a `session_id`
 * (every probe of the guard runs) and a fresh `jti`, through two of the
 * kit's paths:
 *   - `queryAsUser`: the settings and the query in one round trip, both
 *     prepared (the path of `bench -- rls` and of the service's list);
 *   - `asUserPg`: a transaction — BEGIN + settings (prepared), the query as
 *     plain SQL (planned every time), the end check + COMMIT.
 *
 * Variants, interleaved request by request (rotating order) so that other
 * load on the machine hits all of them alike:
 *   - `none`: the same query on `guard_cost.documents`, a copy of
 *     public.documents (same rows, indexes and permissive policies) without
 *     the guard — the baseline of its path;
 *   - `guard`: public.documents with `rls_kit.protect()`: the full check once
 *     per statement, as for the as-user API, Realtime and Storage;
 *   - `guard+pre_request` (asUserPg only): `select rls_kit.pre_request()`
 *     first, then the guarded query, as PostgREST runs it with
 *     `db_pre_request`: one full check per request, the statement's guard
 *     reuses its verdict — an extra statement, so its overhead includes a
 *     round trip. On a pool of its own, as PostgREST's connections are.
 * Overhead = median latency of the variant / median of its path's `none` − 1.
 *
 * The database needs the kit's migrations, the example app and data (e.g.
 * `rls_kit_bench`); the URL's user must own public.documents. The copy is
 * made once (and remade when the row count differs); the guard on
 * public.documents is left as it was found.
 *
 * Run alone: `npx tsx bench/lib/guard-cost.ts [database-url]` (default
 * `DATABASE_URL`), or import {@link measureGuardCost}.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { type Compilable, Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { asUserPg } from '../../src/db/as-user-pg.js';
import { queryAsUser } from '../../src/db/query-as-user.js';
import { elapsedUs, type LatencySummary, round3, summarize } from './stats.js';

/** Options of {@link measureGuardCost}. */
export interface GuardCostOptions {
  /** Connection string of the prepared database (its user owns public.documents). */
  url: string;
  /** Timed requests per variant and query (default 3000). */
  iterations?: number;
  /** Untimed requests per variant and query first (default 300). */
  warmup?: number;
  /** Distinct members (one per organization) the requests rotate through (default 100). */
  personas?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** The variants compared; `none` is the baseline. */
export type GuardVariant = 'none' | 'guard' | 'guard+pre_request';
/** The kit API a request goes through. */
export type GuardPath = 'queryAsUser' | 'asUserPg';
/** The example's benchmark queries. */
export type GuardQuery = 'q1' | 'q2';

/** One variant of one query. */
export interface GuardCostRow {
  query: GuardQuery;
  path: GuardPath;
  variant: GuardVariant;
  latency: LatencySummary;
  /** Median latency relative to `none`, minus 1 (0.05 = 5 % slower). */
  overhead: number;
}

/** Result of {@link measureGuardCost}. */
export interface GuardCostReport {
  rows: GuardCostRow[];
  config: Required<Omit<GuardCostOptions, 'url' | 'log'>>;
  /** Rows in the revocation tables during the run. */
  revocationRows: Record<string, number>;
}

const QUERIES: Record<GuardQuery, (table: string) => string> = {
  q1: (t) => `select id, title, created_at, owner_id from ${t} order by created_at desc limit 50`,
  q2: (t) => `select count(*) as n from ${t}`,
};
/** The same queries built with kysely (queryAsUser's one-round-trip path takes built queries). */
const BUILT: Record<GuardQuery, (db: Kysely<GuardDb>, table: 'documents') => Compilable<unknown>> =
  {
    q1: (db, t) =>
      db
        .selectFrom(t)
        .select(['id', 'title', 'created_at', 'owner_id'])
        .orderBy('created_at', 'desc')
        .limit(sql.lit(50)),
    q2: (db, t) => db.selectFrom(t).select((eb) => eb.fn.countAll().as('n')),
  };
/** Both tables as kysely sees them (the copy's name cast to the same shape). */
interface GuardDb {
  documents: { id: string; title: string; created_at: Date; owner_id: string };
}
const VARIANTS: readonly { path: GuardPath; variant: GuardVariant }[] = [
  { path: 'queryAsUser', variant: 'none' },
  { path: 'queryAsUser', variant: 'guard' },
  { path: 'asUserPg', variant: 'none' },
  { path: 'asUserPg', variant: 'guard' },
  { path: 'asUserPg', variant: 'guard+pre_request' },
];
const COPY = 'guard_cost.documents';

interface Persona {
  orgId: string;
  userId: string;
  role: string;
}

/**
 * Measures the guard's cost on q1/q2 through `asUserPg`, variants interleaved.
 *
 * @example
 * ```ts
 * const report = await measureGuardCost({ url: 'postgresql://postgres@127.0.0.1:5432/rls_kit_bench' });
 * for (const r of report.rows) console.log(r.query, r.variant, r.latency.medianUs, r.overhead);
 * ```
 */
export async function measureGuardCost(options: GuardCostOptions): Promise<GuardCostReport> {
  const config = {
    iterations: options.iterations ?? 3000,
    warmup: options.warmup ?? 300,
    personas: options.personas ?? 100,
  };
  const log = options.log ?? (() => undefined);
  const admin = new pg.Client({ connectionString: options.url });
  await admin.connect();
  // One pool per kind of client, as in a deployment: the kit's API and
  // PostgREST (pre_request) never share connections. Measured on shared
  // connections, interleaving pre_request requests with the kit's slowed
  // the kit's guarded count(*) by ~100 µs (cause not pinned down).
  const pool = new pg.Pool({ connectionString: options.url, max: 4 });
  const postgrest = new pg.Pool({ connectionString: options.url, max: 4 });
  const db = new Kysely<GuardDb>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: options.url, max: 4 }) }),
  });
  const wasProtected = await isProtected(admin);
  try {
    await prepareCopy(admin, log);
    // Both tables all-visible, so count(*) is an index-only scan on both: a
    // table with pages left not all-visible (recent writes, a rolled-back
    // delete) would pay heap fetches the other does not.
    await admin.query('vacuum public.documents');
    await admin.query(`vacuum ${COPY}`);
    if (!wasProtected) await admin.query(`select rls_kit.protect('public.documents')`);
    const personas = await loadPersonas(admin, config.personas);
    const revocationRows = await countRevocations(admin);
    const rows: GuardCostRow[] = [];
    for (const query of Object.keys(QUERIES) as GuardQuery[]) {
      const samples = VARIANTS.map(() => [] as number[]);
      for (let i = 0; i < config.warmup + config.iterations; i++) {
        const persona = personas[i % personas.length]!;
        // Rotate which variant goes first, so none always follows the same one.
        for (let k = 0; k < VARIANTS.length; k++) {
          const v = (i + k) % VARIANTS.length;
          const start = process.hrtime.bigint();
          const variant = VARIANTS[v]!;
          await request(
            variant.variant === 'guard+pre_request' ? postgrest : pool,
            db,
            persona,
            query,
            variant,
          );
          if (i >= config.warmup) samples[v]!.push(elapsedUs(start));
        }
      }
      const summaries = samples.map((x) => summarize(x));
      VARIANTS.forEach(({ path, variant }, v) => {
        const base = summaries[VARIANTS.findIndex((x) => x.path === path && x.variant === 'none')]!;
        const latency = summaries[v]!;
        rows.push({
          query,
          path,
          variant,
          latency,
          overhead: round3(latency.medianUs / base.medianUs - 1),
        });
      });
      log(`guard-cost: ${query} done`);
    }
    return { rows, config, revocationRows };
  } finally {
    if (!wasProtected) {
      await admin
        .query('drop policy if exists rls_kit_token_active on public.documents')
        .catch(() => undefined);
    }
    await db.destroy();
    await pool.end();
    await postgrest.end();
    await admin.end();
  }
}

/** One request as the persona's user, like an application's (PostgREST adds pre_request). */
async function request(
  pool: pg.Pool,
  db: Kysely<GuardDb>,
  p: Persona,
  query: GuardQuery,
  { path, variant }: { path: GuardPath; variant: GuardVariant },
): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    sub: p.userId,
    role: 'authenticated',
    org_id: p.orgId,
    user_role: p.role,
    iat: now - 60,
    exp: now + 600,
    // A fresh jti and session per request: every probe of the guard runs.
    jti: randomBytes(16).toString('base64url'),
    session_id: randomUUID(),
  };
  const table = variant === 'none' ? COPY : 'public.documents';
  if (path === 'queryAsUser') {
    await queryAsUser(db, claims, BUILT[query](db, table as 'documents'));
    return;
  }
  await asUserPg(pool, claims, async (client) => {
    if (variant === 'guard+pre_request') await client.query('select rls_kit.pre_request()');
    await client.query(QUERIES[query](table));
  });
}

/**
 * The unguarded copy: same rows, indexes and permissive policies as
 * public.documents, no rls_kit_token_active. Kept between runs.
 */
async function prepareCopy(admin: pg.Client, log: (line: string) => void): Promise<void> {
  const counts = await admin.query<{ src: string; copy: string | null }>(
    `select (select count(*) from public.documents)::text as src,
            case when to_regclass('${COPY}') is null then null
                 else (xpath('/row/n/text()', query_to_xml('select count(*) as n from ${COPY}', false, false, '')))[1]::text end as copy`,
  );
  const { src, copy } = counts.rows[0]!;
  if (copy === src) return;
  log(`guard-cost: copying public.documents (${src} rows) to ${COPY} (once)`);
  await admin.query('drop schema if exists guard_cost cascade');
  await admin.query('create schema guard_cost');
  await admin.query(
    `comment on schema guard_cost is 'Benchmark only: public.documents without the revocation guard (bench/lib/guard-cost.ts).'`,
  );
  await admin.query(`create table ${COPY} (like public.documents including all)`);
  await admin.query(`insert into ${COPY} select * from public.documents`);
  const policies = await admin.query<{
    name: string;
    cmd: string;
    permissive: boolean;
    roles: string;
    qual: string | null;
    check: string | null;
  }>(
    `select polname as name, polcmd as cmd, polpermissive as permissive,
            array_to_string(array(select quote_ident(r::regrole::text) from unnest(polroles) r), ', ') as roles,
            pg_get_expr(polqual, polrelid) as qual, pg_get_expr(polwithcheck, polrelid) as check
       from pg_policy where polrelid = 'public.documents'::regclass and polname <> 'rls_kit_token_active'`,
  );
  const commands: Record<string, string> = {
    r: 'select',
    a: 'insert',
    w: 'update',
    d: 'delete',
    '*': 'all',
  };
  for (const p of policies.rows) {
    await admin.query(
      `create policy ${admin.escapeIdentifier(p.name)} on ${COPY} as ${p.permissive ? 'permissive' : 'restrictive'}
         for ${commands[p.cmd]} to ${p.roles}${p.qual ? ` using (${p.qual})` : ''}${p.check ? ` with check (${p.check})` : ''}`,
    );
  }
  await admin.query(`alter table ${COPY} enable row level security`);
  await admin.query(`alter table ${COPY} force row level security`);
  await admin.query('grant usage on schema guard_cost to authenticated');
  await admin.query(`grant select on ${COPY} to authenticated`);
  await admin.query(`vacuum analyze ${COPY}`);
}

async function isProtected(admin: pg.Client): Promise<boolean> {
  const { rowCount } = await admin.query(
    `select 1 from pg_catalog.pg_policy
      where polrelid = 'public.documents'::regclass and polname = 'rls_kit_token_active'`,
  );
  return rowCount === 1;
}

/** One writing member per organization, organizations with the most documents first. */
async function loadPersonas(admin: pg.Client, count: number): Promise<Persona[]> {
  const { rows } = await admin.query<Persona>(
    `select m.org_id::text as "orgId", m.user_id::text as "userId", m.role
       from (select org_id from public.documents group by org_id order by count(*) desc, org_id limit $1) o
       cross join lateral (select * from public.memberships m
                            where m.org_id = o.org_id and m.role <> 'viewer'
                            order by m.role, m.user_id limit 1) m`,
    [count],
  );
  if (rows.length === 0) throw new Error('guard-cost: the database has no members with documents');
  return rows;
}

async function countRevocations(admin: pg.Client): Promise<Record<string, number>> {
  const { rows } = await admin.query<{ t: string; n: string }>(
    `select 'revoked_tokens' as t, count(*)::text as n from rls_kit.revoked_tokens
     union all select 'subject_revocations', count(*)::text from rls_kit.subject_revocations
     union all select 'revoked_sessions', count(*)::text from rls_kit.revoked_sessions`,
  );
  return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
}

/** Markdown table of a report. */
export function renderGuardCost(report: GuardCostReport): string {
  const lines = [
    '| query | path | variant | median µs | p95 µs | mean µs | overhead (median) |',
    '|---|---|---|---:|---:|---:|---:|',
  ];
  for (const r of report.rows) {
    const overhead = r.variant === 'none' ? '—' : `${(r.overhead * 100).toFixed(1)} %`;
    lines.push(
      `| ${r.query} | ${r.path} | ${r.variant} | ${r.latency.medianUs} | ${r.latency.p95Us} | ${r.latency.meanUs} | ${overhead} |`,
    );
  }
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const url = process.argv[2] ?? process.env.DATABASE_URL;
  if (url === undefined) {
    process.stderr.write('usage: npx tsx bench/lib/guard-cost.ts <database-url>\n');
    process.exit(2);
  }
  const report = await measureGuardCost({
    url,
    iterations: Number(process.env.GUARD_COST_ITERATIONS ?? 3000),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(
    `${renderGuardCost(report)}\n\nrevocation rows: ${JSON.stringify(report.revocationRows)}\n`,
  );
}
