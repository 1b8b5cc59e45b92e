/**
 * The refresh capability (`supabase-rls-kit/refresh`): opaque refresh tokens
 * with rotation and reuse detection, stored only as hashes in
 * `rls_kit.refresh_tokens`; access tokens carry the family as `sid`, so
 * `rls_kit.revoke_session(sid)` ends a login everywhere.
 *
 * @example
 * ```ts
 * import { createRefreshTokens } from 'supabase-rls-kit/refresh';
 * const refresh = createRefreshTokens({ url: process.env.DATABASE_URL, minter });
 * const { refreshToken, accessToken } = await refresh.issue({ sub: userId });
 * ```
 *
 * @module
 */
export {
  createRefreshTokens,
  type IssueRefreshInput,
  type RefreshClaims,
  type RefreshedSession,
  type RefreshOptions,
  type RefreshTokens,
  type RefreshTokensOptions,
} from './create-refresh-tokens.js';
export {
  generateRefreshToken,
  REFRESH_TOKEN_BYTES,
  REFRESH_TOKEN_PREFIX,
} from './generate-refresh-token.js';
export { hashRefreshToken } from './hash-refresh-token.js';
