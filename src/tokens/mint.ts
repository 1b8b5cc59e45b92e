import { randomBytes } from 'node:crypto';
import { CompactSign, type CryptoKey, type KeyObject } from 'jose';
import { RlsKitError } from '../errors.js';
import {
  signingKey as activeSigningKey,
  assertStrongSecret,
  formatDuration,
  type Keyring,
  parseDuration,
  SIGNING_ALGS,
  type SigningAlg,
  type SigningKey,
} from '../keys/index.js';
import {
  type ClaimDefinitions,
  type ClaimSchema,
  type ClaimValues,
  defineClaimSchema,
} from './claim-schema.js';
import { base64urlLength, claimSizes } from './size.js';

/** Without an explicit opt-in, no token lives longer than this (seconds). */
export const LONG_TTL_THRESHOLD = 3600;

/** Roles a minter grants without being told to. */
const DEFAULT_ROLES = ['anon', 'authenticated'] as const;

/**
 * Roles that can log in or administer the database: a token must never
 * carry them, whatever the options say (PostgREST would `SET ROLE` to them).
 */
const NEVER_ROLES = new Set([
  'postgres',
  'authenticator',
  'pgbouncer',
  'dashboard_user',
  'cli_login_postgres',
  'postgres_fdw_user',
]);
// Supabase's key-management (pgsodium) and internal roles, Postgres' own.
const NEVER_ROLE_PREFIXES = ['pg_', 'supabase_', 'rls_kit', 'pgsodium'];
const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TEXT = /^[\x21-\x7e]{1,256}$/;

/** Options of {@link createMinter}. */
export interface MinterOptions<S extends ClaimDefinitions = ClaimDefinitions> {
  /** Signs with the keyring's active key (give this or `signingKey`). */
  keyring?: Keyring;
  /** A key already imported with `signingKey(keyring)` (give this or `keyring`). */
  signingKey?: SigningKey;
  /** `iss` of every token, e.g. `https://api.example.com`. */
  issuer: string;
  /** `aud` of every token; one audience is written as a string. */
  audience: string | readonly string[];
  /** The custom claims tokens may carry; none when absent. */
  claimSchema?: ClaimSchema<S>;
  /** Default lifetime, `10m` unless given. */
  ttl?: string | number;
  /** Longest lifetime a `mint` call may ask for; `1h` unless given. */
  maxTtl?: string | number;
  /** Allows `maxTtl` (and so `ttl`) over one hour. Long-lived bearer tokens outlive revocation windows. */
  allowLongTtl?: boolean;
  /** Largest token in bytes; `1024` unless given. */
  sizeBudget?: number;
  /** Header `typ`: `JWT` (what Supabase and PostgREST expect) or `at+jwt` (RFC 9068). */
  typ?: 'JWT' | 'at+jwt';
  /**
   * Roles besides `anon` and `authenticated` a token may carry (Postgres
   * roles without LOGIN). `service_role` bypasses RLS and also needs
   * `allowServiceRole`; database-administration roles are never allowed.
   */
  allowRoles?: readonly string[];
  /** Second, explicit opt-in for `service_role` in `allowRoles`. */
  allowServiceRole?: boolean;
  /** `sub` must be a uuid (what `auth.uid()` casts to) unless `any`. Default `uuid`. */
  subject?: 'uuid' | 'any';
  /** Current time in epoch ms; tests pass a fake clock. */
  clock?: () => number;
}

/** One token to mint. */
export interface MintInput<S extends ClaimDefinitions = ClaimDefinitions> {
  /** The user (a uuid unless the minter says otherwise). */
  sub: string;
  /** `authenticated` unless given; only roles the minter allows. */
  role?: string;
  /** Custom claims, checked against the minter's claim schema. */
  claims?: ClaimValues<S>;
  /** The refresh family (a uuid) for tokens issued through refresh. */
  sid?: string;
  /** Lifetime of this token, at most the minter's `maxTtl`. */
  ttl?: string | number;
}

/** A minted token with the values a caller may want to record (for example for revocation). */
export interface MintedToken {
  readonly token: string;
  readonly jti: string;
  /** Epoch seconds. */
  readonly iat: number;
  /** Epoch seconds. */
  readonly exp: number;
  readonly kid: string;
}

/** Mints kit tokens with one pre-imported key; reuse one per process. */
export interface Minter<S extends ClaimDefinitions = ClaimDefinitions> {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly issuer: string;
  /** Mints a token and returns it as a compact JWS. */
  mint(input: MintInput<S>): Promise<string>;
  /** Mints a token and returns it with its `jti`, `iat`, `exp` and `kid`. */
  issue(input: MintInput<S>): Promise<MintedToken>;
}

const encoder = new TextEncoder();

