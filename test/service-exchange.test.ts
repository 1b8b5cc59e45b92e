/**
 * Token exchange (RFC 8693) over real HTTP: a Supabase-shaped access token,
 * signed by a local JWKS server, becomes a minimal kit token + refresh
 * cookie; untrusted, revoked, over-privileged and malformed subject tokens
 * are refused with OAuth errors.
 */
import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenService } from '../src/server/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  ACCESS_TYPE,
  body,
  captureLogs,
  EXCHANGE,
  type FakeSupabase,
  form,
  getDocuments,
  ORGS,
  startFakeSupabase,
  startTestService,
  tempHome,
  USERS,
} from './helpers/service-http.js';

let db: TestDatabase;
let supabase: FakeSupabase;
let untrusted: FakeSupabase;
let service: TokenService;
let home: Awaited<ReturnType<typeof tempHome>>;
const logs = captureLogs();

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  supabase = await startFakeSupabase();
  untrusted = await startFakeSupabase();
  home = await tempHome();
  service = await startTestService(db.url, home.dir, {
    supabase: { projectUrl: supabase.projectUrl },
    logger: logs.logger,
    rateLimit: { burst: 1000, perSecond: 100 },
  });
});

afterAll(async () => {
  await service?.close();
  await supabase?.close();
  await untrusted?.close();
  await home?.remove();
  await db?.drop();
});

const exchange = (subjectToken: string, extra: Record<string, string> = {}) =>
  fetch(
    `${service.url}/token`,
    form({
      grant_type: EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: ACCESS_TYPE,
      ...extra,
    }),
  );

