import { isRlsKitError, type RlsKitErrorCode } from '../errors.js';
import type { VerifiedClaims } from '../tokens/verified-claims.js';

/**
 * The RFC 6750 / RFC 6749 error codes the Edge wrapper answers with, plus
 * `forbidden` for a row level security denial.
 * @internal
 */
export type EdgeErrorCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'forbidden'
  | 'temporarily_unavailable'
  | 'server_error';

/**
 * A JSON error response `{"error", "error_description"}` that is never
 * cached. The description is fixed text chosen by the kit: never a token,
 * a claim value or a server internal.
 * @internal
 */
export function edgeError(
  status: number,
  error: EdgeErrorCode,
  description: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ error, error_description: description }), {
    status,
    headers: {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      ...headers,
    },
  });
}

/** What a failure means for the caller. @internal */
export type FailureKind = 'invalid_token' | 'unavailable' | 'forbidden' | 'server';

/** Kit codes that say a dependency (database, revocation state, issuer keys) is down. */
const UNAVAILABLE_CODES = new Set<RlsKitErrorCode>([
  'ERR_DB_UNREACHABLE',
  'ERR_REVOCATION_UNAVAILABLE',
  'ERR_JWKS_UNAVAILABLE',
]);

/** Node socket errors: the database (or another dependency) cannot be reached. */
const SOCKET_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** node-postgres reports these without a code. */
const PG_CONNECTION_MESSAGES =
  /connection terminated|connection timeout|timeout exceeded when trying to connect|client has encountered a connection error/i;

/**
 * Classifies an error thrown while verifying or while the handler ran:
 * a kit token error is the token's fault; a connection failure (SQLSTATE
 * class 08, 53 "insufficient resources", 57P01–57P05 shutdown/cannot connect
 * now, a socket error) or missing revocation/key state is "unavailable";
 * SQLSTATE 42501 (insufficient_privilege: what Postgres raises when a row
 * level security check fails on a write) is "forbidden"; anything else is a
 * server error. Kit errors that wrap a database error are looked through, so
 * a connection lost at COMMIT is still "unavailable".
 * @internal
 */
export function classifyFailure(err: unknown): FailureKind {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    if (isRlsKitError(current)) {
      if (UNAVAILABLE_CODES.has(current.code)) return 'unavailable';
      if (current.code.startsWith('ERR_TOKEN_') || current.code === 'ERR_KEY_UNKNOWN') {
        return 'invalid_token';
      }
      // Only a query failure is worth looking through: its cause may be a lost connection.
      if (current.code !== 'ERR_DB_QUERY') return 'server';
      current = current.cause;
      continue;
    }
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (code === '42501') return 'forbidden';
      if (
        code.startsWith('08') ||
        code.startsWith('53') ||
        /^57P0[1-5]$/.test(code) ||
        SOCKET_ERRORS.has(code)
      ) {
        return 'unavailable';
      }
    }
    if (current instanceof AggregateError && current.errors.some(isUnavailable)) {
      // Node's happy-eyeballs connect (localhost → ::1 and 127.0.0.1) fails with an AggregateError.
      return 'unavailable';
    }
    if (current instanceof Error && PG_CONNECTION_MESSAGES.test(current.message)) {
      return 'unavailable';
    }
    current = (current as { cause?: unknown }).cause;
  }
  return 'server';
}

function isUnavailable(err: unknown): boolean {
  return classifyFailure(err) === 'unavailable';
}

/**
 * One line about an error for the operator's log: its name, code and the
 * first line of its message, bounded. Tokens never reach it (the wrapper
 * never puts the token into an error, and kit messages never contain one).
 * @internal
 */
export function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return `a non-error value was thrown (${typeof err})`;
  const code = (err as { code?: unknown }).code;
  const first = err.message.split('\n')[0] ?? '';
  const line = `${err.name}${typeof code === 'string' ? ` ${code}` : ''}: ${first}`;
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/**
 * A verified token whose `role` cannot run queries here is refused before
 * any connection is taken: 401 when it names no role at all, 403 when its
 * role is outside the allowlist (e.g. `service_role` not opted in).
 */
export function refuseRole(
  claims: VerifiedClaims,
  defaults: readonly string[],
  allowRoles: readonly string[] | undefined,
): Response | undefined {
  const role = claims.role;
  if (typeof role !== 'string' || role === '') {
    return edgeError(401, 'invalid_token', 'the access token carries no role claim', {
      'www-authenticate': 'Bearer error="invalid_token"',
    });
  }
  if (defaults.includes(role) || (Array.isArray(allowRoles) && allowRoles.includes(role))) {
    return undefined;
  }
  return edgeError(403, 'insufficient_scope', "the access token's role may not use this endpoint", {
    'www-authenticate': 'Bearer error="insufficient_scope"',
  });
}