/**
 * Creates a minter for the kit's token shape (DESIGN.md "Kit tokens"):
 * header `alg`, `kid`, `typ`; claims `iss`, `sub`, `aud`, `exp`, `iat`,
 * `jti` (128 random bits, base64url), `role`, `sid` when given, and the
 * schema's custom claims — nothing else.
 *
 * Everything that can be decided once is decided here: the key is imported
 * once, HS256 secrets are checked (`ERR_KEY_WEAK`), options are validated
 * (`ERR_CONFIG`; `ERR_TOKEN_TTL` for lifetimes), and a probe signature
 * measures the header and signature length so every `mint` knows the
 * token's exact size before signing. Signing goes through jose's
 * `CompactSign`.
 *
 * Per token: unknown or mistyped claims → `ERR_TOKEN_CLAIMS`; a role not
 * allowed → `ERR_ROLE_NOT_ALLOWED`; a lifetime over the cap →
 * `ERR_TOKEN_TTL`; over the size budget → `ERR_TOKEN_SIZE`, naming the
 * largest claims and their sizes.
 *
 * @example
 * ```ts
 * const minter = await createMinter({
 *   keyring, issuer: 'https://api.example.com', audience: 'authenticated',
 *   claimSchema: exampleClaimSchema,
 * });
 * const token = await minter.mint({ sub: userId, claims: { org_id: orgId, user_role: 'member' } });
 * ```
 */
export async function createMinter<const S extends ClaimDefinitions = Record<never, never>>(
  options: MinterOptions<S>,
): Promise<Minter<S>> {
  const key = await resolveKey(options);
  const issuer = checkText(options.issuer, 'issuer');
  const audiences = (
    typeof options.audience === 'string' ? [options.audience] : [...(options.audience ?? [])]
  ).map((a) => checkText(a, 'audience'));
  if (audiences.length === 0) throw new RlsKitError('ERR_CONFIG', 'minter: audience is required');
  const audience: string | string[] = audiences.length === 1 ? (audiences[0] as string) : audiences;
  const schema = (options.claimSchema ?? defineClaimSchema({})) as ClaimSchema<S>;
  const typ = options.typ ?? 'JWT';
  if (typ !== 'JWT' && typ !== 'at+jwt') {
    throw new RlsKitError('ERR_CONFIG', 'minter: typ must be JWT or at+jwt');
  }
  const sizeBudget = options.sizeBudget ?? 1024;
  if (!Number.isSafeInteger(sizeBudget) || sizeBudget < 128) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'minter: sizeBudget must be a whole number of bytes, 128 or more',
    );
  }
  const maxTtl = ttlSeconds(options.maxTtl ?? '1h', 'maxTtl');
  if (maxTtl > LONG_TTL_THRESHOLD && options.allowLongTtl !== true) {
    throw new RlsKitError(
      'ERR_TOKEN_TTL',
      `maxTtl ${formatDuration(maxTtl)} is over 1h; long-lived tokens outlive revocation, so set allowLongTtl to opt in`,
    );
  }
  const defaultTtl = checkTtl(ttlSeconds(options.ttl ?? '10m', 'ttl'), maxTtl);
  const roles = allowedRoles(options);
  const subjectIsUuid = (options.subject ?? 'uuid') === 'uuid';
  const clock = options.clock ?? Date.now;

  const header = { alg: key.alg, kid: key.kid, typ };
  // One probe signature: proves the key signs, and gives the exact header and
  // signature lengths, so the size budget is enforced before signing.
  const probe = await new CompactSign(encoder.encode('{}'))
    .setProtectedHeader(header)
    .sign(key.key);
  const [headerPart = '', , signaturePart = ''] = probe.split('.');
  const fixedLength = headerPart.length + signaturePart.length + 2;

  const issue = async (input: MintInput<S>): Promise<MintedToken> => {
    if (typeof input !== 'object' || input === null) {
      throw new RlsKitError(
        'ERR_TOKEN_CLAIMS',
        'mint: expected { sub, role?, claims?, sid?, ttl? }',
      );
    }
    const { sub, sid } = input;
    if (typeof sub !== 'string' || !(subjectIsUuid ? UUID.test(sub) : TEXT.test(sub))) {
      throw new RlsKitError(
        'ERR_TOKEN_CLAIMS',
        subjectIsUuid
          ? 'sub must be a uuid (the user id auth.uid() returns)'
          : 'sub must be 1-256 printable ASCII characters',
      );
    }
    const role = input.role ?? 'authenticated';
    if (!roles.has(role)) {
      throw new RlsKitError(
        'ERR_ROLE_NOT_ALLOWED',
        `role ${JSON.stringify(String(role).slice(0, 64))} is not allowed for this minter (allowed: ${[...roles].join(', ')})`,
      );
    }
    if (sid !== undefined && (typeof sid !== 'string' || !UUID.test(sid))) {
      throw new RlsKitError('ERR_TOKEN_CLAIMS', 'sid must be a uuid (the refresh family)');
    }
    const ttl =
      input.ttl === undefined ? defaultTtl : checkTtl(ttlSeconds(input.ttl, 'ttl'), maxTtl);
    const custom = schema.check(input.claims);
    const iat = Math.floor(clock() / 1000);
    const exp = iat + ttl;
    const jti = randomBytes(16).toString('base64url');
    const payload: Record<string, unknown> = {
      iss: issuer,
      sub,
      aud: audience,
      exp,
      iat,
      jti,
      role,
    };
    if (sid !== undefined) payload.sid = sid;
    Object.assign(payload, custom);
    const json = JSON.stringify(payload);
    const bytes = encoder.encode(json);
    const length = fixedLength + base64urlLength(bytes.length);
    if (length > sizeBudget) {
      const largest = claimSizes(payload)
        .slice(0, 3)
        .map((c) => `${c.name} ${c.bytes} B`)
        .join(', ');
      throw new RlsKitError(
        'ERR_TOKEN_SIZE',
        `the token would be ${length} bytes, over the ${sizeBudget}-byte budget; largest claims: ${largest}`,
      );
    }
    const token = await new CompactSign(bytes).setProtectedHeader(header).sign(key.key);
    return { token, jti, iat, exp, kid: key.kid };
  };

  return Object.freeze({
    kid: key.kid,
    alg: key.alg,
    issuer,
    issue,
    mint: async (input: MintInput<S>) => (await issue(input)).token,
  });
}

