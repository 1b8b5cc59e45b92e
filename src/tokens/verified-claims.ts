/**
 * The claims of a token that passed verification. The registered claims the
 * verifier requires are typed; everything else is `unknown` until the claim
 * schema (or the caller) checks it.
 *
 * The object is deeply frozen: verified claims may be shared through the
 * verification cache, and a caller mutating them must not change what the
 * next caller sees.
 *
 * @example
 * ```ts
 * const claims: VerifiedClaims = await verifier.verify(token);
 * const orgId = typeof claims.org_id === 'string' ? claims.org_id : undefined;
 * ```
 */
export interface VerifiedClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | readonly string[];
  /** Expiry, seconds since the epoch. */
  readonly exp: number;
  /** Issued at, seconds since the epoch. */
  readonly iat: number;
  readonly nbf?: number;
  /** Present on the kit's own tokens (required unless `requireJti: false`). */
  readonly jti?: string;
  readonly [claim: string]: unknown;
}
