/**
 * supabase-js against the Edge wrapper over real HTTP. A local node:http
 * server on 127.0.0.1 plays the Supabase project's two public surfaces the
 * wrapper touches: `/auth/v1/.well-known/jwks.json` (the project's signing
 * keys) and `/functions/v1/documents` (an Edge Function through
 * createEdgeHandler on the example database). A real supabase-js client
 * calls it with `functions.invoke`. A second server is the kit as a
 * third-party issuer (OIDC discovery + JWKS); a project trusting it verifies
 * kit tokens that supabase-js sends through its `accessToken` option.
 */
import { createClient, FunctionsHttpError, type SupabaseClient } from '@supabase/supabase-js';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRlsKitError } from '../src/errors.js';
import { createRevocationList, type RevocationList } from '../src/revocation/index.js';
import {
  createEdgeHandler,
  createUserClient,
  createWellKnownHandler,
  type GotrueClaimsInput,
  gotrueClaims,
  kitAccessToken,
} from '../src/supabase/index.js';
import { createSupabaseVerifier, createVerifier, type Verifier } from '../src/tokens/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  ACME,
  ALICE,
  ERIN,
  type ExampleDB,
  exampleKysely,
  type FetchServer,
  GLOBEX,
  GRACE,
  INITECH,
  type KitIssuer,
  kitIssuer,
  SEEDED_DOCS,
  serveFetch,
} from './helpers/supabase-fixture.js';

/**
 * Node 20 has no WebSocket and supabase-js's createClient wants one at
 * construction (createUserClient handles that itself); these tests use no Realtime.
 */
const noRealtime = {
  transport: class NoRealtime {
    constructor() {
      throw new Error('these tests use no Realtime');
    }
  },
} as unknown as NonNullable<Parameters<typeof createClient>[2]>['realtime'];

let database: TestDatabase;
let list: RevocationList;
let db: ReturnType<typeof exampleKysely>;
const servers: FetchServer[] = [];

/** The stand-in project's signing key (what Supabase Auth signs user tokens with). */
let projectKey: { privateKey: CryptoKey; jwk: JWK };
let project: FetchServer;
let anonKey: string;

const documentsFunction = createEdgeHandlerFactory();

function createEdgeHandlerFactory() {
  return (verifier: Verifier) =>
    createEdgeHandler<ExampleDB>({ verifier, db: db.db }, async (_req, { db: trx, claims }) => {
      const rows = await trx.selectFrom('documents').select(['id', 'org_id']).execute();
      return Response.json({ sub: claims.sub, documents: rows });
    });
}

async function signProjectToken(payload: Record<string, unknown>): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'ES256', kid: projectKey.jwk.kid!, typ: 'JWT' })
    .sign(projectKey.privateKey);
}

/** A Supabase Auth access token for a seeded user, as the project would issue it. */
function userToken(claims: GotrueClaimsInput & { sub: string }): Promise<string> {
  return signProjectToken(gotrueClaims({ projectUrl: project.url, ...claims }));
}

/** The HTTP status behind a supabase-js functions error (undefined on success). */
function statusOf(error: unknown): number | undefined {
  if (error === null || error === undefined) return undefined;
  expect(error).toBeInstanceOf(FunctionsHttpError);
  return ((error as FunctionsHttpError).context as Response).status;
}

async function invokeDocuments(
  client: SupabaseClient,
): Promise<{ status: number; body?: { sub: string; documents: { org_id: string }[] } }> {
  const { data, error } = await client.functions.invoke('documents', { method: 'GET' });
  const status = statusOf(error);
  return status === undefined ? { status: 200, body: data } : { status };
}

/** Polls the function until the list (LISTEN) has caught up with a revocation; the status then. */
async function statusOnceRefused(client: SupabaseClient): Promise<number> {
  let status = 200;
  for (let i = 0; i < 100 && status === 200; i++) {
    status = (await invokeDocuments(client)).status;
    if (status === 200) await new Promise((r) => setTimeout(r, 20));
  }
  return status;
}

/** One statement as the database owner (revoking, as the server would). */
async function adminQuery(sql: string, params: unknown[]): Promise<void> {
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  try {
    await admin.query(sql, params);
  } finally {
    await admin.end();
  }
}

