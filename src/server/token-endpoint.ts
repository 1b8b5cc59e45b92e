import { isRlsKitError, RlsKitError } from '../errors.js';
import type { RefreshedSession } from '../refresh/index.js';
import type { VerifiedClaims } from '../tokens/index.js';
import { clientAddress, rateLimitKey } from './client-address.js';
import { oauthError } from './oauth-error.js';
import { type OAuthForm, parseOAuthForm } from './parse-oauth-form.js';
import {
  clearLegacyRefreshCookie,
  clearRefreshCookie,
  hasLegacyRefreshCookie,
  readRefreshCookie,
  refreshCookieName,
} from './refresh-cookie.js';
import { resolveClaims } from './resolve-claims.js';
import {
  ACCESS_TOKEN_TYPE,
  failureResponse,
  isUnavailable,
  JWT_TOKEN_TYPE,
  type ServiceContext,
  TOKEN_EXCHANGE_GRANT,
  tokenResponse,
} from './service-context.js';

/**
 * `POST /token` (RFC 6749 §3.2): `grant_type=refresh_token` (rotation with
 * reuse detection; the refresh token from the refresh cookie (`__Secure-rls_kit_refresh`; `rls_kit_refresh` on a loopback http demo) or
 * the `refresh_token` parameter) and
 * `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693: a
 * Supabase Auth access token for a kit token and a refresh token). Optional
 * parameters: `org_id` (the active organization, checked against
 * memberships) and `refresh_token_in_body=true`.
 *
 * @example
 * ```ts
 * app.post('/token', (c) => tokenEndpoint(ctx, c.req.raw));
 * ```
 */
export async function tokenEndpoint(ctx: ServiceContext, request: Request): Promise<Response> {
  let form: OAuthForm;
  try {
    form = await parseOAuthForm(request);
  } catch (err) {
    return badForm(err);
  }
  const grantType = form.get('grant_type');
  if (grantType === undefined || grantType === '') {
    return oauthError(400, 'invalid_request', 'grant_type is missing');
  }
  const inBody = flag(form, 'refresh_token_in_body');
  if (inBody === undefined) {
    return oauthError(400, 'invalid_request', 'refresh_token_in_body must be true or false');
  }
  if (grantType === 'refresh_token') return refreshGrant(ctx, request, form, inBody);
  if (grantType === TOKEN_EXCHANGE_GRANT) return exchangeGrant(ctx, form, inBody);
  return oauthError(
    400,
    'unsupported_grant_type',
    `grant_type must be refresh_token or ${TOKEN_EXCHANGE_GRANT}`,
  );
}

/** A form error (wrong media type, repeated parameter) as invalid_request. */
export function badForm(err: unknown): Response {
  if (isRlsKitError(err, 'ERR_USAGE')) return oauthError(400, 'invalid_request', err.message);
  return oauthError(400, 'invalid_request', 'the request body could not be read');
}

/** `true`/`false`/absent → boolean; anything else → undefined (refused). */
function flag(form: OAuthForm, name: string): boolean | undefined {
  const v = form.get(name);
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  return undefined;
}

