/**
 * `npm run bench -- review`: how long `rls-kit review` takes on a large
 * schema. Goal (issue 6): a generated schema of 200 tables and 600 policies
 * reviewed — catalog, claim parsing, lints and the persona matrix for 4
 * personas — in ≤ 5 s.
 *
 * Schema: 200 tables in `public`, each with the example's shape (uuid id,
 * `org_id`, `owner_id`, title, body, created_at), RLS enabled and forced,
 * grants to authenticated, an index on `org_id`, 20 rows across two
 * organizations, and 3 policies in realistic shapes that read claims through
 * `(select auth.jwt())`, `auth.uid()` (every 10th table unwrapped, so the
 * per-row lint has work), `app_metadata` paths and a SQL helper function
 * (every 4th table), so the parser descends one level too. Personas: anon,
 * owner, member and viewer of one organization.
 *
 * Method: a scratch database (dropped afterwards) on the server of
 * `DATABASE_URL` (else the embedded default); one warm-up review, then
 * `BENCH_REVIEW_RUNS` (default 5) timed reviews end to end (connect, read,
 * parse, probe, lint, build the report); the median is the result. Results:
 * `bench/results/review.json` and a Markdown line on stdout.
 *
 * Run: `npm run bench -- review`, or directly `npx tsx bench/review.ts`.
 */
import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describeUrl, openDatabase } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { reviewDatabase } from '../src/review/review-database.js';
import type { ReviewReport } from '../src/review/types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_FILE = path.join(ROOT, 'bench', 'results', 'review.json');
const TABLES = 200;
const ROWS_PER_TABLE = 20;
const GOAL_SECONDS = 5;
const ORG_A = 'a0000000-0000-4000-8000-0000000000a1';
const ORG_B = 'a0000000-0000-4000-8000-0000000000b2';
const USERS = {
  owner: 'b0000000-0000-4000-8000-0000000000a1',
  member: 'b0000000-0000-4000-8000-0000000000a2',
  viewer: 'b0000000-0000-4000-8000-0000000000a3',
} as const;

/** What `bench/results/review.json` holds. */
export interface ReviewBenchResult {
  readonly name: 'review';
  readonly tables: number;
  readonly policies: number;
  readonly personas: number;
  readonly matrixCells: number;
  /** Seconds per timed run, in order. */
  readonly runsSeconds: readonly number[];
  readonly medianSeconds: number;
  readonly goalSeconds: number;
  readonly meetsGoal: boolean;
  readonly findings: ReviewReport['summary']['findings'];
  readonly server: string;
  readonly machine: string;
}

/**
 * Builds the schema, times the review, writes `bench/results/review.json`
 * and prints a Markdown line.
 *
 * @example
 * ```ts
 * import { run } from './review.js';
 * await run();
 * ```
 */
