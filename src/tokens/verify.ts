import {
  base64url,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyOptions,
  jwtVerify,
} from 'jose';
import { RlsKitError, type RlsKitErrorCode } from '../errors.js';
import { SIGNING_ALGS, type SigningAlg, type VerificationKey } from '../keys/types.js';
import { fromJoseError } from './jose-errors.js';
import {
  describeKeySet,
  describeSecret,
  describeVerificationKeys,
  isPlainObject,
  type KeyEntry,
  type KeySource,
  selectKey,
  staticKeySource,
} from './key-source.js';
import { createOutcomeCounter, type OutcomeCounter, type OutcomeCounts } from './metrics.js';
import { type RemoteJwksOptions, remoteJwksSource } from './remote-jwks.js';
import type { RevocationCheck } from './revocation-check.js';
import { findDuplicateMember } from './strict-json.js';
import type { VerifiedClaims } from './verified-claims.js';
import { createVerifyCache, type VerifyCache } from './verify-cache.js';

/**
 * Where the verifier's keys come from: exactly one of these.
 *
 * @example
 * ```ts
 * const keys: VerifierKeys = { jwksUrl: 'https://api.example.com/.well-known/jwks.json' };
 * ```
 */
export type VerifierKeys =
  /** A JWK Set object (public keys, or a keyring file: private members are ignored). */
  | { jwks: JSONWebKeySet }
  /** A JWKS URL fetched and cached (see {@link RemoteJwksOptions}). */
  | RemoteJwksOptions
  /** An HS256 secret, e.g. Supabase's legacy JWT secret (a string is used as its UTF-8 bytes). */
  | { secret: string | Uint8Array }
  /** Keys from the kit's keyring, already imported. */
  | { keys: readonly VerificationKey[] };

/**
 * Options of {@link createVerifier}.
 *
 * @example
 * ```ts
 * const options: VerifierOptions = {
 *   issuer: 'https://api.example.com',
 *   audience: 'authenticated',
 *   keys: { jwks: publicJwks(ring) },
 *   maxTokenAge: 900,
 * };
 * ```
 */
export interface VerifierOptions {
  /** Accepted `iss` value(s); required. */
  issuer: string | readonly string[];
  /** Accepted `aud` value(s): the token's `aud` must contain one; required. */
  audience: string | readonly string[];
  keys: VerifierKeys;
  /** Seconds of clock skew allowed on `exp`, `nbf` and `iat` (default 30, like PostgREST; at most 300). */
  clockTolerance?: number;
  /** Refuse tokens issued (`iat`) more than this many seconds ago. */
  maxTokenAge?: number;
  /**
   * Accepted `typ` header value(s), compared case-insensitively with the
   * optional `application/` prefix (RFC 8725 §3.11); when set, a token
   * without `typ` is refused. Default: no `typ`, `JWT` or `at+jwt`.
   */
  typ?: string | readonly string[];
  /** Require a `jti` claim (default true: the kit's tokens carry one; Supabase Auth's do not). */
  requireJti?: boolean;
  /** Tokens longer than this many characters are refused before any parsing (default 8192). */
  maxTokenLength?: number;
  /** The verified-token cache: `{ max }` entries (default 10,000), or `false` for none. */
  cache?: { max: number } | false;
  /** Asked on every verification, cache hits included; errors fail closed. */
  revocation?: RevocationCheck;
  /** Restrict the algorithms accepted (default: ES256, RS256, EdDSA, HS256). */
  allowedAlgorithms?: readonly SigningAlg[];
  /** Milliseconds since the epoch; inject a clock in tests (default `Date.now`). */
  clock?: () => number;
  /** Parent of this verifier's outcome counter (default: the process-wide one; `null`: none). */
  metricsParent?: OutcomeCounter | null;
}

/**
 * A reusable token verifier; see {@link createVerifier}.
 *
 * @example
 * ```ts
 * const claims = verifier.verifyCached(token) ?? (await verifier.verify(token));
 * metrics.set(verifier.metrics());
 * ```
 */
