/**
 * The kit's single error class. Every failure the kit reports carries a stable
 * string `code` that callers can switch on, a one-line message that names the
 * problem and what to do, and the original error as `cause`.
 *
 * Messages never contain a token, a secret, a password or a full connection
 * string: callers may log them as they are.
 *
 * @example
 * ```ts
 * try {
 *   await verifier.verify(token);
 * } catch (err) {
 *   if (err instanceof RlsKitError && err.code === 'ERR_TOKEN_EXPIRED') return unauthorized();
 *   throw err;
 * }
 * ```
 */
export class RlsKitError extends Error {
  override readonly name = 'RlsKitError';
  readonly code: RlsKitErrorCode;

  constructor(code: RlsKitErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

/** Every code the kit throws. Codes are stable across minor versions. */
export type RlsKitErrorCode =
  // configuration and usage
  | 'ERR_USAGE'
  | 'ERR_CONFIG'
  // database
  | 'ERR_DB_URL'
  | 'ERR_DB_UNREACHABLE'
  | 'ERR_DB_EMBEDDED'
  | 'ERR_DB_QUERY'
  | 'ERR_MIGRATION'
  | 'ERR_CLAIMS'
  | 'ERR_ROLE_NOT_ALLOWED'
  // keys
  | 'ERR_KEY_UNKNOWN'
  | 'ERR_KEY_WEAK'
  | 'ERR_KEY_INVALID'
  | 'ERR_JWKS_UNAVAILABLE'
  // tokens
  | 'ERR_TOKEN_MALFORMED'
  | 'ERR_TOKEN_TOO_LARGE'
  | 'ERR_TOKEN_ALG'
  | 'ERR_TOKEN_SIGNATURE'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_YET_VALID'
  | 'ERR_TOKEN_ISSUER'
  | 'ERR_TOKEN_AUDIENCE'
  | 'ERR_TOKEN_CLAIMS'
  | 'ERR_TOKEN_TYPE'
  | 'ERR_TOKEN_REVOKED'
  | 'ERR_TOKEN_TTL'
  | 'ERR_TOKEN_SIZE'
  | 'ERR_REVOCATION_UNAVAILABLE'
  | 'ERR_REVOKE_INPUT'
  // refresh tokens
  | 'ERR_REFRESH_INVALID'
  | 'ERR_REFRESH_EXPIRED'
  | 'ERR_REFRESH_REUSED'
  | 'ERR_REFRESH_CONCURRENT';

/** True when `err` is an {@link RlsKitError}, optionally with the given code. */
export function isRlsKitError(err: unknown, code?: RlsKitErrorCode): err is RlsKitError {
  return err instanceof RlsKitError && (code === undefined || err.code === code);
}
