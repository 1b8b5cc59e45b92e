import { randomUUID } from 'node:crypto';
import pg from 'pg';

/** Issuer of a hosted Supabase project's Auth server (20-character project ref). */
export const SUPABASE_ISS = 'https://abcdefghijklmnopqrst.supabase.co/auth/v1';

/** What Supabase Auth puts in a user's default access token (no hook). */
export interface DefaultSupabaseClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  iat: number;
  email: string;
  phone: string;
  app_metadata: Record<string, unknown>;
  user_metadata: Record<string, unknown>;
  role: string;
  aal: string;
  amr: { method: string; timestamp: number }[];
  session_id: string;
  is_anonymous: boolean;
  [claim: string]: unknown;
}

/**
 * The claims of Supabase Auth's default access token for a user who signed up
 * and signed in with email and password — member order and contents as Supabase
 * Auth writes them (user_metadata holds the identity data GoTrue copies in at
 * sign-up: email, email_verified, phone_verified, sub).
 */
export function defaultSupabaseClaims(
  user: { id: string; email: string },
  overrides: Partial<DefaultSupabaseClaims> = {},
): DefaultSupabaseClaims {
  const iat = Math.floor(Date.now() / 1000);
  return {
    iss: SUPABASE_ISS,
    sub: user.id,
    aud: 'authenticated',
    exp: iat + 3600,
    iat,
    email: user.email,
    phone: '',
    app_metadata: { provider: 'email', providers: ['email'] },
    user_metadata: {
      email: user.email,
      email_verified: true,
      phone_verified: false,
      sub: user.id,
    },
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: iat }],
    session_id: randomUUID(),
    is_anonymous: false,
    ...overrides,
  };
}

/** Supabase Auth's Custom Access Token Hook event for those claims. */
export function hookEvent(
  claims: DefaultSupabaseClaims,
  authentication_method = 'password',
): { user_id: string; claims: DefaultSupabaseClaims; authentication_method: string } {
  return { user_id: claims.sub, claims, authentication_method };
}

/**
 * A connection to `url` (a superuser's) logged in as `user`, as Supabase's
 * Auth server logs in as supabase_auth_admin. A server that trusts local
 * logins (this machine's PostgreSQL) needs nothing more; one that asks for a
 * password (the embedded default uses scram-sha-256) gets a one-time random
 * password for the role, removed again as soon as the session is open.
 */
export async function connectAs(url: string, user: string): Promise<pg.Client> {
  const u = new URL(url);
  u.username = user;
  u.password = '';
  const plain = new pg.Client({ connectionString: u.toString() });
  try {
    await plain.connect();
    return plain;
  } catch (err) {
    await plain.end().catch(() => {});
    const code = (err as { code?: string }).code;
    const noPassword = /password/i.test(String((err as Error).message));
    if (code !== '28P01' && code !== '28000' && !noPassword) throw err;
  }
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const password = randomUUID();
    await admin.query(`alter role ${pg.escapeIdentifier(user)} password '${password}'`);
    u.password = password;
    const client = new pg.Client({ connectionString: u.toString() });
    try {
      await client.connect();
    } finally {
      await admin.query(`alter role ${pg.escapeIdentifier(user)} password null`);
    }
    return client;
  } finally {
    await admin.end();
  }
}

export type HookResult =
  | { claims: Record<string, unknown> }
  | { error: { http_code: number; message: string } };

/** Calls the hook the way Supabase Auth does: `select <schema>.<fn>($1)` with the event as JSON. */
export async function callHook(client: pg.Client, event: unknown): Promise<HookResult> {
  const { rows } = await client.query<{ r: HookResult }>(
    'select rls_kit.custom_access_token_hook($1::jsonb) as r',
    [event === null ? null : JSON.stringify(event)],
  );
  return rows[0]?.r as HookResult;
}
