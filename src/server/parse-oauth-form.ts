import { RlsKitError } from '../errors.js';

/** A form-encoded request body whose parameters each appear at most once. */
export type OAuthForm = ReadonlyMap<string, string>;

const FORM = 'application/x-www-form-urlencoded';

/**
 * Parses an OAuth request body (RFC 6749 §3.2): the media type must be
 * `application/x-www-form-urlencoded` and no parameter may appear twice
 * (a repeated `grant_type` or `subject_token` is ambiguous, so it is refused
 * rather than resolved first-wins or last-wins). Errors are `ERR_USAGE`
 * with a message fit for `error_description`.
 *
 * @example
 * ```ts
 * const form = await parseOAuthForm(request);
 * const grantType = form.get('grant_type');
 * ```
 */
export async function parseOAuthForm(request: Request): Promise<OAuthForm> {
  const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== FORM) {
    throw new RlsKitError(
      'ERR_USAGE',
      `the request body must be ${FORM} (got ${type === '' ? 'no content type' : JSON.stringify(type.slice(0, 64))})`,
    );
  }
  const text = await request.text();
  const params = new URLSearchParams(text);
  const form = new Map<string, string>();
  for (const [name, value] of params) {
    if (form.has(name)) {
      throw new RlsKitError(
        'ERR_USAGE',
        `the parameter ${JSON.stringify(name.slice(0, 64))} appears more than once`,
      );
    }
    form.set(name, value);
  }
  return form;
}
