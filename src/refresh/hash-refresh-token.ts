import { createHash } from 'node:crypto';
import { REFRESH_TOKEN_PREFIX } from './generate-refresh-token.js';

// The prefix and exactly 43 base64url characters (32 bytes, unpadded).
const FORMAT = new RegExp(`^${REFRESH_TOKEN_PREFIX}[A-Za-z0-9_-]{43}$`);

/**
 * The SHA-256 of a refresh token, the key it is stored and looked up under
 * (`rls_kit.refresh_tokens.hash`), or `undefined` when the value does not
 * have the shape of a kit refresh token (so garbage never reaches the
 * database).
 *
 * A plain hash, not a slow password hash, is enough: the token holds 256
 * random bits, so the digest cannot be reversed by guessing. The lookup is by
 * the digest through the primary key, so no comparison of secrets runs in
 * application code whose timing could leak them.
 *
 * @example
 * ```ts
 * const hash = hashRefreshToken(generateRefreshToken()); // 32-byte Buffer
 * hashRefreshToken('not a token'); // undefined
 * ```
 */
export function hashRefreshToken(token: unknown): Buffer | undefined {
  if (typeof token !== 'string' || !FORMAT.test(token)) return undefined;
  return createHash('sha256').update(token, 'utf8').digest();
}