export interface Verifier {
  /** Verifies a token, or throws an {@link RlsKitError} with a stable code. */
  verify(token: string): Promise<VerifiedClaims>;
  /**
   * The synchronous fast path: the claims when `token` is in the cache and
   * still valid (revocation checked), `undefined` when the caller must use
   * {@link verify} (not cached, or the revocation check answered
   * asynchronously). Throws for a cached token that is revoked.
   */
  verifyCached(token: string): VerifiedClaims | undefined;
  /** Outcomes so far, by code: `{ ok, ERR_TOKEN_EXPIRED, ... }`. */
  metrics(): OutcomeCounts;
  /** Loads (or fetches) the keys now; throws when they are unusable. For readiness checks. */
  ready(): Promise<void>;
}

const DEFAULT_TYPES = ['jwt', 'at+jwt'];
const MAX_NUMERIC_DATE = Number.MAX_SAFE_INTEGER;
// Checked once, then all three parts are known to be non-empty base64url (the signature may be empty).
const COMPACT = /^[\w-]+\.[\w-]+\.[\w-]*$/;
const FORBIDDEN_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;
const HEADER_MEMO_SIZE = 64;

/** What the verifier keeps of a header that passed {@link checkHeader}. */
interface CheckedHeader {
  readonly alg: SigningAlg;
  readonly kid: string | undefined;
}

/**
 * base64url → text. On Node, decoded into one reused scratch buffer: no
 * allocation per token (Buffer.from's pool churn was a measurable share of
 * the verifier's own time). Synchronous, so sharing the scratch is safe.
 * Elsewhere (edge runtimes) jose's decoder and a TextDecoder.
 */
const nodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer;
const utf8 = new TextDecoder();
const scratch = nodeBuffer?.allocUnsafe(8192);
function decodeSegment(segment: string): string {
  if (nodeBuffer === undefined || scratch === undefined)
    return utf8.decode(base64url.decode(segment));
  if (segment.length > (scratch.length * 4) / 3)
    return nodeBuffer.from(segment, 'base64url').toString('utf8');
  const n = scratch.write(segment, 0, 'base64url');
  return scratch.toString('utf8', 0, n);
}

