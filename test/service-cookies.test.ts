/**
 * The refresh cookie over real HTTP with a cookie jar that behaves like a
 * browser's: rotation on every refresh, the cookie scoped to /token, reuse
 * of an old cookie ending the session, concurrent refreshes, tampering,
 * and the Secure attribute off loopback.
 */
import { decodeJwt } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenService } from '../src/server/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  ACCESS_TYPE,
  body,
  CookieJar,
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
let home: Awaited<ReturnType<typeof tempHome>>;
/** Replays count as theft at once (reuseGrace 0). */
let strict: TokenService;
/** The default 10 s grace: a replay within it is a concurrent refresh. */
let lenient: TokenService;

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  supabase = await startFakeSupabase();
  home = await tempHome();
  const common = {
    supabase: { projectUrl: supabase.projectUrl },
    rateLimit: { burst: 1000, perSecond: 100 },
  };
  strict = await startTestService(db.url, home.dir, { ...common, refresh: { reuseGrace: 0 } });
  lenient = await startTestService(db.url, home.dir, common);
});

afterAll(async () => {
  await strict?.close();
  await lenient?.close();
  await supabase?.close();
  await home?.remove();
  await db?.drop();
});

/** Signs in through token exchange with `jar`; returns the access token. */
async function signIn(service: TokenService, jar: CookieJar, sub: string): Promise<string> {
  const res = await jar.fetch(
    `${service.url}/token`,
    form({
      grant_type: EXCHANGE,
      subject_token: await supabase.token(sub),
      subject_token_type: ACCESS_TYPE,
    }),
  );
  expect(res.status).toBe(200);
  return (await body(res)).access_token as string;
}

const refresh = (service: TokenService, jar: CookieJar) =>
  jar.fetch(`${service.url}/token`, form({ grant_type: 'refresh_token' }));

