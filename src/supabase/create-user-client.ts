import {
  createClient,
  type SupabaseClient,
  type SupabaseClientOptions,
} from '@supabase/supabase-js';
import { RlsKitError } from '../errors.js';

/**
 * Options of {@link createUserClient}: supabase-js's client options without
 * `accessToken` (the token is fixed) and with the session machinery off.
 *
 * @example
 * ```ts
 * const options: UserClientOptions = { db: { schema: 'public' }, global: { headers: { 'x-request-id': id } } };
 * ```
 */
export type UserClientOptions = Omit<SupabaseClientOptions<string>, 'accessToken'>;

/** RFC 7515 compact serialization: three base64url parts. Shape only: the caller verified it. */
const COMPACT_JWS = /^[\w-]+\.[\w-]+\.[\w-]+$/;

/**
 * A supabase-js client that acts as the user of an access token your
 * server has already verified (for example `ctx.token` in
 * `createEdgeHandler`): every Data API, Storage, Functions and Realtime
 * request carries `Authorization: Bearer <token>`, so PostgREST applies row
 * level security as that user. The client keeps no session: nothing is
 * persisted, nothing refreshes, no URL is inspected — one client per
 * request, dropped with it.
 *
 * The token is not verified here; verify it first (PostgREST verifies it
 * again, but your own code should not act on an unverified token).
 *
 * @example
 * ```ts
 * const handler = createEdgeHandler({ verifier }, async (_req, { token }) => {
 *   const supabase = createUserClient(Deno.env.get('SUPABASE_URL')!, Deno.env.get('SUPABASE_ANON_KEY')!, token);
 *   const { data, error } = await supabase.from('documents').select('id, title');
 *   return error ? new Response(error.message, { status: 500 }) : Response.json(data);
 * });
 * ```
 */
export function createUserClient(
  supabaseUrl: string,
  anonKey: string,
  token: string,
  options?: UserClientOptions,
): SupabaseClient;
export function createUserClient<Database>(
  supabaseUrl: string,
  anonKey: string,
  token: string,
  options?: UserClientOptions,
): SupabaseClient<Database>;
export function createUserClient<Database>(
  supabaseUrl: string,
  anonKey: string,
  token: string,
  options: UserClientOptions = {},
): SupabaseClient<Database> {
  if (typeof token !== 'string' || !COMPACT_JWS.test(token)) {
    throw new RlsKitError(
      'ERR_USAGE',
      'createUserClient needs the verified access token (a compact JWT), not claims or a header value',
    );
  }
  if (typeof anonKey !== 'string' || anonKey === '') {
    throw new RlsKitError(
      'ERR_CONFIG',
      "createUserClient needs the project's anon (publishable) key as its second argument",
    );
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.global?.headers ?? {})) {
    // The token decides who the client is: a caller's header must not replace it.
    if (name.toLowerCase() !== 'authorization') headers[name] = value;
  }
  headers.Authorization = `Bearer ${token}`;
  const client = createClient<Database>(supabaseUrl, anonKey, {
    ...(options as SupabaseClientOptions<never>),
    auth: {
      ...options.auth,
      persistSession: false,
      autoRefreshToken: false,
      detectSessionInUrl: false,
    },
    global: { ...options.global, headers },
    realtime: { ...options.realtime, transport: options.realtime?.transport ?? defaultTransport() },
  }) as unknown as SupabaseClient<Database>;
  // Realtime authorizes channels with its own token: the user's, not the anon key.
  client.realtime.setAuth(token).catch(() => undefined);
  return client;
}

type Transport = NonNullable<NonNullable<SupabaseClientOptions<string>['realtime']>['transport']>;

/**
 * The runtime's WebSocket, or — where there is none (Node < 22) — a
 * stand-in that fails only when Realtime is actually used: supabase-js
 * otherwise refuses to construct a client at all, though a server-side
 * client rarely needs Realtime.
 */
function defaultTransport(): Transport | undefined {
  if (typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'function') return undefined;
  return class NoWebSocket {
    constructor() {
      throw new RlsKitError(
        'ERR_CONFIG',
        'Realtime needs a WebSocket, which this runtime lacks (Node < 22): pass realtime: { transport } (e.g. the ws package) to createUserClient',
      );
    }
  } as unknown as Transport;
}
