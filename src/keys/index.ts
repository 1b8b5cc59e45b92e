/**
 * Keyring: generate and import signing keys, keep them in a keyring file
 * with their states, rotate them on a schedule, and export what verifiers
 * and minters need. The public face of `src/keys/`.
 *
 * @example
 * ```ts
 * import { generateKey, createKeyring, publicJwks, signingKey } from './keys/index.js';
 * const ring = createKeyring([await generateKey({ alg: 'ES256' })]);
 * const jwks = publicJwks(ring);
 * ```
 */
export { assertStrongSecret, MIN_HMAC_SECRET_BYTES } from './check-secret.js';
export { formatDuration, parseDuration } from './duration.js';
export { type PublicJwksOptions, publicJwks } from './export-jwks.js';
export { type GenerateKeyOptions, generateKey } from './generate-key.js';
export { type ImportKeysOptions, importKeys } from './import-key.js';
export { type ImportHmacSecretOptions, importHmacSecret } from './import-secret.js';
export { MIN_RSA_BITS } from './jwk-material.js';
export { createKeyring } from './keyring.js';
export { parseKeyring } from './parse-keyring.js';
export { type KeyringFile, readKeyringFile } from './read-keyring-file.js';
export { type RotateOptions, type RotateResult, type RotationChange, rotate } from './rotate.js';
export { serializeKeyring } from './serialize-keyring.js';
export { signingKey } from './signing-key.js';
export { KID_LENGTH, thumbprintKid } from './thumbprint-kid.js';
export {
  type Keyring,
  type KeyringKey,
  type KeyState,
  SIGNING_ALGS,
  type SigningAlg,
  type SigningKey,
  type VerificationKey,
} from './types.js';
export { toVerificationKeys, type VerificationKeysOptions } from './verification-keys.js';
export { writeKeyringFile } from './write-keyring-file.js';
