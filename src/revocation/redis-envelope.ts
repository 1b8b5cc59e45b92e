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
 * was sent; a relay's times increase strictly per stream) and `"m":"<mac>"`,
 * HMAC-SHA256 over `[channel, r, s, t, p]` (as JSON, absent members as
 * null). A subscriber with the secret ignores a message that has other or
 * null members, a MAC that does not match, a time further than its bound
 * from its own clock, or — on a stream — a time not after the stream's last
 * one; so whoever can publish on the channel but lacks the secret can
 * neither forge a heartbeat (vouch for a dead relay), replay one, nor make
 * lists reload.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { RlsKitError } from '../errors.js';
import { parseJsonObject } from './parse-json-object.js';

const MIN_SECRET_BYTES = 32;

/**
 * What signing needs for a shared secret on a channel, or undefined without
 * a secret.
 *
 * @throws RlsKitError `ERR_CONFIG` for a secret shorter than 32 bytes.
 * @example
 * ```ts
 * const signing = envelopeSigning(process.env.RLS_KIT_REDIS_SECRET, channel, 'createRedisTransport');
 * ```
 */
export function envelopeSigning(
  secret: string | Uint8Array | undefined,
  channel: string,
  where: string,
): EnvelopeSigning | undefined {
  if (secret === undefined) return undefined;
  const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (key.length < MIN_SECRET_BYTES) {
    throw new RlsKitError(
      'ERR_CONFIG',
      `${where}: secret must be at least ${MIN_SECRET_BYTES} bytes (e.g. openssl rand -base64 32), the same on every relay and node`,
    );
  }
  return { key, channel };
}

/** What signing needs: the key, and the channel (so a message cannot be moved to another). */
export interface EnvelopeSigning {
  readonly key: Buffer;
  readonly channel: string;
}

function mac(
  signing: EnvelopeSigning,
  r: string | undefined,
  s: number | undefined,
  t: number,
  p: string | undefined,
): Buffer {
  return createHmac('sha256', signing.key)
    .update(JSON.stringify([signing.channel, r ?? null, s ?? null, t, p ?? null]))
    .digest();
}

/**
 * Parses and authenticates a signed message in one strict pass: only the
 * members `r s p t m`, none of them null, a valid MAC under the key and the
 * channel, and a send time within `maxAgeMs` of `now` (either way: clocks
 * differ a little). Undefined for anything else.
 *
 * @example
 * ```ts
 * const e = verifyRedisEnvelope(text, { key, channel }, 3000, Date.now());
 * if (e === undefined) return; // not from anyone holding the secret, or stale
 * ```
 */
export function verifyRedisEnvelope(
  text: string,
  signing: EnvelopeSigning,
  maxAgeMs: number,
  now: number,
): SignedRedisEnvelope | undefined {
  const doc = parseJsonObject(text, MAX_PAYLOAD);
  if (doc === undefined) return undefined;
  for (const k of Object.keys(doc)) if (!SIGNED_KEYS.has(k)) return undefined;
  const { t, m } = doc;
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || Math.abs(now - t) > maxAgeMs) {
    return undefined;
  }
  if (typeof m !== 'string') return undefined;
  const e = envelopeOf(doc);
  if (e === undefined) return undefined;
  const given = Buffer.from(m, 'base64url');
  const expected = mac(signing, e.stream, e.seq, t, e.payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  return { ...e, sentAt: t };
}

const SIGNED_KEYS: ReadonlySet<string> = new Set(['r', 's', 'p', 't', 'm']);

/** A message that passed {@link verifyRedisEnvelope}, with the time its sender stamped on it. */
export interface SignedRedisEnvelope extends RedisEnvelope {
  readonly sentAt: number;
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
export function encodeRedisEnvelope(
  e: RedisEnvelope,
  signing?: EnvelopeSigning,
  now = Date.now(),
): string {
  const doc: { r?: string; s?: number; p?: string; t?: number; m?: string } = {};
  if (e.stream !== undefined) {
    doc.r = e.stream;
    doc.s = e.seq ?? 0;
  }
  if (e.payload !== undefined) doc.p = e.payload;
  if (signing !== undefined) {
    doc.t = now;
    doc.m = mac(signing, doc.r, doc.s, now, doc.p).toString('base64url');
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
  const doc = parseJsonObject(text, MAX_PAYLOAD);
  return doc === undefined ? undefined : envelopeOf(doc);
}

/** The message in a parsed object's `r`, `s` and `p` members (others are not looked at). */
function envelopeOf(doc: Record<string, unknown>): RedisEnvelope | undefined {
  const { r, s, p } = doc;
  if (p !== undefined && typeof p !== 'string') return undefined;
  if (r === undefined) {
    if (s !== undefined || p === undefined) return undefined;
    return { payload: p };
  }
  if (typeof r !== 'string' || !STREAM_RE.test(r)) return undefined;
  if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) return undefined;
  return p === undefined ? { stream: r, seq: s } : { stream: r, seq: s, payload: p };
}
