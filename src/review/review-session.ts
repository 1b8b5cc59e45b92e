import pg from 'pg';
import { RlsKitError } from '../errors.js';

/** A query result row as the review reads it. */
export type Row = Record<string, unknown>;

/** What a failed statement leaves: enough to report it against an object. */
export interface StatementError {
  /** SQLSTATE, or `?????` for errors outside Postgres. */
  readonly code: string;
  /** First line of the message. */
  readonly message: string;
  /** The constraint named by the server, if any. */
  readonly constraint?: string;
}

/** The review's one connection; every statement runs in transactions that are rolled back. */
export interface ReviewSession {
  /** Runs one statement (pipelined: callers may issue many before awaiting). */
  query(sql: string, parameters?: readonly unknown[]): Promise<Row[]>;
  /** Like {@link query}, resolving to the error instead of throwing. */
  attempt(sql: string, parameters?: readonly unknown[]): Promise<Row[] | StatementError>;
  /** Like {@link attempt}, with the statement's row count (writes without RETURNING). */
  execute(sql: string, parameters?: readonly unknown[]): Promise<number | StatementError>;
  /**
   * Runs `fn` inside a savepoint: kept on success, rolled back (and the
   * transaction usable again) on failure, which is returned instead of thrown.
   */
  guarded<T>(fn: () => Promise<T>): Promise<T | StatementError>;
  close(): Promise<void>;
}

/** Connection options of {@link openReviewSession}. */
export interface ReviewSessionOptions {
  readonly url: string;
  /** `application_name`, so a DBA sees the review in `pg_stat_activity`. */
  readonly applicationName?: string;
}

/**
 * Opens the review's connection in pipeline mode: statements queue on the
 * socket without waiting for each answer, so thousands of probes cost a few
 * round trips. Each statement carries its own Sync, so one failing statement
 * does not swallow the ones behind it (inside a transaction they then fail
 * with 25P02 until a `ROLLBACK TO SAVEPOINT`, which the probes always send).
 *
 * @example
 * ```ts
 * const session = await openReviewSession({ url });
 * try { await session.query('begin'); } finally { await session.close(); }
 * ```
 */
export async function openReviewSession(options: ReviewSessionOptions): Promise<ReviewSession> {
  // `pipeline` is a pg 8.2x client option the type definitions do not list yet.
  const config: pg.ClientConfig & { pipeline: boolean } = {
    connectionString: options.url,
    application_name: options.applicationName ?? 'rls-kit review',
    pipeline: true,
  };
  const client = new pg.Client(config);
  // An 'error' event without a listener would crash the process; the failing
  // query rejects on its own.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new RlsKitError(
      'ERR_DB_UNREACHABLE',
      `cannot connect to the database to review it: ${firstLine(err)}; check --db-url / DATABASE_URL`,
      { cause: err },
    );
  }
  let savepoints = 0;
  const query = async (sql: string, parameters?: readonly unknown[]): Promise<Row[]> => {
    const result = await client.query<Row>(sql, parameters ? [...parameters] : undefined);
    return result.rows;
  };
  const attempt = async (sql: string, parameters?: readonly unknown[]) => {
    try {
      return await query(sql, parameters);
    } catch (err) {
      return statementError(err);
    }
  };
  const execute = async (sql: string, parameters?: readonly unknown[]) => {
    try {
      const result = await client.query(sql, parameters ? [...parameters] : undefined);
      return result.rowCount ?? 0;
    } catch (err) {
      return statementError(err);
    }
  };
  const guarded = async <T>(fn: () => Promise<T>): Promise<T | StatementError> => {
    const name = `rls_kit_review_${++savepoints}`;
    await query(`savepoint ${name}`);
    try {
      const value = await fn();
      await query(`release savepoint ${name}`);
      return value;
    } catch (err) {
      await query(`rollback to savepoint ${name}`);
      await query(`release savepoint ${name}`);
      return statementError(err);
    }
  };
  return {
    query,
    attempt,
    execute,
    guarded,
    close: async () => {
      await client.end().catch(() => undefined);
    },
  };
}

/**
 * True when `value` is a {@link StatementError}.
 *
 * @example
 * ```ts
 * const rows = await session.attempt('select 1');
 * if (isStatementError(rows)) console.error(rows.code);
 * ```
 */
export function isStatementError(value: unknown): value is StatementError {
  return (
    typeof value === 'object' &&
    value !== null &&
    'code' in value &&
    'message' in value &&
    !Array.isArray(value)
  );
}

function statementError(err: unknown): StatementError {
  const e = err as { code?: unknown; constraint?: unknown };
  const code = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : '?????';
  const constraint = typeof e.constraint === 'string' ? e.constraint : undefined;
  return { code, message: firstLine(err), ...(constraint ? { constraint } : {}) };
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0] ?? text;
}
