import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { RlsKitError } from '../errors.js';
import { createPostgresTransport } from './create-postgres-transport.js';
import {
  checkChannel,
  DEFAULT_REDIS_CHANNEL,
  newRedisClient,
  type RedisConnection,
} from './redis-client.js';
import { encodeRedisEnvelope, envelopeSigning } from './redis-envelope.js';
import type { RevocationTransportConnection } from './transport.js';

/**
 * Options of {@link createRevocationRelay}.
 *
 * @example
 * ```ts
 * const options: RevocationRelayOptions = { url: process.env.DATABASE_URL, redis: process.env.REDIS_URL };
 * ```
 */
export interface RevocationRelayOptions {
  /** Postgres to LISTEN on (service_role or an owner of `rls_kit`). */
  url?: string;
  /** Used for its connection options when `url` is absent. */
  pool?: pg.Pool;
  /** Makes the dedicated LISTEN connection (a new one on every reconnect). */
  listenClient?: () => pg.Client;
  /** Redis (URL or ioredis options); default `redis://127.0.0.1:6379`. */
  redis?: RedisConnection;
  /** The channel to publish on (default `rls_kit:revocations`); the transports must use the same. */
  channel?: string;
  /**
   * Heartbeat period in ms (default 1000): each heartbeat first checks the
   * LISTEN connection (`select 1`), so a heartbeat vouches for Postgres and
   * Redis both. Keep the transports' `relayTimeoutMs` above twice this.
   */
  heartbeatMs?: number;
  /** Reconnect backoff of the LISTEN side: first delay and ceiling in ms (default 100 and 5000). */
  backoffMs?: { initial?: number; max?: number };
  /**
   * Shared secret (≥ 32 bytes) to sign every message with (HMAC-SHA256 and
   * the send time), so lists with the same secret ignore whatever someone
   * else publishes on the channel. Give the transports the same one.
   */
  secret?: string | Uint8Array;
}

/**
 * A running relay.
 *
 * @example
 * ```ts
 * const relay: RevocationRelay = createRevocationRelay({ url, redis });
 * await relay.start();
 * ```
 */
export interface RevocationRelay {
  /** LISTENs and connects to Redis; resolves once the first heartbeat is out. */
  start(): Promise<void>;
  /** Stops relaying and disconnects. */
  stop(): Promise<void>;
  /** The current stream id (a new one after every reconnect to Postgres), or undefined while down. */
  readonly stream: string | undefined;
  /** Notifications forwarded so far (attempts, including those Redis refused). */
  readonly forwarded: number;
}

/**
 * The relay of the Redis fan-out: LISTENs on `rls_kit_revocations` and
 * publishes every notification on the Redis channel, numbered per stream,
 * plus a heartbeat every `heartbeatMs` carrying the last number. Run it on
 * one or a few nodes (two or three for availability: subscribers take
 * duplicates in their stride); every other node runs its revocation list on
 * `createRedisTransport` and needs no LISTEN connection of its own.
 *
 * A stream is one LISTEN connection: after a reconnect to Postgres the relay
 * starts a new stream, because notifications sent while it was away are
 * gone, and subscribers resync from the tables unless another relay covered
 * them. A message Redis refuses still uses up its number, so subscribers see
 * the hole. No heartbeat goes out while Postgres is unreachable, so
 * subscribers notice a relay that can no longer vouch for anything.
 *
 * `ioredis` is imported only when the relay starts.
 *
 * @example
 * ```ts
 * const relay = createRevocationRelay({ url: process.env.DATABASE_URL, redis: process.env.REDIS_URL });
 * await relay.start();
 * process.on('SIGTERM', () => relay.stop());
 * ```
 */
