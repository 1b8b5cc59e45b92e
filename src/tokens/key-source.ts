/**
 * Key handling inside the tokens capability (not re-exported from its
 * index): describing and checking JWKs, importing them once, and picking
 * the key for a token. Public entry points are `createVerifier` and
 * `createSupabaseVerifier`.
 */
import { base64url, type CryptoKey, importJWK, type JWK } from 'jose';
import { RlsKitError, type RlsKitErrorCode } from '../errors.js';
import { assertStrongSecret } from '../keys/check-secret.js';
import { SIGNING_ALGS, type SigningAlg, type VerificationKey } from '../keys/types.js';

/**
 * One key the verifier may use, imported once as a `CryptoKey` (jose's
 * fastest input: no per-token import) and pinned to exactly one algorithm.
 */
export interface KeyEntry {
  /** The JWK's `kid`; absent only for a lone key (an HS256 secret, a one-key set). */
  readonly kid: string | undefined;
  readonly alg: SigningAlg;
  readonly key: CryptoKey;
  /** Epoch seconds after which the key verifies nothing (a retired key); undefined: no limit. */
  readonly notAfter: number | undefined;
  /** The key's public material and alg, to recognise the same key across JWKS refreshes. */
  readonly fingerprint: string;
  /** False once the key left its key set: cached tokens it verified are no longer served. */
  live: boolean;
}

/** The keys a source holds at one moment. */
export interface KeySet {
  readonly byKid: ReadonlyMap<string, KeyEntry>;
  readonly all: readonly KeyEntry[];
}

/**
 * Where a verifier's keys come from: a fixed set (JWKS object, secret,
 * keyring keys) or a remote JWKS URL. The verifier asks {@link peek} first
 * (no I/O) and falls back to {@link resolve} (loads, refreshes, refetches on
 * an unknown `kid`).
 */
export interface KeySource {
  /** The keys usable right now without I/O, or undefined when the source must load or refresh. */
  peek(now: number): KeySet | undefined;
  /** The key for a token's `kid`, loading or refreshing as needed. Throws an {@link RlsKitError}. */
  resolve(kid: string | undefined, now: number): Promise<KeyEntry>;
  /** True while a cached verification may be served without consulting the source. */
  fresh(now: number): boolean;
  /** Loads the keys (for readiness checks); throws like {@link resolve}. */
  load(now: number): Promise<void>;
  /** Called with the entries that left the set (rotation), so caches can drop their tokens. */
  onRemoved(listener: (removed: readonly KeyEntry[]) => void): void;
}

/** A key described and checked, but not imported yet (imports are async). */
export interface KeyDescriptor {
  readonly kid: string | undefined;
  readonly alg: SigningAlg;
  /** Public members only (or `kty`/`k` for HS256). */
  readonly jwk: JWK;
  readonly notAfter: number | undefined;
  readonly fingerprint: string;
}

/**
 * Picks the key for a token: its `kid` among the known keys. A token without
 * a `kid`, or a lone key without one (Supabase's legacy secret, whose tokens
 * carry a `kid` the secret does not know), is matched only when the set holds
 * exactly one key, so a `kid` is never more than a lookup and never chooses
 * between keys in any other way.
 *
 * @example
 * ```ts
 * const entry = selectKey(set, header.kid); // undefined: ERR_KEY_UNKNOWN
 * ```
 */
export function selectKey(set: KeySet, kid: string | undefined): KeyEntry | undefined {
  if (kid !== undefined) {
    const byKid = set.byKid.get(kid);
    if (byKid) return byKid;
  }
  const only = set.all.length === 1 ? set.all[0] : undefined;
  if (only && (kid === undefined || only.kid === undefined)) return only;
  return undefined;
}

/** Builds a {@link KeySet}, refusing duplicate kids and kid-less keys among several. */
export function keySet(entries: readonly KeyEntry[], code: RlsKitErrorCode, where: string): KeySet {
  const byKid = new Map<string, KeyEntry>();
  for (const e of entries) {
    if (e.kid === undefined) {
      if (entries.length > 1) {
        throw new RlsKitError(code, `${where}: every key needs a "kid" when there are several`);
      }
      continue;
    }
    if (byKid.has(e.kid)) throw new RlsKitError(code, `${where}: two keys share one "kid"`);
    byKid.set(e.kid, e);
  }
  return { byKid, all: entries };
}

const SUPPORTED = new Set<string>(SIGNING_ALGS);
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'priv'] as const;

/** What a key set's origin allows and how its failures are reported. */
export interface DescribeOptions {
  /** `local`: a JWKS the caller handed over (private keys are stripped, HS256 allowed). `remote`: fetched. */
  readonly origin: 'local' | 'remote';
  readonly allowed: ReadonlySet<SigningAlg>;
  /** Names the set in messages, e.g. `the JWKS at https://…`. */
  readonly where: string;
}

