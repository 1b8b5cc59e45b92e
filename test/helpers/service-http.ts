import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { pino } from 'pino';
import { REDACT_PATHS } from '../../src/server/create-service-logger.js';
import {
  startTokenService,
  type TokenService,
  type TokenServiceOptions,
} from '../../src/server/index.js';
import { startServer, type TestServer } from './tokens.js';

/** Seeded users (supabase/seed.sql). */
export const USERS = {
  alice: 'b0000000-0000-4000-8000-000000000001', // Acme owner, Globex member
  bob: 'b0000000-0000-4000-8000-000000000002', // Acme admin
  carol: 'b0000000-0000-4000-8000-000000000003', // Acme member
  dave: 'b0000000-0000-4000-8000-000000000004', // Acme viewer
  erin: 'b0000000-0000-4000-8000-000000000005', // Globex owner
  frank: 'b0000000-0000-4000-8000-000000000006', // Globex viewer
} as const;
export const ORGS = {
  acme: 'a0000000-0000-4000-8000-000000000001',
  globex: 'a0000000-0000-4000-8000-000000000002',
  initech: 'a0000000-0000-4000-8000-000000000003',
} as const;

export const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** Every log line the service wrote, as text (to prove no token is in it). */
export interface LogCapture {
  readonly lines: string[];
  readonly logger: TokenServiceOptions['logger'];
}

export function captureLogs(): LogCapture {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(l);
      done();
    },
  });
  const logger = pino(
    { level: 'debug', redact: { paths: [...REDACT_PATHS], censor: '[redacted]' } },
    sink,
  );
  return { lines, logger };
}

/**
 * A stand-in Supabase Auth: a real HTTP server publishing an ES256 JWKS at
 * `/auth/v1/.well-known/jwks.json`, and a function that signs GoTrue-shaped
 * access tokens with its key.
 */
export interface FakeSupabase {
  readonly projectUrl: string;
  readonly server: TestServer;
  /** A GoTrue-shaped access token for `sub` (claims override the defaults). */
  token(sub: string, claims?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export async function startFakeSupabase(): Promise<FakeSupabase> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = `sb-${randomUUID().slice(0, 8)}`;
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const server = await startServer((req, res) => {
    if (req.url === '/auth/v1/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  const projectUrl = server.url;
  return {
    projectUrl,
    server,
    token: (sub, claims = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({
        iss: `${projectUrl}/auth/v1`,
        sub,
        aud: 'authenticated',
        iat: now,
        exp: now + 3600,
        role: 'authenticated',
        email: 'someone@example.test',
        session_id: randomUUID(),
        aal: 'aal1',
        amr: [{ method: 'password', timestamp: now }],
        is_anonymous: false,
        ...claims,
      })
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .sign(privateKey);
    },
    close: () => server.close(),
  };
}

/** A temp folder for the keyring, removed by `remove`. */
export async function tempHome(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'rls-kit-service-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Starts the service on `databaseUrl` with test defaults (port 0, keyring in `home`, no migrations). */
export function startTestService(
  databaseUrl: string,
  home: string,
  options: TokenServiceOptions = {},
): Promise<TokenService> {
  return startTokenService({
    databaseUrl,
    home,
    port: 0,
    migrate: false,
    keyRotation: false,
    poolSize: 6,
    logger: pino({ level: 'silent' }),
    ...options,
  });
}

/**
 * A minimal cookie jar as a browser keeps one: cookies by name with their
 * attributes, sent only to paths under their `Path`, replaced by a later
 * `Set-Cookie` of the same name and path, removed by `Max-Age=0`.
 */
export class CookieJar {
  readonly cookies = new Map<string, { value: string; path: string; attributes: string[] }>();

  /** Stores every `Set-Cookie` of a response. */
  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const path = attrs.find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
      const maxAge = attrs.find((a) => /^max-age=/i.test(a));
      const key = `${name}|${path}`;
      if (maxAge !== undefined && Number(maxAge.slice(8)) <= 0) this.cookies.delete(key);
      else this.cookies.set(key, { value, path, attributes: attrs });
    }
  }

  /** The `Cookie` header for a request to `url`, or undefined when no cookie applies. */
  header(url: string): string | undefined {
    const path = new URL(url).pathname;
    const pairs: string[] = [];
    for (const [key, c] of this.cookies) {
      const name = key.split('|')[0];
      if (path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)) {
        pairs.push(`${name}=${c.value}`);
      }
    }
    return pairs.length === 0 ? undefined : pairs.join('; ');
  }

  get(name: string): { value: string; path: string; attributes: string[] } | undefined {
    for (const [key, c] of this.cookies) if (key.split('|')[0] === name) return c;
    return undefined;
  }

  /** fetch with this jar: sends the applicable cookies, stores what comes back. */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = this.header(url);
    if (cookie !== undefined) headers.set('cookie', cookie);
    const response = await fetch(url, { ...init, headers });
    this.store(response);
    return response;
  }
}

/** POST an OAuth form. */
export function form(params: Record<string, string>): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  };
}

/** Body of an OAuth JSON response. */
export async function body(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

/** GET /api/documents with a bearer token. */
export function getDocuments(url: string, token: string, query = ''): Promise<Response> {
  return fetch(`${url}/api/documents${query}`, { headers: { authorization: `Bearer ${token}` } });
}
