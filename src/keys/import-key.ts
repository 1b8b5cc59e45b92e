import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { RlsKitError } from '../errors.js';
import {
  assertKid,
  assertUsable,
  isUuid,
  type KeyMaterial,
  normalizeKeyMaterial,
  toSigningAlg,
} from './jwk-material.js';
import { thumbprintKid } from './thumbprint-kid.js';
import type { KeyringKey, KeyState, SigningAlg } from './types.js';

/** Options of {@link importKeys}. */
export interface ImportKeysOptions {
  /**
   * The algorithm the keys must be for. Inferred from the key type when
   * absent (EC P-256 → ES256, Ed25519 → EdDSA, RSA → RS256, oct → HS256);
   * a mismatch is refused rather than converted.
   */
  alg?: SigningAlg | 'Ed25519';
  /**
   * Which kid the keys get:
   * - `auto` (default): keep a UUID kid — the shape of `supabase gen
   *   signing-key` output, which Supabase Auth already puts in its tokens'
   *   headers and its JWKS, so re-deriving it would break verification of
   *   those tokens — and use the thumbprint kid for everything else;
   * - `thumbprint`: always the RFC 7638 thumbprint prefix;
   * - `keep`: keep any well-formed kid given (thumbprint when none).
   */
  kid?: 'auto' | 'thumbprint' | 'keep';
  /**
   * State for the imported private keys. Default: `active` when the input
   * holds exactly one private key, else `standby`. Public-only keys are
   * always `standby` (published and verifying; they cannot sign).
   */
  state?: KeyState;
  /** Creation time recorded in the keys. */
  now?: Date;
}

/** Larger inputs are not key files; refuse before parsing. */
const MAX_INPUT_BYTES = 1024 * 1024;

/**
 * Imports signing keys from outside the kit: a JWK, a JWK Set, a JSON array
 * of JWKs (what `supabase gen signing-key` writes to `signing_keys_path`), or
 * a PEM key (PKCS#8 or SEC1/PKCS#1 private, SPKI public). Each key is
 * checked (supported type and curve, RSA ≥ 2048 bits, strong HS256 secret,
 * `alg`/`use` consistent, private and public halves matching), reduced to
 * its key members, and given `kid`, `alg`, `use: "sig"` and a state.
 *
 * Wrong formats are `ERR_KEY_INVALID` (`ERR_KEY_WEAK` for short RSA moduli and
 * weak secrets) with a one-line message that never quotes key material.
 *
 * @example
 * ```ts
 * // the output of `supabase gen signing-key --algorithm ES256`
 * const [key] = await importKeys(await readFile('supabase/signing_key.json', 'utf8'));
 * const ring = createKeyring([key]);
 * ```
 */
export async function importKeys(
  input: string | object,
  options: ImportKeysOptions = {},
): Promise<KeyringKey[]> {
  const requested = options.alg === undefined ? undefined : toSigningAlg(options.alg);
  if (options.alg !== undefined && requested === undefined) {
    throw new RlsKitError(
      'ERR_USAGE',
      `unsupported algorithm ${String(options.alg).slice(0, 16)}; use ES256, RS256, EdDSA or HS256`,
    );
  }
  const raws = typeof input === 'string' ? parseText(input) : fromObject(input);
  const materials: { material: KeyMaterial; givenKid: unknown }[] = [];
  for (const [i, raw] of raws.entries()) {
    const where = raws.length === 1 ? 'imported key' : `imported key #${i + 1}`;
    const material = normalizeKeyMaterial(raw, where, requested);
    await assertUsable(material, where);
    materials.push({ material, givenKid: (raw as { kid?: unknown }).kid });
  }
  const privateCount = materials.filter((m) => m.material.isPrivate).length;
  const now = (options.now ?? new Date()).toISOString();
  const policy = options.kid ?? 'auto';
  const out: KeyringKey[] = [];
  for (const [i, { material, givenKid }] of materials.entries()) {
    const where = materials.length === 1 ? 'imported key' : `imported key #${i + 1}`;
    const keep =
      givenKid !== undefined && (policy === 'keep' || (policy === 'auto' && isUuid(givenKid)));
    if (keep) assertKid(givenKid, where);
    const kid = keep ? (givenKid as string) : await thumbprintKid(material.jwk);
    let state: KeyState;
    if (!material.isPrivate) {
      if (options.state === 'active') {
        throw new RlsKitError(
          'ERR_KEY_INVALID',
          `the ${where} is a public key; only a private key can be active (sign)`,
        );
      }
      state = options.state ?? 'standby';
    } else {
      state = options.state ?? (privateCount === 1 ? 'active' : 'standby');
    }
    if (state === 'retired') {
      throw new RlsKitError(
        'ERR_USAGE',
        'imported keys start as active or standby; retire them with rotate',
      );
    }
    if (out.some((k) => k.kid === kid)) {
      throw new RlsKitError('ERR_KEY_INVALID', `the input holds the same key twice (kid ${kid})`);
    }
    out.push({
      ...material.jwk,
      kid,
      alg: material.alg,
      use: 'sig',
      rls_kit_state: state,
      rls_kit_created_at: now,
    });
  }
  return out;
}

