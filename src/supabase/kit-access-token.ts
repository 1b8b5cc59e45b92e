import { decodeJwt } from 'jose';
import { RlsKitError } from '../errors.js';

/**
 * What a token source returns: the token alone (its `exp` is read from the
 * payload) or a minted token with its `exp` (what `minter.issue()` returns).
 *
 * @example
 * ```ts
 * const fromMinter: KitTokenSource = () => minter.issue({ sub: userId, claims: { org_id: orgId } });
 * const fromService: KitTokenSource = async () => (await fetch('/token', { method: 'POST' })).text();
 * ```
 */
export type KitTokenSource = () => Promise<
  string | { readonly token: string; readonly exp: number }
>;

/**
 * Options of {@link kitAccessToken}.
 *
 * @example
 * ```ts
 * const options: KitAccessTokenOptions = { refreshBeforeSeconds: 120 };
 * ```
 */
export interface KitAccessTokenOptions {
  /** Fetch a new token this many seconds before the current one expires (default 60, at least 5). */
  refreshBeforeSeconds?: number;
  /** Milliseconds since the epoch; tests pass a fake clock (default `Date.now`). */
  clock?: () => number;
}

/**
 * The function {@link kitAccessToken} returns: supabase-js's `accessToken`
 * option, plus a way to drop the cached token (after a revocation or a
 * change of the user's claims).
 *
 * @example
 * ```ts
 * const accessToken: KitAccessToken = kitAccessToken(source);
 * accessToken.invalidate(); // the next request gets a fresh token
 * ```
 */
export interface KitAccessToken {
  (): Promise<string>;
  /** Forgets the cached token; the next call fetches a new one. */
  invalidate(): void;
}

/**
 * Plugs the kit's tokens into supabase-js through its `accessToken` option
 * (third-party auth): every request — Data API, Storage, Functions,
 * Realtime — carries a kit-minted token, refreshed before it expires.
 *
 * The token is cached until `refreshBeforeSeconds` before its `exp`;
 * concurrent callers share one fetch (supabase-js calls `accessToken` for
 * every request, concurrently); a failed fetch is not cached, so the next
 * request tries again, and the error reaches the request that asked.
 *
 * The Supabase project must trust the kit as an issuer (Authentication →
 * Third-party auth, with the kit's issuer URL; see `createWellKnownHandler`),
 * and the tokens must carry `role: authenticated` (the kit's default).
 *
 * @example
 * ```ts
 * const supabase = createClient(SUPABASE_URL, SUPABASE_ANON_KEY, {
 *   accessToken: kitAccessToken(() => minter.issue({ sub: userId, claims: { org_id: orgId, user_role: 'member' } })),
 * });
 * const { data } = await supabase.functions.invoke('documents');
 * ```
 */
export function kitAccessToken(
  source: KitTokenSource,
  options: KitAccessTokenOptions = {},
): KitAccessToken {
  if (typeof source !== 'function') {
    throw new RlsKitError(
      'ERR_CONFIG',
      'kitAccessToken needs a function returning a token, e.g. () => minter.issue({ sub })',
    );
  }
  const refreshBefore = options.refreshBeforeSeconds ?? 60;
  if (!Number.isFinite(refreshBefore) || refreshBefore < 5) {
    throw new RlsKitError('ERR_CONFIG', 'refreshBeforeSeconds must be a number of seconds >= 5');
  }
  const clock = options.clock ?? Date.now;
  let cached: { token: string; refreshAt: number } | undefined;
  let inflight: Promise<string> | undefined;
  let generation = 0;

  const fetchToken = async (): Promise<string> => {
    const started = generation;
    const { token, exp } = readToken(await source());
    const now = clock();
    if (exp * 1000 <= now) {
      throw new RlsKitError(
        'ERR_TOKEN_EXPIRED',
        'the token source returned a token that has already expired',
      );
    }
    // Refresh early, but never so early that a short-lived token is fetched on every call.
    const lifetime = exp * 1000 - now;
    const margin = Math.min(refreshBefore * 1000, lifetime / 2);
    // A token fetched before invalidate() was called must not be cached after it.
    if (started === generation) cached = { token, refreshAt: exp * 1000 - margin };
    return token;
  };

  const accessToken = (() => {
    if (cached && clock() < cached.refreshAt) return Promise.resolve(cached.token);
    if (inflight) return inflight;
    const pending = fetchToken().finally(() => {
      if (inflight === pending) inflight = undefined;
    });
    inflight = pending;
    return pending;
  }) as KitAccessToken;
  accessToken.invalidate = () => {
    generation++;
    cached = undefined;
    inflight = undefined;
  };
  return accessToken;
}

function readToken(value: unknown): { token: string; exp: number } {
  if (typeof value === 'string') return { token: value, exp: expOf(value) };
  if (value !== null && typeof value === 'object') {
    const { token, exp } = value as { token?: unknown; exp?: unknown };
    if (typeof token === 'string' && typeof exp === 'number' && Number.isFinite(exp)) {
      return { token, exp };
    }
  }
  throw new RlsKitError(
    'ERR_USAGE',
    'the token source must return a token string or { token, exp } (what minter.issue() returns)',
  );
}

/** The `exp` of a token we are about to send (not a verification: the receiver verifies). */
function expOf(token: string): number {
  let exp: unknown;
  try {
    exp = decodeJwt(token).exp;
  } catch (err) {
    throw new RlsKitError('ERR_TOKEN_MALFORMED', 'the token source returned something not a JWT', {
      cause: err,
    });
  }
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    throw new RlsKitError('ERR_TOKEN_CLAIMS', 'the token source returned a token without exp');
  }
  return exp;
}
