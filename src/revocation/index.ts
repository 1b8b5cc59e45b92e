/**
 * The revocation capability (`supabase-rls-kit/revocation`): an in-process
 * list of revoked tokens, subjects and sessions, kept current from Postgres
 * by LISTEN/NOTIFY — or, for many nodes, through Redis fed by a relay —
 * failing closed when it cannot be; it is the verifier's `RevocationCheck`.
 * `ioredis` is loaded only when a Redis transport or relay connects.
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
  createRedisTransport,
  type RedisTransportOptions,
} from './create-redis-transport.js';
export {
  createRevocationList,
  type RevocationList,
  type RevocationListOptions,
  type RevokeTokenInput,
} from './create-revocation-list.js';
export {
  createRevocationRelay,
  type RevocationRelay,
  type RevocationRelayOptions,
} from './create-revocation-relay.js';
export {
  parseRevocationNotification,
  type RevocationKind,
  type RevocationNotification,
} from './parse-notification.js';
export { DEFAULT_REDIS_CHANNEL, type RedisConnection } from './redis-client.js';
export {
  decodeRedisEnvelope,
  type EnvelopeSigning,
  encodeRedisEnvelope,
  envelopeSigning,
  type RedisEnvelope,
  type SignedRedisEnvelope,
  verifyRedisEnvelope,
} from './redis-envelope.js';
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
