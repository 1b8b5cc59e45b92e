/**
 * The OAuth error codes the service answers with (RFC 6749 §5.2, RFC 8693
 * §2.2.2, RFC 7009 §2.2.1, RFC 6750 §3.1).
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_grant'
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'unsupported_token_type'
  | 'invalid_target'
  | 'invalid_token'
  | 'temporarily_unavailable'
  | 'rate_limited'
  | 'not_found'
  | 'forbidden'
  | 'method_not_allowed'
  | 'server_error';

/** Headers every OAuth response carries (RFC 6749 §5.1: never cached). */
export const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

/**
 * An OAuth-shaped JSON error response: `{"error", "error_description"}`,
 * `Cache-Control: no-store`. The description is for developers; it never
 * contains a token or a secret.
 *
 * @example
 * ```ts
 * return oauthError(400, 'invalid_request', 'grant_type is missing');
 * ```
 */
export function oauthError(
  status: number,
  error: OAuthErrorCode,
  description: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ error, error_description: description }), {
    status,
    headers: { 'content-type': 'application/json', ...NO_STORE, ...headers },
  });
}
