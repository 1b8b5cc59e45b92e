import type pg from 'pg';
import { RlsKitError } from '../errors.js';
import { asUserPg } from './as-user-pg.js';
import { isDataStatement, isUnpipelined, runOneStatement, UNPIPELINED } from './one-statement.js';
import {
  type AsUserOptions,
  type ClaimsSource,
  type RequestClaims,
  resolveRequestSettings,
  settingsStatement,
} from './request-settings.js';
import { withPoolClient } from './with-pool-client.js';

/** The statement of {@link queryAsUserPg}: SQL text, or text and bound values. */
export type QueryAsUserPgStatement =
  | string
  | { readonly text: string; readonly values?: readonly unknown[] };

/**
 * One statement as the token's user in one round trip, on a plain `pg`
 * pool — {@link queryAsUser} for code without kysely, as {@link asUserPg} is
 * `asUser` for it. The kit's settings statement and the query travel
 * together before one Sync; Postgres runs them as one implicit transaction,
 * so the role and claims apply to the query and end with it. Both are
 * prepared once per pooled connection unless `preparedStatements: false`.
 * Values are bound as parameters (`$1`, `$2`, …), converted as
 * `client.query(text, values)` converts them.
 *
 * Only text that starts with SELECT, INSERT, UPDATE, DELETE, MERGE, WITH,
 * VALUES or TABLE (after comments and parentheses) takes the one-round-trip
 * path; anything else — a CALL of a procedure that could COMMIT and run the
 * rest as the pool's login user — runs inside `asUserPg`'s transaction
 * block, where PostgreSQL refuses that. So does the first call for a role
 * on `pool` (and again after a minute), which checks the role's attributes.
 * One statement only, on either path (the extended protocol refuses
 * `select 1; commit; …` with 42601). A statement whose command tag is not
 * SELECT, INSERT, UPDATE, DELETE or MERGE gets `ERR_USAGE` after the
 * session is reset (`DISCARD ALL`). That check sees the command, not its
 * side effects: session state a data statement creates — a temporary table
 * (`select … into temp`), `set_config(…, false)`, an advisory lock — stays
 * on the pooled connection for the next request, as it would in `asUserPg`
 * or behind PostgREST. Keep such statements out of request paths, and
 * connect as a login role that is not a superuser (as PostgREST's
 * `authenticator`): a statement as the user could otherwise switch back to
 * it with `set_config('role', …)`.
 *
 * @throws RlsKitError like {@link asUserPg} (`ERR_CLAIMS`,
 * `ERR_ROLE_NOT_ALLOWED`, `ERR_DB_QUERY`, `ERR_USAGE`); the query's own
 * database error (e.g. 42501 from row level security) reaches the caller
 * unchanged.
 *
 * @example
 * ```ts
 * const { rows } = await queryAsUserPg(pool, claims, {
 *   text: 'select id, title from public.documents order by created_at desc limit $1',
 *   values: [50],
 * });
 * ```
 */
export async function queryAsUserPg<R extends pg.QueryResultRow = Record<string, unknown>>(
  pool: pg.Pool,
  claims: ClaimsSource,
  query: QueryAsUserPgStatement,
  options?: AsUserOptions,
): Promise<pg.QueryResult<R>> {
  const { text, values } = statementOf(query);
  // A claims function (a verifier) runs once, whichever path the call takes.
  const resolved: RequestClaims = typeof claims === 'function' ? await claims() : claims;
  const settings = await resolveRequestSettings(resolved, options);
  const statement = settingsStatement(pool, settings);
  // The extended protocol, as on the fast path: one statement, never a
  // `select 1; commit; …` that the simple protocol would run whole.
  // (`queryMode` is node-postgres's, missing from its typings.)
  const viaAsUserPg = () => {
    const extended: pg.QueryConfig = Object.assign(
      { text, values: [...values] },
      { queryMode: 'extended' },
    );
    return asUserPg(pool, resolved, (client) => client.query<R>(extended), options);
  };
  if (statement.checksRole || isUnpipelined(pool) || !isDataStatement(text)) {
    return viaAsUserPg();
  }
  const result = await withPoolClient(pool, (client, lease) =>
    runOneStatement({
      owner: pool,
      settings,
      statement,
      text,
      values,
      send: (pipeline) => client.query<R>(pipeline as unknown as string),
      run: async (sql) => {
        try {
          return await client.query(sql);
        } catch (err) {
          // The kit then ends the connection: never hand it back as healthy.
          lease.broken ??= err instanceof Error ? err : new Error(String(err));
          throw err;
        }
      },
      api: 'queryAsUserPg',
      fallback: 'asUserPg',
    }),
  );
  return result === UNPIPELINED ? viaAsUserPg() : result;
}

function statementOf(query: QueryAsUserPgStatement): {
  text: string;
  values: readonly unknown[];
} {
  const text = typeof query === 'string' ? query : query?.text;
  const values = typeof query === 'string' ? [] : (query?.values ?? []);
  if (typeof text !== 'string' || text.trim() === '') {
    throw new RlsKitError(
      'ERR_USAGE',
      'queryAsUserPg needs SQL text: a string, or { text, values } with values bound as $1, $2, …',
    );
  }
  if (!Array.isArray(values)) {
    throw new RlsKitError(
      'ERR_USAGE',
      'queryAsUserPg: values must be an array (bound as $1, $2, …)',
    );
  }
  return { text, values };
}
