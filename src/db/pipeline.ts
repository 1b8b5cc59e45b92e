import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import pg from 'pg';
import type { SettingsStatement } from './request-settings.js';

/**
 * One statement of a {@link PipelinedQuery}. Values are bound as text
 * parameters (`$1`, …); only strings, booleans and null are accepted, which
 * is all the kit's request statements need.
 * @internal
 */
export interface PipelineStatement {
  text: string;
  /**
   * Bound as parameters: strings, booleans and null as text; with `anyValues`,
   * anything node-postgres itself accepts (numbers, dates, buffers, arrays,
   * objects as JSON), converted by pg's own `prepareValue`.
   */
  values?: readonly unknown[];
  /** Accept any value node-postgres accepts (for a caller's query), not only the kit's text values. */
  anyValues?: boolean;
  /** True for the one statement whose rows (and row count) the query reports. */
  rows?: boolean;
  /**
   * Run it as a named prepared statement (see {@link preparedName}): parsed
   * and planned once per connection, then only bound and executed.
   */
  prepare?: boolean;
  /**
   * Part of the prepared statement's name besides its text — the role it
   * runs as: Postgres re-plans a statement whose row level security was
   * applied for another role, so one statement per role keeps each role's
   * plan instead of trading one plan back and forth.
   */
  scope?: string;
}

/**
 * Most statements the kit keeps prepared on one connection. A new text
 * beyond it replaces the kit's least recently used statement (closed on the
 * server in the same write), so an application that builds endless distinct
 * SQL (say, `in (…)` lists of every length) cannot grow a connection's
 * memory without bound, and the statements in use stay prepared.
 * @internal
 */
export const MAX_PREPARED_PER_CONNECTION = 200;

/** Prefix of the names of the kit's prepared statements. @internal */
export const PREPARED_PREFIX = 'rls_kit_';

const names = new Map<string, string>();
/**
 * The name the kit prepares `text` under (for `scope`, e.g. a role):
 * {@link PREPARED_PREFIX} and the first 32 hex digits of the SHA-256 of both,
 * so equal texts in one scope share one statement on a connection and
 * different ones never collide in practice (a collision would be detected:
 * the text is compared before reuse). Role names cannot contain NUL, so the
 * separator is unambiguous.
 * @internal
 */
export function preparedName(text: string, scope = ''): string {
  const key = scope === '' ? text : `${scope}\u0000${text}`;
  let name = names.get(key);
  if (name === undefined) {
    name = PREPARED_PREFIX + createHash('sha256').update(key).digest('hex').slice(0, 32);
    if (names.size >= 4 * MAX_PREPARED_PER_CONNECTION) names.clear();
    names.set(key, name);
  }
  return name;
}

/**
 * The kit's statements the server holds on this session, for
 * {@link PipelinedQuery.resyncPrepared} after a mismatch.
 * @internal
 */
const PREPARED_STATE_SQL = `select name, statement from pg_catalog.pg_prepared_statements where name like '${PREPARED_PREFIX.replaceAll('_', '\\_')}%'`;

/**
 * Pools (or Kysely instances) on which the kit's prepared statements did not
 * survive even right after a resynchronisation — a pooler in transaction
 * mode moves the session between server connections — so the kit stops
 * preparing there (correct, only slower).
 */
const unprepared = new WeakSet<object>();

/** Whether the kit may prepare statements on `owner` (see {@link stopPreparing}). @internal */
export function mayPrepare(owner: object): boolean {
  return !unprepared.has(owner);
}

/** Stops preparing on `owner` for good (its session does not keep prepared statements). @internal */
function stopPreparing(owner: object): void {
  unprepared.add(owner);
}

/**
 * BEGIN and the settings statement in one round trip, the settings prepared
 * when `prepare` holds (not the role-checking form, which runs once a minute
 * per role: not worth a statement per connection).
 * @internal
 */
export function beginWithSettings(statement: SettingsStatement, prepare: boolean): PipelinedQuery {
  return new PipelinedQuery([
    { text: 'begin' },
    {
      text: statement.sql,
      values: statement.parameters,
      rows: true,
      prepare: prepare && !statement.checksRole,
    },
  ]);
}

/**
 * After {@link PipelinedQuery.isOwnMismatch} (and once the connection is
 * out of any failed transaction): relearns the server's statements through
 * `run` and says whether the next attempt may prepare — not after a second
 * mismatch in a row, when `owner` (the pool or Kysely instance) stops
 * preparing for good.
 * @internal
 */
export async function recoverPrepared(
  pipeline: PipelinedQuery,
  run: (sql: string) => Promise<{ rows: readonly unknown[] }>,
  owner: object,
  attempt: number,
): Promise<boolean> {
  const { rows } = await run(PREPARED_STATE_SQL);
  pipeline.resyncPrepared(rows as readonly { name: string; statement: string }[]);
  if (attempt === 1) return true;
  stopPreparing(owner);
  return false;
}