describe('token exchange', () => {
  it('turns a Supabase access token into a minimal kit token, the refresh token in a cookie', async () => {
    const subject = await supabase.token(USERS.carol, { user_metadata: { name: 'Carol' } });
    const res = await exchange(subject);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const json = await body(res);
    expect(json).toMatchObject({
      token_type: 'bearer',
      expires_in: 600,
      issued_token_type: ACCESS_TYPE,
    });
    expect(json.refresh_token).toBeUndefined(); // only when asked
    const cookie = res.headers.getSetCookie()[0] ?? '';
    expect(cookie).toMatch(/^rls_kit_refresh=rk1_[\w-]{43}; /);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).toContain('Path=/token');
    expect(cookie).not.toContain('Secure'); // loopback over http only

    // Verified independently, against the JWKS the service publishes.
    const token = json.access_token as string;
    const jwks = createRemoteJWKSet(new URL(`${service.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: service.url,
      audience: 'authenticated',
    });
    expect(protectedHeader.alg).toBe('ES256');
    expect(Object.keys(payload).sort()).toEqual(
      ['aud', 'exp', 'iat', 'iss', 'jti', 'org_id', 'role', 'sid', 'sub', 'user_role'].sort(),
    );
    expect(payload).toMatchObject({
      sub: USERS.carol,
      role: 'authenticated',
      org_id: ORGS.acme,
      user_role: 'member',
    });
    expect(payload.exp! - payload.iat!).toBe(600);

    // ...and it works on the example API, under RLS: Acme's documents only.
    const docs = await getDocuments(service.url, token, '?limit=100');
    expect(docs.status).toBe(200);
    const rows = (await docs.json()) as { org_id: string }[];
    expect(rows.length).toBe(36); // the seed's Acme documents
    expect(new Set(rows.map((r) => r.org_id))).toEqual(new Set([ORGS.acme]));
  });

  it('puts the refresh token in the body only when asked', async () => {
    const res = await exchange(await supabase.token(USERS.bob), { refresh_token_in_body: 'true' });
    expect(res.status).toBe(200);
    expect((await body(res)).refresh_token).toMatch(/^rk1_[\w-]{43}$/);
    const bad = await exchange(await supabase.token(USERS.bob), { refresh_token_in_body: 'yes' });
    expect(bad.status).toBe(400);
    expect((await body(bad)).error).toBe('invalid_request');
  });

  it('resolves org_id and user_role from memberships; the hook claim or org_id only chooses among them', async () => {
    // The hook says Globex: alice is a member there, so Globex it is, with her role from the table.
    const viaHook = await exchange(
      await supabase.token(USERS.alice, { org_id: ORGS.globex, user_role: 'owner' }),
    );
    expect(decodeJwt((await body(viaHook)).access_token as string)).toMatchObject({
      org_id: ORGS.globex,
      user_role: 'member',
    });
    // A stale hook claim for an org she left: ignored, her oldest membership instead.
    const stale = await exchange(await supabase.token(USERS.alice, { org_id: ORGS.initech }));
    expect(decodeJwt((await body(stale)).access_token as string)).toMatchObject({
      org_id: ORGS.acme,
      user_role: 'owner',
    });
    // An explicit org_id must be a membership.
    const explicit = await exchange(await supabase.token(USERS.alice), { org_id: ORGS.initech });
    expect(explicit.status).toBe(400);
    expect(await body(explicit)).toMatchObject({ error: 'invalid_request' });
    expect(
      (await body(await exchange(await supabase.token(USERS.alice), { org_id: 'nope' }))).error,
    ).toBe('invalid_request');
  });

  it("picks the organization by the hook resolver's rule: oldest enabled membership; all disabled is refused", async () => {
    const heidi = 'b0000000-0000-4000-8000-000000000008'; // Initech admin, Globex viewer (Globex is older)
    // Oldest membership wins, not the strongest role: the same org a Supabase sign-in gives her.
    const oldest = await exchange(await supabase.token(heidi));
    expect(decodeJwt((await body(oldest)).access_token as string)).toMatchObject({
      org_id: ORGS.globex,
      user_role: 'viewer',
    });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      // Disabling a membership revokes the user's tokens (whole-second cut-off): mint after it.
      await admin.query(
        'update public.memberships set disabled = true where user_id = $1 and org_id = $2',
        [heidi, ORGS.globex],
      );
      await admin.query('update public.memberships set disabled = true where user_id = $1', [
        USERS.frank,
      ]);
      await new Promise((r) => setTimeout(r, 1100));
      const next = await exchange(await supabase.token(heidi));
      expect(decodeJwt((await body(next)).access_token as string)).toMatchObject({
        org_id: ORGS.initech,
        user_role: 'admin',
      });
      // A disabled membership cannot be chosen explicitly either.
      const explicit = await exchange(await supabase.token(heidi), { org_id: ORGS.globex });
      expect((await body(explicit)).error).toBe('invalid_request');
      // Every membership disabled: refused, as the hook refuses the sign-in.
      const refused = await exchange(await supabase.token(USERS.frank));
      expect(refused.status).toBe(400);
      expect(await body(refused)).toMatchObject({
        error: 'invalid_grant',
        error_description: expect.stringMatching(/disabled/),
      });
    } finally {
      await admin.query('update public.memberships set disabled = false where user_id = any($1)', [
        [heidi, USERS.frank],
      ]);
      await admin.end();
    }
  });

  it('binds the kit login to the Supabase session: revoke_session(session_id) ends it, refresh included', async () => {
    const sessionId = randomUUID();
    const res = await exchange(await supabase.token(USERS.bob, { session_id: sessionId }), {
      refresh_token_in_body: 'true',
    });
    expect(res.status).toBe(200);
    const json = await body(res);
    const token = json.access_token as string;
    expect((await getDocuments(service.url, token)).status).toBe(200);
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query("select rls_kit.revoke_session($1, 'signed out at Supabase')", [sessionId]);
      // The family made from that session is ended and recorded, with its subject.
      const { rows } = await admin.query<{ sub: string }>(
        'select sub::text from rls_kit.revoked_sessions where session_id = $1',
        [decodeJwt(token).sid],
      );
      expect(rows).toEqual([{ sub: USERS.bob }]);
    } finally {
      await admin.end();
    }
    // The kit access token dies (this node's list hears of it at once or within ms)...
    let status = 0;
    for (let i = 0; i < 50 && status !== 401; i++) {
      status = (await getDocuments(service.url, token)).status;
      if (status !== 401) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(401);
    // ...and the refresh token can no longer refresh.
    const refreshed = await fetch(
      `${service.url}/token`,
      form({ grant_type: 'refresh_token', refresh_token: json.refresh_token as string }),
    );
    expect(refreshed.status).toBe(400);
    expect((await body(refreshed)).error).toBe('invalid_grant');
  });

  it('never issues more than authenticated', async () => {
    for (const role of ['service_role', 'anon', 'postgres', 'supabase_admin']) {
      const res = await exchange(await supabase.token(USERS.carol, { role }));
      expect(res.status, role).toBe(400);
      expect((await body(res)).error_description).toMatch(/role authenticated/);
    }
  });

  it('refuses subject tokens from an untrusted issuer or key, expired, or revoked', async () => {
    // Another "project": its key is not in the configured JWKS.
    const other = await exchange(await untrusted.token(USERS.carol));
    expect(other.status).toBe(400);
    expect(await body(other)).toMatchObject({ error: 'invalid_request' });
    // The right key but another issuer.
    const wrongIss = await exchange(
      await supabase.token(USERS.carol, { iss: 'https://evil.example/auth/v1' }),
    );
    expect(wrongIss.status).toBe(400);
    expect((await body(wrongIss)).error_description).toMatch(/ERR_TOKEN_ISSUER/);
    const expired = await exchange(
      await supabase.token(USERS.carol, { exp: Math.floor(Date.now() / 1000) - 3600 }),
    );
    expect((await body(expired)).error_description).toMatch(/ERR_TOKEN_EXPIRED/);
    const garbage = await exchange('not.a.token');
    expect(garbage.status).toBe(400);

    // A Supabase session revoked in the database cannot be exchanged any more.
    const sessionId = '7a7a7a7a-0000-4000-8000-000000000001';
    const live = await supabase.token(USERS.dave, { session_id: sessionId });
    expect((await exchange(live)).status).toBe(200);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query("select rls_kit.revoke_session($1::uuid, 'test')", [sessionId]);
    await c.end();
    await expect
      .poll(async () => (await body(await exchange(live))).error_description, { timeout: 5000 })
      .toMatch(/ERR_TOKEN_REVOKED/);
  });

  it('checks the RFC 8693 parameters', async () => {
    const subject = await supabase.token(USERS.carol);
    const post = (params: Record<string, string>) => fetch(`${service.url}/token`, form(params));
    const cases: [Record<string, string>, number, string][] = [
      [{ grant_type: EXCHANGE, subject_token_type: ACCESS_TYPE }, 400, 'invalid_request'],
      [{ grant_type: EXCHANGE, subject_token: subject }, 400, 'invalid_request'],
      [
        {
          grant_type: EXCHANGE,
          subject_token: subject,
          subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
        },
        400,
        'invalid_request',
      ],
      [
        {
          grant_type: EXCHANGE,
          subject_token: subject,
          subject_token_type: ACCESS_TYPE,
          actor_token: subject,
        },
        400,
        'invalid_request',
      ],
      [
        {
          grant_type: EXCHANGE,
          subject_token: subject,
          subject_token_type: ACCESS_TYPE,
          audience: 'service_role',
        },
        400,
        'invalid_target',
      ],
      [
        {
          grant_type: EXCHANGE,
          subject_token: subject,
          subject_token_type: ACCESS_TYPE,
          requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token',
        },
        400,
        'invalid_request',
      ],
    ];
    for (const [params, status, error] of cases) {
      const res = await post(params);
      expect(res.status, JSON.stringify(Object.keys(params))).toBe(status);
      const json = await body(res);
      expect(json.error).toBe(error);
      expect(typeof json.error_description).toBe('string');
    }
    // The JWT token type is accepted too.
    const jwtType = await post({
      grant_type: EXCHANGE,
      subject_token: subject,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    });
    expect(jwtType.status).toBe(200);
  });

  it('never logs a subject token, an access token or a refresh token', async () => {
    const subject = await supabase.token(USERS.erin);
    const res = await exchange(subject, { refresh_token_in_body: 'true' });
    const json = await body(res);
    await fetch(`${service.url}/api/documents`, {
      headers: {
        authorization: `Bearer ${json.access_token as string}`,
        cookie: `rls_kit_refresh=${json.refresh_token as string}`,
      },
    });
    await exchange(`${subject}x`); // rejected: logged as a code only
    const text = logs.lines.join('\n');
    expect(logs.lines.length).toBeGreaterThan(5);
    for (const secret of [subject, json.access_token as string, json.refresh_token as string]) {
      for (const part of secret.split('.')) expect(text).not.toContain(part.slice(0, 24));
    }
    expect(text).not.toMatch(/rk1_|eyJ/);
  });
});

describe('the service logger', () => {
  it('censors token, cookie and secret fields a caller logs by mistake', async () => {
    const { createServiceLogger } = await import('../src/server/index.js');
    const lines: string[] = [];
    const logger = createServiceLogger({
      destination: { write: (line: string) => lines.push(line) },
    });
    const access = await supabase.token(USERS.carol);
    logger.info(
      {
        authorization: `Bearer ${access}`,
        req: {
          headers: { authorization: `Bearer ${access}`, cookie: 'rls_kit_refresh=rk1_secret' },
        },
        body: { refresh_token: 'rk1_secret', subject_token: access, password: 'hunter2' },
        token: access,
      },
      'careless',
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(access.split('.')[1]!.slice(0, 24));
    expect(lines[0]).not.toMatch(/rk1_secret|hunter2/);
    expect(lines[0]).toContain('[redacted]');
  });
});
