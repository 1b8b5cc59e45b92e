/**
 * A dedicated benchmark database on the server under test, rebuilt only when
 * what it was built from changes: generating a million rows costs far more
 * than the benchmark itself, so a database whose fingerprint (a hash of the
 * migrations and the generator) matches is reused as it is.
 */
import pg from 'pg';

export interface BenchDatabaseOptions {
  /** Connection string of any database on the server (the one DATABASE_URL names). */
  adminUrl: string;
  /** Name of the dedicated database, e.g. `rls_kit_bench`. */
  name: string;
  /** Hash of everything the data depends on; a different value forces a rebuild. */
  fingerprint: string;
  /** True to rebuild even when the fingerprint matches. */
  rebuild?: boolean;
  /** Extra check on a candidate for reuse (e.g. row counts); false forces a rebuild. */
  verify?: (url: string) => Promise<boolean>;
  /** Fills a freshly created, empty database. */
  build: (url: string) => Promise<void>;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

export interface BenchDatabase {
  /** Connection string of the dedicated database. */
  url: string;
  /** True when an existing database with a matching fingerprint was reused. */
  reused: boolean;
  /** Milliseconds spent building (0 when reused). */
  buildMs: number;
}

/** Where the fingerprint lives: written last, so a half-built database never matches. */
const META_SCHEMA = 'bench_meta';
/** Comment set on the database at creation: marks it as the benchmark's own. */
const DATABASE_COMMENT = 'supabase-rls-kit benchmark data (generated; safe to drop)';

/**
 * Reuses `name` when its stored fingerprint equals `fingerprint` (and
 * `verify` agrees), else drops it, creates it empty, runs `build` and stores
 * the fingerprint.
 *
 * @example
 * ```ts
 * const { url, reused } = await prepareBenchDatabase({ adminUrl, name: 'rls_kit_bench', fingerprint, build, log });
 * ```
 */
export async function prepareBenchDatabase(options: BenchDatabaseOptions): Promise<BenchDatabase> {
  const { adminUrl, name, fingerprint, log } = options;
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) {
    throw new Error(
      `bench database name ${JSON.stringify(name)} must be a plain lower-case identifier`,
    );
  }
  const url = withDatabase(adminUrl, name);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const exists =
      (await admin.query('select 1 from pg_catalog.pg_database where datname = $1', [name]))
        .rowCount === 1;
    if (exists) {
      const stored = await storedFingerprint(url);
      if (stored === undefined) {
        // Never drop a database this benchmark did not create (neither its
        // bookkeeping table nor its comment): it may be someone's data.
        throw new Error(
          `database ${name} exists but was not created by this benchmark: drop it yourself or choose another name`,
        );
      }
      if (
        options.rebuild !== true &&
        stored === fingerprint &&
        (options.verify === undefined || (await options.verify(url)))
      ) {
        log(`reusing database ${name} (fingerprint ${fingerprint.slice(0, 12)} matches)`);
        return { url, reused: true, buildMs: 0 };
      }
      log(
        `database ${name} ${options.rebuild === true ? 'rebuild requested' : `is stale (fingerprint ${stored.slice(0, 12) || 'none: an interrupted build'})`}: rebuilding`,
      );
    }
    // WITH (FORCE) ends sessions a crashed earlier run may have left behind.
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}`);
    // Marks the database as the benchmark's before anything else happens, so
    // a build that dies halfway is still recognised (and rebuilt) next time.
    await admin.query(`comment on database ${name} is '${DATABASE_COMMENT}'`);
  } finally {
    await admin.end();
  }
  const started = process.hrtime.bigint();
  await options.build(url);
  const buildMs = Math.round(Number(process.hrtime.bigint() - started) / 1e6);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`create schema if not exists ${META_SCHEMA}`);
    await client.query(
      `create table if not exists ${META_SCHEMA}.fingerprint (fingerprint text primary key, build_ms integer not null, built_at timestamptz not null default now())`,
    );
    await client.query(
      `comment on schema ${META_SCHEMA} is 'Benchmark bookkeeping: what this database was generated from (reuse check).'`,
    );
    await client.query(`truncate ${META_SCHEMA}.fingerprint`);
    await client.query(
      `insert into ${META_SCHEMA}.fingerprint (fingerprint, build_ms) values ($1, $2)`,
      [fingerprint, buildMs],
    );
  } finally {
    await client.end();
  }
  return { url, reused: false, buildMs };
}

/** The same connection string pointing at another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * The stored fingerprint: `''` for a database this benchmark created whose
 * build did not finish, `undefined` for a database it did not create.
 */
async function storedFingerprint(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ has_table: boolean; marked: boolean }>(
      `select pg_catalog.to_regclass($1) is not null as has_table,
              coalesce(pg_catalog.shobj_description(d.oid, 'pg_database') = $2, false) as marked
         from pg_catalog.pg_database d
        where d.datname = pg_catalog.current_database()`,
      [`${META_SCHEMA}.fingerprint`, DATABASE_COMMENT],
    );
    const r = rows[0];
    if (r?.has_table !== true) return r?.marked === true ? '' : undefined;
    const fp = await client.query<{ fingerprint: string }>(
      `select fingerprint from ${META_SCHEMA}.fingerprint limit 1`,
    );
    return fp.rows[0]?.fingerprint ?? '';
  } finally {
    await client.end();
  }
}
