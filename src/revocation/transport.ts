import type pg from 'pg';

/**
 * What a transport tells the revocation list. The list makes a fresh set of
 * handlers for every connection it opens and ignores the calls of a
 * connection it has given up on, so a transport may call them late.
 *
 * @example
 * ```ts
 * const handlers: RevocationTransportHandlers = {
 *   message: (payload) => console.log(payload),
 *   resync: () => console.log('reload the tables'),
 *   lost: (err) => console.error('transport lost', err),
 * };
 * ```
 */
export interface RevocationTransportHandlers {
  /** One payload of channel `rls_kit_revocations`, as the migration's triggers write it. */
  message(payload: string): void;
  /**
   * Something may have been missed (a sequence gap, a relay that went away
   * while another is live): the list reloads the tables, and stays live.
   */
  resync(): void;
  /**
   * The connection is gone or can no longer vouch for being complete. The
   * list closes it, reconnects with backoff, and resyncs. `since` (epoch ms)
   * is when the connection was last known complete, if before now: the
   * fail-closed bound counts from there.
   */
  lost(error?: unknown, since?: number): void;
}

/**
 * One open connection of a transport, as the list drives it.
 *
 * @example
 * ```ts
 * const connection = await transport.open(handlers);
 * await connection.probe();
 * await connection.close();
 * ```
 */
export interface RevocationTransportConnection {
  /**
   * A client to load the snapshot on (the Postgres transport lends its
   * LISTEN connection, saving one); when absent the list takes one from its
   * pool.
   */
  readonly snapshotClient?: pg.ClientBase;
  /**
   * Called just before the list loads a snapshot of the tables. Whatever the
   * connection has subscribed to by now is covered by that snapshot (the
   * Redis transport marks the relays it hears as covering here).
   */
  snapshotStarting?(): void;
  /**
   * Liveness probe, run every `heartbeatMs` while the list is in sync.
   * Reject when the connection is dead or incomplete (or call `lost`); a
   * probe that has not settled by the next one counts as dead.
   */
  probe(): Promise<void>;
  /** Closes the connection; no handler is called afterwards. */
  close(): Promise<void>;
}

/**
 * How revocations reach a revocation list: the Postgres transport (LISTEN on
 * a dedicated connection, the default) or the Redis transport (fan-out to
 * many nodes). Postgres stays the source of truth either way: the list
 * loads the tables after every `open`, `resync` and `lost`.
 *
 * `open` must resolve only once every revocation committed from then on
 * will be delivered (or reported through `resync`/`lost`): the list loads
 * its snapshot after `open` resolves, and relies on the two overlapping.
 *
 * @example
 * ```ts
 * const list = createRevocationList({ url, transport: createRedisTransport({ redis: 'redis://127.0.0.1:6379' }) });
 * ```
 */
export interface RevocationTransport {
  /** For messages and metrics, e.g. `'postgres'` or `'redis'`. */
  readonly name: string;
  /** Connects and subscribes; rejects when it cannot (the list retries with backoff). */
  open(handlers: RevocationTransportHandlers): Promise<RevocationTransportConnection>;
  /**
   * Announces a revocation this process has just committed, so other nodes
   * apply it before the database's notification reaches them. Best effort:
   * the notification follows anyway. Absent for Postgres, whose NOTIFY is
   * already immediate.
   */
  publish?(payload: string): Promise<void>;
  /** Releases what `open` does not own per connection (e.g. a publisher); called by the list's `stop`. */
  dispose?(): Promise<void>;
}
