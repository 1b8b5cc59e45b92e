import { type ClaimValues, defineClaimSchema } from './claim-schema.js';

/**
 * The example app's claim schema (DESIGN.md): `org_id`, the user's active
 * organization, and `user_role`, their role there. Both optional: a user
 * without an organization gets a token without them, and the example's
 * policies (which compare against these claims) then match no rows.
 * `rls-kit mint` uses this schema unless `--claim-schema` names another.
 *
 * @example
 * ```ts
 * const minter = await createMinter({ keyring, issuer, audience, claimSchema: exampleClaimSchema });
 * await minter.mint({ sub: userId, claims: { org_id: orgId, user_role: 'member' } });
 * ```
 */
export const exampleClaimSchema = defineClaimSchema({
  org_id: { type: 'uuid', description: "the user's active organization" },
  user_role: {
    enum: ['owner', 'admin', 'member', 'viewer'],
    description: "the user's role in that organization (memberships.role)",
  },
});

/**
 * The example's custom claims as a TypeScript type.
 *
 * @example
 * ```ts
 * const claims: ExampleClaims = { org_id: orgId, user_role: 'admin' };
 * ```
 */
export type ExampleClaims = ClaimValues<typeof exampleClaimSchema.definitions>;
