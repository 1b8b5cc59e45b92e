import type { Kysely } from 'kysely';
import { asUser } from '../db/as-user.js';
import { isRlsKitError } from '../errors.js';
import type { VerifiedClaims, Verifier } from '../tokens/index.js';
import { oauthError } from './oauth-error.js';
import { isUnavailable } from './service-context.js';

/**
 * The service's bearer wrapper for fetch-style handlers: the token is
 * verified (revocation included), then the handler runs in one transaction
 * as the token's user. 401 with `WWW-Authenticate: Bearer` (RFC 6750) for a
 * missing or rejected token, 503 when the database or the revocation state
 * is unavailable — never the handler's answer on unverified state.
 *
 * @example
 * ```ts
 * const handle = createBearerHandler({ verifier, db }, (request, { claims, db }) => documentsHandler(request, { claims, db }));
 * app.all('/api/documents/*', (c) => handle(c.req.raw));
 * ```
 */
export function createBearerHandler<DB>(
  options: { verifier: Verifier; db: Kysely<DB> },
  handler: (
    request: Request,
    context: { claims: VerifiedClaims; token: string; db: Kysely<DB> },
  ) => Promise<Response>,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const header = request.headers.get('authorization');
    const token = header?.match(/^Bearer ([\x21-\x7e]+)$/i)?.[1];
    if (token === undefined) {
      return oauthError(
        401,
        'invalid_token',
        'send the access token as Authorization: Bearer <token>',
        {
          'www-authenticate': header === null ? 'Bearer' : 'Bearer error="invalid_request"',
        },
      );
    }
    let claims: VerifiedClaims;
    try {
      claims = options.verifier.verifyCached(token) ?? (await options.verifier.verify(token));
    } catch (err) {
      if (isUnavailable(err)) return unavailable();
      const why = isRlsKitError(err) ? `${err.message} (${err.code})` : 'the token is invalid';
      return oauthError(401, 'invalid_token', why, {
        'www-authenticate': 'Bearer error="invalid_token"',
      });
    }
    try {
      return await asUser(options.db, claims, (trx) =>
        handler(request, { claims, token, db: trx }),
      );
    } catch (err) {
      if (isUnavailable(err)) return unavailable();
      if ((err as { code?: unknown }).code === '42501') {
        return oauthError(403, 'forbidden', 'row level security does not allow this operation');
      }
      throw err;
    }
  };
}

function unavailable(): Response {
  return oauthError(
    503,
    'temporarily_unavailable',
    'the database or the revocation list is unavailable; retry shortly',
    {
      'retry-after': '1',
    },
  );
}
