import type { CryptoKey } from 'jose';
import { RlsKitError } from '../errors.js';
import { importForUse } from './jwk-material.js';
import { createKeyring } from './keyring.js';
import type { Keyring, VerificationKey } from './types.js';

/** Options of {@link toVerificationKeys}. */
export interface VerificationKeysOptions {
  /** The current time (epoch ms); retired keys past `rls_kit_not_after` are left out. */
  now?: number;
}

/**
 * Every key of the keyring that may verify right now — standby (published),
 * active, and retired keys whose last tokens have not expired — imported
 * once for verification and pinned to its algorithm. Asymmetric keys are
 * imported from their public members only; HS256 secrets become
 * non-extractable HMAC keys (after `assertStrongSecret`).
 *
 * The verifier looks a token's `kid` up among these and verifies with the
 * key's own `alg`, never the header's.
 *
 * @example
 * ```ts
 * const keys = await toVerificationKeys(ring);
 * const byKid = new Map(keys.map((k) => [k.kid, k]));
 * ```
 */
export async function toVerificationKeys(
  keyring: Keyring,
  options: VerificationKeysOptions = {},
): Promise<VerificationKey[]> {
  const ring = createKeyring(keyring.keys);
  const now = options.now ?? Date.now();
  const out: VerificationKey[] = [];
  for (const key of ring.keys) {
    const notAfter =
      key.rls_kit_not_after === undefined ? undefined : Date.parse(key.rls_kit_not_after);
    if (key.rls_kit_state === 'retired' && notAfter !== undefined && notAfter <= now) continue;
    let imported: CryptoKey;
    try {
      imported = await importForUse(key, key.alg, 'verify');
    } catch (err) {
      if (err instanceof RlsKitError) throw err;
      throw new RlsKitError(
        'ERR_KEY_INVALID',
        `the key with kid ${key.kid} does not import as a ${key.alg} key`,
        { cause: err },
      );
    }
    out.push(
      notAfter === undefined
        ? { kid: key.kid, alg: key.alg, key: imported, state: key.rls_kit_state }
        : {
            kid: key.kid,
            alg: key.alg,
            key: imported,
            state: key.rls_kit_state,
            notAfter: Math.floor(notAfter / 1000),
          },
    );
  }
  return out;
}
