import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, SignJWT } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  callHook,
  connectAs,
  type DefaultSupabaseClaims,
  defaultSupabaseClaims,
  type HookResult,
  hookEvent,
} from './helpers/supabase-auth.js';

/**
 * rls_kit.custom_access_token_hook (issue 5, items 1 and 5), called the way
 * Supabase Auth calls it: logged in as supabase_auth_admin, with
 * search_path = auth (Supabase sets that for the role), one
 * `select rls_kit.custom_access_token_hook($1)` with Supabase Auth's event.
 * The example app's resolver (supabase/migrations/..._example_app.sql) picks
 * org_id / user_role from memberships.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const HOOK_MIGRATION = path.join(root, 'migrations', '20250101000004_rls_kit_supabase_hook.sql');

const REQUIRED = [
  'iss',
  'aud',
  'exp',
  'iat',
  'sub',
  'email',
  'phone',
  'role',
  'aal',
  'session_id',
  'is_anonymous',
] as const;

const ACME = 'a0000000-0000-4000-8000-000000000001';
const GLOBEX = 'a0000000-0000-4000-8000-000000000002';
const INITECH = 'a0000000-0000-4000-8000-000000000003';
const ALICE = { id: 'b0000000-0000-4000-8000-000000000001', email: 'alice@acme.test' };
const HEIDI = { id: 'b0000000-0000-4000-8000-000000000008', email: 'heidi@initech.test' };

let db: TestDatabase;
/** Superuser: sets up users and settings. */
let admin: pg.Client;
/** Logged in as supabase_auth_admin, as Supabase Auth is. */
let auth: pg.Client;

function claimsOf(r: HookResult): Record<string, unknown> {
  if (!('claims' in r)) throw new Error(`expected claims, got ${JSON.stringify(r)}`);
  return r.claims;
}

function errorOf(r: HookResult): { http_code: number; message: string } {
  if (!('error' in r)) throw new Error(`expected an error object, got ${JSON.stringify(r)}`);
  return r.error;
}

/** A new auth.users row (with memberships given as [org, role, joined, disabled?]). */
async function newUser(
  memberships: [string, string, string, boolean?][] = [],
  columns: { banned_until?: string; deleted_at?: string } = {},
): Promise<{ id: string; email: string }> {
  const id = randomUUID();
  const email = `u-${id.slice(0, 8)}@example.test`;
  await admin.query(
    'insert into auth.users (id, email, banned_until, deleted_at) values ($1, $2, $3, $4)',
    [id, email, columns.banned_until ?? null, columns.deleted_at ?? null],
  );
  for (const [org, role, joined, disabled] of memberships) {
    await admin.query(
      `insert into public.memberships (org_id, user_id, role, created_at, disabled)
       values ($1, $2, $3, $4, $5)`,
      [org, id, role, joined, disabled ?? false],
    );
  }
  return { id, email };
}

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  auth = await connectAs(db.url, 'supabase_auth_admin');
  // Supabase gives supabase_auth_admin search_path = auth: the hook must not depend on it.
  await auth.query('set search_path = auth');
});

afterAll(async () => {
  await auth?.end();
  await admin?.end();
  await db?.drop();
});

describe('the caller', () => {
  it('is logged in as supabase_auth_admin, an ordinary role (no superuser, no BYPASSRLS)', async () => {
    const { rows } = await auth.query<{ cu: string; su: string; super: boolean; bypass: boolean }>(
      `select current_user as cu, session_user as su, r.rolsuper as super, r.rolbypassrls as bypass
       from pg_roles r where r.rolname = current_user`,
    );
    expect(rows[0]).toEqual({
      cu: 'supabase_auth_admin',
      su: 'supabase_auth_admin',
      super: false,
      bypass: false,
    });
  });
});