/**
 * Checks a JWK Set and describes the keys the verifier can use, without
 * importing them. Keys for encryption or for algorithms the kit does not
 * verify are skipped; a remote set that publishes symmetric or private key
 * material, or any set with a kid-less key among several, is refused.
 *
 * @example
 * ```ts
 * const described = describeKeySet(jwks, { origin: 'local', allowed: new Set(['ES256']), where: 'the JWKS' });
 * ```
 */
export function describeKeySet(doc: unknown, options: DescribeOptions): KeyDescriptor[] {
  const code: RlsKitErrorCode =
    options.origin === 'remote' ? 'ERR_JWKS_UNAVAILABLE' : 'ERR_KEY_INVALID';
  if (!isPlainObject(doc) || !Array.isArray(doc.keys)) {
    throw new RlsKitError(
      code,
      `${options.where} is not a JWK Set (a JSON object with "keys": [...])`,
    );
  }
  const out: KeyDescriptor[] = [];
  for (const raw of doc.keys as unknown[]) {
    if (!isPlainObject(raw))
      throw new RlsKitError(code, `${options.where} holds a key that is not an object`);
    if (options.origin === 'remote' && (typeof raw.kid !== 'string' || raw.kid === '')) {
      throw new RlsKitError(
        code,
        `${options.where} publishes a key without "kid"; every published key needs one`,
      );
    }
    const described = describeJwk(raw as JWK, options, code);
    if (described) out.push(described);
  }
  const kids = new Set<string>();
  for (const d of out) {
    if (d.kid === undefined) {
      if (out.length > 1) {
        throw new RlsKitError(
          code,
          `${options.where}: every key needs a "kid" when there are several`,
        );
      }
    } else if (kids.has(d.kid)) {
      throw new RlsKitError(code, `${options.where}: two keys share one "kid"`);
    } else kids.add(d.kid);
  }
  return out;
}

function describeJwk(
  jwk: JWK,
  options: DescribeOptions,
  code: RlsKitErrorCode,
): KeyDescriptor | undefined {
  // Keys meant for encryption or other operations are not ours to verify with.
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined;
  if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) return undefined;
  const alg = algOf(jwk);
  if (alg === undefined || !options.allowed.has(alg)) return undefined;
  const kid = typeof jwk.kid === 'string' && jwk.kid !== '' ? jwk.kid : undefined;
  if (jwk.kid !== undefined && kid === undefined) {
    throw new RlsKitError(
      code,
      `${options.where} holds a key whose "kid" is not a non-empty string`,
    );
  }
  const label = kid === undefined ? 'a key' : `key ${JSON.stringify(kid.slice(0, 64))}`;
  if (options.origin === 'remote') {
    if (alg === 'HS256') {
      // A symmetric key anyone can download lets anyone forge tokens: refuse the whole set loudly.
      throw new RlsKitError(
        code,
        `${options.where} publishes a symmetric (oct) key; refusing the set`,
      );
    }
    if (PRIVATE_MEMBERS.some((m) => (jwk as Record<string, unknown>)[m] !== undefined)) {
      throw new RlsKitError(
        code,
        `${options.where} publishes private key material; refusing the set`,
      );
    }
  }
  const pub = publicMembers(jwk, alg, `${options.where}: ${label}`, code);
  const notAfter = notAfterOf(jwk);
  return { kid, alg, jwk: pub, notAfter, fingerprint: `${alg}|${JSON.stringify(pub)}` };
}

/** The algorithm a JWK is pinned to: its `alg`, else the one its key type implies. */
function algOf(jwk: JWK): SigningAlg | undefined {
  if (jwk.alg !== undefined) return SUPPORTED.has(jwk.alg) ? (jwk.alg as SigningAlg) : undefined;
  switch (jwk.kty) {
    case 'EC':
      return jwk.crv === 'P-256' ? 'ES256' : undefined;
    case 'RSA':
      return 'RS256';
    case 'OKP':
      return jwk.crv === 'Ed25519' ? 'EdDSA' : undefined;
    case 'oct':
      return 'HS256';
    default:
      return undefined;
  }
}