/**
 * Creates a verifier: one object, built once, reused for every request.
 *
 * Every check is on by default: the algorithm comes from the key the `kid`
 * selects (never from the token), `none` is refused in any casing, `iss`,
 * `aud`, `exp`, `iat`, `sub` (and `jti`) are required, an `iat` in the future
 * beyond the clock tolerance is refused, tokens are length-capped before
 * parsing, duplicate JSON member names are refused, `jku`/`x5u`/`jwk`/`x5c`
 * headers and any `crit` extension are refused, HS256 secrets must be strong.
 * Signature and claim validation are jose's.
 *
 * @example
 * ```ts
 * const verifier = createVerifier({
 *   issuer: 'https://api.example.com',
 *   audience: 'authenticated',
 *   keys: { jwksUrl: 'https://api.example.com/.well-known/jwks.json' },
 *   revocation: revocationList,
 * });
 * const claims = verifier.verifyCached(token) ?? (await verifier.verify(token));
 * ```
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const config = checkOptions(options);
  const clock = options.clock ?? Date.now;
  const customClock = options.clock !== undefined;
  const { allowed, tolerance, maxTokenAge, maxLength, requireJti, types, typRequired } = config;
  const source = keySource(options.keys, allowed);
  const counter = createOutcomeCounter(options.metricsParent);
  const revocation = options.revocation;
  const cache: VerifyCache | undefined =
    options.cache === false ? undefined : createVerifyCache(options.cache?.max ?? 10_000);
  if (cache) source.onRemoved(() => cache.dropDeadKeys());

  // jose options per algorithm, built once: `algorithms` is exactly the selected key's alg.
  const joseOptions = new Map<SigningAlg, JWTVerifyOptions>();
  for (const alg of allowed) {
    joseOptions.set(alg, {
      algorithms: [alg],
      issuer: config.issuer,
      audience: config.audience,
      clockTolerance: tolerance,
      ...(maxTokenAge === undefined ? {} : { maxTokenAge }),
    });
  }

  const fail = (code: RlsKitErrorCode, message: string): never => {
    throw new RlsKitError(code, message);
  };

  // Tokens of one key share one header segment: remember the checked result of recent ones so
  // the header is decoded, scanned and parsed once, not per token. Bounded; only headers that
  // passed every check are kept, so a flood of odd headers just empties it.
  const headerMemo = new Map<string, CheckedHeader>();
  const parseHeader = (segment: string): CheckedHeader => {
    const text = decodeSegment(segment);
    if (findDuplicateMember(text) !== undefined) {
      fail('ERR_TOKEN_MALFORMED', 'the token header repeats a member name');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      fail('ERR_TOKEN_MALFORMED', 'the token header is not JSON');
    }
    if (!isPlainObject(parsed))
      fail('ERR_TOKEN_MALFORMED', 'the token header is not a JSON object');
    const h = parsed as Record<string, unknown>;
    const checked: CheckedHeader = {
      alg: checkHeader(h, allowed, types, typRequired),
      kid: h.kid as string | undefined,
    };
    if (headerMemo.size >= HEADER_MEMO_SIZE) headerMemo.clear();
    headerMemo.set(segment, checked);
    return checked;
  };

  /** Everything but the cache and revocation: structure, header, key, jose, claim types. */
  const verifyToken = async (token: string, now: number): Promise<VerifiedClaims> => {
    if (typeof token !== 'string') fail('ERR_TOKEN_MALFORMED', 'the token must be a string');
    if (token.length > maxLength) {
      fail(
        'ERR_TOKEN_TOO_LARGE',
        `the token is ${token.length} characters; the limit is ${maxLength}`,
      );
    }
    const dot1 = token.indexOf('.');
    const dot2 = dot1 < 0 ? -1 : token.indexOf('.', dot1 + 1);
    if (dot2 < 0 || token.indexOf('.', dot2 + 1) >= 0)
      fail('ERR_TOKEN_MALFORMED', shapeMessage(token));
    if (!COMPACT.test(token)) {
      fail('ERR_TOKEN_MALFORMED', 'the token has characters outside base64url or an empty part');
    }

    const headerSegment = token.slice(0, dot1);
    const header = headerMemo.get(headerSegment) ?? parseHeader(headerSegment);
    const { alg, kid } = header;
    // After the header checks, so an unsigned `alg: none` token is reported as what it is.
    if (dot2 === token.length - 1) fail('ERR_TOKEN_SIGNATURE', 'the token has no signature');

    const payloadText = decodeSegment(token.slice(dot1 + 1, dot2));
    if (findDuplicateMember(payloadText) !== undefined) {
      fail('ERR_TOKEN_MALFORMED', 'the token payload repeats a member name');
    }

    const set = source.peek(now);
    const entry = (set && selectKey(set, kid)) || (await source.resolve(kid, now));
    if (entry.alg !== alg) {
      fail('ERR_TOKEN_ALG', "the token's algorithm is not the one its key is pinned to");
    }
    if (entry.notAfter !== undefined && now / 1000 > entry.notAfter) {
      fail('ERR_KEY_UNKNOWN', 'the token was signed with a retired key that no longer verifies');
    }

    const base = joseOptions.get(alg)!;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(
        token,
        entry.key,
        customClock ? { ...base, currentDate: new Date(now) } : base,
      ));
    } catch (err) {
      throw fromJoseError(err);
    }
    const claims = checkClaims(payload, now / 1000, tolerance, requireJti);
    deepFreeze(claims);
    if (cache && (claims.nbf === undefined || claims.nbf * 1000 <= now)) {
      cache.set(token, claims, entry, cacheUntil(claims, entry, maxTokenAge));
    }
    return claims;
  };

  /** Throws for revoked/unavailable; `false` when live; a promise when the check answers later. */
  const checkRevocationSync = (claims: VerifiedClaims): false | Promise<unknown> => {
    let answer: unknown;
    try {
      answer = revocation!.isRevoked(claims);
    } catch (err) {
      throw revocationUnavailable(err);
    }
    if (answer === true) fail('ERR_TOKEN_REVOKED', 'the token has been revoked');
    if (answer === false) return false;
    if (isThenable(answer)) return answer as Promise<unknown>;
    throw revocationUnavailable(undefined);
  };

  /** The end of an asynchronous revocation answer. */
  const settleRevocation = async (pending: Promise<unknown>): Promise<void> => {
    let revoked: unknown;
    try {
      revoked = await pending;
    } catch (err) {
      throw revocationUnavailable(err);
    }
    if (revoked === true) fail('ERR_TOKEN_REVOKED', 'the token has been revoked');
    if (revoked !== false) throw revocationUnavailable(undefined);
  };

  const cachedClaims = (token: string, now: number): VerifiedClaims | undefined => {
    if (!cache || typeof token !== 'string') return undefined;
    const hit = cache.get(token, now);
    return hit && source.fresh(now) ? hit : undefined;
  };

  return {
    async verify(token) {
      const now = clock();
      try {
        const claims = cachedClaims(token, now) ?? (await verifyToken(token, now));
        if (revocation) {
          const pending = checkRevocationSync(claims);
          if (pending !== false) await settleRevocation(pending);
        }
        counter.record('ok');
        return claims;
      } catch (err) {
        const e = asRlsKitError(err);
        counter.record(e.code);
        throw e;
      }
    },
    verifyCached(token) {
      if (!cache) return undefined;
      const now = clock();
      const claims = cachedClaims(token, now);
      if (!claims) return undefined;
      if (revocation) {
        let answer: false | Promise<unknown>;
        try {
          answer = checkRevocationSync(claims);
        } catch (err) {
          const e = asRlsKitError(err);
          counter.record(e.code);
          throw e;
        }
        if (answer !== false) {
          // Asynchronous answer: the fast path cannot wait; verify() will ask again.
          answer.then(undefined, () => undefined);
          return undefined;
        }
      }
      counter.record('ok');
      return claims;
    },
    metrics: () => counter.snapshot(),
    ready: () => source.load(clock()),
  };
}