describe('a signed-in user with memberships', () => {
  it('keeps every required claim and iss unchanged, drops user_metadata/app_metadata/amr, adds org_id and user_role', async () => {
    const input = defaultSupabaseClaims(ALICE);
    const out = claimsOf(await callHook(auth, hookEvent(input)));
    for (const name of REQUIRED) expect(out[name], name).toEqual(input[name]);
    expect(out).not.toHaveProperty('user_metadata');
    expect(out).not.toHaveProperty('app_metadata');
    expect(out).not.toHaveProperty('amr');
    // Alice joined Acme (owner) before Globex (member): the oldest membership.
    expect(out.org_id).toBe(ACME);
    expect(out.user_role).toBe('owner');
    expect(Object.keys(out).sort()).toEqual([...REQUIRED, 'org_id', 'user_role'].sort());
  });

  it('keeps claims Supabase adds beyond the required ones (jti, client_id), as they are', async () => {
    const input = defaultSupabaseClaims(ALICE, { jti: 'abc', client_id: 'c-1' });
    const out = claimsOf(
      await callHook(auth, hookEvent(input, 'oauth_provider/authorization_code')),
    );
    expect(out.jti).toBe('abc');
    expect(out.client_id).toBe('c-1');
  });

  it('uses the active organization chosen in app_metadata when it is an enabled membership', async () => {
    const input = defaultSupabaseClaims(ALICE, {
      app_metadata: { provider: 'email', providers: ['email'], active_org_id: GLOBEX },
    });
    const out = claimsOf(await callHook(auth, hookEvent(input)));
    expect(out.org_id).toBe(GLOBEX);
    expect(out.user_role).toBe('member');
    expect(out).not.toHaveProperty('app_metadata');
  });

  it('ignores an active organization the user is not a member of (oldest membership instead)', async () => {
    const input = defaultSupabaseClaims(ALICE, {
      app_metadata: { provider: 'email', providers: ['email'], active_org_id: INITECH },
    });
    const out = claimsOf(await callHook(auth, hookEvent(input)));
    expect(out.org_id).toBe(ACME);
    expect(out.user_role).toBe('owner');
  });

  it('falls back to the oldest membership by join time, not by organization id', async () => {
    // Heidi joined Globex (viewer) before Initech (admin).
    const heidi = claimsOf(await callHook(auth, hookEvent(defaultSupabaseClaims(HEIDI))));
    expect([heidi.org_id, heidi.user_role]).toEqual([GLOBEX, 'viewer']);
    // Joined Initech first, Acme later: Initech, although Acme's id sorts first.
    const u = await newUser([
      [ACME, 'member', '2025-03-01T00:00:00Z'],
      [INITECH, 'admin', '2025-02-01T00:00:00Z'],
    ]);
    const out = claimsOf(await callHook(auth, hookEvent(defaultSupabaseClaims(u))));
    expect([out.org_id, out.user_role]).toEqual([INITECH, 'admin']);
  });

  it('skips disabled memberships, also a chosen one', async () => {
    const u = await newUser([
      [ACME, 'owner', '2025-02-01T00:00:00Z', true],
      [GLOBEX, 'viewer', '2025-03-01T00:00:00Z'],
    ]);
    const plain = claimsOf(await callHook(auth, hookEvent(defaultSupabaseClaims(u))));
    expect([plain.org_id, plain.user_role]).toEqual([GLOBEX, 'viewer']);
    const chosen = claimsOf(
      await callHook(
        auth,
        hookEvent(defaultSupabaseClaims(u, { app_metadata: { active_org_id: ACME } })),
      ),
    );
    expect([chosen.org_id, chosen.user_role]).toEqual([GLOBEX, 'viewer']);
  });

  it("disabling a membership revokes the member's access tokens, so the next refresh gets new claims", async () => {
    const u = await newUser([
      [ACME, 'owner', '2025-02-01T00:00:00Z'],
      [GLOBEX, 'member', '2025-03-01T00:00:00Z'],
    ]);
    const before = claimsOf(await callHook(auth, hookEvent(defaultSupabaseClaims(u))));
    expect(before.org_id).toBe(ACME);
    await admin.query(
      'update public.memberships set disabled = true where user_id = $1 and org_id = $2',
      [u.id, ACME],
    );
    const { rows } = await admin.query<{ reason: string }>(
      'select reason from rls_kit.subject_revocations where sub = $1',
      [u.id],
    );
    expect(rows).toEqual([{ reason: 'membership changed' }]);
    const after = claimsOf(await callHook(auth, hookEvent(defaultSupabaseClaims(u))));
    expect([after.org_id, after.user_role]).toEqual([GLOBEX, 'member']);
  });

  it('gives a user without memberships a token without org_id or user_role (not an error)', async () => {
    const u = await newUser();
    const input = defaultSupabaseClaims(u);
    const out = claimsOf(await callHook(auth, hookEvent(input)));
    expect(out).not.toHaveProperty('org_id');
    expect(out).not.toHaveProperty('user_role');
    for (const name of REQUIRED) expect(out[name], name).toEqual(input[name]);
  });

  it('lets a ban that has ended pass', async () => {
    const u = await newUser([[ACME, 'member', '2025-02-01T00:00:00Z']], {
      banned_until: '2000-01-01T00:00:00Z',
    });
    expect(claimsOf(await callHook(auth, hookEvent(defaultSupabaseClaims(u)))).org_id).toBe(ACME);
  });
});