/** The members that define the public key, checked against the algorithm. */
function publicMembers(jwk: JWK, alg: SigningAlg, label: string, code: RlsKitErrorCode): JWK {
  const str = (v: unknown) => typeof v === 'string' && v !== '';
  const bad = (what: string) => new RlsKitError(code, `${label} ${what}`);
  switch (alg) {
    case 'ES256':
      if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !str(jwk.x) || !str(jwk.y)) {
        throw bad('is not a P-256 EC key (ES256 needs kty EC, crv P-256, x, y)');
      }
      return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
    case 'RS256': {
      if (jwk.kty !== 'RSA' || !str(jwk.n) || !str(jwk.e))
        throw bad('is not an RSA key (RS256 needs kty RSA, n, e)');
      const bits = decodedLength(jwk.n as string) * 8;
      if (bits < 2048) {
        throw new RlsKitError(
          code === 'ERR_KEY_INVALID' ? 'ERR_KEY_WEAK' : code,
          `${label} is a ${bits}-bit RSA key; RS256 needs at least 2048 bits`,
        );
      }
      return { kty: 'RSA', n: jwk.n, e: jwk.e };
    }
    case 'EdDSA':
      if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || !str(jwk.x)) {
        throw bad('is not an Ed25519 key (EdDSA needs kty OKP, crv Ed25519, x)');
      }
      return { kty: 'OKP', crv: 'Ed25519', x: jwk.x };
    case 'HS256': {
      if (jwk.kty !== 'oct' || !str(jwk.k))
        throw bad('is not a symmetric key (HS256 needs kty oct, k)');
      let bytes: Uint8Array;
      try {
        bytes = base64url.decode(jwk.k as string);
      } catch (err) {
        throw new RlsKitError(code, `${label} has a "k" that is not base64url`, { cause: err });
      }
      assertStrongSecret(bytes, `HS256 ${label.replace(/^.*: /, '')}`);
      return { kty: 'oct', k: jwk.k };
    }
  }
}

/** Bytes of a base64url string without decoding it. */
function decodedLength(b64u: string): number {
  return Math.floor((b64u.replace(/=+$/, '').length * 3) / 4);
}

/** The kit keyring's `rls_kit_not_after` (ISO 8601), as epoch seconds. */
function notAfterOf(jwk: JWK): number | undefined {
  const value = (jwk as Record<string, unknown>).rls_kit_not_after;
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

/** Imports a described key as a `CryptoKey` for verification. */
export async function importDescriptor(d: KeyDescriptor): Promise<KeyEntry> {
  const key =
    d.alg === 'HS256'
      ? await importHmacKey(base64url.decode(d.jwk.k as string))
      : ((await importJWK(d.jwk, d.alg)) as CryptoKey);
  return {
    kid: d.kid,
    alg: d.alg,
    key,
    notAfter: d.notAfter,
    fingerprint: d.fingerprint,
    live: true,
  };
}

/**
 * An HMAC secret as a `CryptoKey`: jose imports a raw `Uint8Array` on every
 * verification, a `CryptoKey` once.
 */
async function importHmacKey(secret: Uint8Array): Promise<CryptoKey> {
  return (await crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, [
    'verify',
  ])) as CryptoKey;
}

/** Describes an HS256 secret (a string is used as its UTF-8 bytes, as Supabase Auth does). */
export function describeSecret(secret: string | Uint8Array, kid?: string): KeyDescriptor {
  if (typeof secret !== 'string' && !(secret instanceof Uint8Array)) {
    throw new RlsKitError('ERR_CONFIG', 'keys.secret must be a string or a Uint8Array');
  }
  const bytes = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  assertStrongSecret(bytes, 'HS256 secret');
  const jwk: JWK = { kty: 'oct', k: base64url.encode(bytes) };
  return { kid, alg: 'HS256', jwk, notAfter: undefined, fingerprint: `HS256|${jwk.k}` };
}

type KeyObjectLike = {
  type: string;
  export(options: { format: 'jwk' }): JWK;
  export(): Uint8Array;
};

/**
 * Describes the keyring's {@link VerificationKey}s. `CryptoKey`s are used as
 * they are (after checking they suit their alg); `KeyObject`s and raw secrets
 * are described and imported like JWKs.
 */
