import type { VerifiedClaims } from './verified-claims.js';

/**
 * The verifier's only view of revocation: one question per verified token,
 * cache hits included. The revocation list (Postgres + LISTEN/NOTIFY) and the
 * CLI's database check implement it; tests pass a `Set`.
 *
 * Answer synchronously whenever you can (an in-memory list): the verifier's
 * sync fast path, `verifyCached`, can only use a boolean; a Promise sends the
 * caller to the async `verify`. Throwing or rejecting fails closed: the token
 * is refused with `ERR_REVOCATION_UNAVAILABLE`, never accepted.
 *
 * @example
 * ```ts
 * const revoked = new Set<string>();
 * const check: RevocationCheck = { isRevoked: (claims) => revoked.has(String(claims.jti)) };
 * const verifier = createVerifier({ issuer, audience, keys, revocation: check });
 * ```
 */
export interface RevocationCheck {
  /** True when the token these claims came from has been revoked. */
  isRevoked(claims: VerifiedClaims): boolean | Promise<boolean>;
}
