import { CompiledQuery, type Kysely } from 'kysely';
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
  resolveRequestSettings,
  type SettingsStatement,
  settingsApplied,
  settingsError,
  settingsStatement,
} from './request-settings.js';

/**
 * Runs `fn` in one kysely transaction as the token's user, so row level
 * security decides what it sees: `role` comes from the claims (`anon` or
 * `authenticated`, others only through `options.allowRoles`, never a login or
 * superuser role), `request.jwt.claims` holds the claims JSON,
 * `request.method` / `.path` / `.headers` describe the request, and the
 * legacy `request.jwt.claim*` settings are blanked so nothing stale overrides
 * the verified claims — what PostgREST does for the Data API.
 *
 * `db` is a `Kysely` on Postgres (`PostgresDialect` over a `pg` pool); keep
 * one long-lived instance, since each role's attributes are checked once per
 * instance (and again after a minute). Claims are validated before a
 * connection is taken; then BEGIN and one settings statement with every
 * value bound as a parameter travel together, `fn` runs, and a check that
 * the transaction is still the request's travels with COMMIT — two round
 * trips besides `fn`'s own. (With a driver other than node-postgres, each
 * statement takes its own round trip.) Every setting
 * is transaction-local, so the connection returns to the pool as it came;
 * when `fn` throws, the transaction rolls back and the error reaches the
 * caller unchanged, and kysely discards a connection it cannot roll back.
 *
 * `fn` must not end the transaction or change session state (`SET` without
 * `LOCAL`): the pool shares the connection afterwards.
 *
 * @throws RlsKitError `ERR_CLAIMS` for claims that are not a plain JSON object
 * with a `role` string (or exceed 16 KiB), `ERR_ROLE_NOT_ALLOWED` for a role
 * outside the allowlist or one that can log in, is a superuser, or bypasses
 * RLS without being opted in, `ERR_DB_QUERY` when the settings cannot be
 * applied, `ERR_USAGE` when `db` is already a transaction.
 *
 * @example
 * ```ts
 * const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString }) }) });
 * const docs = await asUser(db, claims, (trx) =>
 *   trx.selectFrom('documents').select(['id', 'title']).orderBy('created_at', 'desc').limit(50).execute(),
 * );
 * ```
 */
export async function asUser<DB, T>(
  db: Kysely<DB>,
  claims: ClaimsSource,
  fn: (trx: Kysely<DB>) => Promise<T>,
  options?: AsUserOptions,
): Promise<T> {
  if (db.isTransaction) {
    // Settings are per transaction; joining the caller's would leak them into
    // its remaining queries (and kysely cannot nest transactions anyway).
    throw new RlsKitError(
      'ERR_USAGE',
      'asUser needs the root Kysely instance, not a transaction: call it outside db.transaction()',
    );
  }
  const settings = await resolveRequestSettings(claims, options);
  // The transaction is driven by hand on one connection (not db.transaction())
  // so BEGIN travels with the settings and the end-of-request check with
  // COMMIT: two round trips besides the callback's own queries.
  return db.connection().execute(async (trx) => {
    const statement = settingsStatement(db, settings);
    const run = (sql: string, parameters: readonly unknown[]) =>
      trx.executeQuery<Record<string, unknown>>(CompiledQuery.raw(sql, [...parameters]));
    let value: T;
    try {
      let rowCount: number;
      try {
        rowCount = !UNPIPELINED.has(db)
          ? await pipelinedBegin(db, trx, statement, settings.preparedStatements)
          : await plainBegin(run, statement);
      } catch (err) {
        if (!(err instanceof PipelineFallback)) throw settingsError(db, settings, err);
        // Not node-postgres underneath: nothing was sent; one statement per round trip from now on.
        UNPIPELINED.add(db);
        await run('rollback', []).catch(() => undefined);
        try {
          rowCount = await plainBegin(run, statement);
        } catch (plainErr) {
          throw settingsError(db, settings, plainErr);
        }
      }
      await settingsApplied(db, settings, statement, rowCount, async (sql, parameters) => {
        return (await run(sql, parameters)).rows;
      });
      value = await fn(trx);
    } catch (err) {
      await run('rollback', []).catch(() => undefined);
      throw err;
    }
    try {
      // If the callback sent COMMIT or ROLLBACK itself, the transaction-local
      // role is gone ('none') and what ran after it ran as the login user:
      // the check raises, the server skips COMMIT, and the caller hears of it
      // instead of a success. An aborted transaction (a swallowed error)
      // fails the check too.
      // One simple-protocol message (no parameters): an error skips the rest
      // of the string. Measured cheaper than the same two statements through
      // the extended protocol.
      await run(END_OF_REQUEST_SQL, []);
    } catch (err) {
      await run('rollback', []).catch(() => undefined);
      throw endOfRequestError('asUser', err);
    }
    return value;
  });
}

/** Kysely instances whose driver is not node-postgres: no pipelining there. */
const UNPIPELINED = new WeakSet<object>();

/** The pipeline was not sent (a driver other than node-postgres): use one statement per round trip. */
class PipelineFallback extends Error {}

/**
 * BEGIN and the settings statement in one round trip. The pipelined query
 * travels as a compiled query's `sql`: kysely's Postgres driver hands that
 * to pg's `client.query`, which runs it as a submittable.
 */
async function pipelinedBegin<DB>(
  db: Kysely<DB>,
  trx: Kysely<DB>,
  statement: SettingsStatement,
  preparedStatements: boolean,
): Promise<number> {
  let prepare = preparedStatements && mayPrepare(db);
  for (let attempt = 1; ; attempt++) {
    const query = beginWithSettings(statement, prepare);
    let rows: readonly unknown[];
    try {
      rows = (await trx.executeQuery(CompiledQuery.raw(query as unknown as string))).rows;
    } catch (err) {
      if (!query.submitted || err instanceof PipelineUnsupportedError) throw new PipelineFallback();
      if (!prepare || !query.isOwnMismatch(err)) throw err;
      // The settings statement was missing or taken: relearn what the server
      // holds and begin again (stop preparing on this db if even that fails).
      await query.ready;
      await trx.executeQuery(CompiledQuery.raw('rollback'));
      prepare = await recoverPrepared(
        query,
        (sql) => trx.executeQuery(CompiledQuery.raw(sql)),
        db,
        attempt,
      );
      continue;
    }
    if (!query.submitted) throw new PipelineFallback();
    return rows.length;
  }
}

async function plainBegin(
  run: (sql: string, parameters: readonly unknown[]) => Promise<{ rows: readonly unknown[] }>,
  statement: SettingsStatement,
): Promise<number> {
  await run('begin', []);
  return (await run(statement.sql, statement.parameters)).rows.length;
}
