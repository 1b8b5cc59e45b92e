import { isRlsKitError } from '../errors.js';
import { hashRefreshToken, REFRESH_TOKEN_PREFIX } from '../refresh/index.js';
import type { VerifiedClaims } from '../tokens/index.js';
import { NO_STORE, oauthError } from './oauth-error.js';
import { type OAuthForm, parseOAuthForm } from './parse-oauth-form.js';
import { failureResponse, isUnavailable, type ServiceContext } from './service-context.js';
import { badForm } from './token-endpoint.js';

/**
 * `POST /revoke` (RFC 7009): form-encoded `token=` (and an optional
 * `token_type_hint`), no client authentication (public clients). An access
 * token this service issued is denied until it expires; a refresh token ends
 * its whole family and every access token of it (`revoke_session`). Both
 * take effect in this process when the response is sent and on other nodes
 * through the revocation list. Unknown, invalid or expired tokens get 200
 * as well (§2.2), so the endpoint tells a caller nothing about a token; only
 * an unavailable database is an error (503: nothing was revoked).
 *
 * @example
 * ```ts
 * app.post('/revoke', (c) => revokeEndpoint(ctx, c.req.raw));
 * ```
 */
export async function revokeEndpoint(ctx: ServiceContext, request: Request): Promise<Response> {
  let form: OAuthForm;
  try {
    form = await parseOAuthForm(request);
  } catch (err) {
    return badForm(err);
  }
  const token = form.get('token');
  if (token === undefined || token === '') {
    return oauthError(400, 'invalid_request', 'token is missing');
  }
  const hint = form.get('token_type_hint');
  if (hint !== undefined && hint !== 'access_token' && hint !== 'refresh_token') {
    return oauthError(
      400,
      'unsupported_token_type',
      'token_type_hint must be access_token or refresh_token',
    );
  }
  try {
    if (token.startsWith(REFRESH_TOKEN_PREFIX))
      await revokeRefreshToken(ctx, token, 'revoked via /revoke');
    else await revokeAccessToken(ctx, token);
  } catch (err) {
    return failureResponse(ctx, err, 'revoke');
  }
  return new Response(null, { status: 200, headers: NO_STORE });
}

/** Ends the refresh token's family (and its access tokens); unknown tokens are ignored. */
export async function revokeRefreshToken(
  ctx: ServiceContext,
  token: string,
  reason: string,
): Promise<string | undefined> {
  const hash = hashRefreshToken(token);
  if (hash === undefined) return undefined;
  const { rows } = await ctx.pool.query<{ family: string }>(
    'select family::text as family from rls_kit.refresh_tokens where hash = $1',
    [hash],
  );
  const family = rows[0]?.family;
  if (family === undefined) return undefined;
  await ctx.revocations.revokeSession(family, { reason });
  ctx.logger.info({ event: 'session_revoked', sid: family }, 'refresh family ended');
  return family;
}

/** Denies a valid access token of this service until it expires; anything else is ignored. */
async function revokeAccessToken(ctx: ServiceContext, token: string): Promise<void> {
  let claims: VerifiedClaims;
  try {
    claims = await ctx.keys.verifier.verify(token);
  } catch (err) {
    if (isUnavailable(err)) throw err;
    if (isRlsKitError(err)) return; // revoked already, expired, not ours: nothing to do (RFC 7009 §2.2)
    throw err;
  }
  if (claims.jti === undefined) return;
  await ctx.revocations.revokeToken({
    jti: claims.jti,
    expiresAt: claims.exp,
    sub: claims.sub,
    reason: 'revoked via /revoke',
  });
  ctx.logger.info({ event: 'token_revoked', jti: claims.jti }, 'access token revoked');
}