describe('refused users get a 403 error object', () => {
  it('a banned user (banned_until in the future)', async () => {
    const u = await newUser([[ACME, 'member', '2025-02-01T00:00:00Z']], {
      banned_until: new Date(Date.now() + 86_400_000).toISOString(),
    });
    const err = errorOf(await callHook(auth, hookEvent(defaultSupabaseClaims(u))));
    expect(err.http_code).toBe(403);
    expect(err.message).toMatch(/banned/);
  });

  it('a soft-deleted user (deleted_at set) and a user without an auth.users row', async () => {
    const u = await newUser([[ACME, 'member', '2025-02-01T00:00:00Z']], {
      deleted_at: new Date().toISOString(),
    });
    const deleted = errorOf(await callHook(auth, hookEvent(defaultSupabaseClaims(u))));
    expect(deleted.http_code).toBe(403);
    expect(deleted.message).toMatch(/deleted/);
    const ghost = { id: randomUUID(), email: 'ghost@example.test' };
    const missing = errorOf(await callHook(auth, hookEvent(defaultSupabaseClaims(ghost))));
    expect(missing.http_code).toBe(403);
    expect(missing.message).toMatch(/does not exist/);
  });

  it('a user whose memberships are all disabled', async () => {
    const u = await newUser([
      [ACME, 'owner', '2025-02-01T00:00:00Z', true],
      [GLOBEX, 'member', '2025-03-01T00:00:00Z', true],
    ]);
    const err = errorOf(await callHook(auth, hookEvent(defaultSupabaseClaims(u))));
    expect(err).toEqual({
      http_code: 403,
      message: "All of this account's memberships are disabled.",
    });
  });
});

describe('malformed events get a 400 error object, never an exception', () => {
  const base = () => hookEvent(defaultSupabaseClaims(ALICE));
  const cases: [string, () => unknown, RegExp][] = [
    ['SQL NULL', () => null, /must be a JSON object/],
    ['an array', () => [base()], /must be a JSON object/],
    ['a string', () => 'event', /must be a JSON object/],
    ['no user_id', () => ({ ...base(), user_id: undefined }), /user_id must be a uuid/],
    ['a numeric user_id', () => ({ ...base(), user_id: 42 }), /user_id must be a uuid/],
    [
      'a user_id that is no uuid',
      () => ({ ...base(), user_id: 'alice' }),
      /user_id must be a uuid/,
    ],
    ['no claims', () => ({ ...base(), claims: undefined }), /claims must be a JSON object/],
    ['claims as an array', () => ({ ...base(), claims: [] }), /claims must be a JSON object/],
    ['claims as a string', () => ({ ...base(), claims: '{}' }), /claims must be a JSON object/],
    [
      'claims.sub of another user',
      () => ({ ...base(), claims: { ...base().claims, sub: HEIDI.id } }),
      /sub must equal/,
    ],
    [
      'claims without sub',
      () => ({ ...base(), claims: { ...base().claims, sub: undefined } }),
      /sub must equal/,
    ],
  ];
  it.each(cases)('%s', async (_name, event, message) => {
    const err = errorOf(await callHook(auth, event()));
    expect(err.http_code).toBe(400);
    expect(err.message).toMatch(message);
  });

  it('JSON null', async () => {
    const { rows } = await auth.query<{ r: HookResult }>(
      `select rls_kit.custom_access_token_hook('null'::jsonb) as r`,
    );
    expect(errorOf(rows[0]?.r as HookResult).http_code).toBe(400);
  });
});

