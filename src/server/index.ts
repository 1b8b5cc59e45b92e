/**
 * The token service (`supabase-rls-kit/server`): what `npm start` runs —
 * JWKS and discovery, token exchange for Supabase Auth tokens, rotating
 * refresh cookies, revocation, the example API under RLS, metrics and
 * alerts — on Hono with its Node server.
 *
 * @example
 * ```ts
 * import { startTokenService } from 'supabase-rls-kit/server';
 * const service = await startTokenService({ databaseUrl: process.env.DATABASE_URL, port: 0 });
 * ```
 *
 * @module
 */

// Operations (metrics, alerts, key rotation): see docs/operations.md.
export {
  ALERT_EVENTS,
  type AlertDetector,
  type AlertDetectorOptions,
  type AlertEvent,
  type AlertThresholds,
  createAlertDetector,
  DEFAULT_ALERT_THRESHOLDS,
  type TokenAlert,
} from './alerts.js';
export { clientAddress } from './client-address.js';
export { createRateLimiter, type RateLimiter } from './create-rate-limiter.js';
export { createServiceLogger, REDACT_PATHS } from './create-service-logger.js';
export {
  createTokenService,
  DEFAULT_HOST,
  DEFAULT_PORT,
  isLoopbackHost,
  type Readiness,
  type TokenServiceApp,
} from './create-token-service.js';
export { type DocumentsRequestContext, documentsHandler } from './documents-endpoint.js';
export type { ExampleDatabase } from './example-database.js';
export {
  createKeyRotationSchedule,
  type KeyRotationSchedule,
  type KeyRotationScheduleOptions,
  type KeyringStore,
} from './key-rotation.js';
export {
  createServiceMetrics,
  type IssueGrant,
  type ServiceMetrics,
  type ServiceMetricsOptions,
} from './metrics.js';
export { type OAuthErrorCode, oauthError } from './oauth-error.js';
export {
  clearRefreshCookie,
  REFRESH_COOKIE,
  type RefreshCookieOptions,
  readRefreshCookie,
  refreshCookie,
  refreshCookieName,
  SECURE_REFRESH_COOKIE,
} from './refresh-cookie.js';
export { type ResolvedClaims, resolveClaims } from './resolve-claims.js';
export {
  type RotateKeyringFileOptions,
  type RotateKeyringFileResult,
  rotateKeyringFile,
} from './rotate-keyring-file.js';
export type { ServiceKeys } from './service-keys.js';
export { startTokenService, type TokenService } from './start-token-service.js';
export type {
  RateLimitOptions,
  SupabaseExchangeOptions,
  TokenServiceOptions,
} from './token-service-options.js';
export { tuneGarbageCollector } from './tune-garbage-collector.js';
