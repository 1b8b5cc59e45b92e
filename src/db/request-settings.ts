import { Buffer } from 'node:buffer';
import { RlsKitError } from '../errors.js';

/**
 * The claims a request runs with: those of a token that has already been
 * verified (signature, `exp`, `iss`, `aud`, revocation), or `{ role: 'anon' }`
 * for a request without a token. They become `request.jwt.claims`, and their
 * `role` claim picks the Postgres role the queries run as. The tokens
 * capability's `VerifiedClaims` is assignable to it.
 *
 * @example
 * ```ts
 * const claims: RequestClaims = { sub: '6f1c…', role: 'authenticated', org_id: '0a2b…' };
 * ```
 */
export type RequestClaims = Readonly<Record<string, unknown>>;

/**
 * Where the claims come from: the verified claims themselves, or a function
 * that verifies a token and returns them. The function runs before a pooled
 * connection is taken, so a slow verifier (a JWKS fetch, a revocation check)
 * never holds a connection; whatever it throws reaches the caller unchanged.
 *
 * @example
 * ```ts
 * // today: claims from any verifier
 * await asUser(db, payload, (trx) => trx.selectFrom('documents').selectAll().execute());
 * // with a token and a verifier
 * await asUser(db, () => verifyToken(bearer), (trx) => trx.selectFrom('documents').selectAll().execute());
 * ```
 */
export type ClaimsSource = RequestClaims | (() => Promise<RequestClaims>);

/**
 * Request headers as a fetch `Headers` object, Node's `IncomingHttpHeaders`,
 * or a plain record (any letter case; arrays are repeated headers).
 *
 * @example
 * ```ts
 * const headers: RequestHeaders = { 'X-Request-Id': 'r-1', accept: ['application/json'] };
 * ```
 */
export type RequestHeaders =
  | Headers
  | Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * The HTTP request the queries serve, exposed to SQL the way PostgREST does:
 * `request.method`, `request.path` and `request.headers` (a JSON object with
 * lower-cased names). These are client-controlled: never key access on them.
 *
 * Credential headers (`authorization`, `proxy-authorization`, `cookie`) are
 * left out of `request.headers`: the claims already stand for the verified
 * token, and any SQL in the transaction (an audit trigger, a logging function)
 * could otherwise copy a replayable bearer token or session cookie.
 *
 * @example
 * ```ts
 * const request: RequestContext = { method: req.method, path: req.url, headers: req.headers };
 * ```
 */
export interface RequestContext {
  /** `request.method`, e.g. `GET`. */
  method?: string | undefined;
  /** `request.path`, e.g. `/documents`. */
  path?: string | undefined;
  /** `request.headers`; repeated headers are joined with `, `. */
  headers?: RequestHeaders | undefined;
}

/**
 * Options of {@link asUser} and {@link asUserPg}.
 *
 * @example
 * ```ts
 * const options: AsUserOptions = { allowRoles: ['service_role'], request: { method: 'POST', path: '/jobs' } };
 * ```
 */
export interface AsUserOptions {
  /**
   * Roles allowed beyond `anon` and `authenticated`, e.g. `['service_role']`.
   * Only these may have BYPASSRLS. A role that can log in or is a superuser
   * is refused even when listed, as are `pg_*` roles and `none`.
   */
  allowRoles?: readonly string[] | undefined;
  /** The HTTP request behind the queries, for `request.method` / `.path` / `.headers`. */
  request?: RequestContext | undefined;
  /**
   * Run the kit's settings statement, and `queryAsUser`'s query, as named
   * prepared statements: parsed and planned once per pooled connection
   * instead of on every request (row level security makes planning the
   * larger part of a small query's cost). Default `true`, as PostgREST and
   * Postgres.js do. Set `false` behind a pooler in transaction mode that
   * does not carry prepared statements (PgBouncer before 1.21 without
   * `max_prepared_statements`, Supabase's pooler on port 6543).
   */
  preparedStatements?: boolean | undefined;
}

