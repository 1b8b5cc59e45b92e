import { errors } from 'jose';
import { RlsKitError } from '../errors.js';

/**
 * Maps an error thrown by jose's `jwtVerify` to the kit's stable codes. The
 * jose error stays as `cause`; the message is the kit's own one-liner (jose's
 * messages are safe, but the kit promises wording of its own, without token
 * or key material).
 *
 * @example
 * ```ts
 * try { await jwtVerify(token, key, options); } catch (err) { throw fromJoseError(err); }
 * ```
 */
export function fromJoseError(err: unknown): RlsKitError {
  const make = (code: ConstructorParameters<typeof RlsKitError>[0], message: string) =>
    new RlsKitError(code, message, { cause: err });
  if (!(err instanceof errors.JOSEError)) {
    return make('ERR_TOKEN_MALFORMED', 'the token could not be verified');
  }
  switch (err.code) {
    case 'ERR_JWT_EXPIRED': {
      const claim = (err as errors.JWTExpired).claim;
      return make(
        'ERR_TOKEN_EXPIRED',
        claim === 'iat' ? 'the token is older than the maximum token age' : 'the token has expired',
      );
    }
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const { claim, reason } = err as errors.JWTClaimValidationFailed;
      if (claim === 'iss')
        return make(
          'ERR_TOKEN_ISSUER',
          'the token was issued by an issuer this verifier does not accept',
        );
      if (claim === 'aud')
        return make('ERR_TOKEN_AUDIENCE', 'the token is not meant for this audience');
      if (claim === 'typ')
        return make('ERR_TOKEN_TYPE', 'the token\'s "typ" header is not accepted');
      if ((claim === 'nbf' || claim === 'iat') && reason === 'check_failed') {
        return make('ERR_TOKEN_NOT_YET_VALID', 'the token is not valid yet');
      }
      if (reason === 'missing')
        return make('ERR_TOKEN_CLAIMS', `the token lacks the required "${claim}" claim`);
      return make('ERR_TOKEN_CLAIMS', `the token's "${claim}" claim is invalid`);
    }
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return make('ERR_TOKEN_SIGNATURE', 'the token signature is invalid');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return make('ERR_TOKEN_ALG', "the token's algorithm is not accepted");
    default:
      return make('ERR_TOKEN_MALFORMED', 'the token is not a well-formed signed JWT');
  }
}
