import type { Logger } from 'pino';
import type { RevocationListOptions } from '../revocation/index.js';
import type { AlertThresholds } from './alerts.js';
import type { KeyRotationScheduleOptions } from './key-rotation.js';
import type { MetricsAccess } from './metrics-access.js';

/**
 * Options of {@link startTokenService} and {@link createTokenService}. Every
 * option has a safe default: `startTokenService()` alone runs the demo on
 * the embedded database at `http://127.0.0.1:8787`.
 *
 * @example
 * ```ts
 * const options: TokenServiceOptions = {
 *   databaseUrl: process.env.DATABASE_URL,
 *   issuer: 'https://auth.example.com',
 *   supabase: { projectUrl: process.env.SUPABASE_URL! },
 * };
 * ```
 */
export interface TokenServiceOptions {
  /**
   * Postgres to use (service role or a superuser: the service revokes and
   * resolves memberships). Default: the embedded Postgres in `home`, database
   * `rls_kit_demo`. `DATABASE_URL` is not read here; the CLI passes it.
   */
  databaseUrl?: string;
  /** State folder of the embedded database and the keyring (default `RLS_KIT_HOME` or `.rls-kit`). */
  home?: string;
  /** Name of the embedded cluster's folder under `home` (default `pg`; tests use a private one). */
  embeddedName?: string;
  /** Keyring file (default `<home>/keys.json`); created 0600 with an ES256 key when missing. */
  keysFile?: string;
  /** Interface to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port (default 8787; `0` picks a free one — read it from `TokenService.url`). */
  port?: number;
  /**
   * Demo mode: seed the example users and serve `POST /demo/login`. Default:
   * on exactly when the database is the embedded one and `host` is a loopback
   * address; asking for it otherwise is refused (`ERR_CONFIG`).
   */
  demo?: boolean;
  /** Apply the kit's and the example app's migrations at start (default true; idempotent). */
  migrate?: boolean;
  /** `iss` of the tokens this service mints (default: its own URL, e.g. `http://127.0.0.1:8787`). */
  issuer?: string;
  /** `aud` of the tokens this service mints and accepts (default `authenticated`). */
  audience?: string;
  /** Access-token lifetime in seconds (default 600, at most 3600). */
  accessTokenTtl?: number;
  /**
   * Refresh tokens: a family's absolute and idle lifetimes (default `30d`,
   * `7d`) and the grace within which a replayed token counts as the same
   * client's concurrent refresh rather than theft (default `10s`).
   */
  refresh?: {
    absoluteLifetime?: string | number;
    idleLifetime?: string | number;
    reuseGrace?: string | number;
  };
  /**
   * The Supabase project whose Auth access tokens `POST /token` exchanges
   * (RFC 8693). Without it, token exchange answers `unsupported_grant_type`.
   */
  supabase?: SupabaseExchangeOptions;
  /** A pino logger; default: JSON lines on stdout at `info` with the service's redaction. */
  logger?: Logger;
  /** Rate limit per client of `POST /token` and `/demo/login`, and (a bucket of their own) `/revoke` and `/logout`; `false` for none. */
  rateLimit?: RateLimitOptions | false;
  /**
   * Addresses of reverse proxies whose `X-Forwarded-For` is believed (for
   * the rate limiter's client key). Default none: the socket address is the
   * client, whatever headers say.
   */
  trustedProxies?: readonly string[];
  /**
   * Who may read `GET /metrics` (its counters describe traffic and refusals):
   * - `'loopback'` (default): clients on this host only — the socket peer,
   *   or behind a `trustedProxies` proxy the forwarded client, must be a
   *   loopback address; others get 403, and so does a request without a
   *   socket (the app mounted in another server: use a token or `'public'`);
   * - `{ bearerToken }`: anyone sending `Authorization: Bearer <bearerToken>`
   *   (at least 32 characters; compared in constant time); others get 401;
   * - `'public'`: anyone.
   */
  metricsAccess?: MetricsAccess;
  /** CORS: origins allowed to call the service from a browser (default none: CORS off). */
  cors?: { origins: readonly string[] };
  /** Path of the refresh cookie (default `/token`, the only endpoint that reads it). */
  cookiePath?: string;
  /** Alert thresholds of the token-pattern detector (see `createAlertDetector`). */
  alerts?: Partial<AlertThresholds> | false;
  /**
   * The signing-key schedule run inside the service (standby → active →
   * retired → dropped, see `createKeyRotationSchedule`); default every 30
   * days with a 10-minute JWKS cache window, or `false` to leave rotation to
   * `rls-kit keys rotate`. The token lifetime is `accessTokenTtl`.
   */
  keyRotation?:
    | Pick<
        KeyRotationScheduleOptions,
        'every' | 'jwksCacheWindow' | 'clockTolerance' | 'alg' | 'maxCheckIntervalMs' | 'clock'
      >
    | false;
  /**
   * The revocation list's tuning: how long it may be out of sync before it
   * stops answering from memory (`staleAfterMs`, default 5000), reconnect
   * backoff, and the transport (default LISTEN/NOTIFY on the database;
   * `createRedisTransport` for many nodes).
   */
  revocation?: Pick<
    RevocationListOptions,
    'staleAfterMs' | 'onStale' | 'backoffMs' | 'heartbeatMs' | 'transport'
  >;
  /** How long `close()` waits for requests in flight before cutting connections (ms, default 10000). */
  drainTimeoutMs?: number;
  /** Connections in the service's Postgres pool (default 10). */
  poolSize?: number;
  /**
   * Run the example API's queries as the user through named prepared
   * statements (planned once per pooled connection; see
   * `AsUserOptions.preparedStatements`). Default `true`; `false` behind a
   * pooler in transaction mode that does not carry them.
   */
  preparedStatements?: boolean;
}

/**
 * Where the Supabase Auth tokens accepted by token exchange come from.
 *
 * @example
 * ```ts
 * const supabase: SupabaseExchangeOptions = { projectUrl: 'https://abcdefghijklmnopqrst.supabase.co' };
 * ```
 */
export interface SupabaseExchangeOptions {
  /** The project URL (`SUPABASE_URL`); tokens must have `iss` = `<projectUrl>/auth/v1`. */
  projectUrl: string;
  /** The legacy HS256 JWT secret; without it the project's JWKS is used. */
  jwtSecret?: string;
  /** Accepted `aud` of Supabase tokens (default `authenticated`). */
  audience?: string;
}

/**
 * A token bucket per client: `burst` requests at once, refilled at
 * `perSecond`.
 *
 * @example
 * ```ts
 * const limit: RateLimitOptions = { burst: 20, perSecond: 2 };
 * ```
 */
export interface RateLimitOptions {
  /** Bucket size (default 20). */
  burst?: number;
  /** Refill rate in requests per second (default 2). */
  perSecond?: number;
  /** Clients tracked at once; the least recently seen are forgotten beyond it (default 10000). */
  maxClients?: number;
}
