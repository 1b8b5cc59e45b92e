/**
 * `npm run bench -- rls`: what row level security costs on the example app.
 *
 * The same two queries — (q1) a page of the 50 newest documents of the user's
 * organization, (q2) `count(*)` of them — run eleven ways, side by side:
 *   (a) as the token's user through the kit's one-statement API
 *       (`queryAsUser`, kysely), under the example's policies, the revocation
 *       guard included: the settings statement and the query travel together
 *       before one Sync (one round trip, one implicit transaction), both as
 *       named prepared statements (planned once per pooled connection);
 *   (b) as `postgres` (superuser, no RLS) with the equivalent hand-written
 *       `where org_id = $1`, in the same shape: the same claims `set_config`
 *       statement (no role switch) and the query before one Sync, both
 *       prepared — the kit's pipelined query, which a hand-written version
 *       would use as well. So (a)/(b) isolates what the role switch, the
 *       kit's checks and the policies cost — not a round trip or a plan
 *       one side saves;
 *   (c) as the user through `queryAsUser` on a copy of the table whose
 *       policies are written the naive way (`auth.jwt() ->> 'org_id'` not
 *       wrapped in `select`).
 * References split the cost further: (d) `service_role` (BYPASSRLS) through
 * `queryAsUser` with the hand-written WHERE — same API, same role switch, no
 * policies, so (a)/(d) is the policies alone and (d)/(b) the role switch plus
 * the API's checks; (g) is (a) as a bench role that has the example's
 * policies on the same table but not the revocation guard
 * (`rls_kit_token_active` applies to `authenticated` only), so (a)/(g) is the
 * guard's cost (issue 4: ≤ 1.1); (i) is (g) plus a RESTRICTIVE policy
 * calling a guard that checks nothing (PL/pgSQL, SECURITY DEFINER, the same
 * SET clauses), so (i)/(g) is the guard's mechanism and (a)/(i) its lookup.
 * The transaction API, for callbacks of several statements: (j) is (a)
 * through `asUser` (BEGIN + settings, the query unprepared as kysely sends
 * it, the end-of-request check + COMMIT: three round trips) and (k) is (b)
 * in the same three round trips, so (j)/(k) is the same comparison there;
 * (e)/(f)/(h) are (a)/(d)/(g) on the plain-pg `asUserPg` (transaction,
 * three round trips), so (e)/(f) is the policies and (e)/(h) the guard there.
 * Goal (issue 2, item 11), judged on this machine's PostgreSQL 15:
 * median (a)/(b) ≤ 1.2 for both queries.
 *
 * Data: 1,000 organizations × 1,000 documents (uniform, so every persona's
 * page and count cost the same and ratios are not skewed by who was picked),
 * 4 users per organization (one per role), documents inserted in time order
 * with organizations interleaved, so one organization's newest page is spread
 * over ~50 heap pages as in a real multi-tenant table. Generated with
 * set-based SQL in a dedicated database `rls_kit_bench`, which later runs
 * reuse while its fingerprint (migrations + generator) matches and its row
 * counts are intact; `BENCH_RLS_REBUILD=1` forces a rebuild. The database is
 * left in place after the run.
 *
 * Knobs (environment): `BENCH_RLS_ITERATIONS` (measured iterations per
 * variant and query, default 3000), `BENCH_RLS_WARMUP` (default 300),
 * `BENCH_RLS_DATABASE` (default `rls_kit_bench`; e.g. a copy made with
 * `create database x template rls_kit_bench` to measure a policy change).
 *
 * Run: `npm run bench -- rls`, or directly `npx tsx bench/rls.ts`; with
 * `DATABASE_URL` unset it uses the embedded default database.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import {
  type AsUserOptions,
  asUser,
  asUserPg,
  describeUrl,
  openDatabase,
  queryAsUser,
} from '../src/db/index.js';
import { migrate } from '../src/db/migrate.js';
import { PipelinedQuery } from '../src/db/pipeline.js';
import { prepareBenchDatabase } from './lib/bench-database.js';
import { loadWithoutIndexes } from './lib/bulk-load.js';
import { elapsedUs, type LatencySummary, round1, round3, summarize } from './lib/stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MIGRATIONS_DIR = path.join(ROOT, 'supabase', 'migrations');
const RESULTS_FILE = path.join(ROOT, 'bench', 'results', 'rls.json');
/** The dedicated database; another name lets an experiment run on a modified copy. */
const BENCH_DB = process.env.BENCH_RLS_DATABASE || 'rls_kit_bench';

const ORGS = 1000;
const DOCS_PER_ORG = 1000;
const ROLES = ['owner', 'admin', 'member', 'viewer'] as const;
/** Distinct users/orgs the loop rotates through, so no single page stays hot. */
const PERSONAS = 100;
const POOL_MAX = 4;
const PAGE = 50;
const GOAL_RATIO = 1.2;
const WARMUP = positiveInt('BENCH_RLS_WARMUP', 300);
const ITERATIONS = positiveInt('BENCH_RLS_ITERATIONS', 3000);
/** Concurrent phase: POOL_MAX callers for this long per variant × query per round. */
const THROUGHPUT_SLOT_MS = 500;
const THROUGHPUT_ROUNDS = 4;

type VariantId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'g' | 'h' | 'i' | 'j' | 'k';
type QueryId = 'q1' | 'q2';
const VARIANTS: readonly VariantId[] = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'];
const QUERIES: readonly QueryId[] = ['q1', 'q2'];
const VARIANT_LABELS: Record<VariantId, string> = {
  a: '(a) user, example policies — queryAsUser',
  b: '(b) postgres, hand-written WHERE, claims only — same pipeline',
  c: '(c) user, naive policies — queryAsUser',
  d: '(d) service_role (BYPASSRLS) + WHERE — queryAsUser',
  e: '(e) user, example policies — asUserPg',
  f: '(f) service_role (BYPASSRLS) + WHERE — asUserPg',
  g: '(g) user, example policies without the revocation guard — queryAsUser',
  h: '(h) user, example policies without the revocation guard — asUserPg',
  i: '(i) user, example policies + a no-op guard (same InitPlan, SECURITY DEFINER call, per-row filter; no lookup) — queryAsUser',
  j: '(j) user, example policies — asUser (transaction: BEGIN + settings, the query, check + COMMIT)',
  k: "(k) postgres, hand-written WHERE, claims only — in (j)'s round trips",
};
const QUERY_LABELS: Record<QueryId, string> = {
  q1: `q1 page of ${PAGE} newest`,
  q2: 'q2 count(*)',
};

interface DocumentsTable {
  id: string;
  org_id: string;
  owner_id: string;
  title: string;
  body: string;
  created_at: Date;
}

interface BenchDb {
  documents: DocumentsTable;
  'naive.documents': DocumentsTable;
}

/** Verified claims as asUser takes them (kept local: the kit's type name is still settling). */
type Claims = Readonly<Record<string, unknown>>;

