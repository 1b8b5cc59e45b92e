import type { Redis } from 'ioredis';
import { RlsKitError } from '../errors.js';
import {
  checkChannel,
  DEFAULT_REDIS_CHANNEL,
  newRedisClient,
  type RedisConnection,
} from './redis-client.js';
import {
  decodeRedisEnvelope,
  encodeRedisEnvelope,
  envelopeSigning,
  type RedisEnvelope,
  verifyRedisEnvelope,
} from './redis-envelope.js';
import type {
  RevocationTransport,
  RevocationTransportConnection,
  RevocationTransportHandlers,
} from './transport.js';

/**
 * Options of {@link createRedisTransport}.
 *
 * @example
 * ```ts
 * const options: RedisTransportOptions = { redis: process.env.REDIS_URL, channel: 'rls_kit:revocations' };
 * ```
 */
export interface RedisTransportOptions {
  /** Redis (URL or ioredis options); default `redis://127.0.0.1:6379`. */
  redis?: RedisConnection;
  /** The channel the relays publish on (default `rls_kit:revocations`). */
  channel?: string;
  /**
   * How long a relay may stay silent before it counts as gone (default
   * 3000 ms; keep it above twice the relays' `heartbeatMs`). With no relay
   * left the list is out of sync, and fails closed past its `staleAfterMs`.
   */
  relayTimeoutMs?: number;
  /** Redis connect timeout in ms (default 2000). */
  connectTimeoutMs?: number;
  /**
   * The relays' shared secret (≥ 32 bytes). With it, a message counts only
   * when its HMAC matches and it was sent within `relayTimeoutMs` of this
   * node's clock; anything else on the channel is ignored (and counted in
   * the error when no relay is heard), so a forged or replayed heartbeat
   * cannot keep a list "in sync". The list's own announcements are signed too.
   */
  secret?: string | Uint8Array;
}

interface RelayState {
  /** Last number seen on the stream. */
  seq: number;
  /** When the stream was last heard (epoch ms). */
  heard: number;
  /** Heard before the current snapshot began: the snapshot plus this stream is complete. */
  covering: boolean;
  /** The last signed message's send time (with a secret). */
  sentAt?: number | undefined;
}

/**
 * The Redis transport for many API nodes: each node's revocation list
 * SUBSCRIBEs to one Redis channel instead of holding a LISTEN connection to
 * Postgres, and a few relays (`createRevocationRelay`) LISTEN on
 * `rls_kit_revocations` and publish every notification there. Postgres
 * stays the source of truth: the list loads its snapshots from the tables,
 * through its pool.
 *
 * Completeness, not hope: relays number their messages per stream and send
 * heartbeats carrying the last number. A list is in sync while at least one
 * relay it heard before its last snapshot (a *covering* relay) has delivered
 * every number since. A hole in a covering stream, or its last covering relay
 * falling silent for `relayTimeoutMs`, makes the list reload the tables
 * while another relay is live, or lose sync (fail closed past
 * `staleAfterMs`) when none is. A dropped Redis connection is a lost sync
 * too; the list reconnects with backoff and reloads. Extra relays only add
 * duplicates, which are harmless.
 *
 * Revocations made through the list's own API are also published at once,
 * so other nodes need not wait for the relay.
 *
 * `ioredis` is imported only when the transport connects.
 *
 * @example
 * ```ts
 * const list = createRevocationList({
 *   url: process.env.DATABASE_URL,
 *   transport: createRedisTransport({ redis: process.env.REDIS_URL }),
 * });
 * await list.start(); // resolves once a relay has been heard and the tables are loaded
 * ```
 */
