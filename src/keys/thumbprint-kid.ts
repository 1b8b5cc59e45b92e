import { calculateJwkThumbprint, type JWK } from 'jose';

/** How many characters of the thumbprint make a kid (DESIGN.md: 11, i.e. 66 bits). */
export const KID_LENGTH = 11;

/**
 * The kit's default `kid`: the first 11 characters of the key's RFC 7638
 * SHA-256 thumbprint (base64url). Derived from the key itself, so the same
 * key always gets the same kid and a kid reveals nothing but a hash prefix.
 * For HS256 (`oct`) keys the thumbprint covers `k`; only its first 66 bits
 * appear, which does not help guessing a 256-bit secret.
 *
 * @example
 * ```ts
 * const kid = await thumbprintKid({ kty: 'EC', crv: 'P-256', x: '…', y: '…' }); // 'Qz1iV3Nn0kY'
 * ```
 */
export async function thumbprintKid(jwk: JWK): Promise<string> {
  const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
  return thumbprint.slice(0, KID_LENGTH);
}
