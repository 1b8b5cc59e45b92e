import {
  type Compilable,
  CompiledQuery,
  isCompilable,
  type Kysely,
  type QueryResult,
} from 'kysely';
import { RlsKitError } from '../errors.js';
import { asUser } from './as-user.js';
import { isUnpipelined, markUnpipelined, runOneStatement, UNPIPELINED } from './one-statement.js';
import { PipelinedQuery, PipelineUnsupportedError } from './pipeline.js';
import {
  type AsUserOptions,
  type ClaimsSource,
  type RequestClaims,
  resolveRequestSettings,
  settingsStatement,
} from './request-settings.js';

/**
 * Queries built with kysely's query builder that may take the one-round-trip
 * path. Raw SQL (`sql`, `CompiledQuery.raw`) could be a `CALL` of a
 * procedure that commits — allowed in an implicit transaction, where the
 * rest would run as the pool's login user — so it runs inside `asUser`'s
 * transaction block, where PostgreSQL refuses that.
 */
const BUILDER_KINDS: ReadonlySet<string> = new Set([
  'SelectQueryNode',
  'InsertQueryNode',
  'UpdateQueryNode',
  'DeleteQueryNode',
  'MergeQueryNode',
]);

/**
 * Runs one statement as the token's user in one round trip: the settings
 * statement of {@link asUser} (role, `request.jwt.claims`, request context,
 * legacy settings blanked — every value bound) and `query` are written
 * together before one Sync, so Postgres runs them as one implicit
 * transaction: the settings apply to the query and end with it, committed
 * (or rolled back on an error) when the server answers. What a request that
 * is one SELECT, INSERT, UPDATE or DELETE needs — the Data API's shape —
 * at the cost of one round trip instead of `asUser`'s three.
 *
 * Only queries built with kysely's query builder (select, insert, update,
 * delete, merge) take the one-round-trip path; raw SQL runs inside
 * `asUser`'s transaction block (a procedure could otherwise COMMIT and run
 * the rest as the pool's login user), as one statement (the extended
 * protocol refuses `select 1; commit; …` with 42601). The first call for a role on `db`
 * (and again after a minute) also takes `asUser`'s path, which checks the
 * role's attributes, and so do drivers other than node-postgres. As a last
 * line of defence, a statement whose command tag is not SELECT, INSERT,
 * UPDATE, DELETE or MERGE gets `ERR_USAGE` after the session is reset
 * (`DISCARD ALL`).
 *
 * @throws RlsKitError like {@link asUser} (`ERR_CLAIMS`, `ERR_ROLE_NOT_ALLOWED`,
 * `ERR_DB_QUERY`, `ERR_USAGE`); the query's own database error (e.g. 42501
 * from row level security) reaches the caller unchanged.
 *
 * @example
 * ```ts
 * const { rows } = await queryAsUser(db, claims,
 *   db.selectFrom('documents').select(['id', 'title']).orderBy('created_at', 'desc').limit(50),
 * );
 * ```
 */
export async function queryAsUser<DB, R>(
  db: Kysely<DB>,
  claims: ClaimsSource,
  query: CompiledQuery<R> | Compilable<R>,
  options?: AsUserOptions,
): Promise<QueryResult<R>> {
  if (db.isTransaction) {
    throw new RlsKitError(
      'ERR_USAGE',
      'queryAsUser needs the root Kysely instance, not a transaction: call it outside db.transaction()',
    );
  }
  const compiled: CompiledQuery<R> = isCompilable(query)
    ? (query as Compilable<R>).compile()
    : query;
  // A claims function (a verifier) runs once, whichever path the call takes.
  const resolved: RequestClaims = typeof claims === 'function' ? await claims() : claims;
  const settings = await resolveRequestSettings(resolved, options);
  const statement = settingsStatement(db, settings);
  const viaAsUser = () =>
    asUser(db, resolved, (trx) => executeOneStatement(trx, compiled, db), options);
  if (statement.checksRole || isUnpipelined(db) || !BUILDER_KINDS.has(compiled.query.kind)) {
    return viaAsUser();
  }
  const result = await db.connection().execute((conn) =>
    runOneStatement({
      owner: db,
      settings,
      statement,
      text: compiled.sql,
      values: compiled.parameters,
      send: (pipeline) => conn.executeQuery<R>(CompiledQuery.raw(pipeline as unknown as string)),
      run: (sql) => conn.executeQuery(CompiledQuery.raw(sql)),
      api: 'queryAsUser',
      fallback: 'asUser',
    }),
  );
  return result === UNPIPELINED ? viaAsUser() : result;
}

/**
 * Runs `compiled` on `trx` as one statement. Raw SQL is sent as a one-statement
 * pipeline (the extended protocol), because kysely hands text without values
 * to node-postgres's simple protocol, which would run `select 1; commit; …`
 * whole — the rest as the pool's login user. Builder queries are one
 * statement already; other drivers get the query as it is.
 */
async function executeOneStatement<DB, R>(
  trx: Kysely<DB>,
  compiled: CompiledQuery<R>,
  db: Kysely<DB>,
): Promise<QueryResult<R>> {
  if (BUILDER_KINDS.has(compiled.query.kind) || isUnpipelined(db)) {
    return trx.executeQuery(compiled);
  }
  const pipeline = new PipelinedQuery([
    { text: compiled.sql, values: compiled.parameters, anyValues: true, rows: true },
  ]);
  try {
    const result = await trx.executeQuery<R>(CompiledQuery.raw(pipeline as unknown as string));
    if (pipeline.submitted) return result;
  } catch (err) {
    if (!(err instanceof PipelineUnsupportedError)) throw err;
  }
  // The driver ignored the pipeline: nothing ran.
  markUnpipelined(db);
  return trx.executeQuery(compiled);
}