/**
 * SQLSTATEs that mean the server's prepared statements are not what the
 * client believes (26000 gone, 42P05 already there): someone ran `DEALLOCATE`
 * or `DISCARD ALL`, or a transaction-mode pooler moved the session.
 * @internal
 */
export function isPreparedStatementMismatch(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '26000' || code === '42P05';
}

/**
 * Thrown (as the query's error) when the client underneath is not
 * node-postgres's JavaScript client, whose protocol methods the pipeline
 * writes to; callers fall back to one round trip per statement.
 * @internal
 */
export class PipelineUnsupportedError extends Error {
  constructor() {
    super('the pg client does not expose the extended-protocol methods a pipelined query needs');
    this.name = 'PipelineUnsupportedError';
  }
}

/** The parts of pg's Connection a pipeline writes to. */
interface ProtocolConnection {
  parse(msg: { name: string; text: string; types: number[] }): void;
  bind(msg: { portal: string; statement: string; values: (string | null)[] }): void;
  describe(msg: { type: 'P'; name: string }): void;
  execute(msg: { portal: string; rows: number }): void;
  sync(): void;
  stream?: { cork?: () => void; uncork?: () => void };
  /** node-postgres's bookkeeping of named statements (text by name). */
  parsedStatements?: Record<string, string>;
  submittedNamedStatements?: Record<string, string>;
  close?(msg: { type: 'S'; name: string }): void;
}

/** How many of a connection's parsed statements are the kit's (keyed on pg's map, which a reset replaces). */
const preparedCount = new WeakMap<object, number>();

/** The hooks of `pg.Query` a pipeline overrides (present since pg 7, used by pg-cursor too). */
interface QueryHooks {
  handleCommandComplete(msg: { text: string }, connection: unknown): void;
}

const HOOKS_OK = (() => {
  const proto = pg.Query.prototype as unknown as Partial<QueryHooks> & { submit?: unknown };
  return typeof proto.submit === 'function' && typeof proto.handleCommandComplete === 'function';
})();

function isProtocolConnection(c: unknown): c is ProtocolConnection {
  const x = c as Partial<Record<keyof ProtocolConnection, unknown>> | null;
  return (
    x !== null &&
    typeof x === 'object' &&
    typeof x.parse === 'function' &&
    typeof x.bind === 'function' &&
    typeof x.describe === 'function' &&
    typeof x.execute === 'function' &&
    typeof x.sync === 'function'
  );
}

/**
 * Several statements in one round trip: each is sent as Parse/Bind/Execute
 * (extended protocol, values bound as parameters) and one Sync closes them
 * all, so the server answers in one go. An error in any statement makes the
 * server skip the rest up to the Sync — the property that lets `BEGIN` travel
 * with the request settings and a check travel with `COMMIT` (a failed check
 * means COMMIT never runs). Implicitly, statements before a `BEGIN` would
 * share one implicit transaction; the kit never sends any.
 *
 * node-postgres has no public API for this; the query is a `pg.Query`
 * subclass (a "submittable", as pg-cursor is) that writes the messages itself.
 * It is also a promise of its result, so it can be handed to code that
 * awaits `client.query(query)` — kysely's Postgres driver passes a compiled
 * query's `sql` straight to `client.query`, which is how the kysely as-user
 * API sends it. The result is pg's result of the `rows: true` statement (or
 * of the last one), with every statement's command tag in {@link commands}.
 *
 * @internal
 */