function parseText(input: string): unknown[] {
  if (Buffer.byteLength(input) > MAX_INPUT_BYTES) {
    throw new RlsKitError('ERR_KEY_INVALID', 'the key input is over 1 MiB; it is not a key file');
  }
  const text = input.trim();
  if (text.startsWith('-----BEGIN')) return [fromPem(text)];
  if (text.startsWith('{') || text.startsWith('[')) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new RlsKitError('ERR_KEY_INVALID', 'the key input looks like JSON but does not parse', {
        cause: err,
      });
    }
    return fromObject(value);
  }
  throw new RlsKitError(
    'ERR_KEY_INVALID',
    'the key input is neither a JWK, a JWK Set, a JSON array of JWKs nor a PEM key',
  );
}

function fromObject(value: unknown): unknown[] {
  const list = Array.isArray(value)
    ? value
    : typeof value === 'object' &&
        value !== null &&
        Array.isArray((value as { keys?: unknown }).keys)
      ? (value as { keys: unknown[] }).keys
      : typeof value === 'object' && value !== null && 'kty' in value
        ? [value]
        : undefined;
  if (!list) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      'the key input is not a JWK (no "kty"), a JWK Set (no "keys" array) or an array of JWKs',
    );
  }
  if (list.length === 0) throw new RlsKitError('ERR_KEY_INVALID', 'the key input holds no keys');
  return list;
}

/**
 * PEM through node:crypto, which reads PKCS#8, SEC1 and PKCS#1 private keys
 * and SPKI public keys and tells the key type, so the algorithm can be
 * inferred; its JWK export then goes through the same checks as any JWK.
 */
function fromPem(pem: string): JWK {
  const label = /^-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem)?.[1] ?? '';
  if (label.includes('ENCRYPTED') || /Proc-Type:\s*4,ENCRYPTED/.test(pem)) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      'the PEM key is encrypted; decrypt it first (openssl pkey -in FILE -out PLAIN)',
    );
  }
  if (label === 'CERTIFICATE') {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      'the PEM is a certificate; import its public key (openssl x509 -pubkey -noout)',
    );
  }
  let key: KeyObject;
  try {
    key = label.includes('PUBLIC') ? createPublicKey(pem) : createPrivateKey(pem);
  } catch (err) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the PEM ${label ? `"${label}" block` : 'input'} is not a readable key`,
      { cause: err },
    );
  }
  const type = key.asymmetricKeyType;
  if (type !== 'ec' && type !== 'rsa' && type !== 'ed25519') {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the PEM key is of type ${type ?? 'unknown'}; supported: EC P-256, RSA, Ed25519`,
    );
  }
  try {
    return key.export({ format: 'jwk' }) as JWK;
  } catch (err) {
    // e.g. an EC curve Node cannot express as a JWK (secp256k1 is fine, brainpool is not)
    throw new RlsKitError('ERR_KEY_INVALID', 'the PEM key cannot be expressed as a JWK', {
      cause: err,
    });
  }
}
