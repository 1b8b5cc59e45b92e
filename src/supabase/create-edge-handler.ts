import type { Kysely } from 'kysely';
import type { AsUserOptions } from '../db/request-settings.js';
import { isRlsKitError, RlsKitError } from '../errors.js';
import type { VerifiedClaims } from '../tokens/verified-claims.js';
import type { Verifier } from '../tokens/verify.js';
import { classifyFailure, describeFailure, edgeError, refuseRole } from './edge-responses.js';

/**
 * Options of {@link createEdgeHandler}.
 *
 * @example
 * ```ts
 * const options: EdgeHandlerOptions<Database> = {
 *   verifier: createSupabaseVerifier({ projectUrl: Deno.env.get('SUPABASE_URL')! }),
 *   db,
 * };
 * ```
 */
export interface EdgeHandlerOptions<DB> {
  /**
   * Verifies the caller's token: the kit's keys, the Supabase project's
   * JWKS or its legacy secret (`createVerifier` / `createSupabaseVerifier`).
   * Its `revocation` check decides revocation; when that state is
   * unavailable the request gets 503 and the handler never runs.
   */
  verifier: Verifier;
  /**
   * The root Kysely instance (not a transaction). When given, the handler
   * runs inside one transaction as the token's user (`asUser`), so every
   * query through `ctx.db` is subject to row level security.
   */
  db?: Kysely<DB>;
  /**
   * Passed to `asUser` (e.g. `allowRoles`). Without `request`, the request's
   * method, path and headers are exposed to SQL the way PostgREST does
   * (`request.method`, `request.path`, `request.headers`; credential headers
   * are left out).
   */
  asUserOptions?: AsUserOptions;
  /**
   * Headers added to every response (errors included), and the answer to
   * a CORS preflight (`OPTIONS`, answered 204 without a token). Default:
   * none, and `OPTIONS` needs a token like any other method.
   */
  cors?: Readonly<Record<string, string>>;
  /** Seconds in `Retry-After` of a 503 (default 1). */
  retryAfterSeconds?: number;
  /**
   * Told about failures that are not the caller's fault (503 and 500), with
   * the status sent. Default: one line on `console.error` naming the error
   * (never the token). Pass `() => {}` to silence it.
   */
  onError?: (error: unknown, info: { readonly status: number }) => void;
}

/**
 * What the handler gets besides the request.
 *
 * @example
 * ```ts
 * const handler = async (_req: Request, { claims, db }: EdgeContext<Database>) =>
 *   Response.json(await db.selectFrom('documents').select(['id', 'title']).execute());
 * ```
 */
export interface EdgeContext<DB> {
  /** The verified claims (deeply frozen). */
  readonly claims: VerifiedClaims;
  /** The bearer token as sent, e.g. to call another service on the user's behalf. Never log it. */
  readonly token: string;
  /**
   * The request's transaction, running as the token's user (RLS applies).
   * Without `db` in the options, using it throws `ERR_USAGE`.
   */
  readonly db: Kysely<DB>;
}

/** RFC 6750 §2.1: `b64token` = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const SCHEME = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?: |$)/;

const MISSING = 'send the access token in one Authorization: Bearer <token> header';

/**
 * Wraps a fetch-style handler (`Request` → `Response`; Deno's `Deno.serve`,
 * Supabase Edge Functions, Node behind an adapter, Hono's `c.req.raw`) so it
 * runs only for a caller with a valid bearer token, and — given `db` —
 * inside one transaction as that caller, with row level security applied.
 *
 * - The token comes from exactly one `Authorization: Bearer …` header
 *   (scheme case-insensitive). None, or another scheme: 401 with a bare
 *   `WWW-Authenticate: Bearer` challenge (RFC 6750 §3.1); a malformed or
 *   repeated header, or an `access_token` query parameter: 400
 *   `invalid_request`.
 * - Verification is the verifier's (cached fast path, then full); a token
 *   that is invalid, expired, revoked or from another issuer gets 401
 *   `invalid_token`. Revocation state or issuer keys unavailable, or the
 *   database unreachable: 503 `temporarily_unavailable` with `Retry-After`,
 *   and the handler does not run (fail closed).
 * - A row level security denial (SQLSTATE 42501) escaping the handler is
 *   403; anything else it throws is 500 with a generic body. Its response
 *   is sent only after the transaction committed.
 * - The token is never logged, echoed, or put into SQL settings.
 *
 * Only fetch APIs are used, so the wrapper runs on Node and Deno; the
 * database code is loaded only when `db` is given.
 *
 * @example
 * ```ts
 * // supabase/functions/documents/index.ts (Deno)
 * const verifier = createSupabaseVerifier({ projectUrl: Deno.env.get('SUPABASE_URL')! });
 * Deno.serve(
 *   createEdgeHandler({ verifier, db }, async (_req, { db }) => {
 *     const docs = await db.selectFrom('documents').select(['id', 'title']).execute();
 *     return Response.json(docs);
 *   }),
 * );
 * ```
 */