interface Persona {
  orgId: string;
  userId: string;
  role: string;
  claims: Claims;
  /** The same claims with role service_role, for the RLS-bypassing references (d) and (f). */
  serviceClaims: Claims;
  /** The same claims with the unguarded bench role, for (g) and (h). */
  unguardedClaims: Claims;
  /** The same claims with the no-op-guard bench role, for (i). */
  noopGuardClaims: Claims;
}

/** What one call returns, compared across variants before timing starts. */
type Outcome = string;

type Runner = (p: Persona) => Promise<Outcome>;

// ---------------------------------------------------------------------------
// Data generation (set-based; runs as the superuser of the server under test)
// ---------------------------------------------------------------------------

// Deterministic ids (md5 of a label, read as uuid) so personas can be found
// by name and a rebuilt database has the same organizations and users.
const ROLE_ARRAY = `array[${ROLES.map((r) => `'${r}'`).join(', ')}]`;
const GENERATE_SQL: readonly string[] = [
  `insert into public.organizations (id, name)
   select md5('bench-org:' || o)::uuid, 'Org ' || o
   from generate_series(1, ${ORGS}) o`,
  `insert into auth.users (id, aud, role, email, created_at, updated_at)
   select md5('bench-user:' || o || ':' || r.role)::uuid, 'authenticated', 'authenticated',
          'org' || o || '-' || r.role || '@bench.example.com', now(), now()
   from generate_series(1, ${ORGS}) o cross join unnest(${ROLE_ARRAY}) as r(role)`,
  `insert into public.memberships (org_id, user_id, role)
   select md5('bench-org:' || o)::uuid, md5('bench-user:' || o || ':' || r.role)::uuid, r.role
   from generate_series(1, ${ORGS}) o cross join unnest(${ROLE_ARRAY}) as r(role)`,
];

// One series in time order: row g is document j of organization o, so the
// heap interleaves organizations the way a shared multi-tenant table grows.
// Owners are the org's non-viewers in turn (viewers cannot write). The ids
// are hashed once into arrays rather than per row (3x faster generation).
const DOCUMENTS_SQL = `with orgs as (
    select array_agg(md5('bench-org:' || o)::uuid order by o) as ids
    from generate_series(1, ${ORGS}) o
  ), writers as (
    select array_agg(md5('bench-user:' || o || ':' || r.role)::uuid order by o, r.n) as ids
    from generate_series(1, ${ORGS}) o
    cross join unnest(array['owner', 'admin', 'member']) with ordinality as r(role, n)
  )
  insert into public.documents (org_id, owner_id, title, body, created_at)
  select orgs.ids[k.o], writers.ids[(k.o - 1) * 3 + 1 + k.j % 3],
         'Document ' || k.j || ' of org ' || k.o,
         'Lorem ipsum dolor sit amet, consectetur adipiscing elit. Document ' || g,
         timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
  from orgs, writers, generate_series(0, ${ORGS * DOCS_PER_ORG - 1}) g,
       lateral (select g / ${ORGS} + 1 as j, g % ${ORGS} + 1 as o) k`;

// The naive copy: same shape, same rows, same indexes; policies written the
// slow way (claim functions called bare, so Postgres may evaluate them per
// row instead of once per statement as an InitPlan).
const NAIVE_TABLE_SQL: readonly string[] = [
  'create schema naive',
  `comment on schema naive is 'Benchmark only: a copy of public.documents under naively written policies.'`,
  'create table naive.documents (like public.documents including all)',
];
const NAIVE_COPY_SQL = 'insert into naive.documents select * from public.documents';
const NAIVE_POLICY_SQL: readonly string[] = [
  'alter table naive.documents enable row level security',
  'alter table naive.documents force row level security',
  `create policy naive_documents_select on naive.documents for select to authenticated
   using (org_id = (auth.jwt() ->> 'org_id')::uuid)`,
  `create policy naive_documents_insert on naive.documents for insert to authenticated
   with check (org_id = (auth.jwt() ->> 'org_id')::uuid and owner_id = auth.uid()
               and (auth.jwt() ->> 'user_role') in ('owner', 'admin', 'member'))`,
  `create policy naive_documents_update on naive.documents for update to authenticated
   using (org_id = (auth.jwt() ->> 'org_id')::uuid
          and (owner_id = auth.uid() or (auth.jwt() ->> 'user_role') in ('owner', 'admin')))
   with check (org_id = (auth.jwt() ->> 'org_id')::uuid
          and (owner_id = auth.uid() or (auth.jwt() ->> 'user_role') in ('owner', 'admin')))`,
  `create policy naive_documents_delete on naive.documents for delete to authenticated
   using (org_id = (auth.jwt() ->> 'org_id')::uuid
          and (owner_id = auth.uid() or (auth.jwt() ->> 'user_role') in ('owner', 'admin')))`,
  'grant usage on schema naive to authenticated',
  'grant select, insert, update, delete on naive.documents to authenticated',
];

/**
 * The guard's reference without a copy of the table: a NOLOGIN role (the
 * cluster-wide role is created once and kept) that gets the same policies
 * on public.documents as `authenticated` — every one but the revocation
 * guard, copied from the catalog, so they follow the example's migration.
 * (g)/(h) then run the very query of (a)/(e) on the very same pages; the
 * only difference is the RESTRICTIVE `rls_kit_token_active` policy, which
 * applies to `authenticated` alone. A copy of the table instead would double
 * the hot pages and compete for shared buffers with (a).
 */
const UNGUARDED_ROLE = 'rls_kit_bench_unguarded';
const UNGUARDED_SQL: readonly string[] = policyCopySql(
  UNGUARDED_ROLE,
  'the example policies without the revocation guard',
);

/**
 * Variant (i): the same policy copies plus a RESTRICTIVE policy calling a
 * guard that does nothing — PL/pgSQL, SECURITY DEFINER, the same SET
 * clauses as rls_kit.is_token_active() — so (i)/(g) is what the guard's
 * mechanism costs (the InitPlan, the call, the per-row check of its result)
 * and (a)/(i) what its lookup costs.
 */
const NOOP_GUARD_ROLE = 'rls_kit_bench_noop_guard';
const NOOP_GUARD_SQL: readonly string[] = [
  'create schema if not exists bench_guard',
  `create or replace function bench_guard.noop_guard()
   returns boolean language plpgsql stable parallel safe security definer
   set search_path = '' set plan_cache_mode = force_generic_plan
   as $fn$ begin return true; end $fn$`,
  ...policyCopySql(NOOP_GUARD_ROLE, 'the example policies plus a guard that checks nothing'),
  `grant usage on schema bench_guard to ${NOOP_GUARD_ROLE}`,
  `create policy bench_noop_guard on public.documents as restrictive for all to ${NOOP_GUARD_ROLE}
   using ((select bench_guard.noop_guard()))`,
];

