import { RlsKitError } from '../errors.js';
import { importForUse } from './jwk-material.js';
import { createKeyring } from './keyring.js';
import type { Keyring, SigningKey } from './types.js';

/**
 * The keyring's `active` key, imported once as a non-extractable key for
 * signing (HS256 secrets are checked with `assertStrongSecret` again here,
 * so a weak secret never signs). Import once and reuse: importing per token
 * costs more than signing.
 *
 * `ERR_KEY_UNKNOWN` when no key is active (a keyring of standby keys: run
 * `rls-kit keys rotate`), `ERR_KEY_INVALID` when the active key does not
 * import.
 *
 * @example
 * ```ts
 * const key = await signingKey(ring);
 * const minter = await createMinter({ signingKey: key, issuer, audience });
 * ```
 */
export async function signingKey(keyring: Keyring): Promise<SigningKey> {
  const ring = createKeyring(keyring.keys);
  const active = ring.keys.find((k) => k.rls_kit_state === 'active');
  if (!active) {
    throw new RlsKitError(
      'ERR_KEY_UNKNOWN',
      'the keyring has no active key to sign with; run rls-kit keys rotate to promote one',
    );
  }
  try {
    return {
      kid: active.kid,
      alg: active.alg,
      key: await importForUse(active, active.alg, 'sign'),
    };
  } catch (err) {
    if (err instanceof RlsKitError) throw err;
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the active key (kid ${active.kid}) does not import as a ${active.alg} private key`,
      { cause: err },
    );
  }
}
