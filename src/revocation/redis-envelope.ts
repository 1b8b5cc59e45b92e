/**
 * The messages of the Redis fan-out, one JSON object per PUBLISH on the
 * channel. A relay numbers what it forwards per stream (one stream per
 * LISTEN connection of one relay), so a subscriber can tell a complete
 * stream from one with holes:
 *
 * - `{"r":"<stream>","s":<seq>,"p":"<payload>"}` a notification, forwarded
 * - `{"r":"<stream>","s":<seq>}`                 a heartbeat: the stream is
 *   alive and its last number is `s`
 * - `{"p":"<payload>"}`                          a revocation a node made
 *   through the kit, announced at once (not numbered: a hint, the relayed
 *   notification follows)
 *
 * `payload` is the text of the `rls_kit_revocations` notification, parsed
 * by the list as if it came from Postgres.
 *
 * With a shared secret every message also carries `"t":<epoch ms>` (when it
 * was sent) and `"m":"<mac>"`, HMAC-SHA256 over `[r, s, t, p]` (as JSON,
 * absent members as null): a subscriber with the secret ignores a message
 * whose MAC does not match or whose time is further than its bound from its
 * own clock, so whoever can publish on the channel but lacks the secret can
 * neither forge a heartbeat (vouch for a dead relay) nor replay an old one.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { RlsKitError } from '../errors.js';

const MIN_SECRET_BYTES = 32;

/**
 * The HMAC key of a shared secret, or undefined without one.
 *
 * @throws RlsKitError `ERR_CONFIG` for a secret shorter than 32 bytes.
 * @example
 * ```ts
 * const key = envelopeKey(process.env.RLS_KIT_REDIS_SECRET, 'createRedisTransport');
 * ```
 */
export function envelopeKey(
  secret: string | Uint8Array | undefined,
  where: string,
): Buffer | undefined {
  if (secret === undefined) return undefined;
  const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (key.length < MIN_SECRET_BYTES) {
    throw new RlsKitError(
      'ERR_CONFIG',
      `${where}: secret must be at least ${MIN_SECRET_BYTES} bytes (e.g. openssl rand -base64 32), the same on every relay and node`,
    );
  }
  return key;
}

function mac(key: Buffer, r: unknown, s: unknown, t: number, p: unknown): Buffer {
  return createHmac('sha256', key)
    .update(JSON.stringify([r ?? null, s ?? null, t, p ?? null]))
    .digest();
}

/**
 * Whether a message of the channel carries a valid MAC under `key` and was
 * sent within `maxAgeMs` of `now` (either way: clocks differ a little).
 *
 * @example
 * ```ts
 * if (!verifyRedisEnvelope(text, key, 3000, Date.now())) return; // not from a relay that has the secret
 * ```
 */
export function verifyRedisEnvelope(
  text: string,
  key: Buffer,
  maxAgeMs: number,
  now: number,
): boolean {
  if (text.length > MAX_PAYLOAD) return false;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return false;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return false;
  const { r, s, p, t, m } = doc as Record<string, unknown>;
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || Math.abs(now - t) > maxAgeMs) {
    return false;
  }
  if (typeof m !== 'string') return false;
  const given = Buffer.from(m, 'base64url');
  const expected = mac(key, r, s, t, p);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * One parsed message of the Redis channel.
 *
 * @example
 * ```ts
 * const e: RedisEnvelope = { stream: 'x1', seq: 7, payload: '{"t":"sub","op":"+","v":[]}' };
 * ```
 */
export interface RedisEnvelope {
  /** The relay's stream, absent on a node's direct announcement. */
  readonly stream?: string;
  /** Position in the stream (with `stream`). */
  readonly seq?: number;
  /** The notification, absent on a heartbeat. */
  readonly payload?: string;
}

/** Streams are random base64url ids; anything longer or stranger is not ours. */
const STREAM_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** A NOTIFY payload is below 8000 bytes; a JSON-escaped one stays well below this. */
const MAX_PAYLOAD = 64 * 1024;

/**
 * Serialises a message of the Redis channel, signed when given the shared
 * secret's key.
 *
 * @example
 * ```ts
 * redis.publish(channel, encodeRedisEnvelope({ stream, seq: ++seq, payload }));
 * ```
 */
export function encodeRedisEnvelope(e: RedisEnvelope, key?: Buffer, now = Date.now()): string {
  const doc: { r?: string; s?: number; p?: string; t?: number; m?: string } = {};
  if (e.stream !== undefined) {
    doc.r = e.stream;
    doc.s = e.seq ?? 0;
  }
  if (e.payload !== undefined) doc.p = e.payload;
  if (key !== undefined) {
    doc.t = now;
    doc.m = mac(key, doc.r, doc.s, now, doc.p).toString('base64url');
  }
  return JSON.stringify(doc);
}

/**
 * Parses a message of the Redis channel; `undefined` for anything malformed
 * (the subscriber then resyncs rather than guess).
 *
 * @example
 * ```ts
 * const e = decodeRedisEnvelope('{"r":"x1","s":3}'); // a heartbeat of stream x1 at 3
 * ```
 */
export function decodeRedisEnvelope(text: string): RedisEnvelope | undefined {
  if (text.length > MAX_PAYLOAD) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return undefined;
  const { r, s, p } = doc as { r?: unknown; s?: unknown; p?: unknown };
  if (p !== undefined && typeof p !== 'string') return undefined;
  if (r === undefined) {
    if (s !== undefined || p === undefined) return undefined;
    return { payload: p };
  }
  if (typeof r !== 'string' || !STREAM_RE.test(r)) return undefined;
  if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) return undefined;
  return p === undefined ? { stream: r, seq: s } : { stream: r, seq: s, payload: p };
}
