import {
  type Compilable,
  CompiledQuery,
  isCompilable,
  type Kysely,
  type QueryResult,
} from 'kysely';
import { RlsKitError } from '../errors.js';
import { asUser } from './as-user.js';
import {
  mayPrepare,
  PipelinedQuery,
  PipelineUnsupportedError,
  recoverPrepared,
} from './pipeline.js';
import {
  type AsUserOptions,
  type ClaimsSource,
  type RequestClaims,
  resolveRequestSettings,
  settingsError,
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

/** Command tags of the statements `queryAsUser` runs: data, nothing that changes the session. */
const DATA_COMMANDS = /^(SELECT|INSERT|UPDATE|DELETE|MERGE)( |$)/;

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
 * the rest as the pool's login user). The first call for a role on `db`
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
  const viaAsUser = () => asUser(db, resolved, (trx) => trx.executeQuery(compiled), options);
  if (statement.checksRole || UNPIPELINED.has(db) || !BUILDER_KINDS.has(compiled.query.kind)) {
    return viaAsUser();
  }
  let prepare = settings.preparedStatements && mayPrepare(db);
  return db.connection().execute(async (conn) => {
    for (let attempt = 1; ; attempt++) {
      const pipeline = new PipelinedQuery([
        { text: statement.sql, values: statement.parameters, prepare },
        {
          text: compiled.sql,
          values: compiled.parameters,
          anyValues: true,
          rows: true,
          prepare,
          scope: settings.role,
        },
      ]);
      let result: QueryResult<R>;
      try {
        result = await conn.executeQuery<R>(CompiledQuery.raw(pipeline as unknown as string));
        if (!pipeline.submitted) throw new PipelineUnsupportedError(); // a foreign driver ignored it
      } catch (err) {
        if (err instanceof PipelineUnsupportedError) {
          UNPIPELINED.add(db);
          return viaAsUser();
        }
        if (!pipeline.submitted) throw err; // e.g. a dead client: nothing was sent
        await leaveClean(conn, pipeline);
        if (prepare && pipeline.isOwnMismatch(err)) {
          // The kit's statement was missing or taken: the implicit transaction
          // failed whole (nothing committed), so running it again is safe.
          // Relearn what the server holds; if that does not stick either (a
          // pooler in transaction mode), stop preparing on this db.
          prepare = await recoverPrepared(
            pipeline,
            (sql) => conn.executeQuery(CompiledQuery.raw(sql)),
            db,
            attempt,
          );
          continue;
        }
        // No command completed: the settings failed, the query never ran.
        if (pipeline.commands.length === 0) throw settingsError(db, settings, err);
        throw err;
      }
      await leaveClean(conn, pipeline);
      const tag = pipeline.commands[1] ?? '';
      if (pipeline.commands[0] !== 'SELECT 1' || !DATA_COMMANDS.test(tag)) {
        // Whatever it was has run (and its effects are committed); the session it
        // may have changed must not serve anyone else.
        await resetSession(conn, pipeline);
        throw new RlsKitError(
          'ERR_USAGE',
          `queryAsUser runs one SELECT, INSERT, UPDATE, DELETE or MERGE, not ${JSON.stringify(tag.split(' ')[0] ?? '')}: the session was reset (DISCARD ALL); run other statements inside asUser`,
        );
      }
      return result;
    }
  });
}

/** Kysely instances whose driver is not node-postgres: always `asUser`'s path. */
const UNPIPELINED = new WeakSet<object>();

/**
 * Puts the session back as a new connection has it (settings, role, temp
 * tables, listeners, prepared statements), and tells node-postgres that its
 * named statements are gone; closes the connection when even that fails.
 */
async function resetSession(
  conn: { executeQuery(q: CompiledQuery): Promise<unknown> },
  pipeline: PipelinedQuery,
): Promise<void> {
  const connection = pipeline.connection as
    | { parsedStatements?: object; submittedNamedStatements?: object; end?: () => void }
    | undefined;
  try {
    await conn.executeQuery(CompiledQuery.raw('discard all'));
    if (connection?.parsedStatements !== undefined) connection.parsedStatements = {};
    if (connection?.submittedNamedStatements !== undefined)
      connection.submittedNamedStatements = {};
  } catch {
    connection?.end?.();
  }
}

/**
 * After the Sync the implicit transaction is over (status `I`). Anything
 * else means the connection already sat in a transaction someone leaked, or
 * the query opened one: roll it back (the settings must not outlive this
 * call) and refuse. Waits for the pipeline's ReadyForQuery first: pg reports
 * an error before the server is done.
 */
async function leaveClean(
  conn: { executeQuery(q: CompiledQuery): Promise<unknown> },
  pipeline: PipelinedQuery,
): Promise<void> {
  await pipeline.ready;
  if (pipeline.status === undefined || pipeline.status === 'I') return;
  try {
    await conn.executeQuery(CompiledQuery.raw('rollback'));
  } catch {
    pipeline.connection?.end?.();
  }
  throw new RlsKitError(
    'ERR_DB_QUERY',
    `the pooled connection was inside a transaction block after the request (status ${pipeline.status}): it was rolled back; some code released a connection mid-transaction, or the query opened one`,
  );
}
