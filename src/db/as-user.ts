import { CompiledQuery, type Kysely } from 'kysely';
import { RlsKitError } from '../errors.js';
import {
  type AsUserOptions,
  type ClaimsSource,
  resolveRequestSettings,
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
 * connection is taken; then come BEGIN, one settings statement with every
 * value bound as a parameter, `fn`, and COMMIT — three round trips besides
 * `fn`'s own ({@link asUserPg} saves one by pipelining BEGIN). Every setting
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
  // so the end-of-request check rides in the same round trip as COMMIT.
  return db.connection().execute(async (trx) => {
    await trx.executeQuery(CompiledQuery.raw('begin'));
    let value: T;
    try {
      const statement = settingsStatement(db, settings);
      let rowCount: number;
      try {
        const result = await trx.executeQuery(
          CompiledQuery.raw(statement.sql, statement.parameters),
        );
        rowCount = result.rows.length;
      } catch (err) {
        throw settingsError(db, settings, err);
      }
      await settingsApplied(db, settings, statement, rowCount, async (sql, parameters) => {
        const result = await trx.executeQuery<Record<string, unknown>>(
          CompiledQuery.raw(sql, parameters),
        );
        return result.rows;
      });
      value = await fn(trx);
    } catch (err) {
      await trx.executeQuery(CompiledQuery.raw('rollback')).catch(() => undefined);
      throw err;
    }
    try {
      // One simple-protocol round trip: if the callback sent COMMIT or
      // ROLLBACK itself, the transaction-local role is gone ('none') and
      // what ran after it ran as the login user: raise instead of reporting
      // success. An aborted transaction (a swallowed error) fails here too.
      await trx.executeQuery(CompiledQuery.raw(END_OF_REQUEST));
    } catch (err) {
      await trx.executeQuery(CompiledQuery.raw('rollback')).catch(() => undefined);
      const message = err instanceof Error ? err.message : String(err);
      if (message.includes(ENDED_EARLY)) {
        throw new RlsKitError(
          'ERR_DB_QUERY',
          'the callback ended the request transaction (COMMIT or ROLLBACK inside asUser); statements after it ran without the user settings: never end the transaction inside the callback',
          { cause: err },
        );
      }
      throw new RlsKitError(
        'ERR_DB_QUERY',
        `the request transaction could not commit (${message.split('\n')[0]}): let database errors propagate out of the callback`,
        { cause: err },
      );
    }
    return value;
  });
}

const ENDED_EARLY = 'rls_kit: request transaction ended inside the callback';

/** Checked end of a request: the role is still the transaction-local one, then COMMIT. */
const END_OF_REQUEST = `do $rls_kit$ begin
  if pg_catalog.current_setting('role') = 'none' then
    raise exception '${ENDED_EARLY}';
  end if;
end $rls_kit$; commit`;
