/**
 * Name of the refresh-token cookie of a service on a loopback address with an
 * `http:` issuer (the local demo), which sends it without `Secure`.
 */
export const REFRESH_COOKIE = 'rls_kit_refresh';

/**
 * Name of the refresh-token cookie everywhere else: the `__Secure-` prefix
 * makes browsers accept the cookie only with `Secure` from an https
 * origin, so a script on plain http or a network attacker cannot plant one
 * under this name (which the service would then read as the refresh token).
 */
export const SECURE_REFRESH_COOKIE = `__Secure-${REFRESH_COOKIE}`;

/** How the service writes its refresh cookie. */
export interface RefreshCookieOptions {
  /** `Path` attribute: the token endpoint, so no other request carries the cookie. */
  readonly path: string;
  /** Leave out `Secure` (loopback demo over plain http only). */
  readonly insecure: boolean;
}

/**
 * The cookie name for these options: {@link SECURE_REFRESH_COOKIE}, or
 * {@link REFRESH_COOKIE} on a loopback http demo.
 *
 * @example
 * ```ts
 * refreshCookieName({ path: '/token', insecure: false }); // '__Secure-rls_kit_refresh'
 * ```
 */
export function refreshCookieName(options: Pick<RefreshCookieOptions, 'insecure'>): string {
  return options.insecure ? REFRESH_COOKIE : SECURE_REFRESH_COOKIE;
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
  return setCookie(refreshCookieName(options), token, options.path, maxAge, !options.insecure);
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
  return setCookie(refreshCookieName(options), '', options.path, 0, !options.insecure);
}

/**
 * The refresh cookie's value from a `Cookie` header — under the name these
 * options give it ({@link refreshCookieName}), so a service off loopback
 * reads only the `__Secure-` cookie; `undefined` when absent, and `null`
 * when the header carries it more than once (ambiguous: refused). Without
 * options it reads the `__Secure-` name.
 *
 * @example
 * ```ts
 * const token = readRefreshCookie(request.headers.get('cookie'), { path: '/token', insecure: false });
 * ```
 */
export function readRefreshCookie(
  header: string | null,
  options: Pick<RefreshCookieOptions, 'insecure'> = { insecure: false },
): string | undefined | null {
  if (header === null) return undefined;
  const name = refreshCookieName(options);
  let found: string | undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    if (found !== undefined) return null;
    found = part.slice(eq + 1).trim();
  }
  return found;
}

/**
 * Whether a `Cookie` header of a request to a `Secure` service carries the
 * unprefixed `rls_kit_refresh` — what versions before the `__Secure-` name
 * set over https. Never read as a refresh token (anyone able to plant a
 * cookie could plant it); the service answers `invalid_grant` and deletes it
 * ({@link clearLegacyRefreshCookie}), so an upgraded service sends such a
 * browser to sign in once instead of failing every refresh.
 * @internal
 */
export function hasLegacyRefreshCookie(
  header: string | null,
  options: Pick<RefreshCookieOptions, 'insecure'>,
): boolean {
  return !options.insecure && readRefreshCookie(header, { insecure: true }) !== undefined;
}

/**
 * `Set-Cookie` deleting the unprefixed cookie of {@link hasLegacyRefreshCookie}
 * (same name and path, `Secure` as it was set).
 * @internal
 */
export function clearLegacyRefreshCookie(options: Pick<RefreshCookieOptions, 'path'>): string {
  return setCookie(REFRESH_COOKIE, '', options.path, 0, true);
}

/** One refresh-cookie `Set-Cookie` value: always `HttpOnly` and `SameSite=Strict`. */
function setCookie(
  name: string,
  value: string,
  path: string,
  maxAge: number,
  secure: boolean,
): string {
  return [
    `${name}=${value}`,
    `Path=${path}`,
    `Max-Age=${maxAge}`,
    'HttpOnly',
    ...(secure ? ['Secure'] : []),
    'SameSite=Strict',
  ].join('; ');
}
