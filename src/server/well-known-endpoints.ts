import { publicJwks } from '../keys/index.js';
import type { ServiceContext } from './service-context.js';

/**
 * `GET /.well-known/jwks.json`: the keyring's public keys (standby, active,
 * and retired keys still verifying), cacheable for the JWKS cache window
 * (600 s, which key rotation waits out before promoting a standby key).
 *
 * @example
 * ```ts
 * app.get('/.well-known/jwks.json', () => jwksEndpoint(ctx));
 * ```
 */
export function jwksEndpoint(ctx: ServiceContext): Response {
  try {
    const body = JSON.stringify(publicJwks(ctx.keys.keyring()));
    ctx.metrics.jwksFetch('ok');
    return new Response(body, {
      headers: {
        'content-type': 'application/jwk-set+json',
        'cache-control': 'public, max-age=600',
      },
    });
  } catch (err) {
    ctx.metrics.jwksFetch('error');
    throw err;
  }
}

/**
 * `GET /.well-known/openid-configuration`: discovery metadata (RFC 8414
 * members) so verifiers find the JWKS from the issuer alone.
 *
 * @example
 * ```ts
 * app.get('/.well-known/openid-configuration', () => openIdConfigurationEndpoint(ctx));
 * ```
 */
export function openIdConfigurationEndpoint(ctx: ServiceContext): Response {
  const base = ctx.issuer.replace(/\/+$/, '');
  const body = {
    issuer: ctx.issuer,
    jwks_uri: `${base}/.well-known/jwks.json`,
    token_endpoint: `${base}/token`,
    revocation_endpoint: `${base}/revoke`,
    grant_types_supported: ['refresh_token', 'urn:ietf:params:oauth:grant-type:token-exchange'],
    token_endpoint_auth_methods_supported: ['none'],
    revocation_endpoint_auth_methods_supported: ['none'],
    response_types_supported: ['token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [
      ...new Set(ctx.keys.keyring().keys.map((k) => k.alg)),
    ].filter((a) => a !== 'HS256'),
  };
  return new Response(JSON.stringify(body), {
    headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=600' },
  });
}
