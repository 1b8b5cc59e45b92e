import { isRlsKitError } from '../errors.js';
import type { VerifiedClaims } from '../tokens/index.js';
import { NO_STORE, oauthError } from './oauth-error.js';
import { parseOAuthForm } from './parse-oauth-form.js';
import {
  clearLegacyRefreshCookie,
  clearRefreshCookie,
  hasLegacyRefreshCookie,
  readRefreshCookie,
} from './refresh-cookie.js';
import { revokeRefreshToken } from './revoke-endpoint.js';
import { failureResponse, isUnavailable, type ServiceContext } from './service-context.js';
import { badForm } from './token-endpoint.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `POST /logout`: ends one login — the refresh family and every access
 * token bound to its `sid` — identified by the caller's access token
 * (`Authorization: Bearer`, its `sid` claim) or its refresh token (the
 * `refresh_token` form parameter, or the cookie when the cookie path
 * reaches here). Answers 204 and deletes the refresh cookie. Effective on
 * this node at once and elsewhere through the revocation list.
 *
 * @example
 * ```ts
 * app.post('/logout', (c) => logoutEndpoint(ctx, c.req.raw));
 * ```
 */
export async function logoutEndpoint(ctx: ServiceContext, request: Request): Promise<Response> {
  let refreshToken: string | undefined;
  // A body is optional; when there is one it is an OAuth form like /token's.
  if (request.headers.get('content-type') !== null) {
    try {
      refreshToken = (await parseOAuthForm(request)).get('refresh_token');
    } catch (err) {
      return badForm(err);
    }
  }
  const cookie = readRefreshCookie(request.headers.get('cookie'), ctx.cookie);
  if (cookie === null)
    return oauthError(400, 'invalid_request', 'the refresh cookie is sent more than once');
  refreshToken ??= cookie;
  const authorization = request.headers.get('authorization');
  const bearer = authorization?.match(/^Bearer ([\x21-\x7e]+)$/i)?.[1];
  if (authorization !== null && bearer === undefined) {
    return oauthError(
      400,
      'invalid_request',
      'the Authorization header must be "Bearer <access token>"',
      {
        'www-authenticate': 'Bearer error="invalid_request"',
      },
    );
  }
  if (bearer === undefined && (refreshToken === undefined || refreshToken === '')) {
    return oauthError(
      400,
      'invalid_request',
      'nothing to log out: send the access token (Authorization: Bearer) or the refresh token',
    );
  }
  try {
    if (bearer !== undefined) {
      let claims: VerifiedClaims;
      try {
        claims = await ctx.keys.verifier.verify(bearer);
      } catch (err) {
        if (isUnavailable(err)) throw err;
        const why = isRlsKitError(err) ? `${err.message} (${err.code})` : 'invalid token';
        return oauthError(401, 'invalid_token', why, {
          'www-authenticate': 'Bearer error="invalid_token"',
        });
      }
      const sid = claims.sid;
      if (typeof sid !== 'string' || !UUID.test(sid)) {
        return oauthError(
          400,
          'invalid_request',
          'the access token has no session (sid): revoke it with /revoke',
        );
      }
      await ctx.revocations.revokeSession(sid, { reason: 'signed out' });
      ctx.logger.info({ event: 'logout', sid }, 'session ended');
    }
    if (refreshToken !== undefined && refreshToken !== '') {
      await revokeRefreshToken(ctx, refreshToken, 'signed out');
    }
  } catch (err) {
    return failureResponse(ctx, err, 'logout');
  }
  const headers = new Headers(NO_STORE);
  headers.append('set-cookie', clearRefreshCookie(ctx.cookie));
  if (hasLegacyRefreshCookie(request.headers.get('cookie'), ctx.cookie)) {
    headers.append('set-cookie', clearLegacyRefreshCookie(ctx.cookie));
  }
  return new Response(null, { status: 204, headers });
}