export function createEdgeHandler<DB>(
  options: EdgeHandlerOptions<DB>,
  handler: (request: Request, ctx: EdgeContext<DB>) => Response | Promise<Response>,
): (request: Request) => Promise<Response> {
  const { verifier, db, asUserOptions, cors } = options;
  if (verifier === null || typeof verifier !== 'object' || typeof verifier.verify !== 'function') {
    throw new RlsKitError(
      'ERR_CONFIG',
      'createEdgeHandler needs a verifier: createVerifier(...) or createSupabaseVerifier(...)',
    );
  }
  if (typeof handler !== 'function') {
    throw new RlsKitError('ERR_CONFIG', 'createEdgeHandler needs a handler function');
  }
  if (db !== undefined && (db === null || (db as { isTransaction?: unknown }).isTransaction)) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'createEdgeHandler needs the root Kysely instance as db, not a transaction',
    );
  }
  const retryAfter = String(options.retryAfterSeconds ?? 1);
  const report =
    options.onError ??
    ((error: unknown, info: { readonly status: number }) => {
      console.error(`rls-kit edge handler: answered ${info.status}: ${describeFailure(error)}`);
    });
  const noDb = unavailableDb<DB>();
  let dbCode: Promise<DbCode> | undefined;

  const failure = (err: unknown): Response => {
    const kind = classifyFailure(err);
    switch (kind) {
      case 'unavailable':
        safeReport(report, err, 503);
        return edgeError(
          503,
          'temporarily_unavailable',
          'the database or the revocation state is unavailable; retry shortly',
          { 'retry-after': retryAfter },
        );
      case 'forbidden':
        return edgeError(403, 'forbidden', 'row level security does not allow this operation');
      case 'invalid_token':
        return invalidToken(err);
      default:
        safeReport(report, err, 500);
        return edgeError(500, 'server_error', 'the request failed; see the function log');
    }
  };

  const serve = async (request: Request): Promise<Response> => {
    const extracted = bearerToken(request);
    if (extracted instanceof Response) return extracted;
    const token = extracted;

    let claims: VerifiedClaims;
    try {
      claims = verifier.verifyCached(token) ?? (await verifier.verify(token));
    } catch (err) {
      // A refused token is 401, missing state 503; anything else the verifier
      // throws (a misconfiguration) is the server's fault: 500, reported.
      return failure(err);
    }

    if (db === undefined) {
      try {
        return checkedResponse(await handler(request, { claims, token, db: noDb }));
      } catch (err) {
        return failure(err);
      }
    }

    let code: DbCode;
    try {
      dbCode ??= loadDbCode();
      code = await dbCode;
    } catch (err) {
      dbCode = undefined;
      return failure(err);
    }
    const refused = refuseRole(claims, code.defaultRoles, asUserOptions?.allowRoles);
    if (refused) return refused;
    const userOptions: AsUserOptions = {
      ...asUserOptions,
      request: asUserOptions?.request ?? requestContext(request),
    };
    try {
      return await code.asUser(
        db,
        claims,
        async (trx) => checkedResponse(await handler(request, { claims, token, db: trx })),
        userOptions,
      );
    } catch (err) {
      return failure(err);
    }
  };

  return async (request) => {
    if (cors !== undefined && request.method === 'OPTIONS') {
      return new Response(null, { status: 204, headers: { ...cors } });
    }
    const response = await serve(request);
    return cors === undefined ? response : withHeaders(response, cors);
  };
}

/** Inside the transaction: a handler that returns no Response rolls back (and is a 500). */
function checkedResponse(value: unknown): Response {
  if (value instanceof Response) return value;
  throw new RlsKitError(
    'ERR_USAGE',
    'the createEdgeHandler handler must return a Response (e.g. Response.json(data))',
  );
}

/** The database functions, loaded on first use so a wrapper without `db` never loads `pg`. */
interface DbCode {
  asUser: typeof import('../db/as-user.js').asUser;
  defaultRoles: readonly string[];
}