export function describeVerificationKeys(
  keys: readonly VerificationKey[],
  allowed: ReadonlySet<SigningAlg>,
): (KeyDescriptor | KeyEntry)[] {
  const out: (KeyDescriptor | KeyEntry)[] = [];
  for (const vk of keys) {
    if (!SUPPORTED.has(vk.alg))
      throw new RlsKitError(
        'ERR_CONFIG',
        `unsupported key algorithm for kid ${JSON.stringify(vk.kid)}`,
      );
    if (!allowed.has(vk.alg)) continue;
    const k = vk.key as unknown;
    const notAfter = vk.notAfter;
    if (k instanceof Uint8Array) {
      if (vk.alg !== 'HS256')
        throw new RlsKitError(
          'ERR_CONFIG',
          `key ${JSON.stringify(vk.kid)}: raw bytes are only an HS256 secret`,
        );
      out.push({ ...describeSecret(k, vk.kid), notAfter });
    } else if (tag(k) === 'KeyObject') {
      const ko = k as KeyObjectLike;
      const jwk: JWK =
        ko.type === 'secret'
          ? { kty: 'oct', k: base64url.encode(ko.export()) }
          : ko.export({ format: 'jwk' });
      const [d] = describeKeySet(
        { keys: [{ ...jwk, kid: vk.kid, alg: vk.alg }] },
        {
          origin: 'local',
          allowed,
          where: 'keys',
        },
      );
      if (!d)
        throw new RlsKitError(
          'ERR_CONFIG',
          `key ${JSON.stringify(vk.kid)} does not suit ${vk.alg}`,
        );
      out.push({ ...d, notAfter });
    } else if (tag(k) === 'CryptoKey') {
      const ck = k as CryptoKey;
      if (ck.type === 'private') {
        throw new RlsKitError(
          'ERR_CONFIG',
          `key ${JSON.stringify(vk.kid)} is a private CryptoKey; pass its public key`,
        );
      }
      if (!cryptoKeySuits(ck, vk.alg)) {
        // Caught here, a mismatch is a clear configuration error instead of every token failing.
        throw new RlsKitError(
          'ERR_CONFIG',
          `key ${JSON.stringify(vk.kid)} is not a ${vk.alg} verification key`,
        );
      }
      out.push({
        kid: vk.kid,
        alg: vk.alg,
        key: ck,
        notAfter,
        fingerprint: `${vk.alg}|ck|${vk.kid}`,
        live: true,
      });
    } else {
      throw new RlsKitError(
        'ERR_CONFIG',
        `key ${JSON.stringify(vk.kid)} is not a CryptoKey, KeyObject or Uint8Array`,
      );
    }
  }
  return out;
}

function tag(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null
    ? (value as { [Symbol.toStringTag]?: string })[Symbol.toStringTag]
    : undefined;
}

/**
 * A fixed key set, imported on first use (imports are async; the verifier
 * is created synchronously so configuration errors surface at once).
 *
 * @example
 * ```ts
 * const source = staticKeySource([describeSecret(secret)], 'keys');
 * ```
 */
export function staticKeySource(
  items: readonly (KeyDescriptor | KeyEntry)[],
  where: string,
): KeySource {
  let loaded: KeySet | undefined;
  let loading: Promise<KeySet> | undefined;
  const load = (): Promise<KeySet> => {
    loading ??= Promise.all(items.map((i) => ('key' in i ? i : importDescriptor(i))))
      .then((entries) => {
        loaded = keySet(entries, 'ERR_CONFIG', where);
        return loaded;
      })
      .catch((err: unknown) => {
        throw err instanceof RlsKitError
          ? err
          : new RlsKitError('ERR_KEY_INVALID', `${where}: a key could not be imported`, {
              cause: err,
            });
      });
    return loading;
  };
  return {
    peek: () => loaded,
    async resolve(kid) {
      const set = loaded ?? (await load());
      const entry = selectKey(set, kid);
      if (!entry) throw unknownKey(kid);
      return entry;
    },
    fresh: () => true,
    async load() {
      await load();
    },
    onRemoved() {
      // A fixed set never loses keys.
    },
  };
}

/** `ERR_KEY_UNKNOWN` without echoing the token's `kid` (it is attacker-controlled text). */
export function unknownKey(kid: string | undefined): RlsKitError {
  return new RlsKitError(
    'ERR_KEY_UNKNOWN',
    kid === undefined
      ? 'the token names no key ("kid") and the verifier has several: tokens must carry a kid'
      : 'the token was signed with a key the verifier does not know (its "kid" matches no key)',
  );
}

/** A JSON object (not null, not an array). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether a CryptoKey is the Web Crypto shape of `alg` (what jose would check on every token). */
function cryptoKeySuits(key: CryptoKey, alg: SigningAlg): boolean {
  const a = key.algorithm as { name: string; namedCurve?: string; hash?: { name: string } };
  if (!key.usages.includes('verify')) return false;
  switch (alg) {
    case 'ES256':
      return a.name === 'ECDSA' && a.namedCurve === 'P-256' && key.type === 'public';
    case 'RS256':
      return a.name === 'RSASSA-PKCS1-v1_5' && a.hash?.name === 'SHA-256' && key.type === 'public';
    case 'EdDSA':
      return a.name === 'Ed25519' && key.type === 'public';
    case 'HS256':
      return a.name === 'HMAC' && a.hash?.name === 'SHA-256' && key.type === 'secret';
  }
}