export function createRedisTransport(options: RedisTransportOptions = {}): RevocationTransport {
  const channel = checkChannel(options.channel ?? DEFAULT_REDIS_CHANNEL);
  const relayTimeoutMs = options.relayTimeoutMs ?? 3000;
  if (!(relayTimeoutMs > 0)) throw new RlsKitError('ERR_CONFIG', 'relayTimeoutMs must be > 0');
  const connectTimeout = options.connectTimeoutMs ?? 2000;
  const signing = envelopeSigning(options.secret, channel, 'createRedisTransport');
  let publisher: Promise<Redis> | undefined;

  const getPublisher = () => {
    publisher ??= newRedisClient(options.redis, {
      connectTimeout,
      // Fail fast while Redis is away: an announcement is only a head start.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
    }).then(async (client) => {
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch (err) {
        client.disconnect();
        publisher = undefined; // try afresh next time
        throw err;
      }
      return client;
    });
    return publisher;
  };

  return {
    name: 'redis',

    async open(handlers: RevocationTransportHandlers): Promise<RevocationTransportConnection> {
      getPublisher().catch(() => undefined); // connected before the first revocation needs it
      const sub = await newRedisClient(options.redis, {
        connectTimeout,
        // No reconnecting behind the list's back: messages missed while away
        // must end in a resync, which the list does on `lost`.
        retryStrategy: () => null,
        autoResubscribe: false,
        maxRetriesPerRequest: 0,
      });
      const relays = new Map<string, RelayState>();
      let closed = false;
      let opened = false;
      /** When the last covering relay was last heard: the fail-closed bound counts from there. */
      let lastCovered = Date.now();
      /** While opening: settles the wait for the first relay. */
      let firstRelay: ((error?: unknown) => void) | undefined;
      /** Messages ignored for a missing or wrong MAC or a stale time (with a secret). */
      let unauthenticated = 0;
      const noRelay = (what: string) =>
        new RlsKitError(
          'ERR_REVOCATION_UNAVAILABLE',
          `no revocation relay heard on Redis channel ${channel} ${what}: run createRevocationRelay on at least one node` +
            (unauthenticated > 0
              ? ` (${unauthenticated} messages failed authentication: give relays and lists the same secret, and keep their clocks within ${relayTimeoutMs} ms)`
              : ''),
        );

      const lost = (error: unknown, since?: number) => {
        if (closed) return;
        closed = true;
        sub.disconnect();
        if (opened) handlers.lost(error, since);
        else firstRelay?.(error);
      };

      /** After a covering stream broke or went silent: still covered, reload, or lost. */
      const evaluate = (now: number) => {
        for (const [stream, st] of relays) {
          if (now - st.heard <= relayTimeoutMs) continue;
          if (st.covering) lastCovered = Math.max(lastCovered, st.heard);
          relays.delete(stream);
        }
        const states = [...relays.values()];
        if (states.some((st) => st.covering)) return;
        if (states.length > 0) handlers.resync();
        else lost(noRelay(`for ${relayTimeoutMs} ms`), lastCovered);
      };

      sub.on('error', () => undefined); // 'close' follows and says it
      sub.on('close', () => lost(new Error('the Redis connection closed')));
      sub.on('message', (ch: string, text: string) => {
        if (closed || ch !== channel) return;
        let e: RedisEnvelope | undefined;
        let sentAt: number | undefined;
        if (signing !== undefined) {
          const signed = verifyRedisEnvelope(text, signing, relayTimeoutMs, Date.now());
          if (signed === undefined) {
            unauthenticated++; // not from anyone holding the secret: no say at all
            return;
          }
          e = signed;
          sentAt = signed.sentAt;
        } else {
          e = decodeRedisEnvelope(text);
        }
        if (e === undefined) {
          if (opened) handlers.resync(); // not ours to guess: ask the tables
          return;
        }
        if (e.stream === undefined) {
          if (opened && e.payload !== undefined) handlers.message(e.payload);
          return;
        }
        const now = Date.now();
        const seq = e.seq ?? 0;
        let st = relays.get(e.stream);
        if (st === undefined) {
          // A stream joined mid-way: its numbers count from here; it covers from the next snapshot.
          st = { seq, heard: now, covering: false, sentAt };
          relays.set(e.stream, st);
          if (opened && e.payload !== undefined) handlers.message(e.payload);
          firstRelay?.();
          return;
        }
        if (sentAt !== undefined) {
          // A replay of this stream's own message (a relay's times only rise): ignore it.
          if (st.sentAt !== undefined && sentAt <= st.sentAt) return;
          st.sentAt = sentAt;
        }
        st.heard = now;
        if (st.covering) lastCovered = now;
        // A payload must carry the next number, a heartbeat the last one. Anything
        // else is a hole (missed messages) or a rewind (a forged or confused
        // sender): never skip a message as a "duplicate", ask the tables instead.
        const expected = e.payload === undefined ? st.seq : st.seq + 1;
        st.seq = seq;
        if (opened && e.payload !== undefined) handlers.message(e.payload);
        if (seq !== expected && st.covering) {
          st.covering = false;
          if (opened) evaluate(now);
        }
      });

      try {
        await sub.connect();
        await sub.subscribe(channel);
        // A subscription without a relay would be silent, not in sync: wait until one speaks.
        await new Promise<void>((resolve, reject) => {
          if (relays.size > 0) return resolve();
          const timer = setTimeout(() => {
            reject(noRelay(`within ${relayTimeoutMs} ms`));
          }, relayTimeoutMs);
          firstRelay = (error?: unknown) => {
            clearTimeout(timer);
            if (error === undefined) resolve();
            else reject(error);
          };
        });
        firstRelay = undefined;
      } catch (err) {
        closed = true;
        sub.disconnect();
        throw err;
      }
      opened = true;

      return {
        snapshotStarting() {
          const now = Date.now();
          for (const st of relays.values()) {
            if (now - st.heard <= relayTimeoutMs) st.covering = true;
          }
          lastCovered = now;
        },
        async probe() {
          if (closed) throw new Error('the Redis connection is closed');
          evaluate(Date.now());
          if (closed) throw new Error('no revocation relay is live');
          await sub.ping();
        },
        async close() {
          closed = true;
          sub.disconnect();
        },
      };
    },

    async publish(payload: string) {
      const client = await getPublisher();
      await client.publish(channel, encodeRedisEnvelope({ payload }, signing));
    },

    async dispose() {
      const p = publisher;
      publisher = undefined;
      if (p !== undefined) (await p).disconnect();
    },
  };
}
