import type { JSONWebKeySet, JWK } from 'jose';
import { PUBLIC_JWK_MEMBERS } from './jwk-material.js';
import { createKeyring } from './keyring.js';
import type { Keyring } from './types.js';

/** Options of {@link publicJwks}. */
export interface PublicJwksOptions {
  /** The current time (epoch ms); retired keys past `rls_kit_not_after` are left out. */
  now?: number;
}

/**
 * The keyring's public JWK Set, to serve at `/.well-known/jwks.json` or hand
 * to verifiers: standby, active and still-valid retired keys, each with
 * only `kty`, `crv`, `x`, `y`, `n`, `e`, `kid`, `alg`, `use`.
 *
 * Built from an allowlist, so no private member (`d`, `p`, `q`, `dp`, `dq`,
 * `qi`), no symmetric `k`, and nothing the kit does not know can leak; HS256
 * keys are left out entirely (a symmetric key has no public part).
 *
 * @example
 * ```ts
 * res.json(publicJwks(ring));
 * ```
 */
export function publicJwks(keyring: Keyring, options: PublicJwksOptions = {}): JSONWebKeySet {
  const ring = createKeyring(keyring.keys);
  const now = options.now ?? Date.now();
  const keys: JWK[] = [];
  for (const key of ring.keys) {
    if (key.kty === 'oct' || key.alg === 'HS256') continue;
    if (
      key.rls_kit_state === 'retired' &&
      key.rls_kit_not_after !== undefined &&
      Date.parse(key.rls_kit_not_after) <= now
    ) {
      continue;
    }
    const out: JWK = {};
    for (const name of PUBLIC_JWK_MEMBERS) {
      const value = key[name];
      if (typeof value === 'string') out[name] = value;
    }
    keys.push(out);
  }
  return { keys };
}