/**
 * The roles a verified token may name without the caller opting in.
 *
 * @example
 * ```ts
 * DEFAULT_ROLES.includes(claims.role); // anon or authenticated
 * ```
 */
export const DEFAULT_ROLES: readonly string[] = Object.freeze(['anon', 'authenticated']);

/**
 * Largest accepted claims JSON in UTF-8 bytes (16 KiB): a token carrying
 * more is almost certainly a mistake, and every query would parse it.
 *
 * @example
 * ```ts
 * if (Buffer.byteLength(JSON.stringify(claims)) > MAX_CLAIMS_BYTES) reject();
 * ```
 */
export const MAX_CLAIMS_BYTES = 16 * 1024;

/** Validated settings of one call, ready to bind. @internal */
export interface RequestSettings {
  readonly role: string;
  /** Whether `role` may have BYPASSRLS (only roles the caller opted in to). */
  readonly bypassAllowed: boolean;
  /** `$1`..`$5` of the settings statements: role, claims, method, path, headers. */
  readonly values: readonly [string, string, string, string, string];
  /** {@link AsUserOptions.preparedStatements}, default applied. */
  readonly preparedStatements: boolean;
}

/** The SQL of one settings step and how to read its result. @internal */
export interface SettingsStatement {
  readonly sql: string;
  readonly parameters: (string | boolean)[];
  /** True when the statement also checks the role's attributes (0 rows = refused). */
  readonly checksRole: boolean;
}

// Every setting in one statement so the whole step is one round trip; all
// transaction-local (`true`), so COMMIT or ROLLBACK leaves nothing behind on
// the pooled connection. `set_config('role', …, true)` is `SET LOCAL ROLE`
// with the role bound as a value, as PostgREST does it. The legacy
// `request.jwt.claim*` settings are blanked because Supabase's `auth.uid()`,
// `auth.role()`, `auth.email()` and `auth.jwt()` prefer them when non-empty:
// a stale session-level value must not override the verified claims.
// `num_nonnulls` folds the results into one small integer so the claims JSON
// does not travel back over the wire.
const SET_ALL = `pg_catalog.num_nonnulls(
  pg_catalog.set_config('role', $1::text, true),
  pg_catalog.set_config('request.jwt.claims', $2::text, true),
  pg_catalog.set_config('request.method', $3::text, true),
  pg_catalog.set_config('request.path', $4::text, true),
  pg_catalog.set_config('request.headers', $5::text, true),
  pg_catalog.set_config('request.jwt.claim', '', true),
  pg_catalog.set_config('request.jwt.claim.sub', '', true),
  pg_catalog.set_config('request.jwt.claim.role', '', true),
  pg_catalog.set_config('request.jwt.claim.email', '', true)
) as applied`;

/** The settings alone, for roles already checked on this pool. @internal */
export const SETTINGS_SQL = `select ${SET_ALL}`;

/**
 * The settings guarded by the role's attributes: the row (and with it every
 * `set_config`) exists only when the role may serve requests, so the check
 * costs no extra round trip. Planning the `pg_roles` lookup costs more than
 * a loopback round trip (~100 µs measured), hence the per-pool cache below.
 * @internal
 */
export const CHECKED_SETTINGS_SQL = `select ${SET_ALL}
from pg_catalog.pg_roles r
where r.rolname = $1::text
  and not r.rolcanlogin
  and not r.rolsuper
  and (not r.rolbypassrls or $6::boolean)`;

/** Text the end-of-request check's error carries, so it can be told from other failures. @internal */
export const ENDED_EARLY = 'rls_kit: request transaction ended inside the callback';

