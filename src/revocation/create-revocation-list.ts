import pg from 'pg';
import { RlsKitError } from '../errors.js';
import type { RevocationCheck } from '../tokens/revocation-check.js';
import type { VerifiedClaims } from '../tokens/verified-claims.js';
import { createPostgresTransport } from './create-postgres-transport.js';
import { parseRevocationNotification, type RevocationNotification } from './parse-notification.js';
import {
  createRevocationStore,
  isRevokedIn,
  type RevocationStore,
  sweepExpired,
} from './revocation-store.js';
import type {
  RevocationTransport,
  RevocationTransportConnection,
  RevocationTransportHandlers,
} from './transport.js';

/** How long `rls_kit.revoke_session` keeps an ended session (its `expires_at`). */
const SESSION_RETENTION_SEC = 7 * 24 * 3600;

/**
 * Options of {@link createRevocationList}. Give `url`, `pool`, or both.
 *
 * @example
 * ```ts
 * const options: RevocationListOptions = { pool, url, staleAfterMs: 2000, onStale: 'reject' };
 * ```
 */
export interface RevocationListOptions {
  /** Connection string (service_role or an owner of `rls_kit`); a pool is made from it when `pool` is absent. */
  url?: string;
  /** Pool for revoking and for the database check; the caller keeps owning it. */
  pool?: pg.Pool;
  /** How long the list may be out of sync before it stops answering from memory (default 5000). */
  staleAfterMs?: number;
  /** Past that bound: ask `rls_kit.token_status` (`'check-db'`, default) or refuse (`'reject'`). */
  onStale?: 'check-db' | 'reject';
  /**
   * Makes the dedicated LISTEN connection of the default (Postgres)
   * transport (a new one on every reconnect). Default: a `pg.Client` from
   * `url`, else from the pool's options. Never a pooled connection: LISTEN
   * belongs to one session for its whole life.
   */
  listenClient?: () => pg.Client;
  /**
   * How revocations reach this list. Default: LISTEN on a dedicated
   * Postgres connection (`createPostgresTransport`). For many nodes:
   * `createRedisTransport` (snapshots then come from `pool`).
   */
  transport?: RevocationTransport;
  /** Reconnect backoff: first delay and ceiling in ms (default 100 and 5000). */
  backoffMs?: { initial?: number; max?: number };
  /** How often expired entries are swept (default 60000 ms). */
  sweepIntervalMs?: number;
  /** How often the listener is probed with `select 1`, to notice dead sockets (default: half of staleAfterMs, at most 2000). */
  heartbeatMs?: number;
}

/**
 * Input of {@link RevocationList.revokeToken}.
 *
 * @example
 * ```ts
 * const input: RevokeTokenInput = { jti: claims.jti, expiresAt: claims.exp, reason: 'leaked' };
 * ```
 */
export interface RevokeTokenInput {
  /** The token's `jti`. */
  jti: string;
  /** The token's expiry (a Date, or `exp` in epoch seconds): the denial is kept until then. */
  expiresAt: Date | number;
  reason?: string;
  /** The token's subject, for listing and auditing. */
  sub?: string;
}

/**
 * An in-process mirror of the database's revocations, kept current by
 * LISTEN/NOTIFY, and the verifier's {@link RevocationCheck}.
 *
 * @example
 * ```ts
 * const list: RevocationList = createRevocationList({ url });
 * await list.start();
 * if (!list.inSync) log.warn(`revocation list ${list.lagMs} ms behind`);
 * ```
 */
