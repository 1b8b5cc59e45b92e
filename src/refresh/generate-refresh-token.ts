import { randomBytes } from 'node:crypto';

/**
 * Prefix of every kit refresh token: `rk1_` (refresh kit, format 1). Secret
 * scanners (GitHub push protection, gitleaks) can match on it, and it tells
 * a refresh token apart from a JWT at a glance.
 */
export const REFRESH_TOKEN_PREFIX = 'rk1_';

/** Random bytes in a refresh token: 256 bits, beyond any guessing. */
export const REFRESH_TOKEN_BYTES = 32;

/**
 * A fresh opaque refresh token: {@link REFRESH_TOKEN_PREFIX} followed by 256
 * random bits in base64url (47 characters in all). It carries no data, so
 * nothing can be learnt from it; the database keeps only its SHA-256.
 *
 * @example
 * ```ts
 * const token = generateRefreshToken(); // 'rk1_Q2x…' (47 characters)
 * ```
 */
export function generateRefreshToken(): string {
  return REFRESH_TOKEN_PREFIX + randomBytes(REFRESH_TOKEN_BYTES).toString('base64url');
}
