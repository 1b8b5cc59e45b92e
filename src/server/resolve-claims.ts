import type pg from 'pg';
import type { ExampleClaims } from '../tokens/index.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The result of {@link resolveClaims}: the claims, or why the requested organization was refused. */
export type ResolvedClaims =
  | { readonly ok: true; readonly claims: ExampleClaims }
  | {
      readonly ok: false;
      /** `refused`: the user may not have tokens at all; `org`: the requested organization is refused. */
      readonly kind: 'refused' | 'org';
      readonly reason: string;
    };

/**
 * The example app's custom claims for a user, from `public.memberships`
 * (the source of truth — never from the client, never from a token's own
 * copy), by the same rule as the example's Custom Access Token Hook resolver
 * (`rls_kit.resolve_claims`), so a token exchange and a Supabase sign-in give
 * a user the same organization: the active organization is `preferredOrg`
 * when the user has an enabled membership there, else their oldest enabled
 * membership (then by organization id, so the choice is stable). Disabled
 * memberships never count. A user without memberships gets no custom claims
 * (the example's policies then match nothing); a user whose memberships are
 * all disabled is refused, as the hook refuses them. A `preferredOrg` that is
 * not one of the user's enabled memberships is refused when `strict`,
 * ignored otherwise.
 *
 * @example
 * ```ts
 * const r = await resolveClaims(pool, userId, { preferredOrg: form.get('org_id'), strict: true });
 * if (r.ok) await minter.mint({ sub: userId, claims: r.claims });
 * ```
 */
export async function resolveClaims(
  db: pg.Pool | pg.ClientBase,
  sub: string,
  options: { preferredOrg?: string | undefined; strict?: boolean } = {},
): Promise<ResolvedClaims> {
  let preferred = options.preferredOrg;
  if (preferred !== undefined && !UUID.test(preferred)) {
    if (options.strict) return { ok: false, kind: 'org', reason: 'org_id must be a uuid' };
    preferred = undefined;
  }
  const { rows } = await db.query<{
    org_id: string;
    role: ExampleClaims['user_role'];
    disabled: boolean;
  }>(
    `select m.org_id::text as org_id, m.role, m.disabled
       from public.memberships m
      where m.user_id = $1::uuid
      order by m.disabled,
               (m.org_id = $2::uuid) desc nulls last,
               m.created_at,
               m.org_id
      limit 1`,
    [sub, preferred ?? null],
  );
  const first = rows[0];
  // Enabled memberships sort first: a disabled first row means all are.
  if (first?.disabled === true) {
    return { ok: false, kind: 'refused', reason: 'every membership of the user is disabled' };
  }
  const row = first;
  if (
    preferred !== undefined &&
    options.strict &&
    row?.org_id.toLowerCase() !== preferred.toLowerCase()
  ) {
    return { ok: false, kind: 'org', reason: 'the user is not a member of the requested org_id' };
  }
  if (row === undefined) return { ok: true, claims: {} };
  return { ok: true, claims: { org_id: row.org_id, user_role: row.role } };
}
