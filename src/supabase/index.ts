/**
 * The Supabase capability (`supabase-rls-kit/supabase`): an Edge-Function
 * style wrapper that verifies the caller's token and runs the handler as that
 * user, the kit as a third-party issuer Supabase can trust (OIDC discovery and
 * JWKS), supabase-js helpers, and policy test helpers. Database code (`pg`)
 * is loaded only when a function that needs it runs.
 *
 * @example
 * ```ts
 * import { createEdgeHandler, createWellKnownHandler } from 'supabase-rls-kit/supabase';
 * ```
 *
 * @module
 */

export { actAs, type Persona } from './act-as.js';
export {
  createEdgeHandler,
  type EdgeContext,
  type EdgeHandlerOptions,
} from './create-edge-handler.js';
export {
  createUserClient,
  type UserClientOptions,
} from './create-user-client.js';
export {
  type GotrueClaims,
  type GotrueClaimsInput,
  gotrueClaims,
} from './gotrue-claims.js';
export {
  createWellKnownHandler,
  type OpenIdConfigurationOptions,
  openIdConfiguration,
  publicJwks,
  type WellKnownHandlerOptions,
} from './issuer-metadata.js';
export {
  type KitAccessToken,
  type KitAccessTokenOptions,
  type KitTokenSource,
  kitAccessToken,
} from './kit-access-token.js';
