/**
 * The tokens capability (`supabase-rls-kit/tokens`): mint the kit's small
 * tokens, verify any token hard (kit, Supabase Auth), inspect tokens for
 * debugging. Imports no database code, so edge runtimes can use it.
 *
 * @example
 * ```ts
 * import { createVerifier, createMinter, exampleClaimSchema } from 'supabase-rls-kit/tokens';
 * ```
 */

// Minting and claims
export {
  type ClaimDefinition,
  type ClaimDefinitions,
  type ClaimSchema,
  type ClaimValue,
  type ClaimValueOf,
  type ClaimValues,
  defineClaimSchema,
  isSensitiveClaimName,
  RESERVED_CLAIM_NAMES,
} from './claim-schema.js';
export { type ExampleClaims, exampleClaimSchema } from './example-claims.js';
export { type InspectResult, inspectToken, MAX_INSPECT_LENGTH } from './inspect.js';
// Verification
export {
  createOutcomeCounter,
  type OutcomeCounter,
  type OutcomeCounts,
  type VerificationOutcome,
  verificationOutcomes,
} from './metrics.js';
export {
  createMinter,
  LONG_TTL_THRESHOLD,
  type MintedToken,
  type Minter,
  type MinterOptions,
  type MintInput,
} from './mint.js';
export type { RemoteJwksOptions } from './remote-jwks.js';
export type { RevocationCheck } from './revocation-check.js';
export { type ClaimSize, claimSizes } from './size.js';
export { createSupabaseVerifier, type SupabaseVerifierOptions } from './supabase.js';
export type { VerifiedClaims } from './verified-claims.js';
export {
  createVerifier,
  type Verifier,
  type VerifierKeys,
  type VerifierOptions,
} from './verify.js';