beforeAll(async () => {
  database = await createTestDatabase({ template: 'example' });
  db = exampleKysely(database.url);
  list = createRevocationList({ url: database.url });
  await list.start();

  const pair = await generateKeyPair('ES256');
  projectKey = {
    privateKey: pair.privateKey,
    jwk: { ...(await exportJWK(pair.publicKey)), kid: 'project-key-1', alg: 'ES256', use: 'sig' },
  };
  let documents: (req: Request) => Promise<Response> = async () =>
    new Response(null, { status: 503 });
  project = await serveFetch((req) => {
    const path = new URL(req.url).pathname;
    if (path === '/auth/v1/.well-known/jwks.json') return Response.json({ keys: [projectKey.jwk] });
    if (path === '/functions/v1/documents') return documents(req);
    return new Response('not found', { status: 404 });
  });
  servers.push(project);
  documents = documentsFunction(
    createSupabaseVerifier({ projectUrl: project.url, revocation: list, metricsParent: null }),
  );
  // The project's anon key: signed by the project, role anon, no sub — never a user token.
  anonKey = await signProjectToken({
    iss: 'supabase',
    ref: 'localtest',
    role: 'anon',
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 3600,
  });
});

afterAll(async () => {
  for (const s of servers) await s.close().catch(() => undefined);
  await list?.stop();
  await db?.db.destroy();
  await database?.drop();
});

