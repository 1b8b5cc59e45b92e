import type { KeyObject } from 'node:crypto';
import type { CryptoKey, JWK } from 'jose';

/**
 * The signature algorithms the kit signs and verifies with. Each key is pinned
 * to exactly one of them: a verifier takes the algorithm from the key, never
 * from the token's header.
 *
 * @example
 * ```ts
 * const alg: SigningAlg = 'ES256';
 * ```
 */
export type SigningAlg = 'ES256' | 'RS256' | 'EdDSA' | 'HS256';

/** Every {@link SigningAlg}, in the order the CLI lists them (the default first). */
export const SIGNING_ALGS: readonly SigningAlg[] = ['ES256', 'RS256', 'EdDSA', 'HS256'];

/**
 * Where a key is in its life:
 * - `standby`: published in the JWKS (so caches learn it) but not signing yet;
 * - `active`: signs new tokens (exactly one per keyring);
 * - `retired`: no longer signs, still verifies until `rls_kit_not_after`
 *   (when the last token it signed has expired), then dropped.
 *
 * @example
 * ```ts
 * const state: KeyState = 'standby';
 * ```
 */
export type KeyState = 'standby' | 'active' | 'retired';

/**
 * One key of a keyring file: a private JWK (RFC 7517) plus the kit's state
 * members. RFC 7517 §4 says members a reader does not understand are
 * ignored, so a keyring key still imports in any JOSE library.
 *
 * Times are ISO 8601 strings so that a person reading the file can tell when
 * a key was made, published, and when it stops verifying.
 *
 * @example
 * ```json
 * { "kty": "EC", "crv": "P-256", "x": "…", "y": "…", "d": "…",
 *   "kid": "Qz1iV3Nn0kY", "alg": "ES256", "use": "sig",
 *   "rls_kit_state": "active", "rls_kit_created_at": "2025-01-01T00:00:00.000Z" }
 * ```
 */
export interface KeyringKey extends JWK {
  kid: string;
  alg: SigningAlg;
  use: 'sig';
  rls_kit_state: KeyState;
  /** When the key was generated or imported (ISO 8601). */
  rls_kit_created_at: string;
  /** Retired keys only: after this instant (ISO 8601) the key is dropped and verifies nothing. */
  rls_kit_not_after?: string;
}

/**
 * A keyring: the file format is exactly this object, a private JWK Set
 * (`{"keys": [...]}`) whose keys carry their state.
 *
 * @example
 * ```ts
 * const ring: Keyring = JSON.parse(await readFile('keys.json', 'utf8'));
 * ```
 */
export interface Keyring {
  keys: KeyringKey[];
}

/**
 * A key ready to verify with: imported once (no per-token import cost) and
 * pinned to its algorithm. The verifier looks keys up by `kid` only among
 * these and uses `alg` from here, never from the token.
 *
 * `key` is a non-extractable `CryptoKey` (asymmetric keys: public part
 * only; HS256: an HMAC key, imported once because jose re-imports raw
 * `Uint8Array` secrets on every call, and already checked with
 * `assertStrongSecret`). The union admits `KeyObject` and `Uint8Array` so
 * other sources (a legacy secret, a remote JWKS) can produce the same type.
 *
 * @example
 * ```ts
 * const keys = await toVerificationKeys(ring);
 * const k = keys.find((v) => v.kid === header.kid);
 * if (k) await jwtVerify(token, k.key, { algorithms: [k.alg] });
 * ```
 */
export interface VerificationKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly key: CryptoKey | KeyObject | Uint8Array;
  /** The key's state when the list was built (`standby` keys verify too: they are published). */
  readonly state: KeyState;
  /** Epoch seconds after which a retired key must no longer verify; absent for standby/active keys. */
  readonly notAfter?: number;
}

/**
 * The keyring's active key, imported once, for minting.
 *
 * @example
 * ```ts
 * const sk: SigningKey = await signingKey(ring);
 * await new SignJWT(claims).setProtectedHeader({ alg: sk.alg, kid: sk.kid }).sign(sk.key);
 * ```
 */
export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly key: CryptoKey | KeyObject | Uint8Array;
}