async function resolveKey(options: MinterOptions<ClaimDefinitions>): Promise<SigningKey> {
  if ((options.keyring === undefined) === (options.signingKey === undefined)) {
    throw new RlsKitError('ERR_CONFIG', 'minter: give exactly one of keyring or signingKey');
  }
  if (options.keyring) return activeSigningKey(options.keyring);
  const given = options.signingKey as SigningKey;
  if (!SIGNING_ALGS.includes(given.alg)) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'minter: signingKey.alg must be ES256, RS256, EdDSA or HS256',
    );
  }
  if (typeof given.kid !== 'string' || !/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(given.kid)) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'minter: signingKey.kid must be 1-64 characters of A-Z a-z 0-9 . _ -',
    );
  }
  if (given.alg !== 'HS256') return given;
  return { ...given, key: await strongHmacKey(given.key) };
}

/**
 * HS256 keys handed in directly are checked like every other way in: raw
 * bytes and secret KeyObjects in full, CryptoKeys by their length when they
 * are not extractable (their bytes cannot be read, so entropy cannot be
 * judged; the keyring checked them on import).
 */
async function strongHmacKey(key: CryptoKey | KeyObject | Uint8Array): Promise<CryptoKey> {
  let bytes: Uint8Array | undefined;
  if (key instanceof Uint8Array) bytes = key;
  else if ('export' in key && typeof key.export === 'function') {
    bytes = (key as { export(): Uint8Array }).export();
  } else {
    const crypto_ = key as CryptoKey;
    if (crypto_.extractable) bytes = new Uint8Array(await crypto.subtle.exportKey('raw', crypto_));
    else {
      const bits = (crypto_.algorithm as { length?: number }).length ?? 0;
      if (bits < 256) {
        throw new RlsKitError(
          'ERR_KEY_WEAK',
          `the HS256 key is ${bits / 8} bytes; use at least 32 random bytes (rls-kit keys generate --alg HS256)`,
        );
      }
      return crypto_;
    }
  }
  assertStrongSecret(bytes, 'HS256 key');
  return crypto.subtle.importKey('raw', bytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
}

function allowedRoles(options: MinterOptions<ClaimDefinitions>): ReadonlySet<string> {
  const roles = new Set<string>(DEFAULT_ROLES);
  for (const role of options.allowRoles ?? []) {
    if (typeof role !== 'string' || !ROLE_NAME.test(role)) {
      throw new RlsKitError('ERR_CONFIG', 'minter: allowRoles holds an invalid role name');
    }
    if (NEVER_ROLES.has(role) || NEVER_ROLE_PREFIXES.some((p) => role.startsWith(p))) {
      throw new RlsKitError(
        'ERR_ROLE_NOT_ALLOWED',
        `minter: role ${role} administers the database or logs in; tokens never carry it`,
      );
    }
    if (role === 'service_role' && options.allowServiceRole !== true) {
      throw new RlsKitError(
        'ERR_ROLE_NOT_ALLOWED',
        'minter: service_role bypasses Row Level Security; set allowServiceRole as well to mint it',
      );
    }
    roles.add(role);
  }
  return roles;
}

function checkText(value: unknown, what: string): string {
  if (typeof value !== 'string' || !TEXT.test(value)) {
    throw new RlsKitError('ERR_CONFIG', `minter: ${what} must be 1-256 printable ASCII characters`);
  }
  return value;
}

function ttlSeconds(value: string | number, what: string): number {
  try {
    return parseDuration(value, what);
  } catch (err) {
    throw new RlsKitError('ERR_TOKEN_TTL', (err as Error).message, { cause: err });
  }
}

function checkTtl(ttl: number, max: number): number {
  if (ttl < 1) throw new RlsKitError('ERR_TOKEN_TTL', 'the ttl must be at least 1s');
  if (ttl > max) {
    throw new RlsKitError(
      'ERR_TOKEN_TTL',
      `the ttl ${formatDuration(ttl)} is over this minter's maximum of ${formatDuration(max)}`,
    );
  }
  return ttl;
}