/** Validated options, normalised for the hot path. */
interface Config {
  issuer: string | string[];
  audience: string | string[];
  allowed: ReadonlySet<SigningAlg>;
  tolerance: number;
  maxTokenAge: number | undefined;
  maxLength: number;
  requireJti: boolean;
  types: readonly string[];
  typRequired: boolean;
}

function checkOptions(o: VerifierOptions): Config {
  const bad = (message: string): never => {
    throw new RlsKitError('ERR_CONFIG', message);
  };
  if (!isPlainObject(o)) bad('createVerifier needs an options object');
  const nonEmpty = (name: string, v: unknown): string | string[] => {
    if (typeof v === 'string' && v !== '') return v;
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x !== '')) {
      return [...(v as string[])];
    }
    return bad(`${name} is required: a non-empty string or array of strings`);
  };
  const issuer = nonEmpty('issuer', o.issuer);
  const audience = nonEmpty('audience', o.audience);
  const tolerance = o.clockTolerance ?? 30;
  if (
    typeof tolerance !== 'number' ||
    !Number.isFinite(tolerance) ||
    tolerance < 0 ||
    tolerance > 300
  ) {
    bad('clockTolerance must be a number of seconds between 0 and 300');
  }
  const maxTokenAge = o.maxTokenAge;
  if (
    maxTokenAge !== undefined &&
    (typeof maxTokenAge !== 'number' || !(maxTokenAge > 0) || !Number.isFinite(maxTokenAge))
  ) {
    bad('maxTokenAge must be a positive number of seconds');
  }
  const maxLength = o.maxTokenLength ?? 8192;
  if (!Number.isInteger(maxLength) || maxLength < 64 || maxLength > 1 << 20) {
    bad('maxTokenLength must be an integer between 64 and 1048576');
  }
  if (o.cache !== undefined && o.cache !== false) {
    if (!isPlainObject(o.cache) || !Number.isInteger(o.cache.max) || o.cache.max < 1) {
      bad('cache must be false or { max: <positive integer> }');
    }
  }
  const algs = o.allowedAlgorithms ?? SIGNING_ALGS;
  if (!Array.isArray(algs) || algs.length === 0 || algs.some((a) => !SIGNING_ALGS.includes(a))) {
    bad(`allowedAlgorithms must list some of ${SIGNING_ALGS.join(', ')}`);
  }
  let types = DEFAULT_TYPES;
  let typRequired = false;
  if (o.typ !== undefined) {
    types = (Array.isArray(o.typ) ? o.typ : [o.typ]).map((t) =>
      typeof t === 'string' && t !== ''
        ? normalizeTyp(t)
        : bad('typ must be a non-empty string or array of them'),
    );
    if (types.length === 0) bad('typ must not be an empty array');
    typRequired = true;
  }
  if (o.revocation !== undefined && typeof o.revocation?.isRevoked !== 'function') {
    bad('revocation must have an isRevoked(claims) method');
  }
  if (o.clock !== undefined && typeof o.clock !== 'function') bad('clock must be a function');
  return {
    issuer,
    audience,
    allowed: new Set(algs),
    tolerance,
    maxTokenAge,
    maxLength,
    requireJti: o.requireJti ?? true,
    types,
    typRequired,
  };
}