describe('the app resolver misbehaving gives a 500 error object, never an exception', () => {
  const resolverSql = async () =>
    (
      await admin.query<{ def: string }>(
        `select pg_get_functiondef('rls_kit.resolve_claims(uuid, jsonb)'::regprocedure) as def`,
      )
    ).rows[0]?.def as string;

  async function withResolver(body: string, test: () => Promise<void>) {
    const original = await resolverSql();
    await admin.query(
      `create or replace function rls_kit.resolve_claims(user_id uuid, claims jsonb)
       returns jsonb language plpgsql stable set search_path = '' as $$ begin ${body} end $$`,
    );
    try {
      await test();
    } finally {
      await admin.query(original);
    }
  }

  it('raising an error', async () => {
    await withResolver('return (1 / 0)::text::jsonb;', async () => {
      const err = errorOf(await callHook(auth, hookEvent(defaultSupabaseClaims(ALICE))));
      expect(err.http_code).toBe(500);
      expect(err.message).toMatch(/SQLSTATE 22012/);
    });
  });

  it('returning something that is not an object', async () => {
    await withResolver(`return '["x"]'::jsonb;`, async () => {
      const err = errorOf(await callHook(auth, hookEvent(defaultSupabaseClaims(ALICE))));
      expect(err.http_code).toBe(500);
      expect(err.message).toMatch(/must return a JSON object/);
    });
  });

  it('trying to replace a claim Supabase made (role)', async () => {
    await withResolver(`return '{"role": "service_role"}'::jsonb;`, async () => {
      const err = errorOf(await callHook(auth, hookEvent(defaultSupabaseClaims(ALICE))));
      expect(err).toEqual({
        http_code: 500,
        message: 'custom_access_token_hook: rls_kit.resolve_claims may not set the claim role',
      });
    });
  });

  it('refusing with SQLSTATE RK403 and its own message', async () => {
    await withResolver(
      `raise exception using errcode = 'RK403', message = 'Trial ended.'; return null;`,
      async () => {
        const err = errorOf(await callHook(auth, hookEvent(defaultSupabaseClaims(ALICE))));
        expect(err).toEqual({ http_code: 403, message: 'Trial ended.' });
      },
    );
  });

  it('returning NULL adds nothing', async () => {
    await withResolver('return null;', async () => {
      const out = claimsOf(await callHook(auth, hookEvent(defaultSupabaseClaims(ALICE))));
      expect(out).not.toHaveProperty('org_id');
    });
  });
});

describe('settings (rls_kit.hook_settings)', () => {
  it('keeps allowlisted app_metadata keys and can empty email and phone', async () => {
    await admin.query(
      `update rls_kit.hook_settings
       set app_metadata_keys = '{provider,plan}', keep_email = false, keep_phone = false`,
    );
    try {
      const input = defaultSupabaseClaims(ALICE, {
        phone: '15551234567',
        app_metadata: { provider: 'email', providers: ['email'], plan: 'pro', secret: 's' },
      });
      const out = claimsOf(await callHook(auth, hookEvent(input)));
      expect(out.app_metadata).toEqual({ provider: 'email', plan: 'pro' });
      expect(out.email).toBe('');
      expect(out.phone).toBe('');
      expect(out.org_id).toBe(ACME);
    } finally {
      await admin.query(
        `update rls_kit.hook_settings
         set app_metadata_keys = '{}', keep_email = true, keep_phone = true`,
      );
    }
  });
});

describe('re-applying the kit migration', () => {
  it('keeps the app resolver and the settings', async () => {
    await admin.query(`update rls_kit.hook_settings set app_metadata_keys = '{provider}'`);
    try {
      await admin.query('begin');
      await admin.query(readFileSync(HOOK_MIGRATION, 'utf8'));
      await admin.query('commit');
      const { rows } = await admin.query<{ keys: string[] }>(
        'select app_metadata_keys as keys from rls_kit.hook_settings',
      );
      expect(rows).toEqual([{ keys: ['provider'] }]);
      const out = claimsOf(await callHook(auth, hookEvent(defaultSupabaseClaims(ALICE))));
      expect([out.org_id, out.user_role]).toEqual([ACME, 'owner']);
    } finally {
      await admin.query(`update rls_kit.hook_settings set app_metadata_keys = '{}'`);
    }
  });
});

