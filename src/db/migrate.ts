import path from 'node:path';
import pg from 'pg';
import { RlsKitError } from '../errors.js';
import { parseDatabaseUrl, unreachable } from './database.js';
import {
  KIT_MIGRATIONS_DIR,
  LineIndex,
  listMigrationFiles,
  type MigrationFile,
  oneLine,
  readSqlScript,
  type ScriptStatement,
  type SqlScript,
} from './migration-files.js';

export { KIT_MIGRATIONS_DIR, listMigrationFiles, type MigrationFile };

export interface MigrateOptions {
  /** Connection string (never printed; errors name only host, port and database). */
  url: string;
  /** Folder of `<14 digits>_<name>.sql` files; default: the kit's own migrations. */
  dir?: string;
  /** Called after each file is committed, in order. */
  onApplied?: (m: MigrationFile) => void;
}

export interface MigrateResult {
  /** Files applied by this call, in order. */
  applied: MigrationFile[];
  /** Files whose version was already in the history (by an earlier run, the Supabase CLI, or a concurrent run). */
  skipped: MigrationFile[];
}

// The Supabase CLI's own statements (pkg/migration/history.go, CLI 2.117.0),
// so a table we create is the table it would create, and an older table
// (version only) gets the same upgrade.
const CREATE_HISTORY = [
  "set local lock_timeout = '4s'",
  'create schema if not exists supabase_migrations',
  'create table if not exists supabase_migrations.schema_migrations (version text not null primary key)',
  'alter table supabase_migrations.schema_migrations add column if not exists statements text[]',
  'alter table supabase_migrations.schema_migrations add column if not exists name text',
];
const INSERT_HISTORY =
  'insert into supabase_migrations.schema_migrations (version, name, statements) values ($1, $2, $3)';

/**
 * Key of the transaction-level advisory lock every migration transaction
 * takes, so two concurrent `migrate` runs serialise per file and the second
 * sees the first's history row instead of applying the file again.
 */
const LOCK_NAME = 'supabase_migrations.schema_migrations';
const LOCK = 'select pg_advisory_xact_lock(hashtext($1))';

/**
 * Applies a folder of Supabase-style migrations (`<14 digits>_<name>.sql`) that
 * the database's history lacks, in version order, recording each in
 * `supabase_migrations.schema_migrations` (`version`, `name`, `statements`)
 * exactly as the Supabase CLI 2.117.0 does — so `supabase migration list` and
 * `supabase migration up` agree with it, in both directions.
 *
 * - Each file runs in its own transaction together with its history row: a
 *   failing file leaves nothing behind, files before it stay applied.
 * - Every pending file is parsed first (Postgres' parser, via libpg-query): a
 *   syntax error anywhere is reported before anything is applied.
 * - Errors are one line naming the file, the line (and column when Postgres
 *   gives a position) and Postgres' message, as `ERR_MIGRATION`.
 * - Versions in the history that the folder lacks are left alone; files older
 *   than the newest applied version are still applied (the CLI's
 *   `migration up --include-all`).
 * - A file may wrap itself in `BEGIN; … COMMIT;` (common in hand-written
 *   migrations); any other COMMIT/ROLLBACK/PREPARE TRANSACTION is refused
 *   because it would end the file's transaction early.
 * - Session state a file changes (`set search_path`, `set role`) is discarded
 *   after it, so a file behaves the same whether applied alone or in a batch.
 *
 * Bad input: a malformed URL is `ERR_DB_URL`, a server that cannot be reached
 * `ERR_DB_UNREACHABLE`, a missing folder `ERR_MIGRATION`.
 *
 * @example
 * ```ts
 * const { applied, skipped } = await migrate({
 *   url: process.env.DATABASE_URL!,
 *   dir: 'supabase/migrations',
 *   onApplied: (m) => console.error(`applied ${m.version}_${m.name}`),
 * });
 * ```
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const { url, dir = KIT_MIGRATIONS_DIR, onApplied } = options;
  parseDatabaseUrl(url);
  const files = await listMigrationFiles(dir);
  const client = await connect(url);
  try {
    await ensureHistoryTable(client, url);
    const done = await appliedVersions(client, url);
    const pending = files.filter((f) => !done.has(f.version));
    const skipped = files.filter((f) => done.has(f.version));
    // Parse everything pending before touching the database.
    const scripts: PreparedScript[] = [];
    for (const file of pending) {
      const label = `migration ${path.basename(file.path)}`;
      scripts.push(prepare(await readSqlScript(file.path, label), label));
    }
    const applied: MigrationFile[] = [];
    for (const [i, file] of pending.entries()) {
      if (await applyOne(client, url, file, scripts[i]!)) {
        applied.push(file);
        onApplied?.(file);
      } else {
        skipped.push(file); // a concurrent run applied it first
      }
    }
    skipped.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
    return { applied, skipped };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Runs one SQL file (a seed, a fixture) in a single transaction: all of it or
 * nothing. Not recorded anywhere. Errors are one line naming the file, the
 * line (and column) and Postgres' message, as `ERR_MIGRATION`.
 *
 * @example
 * ```ts
 * await runSqlFile(process.env.DATABASE_URL!, 'supabase/seed.sql');
 * ```
 */
