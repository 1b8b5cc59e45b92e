import { RlsKitError } from '../errors.js';
import {
  mayPrepare,
  PipelinedQuery,
  PipelineUnsupportedError,
  recoverPrepared,
} from './pipeline.js';
import { type RequestSettings, type SettingsStatement, settingsError } from './request-settings.js';

/** Command tags of the statements the one-round-trip path may run. */
const DATA_COMMANDS = /^(SELECT|INSERT|UPDATE|DELETE|MERGE)( |$)/;

/** Returned by {@link runOneStatement} when the driver cannot pipeline. @internal */
export const UNPIPELINED = Symbol('unpipelined');

/** Pools and Kysely instances whose driver ignored a pipeline (pg-native, other drivers). */
const unpipelined = new WeakSet<object>();

/** Whether `owner`'s driver is known not to pipeline: take the transaction path. @internal */
export function isUnpipelined(owner: object): boolean {
  return unpipelined.has(owner);
}

/** Records that `owner`'s driver ignored a pipeline (nothing ran). @internal */
export function markUnpipelined(owner: object): void {
  unpipelined.add(owner);
}

/** What {@link runOneStatement} needs of one checked-out connection. @internal */
export interface OneStatementCall<R> {
  /** The pool or Kysely instance: prepared-statement policy is kept per owner. */
  readonly owner: object;
  readonly settings: RequestSettings;
  readonly statement: SettingsStatement;
  readonly text: string;
  readonly values: readonly unknown[];
  /** Sends the pipeline on the connection and resolves to its result. */
  send(pipeline: PipelinedQuery): Promise<R>;
  /** Runs one plain statement on the same connection. */
  run(sql: string): Promise<{ rows: readonly unknown[] }>;
  /** The API's name and its transaction variant, for messages. */
  readonly api: string;
  readonly fallback: string;
}

/**
 * The settings statement and one data statement before one Sync — Postgres
 * runs them as one implicit transaction, so the transaction-local settings
 * end with it — on a connection the caller checked out, with the kit's
 * prepared statements and their recovery. Resolves to the statement's
 * result, or {@link UNPIPELINED} when the driver ignored the pipeline
 * (nothing ran; `owner` is marked, and the caller takes its transaction
 * path).
 * @internal
 */
export async function runOneStatement<R>(
  call: OneStatementCall<R>,
): Promise<R | typeof UNPIPELINED> {
  const { owner, settings, statement } = call;
  let prepare = settings.preparedStatements && mayPrepare(owner);
  for (let attempt = 1; ; attempt++) {
    const pipeline = new PipelinedQuery([
      { text: statement.sql, values: statement.parameters, prepare },
      {
        text: call.text,
        values: call.values,
        anyValues: true,
        rows: true,
        prepare,
        scope: settings.role,
      },
    ]);
    let result: R;
    try {
      result = await call.send(pipeline);
      if (!pipeline.submitted) throw new PipelineUnsupportedError(); // a foreign driver ignored it
    } catch (err) {
      if (err instanceof PipelineUnsupportedError) {
        markUnpipelined(owner);
        return UNPIPELINED;
      }
      if (!pipeline.submitted) throw err; // e.g. a dead client: nothing was sent
      await leaveClean(call, pipeline);
      if (prepare && pipeline.isOwnMismatch(err)) {
        // The kit's statement was missing or taken: the implicit transaction
        // failed whole (nothing committed), so running it again is safe.
        // Relearn what the server holds; if that does not stick either (a
        // pooler in transaction mode), stop preparing for this owner.
        prepare = await recoverPrepared(pipeline, call.run, owner, attempt);
        continue;
      }
      // No command completed: the settings failed, the query never ran.
      if (pipeline.commands.length === 0) throw settingsError(owner, settings, err);
      throw err;
    }
    await leaveClean(call, pipeline);
    const tag = pipeline.commands[1] ?? '';
    if (pipeline.commands[0] !== 'SELECT 1' || !DATA_COMMANDS.test(tag)) {
      // Whatever it was has run (and its effects are committed); the session it
      // may have changed must not serve anyone else.
      await resetSession(call, pipeline);
      throw new RlsKitError(
        'ERR_USAGE',
        `${call.api} runs one SELECT, INSERT, UPDATE, DELETE or MERGE, not ${JSON.stringify(tag.split(' ')[0] ?? '')}: the session was reset (DISCARD ALL); run other statements inside ${call.fallback}`,
      );
    }
    return result;
  }
}

/**
 * Puts the session back as a new connection has it (settings, role, temp
 * tables, listeners, prepared statements), and tells node-postgres that its
 * named statements are gone; closes the connection when even that fails.
 */
async function resetSession(
  call: Pick<OneStatementCall<unknown>, 'run'>,
  pipeline: PipelinedQuery,
): Promise<void> {
  const connection = pipeline.connection as
    | { parsedStatements?: object; submittedNamedStatements?: object; end?: () => void }
    | undefined;
  try {
    await call.run('discard all');
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
  call: Pick<OneStatementCall<unknown>, 'run'>,
  pipeline: PipelinedQuery,
): Promise<void> {
  await pipeline.ready;
  if (pipeline.status === undefined || pipeline.status === 'I') return;
  try {
    await call.run('rollback');
  } catch {
    pipeline.connection?.end?.();
  }
  throw new RlsKitError(
    'ERR_DB_QUERY',
    `the pooled connection was inside a transaction block after the request (status ${pipeline.status}): it was rolled back; some code released a connection mid-transaction, or the query opened one`,
  );
}

/**
 * Whether SQL text starts (after comments, blanks and opening parentheses)
 * with a keyword of a plain data statement — SELECT, INSERT, UPDATE,
 * DELETE, MERGE, WITH, VALUES or TABLE — so it may take the one-round-trip
 * path. Anything else (CALL of a procedure that commits, DO, SET, …) runs in
 * the transaction variant, where PostgreSQL refuses a COMMIT that would let
 * the rest run as the pool's login user. One statement only is enforced by
 * the protocol (a prepared statement holds one command).
 * @internal
 */
export function isDataStatement(text: string): boolean {
  let i = 0;
  for (;;) {
    // PostgreSQL's blanks (scan.l: space, \t, \n, \r, \f, \v) — not JavaScript's
    // wider \s, so the two scanners never disagree on where a word starts.
    while (i < text.length && /[ \t\n\r\f\v(]/.test(text[i]!)) i++;
    if (text.startsWith('--', i)) {
      // A line comment ends at \n or \r, as in PostgreSQL.
      const end = /[\n\r]/.exec(text.slice(i));
      if (end === null) return false;
      i += end.index + 1;
    } else if (text.startsWith('/*', i)) {
      // Block comments nest in PostgreSQL.
      let depth = 0;
      do {
        if (text.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (text.startsWith('*/', i)) {
          depth--;
          i += 2;
        } else if (i >= text.length) {
          return false;
        } else {
          i++;
        }
      } while (depth > 0);
    } else {
      break;
    }
  }
  return /^(select|insert|update|delete|merge|with|values|table)(?![\w$])/i.test(text.slice(i));
}
