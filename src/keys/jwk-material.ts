/**
 * Internal: what a signing JWK may contain, per key type, and the checks every
 * way into a keyring (generate, import, parse) shares. Not part of the public
 * face (`index.ts`).
 */
import { CompactSign, type CryptoKey, compactVerify, importJWK, type JWK } from 'jose';
import { RlsKitError } from '../errors.js';
import { assertStrongSecret } from './check-secret.js';
import type { SigningAlg } from './types.js';

/** Members that describe the public key, per `kty` (RFC 7518 §6). */
const PUBLIC_MEMBERS = {
  EC: ['crv', 'x', 'y'],
  OKP: ['crv', 'x'],
  RSA: ['n', 'e'],
  oct: [],
} as const satisfies Record<string, readonly string[]>;

/** Members that are secret, per `kty`. Never exported in a public JWKS. */
const SECRET_MEMBERS = {
  EC: ['d'],
  OKP: ['d'],
  RSA: ['d', 'p', 'q', 'dp', 'dq', 'qi'],
  oct: ['k'],
} as const satisfies Record<string, readonly string[]>;

type Kty = keyof typeof PUBLIC_MEMBERS;

/** The public members a JWKS may carry: an allowlist, so nothing unknown leaks. */
export const PUBLIC_JWK_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use'] as const;

/** RFC 7518 §3.3: RS256 keys of 2048 bits or larger MUST be used. */
export const MIN_RSA_BITS = 2048;

const KID_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;
const B64URL = /^[A-Za-z0-9_-]*$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The kind of every key a kid is allowed to name: safe in headers, file names, logs and SQL text. */
export function assertKid(kid: unknown, where: string): asserts kid is string {
  if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${where} has an invalid kid: use 1-64 characters of A-Z a-z 0-9 . _ - (not starting with .)`,
    );
  }
}

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** Maps a JWK or header `alg` to the kit's algorithm, or `undefined` when unsupported. */
export function toSigningAlg(alg: unknown): SigningAlg | undefined {
  switch (alg) {
    case 'ES256':
    case 'RS256':
    case 'EdDSA':
    case 'HS256':
      return alg;
    // RFC 9864's fully specified name for the same algorithm.
    case 'Ed25519':
      return 'EdDSA';
    default:
      return undefined;
  }
}

function algFor(kty: Kty, crv: unknown, where: string): SigningAlg {
  switch (kty) {
    case 'EC':
      if (crv === 'P-256') return 'ES256';
      break;
    case 'OKP':
      if (crv === 'Ed25519') return 'EdDSA';
      break;
    case 'RSA':
      return 'RS256';
    case 'oct':
      return 'HS256';
  }
  throw new RlsKitError(
    'ERR_KEY_INVALID',
    `the ${where} is a ${kty} key on curve ${typeof crv === 'string' ? crv.slice(0, 16) : '(none)'}; supported: EC P-256 (ES256), RSA (RS256), OKP Ed25519 (EdDSA), oct (HS256)`,
  );
}

function member(raw: Record<string, unknown>, name: string, where: string): string | undefined {
  const value = raw[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !B64URL.test(value) || value.length === 0) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${where} has a malformed "${name}" member (expected base64url text)`,
    );
  }
  return value;
}

/**
 * Big-endian integers from some encoders (Go's `big.Int.Bytes`, used by
 * `supabase gen signing-key`) lose their leading zero bytes; Web Crypto wants
 * EC coordinates at full length, and RFC 7638 thumbprints are defined over
 * the full-length form. Pad back, refuse anything longer.
 */