/**
 * The end-of-request check, sent with COMMIT in one round trip
 * ({@link END_OF_REQUEST_SQL}: an error makes the server skip the COMMIT). No row while the transaction-local role
 * is in place; once the callback ended the transaction itself (COMMIT or
 * ROLLBACK, perhaps followed by a BEGIN of its own) the role is 'none', and
 * reading a setting that cannot exist raises an error naming
 * {@link ENDED_EARLY} — so work done afterwards as the pool's login user is
 * never committed by the kit. In an aborted transaction (a swallowed error)
 * it fails with 25P02. Plain SQL rather than a DO block: nothing to compile.
 * `current_setting` is STABLE, so the planner never evaluates the branch
 * while planning.
 * @internal
 */
export const END_CHECK_SQL = `select where case when pg_catalog.current_setting('role') = 'none'
  then pg_catalog.current_setting('${ENDED_EARLY}') is null else false end`;

/**
 * The end of a request in one simple-protocol round trip: the check, then
 * COMMIT. An error in the check skips the COMMIT.
 * @internal
 */
export const END_OF_REQUEST_SQL = `${END_CHECK_SQL}; commit`;

/**
 * Whether an error of {@link END_OF_REQUEST_SQL} came from the check (the
 * transaction is still open and must be rolled back) rather than from COMMIT.
 * @internal
 */
export function isCheckFailure(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return message.includes(ENDED_EARLY) || (err as { code?: unknown }).code === '25P02';
}

/**
 * Maps a failure of the end-of-request round trip (check + COMMIT) to a kit
 * error.
 * @internal
 */
export function endOfRequestError(api: 'asUser' | 'asUserPg', err: unknown): RlsKitError {
  const message = err instanceof Error ? err.message : String(err);
  if (message.includes(ENDED_EARLY)) {
    return new RlsKitError(
      'ERR_DB_QUERY',
      `the callback ended the request transaction (COMMIT or ROLLBACK inside ${api}); statements after it ran without the user settings and were not committed by the kit: never end the transaction inside the callback`,
      { cause: err },
    );
  }
  if ((err as { code?: unknown }).code === '25P02') {
    return new RlsKitError(
      'ERR_DB_QUERY',
      'the transaction was rolled back at COMMIT because a query in the callback failed: let database errors propagate out of the callback',
      { cause: err },
    );
  }
  return new RlsKitError(
    'ERR_DB_QUERY',
    `the request transaction could not commit (${message.split('\n')[0]}): retry the request`,
    { cause: err },
  );
}

/** Roles checked per pool (or Kysely instance) and when; re-checked after {@link ROLE_CHECK_TTL_MS}. */
const checkedRoles = new WeakMap<object, Map<string, number>>();

/**
 * How long a role's attributes, once checked, are trusted on a pool. Short
 * enough that an `ALTER ROLE … LOGIN` is noticed within a minute, long enough
 * that the check's planning cost vanishes from steady-state traffic.
 * @internal
 */
export const ROLE_CHECK_TTL_MS = 60_000;

// `apikey` carries Supabase's anon or service_role key: as replayable as a token.
const CREDENTIAL_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'apikey',
  'x-api-key',
]);
// Postgres text and jsonb cannot hold NUL, and jsonb rejects unpaired
// surrogates: refusing them here beats a policy failing on every query later.
const UNSTORABLE = /[\0]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const MAX_ROLE_BYTES = 63; // NAMEDATALEN - 1: longer names are silently truncated by Postgres

/**
 * Resolves and validates everything a call needs before it touches the
 * database: the claims (from a function when given one), the role against the
 * allowlist, and the request context.
 * @internal
 */
export async function resolveRequestSettings(
  source: ClaimsSource,
  options: AsUserOptions | undefined,
): Promise<RequestSettings> {
  // Usage errors first: they are cheaper than running a verifier.
  const extra = validateAllowRoles(options?.allowRoles);
  const prepared = options?.preparedStatements;
  if (prepared !== undefined && typeof prepared !== 'boolean') {
    throw new RlsKitError(
      'ERR_USAGE',
      `preparedStatements must be true or false, not ${typeof prepared}: leave it out for the default (true)`,
    );
  }
  const claims: unknown = typeof source === 'function' ? await source() : source;
  const { json, role } = serializeClaims(claims);
  checkRole(role, extra);
  const request = options?.request;
  return {
    role,
    bypassAllowed: !DEFAULT_ROLES.includes(role),
    preparedStatements: prepared !== false,
    values: [
      role,
      json,
      requestText(request?.method, 'method'),
      requestText(request?.path, 'path'),
      headersJson(request?.headers),
    ],
  };
}