export function createRevocationRelay(options: RevocationRelayOptions): RevocationRelay {
  if (
    options.url === undefined &&
    options.pool === undefined &&
    options.listenClient === undefined
  ) {
    throw new RlsKitError('ERR_CONFIG', 'createRevocationRelay needs url, pool or listenClient');
  }
  const channel = checkChannel(options.channel ?? DEFAULT_REDIS_CHANNEL);
  const signing = envelopeSigning(options.secret, channel, 'createRevocationRelay');
  /** Send times strictly increase (subscribers drop a stream's message that is not newer). */
  let lastSent = 0;
  const stamp = () => {
    lastSent = Math.max(Date.now(), lastSent + 1);
    return lastSent;
  };
  const heartbeatMs = options.heartbeatMs ?? 1000;
  if (!(heartbeatMs >= 10)) throw new RlsKitError('ERR_CONFIG', 'heartbeatMs must be >= 10');
  const backoffInitial = options.backoffMs?.initial ?? 100;
  const backoffMax = options.backoffMs?.max ?? 5000;
  const listen = createPostgresTransport({
    url: options.url,
    pool: options.pool,
    listenClient: options.listenClient,
  });

  let redis: Redis | undefined;
  let conn: RevocationTransportConnection | undefined;
  let stream: string | undefined;
  let seq = 0;
  let forwarded = 0;
  let stopped = true;
  let attempts = 0;
  let generation = 0;
  let probing = false;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;

  const send = (text: string) => {
    // Never awaited in order: ioredis writes commands in call order on its one connection.
    redis?.publish(channel, text).catch(() => undefined);
  };

  const lose = (gen: number) => {
    if (gen !== generation) return;
    generation++;
    const c = conn;
    conn = undefined;
    stream = undefined;
    probing = false;
    c?.close().catch(() => undefined);
    if (!stopped) scheduleReconnect();
  };

  const connect = async () => {
    const gen = ++generation;
    const id = randomBytes(12).toString('base64url');
    let n = 0;
    seq = 0;
    const c = await listen.open({
      message: (payload) => {
        if (gen !== generation) return;
        n++;
        seq = n;
        forwarded++;
        send(encodeRedisEnvelope({ stream: id, seq: n, payload }, signing, stamp()));
      },
      resync: () => undefined,
      lost: () => lose(gen),
    });
    if (gen !== generation) {
      await c.close();
      throw new Error('superseded');
    }
    conn = c;
    stream = id;
    attempts = 0;
    send(encodeRedisEnvelope({ stream: id, seq }, signing, stamp()));
  };

  const scheduleReconnect = () => {
    if (reconnectTimer !== undefined || stopped) return;
    const delay = Math.min(backoffMax, backoffInitial * 2 ** attempts) * (0.5 + Math.random() / 2);
    attempts++;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      if (!stopped) connect().catch(() => scheduleReconnect());
    }, delay);
    reconnectTimer.unref();
  };

  const heartbeat = () => {
    const c = conn;
    const id = stream;
    if (c === undefined || id === undefined) return;
    const gen = generation;
    if (probing) {
      lose(gen); // the last probe never answered: Postgres is gone or hangs
      return;
    }
    probing = true;
    c.probe().then(
      () => {
        if (gen !== generation) return;
        probing = false;
        // The number read now: every notification before the probe's answer was sent before this.
        send(encodeRedisEnvelope({ stream: id, seq }, signing, stamp()));
      },
      () => lose(gen),
    );
  };

  return {
    async start() {
      if (!stopped) return;
      stopped = false;
      try {
        redis = await newRedisClient(options.redis, {
          connectTimeout: 2000,
          // A heartbeat held back while Redis is away would vouch for a past moment: drop it instead.
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
        });
        redis.on('error', () => undefined);
        await redis.connect();
        await connect();
      } catch (err) {
        stopped = true;
        generation++;
        redis?.disconnect();
        redis = undefined;
        throw new RlsKitError(
          'ERR_REVOCATION_UNAVAILABLE',
          'the revocation relay could not connect to Postgres and Redis',
          { cause: err },
        );
      }
      heartbeatTimer = setInterval(heartbeat, heartbeatMs);
      heartbeatTimer.unref();
    },

    async stop() {
      stopped = true;
      if (reconnectTimer !== undefined) clearTimeout(reconnectTimer);
      if (heartbeatTimer !== undefined) clearInterval(heartbeatTimer);
      reconnectTimer = heartbeatTimer = undefined;
      generation++;
      const c = conn;
      conn = undefined;
      stream = undefined;
      await c?.close().catch(() => undefined);
      const r = redis;
      redis = undefined;
      if (r !== undefined) await r.quit().catch(() => r.disconnect());
    },

    get stream() {
      return stream;
    },
    get forwarded() {
      return forwarded;
    },
  };
}