describe('grants, as Supabase documents for Postgres hooks', () => {
  it('anon and authenticated cannot execute the hook (permission denied)', async () => {
    for (const role of ['anon', 'authenticated']) {
      await admin.query('begin');
      try {
        await admin.query(`set local role ${role}`);
        await expect(
          admin.query('select rls_kit.custom_access_token_hook($1::jsonb)', [
            JSON.stringify(hookEvent(defaultSupabaseClaims(ALICE))),
          ]),
          role,
        ).rejects.toMatchObject({ code: '42501' });
      } finally {
        await admin.query('rollback');
      }
    }
  });

  it('nobody but supabase_auth_admin (and the owner) may execute it or the resolver', async () => {
    const { rows } = await admin.query<{ fn: string; grantee: string }>(
      `select p.oid::regprocedure::text as fn, coalesce(r.rolname, 'PUBLIC') as grantee
       from pg_proc p cross join lateral aclexplode(p.proacl) a
       left join pg_roles r on r.oid = a.grantee
       where p.oid in ('rls_kit.custom_access_token_hook(jsonb)'::regprocedure,
                       'rls_kit.resolve_claims(uuid, jsonb)'::regprocedure)
         and a.grantee <> p.proowner
       order by 1, 2`,
    );
    expect(rows).toEqual([
      { fn: 'rls_kit.custom_access_token_hook(jsonb)', grantee: 'supabase_auth_admin' },
      { fn: 'rls_kit.resolve_claims(uuid,jsonb)', grantee: 'supabase_auth_admin' },
    ]);
  });

  it('the hook is STABLE, not SECURITY DEFINER, with search_path pinned to ""', async () => {
    const { rows } = await admin.query(
      `select provolatile as v, prosecdef as secdef, proconfig as config
       from pg_proc where oid = 'rls_kit.custom_access_token_hook(jsonb)'::regprocedure`,
    );
    expect(rows[0]).toEqual({ v: 's', secdef: false, config: ['search_path=""'] });
  });

  it('supabase_auth_admin reads memberships through its own policy, and no more than SELECT', async () => {
    const { rows } = await auth.query<{ n: string }>(
      'select count(*) as n from public.memberships',
    );
    expect(Number(rows[0]?.n)).toBeGreaterThan(0);
    await expect(
      auth.query(`delete from public.memberships where org_id = $1`, [ACME]),
    ).rejects.toMatchObject({ code: '42501' });
  });
});

describe('token size (issue 5 goal: <= 75% of the default token)', () => {
  it('a typical email user: the hooked token (iss, email, org_id, user_role) vs Supabase default, same algorithm and header', async () => {
    const input: DefaultSupabaseClaims = defaultSupabaseClaims(ALICE);
    const hooked = claimsOf(await callHook(auth, hookEvent(input)));
    expect(hooked).toMatchObject({ iss: input.iss, email: ALICE.email, org_id: ACME });
    expect(hooked.user_role).toBe('owner');

    const es = await generateKeyPair('ES256');
    const keys = [
      // Supabase's legacy JWT secret (kid as in its tokens) and an asymmetric signing key (uuid kid).
      { alg: 'HS256', key: new Uint8Array(32).fill(7), kid: 'dZci2Eny9P5XXYfE' },
      { alg: 'ES256', key: es.privateKey, kid: randomUUID() },
    ] as const;
    const lines: string[] = [];
    for (const { alg, key, kid } of keys) {
      const sign = (claims: Record<string, unknown>) =>
        new SignJWT(claims).setProtectedHeader({ alg, kid, typ: 'JWT' }).sign(key);
      const before = (await sign(input)).length;
      const after = (await sign(hooked)).length;
      const ratio = after / before;
      lines.push(`${alg}: default ${before} B, hooked ${after} B, ratio ${ratio.toFixed(3)}`);
      expect(ratio, alg).toBeLessThanOrEqual(0.75);
    }
    process.stderr.write(`token size: ${lines.join('; ')}\n`);
  });
});
