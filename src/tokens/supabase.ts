import { RlsKitError } from '../errors.js';
import type { RemoteJwksOptions } from './remote-jwks.js';
import { createVerifier, type Verifier, type VerifierOptions } from './verify.js';

/**
 * Options of {@link createSupabaseVerifier}.
 *
 * @example
 * ```ts
 * const options: SupabaseVerifierOptions = { projectUrl: 'https://abcdefghijklmnopqrst.supabase.co' };
 * ```
 */
export interface SupabaseVerifierOptions
  extends Omit<VerifierOptions, 'issuer' | 'audience' | 'keys' | 'requireJti'> {
  /** The project URL, e.g. `https://abcdefghijklmnopqrst.supabase.co` (or `http://127.0.0.1:54321` locally). */
  projectUrl: string;
  /**
   * The project's legacy JWT secret (HS256). Without it, the project's JWKS
   * (`<projectUrl>/auth/v1/.well-known/jwks.json`) is used: the asymmetric
   * signing keys.
   */
  jwtSecret?: string;
  /** Accepted `aud`; Supabase Auth issues `authenticated` for signed-in users. */
  audience?: string | readonly string[];
  /** Remote JWKS timings (TTL, cooldown, timeout, staleFor), when no `jwtSecret` is given. */
  jwks?: Omit<RemoteJwksOptions, 'jwksUrl'>;
}

/**
 * A verifier for access tokens issued by Supabase Auth (GoTrue): issuer
 * `<projectUrl>/auth/v1`, audience `authenticated`, keys from the project's
 * JWKS or its legacy HS256 secret. GoTrue's claim set (`aud`, `role`,
 * `session_id`, `aal`, `amr`, `is_anonymous`, no `jti`) verifies; `sub`,
 * `exp` and `iat` are still required, so the project's anon and service keys
 * (which have no `sub`) are not user tokens and are refused.
 *
 * A project still on the legacy secret publishes an empty JWKS: pass
 * `jwtSecret` for it.
 *
 * @example
 * ```ts
 * const verifier = createSupabaseVerifier({ projectUrl: process.env.SUPABASE_URL! });
 * const claims = await verifier.verify(accessToken); // claims.session_id, claims.aal, ...
 * ```
 */
export function createSupabaseVerifier(options: SupabaseVerifierOptions): Verifier {
  const { projectUrl, jwtSecret, audience, jwks, ...rest } = options;
  const base = projectBase(projectUrl);
  const issuer = `${base}/auth/v1`;
  return createVerifier({
    ...rest,
    issuer,
    audience: audience ?? 'authenticated',
    requireJti: false,
    keys:
      jwtSecret !== undefined
        ? { secret: jwtSecret }
        : { ...jwks, jwksUrl: `${issuer}/.well-known/jwks.json` },
  });
}

/** The project URL without trailing slashes; only an origin (GoTrue's issuer is built on it). */
function projectBase(projectUrl: string): string {
  let url: URL;
  try {
    url = new URL(projectUrl);
  } catch (err) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'projectUrl is not a URL; use the project URL, e.g. https://<ref>.supabase.co',
      { cause: err },
    );
  }
  if (url.pathname.replace(/\/+$/, '') !== '' || url.search || url.hash) {
    throw new RlsKitError(
      'ERR_CONFIG',
      'projectUrl must be the project origin only, e.g. https://<ref>.supabase.co (no path)',
    );
  }
  return url.origin;
}
