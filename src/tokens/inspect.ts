import {
  decodeJwt,
  decodeProtectedHeader,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import { RlsKitError } from '../errors.js';
import { type ClaimSize, claimSizes } from './size.js';

/** Tokens longer than this are not inspected (the verifier's default cap is 8 KiB). */
export const MAX_INSPECT_LENGTH = 64 * 1024;

/** What {@link inspectToken} returns. Nothing in it has been verified. */
export interface InspectResult {
  /** Always true: the signature, issuer, audience and times were NOT checked. */
  readonly unverified: true;
  readonly header: ProtectedHeaderParameters;
  readonly claims: JWTPayload;
  readonly size: {
    /** Length of the whole compact token in bytes. */
    readonly total: number;
    readonly header: number;
    readonly payload: number;
    readonly signature: number;
    /** Byte size of each claim's `"name":value`, largest first. */
    readonly claims: readonly ClaimSize[];
  };
  /** `iat`, `nbf` and `exp` as ISO 8601 when they are numbers, for people. */
  readonly times: { readonly iat?: string; readonly nbf?: string; readonly exp?: string };
}

/**
 * Decodes a compact JWT without verifying it (jose's `decodeProtectedHeader`
 * and `decodeJwt`), for debugging: header, claims, and the byte size of each
 * part and each claim. The result says `unverified: true`; never make an
 * access decision from it.
 *
 * Anything that is not a compact JWS with a JSON object payload — garbage,
 * JWE, JSON serialization, binary — is `ERR_TOKEN_MALFORMED`; over 64 KiB is
 * `ERR_TOKEN_TOO_LARGE`. Messages never include the token.
 *
 * @example
 * ```ts
 * const { claims, size } = inspectToken(token);
 * console.log(size.total, size.claims[0]);
 * ```
 */
export function inspectToken(token: string): InspectResult {
  if (typeof token !== 'string') {
    throw new RlsKitError('ERR_TOKEN_MALFORMED', 'the token must be a string');
  }
  const text = token.trim();
  if (text.length > MAX_INSPECT_LENGTH) {
    throw new RlsKitError(
      'ERR_TOKEN_TOO_LARGE',
      `the token is ${text.length} characters; inspect reads at most ${MAX_INSPECT_LENGTH}`,
    );
  }
  const parts = text.split('.');
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]*$/.test(p))) {
    throw new RlsKitError(
      'ERR_TOKEN_MALFORMED',
      parts.length === 5
        ? 'the token is a JWE (5 parts); inspect decodes signed JWTs (3 parts)'
        : 'the token is not a compact JWT (three base64url parts separated by dots)',
    );
  }
  let header: ProtectedHeaderParameters;
  let claims: JWTPayload;
  try {
    header = decodeProtectedHeader(text);
    claims = decodeJwt(text);
  } catch (err) {
    throw new RlsKitError(
      'ERR_TOKEN_MALFORMED',
      'the token does not decode: its header or payload is not base64url-encoded JSON objects',
      { cause: err },
    );
  }
  const [h = '', p = '', s = ''] = parts;
  const times: { iat?: string; nbf?: string; exp?: string } = {};
  for (const name of ['iat', 'nbf', 'exp'] as const) {
    const value = claims[name];
    if (typeof value === 'number' && Number.isFinite(value) && Math.abs(value) < 8.64e12) {
      times[name] = new Date(value * 1000).toISOString();
    }
  }
  return {
    unverified: true,
    header,
    claims,
    size: {
      total: text.length,
      header: h.length,
      payload: p.length,
      signature: s.length,
      claims: claimSizes(claims),
    },
    times,
  };
}
