import { createRequire } from 'node:module';
import pg from 'pg';

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
}

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
  readonly #statements: readonly { text: string; values: unknown[]; rows: boolean }[];
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
    const ended = () => this.#readyResolve?.();
    events.once?.('end', ended);
    events.once?.('readyForQuery', (msg) => {
      this.status = msg.status;
      events.removeListener?.('end', ended);
      this.#readyResolve?.();
    });
    conn.stream?.cork?.();
    try {
      for (const s of this.#statements) {
        conn.parse({ name: '', text: s.text, types: [] });
        conn.bind({ portal: '', statement: '', values: s.values as (string | null)[] });
        if (s.rows) conn.describe({ type: 'P', name: '' });
        conn.execute({ portal: '', rows: 0 });
      }
      conn.sync();
    } finally {
      conn.stream?.uncork?.();
    }
    return null;
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