describe('the refresh cookie', () => {
  it('rotates on every refresh and is sent only to the token endpoint', async () => {
    const jar = new CookieJar();
    const first = await signIn(strict, jar, USERS.carol);
    const c1 = jar.get('rls_kit_refresh');
    expect(c1?.path).toBe('/token');
    expect(jar.header(`${strict.url}/api/documents`)).toBeUndefined();
    expect(jar.header(`${strict.url}/token`)).toBe(`rls_kit_refresh=${c1?.value}`);

    const res = await refresh(strict, jar);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const json = await body(res);
    expect(json.refresh_token).toBeUndefined();
    const c2 = jar.get('rls_kit_refresh');
    expect(c2?.value).toMatch(/^rk1_/);
    expect(c2?.value).not.toBe(c1?.value);
    const second = json.access_token as string;
    // Same login (sid), fresh claims from memberships.
    expect(decodeJwt(second).sid).toBe(decodeJwt(first).sid);
    expect(decodeJwt(second)).toMatchObject({ org_id: expect.any(String), user_role: 'member' });
    expect((await getDocuments(strict.url, second)).status).toBe(200);

    // Another rotation, then the body variant of the same grant.
    expect((await refresh(strict, jar)).status).toBe(200);
    const current = jar.get('rls_kit_refresh')!.value;
    const viaBody = await fetch(
      `${strict.url}/token`,
      form({ grant_type: 'refresh_token', refresh_token: current, refresh_token_in_body: 'true' }),
    );
    expect(viaBody.status).toBe(200);
    expect((await body(viaBody)).refresh_token).toMatch(/^rk1_/);
  });

  it('ends the whole session when an old cookie is replayed (reuse detection)', async () => {
    const jar = new CookieJar();
    await signIn(strict, jar, USERS.bob);
    const stolen = new CookieJar();
    stolen.cookies.set('rls_kit_refresh|/token', { ...jar.get('rls_kit_refresh')! });
    expect((await refresh(strict, jar)).status).toBe(200);
    const latest = (await body(await refresh(strict, jar))).access_token as string;
    expect((await getDocuments(strict.url, latest)).status).toBe(200);

    // The thief replays the first cookie: reuse. The response deletes the cookie.
    const replay = await refresh(strict, stolen);
    expect(replay.status).toBe(400);
    expect(await body(replay)).toMatchObject({ error: 'invalid_grant' });
    expect(replay.headers.getSetCookie()[0]).toMatch(/^rls_kit_refresh=; .*Max-Age=0/);
    expect(stolen.get('rls_kit_refresh')).toBeUndefined();

    // The legitimate client's newest cookie and access token are dead too, at once.
    const after = await refresh(strict, jar);
    expect(after.status).toBe(400);
    expect((await body(after)).error).toBe('invalid_grant');
    const denied = await getDocuments(strict.url, latest);
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toContain('invalid_token');

    const metrics = await (await fetch(`${strict.url}/metrics`)).text();
    expect(metrics).toMatch(/^rls_kit_refresh_reuse_detected_total 1$/m);
  });

  it('answers a concurrent refresh (two tabs) without ending the session or clearing the winner cookie', async () => {
    const jar = new CookieJar();
    await signIn(lenient, jar, USERS.erin);
    const tab2 = new CookieJar();
    tab2.cookies.set('rls_kit_refresh|/token', { ...jar.get('rls_kit_refresh')! });
    const [a, b] = await Promise.all([refresh(lenient, jar), refresh(lenient, tab2)]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([200, 400]);
    const loser = a.status === 400 ? a : b;
    expect((await body(loser)).error).toBe('invalid_grant');
    expect(loser.headers.getSetCookie()).toEqual([]); // the winner's cookie stays
    const winnerJar = a.status === 200 ? jar : tab2;
    expect((await refresh(lenient, winnerJar)).status).toBe(200);
  });

  it('refuses a tampered cookie, and keeps serving everyone else', async () => {
    const jar = new CookieJar();
    await signIn(strict, jar, USERS.dave);
    const good = jar.get('rls_kit_refresh')!;
    const flipped = good.value.slice(0, -1) + (good.value.endsWith('A') ? 'B' : 'A');
    for (const value of [flipped, `${good.value}x`, 'rk1_', 'eyJhbGciOiJub25lIn0.e30.', '%00']) {
      const res = await fetch(`${strict.url}/token`, {
        ...form({ grant_type: 'refresh_token' }),
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          cookie: `rls_kit_refresh=${value}`,
        },
      });
      expect(res.status, value).toBe(400);
      const json = await body(res);
      expect(json.error).toBe('invalid_grant');
      expect(json.error_description).toMatch(/sign in again/);
      expect(res.headers.getSetCookie()[0]).toMatch(/Max-Age=0/);
    }
    // The real cookie still works: a tampered copy changed nothing.
    expect((await refresh(strict, jar)).status).toBe(200);
  });

  it('refuses two different refresh tokens in one request, and a cookie sent twice', async () => {
    const jar = new CookieJar();
    await signIn(strict, jar, USERS.carol);
    const cookie = jar.get('rls_kit_refresh')!.value;
    const both = await fetch(`${strict.url}/token`, {
      ...form({ grant_type: 'refresh_token', refresh_token: 'rk1_other' }),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: `rls_kit_refresh=${cookie}`,
      },
    });
    expect(both.status).toBe(400);
    expect((await body(both)).error).toBe('invalid_request');
    const twice = await fetch(`${strict.url}/token`, {
      ...form({ grant_type: 'refresh_token' }),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: `rls_kit_refresh=${cookie}; rls_kit_refresh=rk1_x`,
      },
    });
    expect(twice.status).toBe(400);
    expect((await body(twice)).error).toBe('invalid_request');
    const none = await fetch(`${strict.url}/token`, form({ grant_type: 'refresh_token' }));
    expect(none.status).toBe(400);
    expect((await body(none)).error_description).toMatch(/no refresh token/);
  });

  it('refresh can switch the active organization among memberships only', async () => {
    const jar = new CookieJar();
    const first = await signIn(strict, jar, USERS.alice);
    expect(decodeJwt(first)).toMatchObject({ org_id: ORGS.acme, user_role: 'owner' });
    const refused = await jar.fetch(
      `${strict.url}/token`,
      form({ grant_type: 'refresh_token', org_id: ORGS.initech }),
    );
    expect(refused.status).toBe(400);
    expect((await body(refused)).error).toBe('invalid_request');
    // Nothing was used up: the same cookie still refreshes, into Globex this time.
    const globex = await jar.fetch(
      `${strict.url}/token`,
      form({ grant_type: 'refresh_token', org_id: ORGS.globex }),
    );
    expect(globex.status).toBe(200);
    const token = (await body(globex)).access_token as string;
    expect(decodeJwt(token)).toMatchObject({ org_id: ORGS.globex, user_role: 'member' });
    const docs = (await (await getDocuments(strict.url, token, '?limit=100')).json()) as {
      org_id: string;
    }[];
    expect(docs.length).toBeGreaterThan(0);
    expect(docs.every((d) => d.org_id === ORGS.globex)).toBe(true);
  });

  it('a changed membership kills the access tokens at once; the next refresh carries the new role', async () => {
    const jar = new CookieJar();
    const before = await signIn(strict, jar, USERS.frank); // Globex viewer
    expect(decodeJwt(before)).toMatchObject({ user_role: 'viewer' });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query(
        "update public.memberships set role = 'member' where user_id = $1 and org_id = $2",
        [USERS.frank, ORGS.globex],
      );
    } finally {
      await admin.end();
    }
    await expect
      .poll(async () => (await getDocuments(strict.url, before)).status, { timeout: 5000 })
      .toBe(401);
    // The cut-off is whole seconds (tokens have second-resolution iat): a token minted in the
    // same second as the change would be dead too, so the client refreshes a second later.
    await new Promise((r) => setTimeout(r, 1100));
    const res = await refresh(strict, jar);
    expect(res.status).toBe(200);
    const after = (await body(res)).access_token as string;
    expect(decodeJwt(after)).toMatchObject({ org_id: ORGS.globex, user_role: 'member' });
    const created = await fetch(`${strict.url}/api/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${after}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'frank can write now' }),
    });
    expect(created.status).toBe(201);
  });

  it('is Secure and __Secure- prefixed whenever the issuer is https (only a loopback http demo drops both)', async () => {
    const tls = await startTestService(db.url, home.dir, {
      supabase: { projectUrl: supabase.projectUrl },
      issuer: 'https://auth.example.test',
    });
    try {
      const jar = new CookieJar();
      await signIn(tls, jar, USERS.carol);
      expect(jar.get('rls_kit_refresh')).toBeUndefined();
      const c = jar.get('__Secure-rls_kit_refresh')!;
      expect(c.attributes).toEqual(
        expect.arrayContaining(['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/token']),
      );
      const refreshWith = (cookie: string) =>
        fetch(`${tls.url}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
          body: 'grant_type=refresh_token',
        });
      // Without the prefix the cookie is not the refresh token (a plain-http
      // page or a network attacker could have set that one): nothing rotates,
      // and the stray cookie (what earlier versions set) is deleted.
      const unprefixed = await refreshWith(`rls_kit_refresh=${c.value}`);
      expect(unprefixed.status).toBe(400);
      expect(await body(unprefixed)).toMatchObject({
        error: 'invalid_grant',
        error_description: expect.stringContaining('now __Secure-rls_kit_refresh'),
      });
      expect(unprefixed.headers.getSetCookie()).toEqual([
        'rls_kit_refresh=; Path=/token; Max-Age=0; HttpOnly; Secure; SameSite=Strict',
      ]);
      const prefixed = await refreshWith(`rls_kit_refresh=x; __Secure-rls_kit_refresh=${c.value}`);
      expect(prefixed.status).toBe(200);
      expect(prefixed.headers.getSetCookie()[0]).toMatch(/^__Secure-rls_kit_refresh=rk1_/);
      const twice = await refreshWith(
        `__Secure-rls_kit_refresh=${c.value}; __Secure-rls_kit_refresh=rk1_x`,
      );
      expect(twice.status).toBe(400);
      // Logout clears the cookie under the same name, Secure (a browser would
      // keep a __Secure- cookie that a deletion without Secure names), and a
      // stray unprefixed one with it.
      const next = prefixed.headers.getSetCookie()[0]!.split(';')[0]!;
      const out = await fetch(`${tls.url}/logout`, {
        method: 'POST',
        headers: { cookie: `${next}; rls_kit_refresh=old` },
      });
      expect(out.status).toBe(204);
      expect(out.headers.getSetCookie()).toEqual([
        '__Secure-rls_kit_refresh=; Path=/token; Max-Age=0; HttpOnly; Secure; SameSite=Strict',
        'rls_kit_refresh=; Path=/token; Max-Age=0; HttpOnly; Secure; SameSite=Strict',
      ]);
    } finally {
      await tls.close();
    }
  });
});