function keySource(keys: VerifierKeys, allowed: ReadonlySet<SigningAlg>): KeySource {
  if (!isPlainObject(keys)) throw new RlsKitError('ERR_CONFIG', 'keys is required');
  const kinds = ['jwks', 'jwksUrl', 'secret', 'keys'].filter((k) => k in keys);
  if (kinds.length !== 1) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'keys must have exactly one of jwks, jwksUrl, secret or keys',
    );
  }
  if ('jwksUrl' in keys) return remoteJwksSource(keys as RemoteJwksOptions, allowed);
  let items: ReturnType<typeof describeVerificationKeys>;
  if ('jwks' in keys) {
    items = describeKeySet(keys.jwks, { origin: 'local', allowed, where: 'the JWKS' });
  } else if ('secret' in keys) {
    if (!allowed.has('HS256'))
      throw new RlsKitError('ERR_CONFIG', 'keys.secret needs HS256 among allowedAlgorithms');
    items = [describeSecret(keys.secret)];
  } else {
    if (!Array.isArray(keys.keys))
      throw new RlsKitError('ERR_CONFIG', 'keys.keys must be an array');
    items = describeVerificationKeys(keys.keys, allowed);
  }
  if (items.length === 0) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'no usable verification key (check the keys and allowedAlgorithms)',
    );
  }
  return staticKeySource(items, 'keys');
}

/** RFC 7515 §4.1.9: `typ` is case-insensitive and `application/` may be omitted. */
function normalizeTyp(typ: string): string {
  const lower = typ.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}

/** Header policy; returns the algorithm. Never echoes header values (attacker-controlled text). */
function checkHeader(
  h: Record<string, unknown>,
  allowed: ReadonlySet<SigningAlg>,
  types: readonly string[],
  typRequired: boolean,
): SigningAlg {
  const alg = h.alg;
  if (typeof alg !== 'string' || alg === '') {
    throw new RlsKitError('ERR_TOKEN_MALFORMED', 'the token header has no "alg"');
  }
  if (alg.toLowerCase() === 'none') {
    throw new RlsKitError('ERR_TOKEN_ALG', 'unsigned tokens (alg "none") are never accepted');
  }
  if (!allowed.has(alg as SigningAlg)) {
    throw new RlsKitError(
      'ERR_TOKEN_ALG',
      "the token's algorithm is not accepted by this verifier",
    );
  }
  for (const name of FORBIDDEN_HEADERS) {
    if (h[name] !== undefined) {
      throw new RlsKitError(
        'ERR_TOKEN_MALFORMED',
        `the token header carries "${name}"; keys named or embedded in a token are never used, and such tokens are refused`,
      );
    }
  }
  if (h.crit !== undefined || h.b64 !== undefined) {
    throw new RlsKitError(
      'ERR_TOKEN_MALFORMED',
      'the token header uses critical extensions ("crit"/"b64"), which this verifier does not support',
    );
  }
  if (h.kid !== undefined && (typeof h.kid !== 'string' || h.kid === '')) {
    throw new RlsKitError(
      'ERR_TOKEN_MALFORMED',
      'the token header has a "kid" that is not a non-empty string',
    );
  }
  const typ = h.typ;
  if (typ === undefined) {
    if (typRequired)
      throw new RlsKitError(
        'ERR_TOKEN_TYPE',
        'the token has no "typ" header; this verifier requires one',
      );
  } else if (typeof typ !== 'string' || !types.includes(normalizeTyp(typ))) {
    throw new RlsKitError(
      'ERR_TOKEN_TYPE',
      'the token\'s "typ" header is not a type this verifier accepts',
    );
  }
  if (h.cty !== undefined) {
    // Nested tokens (cty JWT) would have the inner token's claims trusted on the outer signature.
    throw new RlsKitError(
      'ERR_TOKEN_TYPE',
      'nested or content-typed tokens ("cty") are not accepted',
    );
  }
  return alg as SigningAlg;
}