export class PipelinedQuery extends pg.Query implements PromiseLike<pg.QueryResult> {
  /** Command tags received so far, one per completed statement (`BEGIN`, `SELECT 1`, `COMMIT`, …). */
  readonly commands: string[] = [];
  /** True once the client handed the query to a connection (false: a foreign driver ignored it). */
  submitted = false;
  /**
   * The transaction status the server reported with the pipeline's
   * ReadyForQuery: `I` idle, `T` in a transaction block, `E` in a failed
   * one; undefined until it arrived.
   */
  status: string | undefined;
  /** The connection the query was written to (to end it when it cannot be trusted any more). */
  connection: { end?: () => void } | undefined;
  /**
   * Settles when the pipeline's ReadyForQuery arrived (then {@link status}
   * is set) or the connection ended: pg reports an error before the server
   * is done, so a caller that needs the final status awaits this.
   */
  readonly ready: Promise<void>;
  #readyResolve: (() => void) | undefined;
  readonly #statements: readonly {
    text: string;
    values: unknown[];
    rows: boolean;
    prepare: boolean;
    scope: string;
  }[];
  /** The statements Parse was sent for, in order (name '' = unnamed). */
  #parsed: { name: string; text: string }[] = [];
  /** Every prepared name this pipeline parsed or bound. */
  #used: string[] = [];
  #parseCompletes = 0;
  readonly #text: string;
  readonly #reported: number;
  readonly #promise: Promise<pg.QueryResult>;

  constructor(statements: readonly PipelineStatement[]) {
    let settle: { resolve: (r: pg.QueryResult) => void; reject: (e: unknown) => void } | undefined;
    const promise = new Promise<pg.QueryResult>((resolve, reject) => {
      settle = { resolve, reject };
    });
    // Values are checked and converted here, not while writing to the socket.
    const prepared = statements.map((s) => ({
      text: s.text,
      values: (s.values ?? []).map(s.anyValues ? pgValue : textValue),
      rows: s.rows === true,
      prepare: s.prepare === true,
      scope: s.scope ?? '',
    }));
    const described = prepared.findIndex((s) => s.rows);
    const text = prepared.map((s) => s.text).join(';\n');
    super({ text }, undefined, ((err: Error | undefined, result: pg.QueryResult) =>
      err ? settle?.reject(err) : settle?.resolve(result)) as never);
    this.#statements = prepared;
    this.#text = text;
    this.#reported = described >= 0 ? described : statements.length - 1;
    this.#promise = promise;
    this.ready = new Promise<void>((resolve) => {
      this.#readyResolve = resolve;
    });
    // An own property shadows pg.Query's method (the typings declare it a
    // property); pg's client reports a returned Error as the query's error.
    this.submit = (connection) => this.#submit(connection);
    // Nobody may be awaiting yet when an error arrives; the caller's await
    // (or then) still sees it.
    promise.catch(() => undefined);
  }

  // biome-ignore lint/suspicious/noThenProperty: deliberately a promise of its result (see the class comment)
  then<A = pg.QueryResult, B = never>(
    onFulfilled?: ((value: pg.QueryResult) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.#promise.then(onFulfilled, onRejected);
  }

  /**
   * The statements inside an SQL comment, for logs (kysely logs a compiled
   * query's `sql`). A comment, so a driver that sent this text instead of
   * the pipeline would run nothing.
   */
  override toString(): string {
    return `/* rls_kit pipeline: ${this.#text.replaceAll('/*', '/ *').replaceAll('*/', '* /')} */`;
  }

  /** Writes every statement and one Sync, corked into one packet. */
  #submit(connection: pg.Connection): Error | null {
    const conn: unknown = connection;
    if (!HOOKS_OK || !isProtocolConnection(conn)) return new PipelineUnsupportedError();
    this.submitted = true;
    this.connection = conn as { end?: () => void };
    // One Sync, one ReadyForQuery: the next one on this connection is ours.
    const events = conn as unknown as Partial<{
      once(e: string, f: (m: { status?: string }) => void): void;
      removeListener(e: string, f: () => void): void;
    }>;
    const parsed = () => {
      this.#parseCompletes++;
    };
    const ended = () => {
      events.removeListener?.('parseComplete', parsed);
      this.#readyResolve?.();
    };
    (events as { on?: (e: string, f: () => void) => void }).on?.('parseComplete', parsed);
    events.once?.('end', ended);
    events.once?.('readyForQuery', (msg) => {
      this.status = msg.status;
      events.removeListener?.('end', ended);
      events.removeListener?.('parseComplete', parsed);
      this.#settleNames(conn);
      this.#readyResolve?.();
    });
    conn.stream?.cork?.();
    try {
      for (const s of this.#statements) {
        const name = s.prepare ? this.#nameFor(conn, s.text, s.scope) : undefined;
        if (name !== undefined) this.#used.push(name.name);
        if (name === undefined || name.parse) {
          conn.parse({ name: name?.name ?? '', text: s.text, types: [] });
          this.#parsed.push({ name: name?.name ?? '', text: s.text });
        }
        conn.bind({
          portal: '',
          statement: name?.name ?? '',
          values: s.values as (string | null)[],
        });
        if (s.rows) conn.describe({ type: 'P', name: '' });
        conn.execute({ portal: '', rows: 0 });
      }
      conn.sync();
    } finally {
      conn.stream?.uncork?.();
    }
    return null;
  }

  /**
   * The name to run `text` under on this connection, and whether it still
   * needs its Parse; undefined (run it unnamed) where pg's bookkeeping is
   * missing, the connection already holds {@link MAX_PREPARED_PER_CONNECTION}
   * of the kit's statements, or the name stands for another text.
   */
  #nameFor(
    conn: ProtocolConnection,
    text: string,
    scope: string,
  ): { name: string; parse: boolean } | undefined {
    const parsed = conn.parsedStatements;
    const submitted = conn.submittedNamedStatements;
    if (parsed === undefined || submitted === undefined) return undefined;
    const name = preparedName(text, scope);
    const known = parsed[name] ?? submitted[name];
    if (known !== undefined) {
      if (known !== text) return undefined;
      if (parsed[name] !== undefined) {
        // Most recently used last: pg's map keeps string keys in insertion order.
        delete parsed[name];
        parsed[name] = text;
      }
      return { name, parse: false };
    }
    const count = preparedCount.get(parsed) ?? 0;
    if (count >= MAX_PREPARED_PER_CONNECTION) {
      const oldest = Object.keys(parsed).find((n) => n.startsWith(PREPARED_PREFIX));
      if (oldest === undefined || typeof conn.close !== 'function') return undefined;
      // Closing a statement always succeeds; if an earlier error skips this
      // Close, the server keeps it and a later Parse of that name gets 42P05,
      // which resyncPrepared() settles.
      conn.close({ type: 'S', name: oldest });
      delete parsed[oldest];
      preparedCount.set(parsed, count - 1);
    }
    submitted[name] = text;
    return { name, parse: true };
  }

  /**
   * Once the server answered: the Parses it completed (a prefix of those
   * sent, since an error skips the rest) created their statements; the others
   * did not.
   */
  #settleNames(conn: ProtocolConnection): void {
    const parsed = conn.parsedStatements;
    const submitted = conn.submittedNamedStatements;
    if (parsed === undefined || submitted === undefined) return;
    this.#parsed.forEach(({ name, text }, i) => {
      if (name === '') return;
      delete submitted[name];
      if (i < this.#parseCompletes) adopt(parsed, name, text);
    });
  }

  /**
   * Whether `err` says the server's prepared statements are not what this
   * pipeline believed — SQLSTATE 26000 (gone: `DEALLOCATE`, `DISCARD ALL`)
   * or 42P05 (already there) naming one of the kit's statements this
   * pipeline used. The same codes raised by the caller's own SQL are not
   * (they reach the caller unchanged, never retried).
   */
  isOwnMismatch(err: unknown): boolean {
    if (!isPreparedStatementMismatch(err)) return false;
    const message = err instanceof Error ? err.message : String(err);
    return this.#used.some((name) => message.includes(`"${name}"`));
  }

  /**
   * Rebuilds the kit's bookkeeping of this query's connection from what the
   * server holds (`rows` of {@link PREPARED_STATE_SQL}) after
   * {@link isOwnMismatch}: the kit's names are forgotten, then every server
   * statement is recorded with the server's text — so a statement of
   * another text under a kit name is never bound as the kit's (the name
   * then runs unnamed).
   */
  resyncPrepared(rows: readonly { name: string; statement: string }[]): void {
    const conn = this.connection as Partial<ProtocolConnection> | undefined;
    const parsed = conn?.parsedStatements;
    const submitted = conn?.submittedNamedStatements;
    if (parsed === undefined || submitted === undefined) return;
    for (const map of [parsed, submitted]) {
      for (const name of Object.keys(map)) if (name.startsWith(PREPARED_PREFIX)) delete map[name];
    }
    preparedCount.delete(parsed);
    for (const { name, statement } of rows) adopt(parsed, name, statement);
  }

  /** Rows of the reported statement only: the others are not described, so pg could not parse theirs. */
  handleDataRow(msg: unknown): void {
    if (this.commands.length !== this.#reported) return;
    (pg.Query.prototype as unknown as { handleDataRow(m: unknown): void }).handleDataRow.call(
      this,
      msg,
    );
  }

  /** Records every statement's tag; only the reported statement's reaches pg's result. */
  handleCommandComplete(msg: { text: string }, connection: unknown): void {
    const index = this.commands.length;
    this.commands.push(msg.text);
    if (index === this.#reported) {
      (pg.Query.prototype as unknown as QueryHooks).handleCommandComplete.call(
        this,
        msg,
        connection,
      );
    }
  }
}

function adopt(parsed: Record<string, string>, name: string, text: string): void {
  if (parsed[name] === text) return;
  parsed[name] = text;
  preparedCount.set(parsed, (preparedCount.get(parsed) ?? 0) + 1);
}

const require = createRequire(import.meta.url);
/** node-postgres's own parameter conversion (what `client.query(text, values)` applies). */
const pgUtils = require('pg/lib/utils') as { prepareValue(value: unknown): unknown };

function pgValue(value: unknown): unknown {
  return pgUtils.prepareValue(value);
}

function textValue(value: unknown): string | null {
  if (value === null || typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  throw new TypeError('pipelined statements bind only strings, booleans and null');
}
