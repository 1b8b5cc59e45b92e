/** Name of the refresh-token cookie. */
export const REFRESH_COOKIE = 'rls_kit_refresh';

/** How the service writes its refresh cookie. */
export interface RefreshCookieOptions {
  /** `Path` attribute: the token endpoint, so no other request carries the cookie. */
  readonly path: string;
  /** Leave out `Secure` (loopback demo over plain http only). */
  readonly insecure: boolean;
}

/**
 * `Set-Cookie` for a refresh token: `HttpOnly` (no script reads it),
 * `Secure` (https only; left out only for a loopback demo), `SameSite=Strict`
 * (no cross-site request carries it: a refresh cannot be forged from another
 * site), `Path` = the token endpoint, `Max-Age` = until the family's absolute
 * end.
 *
 * @example
 * ```ts
 * headers.append('set-cookie', refreshCookie(session.refreshToken, session.expiresAt, { path: '/token', insecure: false }));
 * ```
 */
export function refreshCookie(
  token: string,
  expiresAt: Date,
  options: RefreshCookieOptions,
): string {
  const maxAge = Math.max(0, Math.floor((expiresAt.getTime() - Date.now()) / 1000));
  return [
    `${REFRESH_COOKIE}=${token}`,
    `Path=${options.path}`,
    `Max-Age=${maxAge}`,
    'HttpOnly',
    ...(options.insecure ? [] : ['Secure']),
    'SameSite=Strict',
  ].join('; ');
}

/**
 * `Set-Cookie` that deletes the refresh cookie (same name, path and
 * attributes, `Max-Age=0`).
 *
 * @example
 * ```ts
 * headers.append('set-cookie', clearRefreshCookie({ path: '/token', insecure: false }));
 * ```
 */
export function clearRefreshCookie(options: RefreshCookieOptions): string {
  return [
    `${REFRESH_COOKIE}=`,
    `Path=${options.path}`,
    'Max-Age=0',
    'HttpOnly',
    ...(options.insecure ? [] : ['Secure']),
    'SameSite=Strict',
  ].join('; ');
}

/**
 * The refresh cookie's value from a `Cookie` header; `undefined` when absent,
 * and `null` when the header carries it more than once (ambiguous: refused).
 *
 * @example
 * ```ts
 * const token = readRefreshCookie(request.headers.get('cookie'));
 * ```
 */
export function readRefreshCookie(header: string | null): string | undefined | null {
  if (header === null) return undefined;
  let found: string | undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== REFRESH_COOKIE) continue;
    if (found !== undefined) return null;
    found = part.slice(eq + 1).trim();
  }
  return found;
}
