/**
 * The revocation capability (`supabase-rls-kit/revocation`): an in-process
 * list of revoked tokens, subjects and sessions, kept current from Postgres
 * by LISTEN/NOTIFY, failing closed when it cannot be; it is the verifier's
 * `RevocationCheck`.
 *
 * @example
 * ```ts
 * import { createRevocationList } from 'supabase-rls-kit/revocation';
 * const list = createRevocationList({ url: process.env.DATABASE_URL });
 * await list.start();
 * ```
 *
 * @module
 */
export {
  createPostgresTransport,
  type PostgresTransportOptions,
  REVOCATION_CHANNEL,
} from './create-postgres-transport.js';
export {
  createRevocationList,
  type RevocationList,
  type RevocationListOptions,
  type RevokeTokenInput,
} from './create-revocation-list.js';
export {
  parseRevocationNotification,
  type RevocationKind,
  type RevocationNotification,
} from './parse-notification.js';
export {
  createRevocationStore,
  isRevokedIn,
  type RevocationStore,
  sweepExpired,
} from './revocation-store.js';
export type {
  RevocationTransport,
  RevocationTransportConnection,
  RevocationTransportHandlers,
} from './transport.js';