/**
 * The statement for this call: the plain one when `role` was checked on
 * `pool` recently, else the checked one.
 * @internal
 */
export function settingsStatement(pool: object, settings: RequestSettings): SettingsStatement {
  const checkedAt = checkedRoles.get(pool)?.get(settings.role);
  if (checkedAt !== undefined && Date.now() - checkedAt < ROLE_CHECK_TTL_MS) {
    return { sql: SETTINGS_SQL, parameters: [...settings.values], checksRole: false };
  }
  return {
    sql: CHECKED_SETTINGS_SQL,
    parameters: [...settings.values, settings.bypassAllowed],
    checksRole: true,
  };
}

/**
 * Reads the settings statement's result: remembers a role that passed, and on
 * a refusal asks `pg_roles` why (one extra query, on the failure path only)
 * and throws `ERR_ROLE_NOT_ALLOWED`.
 * @internal
 */
export async function settingsApplied(
  pool: object,
  settings: RequestSettings,
  statement: SettingsStatement,
  rowCount: number,
  query: (sql: string, parameters: unknown[]) => Promise<readonly Record<string, unknown>[]>,
): Promise<void> {
  if (rowCount === 1) {
    if (statement.checksRole) {
      let roles = checkedRoles.get(pool);
      if (roles === undefined) {
        roles = new Map();
        checkedRoles.set(pool, roles);
      }
      roles.set(settings.role, Date.now());
    }
    return;
  }
  forgetRole(pool, settings.role);
  const rows = await query(
    'select rolcanlogin, rolsuper, rolbypassrls from pg_catalog.pg_roles where rolname = $1::text',
    [settings.role],
  );
  const row = rows[0];
  const name = quoteRole(settings.role);
  let why: string;
  if (row === undefined) {
    why = `role ${name} does not exist in this database cluster: apply the kit's migrations (rls-kit migrate) or create it`;
  } else if (row.rolsuper === true) {
    why = `role ${name} is a superuser: requests never run as a superuser; use anon, authenticated or a NOLOGIN role`;
  } else if (row.rolcanlogin === true) {
    why = `role ${name} can log in: requests run only as NOLOGIN roles; use anon, authenticated or a NOLOGIN role`;
  } else {
    why = `role ${name} has BYPASSRLS: only roles listed in allowRoles may bypass row level security`;
  }
  throw new RlsKitError('ERR_ROLE_NOT_ALLOWED', why);
}

/**
 * Maps a failure of the settings statement to a kit error, forgetting the
 * role's cached check so the next call looks again.
 * @internal
 */
export function settingsError(pool: object, settings: RequestSettings, err: unknown): RlsKitError {
  if (err instanceof RlsKitError) return err;
  forgetRole(pool, settings.role);
  const code = (err as { code?: unknown }).code;
  const name = quoteRole(settings.role);
  if (code === '42501') {
    return new RlsKitError(
      'ERR_ROLE_NOT_ALLOWED',
      `the database user cannot switch to role ${name}: grant ${name} to the user the pool connects as`,
      { cause: err },
    );
  }
  if (code === '22023') {
    return new RlsKitError(
      'ERR_ROLE_NOT_ALLOWED',
      `role ${name} does not exist in this database cluster: apply the kit's migrations (rls-kit migrate) or create it`,
      { cause: err },
    );
  }
  const detail =
    typeof code === 'string'
      ? code
      : err instanceof Error
        ? err.message.split('\n')[0]
        : String(err);
  return new RlsKitError(
    'ERR_DB_QUERY',
    `setting the request role and claims failed (${detail}): check the connection and that the server is Postgres`,
    { cause: err },
  );
}

