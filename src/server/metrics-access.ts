import { createHash, timingSafeEqual } from 'node:crypto';
import { RlsKitError } from '../errors.js';
import { isLoopbackHost } from './client-address.js';
import { oauthError } from './oauth-error.js';

/** Who may read `GET /metrics`; see `TokenServiceOptions.metricsAccess`. */
export type MetricsAccess = 'loopback' | 'public' | { bearerToken: string };

/** A checked {@link MetricsAccess}: the token kept only as its digest. */
export type MetricsGate =
  | { readonly kind: 'loopback' | 'public' }
  | { readonly kind: 'bearer'; readonly digest: Buffer };

const MIN_TOKEN_LENGTH = 32;

/**
 * Checks the `metricsAccess` option once, at start.
 *
 * @throws RlsKitError `ERR_CONFIG` for an unknown mode or a bearer token shorter than 32 characters.
 * @example
 * ```ts
 * const gate = metricsGate(options.metricsAccess);
 * ```
 */
export function metricsGate(access: MetricsAccess | undefined): MetricsGate {
  if (access === undefined || access === 'loopback') return { kind: 'loopback' };
  if (access === 'public') return { kind: 'public' };
  const token = (access as { bearerToken?: unknown } | null)?.bearerToken;
  if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH) {
    throw new RlsKitError(
      'ERR_CONFIG',
      `metricsAccess must be 'loopback', 'public' or { bearerToken } with a token of at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -base64 32)`,
    );
  }
  return { kind: 'bearer', digest: digest(token) };
}

/**
 * The refusal for a `/metrics` request the gate does not let through, or
 * undefined. `client` is the rate limiter's view of the caller (the socket
 * peer, or the forwarded client behind a trusted proxy; `local` without a
 * socket, which the loopback mode refuses: configure a token or `public`).
 *
 * @example
 * ```ts
 * const refused = metricsRefusal(gate, clientAddress(peer, xff, trusted), request.headers.get('authorization'));
 * if (refused) return refused;
 * ```
 */
export function metricsRefusal(
  gate: MetricsGate,
  client: string,
  authorization: string | null,
): Response | undefined {
  switch (gate.kind) {
    case 'public':
      return undefined;
    case 'loopback':
      // 'local' (no socket: the app mounted elsewhere) and 'unknown' are not provably this host.
      if (isLoopbackHost(client)) return undefined;
      return oauthError(
        403,
        'forbidden',
        '/metrics answers clients on this host only: scrape it locally, or start the service with a metrics bearer token',
      );
    case 'bearer': {
      const match = /^Bearer ([^\s]+)$/i.exec(authorization ?? '');
      if (match?.[1] !== undefined && timingSafeEqual(digest(match[1]), gate.digest)) {
        return undefined;
      }
      return oauthError(401, 'invalid_token', '/metrics needs the metrics bearer token', {
        'www-authenticate': 'Bearer realm="metrics"',
      });
    }
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
