/**
 * The token service's endpoints over real HTTP: discovery and JWKS,
 * readiness, metrics, the example API under RLS, /revoke and /logout taking
 * effect on the next request (on this node and, through the revocation list,
 * on another), graceful shutdown; and `rls-kit start` itself in demo mode on
 * a private embedded Postgres, driven by its own printed curl tour.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRlsKitError } from '../src/errors.js';
import { createKeyring, generateKey, writeKeyringFile } from '../src/keys/index.js';
import { startTokenService, type TokenService } from '../src/server/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  ACCESS_TYPE,
  body,
  CookieJar,
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

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

let db: TestDatabase;
let supabase: FakeSupabase;
let home: Awaited<ReturnType<typeof tempHome>>;
let nodeA: TokenService;
let nodeB: TokenService;
const logs = captureLogs();

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  supabase = await startFakeSupabase();
  home = await tempHome();
  const common = {
    supabase: { projectUrl: supabase.projectUrl },
    rateLimit: { burst: 1000, perSecond: 100 },
    issuer: 'http://127.0.0.1:8787', // two nodes, one issuer
    poolSize: 4,
  };
  // A keyring file readable by others: the service must tighten it.
  await writeKeyringFile(join(home.dir, 'keys.json'), createKeyring([await generateKey()]));
  await chmod(join(home.dir, 'keys.json'), 0o644);
  nodeA = await startTestService(db.url, home.dir, {
    ...common,
    logger: logs.logger,
    migrate: true,
  });
  nodeB = await startTestService(db.url, home.dir, common);
});

afterAll(async () => {
  await nodeA?.close();
  await nodeB?.close();
  await supabase?.close();
  await home?.remove();
  await db?.drop();
});

async function signIn(sub: string, jar = new CookieJar(), service = nodeA): Promise<string> {
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

const api = (token: string, method: string, path = '', json?: unknown, service = nodeA) =>
  fetch(`${service.url}/api/documents${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(json === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(json === undefined ? {} : { body: JSON.stringify(json) }),
  });

describe('public endpoints', () => {
  it('serves health, readiness, the JWKS and discovery', async () => {
    const health = await fetch(`${nodeA.url}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${nodeA.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, database: true, revocations: true });

    const jwksRes = await fetch(`${nodeA.url}/.well-known/jwks.json`);
    expect(jwksRes.status).toBe(200);
    expect(jwksRes.headers.get('cache-control')).toBe('public, max-age=600');
    const jwks = (await jwksRes.json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys.length).toBeGreaterThanOrEqual(1);
    for (const k of jwks.keys) {
      expect(Object.keys(k).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    }
    const conf = (await (
      await fetch(`${nodeA.url}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(conf.issuer).toBe('http://127.0.0.1:8787');
    expect(conf.jwks_uri).toBe('http://127.0.0.1:8787/.well-known/jwks.json');
    expect(conf.grant_types_supported).toEqual(
      expect.arrayContaining(['refresh_token', 'urn:ietf:params:oauth:grant-type:token-exchange']),
    );
  });

  it('keeps the keyring at mode 0600 and never logs key material', async () => {
    const mode = (await stat(join(home.dir, 'keys.json'))).mode & 0o777;
    expect(mode).toBe(0o600);
    const ring = JSON.parse(await readFile(join(home.dir, 'keys.json'), 'utf8')) as {
      keys: { d: string }[];
    };
    const text = logs.lines.join('\n');
    expect(text).toMatch(/mode set to 0600/);
    for (const k of ring.keys) expect(text).not.toContain(k.d);
  });

  it('exposes Prometheus metrics', async () => {
    await signIn(USERS.carol);
    const text = await (await fetch(`${nodeA.url}/metrics`)).text();
    expect(text).toMatch(/^rls_kit_tokens_issued_total\{grant="token_exchange"\} [1-9]/m);
    expect(text).toMatch(/^rls_kit_token_verifications_total\{outcome="ok"\} [1-9]/m);
    expect(text).toMatch(/^rls_kit_revocation_lag_seconds 0$/m);
    expect(text).toMatch(/^rls_kit_jwks_fetches_total\{outcome="ok"\} /m);
  });
});

describe('the example API under RLS', () => {
  it('lets members write in their org, owners/admins manage, viewers only read', async () => {
    const carol = await signIn(USERS.carol); // Acme member
    const dave = await signIn(USERS.dave); // Acme viewer
    const bob = await signIn(USERS.bob); // Acme admin
    const erin = await signIn(USERS.erin); // Globex owner

    const created = await api(carol, 'POST', '', { title: 'carol draft', body: 'hi' });
    expect(created.status).toBe(201);
    const doc = (await created.json()) as { id: string; org_id: string; owner_id: string };
    expect(doc).toMatchObject({ org_id: ORGS.acme, owner_id: USERS.carol });

    expect((await api(carol, 'PATCH', `/${doc.id}`, { title: 'carol final' })).status).toBe(200);
    // A document of bob's: visible to carol, not hers to change.
    const bobs = 'd0000001-0000-4000-8000-000000000002';
    const denied = await api(carol, 'PATCH', `/${bobs}`, { title: 'mine now' });
    expect(denied.status).toBe(403);
    expect((await body(denied)).error).toBe('forbidden');
    expect((await api(carol, 'DELETE', `/${bobs}`)).status).toBe(403);
    // The viewer reads but cannot write.
    expect((await api(dave, 'GET')).status).toBe(200);
    expect((await api(dave, 'POST', '', { title: 'nope' })).status).toBe(403);
    // Another organization cannot even see it.
    expect((await api(erin, 'PATCH', `/${doc.id}`, { title: 'x' })).status).toBe(404);
    expect((await api(erin, 'DELETE', `/${doc.id}`)).status).toBe(404);
    const erinDocs = (await (await api(erin, 'GET', '?limit=100')).json()) as { org_id: string }[];
    expect(erinDocs.every((d) => d.org_id === ORGS.globex)).toBe(true);
    // An admin deletes another member's document.
    expect((await api(bob, 'DELETE', `/${doc.id}`)).status).toBe(204);
    expect((await api(carol, 'PATCH', `/${doc.id}`, { title: 'gone' })).status).toBe(404);
  });
});

describe('revocation takes effect on the next request', () => {
  it('POST /revoke with an access token: dead here at once, and on the other node', async () => {
    const token = await signIn(USERS.carol);
    expect((await getDocuments(nodeA.url, token)).status).toBe(200);
    expect((await getDocuments(nodeB.url, token)).status).toBe(200); // B verifies A's tokens: one keyring
    const res = await fetch(`${nodeA.url}/revoke`, form({ token }));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const next = await getDocuments(nodeA.url, token);
    expect(next.status).toBe(401);
    expect((await body(next)).error_description).toMatch(/revoked/);
    await expect
      .poll(async () => (await getDocuments(nodeB.url, token)).status, { timeout: 5000 })
      .toBe(401);
    // A second revoke of the same token is still 200.
    expect((await fetch(`${nodeA.url}/revoke`, form({ token }))).status).toBe(200);
  });

  it('POST /revoke with a refresh token ends the family and its access tokens', async () => {
    const jar = new CookieJar();
    const token = await signIn(USERS.bob, jar);
    const refresh = jar.get('rls_kit_refresh')!.value;
    const res = await fetch(
      `${nodeA.url}/revoke`,
      form({ token: refresh, token_type_hint: 'refresh_token' }),
    );
    expect(res.status).toBe(200);
    expect((await getDocuments(nodeA.url, token)).status).toBe(401);
    const again = await jar.fetch(`${nodeA.url}/token`, form({ grant_type: 'refresh_token' }));
    expect(again.status).toBe(400);
    expect((await body(again)).error).toBe('invalid_grant');
  });

  it('POST /logout ends the session (sid): refresh and access tokens, and clears the cookie', async () => {
    const jar = new CookieJar();
    const first = await signIn(USERS.alice, jar);
    const refreshed = await jar.fetch(`${nodeA.url}/token`, form({ grant_type: 'refresh_token' }));
    const second = (await body(refreshed)).access_token as string;
    expect(decodeJwt(second).sid).toBe(decodeJwt(first).sid);
    const other = await signIn(USERS.alice); // another login of the same user: unaffected

    const out = await fetch(`${nodeA.url}/logout`, {
      method: 'POST',
      headers: { authorization: `Bearer ${second}` },
    });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^rls_kit_refresh=; Path=\/token; Max-Age=0/);
    expect((await getDocuments(nodeA.url, first)).status).toBe(401);
    expect((await getDocuments(nodeA.url, second)).status).toBe(401);
    const refresh = await jar.fetch(`${nodeA.url}/token`, form({ grant_type: 'refresh_token' }));
    expect(refresh.status).toBe(400);
    await expect
      .poll(async () => (await getDocuments(nodeB.url, second)).status, { timeout: 5000 })
      .toBe(401);
    expect((await getDocuments(nodeA.url, other)).status).toBe(200);

    // Logout by refresh token alone (a client that lost its access token).
    const jar2 = new CookieJar();
    const third = await signIn(USERS.alice, jar2);
    const byRefresh = await fetch(
      `${nodeA.url}/logout`,
      form({ refresh_token: jar2.get('rls_kit_refresh')!.value }),
    );
    expect(byRefresh.status).toBe(204);
    expect((await getDocuments(nodeA.url, third)).status).toBe(401);
  });
});

describe('graceful shutdown', () => {
  it('finishes a request in flight, then refuses new connections', async () => {
    const service = await startTestService(db.url, home.dir, {
      supabase: { projectUrl: supabase.projectUrl },
      issuer: 'http://127.0.0.1:8787',
    });
    const token = await signIn(USERS.carol, new CookieJar(), service);
    const url = new URL(`${service.url}/api/documents`);
    const payload = JSON.stringify({ title: 'written during shutdown' });
    // Send the headers now and the body after close() began: the request is in flight.
    const pending = new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          method: 'POST',
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(payload)),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.write(payload.slice(0, 5));
      setTimeout(() => req.end(payload.slice(5)), 300);
    });
    await new Promise((r) => setTimeout(r, 100));
    const closing = service.close();
    expect(await pending).toBe(201);
    await closing;
    await expect(fetch(`${service.url}/healthz`)).rejects.toThrow();
  });
});

describe('configuration guards', () => {
  it('refuses demo mode off the embedded database or off loopback', async () => {
    for (const options of [
      { databaseUrl: db.url, demo: true, port: 0 },
      { host: '0.0.0.0', demo: true, port: 0 },
      // A proxy in front, or an https issuer, means the service is published: no demo.
      { trustedProxies: ['10.0.0.2'], demo: true, port: 0 },
      { issuer: 'https://auth.example.com', demo: true, port: 0 },
    ]) {
      let error: unknown;
      try {
        await startTokenService(options);
      } catch (err) {
        error = err;
      }
      expect(isRlsKitError(error, 'ERR_CONFIG')).toBe(true);
    }
  });
});

describe('rls-kit start (demo mode on a private embedded Postgres)', () => {
  let child: ChildProcess | undefined;
  let privateHome: Awaited<ReturnType<typeof tempHome>>;
  let stdout = '';
  let stderr = '';
  let exited: Promise<number | null>;

  beforeAll(async () => {
    privateHome = await tempHome();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RLS_KIT_HOME: privateHome.dir,
      LOG_LEVEL: 'info',
    };
    delete env.DATABASE_URL;
    delete env.SUPABASE_URL;
    child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'start', '--port', '0'],
      {
        cwd: root,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    exited = new Promise((resolve) => child!.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 150_000;
    while (!/curl -s \S+\/metrics/.test(stdout)) {
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error(`rls-kit start did not come up:\n${stderr.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 180_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    // If the service died without stopping its private Postgres, stop that server (by its pid).
    try {
      const { dataDir } = JSON.parse(await readFile(join(privateHome.dir, 'pg.json'), 'utf8')) as {
        dataDir: string;
      };
      const pid = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
      if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGINT');
      await new Promise((r) => setTimeout(r, 1000));
    } catch {
      // stopped already (the normal case)
    }
    await privateHome?.remove();
  });

  it('prints the URLs and a curl tour with the seeded users, and the tour works as printed', {
    timeout: 60_000,
  }, async () => {
    const url = stdout.match(/token service on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
    expect(url).toBeDefined();
    expect(stdout).toContain(`${url}/.well-known/jwks.json`);
    expect(stdout).toContain('carol@acme.test');
    expect(stdout).toContain('dave@acme.test');

    // Run the printed commands (comments dropped) in a shell, in a scratch folder.
    const commands = stdout
      .split('\n')
      .filter((l) => l.startsWith('  ') && !l.trim().startsWith('#') && l.trim() !== '')
      .filter((l) => !/^\s+(JWKS|discovery|token|revoke|example API|health)\s/.test(l))
      .map((l) => l.trim().replace(/\s+# .*$/, ''));
    expect(commands.length).toBeGreaterThan(10);
    const script = commands.map((c) => `${c}\necho "<<$?>>"`).join('\n');
    await writeFile(join(privateHome.dir, 'tour.sh'), script);
    const { stdout: out } = await run('bash', [join(privateHome.dir, 'tour.sh')], {
      cwd: privateHome.dir,
      maxBuffer: 10 * 1024 * 1024,
    });
    expect(out).not.toContain('<<1>>'); // every curl ran
    // The cookie jars went to a temporary directory, not into the working tree.
    expect((await readdir(privateHome.dir)).filter((f) => f.endsWith('.txt'))).toEqual([]);
    expect(out).toContain('"org_id":"a0000000-0000-4000-8000-000000000001"'); // carol's Acme docs
    expect(out).toContain('"title":"hello from carol"');
    expect(out).toMatch(/"error":"forbidden"/); // the viewer's insert
    expect(out).toMatch(/"error":"invalid_grant"/); // the replayed refresh cookie
    expect(
      (out.match(/"invalid_token","error_description":"the access token has been revoked"/g) ?? [])
        .length,
    ).toBe(2); // after reuse, after logout
    expect(out).toMatch(/"keys":\[\{"kty":"EC"/);
    expect(out).toMatch(/^rls_kit_refresh_reuse_detected_total 1$/m);
    expect(out).toMatch(/^rls_kit_tokens_issued_total\{grant="demo_login"\} 3$/m);

    // Demo login's own bad input.
    const bad = await fetch(`${url}/demo/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"email": ',
    });
    expect(bad.status).toBe(400);
    expect((await body(bad)).error).toBe('invalid_request');
    const unknown = await fetch(`${url}/demo/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'mallory@evil.test' }),
    });
    expect(unknown.status).toBe(400);
    expect((await body(unknown)).error).toBe('invalid_grant');
    // DNS rebinding: a page whose name now resolves to 127.0.0.1 sends its own Host.
    const rebound = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(
        `${url}/demo/login`,
        {
          method: 'POST',
          headers: { host: 'attacker.example:8787', 'content-type': 'application/json' },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => {
            text += d.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ email: 'carol@acme.test' }));
    });
    expect(rebound.status).toBe(403);
    expect(rebound.text).not.toMatch(/access_token/);

    // The keyring it created is private.
    expect((await stat(join(privateHome.dir, 'keys.json'))).mode & 0o777).toBe(0o600);
  });

  it('without a Supabase project, token exchange is refused naming the flag that enables it', async () => {
    const url = stdout.match(/token service on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
    expect(url).toBeDefined();
    const res = await fetch(`${url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        subject_token: 'x',
      }),
    });
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: string; error_description: string };
    expect(json.error).toBe('unsupported_grant_type');
    expect(json.error_description).toMatch(/--supabase-url, or SUPABASE_URL/);
  });

  it('turns off allocation-site pretenuring before serving, and logs it once', () => {
    const lines = stderr.split('\n').filter((l) => l.includes('garbage collector tuned'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ gc: 'allocation-site pretenuring off' });
  });

  it('stops gracefully on SIGTERM', async () => {
    child!.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toContain('token service stopped');
    expect(stderr).not.toMatch(/rk1_|eyJhbGci/); // no token in any log line
  });
});