/** A NOLOGIN bench role with copies of `authenticated`'s policies on public.documents, the guard excepted. */
function policyCopySql(role: string, what: string): string[] {
  return [
    `do $role$ begin
       create role ${role} nologin noinherit;
     exception when duplicate_object or unique_violation then null;
     end $role$`,
    `comment on role ${role} is 'supabase-rls-kit benchmark only: ${what} (NOLOGIN, no privileges outside rls_kit_bench).'`,
    `grant usage on schema public, auth to ${role}`,
    `grant select on public.documents to ${role}`,
    `do $copy$
     declare p record;
     begin
       for p in
         select polname, polpermissive, polcmd,
                pg_get_expr(polqual, polrelid) as qual, pg_get_expr(polwithcheck, polrelid) as chk
           from pg_policy
          where polrelid = 'public.documents'::regclass and polname <> 'rls_kit_token_active'
            and 'authenticated'::regrole::oid = any (polroles)
       loop
         execute format('create policy %I on public.documents as %s for %s to ${role}%s%s',
           '${role.replace('rls_kit_bench_', 'bench_')}_' || p.polname,
           case when p.polpermissive then 'permissive' else 'restrictive' end,
           case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                         when 'd' then 'delete' else 'all' end,
           coalesce(' using (' || p.qual || ')', ''), coalesce(' with check (' || p.chk || ')', ''));
       end loop;
     end $copy$`,
  ];
}

const VACUUM_SQL =
  'vacuum (analyze) public.organizations, public.memberships, auth.users, public.documents, naive.documents';

async function buildData(url: string, log: (line: string) => void): Promise<void> {
  const { applied } = await migrate({ url, dir: MIGRATIONS_DIR });
  log(`applied ${applied.length} migrations from supabase/migrations`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Bulk-load settings, this session only. session_replication_role =
    // replica skips the per-row foreign-key triggers (the generator makes
    // every reference valid by construction); it also skips user triggers,
    // of which the example has none on these inserts. Commits stay
    // synchronous on purpose: VACUUM cannot mark pages all-visible while an
    // asynchronous commit is unflushed, and count(*) then loses its
    // index-only scan.
    await client.query("set maintenance_work_mem = '256MB'");
    await client.query('set session_replication_role = replica');
    for (const sql of GENERATE_SQL) await timed(log, client, sql);
    await timed(log, client, 'documents: load, then build indexes', () =>
      loadWithoutIndexes(client, 'public.documents', () => query(client, DOCUMENTS_SQL)),
    );
    for (const sql of NAIVE_TABLE_SQL) await timed(log, client, sql);
    await timed(log, client, 'naive.documents: copy, then build indexes', () =>
      loadWithoutIndexes(client, 'naive.documents', () => query(client, NAIVE_COPY_SQL)),
    );
    for (const sql of NAIVE_POLICY_SQL) await timed(log, client, sql);
    for (const sql of UNGUARDED_SQL) await timed(log, client, sql);
    for (const sql of NOOP_GUARD_SQL) await timed(log, client, sql);
    await client.query('set session_replication_role = origin');
    // VACUUM sets the visibility map (index-only scans for count(*)) and
    // hint bits, so the first measured reads do not pay for the load's writes.
    await timed(log, client, VACUUM_SQL);
  } finally {
    await client.end();
  }
}

async function query(client: pg.Client, sql: string): Promise<void> {
  await client.query(sql);
}

/**
 * Vacuums both documents tables and returns the share of their pages marked
 * all-visible. Always vacuums: pg_class.relallvisible is only refreshed by
 * VACUUM, so it cannot tell that a write since then (such as the rolled-back
 * DELETE this benchmark explains, or another session's test) cleared bits —
 * and count(*) then pays heap fetches that differ between the tables.
 * Vacuum skips pages still marked, so this is cheap on an intact database.
 * Another session's old snapshot can keep VACUUM from marking pages; it
 * retries (bounded) and reports the coverage it ended with.
 */