/** The claim types jose leaves open, and the future `iat` it does not check. */
function checkClaims(
  p: JWTPayload,
  nowSec: number,
  tolerance: number,
  requireJti: boolean,
): VerifiedClaims {
  if (typeof p.sub !== 'string' || p.sub === '')
    badClaims('the "sub" claim must be a non-empty string');
  if (p.jti !== undefined ? typeof p.jti !== 'string' || p.jti === '' : requireJti) {
    badClaims('the "jti" claim must be a non-empty string');
  }
  if (typeof p.iss !== 'string') badClaims('the "iss" claim must be a string');
  if (Array.isArray(p.aud) && (p.aud.length === 0 || p.aud.some(notString))) {
    badClaims('the "aud" claim must be a string or a non-empty array of strings');
  }
  // Required here rather than through jose's requiredClaims, which allocates a Set per token.
  if (p.exp === undefined) badClaims('the token lacks the required "exp" claim');
  if (p.iat === undefined) badClaims('the token lacks the required "iat" claim');
  const exp = numericDate(p.exp, 'exp')!;
  const iat = numericDate(p.iat, 'iat')!;
  numericDate(p.nbf, 'nbf');
  if (exp <= iat) badClaims('the "exp" claim is not after "iat"');
  if (iat > nowSec + tolerance) {
    throw new RlsKitError('ERR_TOKEN_NOT_YET_VALID', 'the token was issued in the future ("iat")');
  }
  return p as VerifiedClaims;
}

function badClaims(message: string): never {
  throw new RlsKitError('ERR_TOKEN_CLAIMS', message);
}

function notString(value: unknown): boolean {
  return typeof value !== 'string';
}

/** RFC 7519 NumericDate: any finite JSON number (fractions allowed), not negative, not past 2^53. */
function numericDate(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    value > MAX_NUMERIC_DATE
  ) {
    badClaims(`the "${name}" claim must be a number of seconds since the epoch`);
  }
  return value as number;
}

/** Until when (ms) a verified token may be served from the cache. */
function cacheUntil(
  claims: VerifiedClaims,
  key: KeyEntry,
  maxTokenAge: number | undefined,
): number {
  let until = claims.exp * 1000;
  if (maxTokenAge !== undefined) until = Math.min(until, (claims.iat + maxTokenAge) * 1000);
  if (key.notAfter !== undefined) until = Math.min(until, key.notAfter * 1000);
  return until;
}

function shapeMessage(token: string): string {
  if (token.trimStart().startsWith('{')) {
    return 'JSON-serialized JWS is not accepted; send the compact form (header.payload.signature)';
  }
  const parts = token.split('.', 6).length;
  if (parts === 5)
    return 'the token is encrypted (JWE, five parts); only signed compact JWS is accepted';
  return 'the token is not a compact JWS (three base64url parts separated by dots)';
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  // for-in instead of Object.values: no array per object; JSON-parsed objects have no inherited keys.
  for (const k in value) {
    const v = (value as Record<string, unknown>)[k];
    if (typeof v === 'object' && v !== null) deepFreeze(v);
  }
}

function isThenable(value: unknown): boolean {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

function revocationUnavailable(cause: unknown): RlsKitError {
  return new RlsKitError(
    'ERR_REVOCATION_UNAVAILABLE',
    'the revocation check did not answer; the token is refused until it does',
    cause === undefined ? undefined : { cause },
  );
}

function asRlsKitError(err: unknown): RlsKitError {
  if (err instanceof RlsKitError) return err;
  return new RlsKitError('ERR_TOKEN_MALFORMED', 'the token could not be verified', { cause: err });
}
