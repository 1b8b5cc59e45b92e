/**
 * A persona of the access matrix: a name and the claims its token carries.
 * The `role` claim picks the Postgres role the probes run as.
 *
 * @example
 * ```ts
 * const member: Persona = {
 *   name: 'member',
 *   source: 'given',
 *   claims: { role: 'authenticated', sub: userId, org_id: orgId, user_role: 'member' },
 * };
 * ```
 */
export interface Persona {
  readonly name: string;
  readonly source: 'file' | 'derived' | 'given';
  readonly claims: Readonly<Record<string, unknown>>;
  /** Why this persona exists (shown in reports). */
  readonly description?: string;
  /**
   * Revoke this token (its `jti`, with `rls_kit.revoke_token`) inside the
   * probe transaction before probing, to show what a revoked token reaches.
   */
  readonly revoke?: boolean;
}

/**
 * Roles a persona may run as: the API roles, never a login or superuser.
 *
 * @example
 * ```ts
 * PERSONA_ROLES.has('postgres'); // false
 * ```
 */
export const PERSONA_ROLES: ReadonlySet<string> = new Set([
  'anon',
  'authenticated',
  'service_role',
]);

/**
 * Claims the kit's minter sets on every token (DESIGN.md "Kit tokens").
 *
 * @example
 * ```ts
 * const minted = [...STANDARD_CLAIMS, ...claimSchema.names];
 * ```
 */
export const STANDARD_CLAIMS: readonly string[] = [
  'iss',
  'aud',
  'sub',
  'role',
  'iat',
  'exp',
  'jti',
  'sid',
];
