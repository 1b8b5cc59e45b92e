import { RlsKitError } from '../errors.js';
import { assertStrongSecret } from './check-secret.js';
import { assertKid } from './jwk-material.js';
import { thumbprintKid } from './thumbprint-kid.js';
import type { KeyringKey, KeyState } from './types.js';

/** Options of {@link importHmacSecret}. */
export interface ImportHmacSecretOptions {
  /** Overrides the thumbprint kid (for example to match tokens already signed with a kid). */
  kid?: string;
  /** `active` by default. */
  state?: Exclude<KeyState, 'retired'>;
  now?: Date;
}

/**
 * Turns an HS256 secret (for example Supabase's legacy JWT secret, which
 * Supabase Auth uses as its UTF-8 bytes) into a keyring key. Strings are
 * taken as UTF-8, exactly as Supabase and PostgREST use them; weak secrets
 * are refused with `ERR_KEY_WEAK`.
 *
 * @example
 * ```ts
 * const key = await importHmacSecret(process.env.SUPABASE_JWT_SECRET ?? '');
 * ```
 */
export async function importHmacSecret(
  secret: string | Uint8Array,
  options: ImportHmacSecretOptions = {},
): Promise<KeyringKey> {
  if (typeof secret !== 'string' && !(secret instanceof Uint8Array)) {
    throw new RlsKitError('ERR_KEY_INVALID', 'the HS256 secret must be a string or bytes');
  }
  assertStrongSecret(secret, 'HS256 secret');
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  const material = { kty: 'oct', k: bytes.toString('base64url') };
  const kid = options.kid ?? (await thumbprintKid(material));
  assertKid(kid, 'HS256 secret');
  return {
    ...material,
    kid,
    alg: 'HS256',
    use: 'sig',
    rls_kit_state: options.state ?? 'active',
    rls_kit_created_at: (options.now ?? new Date()).toISOString(),
  };
}