function fixedLength(value: string, bytes: number, name: string, where: string): string {
  const raw = Buffer.from(value, 'base64url');
  if (raw.length > bytes || raw.length === 0) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${where} has a "${name}" member of ${raw.length} bytes; expected ${bytes}`,
    );
  }
  if (raw.length === bytes) return value;
  return Buffer.concat([Buffer.alloc(bytes - raw.length), raw]).toString('base64url');
}

/** Bits of an RSA modulus given as base64url, ignoring leading zero bytes. */
export function rsaModulusBits(n: string): number {
  const raw = Buffer.from(n, 'base64url');
  let i = 0;
  while (i < raw.length && raw[i] === 0) i++;
  if (i === raw.length) return 0;
  return (raw.length - i - 1) * 8 + (32 - Math.clz32(raw[i] ?? 0));
}

/** A JWK reduced to its key members, with what it is. */
export interface KeyMaterial {
  readonly jwk: JWK;
  readonly alg: SigningAlg;
  readonly isPrivate: boolean;
}

/**
 * Checks a JWK-shaped object and reduces it to the members that make up the
 * key (dropping `key_ops`, `ext`, `x5c` and anything unknown, so the keyring
 * holds nothing it does not understand). Refuses unsupported types, curves,
 * RSA moduli under 2048 bits, weak HS256 secrets, and an `alg`/`use` that
 * contradicts the key. Messages name members, never their values.
 */
export function normalizeKeyMaterial(
  raw: unknown,
  where: string,
  requestedAlg?: SigningAlg,
): KeyMaterial {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new RlsKitError('ERR_KEY_INVALID', `the ${where} is not a JWK object`);
  }
  const obj = raw as Record<string, unknown>;
  const kty = obj.kty;
  if (kty !== 'EC' && kty !== 'OKP' && kty !== 'RSA' && kty !== 'oct') {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${where} has ${typeof kty === 'string' ? 'an unsupported' : 'no'} "kty"; supported: EC, RSA, OKP, oct`,
    );
  }
  const alg = algFor(kty, obj.crv, where);
  if (obj.alg !== undefined && toSigningAlg(obj.alg) !== alg) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${where} says alg ${typeof obj.alg === 'string' ? obj.alg.slice(0, 16) : '(not a string)'} but is a ${kty} key for ${alg}`,
    );
  }
  if (requestedAlg !== undefined && requestedAlg !== alg) {
    throw new RlsKitError('ERR_KEY_INVALID', `the ${where} is a ${alg} key, not ${requestedAlg}`);
  }
  if (obj.use !== undefined && obj.use !== 'sig') {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${where} is not a signing key ("use" is not "sig")`,
    );
  }
  if (
    obj.key_ops !== undefined &&
    !(Array.isArray(obj.key_ops) && obj.key_ops.some((op) => op === 'sign' || op === 'verify'))
  ) {
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${where} is not a signing key ("key_ops" has neither sign nor verify)`,
    );
  }

  const jwk: JWK = { kty };
  for (const name of PUBLIC_MEMBERS[kty]) {
    if (name === 'crv') {
      jwk.crv = obj.crv as string;
      continue;
    }
    const value = member(obj, name, where);
    if (value === undefined) {
      throw new RlsKitError('ERR_KEY_INVALID', `the ${where} lacks its "${name}" member`);
    }
    jwk[name] = value;
  }
  const secrets = SECRET_MEMBERS[kty].filter((name) => member(obj, name, where) !== undefined);
  for (const name of secrets) jwk[name] = obj[name] as string;
  const isPrivate = secrets.length > 0;

  switch (kty) {
    case 'EC':
      for (const name of ['x', 'y', 'd'] as const) {
        const value = jwk[name];
        if (value !== undefined) jwk[name] = fixedLength(value, 32, name, where);
      }
      break;
    case 'OKP':
      for (const name of ['x', 'd'] as const) {
        const value = jwk[name];
        if (value !== undefined) jwk[name] = fixedLength(value, 32, name, where);
      }
      break;
    case 'RSA': {
      const bits = rsaModulusBits(jwk.n ?? '');
      if (bits < MIN_RSA_BITS) {
        throw new RlsKitError(
          'ERR_KEY_WEAK',
          `the ${where} is a ${bits}-bit RSA key; RS256 needs at least ${MIN_RSA_BITS} bits`,
        );
      }
      if (isPrivate && secrets.length !== SECRET_MEMBERS.RSA.length) {
        throw new RlsKitError(
          'ERR_KEY_INVALID',
          `the ${where} is an incomplete RSA private key: it needs d, p, q, dp, dq and qi`,
        );
      }
      break;
    }
    case 'oct':
      if (!isPrivate) {
        throw new RlsKitError('ERR_KEY_INVALID', `the ${where} is an oct key without "k"`);
      }
      assertStrongSecret(Buffer.from(jwk.k ?? '', 'base64url'), `${where}'s HS256 secret`);
      break;
  }
  return { jwk, alg, isPrivate };
}

/** Only the public members (allowlist), for JWKS export and verification. */
export function publicPart(jwk: JWK): JWK {
  const out: JWK = {};
  for (const name of PUBLIC_JWK_MEMBERS) {
    const value = jwk[name];
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

/**
 * Imports the key for one use, once. Asymmetric keys through jose's
 * `importJWK`; HS256 secrets as an HMAC `CryptoKey`, because jose re-imports
 * raw `Uint8Array` secrets on every call and that costs more than the HMAC.
 */
export async function importForUse(
  material: JWK,
  alg: SigningAlg,
  usage: 'sign' | 'verify',
): Promise<CryptoKey> {
  if (alg === 'HS256') {
    const secret = Buffer.from(material.k ?? '', 'base64url');
    assertStrongSecret(secret, 'HS256 key');
    return crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, [
      usage,
    ]);
  }
  const jwk = usage === 'verify' ? publicPart(material) : stripMeta(material);
  const key = await importJWK({ ...jwk, alg }, alg, { extractable: false });
  if (key instanceof Uint8Array) throw new TypeError('expected an asymmetric key');
  return key;
}

/** Key members plus `kty`, without kid/alg/use/state: what Web Crypto imports (an allowlist). */
const KEY_MEMBERS = [
  'kty',
  'crv',
  'x',
  'y',
  'n',
  'e',
  'd',
  'p',
  'q',
  'dp',
  'dq',
  'qi',
  'k',
] as const;

function stripMeta(jwk: JWK): JWK {
  const out: JWK = {};
  for (const name of KEY_MEMBERS) {
    const value = jwk[name];
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

const PROBE = new TextEncoder().encode('rls-kit key check');

/**
 * Proves the key is usable: it imports, and for a private key a signature
 * made with it verifies with its public part (catches hand-edited files
 * whose halves do not match). Failures are `ERR_KEY_INVALID` with the cause.
 */
export async function assertUsable(material: KeyMaterial, where: string): Promise<void> {
  try {
    if (!material.isPrivate) {
      await importForUse(material.jwk, material.alg, 'verify');
      return;
    }
    const signer = await importForUse(material.jwk, material.alg, 'sign');
    const jws = await new CompactSign(PROBE).setProtectedHeader({ alg: material.alg }).sign(signer);
    const verifier =
      material.alg === 'HS256'
        ? await importForUse(material.jwk, 'HS256', 'verify')
        : await importForUse(material.jwk, material.alg, 'verify');
    await compactVerify(jws, verifier, { algorithms: [material.alg] });
  } catch (err) {
    if (err instanceof RlsKitError) throw err;
    throw new RlsKitError(
      'ERR_KEY_INVALID',
      `the ${where} is not a usable ${material.alg} key (its members do not form a valid key pair)`,
      { cause: err },
    );
  }
}