export async function run(): Promise<void> {
  const runs = Math.max(1, Number(process.env.BENCH_REVIEW_RUNS ?? 5) || 5);
  const db = await openDatabase();
  const name = `rls_kit_bench_review_${randomBytes(4).toString('hex')}`;
  const adminUrl = db.url;
  const url = withDatabase(adminUrl, name);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    process.stderr.write(
      `review bench: building ${TABLES} tables in ${name} on ${db.embedded ? 'the embedded server' : describeUrl(adminUrl)}\n`,
    );
    await admin.query(`create database ${pg.escapeIdentifier(name)}`);
    await migrate({ url, dir: path.join(ROOT, 'migrations') });
    await buildSchema(url);

    const personas = [
      { name: 'anon', source: 'given' as const, claims: { role: 'anon' } },
      ...(['owner', 'member', 'viewer'] as const).map((role) => ({
        name: role,
        source: 'given' as const,
        claims: {
          role: 'authenticated',
          sub: USERS[role],
          org_id: ORG_A,
          user_role: role,
          iat: Math.floor(Date.now() / 1000),
        },
      })),
    ];
    const review = () => reviewDatabase({ url, personas });
    const warm = await review();
    const times: number[] = [];
    let last = warm;
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      last = await review();
      times.push((performance.now() - started) / 1000);
    }
    const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    const result: ReviewBenchResult = {
      name: 'review',
      tables: last.summary.tables,
      policies: last.summary.policies,
      personas: last.summary.personas,
      matrixCells: last.matrix.length * 4,
      runsSeconds: times.map(round3),
      medianSeconds: round3(median),
      goalSeconds: GOAL_SECONDS,
      meetsGoal: median <= GOAL_SECONDS,
      findings: last.summary.findings,
      server: last.volatile.serverVersion,
      machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`,
    };
    await fs.mkdir(path.dirname(RESULTS_FILE), { recursive: true });
    await fs.writeFile(RESULTS_FILE, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(
      `## review\n\n| benchmark | schema | personas | median | goal | |\n|---|---|---:|---:|---:|---|\n` +
        `| rls-kit review (lints + matrix) | ${result.tables} tables, ${result.policies} policies | ${result.personas} | ${result.medianSeconds.toFixed(2)} s | ≤ ${GOAL_SECONDS} s | ${result.meetsGoal ? 'met' : 'MISSED'} |\n\n` +
        `runs: ${result.runsSeconds.map((s) => s.toFixed(2)).join(', ')} s · ${result.matrixCells} matrix cells · PostgreSQL ${result.server} · ${result.machine}\n`,
    );
  } finally {
    await admin
      .query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`)
      .catch(() => undefined);
    await admin.end();
    await db.close();
  }
}

/** Fills an empty database (kit migrations applied) with the benchmark schema. */
export async function buildSchema(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`
      create function public.has_org_role(target uuid, roles text[])
      returns boolean language sql stable set search_path = ''
      as $$ select (auth.jwt() ->> 'org_id')::uuid = target and (auth.jwt() ->> 'user_role') = any (roles) $$;
      revoke execute on function public.has_org_role(uuid, text[]) from public, anon;
      grant execute on function public.has_org_role(uuid, text[]) to authenticated;`);
    const statements: string[] = [];
    for (let i = 1; i <= TABLES; i++) {
      const t = `t_${String(i).padStart(3, '0')}`;
      const uid = i % 10 === 0 ? 'auth.uid()' : '(select auth.uid())';
      const writers =
        i % 4 === 0
          ? `(select public.has_org_role(org_id, array['owner', 'admin', 'member']))`
          : `((select auth.jwt()) ->> 'user_role') in ('owner', 'admin', 'member')`;
      const admins =
        i % 7 === 0
          ? `((select auth.jwt()) -> 'app_metadata' ->> 'tier') = 'staff'`
          : `((select auth.jwt()) ->> 'user_role') in ('owner', 'admin')`;
      statements.push(`
        create table public.${t} (
          id uuid primary key default gen_random_uuid(),
          org_id uuid not null,
          owner_id uuid not null,
          title text not null,
          body text not null default '',
          created_at timestamptz not null default now()
        );
        create index ${t}_org_id_idx on public.${t} (org_id);
        alter table public.${t} enable row level security;
        alter table public.${t} force row level security;
        revoke all on public.${t} from public, anon, authenticated;
        grant select, insert, update, delete on public.${t} to authenticated;
        grant select, insert, update, delete on public.${t} to service_role;
        create policy ${t}_select on public.${t} for select to authenticated
          using (org_id = ((select auth.jwt()) ->> 'org_id')::uuid);
        create policy ${t}_insert on public.${t} for insert to authenticated
          with check (org_id = ((select auth.jwt()) ->> 'org_id')::uuid and owner_id = ${uid} and ${writers});
        create policy ${t}_update on public.${t} for update to authenticated
          using (org_id = ((select auth.jwt()) ->> 'org_id')::uuid and (owner_id = ${uid} or ${admins}))
          with check (org_id = ((select auth.jwt()) ->> 'org_id')::uuid and (owner_id = ${uid} or ${admins}));
        insert into public.${t} (org_id, owner_id, title)
          select case when n % 2 = 0 then '${ORG_A}'::uuid else '${ORG_B}'::uuid end,
                 (array['${USERS.owner}', '${USERS.member}', '${USERS.viewer}'])[1 + n % 3]::uuid,
                 'row ' || n
            from generate_series(1, ${ROWS_PER_TABLE}) as n;`);
    }
    // One transaction per 20 tables keeps the statements small and the build quick.
    for (let i = 0; i < statements.length; i += 20) {
      await client.query(`begin; ${statements.slice(i, i + 20).join('\n')} commit;`);
    }
    await client.query('analyze');
  } finally {
    await client.end();
  }
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) await run();