async function refreshGrant(
  ctx: ServiceContext,
  request: Request,
  form: OAuthForm,
  inBody: boolean,
): Promise<Response> {
  const cookie = readRefreshCookie(request.headers.get('cookie'), ctx.cookie);
  if (cookie === null) {
    return oauthError(400, 'invalid_request', 'the refresh cookie is sent more than once');
  }
  const param = form.get('refresh_token');
  if (param !== undefined && cookie !== undefined && param !== cookie) {
    return oauthError(
      400,
      'invalid_request',
      'refresh_token and the refresh cookie differ: send one of them',
    );
  }
  const token = param ?? cookie;
  if (token === undefined && hasLegacyRefreshCookie(request.headers.get('cookie'), ctx.cookie)) {
    return oauthError(
      400,
      'invalid_grant',
      `the rls_kit_refresh cookie was set by an earlier version of this service and is not read any more (the refresh cookie is now ${refreshCookieName(ctx.cookie)}): sign in again`,
      { 'set-cookie': clearLegacyRefreshCookie(ctx.cookie) },
    );
  }
  if (token === undefined || token === '') {
    return oauthError(
      400,
      'invalid_request',
      `no refresh token: send the ${refreshCookieName(ctx.cookie)} cookie or the refresh_token parameter`,
    );
  }
  const preferredOrg = form.get('org_id');
  let session: RefreshedSession;
  try {
    session = await ctx.refresh.refresh(token, {
      claims: async ({ sub }) => {
        const r = await resolveClaims(ctx.pool, sub, { preferredOrg, strict: true });
        if (!r.ok) throw new RlsKitError('ERR_TOKEN_CLAIMS', r.reason);
        return r.claims;
      },
    });
  } catch (err) {
    return refreshFailure(ctx, err);
  }
  ctx.metrics.refreshed();
  ctx.metrics.issued('refresh_token');
  return tokenResponse(ctx, session, { refreshInBody: inBody, exchange: false });
}

function refreshFailure(ctx: ServiceContext, err: unknown): Response {
  if (!isRlsKitError(err) || isUnavailable(err)) return failureResponse(ctx, err, 'refresh');
  const clear = { 'set-cookie': clearRefreshCookie(ctx.cookie) };
  switch (err.code) {
    case 'ERR_REFRESH_REUSED':
      ctx.metrics.reuseDetected();
      ctx.logger.warn({ event: 'refresh_reuse' }, 'refresh token reused: its session was ended');
      return oauthError(400, 'invalid_grant', err.message, clear);
    case 'ERR_REFRESH_INVALID':
    case 'ERR_REFRESH_EXPIRED':
      return oauthError(400, 'invalid_grant', err.message, clear);
    case 'ERR_REFRESH_CONCURRENT':
      // The concurrent winner's cookie is the client's new one: do not clear it.
      return oauthError(400, 'invalid_grant', err.message);
    case 'ERR_TOKEN_CLAIMS':
      return oauthError(400, 'invalid_request', err.message);
    default:
      return failureResponse(ctx, err, 'refresh');
  }
}