function forgetRole(pool: object, role: string): void {
  checkedRoles.get(pool)?.delete(role);
}

function validateAllowRoles(allowRoles: readonly string[] | undefined): ReadonlySet<string> {
  if (allowRoles === undefined) return new Set();
  if (!Array.isArray(allowRoles)) {
    throw new RlsKitError(
      'ERR_USAGE',
      'allowRoles must be an array of role names, e.g. ["service_role"]',
    );
  }
  for (const role of allowRoles) {
    if (typeof role !== 'string' || role === '' || Buffer.byteLength(role) > MAX_ROLE_BYTES) {
      throw new RlsKitError(
        'ERR_USAGE',
        'allowRoles must hold role names of 1 to 63 bytes, e.g. ["service_role"]',
      );
    }
    if (isForbiddenRole(role)) {
      throw new RlsKitError(
        'ERR_USAGE',
        `allowRoles lists ${quoteRole(role)}, which can never serve requests: remove it`,
      );
    }
  }
  return new Set(allowRoles);
}

// `none` resets the role to the session user (set_config('role', 'none')
// means RESET ROLE); `pg_*` are Postgres's predefined roles (file access,
// reading all data, signalling backends): neither may ever serve a request.
function isForbiddenRole(role: string): boolean {
  return role.toLowerCase() === 'none' || role.startsWith('pg_') || role.includes('\0');
}

function checkRole(role: string, extra: ReadonlySet<string>): void {
  if (isForbiddenRole(role)) {
    throw new RlsKitError(
      'ERR_ROLE_NOT_ALLOWED',
      `the claims' role ${quoteRole(role)} can never serve requests: issue tokens for anon or authenticated`,
    );
  }
  if (!DEFAULT_ROLES.includes(role) && !extra.has(role)) {
    throw new RlsKitError(
      'ERR_ROLE_NOT_ALLOWED',
      `the claims' role ${quoteRole(role)} is not allowed: only anon and authenticated run by default; pass allowRoles: [${quoteRole(role)}] to opt in`,
    );
  }
}

/**
 * Serializes claims to the JSON Postgres will see, refusing anything that is
 * not plain JSON. The role is read from what was serialized (not from the
 * object again), so a getter cannot make the role set differ from the role in
 * `request.jwt.claims`.
 */
function serializeClaims(claims: unknown): { json: string; role: string } {
  if (typeof claims === 'string') {
    throw new RlsKitError(
      'ERR_CLAIMS',
      'claims must be the verified claims object, not a string: verify the token first and pass its payload',
    );
  }
  if (!isPlainObject(claims)) {
    throw new RlsKitError(
      'ERR_CLAIMS',
      `claims must be a plain JSON object, got ${describe(claims)}: pass the verified token payload`,
    );
  }
  let root: unknown;
  let first = true;
  let role: unknown;
  let json: string | undefined;
  try {
    json = JSON.stringify(claims, function (this: unknown, key: string, value: unknown) {
      if (first) {
        first = false;
        root = value;
      } else if (this === root && key === 'role') {
        role = value;
      }
      checkJsonValue(key, value);
      return value;
    });
  } catch (err) {
    if (err instanceof RlsKitError) throw err;
    // Cycles (TypeError) and absurd nesting (RangeError) end up here.
    throw new RlsKitError(
      'ERR_CLAIMS',
      `claims cannot be serialized to JSON (${err instanceof Error ? err.message.split('\n')[0] : String(err)}): pass plain JSON data without cycles`,
      { cause: err },
    );
  }
  if (json === undefined || !isPlainObject(root)) {
    throw new RlsKitError(
      'ERR_CLAIMS',
      'claims must serialize to a JSON object: pass the verified token payload',
    );
  }
  if (json.length > MAX_CLAIMS_BYTES / 3 && Buffer.byteLength(json) > MAX_CLAIMS_BYTES) {
    throw new RlsKitError(
      'ERR_CLAIMS',
      `claims are larger than ${MAX_CLAIMS_BYTES} bytes of JSON: keep tokens small and look bulky data up in the database`,
    );
  }
  if (typeof role !== 'string' || role === '') {
    throw new RlsKitError(
      'ERR_CLAIMS',
      'claims have no "role" string: verified claims must name the Postgres role to use, e.g. "authenticated"',
    );
  }
  return { json, role };
}

