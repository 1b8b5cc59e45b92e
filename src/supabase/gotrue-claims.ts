import { RlsKitError } from '../errors.js';

/**
 * Input of {@link gotrueClaims}. Every member is optional; any other member
 * (`org_id`, `user_role`, …) is an app claim added as it is.
 *
 * @example
 * ```ts
 * const input: GotrueClaimsInput = { sub: aliceId, email: 'alice@acme.test', org_id: acmeId, user_role: 'owner' };
 * ```
 */
export interface GotrueClaimsInput {
  /** The user id (default: a random uuid). */
  sub?: string;
  /** Default `''`: as Supabase Auth writes it for a user without one. */
  email?: string;
  /** Default `''`. */
  phone?: string;
  /** The project URL; `iss` becomes `<projectUrl>/auth/v1` (default the local CLI stack, `http://127.0.0.1:54321`). */
  projectUrl?: string;
  /** Overrides `iss` entirely. */
  iss?: string;
  /** Default `authenticated`. */
  aud?: string | string[];
  /** Default `authenticated` (also for anonymous sign-ins, as on Supabase). */
  role?: string;
  /** Authenticator assurance level, default `aal1`. */
  aal?: 'aal1' | 'aal2';
  /** Default: a random uuid. */
  session_id?: string;
  /** Default `false`. */
  is_anonymous?: boolean;
  /** Issued at, epoch seconds (default now). */
  iat?: number;
  /** Lifetime in seconds (default 3600, Supabase's default JWT expiry); ignored when `exp` is given. */
  ttl?: number;
  /** Expiry, epoch seconds. */
  exp?: number;
  /**
   * Add `app_metadata`, `user_metadata` and `amr` the way Supabase Auth's
   * default token carries them (default false: the shape after the kit's
   * Custom Access Token Hook, which drops them).
   */
  metadata?: boolean;
  /** App claims: anything else, e.g. `org_id`, `user_role`. */
  [claim: string]: unknown;
}

/**
 * Claims shaped like a Supabase Auth (GoTrue) access token's payload.
 *
 * @example
 * ```ts
 * const claims: GotrueClaims = gotrueClaims({ sub: aliceId });
 * claims.session_id; // a uuid
 * ```
 */
export interface GotrueClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  email: string;
  phone: string;
  role: string;
  aal: string;
  session_id: string;
  is_anonymous: boolean;
  [claim: string]: unknown;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KNOWN = new Set([
  'sub',
  'email',
  'phone',
  'projectUrl',
  'iss',
  'aud',
  'role',
  'aal',
  'session_id',
  'is_anonymous',
  'iat',
  'ttl',
  'exp',
  'metadata',
]);

/**
 * Builds the claims Supabase Auth puts in a user's access token — `iss`,
 * `aud: authenticated`, `role: authenticated`, `sub`, `email`, `phone`,
 * `aal`, `session_id`, `is_anonymous`, `iat`, `exp` — plus the app's
 * claims, for policy tests (with `actAs` or the SQL `act_as`) and for
 * signing test tokens. Nothing is verified or signed here.
 *
 * @throws RlsKitError `ERR_USAGE` for a `sub` or `session_id` that is not a
 * uuid (Supabase's are; `auth.uid()` casts `sub` to uuid).
 *
 * @example
 * ```ts
 * const alice = gotrueClaims({ sub: aliceId, email: 'alice@acme.test', org_id: acmeId, user_role: 'owner' });
 * const rows = await actAs(pool, alice, (client) => client.query('select id from documents'));
 * ```
 */
export function gotrueClaims(input: GotrueClaimsInput = {}): GotrueClaims {
  const sub = input.sub ?? crypto.randomUUID();
  const sessionId = input.session_id ?? crypto.randomUUID();
  for (const [name, value] of [
    ['sub', sub],
    ['session_id', sessionId],
  ] as const) {
    if (typeof value !== 'string' || !UUID.test(value)) {
      throw new RlsKitError('ERR_USAGE', `gotrueClaims: ${name} must be a uuid, as Supabase's are`);
    }
  }
  const iat = input.iat ?? Math.floor(Date.now() / 1000);
  const exp = input.exp ?? iat + (input.ttl ?? 3600);
  const projectUrl = (input.projectUrl ?? 'http://127.0.0.1:54321').replace(/\/+$/, '');
  const app: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(input)) {
    if (!KNOWN.has(name) && value !== undefined) app[name] = value;
  }
  const claims: GotrueClaims = {
    iss: input.iss ?? `${projectUrl}/auth/v1`,
    sub,
    aud: input.aud ?? 'authenticated',
    exp,
    iat,
    email: input.email ?? '',
    phone: input.phone ?? '',
    role: input.role ?? 'authenticated',
    aal: input.aal ?? 'aal1',
    session_id: sessionId,
    is_anonymous: input.is_anonymous ?? false,
  };
  if (input.metadata) {
    claims.app_metadata = input.is_anonymous
      ? {}
      : { provider: input.phone && !input.email ? 'phone' : 'email', providers: ['email'] };
    claims.user_metadata = {};
    claims.amr = [{ method: input.is_anonymous ? 'anonymous' : 'password', timestamp: iat }];
  }
  return { ...claims, ...app };
}
