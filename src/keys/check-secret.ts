import { RlsKitError } from '../errors.js';

/** HS256 needs at least as many key bytes as the hash output (RFC 7518 §3.2). */
export const MIN_HMAC_SECRET_BYTES = 32;

/**
 * Well-known secrets from tutorials and local development defaults. A token
 * signed with one of these can be forged by anyone who read the same page.
 */
const KNOWN_WEAK = new Set([
  'super-secret-jwt-token-with-at-least-32-characters-long',
  'your-super-secret-jwt-token-with-at-least-32-characters-long',
  'your-256-bit-secret',
  'secretsecretsecretsecretsecretsecret',
  'changemechangemechangemechangeme',
]);

/**
 * Refuses HMAC secrets that are too short or visibly low-entropy, with
 * `ERR_KEY_WEAK`. Used when generating, importing, minting and verifying, so
 * a weak secret can never be used on either side.
 *
 * "Visibly low-entropy" means: a published default, fewer than 10 distinct
 * bytes, a short pattern repeated, or under 128 bits by a per-byte Shannon
 * estimate. Random secrets of 32+ bytes (raw, hex or base64) pass easily.
 * The message never includes the secret.
 *
 * @example
 * ```ts
 * assertStrongSecret(crypto.getRandomValues(new Uint8Array(32))); // ok
 * assertStrongSecret('secret'); // throws RlsKitError ERR_KEY_WEAK
 * ```
 */
export function assertStrongSecret(secret: Uint8Array | string, what = 'HS256 secret'): void {
  const bytes = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  if (bytes.length < MIN_HMAC_SECRET_BYTES) {
    throw new RlsKitError(
      'ERR_KEY_WEAK',
      `the ${what} is ${bytes.length} bytes; use at least ${MIN_HMAC_SECRET_BYTES} random bytes (rls-kit keys generate --alg HS256)`,
    );
  }
  const reason = weakness(bytes);
  if (reason) {
    throw new RlsKitError(
      'ERR_KEY_WEAK',
      `the ${what} is ${reason}; use at least ${MIN_HMAC_SECRET_BYTES} random bytes (rls-kit keys generate --alg HS256)`,
    );
  }
}

function weakness(bytes: Uint8Array): string | undefined {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (KNOWN_WEAK.has(text.toLowerCase())) return 'a published default';
  const counts = new Map<number, number>();
  for (const b of bytes) counts.set(b, (counts.get(b) ?? 0) + 1);
  if (counts.size < 10) return 'made of fewer than 10 distinct characters';
  if (isRepetition(bytes)) return 'a short pattern repeated';
  let bitsPerByte = 0;
  for (const n of counts.values()) {
    const p = n / bytes.length;
    bitsPerByte -= p * Math.log2(p);
  }
  if (bitsPerByte * bytes.length < 128) return 'low in entropy (under 128 bits estimated)';
  return undefined;
}

/** True when the bytes are one unit of at most a quarter of their length, repeated. */
function isRepetition(bytes: Uint8Array): boolean {
  const n = bytes.length;
  for (let unit = 1; unit <= n / 4; unit++) {
    let same = true;
    for (let i = unit; i < n && same; i++) same = bytes[i] === bytes[i - unit];
    if (same) return true;
  }
  return false;
}
