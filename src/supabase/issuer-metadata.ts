import type { JWK } from 'jose';
import { RlsKitError } from '../errors.js';
import { publicJwks as keyringPublicJwks } from '../keys/export-jwks.js';
import type { Keyring, SigningAlg } from '../keys/types.js';

/**
 * Options of {@link openIdConfiguration}.
 *
 * @example
 * ```ts
 * const options: OpenIdConfigurationOptions = { issuer: 'https://auth.example.com' };
 * ```
 */
export interface OpenIdConfigurationOptions {
  /** The `iss` of the kit's tokens, exactly: an `https` URL (plain `http` only on a loopback host). */
  issuer: string;
  /** Where the JWKS is served; default `<issuer>/.well-known/jwks.json`. */
  jwksUri?: string;
  /** Signing algorithms of the published keys; default ES256, RS256, EdDSA. */
  algorithms?: readonly SigningAlg[];
  /** Further metadata (e.g. `token_endpoint`); cannot replace `issuer` or `jwks_uri`. */
  extra?: Readonly<Record<string, unknown>>;
}

/**
 * The OpenID Provider metadata (OpenID Connect Discovery 1.0 §3) for the
 * kit as a token issuer, served at `<issuer>/.well-known/openid-configuration`:
 * what a Supabase project's third-party auth (custom OIDC), jose's remote
 * JWKS or any verifier needs to find the keys from the issuer URL alone.
 *
 * The kit issues access tokens, not interactive sign-in, so the document
 * holds the members a verifier reads (`issuer`, `jwks_uri`, the signing
 * algorithms) and the required ones with the only values that apply.
 *
 * @example
 * ```ts
 * openIdConfiguration({ issuer: 'https://auth.example.com' });
 * // { issuer: 'https://auth.example.com', jwks_uri: 'https://auth.example.com/.well-known/jwks.json', ... }
 * ```
 */
export function openIdConfiguration(options: OpenIdConfigurationOptions): Record<string, unknown> {
  const issuer = checkIssuer(options.issuer);
  const jwksUri =
    options.jwksUri === undefined
      ? `${issuer.replace(/\/+$/, '')}/.well-known/jwks.json`
      : checkUrl(options.jwksUri, 'jwksUri');
  const algorithms = [...(options.algorithms ?? ['ES256', 'RS256', 'EdDSA'])].filter(
    (alg) => alg !== 'HS256',
  );
  if (algorithms.length === 0) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'openIdConfiguration needs at least one asymmetric algorithm (ES256, RS256 or EdDSA)',
    );
  }
  return {
    ...options.extra,
    issuer,
    jwks_uri: jwksUri,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: algorithms,
    claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'role', 'sid'],
  };
}

/**
 * The keyring's public keys as a JWK Set for third parties (a Supabase
 * project, jose's `createRemoteJWKSet`): the asymmetric keys the keyring
 * publishes (standby and active, and retired keys until their last token
 * expires, so a rotation never breaks tokens already out), each with `kid`,
 * `alg` and `use: "sig"`, and no private or symmetric material — built on
 * the keys capability's `publicJwks`.
 *
 * @throws RlsKitError `ERR_CONFIG` when the keyring has no asymmetric key:
 * an HS256 secret cannot be published, and Supabase's third-party auth
 * needs asymmetric keys.
 *
 * @example
 * ```ts
 * const jwks = publicJwks(ring); // { keys: [{ kty: 'EC', crv: 'P-256', x, y, kid, alg: 'ES256', use: 'sig' }] }
 * ```
 */
export function publicJwks(keyring: Keyring): { keys: JWK[] } {
  const { keys } = keyringPublicJwks(keyring);
  if (keys.length === 0) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'the keyring has no asymmetric key to publish (HS256 secrets stay private): add one with rls-kit keys generate --alg ES256',
    );
  }
  return {
    keys: keys.map((key) => {
      if (typeof key.kid !== 'string' || typeof key.alg !== 'string') {
        throw new RlsKitError(
          'ERR_CONFIG',
          'a keyring key has no kid or alg: load the keyring with parseKeyring or readKeyringFile',
        );
      }
      return { ...key, use: 'sig' };
    }),
  };
}

/**
 * Options of {@link createWellKnownHandler}.
 *
 * @example
 * ```ts
 * const options: WellKnownHandlerOptions = { issuer: 'https://auth.example.com', keyring: () => current };
 * ```
 */
