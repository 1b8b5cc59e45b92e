import type pg from 'pg';
import { RlsKitError } from '../errors.js';
import {
  beginWithSettings,
  mayPrepare,
  PipelineUnsupportedError,
  recoverPrepared,
} from './pipeline.js';
import {
  type AsUserOptions,
  type ClaimsSource,
  END_OF_REQUEST_SQL,
  endOfRequestError,
  isCheckFailure,
  type RequestSettings,
  resolveRequestSettings,
  type SettingsStatement,
  settingsApplied,
  settingsError,
  settingsStatement,
} from './request-settings.js';
import { withPoolClient } from './with-pool-client.js';

/**
 * Runs `fn` in one transaction on a pooled `pg` connection as the token's
 * user, so row level security decides what it sees: `role` comes from the
 * claims (`anon` or `authenticated`, others only through
 * `options.allowRoles`, never a login or superuser role), `request.jwt.claims`
 * holds the claims JSON, `request.method` / `.path` / `.headers` describe the
 * request, and the legacy `request.jwt.claim*` settings are blanked.
 *
 * Claims are validated before a connection is taken. BEGIN and the settings
 * travel together in one round trip; with the COMMIT that makes two per call
 * besides `fn`'s own queries. Every setting is transaction-local, so the
 * connection goes back to the pool as it came; when `fn` throws, the
 * transaction rolls back and the error reaches the caller unchanged, and a
 * connection that cannot be rolled back is destroyed rather than reused.
 *
 * `fn` must not release the client, end the transaction, or change session
 * state (`SET` without `LOCAL`): the pool shares the connection afterwards.
 *
 * @throws RlsKitError `ERR_CLAIMS` for claims that are not a plain JSON object
 * with a `role` string (or exceed 16 KiB), `ERR_ROLE_NOT_ALLOWED` for a role
 * outside the allowlist or one that can log in, is a superuser, or bypasses
 * RLS without being opted in, `ERR_DB_QUERY` when the settings cannot be
 * applied or the transaction was already aborted at COMMIT.
 *
 * @example
 * ```ts
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const docs = await asUserPg(pool, claims, async (client) => {
 *   const { rows } = await client.query('select id, title from documents order by created_at desc limit 50');
 *   return rows;
 * });
 * ```
 */
export async function asUserPg<T>(
  pool: pg.Pool,
  claims: ClaimsSource,
  fn: (client: pg.ClientBase) => Promise<T>,
  options?: AsUserOptions,
): Promise<T> {
  const settings = await resolveRequestSettings(claims, options);
  return withPoolClient(pool, async (client, lease) => {
    try {
      await begin(client, pool, settings);
    } catch (err) {
      lease.broken = (await rollback(client)) ?? lease.broken;
      // A refused role leaves a healthy connection; anything else in this
      // step (a leaked transaction, a failed settings statement) does not
      // deserve the benefit of the doubt.
      if (!(err instanceof RlsKitError && err.code === 'ERR_ROLE_NOT_ALLOWED')) {
        lease.broken ??= err instanceof Error ? err : new Error(String(err));
      }
      throw err;
    }
    let value: T;
    try {
      value = await fn(client);
    } catch (err) {
      lease.broken = (await rollback(client)) ?? lease.broken;
      throw err;
    }
    if (transactionStatus(client) === 'I') {
      // The callback sent COMMIT or ROLLBACK itself: the transaction-local role
      // and claims ended with it, so anything it ran afterwards ran as the
      // pool's login user. Say so loudly instead of reporting success.
      lease.broken = new Error('request transaction ended inside the callback');
      throw new RlsKitError(
        'ERR_DB_QUERY',
        'the callback ended the request transaction (COMMIT or ROLLBACK inside asUserPg); statements after it ran without the user settings: never end the transaction inside the callback',
      );
    }
    // The check and COMMIT in one simple-protocol round trip: the status
    // above misses a callback that ended the transaction and opened another
    // (COMMIT; BEGIN), whose work ran as the login user; the check catches
    // it, and an aborted transaction too, and then COMMIT never runs.
    try {
      await client.query(END_OF_REQUEST_SQL);
    } catch (err) {
      if (!isCheckFailure(err)) {
        // COMMIT itself failed: its outcome on this socket is unknowable.
        lease.broken = err instanceof Error ? err : new Error(String(err));
        throw err;
      }
      lease.broken = (await rollback(client)) ?? lease.broken;
      throw endOfRequestError('asUserPg', err);
    }
    return value;
  });
}

/** Opens the transaction and applies the settings, throwing kit errors. */
async function begin(
  client: pg.PoolClient,
  pool: pg.Pool,
  settings: RequestSettings,
): Promise<void> {
  const status = transactionStatus(client);
  if (status !== undefined && status !== 'I') {
    // Someone released this connection mid-transaction; joining that
    // transaction would run our settings (and COMMIT) inside foreign work.
    throw new RlsKitError(
      'ERR_DB_QUERY',
      'a pooled connection was still inside a transaction (some code released it without COMMIT or ROLLBACK); it was discarded: fix that code and retry',
    );
  }
  const statement = settingsStatement(pool, settings);
  let rowCount: number;
  try {
    rowCount =
      (await sendBegin(pool, client, statement, settings.preparedStatements)).rowCount ?? 0;
  } catch (err) {
    throw settingsError(pool, settings, err);
  }
  const after = transactionStatus(client);
  if (after !== undefined && after !== 'T') {
    // Without an open transaction block the settings would already be gone
    // and `fn` would run as the session user: refuse rather than risk it.
    throw new RlsKitError(
      'ERR_DB_QUERY',
      `the request transaction did not open (status ${after}): report this with the pg version in use`,
    );
  }
  await settingsApplied(pool, settings, statement, rowCount, async (sql, parameters) => {
    return (await client.query(sql, parameters)).rows;
  });
}

/**
 * Sends BEGIN and the settings statement in one write and one Sync, so the
 * server answers both in a single round trip (see {@link PipelinedQuery}).
 * Where pg's protocol methods are missing (pg-native), it falls back to two
 * round trips; the status check in {@link begin} guards both paths. When the
 * server lost the prepared settings statement, it relearns the server's
 * statements and begins again ({@link recoverPrepared}).
 */
async function sendBegin(
  pool: pg.Pool,
  client: pg.PoolClient,
  statement: SettingsStatement,
  preparedStatements: boolean,
): Promise<pg.QueryResult> {
  let prepare = preparedStatements && mayPrepare(pool);
  for (let attempt = 1; ; attempt++) {
    const query = beginWithSettings(statement, prepare);
    try {
      return await client.query(query);
    } catch (err) {
      if (err instanceof PipelineUnsupportedError) break;
      if (!prepare || !query.isOwnMismatch(err)) throw err;
      // As in asUser: relearn the server's statements, begin again.
      await query.ready;
      await client.query('rollback');
      prepare = await recoverPrepared(query, (sql) => client.query(sql), pool, attempt);
    }
  }
  await client.query('begin');
  return client.query(statement.sql, statement.parameters);
}

function transactionStatus(client: pg.PoolClient): string | undefined {
  // pg-native and older pg lack getTransactionStatus; null means "not yet known".
  if (typeof client.getTransactionStatus !== 'function') return undefined;
  return client.getTransactionStatus() ?? undefined;
}

/** Rolls back, returning the error when the connection cannot be trusted any more. */
async function rollback(client: pg.PoolClient): Promise<Error | undefined> {
  try {
    await client.query('rollback');
    return undefined;
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}
