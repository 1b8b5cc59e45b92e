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
 */

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
 * Serialises a message of the Redis channel.
 *
 * @example
 * ```ts
 * redis.publish(channel, encodeRedisEnvelope({ stream, seq: ++seq, payload }));
 * ```
 */
export function encodeRedisEnvelope(e: RedisEnvelope): string {
  const doc: { r?: string; s?: number; p?: string } = {};
  if (e.stream !== undefined) {
    doc.r = e.stream;
    doc.s = e.seq ?? 0;
  }
  if (e.payload !== undefined) doc.p = e.payload;
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