export interface WellKnownHandlerOptions {
  /** The `iss` of the kit's tokens. */
  issuer: string;
  /** The keyring, or a function returning the current one (read on every request, so rotation shows at once). */
  keyring: Keyring | (() => Keyring);
  /** Where the JWKS is served, when not `<issuer>/.well-known/jwks.json`. */
  jwksUri?: string;
  /** Seconds responses may be cached (default 600: the window key rotation waits out). */
  maxAge?: number;
  /** Further discovery metadata (e.g. `token_endpoint`); cannot replace `issuer` or `jwks_uri`. */
  extra?: Readonly<Record<string, unknown>>;
}

const DISCOVERY_SUFFIX = '/.well-known/openid-configuration';
const JWKS_SUFFIX = '/.well-known/jwks.json';

/**
 * A fetch-style handler for the issuer's two public documents:
 * `GET /.well-known/openid-configuration` ({@link openIdConfiguration}) and
 * `GET /.well-known/jwks.json` ({@link publicJwks}), both
 * `Cache-Control: public, max-age=600` and readable cross-origin. Paths are
 * matched by suffix, so the handler works under a prefix (an Edge
 * Function's `/functions/v1/<name>/…`). Any other path gives `undefined`,
 * so it chains in front of other routes; another method on these paths
 * gives 405.
 *
 * @example
 * ```ts
 * const wellKnown = createWellKnownHandler({ issuer: 'https://auth.example.com', keyring: () => ring });
 * Deno.serve((req) => wellKnown(req) ?? app(req));
 * ```
 */
export function createWellKnownHandler(
  options: WellKnownHandlerOptions,
): (request: Request) => Response | undefined {
  const { issuer, jwksUri, extra } = options;
  const maxAge = options.maxAge ?? 600;
  if (!Number.isInteger(maxAge) || maxAge < 0) {
    throw new RlsKitError('ERR_CONFIG', 'maxAge must be a whole number of seconds >= 0');
  }
  const ringOf =
    typeof options.keyring === 'function' ? options.keyring : constant(options.keyring);
  if (typeof options.keyring !== 'function') {
    // A static keyring is checked now: a keyring with nothing to publish is a setup mistake.
    publicJwks(options.keyring);
  }
  // Checks the issuer now too (throws ERR_CONFIG for a bad one).
  openIdConfiguration({ issuer, jwksUri, extra });
  const cacheHeaders = {
    'cache-control': `public, max-age=${maxAge}`,
    'access-control-allow-origin': '*',
  };

  return (request) => {
    let pathname: string;
    try {
      pathname = new URL(request.url).pathname;
    } catch {
      return undefined;
    }
    const discovery = pathname.endsWith(DISCOVERY_SUFFIX);
    if (!discovery && !pathname.endsWith(JWKS_SUFFIX)) return undefined;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return new Response(null, { status: 405, headers: { allow: 'GET, HEAD' } });
    }
    let body: string;
    let type: string;
    try {
      const jwks = publicJwks(ringOf());
      if (discovery) {
        const algorithms = [...new Set(jwks.keys.map((k) => k.alg as SigningAlg))];
        body = JSON.stringify(openIdConfiguration({ issuer, jwksUri, algorithms, extra }));
        type = 'application/json';
      } else {
        body = JSON.stringify(jwks);
        type = 'application/jwk-set+json';
      }
    } catch {
      // Never cache a failure: the next request should see the fixed keyring.
      return new Response(JSON.stringify({ error: 'server_error' }), {
        status: 500,
        headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      });
    }
    return new Response(request.method === 'HEAD' ? null : body, {
      headers: { 'content-type': type, ...cacheHeaders },
    });
  };
}

function constant<T>(value: T): () => T {
  return () => value;
}

function checkIssuer(issuer: string): string {
  const url = parseUrl(issuer, 'issuer');
  if (url.search || url.hash || issuer.includes('?') || issuer.includes('#')) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'issuer must be a URL without query or fragment (OpenID Connect Discovery §3)',
    );
  }
  return issuer;
}

function checkUrl(value: string, what: string): string {
  parseUrl(value, what);
  return value;
}

function parseUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch (err) {
    throw new RlsKitError('ERR_CONFIG', `${what} is not a URL, e.g. https://auth.example.com`, {
      cause: err,
    });
  }
  const loopback =
    url.hostname === 'localhost' ||
    url.hostname === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(url.hostname);
  if (!(url.protocol === 'https:' || (url.protocol === 'http:' && loopback))) {
    throw new RlsKitError(
      'ERR_CONFIG',
      `${what} must use https (plain http only on a loopback host such as 127.0.0.1)`,
    );
  }
  if (url.username || url.password) {
    throw new RlsKitError('ERR_CONFIG', `${what} must not carry credentials`);
  }
  return url;
}
