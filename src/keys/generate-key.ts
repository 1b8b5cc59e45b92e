import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { RlsKitError } from '../errors.js';
import { assertStrongSecret } from './check-secret.js';
import { assertKid, MIN_RSA_BITS } from './jwk-material.js';
import { thumbprintKid } from './thumbprint-kid.js';
import type { KeyringKey, KeyState, SigningAlg } from './types.js';

/** Options of {@link generateKey}. */
export interface GenerateKeyOptions {
  /** Signature algorithm; `ES256` (small tokens, fast, what Supabase Auth uses) by default. */
  alg?: SigningAlg;
  /** Overrides the thumbprint kid (must be unique within the keyring it joins). */
  kid?: string;
  /** Initial state; `active` by default (a fresh keyring's signing key). */
  state?: KeyState;
  /** RSA modulus size; 2048 by default, smaller refused. */
  modulusLength?: number;
  /** Creation time recorded in the key (tests pass a fake clock). */
  now?: Date;
}

/**
 * Generates a signing key as an extractable private JWK, ready to store in a
 * keyring file: `kid` (the RFC 7638 thumbprint prefix unless given), `alg`,
 * `use: "sig"` and the kit's state members.
 *
 * HS256 keys are 32 random bytes from the CSPRNG (the HMAC-SHA-256 output
 * size, RFC 7518 §3.2) and still pass through `assertStrongSecret`, so a
 * broken random source can never produce a usable weak key.
 *
 * @example
 * ```ts
 * const key = await generateKey({ alg: 'ES256' });
 * const ring = createKeyring([key]);
 * ```
 */
export async function generateKey(options: GenerateKeyOptions = {}): Promise<KeyringKey> {
  const alg = options.alg ?? 'ES256';
  let material: JWK;
  switch (alg) {
    case 'HS256': {
      const secret = crypto.getRandomValues(new Uint8Array(32));
      assertStrongSecret(secret, 'generated HS256 secret');
      material = { kty: 'oct', k: Buffer.from(secret).toString('base64url') };
      break;
    }
    case 'RS256': {
      const modulusLength = options.modulusLength ?? MIN_RSA_BITS;
      if (!Number.isSafeInteger(modulusLength) || modulusLength < MIN_RSA_BITS) {
        throw new RlsKitError(
          'ERR_KEY_WEAK',
          `RSA keys need at least ${MIN_RSA_BITS} bits (asked for ${modulusLength})`,
        );
      }
      material = await exportPrivate('RS256', { modulusLength });
      break;
    }
    case 'ES256':
    case 'EdDSA':
      material = await exportPrivate(alg, {});
      break;
    default:
      throw new RlsKitError(
        'ERR_USAGE',
        `unsupported algorithm ${String(alg).slice(0, 16)}; use ES256, RS256, EdDSA or HS256`,
      );
  }
  const kid = options.kid ?? (await thumbprintKid(material));
  assertKid(kid, 'generated key');
  return {
    ...material,
    kid,
    alg,
    use: 'sig',
    rls_kit_state: options.state ?? 'active',
    rls_kit_created_at: (options.now ?? new Date()).toISOString(),
  };
}

async function exportPrivate(
  alg: 'ES256' | 'RS256' | 'EdDSA',
  options: { modulusLength?: number },
): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { ...options, extractable: true });
  const jwk = await exportJWK(privateKey);
  // Web Crypto adds `key_ops`/`ext`; the keyring keeps only key members.
  delete jwk.key_ops;
  delete jwk.ext;
  return jwk;
}
