import { RlsKitError } from '../errors.js';
import { createKeyring } from './keyring.js';
import type { Keyring } from './types.js';

/**
 * Reads a keyring from its file text (or already-parsed JSON): a private JWK
 * Set `{"keys": [...]}` whose keys carry `rls_kit_state` and friends (see
 * {@link KeyringKey}). Checks it like {@link createKeyring}.
 *
 * Anything else — not JSON, a single JWK, a PEM, a public JWKS without
 * states — is `ERR_KEY_INVALID` with a one-line message that says what was
 * found and never quotes the input. (To bring outside keys in, use
 * `importKeys`.)
 *
 * @example
 * ```ts
 * const ring = parseKeyring(await readFile('keys.json', 'utf8'));
 * ```
 */
export function parseKeyring(input: string | unknown, source = 'keyring'): Keyring {
  let value: unknown = input;
  if (typeof input === 'string') {
    const text = input.trim();
    if (text.startsWith('-----BEGIN')) {
      throw new RlsKitError(
        'ERR_KEY_INVALID',
        `the ${source} is a PEM key, not a keyring; create a keyring with rls-kit keys generate`,
      );
    }
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new RlsKitError(
        'ERR_KEY_INVALID',
        `the ${source} is not JSON; expected a keyring ({"keys": [...]}) from rls-kit keys generate`,
        { cause: err },
      );
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${source} is not a keyring: expected an object {"keys": [...]} from rls-kit keys generate`,
    );
  }
  const keys = (value as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) {
    const hint =
      'kty' in value ? ' (it is a single JWK; wrap it with importKeys or regenerate)' : '';
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${source} has no "keys" array${hint}; expected the output of rls-kit keys generate`,
    );
  }
  try {
    return createKeyring(keys);
  } catch (err) {
    if (err instanceof RlsKitError && source !== 'keyring') {
      throw new RlsKitError(err.code, `${source}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}