async function ensureAllVisible(
  pool: pg.Pool,
  log: (line: string) => void,
): Promise<Record<string, number>> {
  const vacuum = async () => {
    await pool.query('vacuum public.documents, naive.documents');
    const { rows } = await pool.query<{ rel: string; share: number }>(
      `select oid::regclass::text as rel,
              round(relallvisible::numeric / greatest(relpages, 1), 3)::float8 as share
         from pg_catalog.pg_class
        where oid in ('public.documents'::regclass, 'naive.documents'::regclass)`,
    );
    return Object.fromEntries(rows.map((r) => [r.rel, r.share]));
  };
  let shares = await vacuum();
  for (let attempt = 1; attempt <= 3 && Object.values(shares).some((s) => s < 0.999); attempt++) {
    log(`visibility map ${JSON.stringify(shares)}: vacuuming again (${attempt}/3)`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    shares = await vacuum();
  }
  return shares;
}

/** Block reads/hits of both documents tables and their indexes (cumulative counters). */
type BlockCounters = Record<
  string,
  { heapRead: number; heapHit: number; idxRead: number; idxHit: number }
>;

async function blockCounters(pool: pg.Pool): Promise<BlockCounters> {
  // Statistics are read from a snapshot per transaction; force fresh numbers.
  await pool.query('select pg_catalog.pg_stat_clear_snapshot()');
  const { rows } = await pool.query<{
    rel: string;
    heap_read: string;
    heap_hit: string;
    idx_read: string;
    idx_hit: string;
  }>(
    `select relid::regclass::text as rel, heap_blks_read as heap_read, heap_blks_hit as heap_hit,
            idx_blks_read as idx_read, idx_blks_hit as idx_hit
       from pg_catalog.pg_statio_user_tables
      where relid in ('public.documents'::regclass, 'naive.documents'::regclass)`,
  );
  return Object.fromEntries(
    rows.map((r) => [
      r.rel,
      {
        heapRead: Number(r.heap_read),
        heapHit: Number(r.heap_hit),
        idxRead: Number(r.idx_read),
        idxHit: Number(r.idx_hit),
      },
    ]),
  );
}

/**
 * Shared-buffer misses during the measured loop, per table. (a), (b), (d),
 * (e) and (f) share public.documents while (c) alone reads naive.documents,
 * so a persona's public pages are warmed by whichever variant runs first and
 * naive pages only by (c): misses here bias (c), not (a)/(b).
 */
function bufferMisses(before: BlockCounters, after: BlockCounters) {
  const out: Record<string, { blocksRead: number; blocksHit: number; hitRatio: number }> = {};
  for (const [rel, b] of Object.entries(before)) {
    const a = after[rel];
    if (a === undefined) continue;
    const read = a.heapRead - b.heapRead + a.idxRead - b.idxRead;
    const hit = a.heapHit - b.heapHit + a.idxHit - b.idxHit;
    out[rel] = {
      blocksRead: read,
      blocksHit: hit,
      hitRatio: round3(hit / Math.max(1, hit + read)),
    };
  }
  return out;
}

/** Runs a step (`sql`, or `step` labelled by it) and logs it when it took noticeable time. */
async function timed(
  log: (line: string) => void,
  client: pg.Client,
  sql: string,
  step?: () => Promise<void>,
): Promise<void> {
  const start = process.hrtime.bigint();
  if (step !== undefined) await step();
  else await client.query(sql);
  const ms = elapsedUs(start) / 1000;
  if (ms > 200) log(`  ${(ms / 1000).toFixed(1)} s  ${sql.replace(/\s+/g, ' ').slice(0, 70)}`);
}

async function fingerprint(): Promise<string> {
  const hash = createHash('sha256');
  hash.update(
    JSON.stringify({
      v: 2,
      ORGS,
      DOCS_PER_ORG,
      ROLES,
      GENERATE_SQL,
      DOCUMENTS_SQL,
      NAIVE_TABLE_SQL,
      NAIVE_COPY_SQL,
      NAIVE_POLICY_SQL,
      UNGUARDED_SQL,
      NOOP_GUARD_SQL,
      VACUUM_SQL,
    }),
  );
  const names = (await fs.readdir(MIGRATIONS_DIR)).filter((n) => n.endsWith('.sql')).sort();
  for (const name of names) {
    // readFile follows the kit's symlinks: the content is what gets applied.
    hash.update(name);
    hash.update(await fs.readFile(path.join(MIGRATIONS_DIR, name)));
  }
  return hash.digest('hex');
}

async function dataIntact(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{
      orgs: string;
      docs: string;
      naive: string;
      guarded: boolean;
      unguarded: boolean;
      noop: boolean;
    }>(
      `select (select count(*) from public.organizations) as orgs,
              (select count(*) from public.documents) as docs,
              (select count(*) from naive.documents) as naive,
              exists (select from pg_policy where polrelid = 'public.documents'::regclass
                        and polname = 'rls_kit_token_active') as guarded,
              exists (select from pg_policy p join pg_roles r on r.oid = any (p.polroles)
                       where p.polrelid = 'public.documents'::regclass
                         and r.rolname = '${UNGUARDED_ROLE}') as unguarded,
              exists (select from pg_policy where polrelid = 'public.documents'::regclass
                        and polname = 'bench_noop_guard') as noop`,
    );
    const r = rows[0];
    return (
      r !== undefined &&
      Number(r.orgs) === ORGS &&
      Number(r.docs) === ORGS * DOCS_PER_ORG &&
      Number(r.naive) === ORGS * DOCS_PER_ORG &&
      r.guarded &&
      r.unguarded &&
      r.noop
    );
  } catch {
    return false;
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------
// The variants
// ---------------------------------------------------------------------------

/**
 * The claims part of the kit's settings statement (src/db/request-settings.ts)
 * without `set_config('role', …)`: variant (b) pays the same claims round trip
 * as (a) but keeps the superuser, so the difference is the role switch and RLS.
 */
const CLAIMS_ONLY_SQL = `select pg_catalog.num_nonnulls(
  pg_catalog.set_config('request.jwt.claims', $1::text, true),
  pg_catalog.set_config('request.method', $2::text, true),
  pg_catalog.set_config('request.path', $3::text, true),
  pg_catalog.set_config('request.headers', $4::text, true),
  pg_catalog.set_config('request.jwt.claim', '', true),
  pg_catalog.set_config('request.jwt.claim.sub', '', true),
  pg_catalog.set_config('request.jwt.claim.role', '', true),
  pg_catalog.set_config('request.jwt.claim.email', '', true)
) as applied`;

/**
 * Variant (k)'s transaction, in the same round trips as asUser: BEGIN and
 * the claims statement together (the kit's pipelined query, which a
 * hand-written version would use as well), `fn`, then COMMIT — as asUser,
 * minus the role switch, the role check and the end-of-request check.
 */
async function asPostgres<T>(
  db: Kysely<BenchDb>,
  claims: Claims,
  fn: (trx: Kysely<BenchDb>) => Promise<T>,
): Promise<T> {
  const json = JSON.stringify(claims);
  return db.connection().execute(async (trx) => {
    const begin = new PipelinedQuery([
      { text: 'begin' },
      // Prepared, as asUser prepares its settings statement.
      { text: CLAIMS_ONLY_SQL, values: [json, '', '', '{}'], rows: true, prepare: true },
    ]);
    let value: T;
    try {
      const r = await trx.executeQuery(CompiledQuery.raw(begin as unknown as string));
      if (!begin.submitted || r.rows.length !== 1) throw new Error('claims statement failed');
      value = await fn(trx);
    } catch (err) {
      await trx.executeQuery(CompiledQuery.raw('rollback')).catch(() => undefined);
      throw err;
    }
    await trx.executeQuery(CompiledQuery.raw('commit'));
    return value;
  });
}

/**
 * Variant (b): the claims statement and the query before one Sync, both
 * prepared — (a)'s `queryAsUser` shape, minus the role switch and the kit's
 * checks. One implicit transaction, so the transaction-local claims end with
 * it.
 */
async function asPostgresOne<R>(
  db: Kysely<BenchDb>,
  claims: Claims,
  compiled: CompiledQuery<R>,
): Promise<{ rows: R[] }> {
  const json = JSON.stringify(claims);
  return db.connection().execute(async (conn) => {
    const pipeline = new PipelinedQuery([
      { text: CLAIMS_ONLY_SQL, values: [json, '', '', '{}'], prepare: true },
      {
        text: compiled.sql,
        values: compiled.parameters,
        anyValues: true,
        rows: true,
        prepare: true,
      },
    ]);
    const result = await conn.executeQuery<R>(CompiledQuery.raw(pipeline as unknown as string));
    if (!pipeline.submitted || pipeline.commands.length !== 2) {
      throw new Error('the claims + query pipeline did not run both statements');
    }
    return result;
  });
}

/** Opt-in for variants (d) and (f): service_role bypasses RLS, the kit refuses it by default. */
const SERVICE = { allowRoles: ['service_role'] } as const;
/** Opt-in for variants (g) and (h): a role outside the default allowlist. */
const UNGUARDED = { allowRoles: [UNGUARDED_ROLE] } as const;
/** Opt-in for variant (i). */
const NOOP_GUARDED = { allowRoles: [NOOP_GUARD_ROLE] } as const;

/**
 * The table a variant reads. (c) names `naive.documents` directly rather than
 * through kysely's `withSchema`, whose plugin rewrites every query tree and
 * measurably slowed (c) for reasons that have nothing to do with policies.
 * The cast only tells kysely's types that both tables have the same columns.
 */
function table(schema: 'public' | 'naive'): 'documents' {
  return (schema === 'naive' ? 'naive.documents' : 'documents') as 'documents';
}

function pageQuery(trx: Kysely<BenchDb>, schema: 'public' | 'naive', orgId?: string) {
  // (a) and (b) use the unqualified name of the brief's query text. The page
  // size is a literal, not a parameter: with `limit $n` Postgres's plan cache
  // (plan_cache_mode = auto) kept re-planning some variants' statements on
  // every call (custom plans) while others ran a cached generic plan, so the
  // ratios compared planning against no planning. With the literal, every
  // variant runs a generic plan after five calls (reported as planCache).
  let q = trx.selectFrom(table(schema)).select(['id', 'title', 'created_at', 'owner_id']);
  if (orgId !== undefined) q = q.where('org_id', '=', orgId);
  return q.orderBy('created_at', 'desc').limit(sql.lit(PAGE));
}

function countQuery(trx: Kysely<BenchDb>, schema: 'public' | 'naive', orgId?: string) {
  let q = trx.selectFrom(table(schema)).select((eb) => eb.fn.countAll<string>().as('n'));
  if (orgId !== undefined) q = q.where('org_id', '=', orgId);
  return q;
}

/** Ids of the page, so variants can be checked to return the same rows. */
function pageOutcome(rows: readonly { id: string }[]): Outcome {
  return rows.map((r) => r.id).join(',');
}

function countOutcome(row: { n: string | number | bigint } | undefined): Outcome {
  if (row === undefined) throw new Error('count(*) returned no row');
  return String(row.n);
}

/**
 * The plain-pg variants send exactly the SQL kysely compiles for (a)/(b), so
 * the two API paths differ only in the API. Parameter order is checked here
 * (where before limit) because the pg runners bind by position.
 */
function compiledSql(db: Kysely<BenchDb>) {
  const page = pageQuery(db, 'public').compile();
  const pageWhere = pageQuery(db, 'public', 'ORG').compile();
  const count = countQuery(db, 'public').compile();
  const countWhere = countQuery(db, 'public', 'ORG').compile();
  const same = (a: readonly unknown[], b: readonly unknown[]) =>
    a.length === b.length && a.every((x, i) => x === b[i]);
  if (
    !same(page.parameters, []) ||
    !same(pageWhere.parameters, ['ORG']) ||
    !same(count.parameters, []) ||
    !same(countWhere.parameters, ['ORG'])
  ) {
    throw new Error('unexpected kysely parameter order: update compiledSql()');
  }
  return { page: page.sql, pageWhere: pageWhere.sql, count: count.sql, countWhere: countWhere.sql };
}

function runners(db: Kysely<BenchDb>, pool: pg.Pool): Record<VariantId, Record<QueryId, Runner>> {
  const text = compiledSql(db);
  const page = async (claims: Claims, schema: 'public' | 'naive', options?: AsUserOptions) =>
    pageOutcome((await queryAsUser(db, claims, pageQuery(db, schema), options)).rows);
  const count = async (claims: Claims, schema: 'public' | 'naive', options?: AsUserOptions) =>
    countOutcome((await queryAsUser(db, claims, countQuery(db, schema), options)).rows[0]);
  return {
    a: { q1: (p) => page(p.claims, 'public'), q2: (p) => count(p.claims, 'public') },
    b: {
      q1: async (p) =>
        pageOutcome(
          (await asPostgresOne(db, p.claims, pageQuery(db, 'public', p.orgId).compile())).rows,
        ),
      q2: async (p) =>
        countOutcome(
          (await asPostgresOne(db, p.claims, countQuery(db, 'public', p.orgId).compile())).rows[0],
        ),
    },
    c: { q1: (p) => page(p.claims, 'naive'), q2: (p) => count(p.claims, 'naive') },
    d: {
      q1: async (p) =>
        pageOutcome(
          (await queryAsUser(db, p.serviceClaims, pageQuery(db, 'public', p.orgId), SERVICE)).rows,
        ),
      q2: async (p) =>
        countOutcome(
          (await queryAsUser(db, p.serviceClaims, countQuery(db, 'public', p.orgId), SERVICE))
            .rows[0],
        ),
    },
    j: {
      q1: (p) =>
        asUser(db, p.claims, async (trx) => pageOutcome(await pageQuery(trx, 'public').execute())),
      q2: (p) =>
        asUser(db, p.claims, async (trx) =>
          countOutcome(await countQuery(trx, 'public').executeTakeFirst()),
        ),
    },
    k: {
      q1: (p) =>
        asPostgres(db, p.claims, async (trx) =>
          pageOutcome(await pageQuery(trx, 'public', p.orgId).execute()),
        ),
      q2: (p) =>
        asPostgres(db, p.claims, async (trx) =>
          countOutcome(await countQuery(trx, 'public', p.orgId).executeTakeFirst()),
        ),
    },
    e: {
      q1: (p) =>
        asUserPg(pool, p.claims, async (c) =>
          pageOutcome((await c.query<{ id: string }>(text.page)).rows),
        ),
      q2: (p) =>
        asUserPg(pool, p.claims, async (c) =>
          countOutcome((await c.query<{ n: string }>(text.count)).rows[0]),
        ),
    },
    g: {
      q1: (p) => page(p.unguardedClaims, 'public', UNGUARDED),
      q2: (p) => count(p.unguardedClaims, 'public', UNGUARDED),
    },
    h: {
      q1: (p) =>
        asUserPg(
          pool,
          p.unguardedClaims,
          async (c) => pageOutcome((await c.query<{ id: string }>(text.page)).rows),
          UNGUARDED,
        ),
      q2: (p) =>
        asUserPg(
          pool,
          p.unguardedClaims,
          async (c) => countOutcome((await c.query<{ n: string }>(text.count)).rows[0]),
          UNGUARDED,
        ),
    },
    i: {
      q1: (p) => page(p.noopGuardClaims, 'public', NOOP_GUARDED),
      q2: (p) => count(p.noopGuardClaims, 'public', NOOP_GUARDED),
    },
    f: {
      q1: (p) =>
        asUserPg(
          pool,
          p.serviceClaims,
          async (c) => pageOutcome((await c.query<{ id: string }>(text.pageWhere, [p.orgId])).rows),
          SERVICE,
        ),
      q2: (p) =>
        asUserPg(
          pool,
          p.serviceClaims,
          async (c) =>
            countOutcome((await c.query<{ n: string }>(text.countWhere, [p.orgId])).rows[0]),
          SERVICE,
        ),
    },
  };
}

type Compiled = { sql: string; parameters: readonly unknown[] };

async function explain(trx: Kysely<BenchDb>, compiled: Compiled): Promise<string[]> {
  const r = await trx.executeQuery<{ 'QUERY PLAN': string }>(
    CompiledQuery.raw(`explain (analyze, buffers) ${compiled.sql}`, [...compiled.parameters]),
  );
  return r.rows.map((row) => row['QUERY PLAN']);
}

/** EXPLAIN (ANALYZE, BUFFERS) of q1 and q2 under (a), (b) and (c), for one persona. */
async function explainQueries(db: Kysely<BenchDb>, p: Persona) {
  return {
    a: {
      q1: await asUser(db, p.claims, (trx) => explain(trx, pageQuery(trx, 'public').compile())),
      q2: await asUser(db, p.claims, (trx) => explain(trx, countQuery(trx, 'public').compile())),
    },
    b: {
      q1: await asPostgres(db, p.claims, (trx) =>
        explain(trx, pageQuery(trx, 'public', p.orgId).compile()),
      ),
      q2: await asPostgres(db, p.claims, (trx) =>
        explain(trx, countQuery(trx, 'public', p.orgId).compile()),
      ),
    },
    c: {
      q1: await asUser(db, p.claims, (trx) => explain(trx, pageQuery(trx, 'naive').compile())),
      q2: await asUser(db, p.claims, (trx) => explain(trx, countQuery(trx, 'naive').compile())),
    },
  };
}

/** Carries EXPLAIN output out of a transaction that must not commit. */
class RollbackWith extends Error {
  constructor(readonly lines: string[]) {
    super('rolled back on purpose');
  }
}

/**
 * Where naive policies do cost per row: q1 and q2 reduce the policy to an
 * index condition (evaluated once per scan either way), but the delete
 * policy's `owner_id = auth.uid() or user_role in (…)` is a filter checked on
 * every row of the organization. EXPLAIN ANALYZE of `delete from documents`
 * for a member, inside asUser, rolled back by throwing (nothing is deleted).
 */
async function explainDelete(db: Kysely<BenchDb>, p: Persona, table: string): Promise<string[]> {
  try {
    await asUser(db, p.claims, async (trx) => {
      throw new RollbackWith(await explain(trx, { sql: `delete from ${table}`, parameters: [] }));
    });
  } catch (err) {
    if (err instanceof RollbackWith) return err.lines;
    throw err;
  }
  throw new Error('unreachable: the delete explain always rolls back');
}

/** {@link explainDelete} twice, keeping the second: the first reads the heap from disk, the second shows the filter's CPU cost. */
async function explainDeleteWarm(
  db: Kysely<BenchDb>,
  p: Persona,
  table: string,
): Promise<string[]> {
  await explainDelete(db, p, table);
  return explainDelete(db, p, table);
}

async function loadPersonas(pool: pg.Pool): Promise<Persona[]> {
  // Organizations spread over the whole range, roles in turn: every role is
  // measured, and each persona's rows sit in different heap pages.
  const wanted = Array.from({ length: PERSONAS }, (_, i) => ({
    org: Math.round(((i + 1) * ORGS) / PERSONAS),
    role: ROLES[i % ROLES.length] ?? 'member',
  }));
  const { rows } = await pool.query<{ org_id: string; user_id: string; role: string; i: number }>(
    `select m.org_id::text, m.user_id::text, m.role, w.i::int
     from unnest($1::text[], $2::text[]) with ordinality as w(org_name, role, i)
     join public.organizations o on o.name = w.org_name
     join public.memberships m on m.org_id = o.id and m.role = w.role
     order by w.i`,
    [wanted.map((w) => `Org ${w.org}`), wanted.map((w) => w.role)],
  );
  if (rows.length !== PERSONAS) throw new Error(`found ${rows.length} of ${PERSONAS} personas`);
  const now = Math.floor(Date.now() / 1000);
  return rows.map((r) => {
    // Claims shaped like a kit access token for the example app.
    const claims = {
      iss: 'https://bench.rls-kit.invalid',
      aud: 'authenticated',
      sub: r.user_id,
      role: 'authenticated',
      iat: now,
      exp: now + 3600,
      jti: randomBytes(16).toString('base64url'),
      org_id: r.org_id,
      user_role: r.role,
    };
    return {
      orgId: r.org_id,
      userId: r.user_id,
      role: r.role,
      claims,
      serviceClaims: { ...claims, role: 'service_role' },
      unguardedClaims: { ...claims, role: UNGUARDED_ROLE },
      noopGuardClaims: { ...claims, role: NOOP_GUARD_ROLE },
    };
  });
}

// ---------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------

/**
 * Order of the variants in iteration i: rotated by one each iteration and
 * reversed every other cycle, so no variant always goes first or always
 * follows the same neighbour (whose reads warm the same pages).
 */
function orderOf(i: number): VariantId[] {
  const n = VARIANTS.length;
  const rotated = VARIANTS.map((_, k) => VARIANTS[(k + i) % n]!);
  return Math.floor(i / n) % 2 === 0 ? rotated : rotated.reverse();
}

type PerVariant<T> = Record<VariantId, Record<QueryId, T>>;

function perVariant<T>(make: (v: VariantId, q: QueryId) => T): PerVariant<T> {
  const row = (v: VariantId) => ({ q1: make(v, 'q1'), q2: make(v, 'q2') });
  return {
    a: row('a'),
    b: row('b'),
    c: row('c'),
    d: row('d'),
    e: row('e'),
    f: row('f'),
    g: row('g'),
    h: row('h'),
    i: row('i'),
    j: row('j'),
    k: row('k'),
  };
}

/**
 * Persona stride between variants within one iteration (coprime with
 * PERSONAS, so every variant still visits every persona equally often).
 */
const PERSONA_STRIDE = 37;

/**
 * Back-to-back calls from one caller, interleaved per iteration (every
 * variant, in a changing order) so drift — autovacuum, checkpoints, CPU
 * frequency, other processes on the machine — hits every variant alike.
 * Within an iteration each variant serves a different persona: with one
 * persona for all, the first public.documents variant pulled that
 * organization's pages into the CPU caches for the four after it, while (c)
 * alone reads naive.documents and always found its pages cold — which made
 * (c) look ~50 µs slower than the same work under the fast policies.
 * Returns microsecond latencies of whole API calls.
 */
async function measureLatency(
  run: PerVariant<Runner>,
  personas: readonly Persona[],
  iterations: number,
): Promise<PerVariant<number[]>> {
  const samples = perVariant<number[]>(() => []);
  for (let i = 0; i < iterations; i++) {
    const order = orderOf(i);
    for (const q of QUERIES) {
      for (const v of order) {
        const p = personas[(i + VARIANTS.indexOf(v) * PERSONA_STRIDE) % personas.length]!;
        const start = process.hrtime.bigint();
        await run[v][q](p);
        samples[v][q].push(elapsedUs(start));
      }
    }
  }
  return samples;
}

/**
 * POOL_MAX concurrent callers for a fixed time per variant × query, in
 * changing order over several rounds; returns calls per second.
 */
async function measureThroughput(
  run: PerVariant<Runner>,
  personas: readonly Persona[],
): Promise<PerVariant<number>> {
  const ops = perVariant(() => 0);
  const ms = perVariant(() => 0);
  for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
    for (const q of QUERIES) {
      for (const v of orderOf(round)) {
        const start = process.hrtime.bigint();
        const deadline = start + BigInt(THROUGHPUT_SLOT_MS) * 1_000_000n;
        let done = 0;
        await Promise.all(
          Array.from({ length: POOL_MAX }, async (_, w) => {
            for (let k = w; process.hrtime.bigint() < deadline; k += POOL_MAX) {
              await run[v][q](personas[k % personas.length]!);
              done++;
            }
          }),
        );
        ops[v][q] += done;
        ms[v][q] += elapsedUs(start) / 1000;
      }
    }
  }
  return perVariant((v, q) => Math.round((ops[v][q] * 1000) / ms[v][q]));
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

interface VariantResult extends LatencySummary {
  /** Calls per second with POOL_MAX concurrent callers. */
  concurrentOpsPerSec: number;
}

interface Ratios {
  /** The goal: policies + role switch through the kit's API vs superuser with WHERE. */
  aOverB: number;
  aOverBP95: number;
  /** Naive policies vs superuser with WHERE. */
  cOverB: number;
  cOverBP95: number;
  /** Naive vs the example's policies. */
  cOverA: number;
  /** Policies alone: same API and role switch, RLS on vs bypassed. */
  aOverD: number;
  /** Role switch and API checks alone, no RLS on either side. */
  dOverB: number;
  /** Policies alone on the plain-pg API (asUserPg). */
  eOverF: number;
  /** The plain-pg API (asUserPg) under the example's policies vs superuser with WHERE. */
  eOverB: number;
  /** The revocation guard alone (issue 4: ≤ 1.1), kysely asUser: same query, same pages, with vs without the guard policy. */
  aOverG: number;
  /** The revocation guard alone on asUserPg. */
  eOverH: number;
  /** The guard's lookup alone: the real guard vs a no-op guard with the same mechanism. */
  aOverI: number;
  /** The guard's mechanism alone (InitPlan, SECURITY DEFINER call, per-row check), no lookup. */
  iOverG: number;
  /** Concurrent throughput of (b) over (a): the goal's ratio under load. */
  aOverBConcurrent: number;
  /** (a)/(b) through the transaction API (asUser, three round trips). */
  jOverK: number;
}

function ratiosOf(results: PerVariant<VariantResult>, q: QueryId): Ratios {
  const r = (v: VariantId) => results[v][q];
  const ratio = (x: number, y: number) => round3(x / y);
  return {
    aOverB: ratio(r('a').medianUs, r('b').medianUs),
    aOverBP95: ratio(r('a').p95Us, r('b').p95Us),
    cOverB: ratio(r('c').medianUs, r('b').medianUs),
    cOverBP95: ratio(r('c').p95Us, r('b').p95Us),
    cOverA: ratio(r('c').medianUs, r('a').medianUs),
    aOverD: ratio(r('a').medianUs, r('d').medianUs),
    dOverB: ratio(r('d').medianUs, r('b').medianUs),
    eOverF: ratio(r('e').medianUs, r('f').medianUs),
    eOverB: ratio(r('e').medianUs, r('b').medianUs),
    aOverG: ratio(r('a').medianUs, r('g').medianUs),
    eOverH: ratio(r('e').medianUs, r('h').medianUs),
    aOverI: ratio(r('a').medianUs, r('i').medianUs),
    iOverG: ratio(r('i').medianUs, r('g').medianUs),
    aOverBConcurrent: ratio(r('b').concurrentOpsPerSec, r('a').concurrentOpsPerSec),
    jOverK: ratio(r('j').medianUs, r('k').medianUs),
  };
}

/**
 * Runs the benchmark, prints a Markdown table on stdout and writes
 * `bench/results/rls.json`.
 *
 * @example
 * ```ts
 * await run(); // DATABASE_URL or the embedded default
 * ```
 */
export async function run(): Promise<void> {
  const t0 = process.hrtime.bigint();
  const log = (line: string) => process.stderr.write(`[bench rls] ${line}\n`);
  const database = await openDatabase();
  let pool: pg.Pool | undefined;
  let db: Kysely<BenchDb> | undefined;
  try {
    log(`server ${describeUrl(database.url)}${database.embedded ? ' (embedded default)' : ''}`);
    const bench = await prepareBenchDatabase({
      adminUrl: database.url,
      name: BENCH_DB,
      fingerprint: await fingerprint(),
      rebuild: process.env.BENCH_RLS_REBUILD === '1',
      verify: dataIntact,
      build: (url) => buildData(url, log),
      log,
    });
    if (!bench.reused) log(`data generated in ${(bench.buildMs / 1000).toFixed(1)} s`);

    pool = new pg.Pool({ connectionString: bench.url, max: POOL_MAX });
    db = new Kysely<BenchDb>({ dialect: new PostgresDialect({ pool }) });
    const allVisible = await ensureAllVisible(pool, log);
    const info = await serverInfo(pool);
    const loadBefore = os.loadavg();
    const personas = await loadPersonas(pool);
    const run = runners(db, pool);

    // Same rows everywhere, or the timings compare different work.
    for (const p of personas) {
      for (const q of QUERIES) {
        const expected = await run.b[q](p);
        for (const v of VARIANTS) {
          if ((await run[v][q](p)) !== expected) {
            throw new Error(`variant ${v} disagrees with (b) on ${q} for org ${p.orgId}`);
          }
        }
        if (q === 'q2' && expected !== String(DOCS_PER_ORG)) {
          throw new Error(`count ${expected} for org ${p.orgId}, expected ${DOCS_PER_ORG}`);
        }
      }
    }
    log(`variants agree for ${personas.length} personas; warming up (${WARMUP} iterations)`);
    await measureLatency(run, personas, WARMUP);
    log(`measuring ${ITERATIONS} iterations per variant and query`);
    const countersBefore = await blockCounters(pool);
    const samples = await measureLatency(run, personas, ITERATIONS);
    const buffers = bufferMisses(countersBefore, await blockCounters(pool));
    log(`measuring throughput with ${POOL_MAX} concurrent callers`);
    const throughput = await measureThroughput(run, personas);
    const planCache = await planCacheOf(pool);
    const loadAfter = os.loadavg();
    const first = personas[0]!;
    const member = personas.find((p) => p.role === 'member') ?? first;
    const plans = {
      persona: { orgId: first.orgId, role: first.role },
      ...(await explainQueries(db, first)),
      deleteAsMember: {
        note: 'EXPLAIN ANALYZE of "delete from <table>" as a member, rolled back: the update/delete policies OR owner_id = auth.uid() with a user_role test, a per-row filter',
        persona: { orgId: member.orgId, role: member.role },
        a: await explainDeleteWarm(db, member, 'public.documents'),
        c: await explainDeleteWarm(db, member, 'naive.documents'),
      },
    };

    const results = perVariant<VariantResult>((v, q) => ({
      ...summarize(samples[v][q]),
      concurrentOpsPerSec: throughput[v][q],
    }));
    const ratios = { q1: ratiosOf(results, 'q1'), q2: ratiosOf(results, 'q2') };
    const met = QUERIES.every((q) => ratios[q].aOverB <= GOAL_RATIO);
    const totalMs = Math.round(elapsedUs(t0) / 1000);
    const report = {
      benchmark: 'rls',
      at: new Date().toISOString(),
      goal: {
        rule: `median latency (a)/(b) <= ${GOAL_RATIO} for q1 and q2`,
        met,
        judgedOn: 'PostgreSQL 15 of this machine (DATABASE_URL); other servers are informational',
      },
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memoryGiB: Math.round(os.totalmem() / 2 ** 30),
        platform: `${os.platform()} ${os.release()}`,
        node: process.version,
        // Other work on the machine (tests, builds) inflates absolute numbers;
        // the interleaving spreads it evenly over the variants.
        loadAverage1m: { before: round1(loadBefore[0] ?? 0), after: round1(loadAfter[0] ?? 0) },
      },
      server: { target: describeUrl(bench.url), embedded: database.embedded, ...info },
      data: {
        distribution: `uniform: ${ORGS} organizations x ${DOCS_PER_ORG} documents, ${ROLES.length} users per organization (one per role), heap in time order with organizations interleaved`,
        organizations: ORGS,
        documents: ORGS * DOCS_PER_ORG,
        users: ORGS * ROLES.length,
        memberships: ORGS * ROLES.length,
        naiveCopy: 'naive.documents: like public.documents including all, same rows',
        reused: bench.reused,
        generationMs: bench.buildMs,
        sizes: info.sizes,
        allVisibleShare: allVisible,
        buffersDuringLatencyLoop: buffers,
      },
      config: {
        poolMax: POOL_MAX,
        personas: PERSONAS,
        warmupIterations: WARMUP,
        iterations: ITERATIONS,
        interleaving:
          'per iteration: q1 then q2, each through all variants (rotating, alternately reversed order); each variant serves a different persona within an iteration (stride 37 of 100), all personas equally often',
        throughput: `${POOL_MAX} concurrent callers, ${THROUGHPUT_SLOT_MS} ms per variant x query, ${THROUGHPUT_ROUNDS} rounds`,
        latency:
          'whole API call (claims validation, pool checkout, BEGIN, settings, query, COMMIT), microseconds',
      },
      queries: {
        ...compiledSql(db),
        pageNaive: pageQuery(db, 'naive').compile().sql,
        countNaive: countQuery(db, 'naive').compile().sql,
      },
      variants: VARIANT_LABELS,
      results,
      ratios,
      planCache,
      plans,
      totalRuntimeMs: totalMs,
    };
    await fs.mkdir(path.dirname(RESULTS_FILE), { recursive: true });
    await fs.writeFile(RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(markdown(report.server.version, database.embedded, results, ratios, met));
    const replanned = planCache.filter((p) => p.custom > 5 * p.connections);
    process.stdout.write(
      `- plan cache: ${planCache.length} prepared statements on ${POOL_MAX} connections; ${
        replanned.length === 0
          ? 'every one ran its cached generic plan after at most 5 custom plans per connection'
          : `re-planned on every call (custom plans): ${replanned.map((p) => JSON.stringify(p.statement)).join(', ')}`
      }\n`,
    );
    process.stdout.write(
      `\ndata: ${bench.reused ? 'reused' : `generated in ${(bench.buildMs / 1000).toFixed(1)} s`}; total ${(totalMs / 1000).toFixed(1)} s; load average ${report.machine.loadAverage1m.before} → ${report.machine.loadAverage1m.after}; JSON: ${path.relative(process.cwd(), RESULTS_FILE)}\n`,
    );
  } finally {
    if (db !== undefined) await db.destroy();
    else if (pool !== undefined) await pool.end();
    await database.close();
  }
}

/**
 * Generic and custom plans of every prepared statement on the pool's
 * connections (`pg_prepared_statements`), summed per statement text: a
 * statement Postgres keeps re-planning (custom plans) pays planning on every
 * call, so the variants are comparable only if none does.
 */
async function planCacheOf(
  pool: pg.Pool,
): Promise<{ statement: string; connections: number; generic: number; custom: number }[]> {
  const clients = await Promise.all(Array.from({ length: POOL_MAX }, () => pool.connect()));
  // Keyed on the name: the kit names a statement per role, so equal texts of
  // different variants are different statements.
  const sums = new Map<
    string,
    { statement: string; connections: number; generic: number; custom: number }
  >();
  try {
    for (const client of clients) {
      const { rows } = await client.query<{
        name: string;
        statement: string;
        generic: string;
        custom: string;
      }>(
        `select name, statement, generic_plans as generic, custom_plans as custom
           from pg_catalog.pg_prepared_statements`,
      );
      for (const r of rows) {
        const sum = sums.get(r.name) ?? {
          statement: r.statement.replace(/\s+/g, ' ').slice(0, 120),
          connections: 0,
          generic: 0,
          custom: 0,
        };
        sum.connections += 1;
        sum.generic += Number(r.generic);
        sum.custom += Number(r.custom);
        sums.set(r.name, sum);
      }
    }
  } finally {
    for (const client of clients) client.release();
  }
  return [...sums.values()];
}

async function serverInfo(pool: pg.Pool) {
  const { rows } = await pool.query<{
    version: string;
    settings: Record<string, string>;
    sizes: Record<string, string>;
  }>(
    `select current_setting('server_version') as version,
            (select jsonb_object_agg(name, setting || coalesce(unit, ''))
               from pg_settings
              where name in ('shared_buffers', 'work_mem', 'jit', 'effective_cache_size',
                             'random_page_cost', 'max_parallel_workers_per_gather')) as settings,
            jsonb_build_object(
              'public.documents', pg_size_pretty(pg_total_relation_size('public.documents')),
              'naive.documents', pg_size_pretty(pg_total_relation_size('naive.documents')),
              'database', pg_size_pretty(pg_database_size(current_database()))) as sizes`,
  );
  const r = rows[0];
  if (r === undefined) throw new Error('server info query returned nothing');
  return r;
}

function markdown(
  version: string,
  embedded: boolean,
  results: PerVariant<VariantResult>,
  ratios: Record<QueryId, Ratios>,
  met: boolean,
): string {
  const lines = [
    `### RLS overhead — PostgreSQL ${version}${embedded ? ' (embedded)' : ''}`,
    '',
    '| variant | query | median µs | p95 µs | ops/s (1 caller) | ops/s (4 callers) | median vs (b) |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const q of QUERIES) {
    for (const v of VARIANTS) {
      const r = results[v][q];
      const vsB = round3(r.medianUs / results.b[q].medianUs);
      lines.push(
        `| ${VARIANT_LABELS[v]} | ${QUERY_LABELS[q]} | ${round1(r.medianUs)} | ${round1(r.p95Us)} | ${r.opsPerSec} | ${r.concurrentOpsPerSec} | ${vsB.toFixed(3)} |`,
      );
    }
  }
  lines.push('');
  for (const q of QUERIES) {
    const r = ratios[q];
    lines.push(
      `- ${QUERY_LABELS[q]}: **(a)/(b) = ${r.aOverB}** (p95 ${r.aOverBP95}, 4 callers ${r.aOverBConcurrent}); asUserPg (e)/(b) = ${r.eOverB}; **revocation guard (a)/(g) = ${r.aOverG}** (its mechanism (i)/(g) = ${r.iOverG}, its lookup (a)/(i) = ${r.aOverI}), asUserPg (e)/(h) = ${r.eOverH}; (c)/(b) = ${r.cOverB} (p95 ${r.cOverBP95}); policies + guard (a)/(d) = ${r.aOverD}, asUserPg (e)/(f) = ${r.eOverF}; role switch + API checks (d)/(b) = ${r.dOverB}; through asUser's transaction (j)/(k) = ${r.jOverK}`,
    );
  }
  lines.push(`- goal (a)/(b) ≤ ${GOAL_RATIO} on medians: **${met ? 'met' : 'NOT met'}**`);
  return `${lines.join('\n')}\n`;
}

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
}

// Runnable on its own (`npx tsx bench/rls.ts`) as well as through bench/run.ts.
if (
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href
) {
  run().catch((err: unknown) => {
    process.stderr.write(
      `[bench rls] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  });
}
