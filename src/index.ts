/**
 * supabase-rls-kit — the root entry holds only what every capability shares.
 * Import capabilities from their subpaths so edge runtimes load no `pg`:
 * `supabase-rls-kit/tokens`, `supabase-rls-kit/keys`, `supabase-rls-kit/db`.
 */
export { isRlsKitError, RlsKitError, type RlsKitErrorCode } from './errors.js';