export interface RevocationList extends RevocationCheck {
  /** Connects, LISTENs, loads; resolves once the list is in sync. */
  start(): Promise<void>;
  /** Disconnects and stops timers (ends the pool only if the list made it). */
  stop(): Promise<void>;
  /**
   * True when the token is revoked. Synchronous while in sync (and within
   * `staleAfterMs` of losing sync); past that a Promise from the database
   * (`'check-db'`) or a throw (`'reject'`), `ERR_REVOCATION_UNAVAILABLE`.
   */
  isRevoked(claims: VerifiedClaims | Readonly<Record<string, unknown>>): boolean | Promise<boolean>;
  /** `rls_kit.revoke_token`; effective in this process when the promise resolves. */
  revokeToken(input: RevokeTokenInput): Promise<void>;
  /** `rls_kit.revoke_subject`; resolves to the cut-off (whole seconds). */
  revokeSubject(sub: string, options?: { reason?: string; endSessions?: boolean }): Promise<Date>;
  /** `rls_kit.revoke_session` (a Supabase `session_id` or a kit `sid`). */
  revokeSession(sessionId: string, options?: { reason?: string }): Promise<void>;
  /** Entries held (jtis + subjects + sessions). */
  readonly size: number;
  /** True while the listener is connected and the tables are loaded. */
  readonly inSync: boolean;
  /** Milliseconds since sync was lost (0 while in sync). */
  readonly lagMs: number;
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Rejected before the database is touched: nothing changes. */
function badInput(message: string): RlsKitError {
  return new RlsKitError('ERR_REVOKE_INPUT', message);
}

function checkUuid(value: unknown, what: string): void {
  if (typeof value !== 'string' || !UUID_RE.test(value)) throw badInput(`${what} must be a uuid`);
}

/**
 * Creates the revocation list: loads the live revocations, LISTENs on a
 * dedicated connection, applies each notification, and resyncs from the
 * tables after every reconnect (NOTIFY does not replay what a disconnected
 * listener missed). It fails closed: out of sync for longer than
 * `staleAfterMs`, it asks the database or refuses, never "not revoked".
 *
 * @example
 * ```ts
 * const list = createRevocationList({ url: process.env.DATABASE_URL });
 * await list.start();
 * const verifier = createVerifier({ issuer, audience, keys, revocation: list });
 * await list.revokeSubject(userId, { reason: 'password reset' });
 * ```
 */
export function createRevocationList(options: RevocationListOptions): RevocationList {
  const { url } = options;
  if (url === undefined && options.pool === undefined) {
    throw new RlsKitError('ERR_CONFIG', 'createRevocationList needs url or pool');
  }
  const staleAfterMs = options.staleAfterMs ?? 5000;
  const onStale = options.onStale ?? 'check-db';
  if (!(staleAfterMs >= 0)) throw new RlsKitError('ERR_CONFIG', 'staleAfterMs must be >= 0');
  if (onStale !== 'check-db' && onStale !== 'reject') {
    throw new RlsKitError('ERR_CONFIG', "onStale must be 'check-db' or 'reject'");
  }
  const backoffInitial = options.backoffMs?.initial ?? 100;
  const backoffMax = options.backoffMs?.max ?? 5000;
  const sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
  const heartbeatMs = options.heartbeatMs ?? Math.max(50, Math.min(2000, staleAfterMs / 2));

  const ownPool = options.pool === undefined;
  const pool =
    options.pool ?? new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5000 });
  // An idle pooled connection dying must not crash the process; the next query reports it.
  if (ownPool) pool.on('error', () => undefined);
  const transport =
    options.transport ?? createPostgresTransport({ url, pool, listenClient: options.listenClient });

  let store: RevocationStore = createRevocationStore();
  let synced = false;
  let everSynced = false;
  let lostAt = Date.now();
  let stopped = true;
  /** Bumped whenever a connection is abandoned, so its late events are ignored. */
  let generation = 0;
  let listener: RevocationTransportConnection | undefined;
  let attempts = 0;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let heartbeatPending = false;
  /** While loading: notifications and own revocations to apply on top of the snapshot. */
  let pending: (() => void)[] | undefined;
  let resyncRequested = false;
  let resyncing = false;

  const nowSec = () => Date.now() / 1000;
  const unavailable = (message: string, cause?: unknown) =>
    new RlsKitError(
      'ERR_REVOCATION_UNAVAILABLE',
      message,
      cause === undefined ? undefined : { cause },
    );

  /** `since`: when the source was last known complete (a transport may know it lost sync earlier). */
  const markLost = (since?: number) => {
    if (synced) lostAt = Math.min(Date.now(), since ?? Number.POSITIVE_INFINITY);
    synced = false;
  };

  /** Applies a local change now, and again after a snapshot that may predate it. */
  const applyLocal = (change: (s: RevocationStore) => void) => {
    change(store);
    pending?.push(() => change(store));
  };

  const apply = (n: RevocationNotification, s: RevocationStore) => {
    const map = n.t === 'jti' ? s.tokens : n.t === 'sub' ? s.subjects : s.sessions;
    const norm = n.t === 'jti' ? (k: string) => k : (k: string) => k.toLowerCase();
    if (n.op === '+') {
      // The tables only ever raise a value (greatest() on conflict), so a
      // lower one would lift a denial: keep the higher, ask the tables.
      let lower = false;
      for (const [k, x] of n.v) {
        const key = norm(k);
        const old = map.get(key);
        if (old === undefined || x >= old) map.set(key, x);
        else lower = true;
      }
      if (lower) requestResync();
    } else if (n.op === '-') {
      // A deletion only ever lifts a denial, so it is never taken on a
      // message's word: purge_expired deletes rows already past their
      // expiry (dropped here too), anything else — an un-banned subject, a
      // hand-deleted row, or a forged message on a shared channel — makes
      // the list ask the tables.
      const now = nowSec();
      for (const k of n.v) {
        const key = norm(k);
        const x = map.get(key);
        if (x === undefined) continue;
        if (n.t !== 'sub' && x <= now) map.delete(key);
        else {
          requestResync();
          return;
        }
      }
    }
  };

  const onNotification = (payload: string | undefined) => {
    const n = parseRevocationNotification(payload);
    if (n === undefined || n.op === '*') {
      // Garbled, unknown or a truncation: only the tables can say what is true now.
      requestResync();
      return;
    }
    apply(n, store);
    pending?.push(() => apply(n, store));
  };

  const requestResync = () => {
    const conn = listener;
    if (conn === undefined) return; // the reconnect loads anyway
    markLost();
    resyncRequested = true;
    if (!resyncing) {
      const gen = generation;
      load(gen, conn).catch((err) => lose(gen, err));
    }
  };

  const loadOnce = async (gen: number, conn: RevocationTransportConnection) => {
    pending = [];
    const fresh = createRevocationStore();
    // Whatever the transport delivers from now on is covered by this snapshot or arrives after it.
    conn.snapshotStarting?.();
    const lent = conn.snapshotClient;
    const client: pg.ClientBase = lent ?? (await pool.connect());
    let broken: unknown;
    try {
      await client.query('begin isolation level repeatable read read only');
      const tokens = await client.query<[string, number]>({
        text: 'select jti, ceil(extract(epoch from expires_at))::float8 from rls_kit.revoked_tokens where expires_at > now()',
        rowMode: 'array',
      });
      const subjects = await client.query<[string, number]>({
        text: 'select sub::text, floor(extract(epoch from not_before))::float8 from rls_kit.subject_revocations',
        rowMode: 'array',
      });
      const sessions = await client.query<[string, number]>({
        text: 'select session_id::text, ceil(extract(epoch from expires_at))::float8 from rls_kit.revoked_sessions where expires_at > now()',
        rowMode: 'array',
      });
      for (const [k, x] of tokens.rows) fresh.tokens.set(k, x);
      for (const [k, x] of subjects.rows) fresh.subjects.set(k, x);
      for (const [k, x] of sessions.rows) fresh.sessions.set(k, x);
    } catch (err) {
      broken = err;
      throw err;
    } finally {
      await client.query('commit').catch(() => undefined);
      // A pooled client that failed is destroyed, not handed out again.
      if (lent === undefined) {
        (client as pg.PoolClient).release(broken instanceof Error ? broken : undefined);
      }
    }
    if (gen !== generation) return false;
    const queued = pending;
    pending = undefined;
    store = fresh;
    for (const change of queued) change();
    return true;
  };

  const load = async (gen: number, conn: RevocationTransportConnection) => {
    resyncing = true;
    try {
      do {
        resyncRequested = false;
        if (!(await loadOnce(gen, conn))) return;
      } while (resyncRequested);
      synced = true;
      everSynced = true;
    } finally {
      resyncing = false;
      pending = undefined;
    }
  };

  const lose = (gen: number, _err?: unknown, since?: number) => {
    if (gen !== generation) return;
    generation++;
    markLost(since);
    const conn = listener;
    listener = undefined;
    heartbeatPending = false;
    conn?.close().catch(() => undefined);
    if (!stopped) scheduleReconnect();
  };

  const connect = async () => {
    const gen = ++generation;
    const handlers: RevocationTransportHandlers = {
      message: (payload) => {
        if (gen === generation) onNotification(payload);
      },
      resync: () => {
        if (gen === generation) requestResync();
      },
      lost: (err, since) => lose(gen, err, since),
    };
    let conn: RevocationTransportConnection | undefined;
    try {
      // Subscribe before loading: whatever commits after the snapshot arrives as a message.
      conn = await transport.open(handlers);
      if (gen !== generation) throw new Error('superseded');
      listener = conn;
      await load(gen, conn);
      if (gen !== generation) throw new Error('superseded');
      attempts = 0;
    } catch (err) {
      if (conn !== undefined && listener !== conn) conn.close().catch(() => undefined);
      lose(gen, err);
      throw err;
    }
  };

  const scheduleReconnect = () => {
    if (reconnectTimer !== undefined || stopped) return;
    const delay = Math.min(backoffMax, backoffInitial * 2 ** attempts) * (0.5 + Math.random() / 2);
    attempts++;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      if (!stopped) connect().catch(() => undefined); // lose() schedules the next try
    }, delay);
    reconnectTimer.unref();
  };

  const heartbeat = () => {
    const conn = listener;
    if (conn === undefined || resyncing) return;
    const gen = generation;
    if (heartbeatPending) {
      // The last probe never answered: the socket is dead or the server hangs.
      heartbeatPending = false;
      lose(gen, new Error('heartbeat timed out'));
      return;
    }
    heartbeatPending = true;
    conn.probe().then(
      () => {
        if (gen === generation) heartbeatPending = false;
      },
      (err) => {
        if (gen === generation) heartbeatPending = false;
        lose(gen, err);
      },
    );
  };

  /** Tells other nodes at once (Redis); best effort, the database's notification follows anyway. */
  const announce = (payload: unknown) => {
    transport.publish?.(JSON.stringify(payload)).catch(() => undefined);
  };

  const checkDatabase = async (claims: Readonly<Record<string, unknown>>): Promise<boolean> => {
    let status: unknown;
    try {
      const { rows } = await pool.query<{ status: unknown }>(
        'select rls_kit.token_status($1::jsonb) as status',
        [JSON.stringify(claims)],
      );
      status = rows[0]?.status;
    } catch (err) {
      throw unavailable('the revocation list is out of sync and the database did not answer', err);
    }
    const active = (status as { active?: unknown } | null | undefined)?.active;
    if (typeof active !== 'boolean') {
      throw unavailable('rls_kit.token_status answered in an unexpected shape');
    }
    return !active;
  };

  const query = async <R extends pg.QueryResultRow>(text: string, values: unknown[]) => {
    try {
      return await pool.query<R>(text, values);
    } catch (err) {
      const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
      throw new RlsKitError('ERR_DB_QUERY', `revoking failed: ${message}`, { cause: err });
    }
  };

  return {
    async start() {
      if (!stopped) return;
      stopped = false;
      try {
        await connect();
      } catch (err) {
        stopped = true;
        if (reconnectTimer !== undefined) clearTimeout(reconnectTimer);
        reconnectTimer = undefined;
        const why = (err instanceof Error ? err.message : String(err)).split('\n')[0];
        throw unavailable(
          `the revocation list could not connect and load the revocations: ${why}`,
          err,
        );
      }
      sweepTimer = setInterval(() => sweepExpired(store, nowSec()), sweepIntervalMs);
      sweepTimer.unref();
      heartbeatTimer = setInterval(heartbeat, heartbeatMs);
      heartbeatTimer.unref();
    },

    async stop() {
      stopped = true;
      if (reconnectTimer !== undefined) clearTimeout(reconnectTimer);
      if (sweepTimer !== undefined) clearInterval(sweepTimer);
      if (heartbeatTimer !== undefined) clearInterval(heartbeatTimer);
      reconnectTimer = sweepTimer = heartbeatTimer = undefined;
      const conn = listener;
      generation++;
      listener = undefined;
      markLost();
      everSynced = false;
      await conn?.close().catch(() => undefined);
      await transport.dispose?.().catch(() => undefined);
      if (ownPool) await pool.end().catch(() => undefined);
    },

    isRevoked(claims) {
      if (synced || (everSynced && Date.now() - lostAt <= staleAfterMs)) {
        return isRevokedIn(store, claims, nowSec());
      }
      if (onStale === 'reject') {
        throw unavailable(
          'the revocation list is out of sync; tokens are refused until it resyncs',
        );
      }
      return checkDatabase(claims);
    },

    async revokeToken(input) {
      if (typeof input?.jti !== 'string' || input.jti.length === 0 || input.jti.length > 255) {
        throw badInput('revokeToken: jti must be the token’s jti claim (1 to 255 characters)');
      }
      const expires =
        input.expiresAt instanceof Date
          ? input.expiresAt
          : new Date(typeof input.expiresAt === 'number' ? input.expiresAt * 1000 : Number.NaN);
      if (Number.isNaN(expires.getTime())) {
        throw badInput('revokeToken: expiresAt must be a Date or the token’s exp in epoch seconds');
      }
      if (expires.getTime() <= Date.now()) {
        throw badInput(
          'revokeToken: expiresAt is not in the future: an expired token is refused anyway, nothing to revoke',
        );
      }
      if (input.sub !== undefined) checkUuid(input.sub, 'revokeToken: sub');
      await query('select rls_kit.revoke_token($1::text, $2::timestamptz, $3::text, $4::uuid)', [
        input.jti,
        expires.toISOString(),
        input.reason ?? null,
        input.sub ?? null,
      ]);
      const exp = Math.ceil(expires.getTime() / 1000);
      applyLocal((s) => s.tokens.set(input.jti, Math.max(exp, s.tokens.get(input.jti) ?? 0)));
      announce({ t: 'jti', op: '+', v: [[input.jti, exp]] });
    },

    async revokeSubject(sub, opts = {}) {
      checkUuid(sub, 'revokeSubject: sub');
      const { rows } = await query<{ cutoff: Date }>(
        'select rls_kit.revoke_subject($1::uuid, $2::text, $3::boolean) as cutoff',
        [sub, opts.reason ?? null, opts.endSessions ?? true],
      );
      const cutoff = rows[0]!.cutoff;
      const sec = Math.floor(cutoff.getTime() / 1000);
      const key = sub.toLowerCase();
      applyLocal((s) => s.subjects.set(key, Math.max(sec, s.subjects.get(key) ?? 0)));
      announce({ t: 'sub', op: '+', v: [[key, sec]] });
      return cutoff;
    },

    async revokeSession(sessionId, opts = {}) {
      checkUuid(sessionId, 'revokeSession: sessionId');
      await query('select rls_kit.revoke_session($1::uuid, $2::text)', [
        sessionId,
        opts.reason ?? null,
      ]);
      const key = sessionId.toLowerCase();
      const exp = Math.ceil(nowSec()) + SESSION_RETENTION_SEC;
      applyLocal((s) => s.sessions.set(key, Math.max(exp, s.sessions.get(key) ?? 0)));
      announce({ t: 'sid', op: '+', v: [[key, exp]] });
    },

    get size() {
      return store.tokens.size + store.subjects.size + store.sessions.size;
    },
    get inSync() {
      return synced;
    },
    get lagMs() {
      return synced ? 0 : Date.now() - lostAt;
    },
  };
}