function checkJsonValue(key: string, value: unknown): void {
  if (UNSTORABLE.test(key)) {
    throw new RlsKitError(
      'ERR_CLAIMS',
      'a claim name contains NUL or an unpaired surrogate, which Postgres JSON cannot hold',
    );
  }
  switch (typeof value) {
    case 'string':
      if (UNSTORABLE.test(value)) {
        throw new RlsKitError(
          'ERR_CLAIMS',
          `claim ${quoteKey(key)} contains NUL or an unpaired surrogate, which Postgres JSON cannot hold`,
        );
      }
      return;
    case 'number':
      if (!Number.isFinite(value)) {
        throw new RlsKitError(
          'ERR_CLAIMS',
          `claim ${quoteKey(key)} is ${value}, which JSON cannot represent`,
        );
      }
      return;
    case 'bigint':
    case 'function':
    case 'symbol':
      throw new RlsKitError(
        'ERR_CLAIMS',
        `claim ${quoteKey(key)} is a ${typeof value}, which is not JSON: pass plain JSON data`,
      );
    case 'object':
      if (value !== null && !Array.isArray(value) && !isPlainObject(value)) {
        throw new RlsKitError(
          'ERR_CLAIMS',
          `claim ${quoteKey(key)} is ${describe(value)}, which is not JSON: pass plain JSON data`,
        );
      }
      return;
    default:
      // boolean, and undefined (left out, as JSON does)
      return;
  }
}

function requestText(value: string | undefined, what: 'method' | 'path'): string {
  if (value === undefined) return '';
  if (typeof value !== 'string' || value.includes('\0')) {
    throw new RlsKitError('ERR_USAGE', `request.${what} must be a string without NUL characters`);
  }
  return value;
}

function headersJson(headers: RequestHeaders | undefined): string {
  // An absent context still gets '{}' rather than '': SQL written for
  // PostgREST casts request.headers to json, and '' would fail that cast.
  if (headers === undefined) return '{}';
  const out: Record<string, string> = {};
  const add = (name: string, value: unknown) => {
    if (value === undefined) return;
    const lower = name.toLowerCase();
    if (CREDENTIAL_HEADERS.has(lower)) return;
    const text =
      typeof value === 'string'
        ? value
        : Array.isArray(value) && value.every((v) => typeof v === 'string')
          ? value.join(', ')
          : undefined;
    if (text === undefined || UNSTORABLE.test(text) || UNSTORABLE.test(lower)) {
      throw new RlsKitError(
        'ERR_USAGE',
        `request header ${quoteKey(lower)} must be a string (or strings) without NUL characters`,
      );
    }
    // Names differing only in case are one HTTP header: join like repeats.
    out[lower] = out[lower] === undefined ? text : `${out[lower]}, ${text}`;
  };
  if (typeof Headers !== 'undefined' && headers instanceof Headers) {
    for (const [name, value] of headers) add(name, value);
  } else if (isPlainObject(headers)) {
    for (const [name, value] of Object.entries(headers)) add(name, value);
  } else {
    throw new RlsKitError(
      'ERR_USAGE',
      'request.headers must be a Headers object or a record of header values',
    );
  }
  return JSON.stringify(out);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === 'string' && name !== ''
      ? `a ${name}`
      : 'an object with a custom prototype';
  }
  return `a ${typeof value}`;
}

/** A role name safe to put in a one-line message (quoted, escaped, bounded). */
function quoteRole(role: string): string {
  return JSON.stringify(role.length > 63 ? `${role.slice(0, 63)}…` : role);
}

function quoteKey(key: string): string {
  return quoteRole(key);
}