export async function runSqlFile(url: string, file: string): Promise<void> {
  parseDatabaseUrl(url);
  const script = prepare(await readSqlScript(file, file), file);
  const client = await connect(url);
  try {
    try {
      await client.query('begin');
      await runStatements(client, script);
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw asMigrationError(err, url, `${file} failed`);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface PreparedScript {
  readonly label: string;
  readonly script: SqlScript;
  readonly lines: LineIndex;
  /** The statements to execute (a wrapping BEGIN/COMMIT pair left out). */
  readonly run: readonly ScriptStatement[];
}

const WRAP_OPEN = new Set(['TRANS_STMT_BEGIN', 'TRANS_STMT_START']);
const WRAP_CLOSE = 'TRANS_STMT_COMMIT';
const HARMLESS = new Set(['TRANS_STMT_SAVEPOINT', 'TRANS_STMT_RELEASE', 'TRANS_STMT_ROLLBACK_TO']);

/** Decides what to execute; refuses transaction control that would break all-or-nothing. */
function prepare(script: SqlScript, label: string): PreparedScript {
  const all = script.statements;
  const first = all[0];
  const last = all[all.length - 1];
  const wrapped =
    all.length >= 2 &&
    first?.transaction !== undefined &&
    WRAP_OPEN.has(first.transaction) &&
    last?.transaction === WRAP_CLOSE;
  const run = wrapped ? all.slice(1, -1) : all;
  for (const s of run) {
    if (s.transaction !== undefined && !HARMLESS.has(s.transaction)) {
      const what = s.sql.trim().split(/\s+/)[0]!.toUpperCase();
      throw new RlsKitError(
        'ERR_MIGRATION',
        `${label} failed at line ${s.line}: ${what} would end or nest the file's transaction; each file already runs in one transaction — remove it (a BEGIN; … COMMIT; around the whole file is fine)`,
      );
    }
  }
  return { label, script, lines: new LineIndex(script.text), run };
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  // A dropped connection surfaces in the pending query; keep it from crashing the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw unreachable(url, err);
  }
  return client;
}

async function ensureHistoryTable(client: pg.Client, url: string): Promise<void> {
  try {
    await client.query('begin');
    await client.query(LOCK, [LOCK_NAME]);
    // Skip the DDL when the table is complete: ALTER TABLE takes an exclusive
    // lock even when the column exists, and needs privileges a reader lacks.
    const { rows } = await client.query<{ n: number }>(
      `select count(*)::int as n from pg_catalog.pg_attribute
        where attrelid = to_regclass($1) and attname = any($2) and not attisdropped`,
      [LOCK_NAME, ['version', 'statements', 'name']],
    );
    if (rows[0]?.n !== 3) for (const sql of CREATE_HISTORY) await client.query(sql);
    await client.query('commit');
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw asMigrationError(
      err,
      url,
      'cannot create the migration history supabase_migrations.schema_migrations',
    );
  }
}

async function appliedVersions(client: pg.Client, url: string): Promise<Set<string>> {
  try {
    const { rows } = await client.query<{ version: string }>(
      'select version from supabase_migrations.schema_migrations',
    );
    return new Set(rows.map((r) => r.version));
  } catch (err) {
    throw asMigrationError(err, url, 'cannot read supabase_migrations.schema_migrations');
  }
}

/** Applies one file with its history row; false when it turned out to be applied already. */
async function applyOne(
  client: pg.Client,
  url: string,
  file: MigrationFile,
  prepared: PreparedScript,
): Promise<boolean> {
  try {
    await client.query('begin');
    await client.query(LOCK, [LOCK_NAME]);
    // Re-check under the lock: read committed sees a concurrent run's commit.
    const seen = await client.query(
      'select 1 from supabase_migrations.schema_migrations where version = $1',
      [file.version],
    );
    if (seen.rowCount) {
      await client.query('rollback');
      return false;
    }
    await runStatements(client, prepared);
    // The file may have switched role; the history row is written as the connecting user.
    await client.query('reset role');
    await client.query(INSERT_HISTORY, [file.version, file.name, prepared.script.recorded]);
    await client.query('commit');
    return true;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw asMigrationError(err, url, `${prepared.label} failed`);
  } finally {
    // Outside any transaction: forget session settings, roles, temp tables the file left.
    await client.query('discard all').catch(() => undefined);
  }
}

/**
 * Executes statement by statement (simple protocol, no parameters), so a
 * failure is pinned to its statement even when Postgres reports no position
 * (constraint violations, RAISE, "cannot run inside a transaction block").
 */
async function runStatements(client: pg.Client, prepared: PreparedScript): Promise<void> {
  for (const statement of prepared.run) {
    try {
      await client.query(statement.sql);
    } catch (err) {
      if (err instanceof pg.DatabaseError) throw statementError(err, statement, prepared);
      throw err;
    }
  }
}

function statementError(
  err: pg.DatabaseError,
  statement: ScriptStatement,
  prepared: PreparedScript,
): RlsKitError {
  const { lines } = prepared;
  const where = err.where?.split('\n') ?? [];
  let at: string;
  let context = where[0];
  if (err.position) {
    // 1-based character position into the statement we sent.
    at = lines.describe(statement.offset + Number(err.position) - 1);
  } else if (err.internalPosition && err.internalQuery) {
    const idx = statement.sql.indexOf(err.internalQuery);
    at =
      idx >= 0
        ? lines.describe(
            statement.offset +
              [...statement.sql.slice(0, idx)].length +
              Number(err.internalPosition) -
              1,
          )
        : ` at line ${statement.line}`;
  } else {
    at = ` at line ${statement.line}`;
    // A DO block's own PL/pgSQL lines count from its body: map them to the file.
    const outer = where[where.length - 1] ?? '';
    const m = /^PL\/pgSQL function inline_code_block line (\d+)/.exec(outer);
    if (m && statement.bodyOffset !== undefined) {
      at = ` at line ${lines.position(statement.bodyOffset).line + Number(m[1]) - 1}`;
      if (where.length === 1) context = undefined;
    }
  }
  const parts = [oneLine(err.message)];
  if (err.detail) parts.push(oneLine(err.detail));
  const tail = `${context ? ` (${oneLine(context)})` : ''}${err.code ? ` (SQLSTATE ${err.code})` : ''}`;
  return new RlsKitError(
    'ERR_MIGRATION',
    `${prepared.label} failed${at}: ${parts.join(' — ')}${tail}`,
    {
      cause: err,
    },
  );
}

/** Keeps kit errors; server errors become `ERR_MIGRATION`, lost connections `ERR_DB_UNREACHABLE`. */
function asMigrationError(err: unknown, url: string, what: string): RlsKitError {
  if (err instanceof RlsKitError) return err;
  if (err instanceof pg.DatabaseError) {
    return new RlsKitError(
      'ERR_MIGRATION',
      `${what}: ${oneLine(err.message)}${err.code ? ` (SQLSTATE ${err.code})` : ''}`,
      { cause: err },
    );
  }
  return unreachable(url, err);
}