describe('supabase-js → Edge wrapper with Supabase Auth tokens', () => {
  it('a user sees only the documents of the organization in their token', async () => {
    const cases = [
      { sub: ALICE, org: ACME, user_role: 'owner' },
      { sub: ERIN, org: GLOBEX, user_role: 'owner' },
      { sub: GRACE, org: INITECH, user_role: 'owner' },
    ];
    for (const c of cases) {
      const token = await userToken({ sub: c.sub, org_id: c.org, user_role: c.user_role });
      const supabase = createUserClient(project.url, anonKey, token);
      const { status, body } = await invokeDocuments(supabase);
      expect(status).toBe(200);
      expect(body!.sub).toBe(c.sub);
      expect(body!.documents).toHaveLength(SEEDED_DOCS[c.org as keyof typeof SEEDED_DOCS]);
      expect(new Set(body!.documents.map((d) => d.org_id))).toEqual(new Set([c.org]));
    }
  });

  it('createClient + an explicit Authorization header works the same; the anon key alone is 401', async () => {
    const token = await userToken({ sub: ALICE, org_id: ACME, user_role: 'owner' });
    const supabase = createClient(project.url, anonKey, {
      auth: { persistSession: false },
      realtime: noRealtime,
    });
    const withUser = await supabase.functions.invoke('documents', {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(withUser.error).toBeNull();
    expect((withUser.data as { documents: unknown[] }).documents).toHaveLength(SEEDED_DOCS[ACME]);
    const anonymous = await invokeDocuments(supabase);
    expect(anonymous.status).toBe(401);
  });

  it('a token whose session was revoked (rls_kit.revoke_session) gets 401', async () => {
    const claims = {
      sub: ALICE,
      org_id: ACME,
      user_role: 'owner',
      session_id: crypto.randomUUID(),
    };
    const supabase = createUserClient(project.url, anonKey, await userToken(claims));
    expect((await invokeDocuments(supabase)).status).toBe(200);
    await adminQuery("select rls_kit.revoke_session($1, 'password reset')", [claims.session_id]);
    expect(await statusOnceRefused(supabase)).toBe(401);
    // Another session of the same user is untouched.
    const other = createUserClient(
      project.url,
      anonKey,
      await userToken({ sub: ALICE, org_id: ACME, user_role: 'owner' }),
    );
    expect((await invokeDocuments(other)).status).toBe(200);
  });

  it('a token from another issuer (another project, or the kit) gets 401', async () => {
    const otherProject = await signProjectToken(
      gotrueClaims({ projectUrl: 'https://otherref.supabase.co', sub: ALICE, org_id: ACME }),
    );
    expect(
      (await invokeDocuments(createUserClient(project.url, anonKey, otherProject))).status,
    ).toBe(401);
    const kit = await kitIssuer();
    const kitToken = await kit.minter.mint({ sub: ALICE, claims: { org_id: ACME } });
    expect((await invokeDocuments(createUserClient(project.url, anonKey, kitToken))).status).toBe(
      401,
    );
  });

  it('createUserClient refuses what is not a token, and a caller header cannot replace it', async () => {
    expect(() => createUserClient(project.url, anonKey, 'Bearer abc')).toThrow(/compact JWT/);
    expect(() => createUserClient(project.url, '', 'a.b.c')).toThrow(/anon/);
    const token = await userToken({ sub: ERIN, org_id: GLOBEX, user_role: 'owner' });
    const supabase = createUserClient(project.url, anonKey, token, {
      global: { headers: { authorization: `Bearer ${anonKey}`, 'x-app': '1' } },
    });
    const { status, body } = await invokeDocuments(supabase);
    expect(status).toBe(200);
    expect(body!.sub).toBe(ERIN);
  });
});

describe('supabase-js accessToken option with kit-minted tokens (the kit as third-party issuer)', () => {
  let kit: KitIssuer;
  let trusting: FetchServer;

  beforeAll(async () => {
    // The kit's issuer: discovery + JWKS on its own server, its URL is the tokens' iss.
    let wellKnown: (req: Request) => Response | undefined = () => undefined;
    const issuerServer = await serveFetch(
      (req) => wellKnown(req) ?? new Response(null, { status: 404 }),
    );
    servers.push(issuerServer);
    kit = await kitIssuer(issuerServer.url);
    wellKnown = createWellKnownHandler({ issuer: kit.issuer, keyring: () => kit.ring });

    // A project that trusts the kit: its function finds the keys through discovery.
    const discovery = (await (
      await fetch(`${kit.issuer}/.well-known/openid-configuration`)
    ).json()) as { issuer: string; jwks_uri: string };
    const verifier = createVerifier({
      issuer: discovery.issuer,
      audience: 'authenticated',
      keys: { jwksUrl: discovery.jwks_uri },
      revocation: list,
      metricsParent: null,
    });
    const documents = documentsFunction(verifier);
    trusting = await serveFetch((req) =>
      new URL(req.url).pathname === '/functions/v1/documents'
        ? documents(req)
        : new Response(null, { status: 404 }),
    );
    servers.push(trusting);
  });

  it('functions.invoke carries a kit token minted on demand; RLS scopes it; revocation → 401 → fresh token', async () => {
    let minted = 0;
    const jtis: string[] = [];
    const accessToken = kitAccessToken(async () => {
      minted++;
      const issued = await kit.minter.issue({
        sub: ALICE,
        claims: { org_id: GLOBEX, user_role: 'member' },
      });
      jtis.push(issued.jti);
      return issued;
    });
    const supabase = createClient(trusting.url, anonKey, { accessToken, realtime: noRealtime });

    const first = await invokeDocuments(supabase);
    expect(first.status).toBe(200);
    expect(first.body!.documents).toHaveLength(SEEDED_DOCS[GLOBEX]);
    expect(new Set(first.body!.documents.map((d) => d.org_id))).toEqual(new Set([GLOBEX]));
    await invokeDocuments(supabase);
    expect(minted).toBe(1); // cached between requests

    await adminQuery("select rls_kit.revoke_token($1, now() + interval '1 hour', 'test')", [
      jtis[0],
    ]);
    expect(await statusOnceRefused(supabase)).toBe(401);

    accessToken.invalidate();
    const again = await invokeDocuments(supabase);
    expect(again.status).toBe(200);
    expect(minted).toBe(2);
    expect(jtis[1]).not.toBe(jtis[0]);
  });

  it('supabase.auth is off with accessToken (third-party auth), as supabase-js documents', () => {
    const supabase = createClient(trusting.url, anonKey, {
      realtime: noRealtime,
      accessToken: kitAccessToken(() => kit.minter.issue({ sub: ALICE })),
    });
    expect(() => supabase.auth.getSession()).toThrow(/accessToken option/);
  });
});

describe('kitAccessToken', () => {
  it('caches, shares one fetch among concurrent callers, refreshes before exp', async () => {
    let now = 1_800_000_000_000;
    let calls = 0;
    const source = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 10));
      return { token: `token-${calls}`, exp: Math.floor(now / 1000) + 600 };
    };
    const accessToken = kitAccessToken(source, { clock: () => now, refreshBeforeSeconds: 60 });
    const five = await Promise.all([1, 2, 3, 4, 5].map(() => accessToken()));
    expect(new Set(five)).toEqual(new Set(['token-1']));
    expect(calls).toBe(1);
    now += 539_000; // 61 s before exp: still cached
    expect(await accessToken()).toBe('token-1');
    now += 2_000; // 59 s before exp: refreshed
    expect(await accessToken()).toBe('token-2');
    expect(calls).toBe(2);
  });

  it('does not cache failures; reads exp from a bare token; refuses expired tokens', async () => {
    let fail = true;
    const kit = await kitIssuer();
    const accessToken = kitAccessToken(async () => {
      if (fail) throw new Error('token service down');
      return kit.minter.mint({ sub: ALICE });
    });
    await expect(accessToken()).rejects.toThrow('token service down');
    fail = false;
    const token = await accessToken();
    expect(token.split('.')).toHaveLength(3);
    expect(await accessToken()).toBe(token);

    const stale = kitAccessToken(async () => ({ token: 'x.y.z', exp: 1 }));
    await expect(stale()).rejects.toSatisfy((e: unknown) => isRlsKitError(e, 'ERR_TOKEN_EXPIRED'));
    const junk = kitAccessToken(async () => 'not a jwt');
    await expect(junk()).rejects.toSatisfy((e: unknown) => isRlsKitError(e, 'ERR_TOKEN_MALFORMED'));
  });
});
