import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { AsUserOptions } from '../db/request-settings.js';
import { isRlsKitError, type RlsKitError } from '../errors.js';
import type { RefreshedSession, RefreshTokens } from '../refresh/index.js';
import type { RevocationList } from '../revocation/index.js';
import type { Verifier } from '../tokens/index.js';
import type { RateLimiter } from './create-rate-limiter.js';
import type { ExampleDatabase } from './example-database.js';
import type { ServiceMetrics } from './metrics.js';
import type { MetricsGate } from './metrics-access.js';
import { NO_STORE, oauthError } from './oauth-error.js';
import { type RefreshCookieOptions, refreshCookie } from './refresh-cookie.js';
import type { ExampleClaimDefinitions, ServiceKeys } from './service-keys.js';

/** RFC 8693 token type URNs. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Everything the endpoints share; built once by `createTokenService`. */
export interface ServiceContext {
  readonly logger: Logger;
  /** The service's pool (service role / superuser): refresh tokens, revocation, memberships. */
  readonly pool: pg.Pool;
  /** Kysely over the same pool, for queries run as the token's user. */
  readonly db: Kysely<ExampleDatabase>;
  readonly keys: ServiceKeys;
  readonly refresh: RefreshTokens<ExampleClaimDefinitions>;
  readonly revocations: RevocationList;
  readonly metrics: ServiceMetrics;
  /** Verifies Supabase Auth access tokens for token exchange; absent when not configured. */
  readonly supabase: Verifier | undefined;
  readonly demo: boolean;
  readonly issuer: string;
  readonly audience: string;
  readonly accessTokenTtl: number;
  readonly cookie: RefreshCookieOptions;
  readonly limiter: RateLimiter | undefined;
  readonly trustedProxies: ReadonlySet<string>;
  /** Who may read `/metrics`. */
  readonly metricsGate: MetricsGate;
  /** Options of every query run as a token's user (`preparedStatements`). */
  readonly asUserOptions: AsUserOptions;
}

/** True for failures that mean "the database (or the revocation state) is not reachable now". */
export function isUnavailable(err: unknown): boolean {
  if (isRlsKitError(err)) {
    return (
      err.code === 'ERR_DB_UNREACHABLE' ||
      err.code === 'ERR_REVOCATION_UNAVAILABLE' ||
      err.code === 'ERR_JWKS_UNAVAILABLE' ||
      (err.code === 'ERR_DB_QUERY' && isUnavailable((err as RlsKitError).cause))
    );
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    // Postgres: connection exceptions (08), operator intervention (57P01-57P05: shutdown,
    // crash, cannot connect now), and Node's socket errors.
    if (code.startsWith('08') || /^57P0[1-5]$/.test(code) || /^E[A-Z]+$/.test(code)) return true;
  }
  const message = err instanceof Error ? err.message : '';
  if (CONNECTION_LOST.test(message)) return true;
  // kysely and pg wrap: look one level down.
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== err && isUnavailable(cause);
}

/** pg's and node's words for a connection that died or never came up. */
const CONNECTION_LOST =
  /connection terminated|not queryable|connection error|timeout exceeded when trying to connect|terminating connection|the database system is (starting up|shutting down)|ECONNRESET|ECONNREFUSED|socket hang up|Client was closed/i;

/** 503 for an unavailable dependency, otherwise a logged 500: never a success. */
export function failureResponse(ctx: ServiceContext, err: unknown, what: string): Response {
  if (isUnavailable(err)) {
    ctx.logger.warn({ what, code: errorCode(err) }, 'dependency unavailable: failing closed');
    return oauthError(
      503,
      'temporarily_unavailable',
      'the database or the revocation list is unavailable; retry shortly',
      { 'retry-after': '1' },
    );
  }
  ctx.logger.error({ what, code: errorCode(err), message: errorMessage(err) }, 'request failed');
  return oauthError(500, 'server_error', 'the request failed unexpectedly; see the service log');
}

/** A stable, token-free code for logs. */
export function errorCode(err: unknown): string {
  if (isRlsKitError(err)) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
}

/**
 * The first line of an error's message, capped: kit messages never hold
 * tokens, and the service never puts one into SQL or into an error of its own.
 */
function errorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : 'non-error thrown';
  return (message.split('\n')[0] ?? '').slice(0, 200);
}

/**
 * The successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1): the access
 * token in the body, the refresh token in the cookie, and in the body too
 * only when the client asked (`refresh_token_in_body=true`).
 */
export function tokenResponse(
  ctx: ServiceContext,
  session: RefreshedSession,
  options: { refreshInBody: boolean; exchange: boolean },
): Response {
  const body: Record<string, unknown> = {
    access_token: session.accessToken,
    token_type: 'bearer',
    expires_in: ctx.accessTokenTtl,
  };
  if (options.exchange) body.issued_token_type = ACCESS_TOKEN_TYPE;
  if (options.refreshInBody) body.refresh_token = session.refreshToken;
  const headers = new Headers({ 'content-type': 'application/json', ...NO_STORE });
  headers.append('set-cookie', refreshCookie(session.refreshToken, session.expiresAt, ctx.cookie));
  return new Response(JSON.stringify(body), { status: 200, headers });
}
