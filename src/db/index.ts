/**
 * The database capability (`supabase-rls-kit/db`): which Postgres to use (the
 * embedded default or `DATABASE_URL`), and queries run as the token's user so
 * row level security applies — for kysely ({@link asUser}) and plain `pg`
 * ({@link asUserPg}).
 *
 * @example
 * ```ts
 * import { asUser, openDatabase } from 'supabase-rls-kit/db';
 * ```
 *
 * @module
 */

// Queries as the token's user (queryAsUser: one statement in one round trip).
export { asUser } from './as-user.js';
export { asUserPg } from './as-user-pg.js';
// Which database: DATABASE_URL or the embedded default.
export {
  type Database,
  describeUrl,
  type OpenDatabaseOptions,
  openDatabase,
  parseDatabaseUrl,
} from './database.js';
export { type EmbeddedDatabase, type EmbeddedOptions, startEmbeddedPostgres } from './embedded.js';
export { queryAsUser } from './query-as-user.js';
export { type QueryAsUserPgStatement, queryAsUserPg } from './query-as-user-pg.js';
export {
  type AsUserOptions,
  type ClaimsSource,
  DEFAULT_ROLES,
  MAX_CLAIMS_BYTES,
  type RequestClaims,
  type RequestContext,
  type RequestHeaders,
} from './request-settings.js';

// Migrations (./migrate.js) are exported below by their owner.