async function exchangeGrant(
  ctx: ServiceContext,
  form: OAuthForm,
  inBody: boolean,
): Promise<Response> {
  if (ctx.supabase === undefined) {
    return oauthError(
      400,
      'unsupported_grant_type',
      'token exchange is not configured on this service: start it with a Supabase project URL (rls-kit start --supabase-url, or SUPABASE_URL)',
    );
  }
  const subjectToken = form.get('subject_token');
  const subjectType = form.get('subject_token_type');
  if (subjectToken === undefined || subjectToken === '') {
    return oauthError(400, 'invalid_request', 'subject_token is missing');
  }
  if (subjectType === undefined || subjectType === '') {
    return oauthError(400, 'invalid_request', 'subject_token_type is missing');
  }
  if (subjectType !== ACCESS_TOKEN_TYPE && subjectType !== JWT_TOKEN_TYPE) {
    return oauthError(
      400,
      'invalid_request',
      `subject_token_type must be ${ACCESS_TOKEN_TYPE} (a Supabase Auth access token)`,
    );
  }
  if (form.has('actor_token') || form.has('actor_token_type')) {
    return oauthError(400, 'invalid_request', 'delegation (actor_token) is not supported');
  }
  const requested = form.get('requested_token_type');
  if (requested !== undefined && requested !== ACCESS_TOKEN_TYPE) {
    return oauthError(400, 'invalid_request', `requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
  }
  const audience = form.get('audience');
  if (audience !== undefined && audience !== ctx.audience) {
    return oauthError(
      400,
      'invalid_target',
      `this service issues tokens for audience ${ctx.audience} only`,
    );
  }
  const resource = form.get('resource');
  if (resource !== undefined && resource !== ctx.issuer) {
    return oauthError(
      400,
      'invalid_target',
      `this service issues tokens for resource ${ctx.issuer} only`,
    );
  }

  let subject: VerifiedClaims;
  try {
    subject = await ctx.supabase.verify(subjectToken);
  } catch (err) {
    if (isUnavailable(err)) return failureResponse(ctx, err, 'token exchange');
    const code = isRlsKitError(err) ? err.code : 'ERR_TOKEN_MALFORMED';
    const why = isRlsKitError(err) ? err.message : 'it could not be verified';
    ctx.logger.info({ event: 'exchange_rejected', code }, 'subject token rejected');
    return oauthError(400, 'invalid_request', `subject_token rejected (${code}): ${why}`);
  }
  // Supabase's own roles: only a signed-in user's token is exchanged, and the kit token
  // is never more than `authenticated` whatever the subject token says.
  if (subject.role !== 'authenticated') {
    return oauthError(
      400,
      'invalid_request',
      "subject_token rejected: only a signed-in user's token (role authenticated) can be exchanged",
    );
  }
  // The hook may have put the active org in the Supabase token: a preference only,
  // checked against memberships; an explicit org_id parameter must be a membership.
  const explicitOrg = form.get('org_id');
  const hookOrg = typeof subject.org_id === 'string' ? subject.org_id : undefined;
  let session: RefreshedSession;
  try {
    const resolved = await resolveClaims(ctx.pool, subject.sub, {
      preferredOrg: explicitOrg ?? hookOrg,
      strict: explicitOrg !== undefined,
    });
    if (!resolved.ok) {
      return resolved.kind === 'refused'
        ? oauthError(400, 'invalid_grant', `subject_token rejected: ${resolved.reason}`)
        : oauthError(400, 'invalid_request', resolved.reason);
    }
    // Bound to the Supabase session it came from: ending that session
    // (rls_kit.revoke_session(session_id)) ends this login too.
    const upstream = typeof subject.session_id === 'string' ? subject.session_id : undefined;
    session = await ctx.refresh.issue({
      sub: subject.sub,
      claims: resolved.claims,
      ...(upstream === undefined ? {} : { upstreamSession: upstream }),
    });
  } catch (err) {
    if (isRlsKitError(err, 'ERR_TOKEN_CLAIMS')) {
      return oauthError(400, 'invalid_request', `subject_token rejected: ${err.message}`);
    }
    if ((err as { code?: unknown }).code === '22P02') {
      return oauthError(400, 'invalid_request', 'subject_token rejected: sub must be a uuid');
    }
    return failureResponse(ctx, err, 'token exchange');
  }
  ctx.metrics.issued('token_exchange');
  return tokenResponse(ctx, session, { refreshInBody: inBody, exchange: true });
}

/** The rate limiter's verdict for a request, as a 429 response or undefined. */
export function rateLimited(
  ctx: ServiceContext,
  socketAddress: string | undefined,
  request: Request,
  scope: 'sign-in' | 'sign-out' = 'sign-in',
): Response | undefined {
  if (ctx.limiter === undefined) return undefined;
  // Sign-out (/revoke, /logout) has a bucket of its own: a client that spent
  // its sign-in budget (or a neighbour behind the same NAT or /64) must still
  // be able to revoke.
  const key = `${scope}:${rateLimitKey(
    clientAddress(socketAddress, request.headers.get('x-forwarded-for'), ctx.trustedProxies),
  )}`;
  const { allowed, retryAfter } = ctx.limiter.take(key);
  if (allowed) return undefined;
  ctx.logger.info({ event: 'rate_limited', path: new URL(request.url).pathname }, 'rate limited');
  return oauthError(
    429,
    'rate_limited',
    `too many requests from this client; retry in ${retryAfter} s`,
    { 'retry-after': String(retryAfter) },
  );
}