async function loadDbCode(): Promise<DbCode> {
  const [{ asUser }, { DEFAULT_ROLES }] = await Promise.all([
    import('../db/as-user.js'),
    import('../db/request-settings.js'),
  ]);
  return { asUser, defaultRoles: DEFAULT_ROLES };
}

/**
 * The token from the request, or the response that refuses it. Fetch joins
 * repeated headers with ", ", so two Authorization headers arrive as one
 * value with a comma — which no single bearer credential contains.
 */
function bearerToken(request: Request): string | Response {
  const header = request.headers.get('authorization');
  if (hasQueryToken(request.url)) {
    return edgeError(
      400,
      'invalid_request',
      'send the access token in the Authorization header, never in the URL',
      { 'www-authenticate': 'Bearer error="invalid_request"' },
    );
  }
  if (header === null || header.trim() === '') {
    return edgeError(401, 'invalid_token', MISSING, { 'www-authenticate': 'Bearer' });
  }
  if (header.includes(',')) {
    return edgeError(
      400,
      'invalid_request',
      'send exactly one Authorization header with one Bearer token',
      { 'www-authenticate': 'Bearer error="invalid_request"' },
    );
  }
  const scheme = SCHEME.exec(header.trim())?.[1];
  if (scheme === undefined || scheme.toLowerCase() !== 'bearer') {
    // Another scheme (Basic, …) carries no bearer credentials: a plain challenge.
    return edgeError(401, 'invalid_token', MISSING, { 'www-authenticate': 'Bearer' });
  }
  const token = BEARER.exec(header.trim())?.[1];
  if (token === undefined) {
    return edgeError(400, 'invalid_request', 'the Authorization header is not "Bearer <token>"', {
      'www-authenticate': 'Bearer error="invalid_request"',
    });
  }
  return token;
}

function hasQueryToken(url: string): boolean {
  const q = url.indexOf('?');
  if (q < 0) return false;
  try {
    return new URLSearchParams(url.slice(q + 1).split('#')[0]).has('access_token');
  } catch {
    return false;
  }
}

/** 401 for a token the verifier refused; the description names the kind, never the token. */
function invalidToken(err: unknown): Response {
  const code = isRlsKitError(err) ? err.code : undefined;
  const description =
    code === 'ERR_TOKEN_EXPIRED'
      ? 'the access token expired'
      : code === 'ERR_TOKEN_REVOKED'
        ? 'the access token has been revoked'
        : code === 'ERR_TOKEN_ISSUER' || code === 'ERR_TOKEN_AUDIENCE'
          ? 'the access token was not issued for this service'
          : code === 'ERR_TOKEN_NOT_YET_VALID'
            ? 'the access token is not valid yet'
            : 'the access token is invalid';
  return edgeError(401, 'invalid_token', description, {
    'www-authenticate': 'Bearer error="invalid_token"',
  });
}

function requestContext(request: Request): NonNullable<AsUserOptions['request']> {
  let path = '';
  try {
    path = new URL(request.url).pathname;
  } catch {
    // A relative or odd URL: leave the path empty rather than fail the request.
  }
  return { method: request.method, path, headers: request.headers };
}

/** Adds headers the handler did not set; copies the response when its headers are immutable. */
function withHeaders(response: Response, extra: Readonly<Record<string, string>>): Response {
  const missing = Object.entries(extra).filter(([name]) => !response.headers.has(name));
  if (missing.length === 0) return response;
  try {
    for (const [name, value] of missing) response.headers.set(name, value);
    return response;
  } catch {
    const headers = new Headers(response.headers);
    for (const [name, value] of missing) headers.set(name, value);
    return new Response(response.body, {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
  }
}

function safeReport(
  report: (error: unknown, info: { readonly status: number }) => void,
  err: unknown,
  status: number,
): void {
  try {
    report(err, { status });
  } catch {
    // A failing logger must not turn a clean error response into a crash.
  }
}

/** `ctx.db` when no database was given: any use says how to fix it. */
function unavailableDb<DB>(): Kysely<DB> {
  return new Proxy(
    {},
    {
      get(_target, property) {
        // Not a thenable: `await ctx.db` or returning it must not trip the proxy.
        if (property === 'then') return undefined;
        throw new RlsKitError(
          'ERR_USAGE',
          "ctx.db is unavailable: pass db (the root Kysely instance) to createEdgeHandler to query as the token's user",
        );
      },
    },
  ) as Kysely<DB>;
}
