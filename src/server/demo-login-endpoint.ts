import type { RefreshedSession } from '../refresh/index.js';
import { oauthError } from './oauth-error.js';
import { resolveClaims } from './resolve-claims.js';
import { failureResponse, type ServiceContext, tokenResponse } from './service-context.js';

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}$/;

/**
 * `POST /demo/login` (demo mode only: embedded database, loopback host):
 * JSON `{"email": "alice@acme.test"}` for a seeded user, optionally
 * `"org_id"` and `"refresh_token_in_body": true`. Answers like `POST /token`:
 * `{"access_token", "token_type": "bearer", "expires_in"}` and the refresh
 * cookie. There is no password: this endpoint exists only where nothing but
 * the local machine can reach it.
 *
 * @example
 * ```ts
 * if (ctx.demo) app.post('/demo/login', (c) => demoLoginEndpoint(ctx, c.req.raw));
 * ```
 */
export async function demoLoginEndpoint(ctx: ServiceContext, request: Request): Promise<Response> {
  const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    return oauthError(
      400,
      'invalid_request',
      'the request body must be application/json: {"email": "..."}',
    );
  }
  let input: unknown;
  try {
    input = JSON.parse(await request.text());
  } catch {
    return oauthError(
      400,
      'invalid_request',
      'the request body is not valid JSON: send {"email": "..."}',
    );
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return oauthError(
      400,
      'invalid_request',
      'the request body must be a JSON object: {"email": "..."}',
    );
  }
  const { email, org_id: orgId, refresh_token_in_body: inBody } = input as Record<string, unknown>;
  if (typeof email !== 'string' || !EMAIL.test(email)) {
    return oauthError(400, 'invalid_request', 'email must be an email address string');
  }
  if (orgId !== undefined && typeof orgId !== 'string') {
    return oauthError(400, 'invalid_request', 'org_id must be a uuid string');
  }
  if (inBody !== undefined && typeof inBody !== 'boolean') {
    return oauthError(400, 'invalid_request', 'refresh_token_in_body must be true or false');
  }
  let session: RefreshedSession;
  try {
    const { rows } = await ctx.pool.query<{ id: string }>(
      'select id::text as id from auth.users where lower(email) = lower($1) limit 1',
      [email],
    );
    const sub = rows[0]?.id;
    if (sub === undefined) {
      return oauthError(
        400,
        'invalid_grant',
        'no seeded user has that email (see supabase/seed.sql)',
      );
    }
    const resolved = await resolveClaims(ctx.pool, sub, { preferredOrg: orgId, strict: true });
    if (!resolved.ok) {
      return oauthError(
        400,
        resolved.kind === 'refused' ? 'invalid_grant' : 'invalid_request',
        resolved.reason,
      );
    }
    session = await ctx.refresh.issue({ sub, claims: resolved.claims });
  } catch (err) {
    return failureResponse(ctx, err, 'demo login');
  }
  ctx.metrics.issued('demo_login');
  return tokenResponse(ctx, session, { refreshInBody: inBody === true, exchange: false });
}
