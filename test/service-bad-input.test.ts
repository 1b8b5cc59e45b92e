/**
 * Bad input over real HTTP: malformed JSON, wrong content types, oversized
 * bodies (with and without Content-Length), missing and repeated grant
 * parameters, a hammering client — each an OAuth-style 4xx with a clear
 * error_description, while the service keeps serving everyone else.
 */
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { clientAddress, rateLimitKey } from '../src/server/client-address.js';
import type { TokenService } from '../src/server/index.js';
import { metricsGate, metricsRefusal } from '../src/server/metrics-access.js';
import { memoryIO } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  ACCESS_TYPE,
  EXCHANGE,
  type FakeSupabase,
  startFakeSupabase,
  startTestService,
  tempHome,
  USERS,
} from './helpers/service-http.js';

let db: TestDatabase;
let supabase: FakeSupabase;
let home: Awaited<ReturnType<typeof tempHome>>;
let service: TokenService;
let token: string;

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  supabase = await startFakeSupabase();
  home = await tempHome();
  service = await startTestService(db.url, home.dir, {
    supabase: { projectUrl: supabase.projectUrl },
    rateLimit: { burst: 5, perSecond: 0.2 },
    trustedProxies: ['127.0.0.3'],
  });
  // One exchange from a client address of its own, so the limit tests start full.
  const res = await raw('POST', '/token', {
    localAddress: '127.0.0.9',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: EXCHANGE,
      subject_token: await supabase.token(USERS.carol),
      subject_token_type: ACCESS_TYPE,
    }).toString(),
  });
  expect(res.status).toBe(200);
  token = JSON.parse(res.text).access_token;
});

afterAll(async () => {
  await service?.close();
  await supabase?.close();
  await home?.remove();
  await db?.drop();
});

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): Record<string, unknown>;
}

/** One HTTP/1.1 request with exact control over headers, body framing and the client address. */
function raw(
  method: string,
  path: string,
  options: {
    headers?: Record<string, string>;
    body?: string | Buffer;
    chunks?: Buffer[];
    localAddress?: string;
  } = {},
): Promise<RawResponse> {
  const url = new URL(path, service.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        method,
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        headers: options.headers,
        localAddress: options.localAddress,
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: () => JSON.parse(text) as Record<string, unknown>,
          });
        });
      },
    );
    req.on('error', reject);
    if (options.chunks) {
      for (const c of options.chunks) req.write(c);
      req.end();
    } else req.end(options.body);
  });
}

function expectOAuthError(res: RawResponse, status: number, error: string, description?: RegExp) {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const json = res.json();
  expect(json.error).toBe(error);
  expect(typeof json.error_description).toBe('string');
  expect((json.error_description as string).length).toBeGreaterThan(10);
  if (description) expect(json.error_description).toMatch(description);
  if (status < 500 && res.headers['cache-control'] !== undefined) {
    expect(res.headers['cache-control']).toBe('no-store');
  }
}

let nextAddress = 20;
/** A fresh client address each, so these tests do not trip the rate limit. */
const client = () => `127.0.0.${nextAddress++}`;

describe('POST /token with bad input', () => {
  const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };

  it('refuses wrong content types', async () => {
    for (const [type, text] of [
      ['application/json', JSON.stringify({ grant_type: 'refresh_token' })],
      ['text/plain', 'grant_type=refresh_token'],
      ['multipart/form-data; boundary=x', '--x--'],
    ] as const) {
      const res = await raw('POST', '/token', {
        headers: { 'content-type': type },
        body: text,
        localAddress: client(),
      });
      expectOAuthError(res, 400, 'invalid_request', /application\/x-www-form-urlencoded/);
    }
    const none = await raw('POST', '/token', {
      body: 'grant_type=refresh_token',
      localAddress: client(),
    });
    expectOAuthError(none, 400, 'invalid_request', /no content type/);
  });

  it('refuses missing, unknown and repeated grant parameters', async () => {
    const post = (text: string) =>
      raw('POST', '/token', { headers: formHeaders, body: text, localAddress: client() });
    expectOAuthError(await post(''), 400, 'invalid_request', /grant_type is missing/);
    expectOAuthError(await post('grant_type='), 400, 'invalid_request', /grant_type is missing/);
    expectOAuthError(
      await post('grant_type=password&username=a&password=b'),
      400,
      'unsupported_grant_type',
    );
    expectOAuthError(await post('grant_type=client_credentials'), 400, 'unsupported_grant_type');
    expectOAuthError(
      await post('grant_type=refresh_token&grant_type=refresh_token'),
      400,
      'invalid_request',
      /"grant_type" appears more than once/,
    );
    const subject = await supabase.token(USERS.carol);
    expectOAuthError(
      await post(
        new URLSearchParams([
          ['grant_type', EXCHANGE],
          ['subject_token', subject],
          ['subject_token', subject],
          ['subject_token_type', ACCESS_TYPE],
        ]).toString(),
      ),
      400,
      'invalid_request',
      /"subject_token" appears more than once/,
    );
    expectOAuthError(
      await post('grant_type=refresh_token&refresh_token=%zz'),
      400,
      'invalid_grant',
    );
  });

  it('refuses oversized bodies, with or without Content-Length', async () => {
    const big = `grant_type=refresh_token&refresh_token=${'a'.repeat(20_000)}`;
    const framed = await raw('POST', '/token', {
      headers: formHeaders,
      body: big,
      localAddress: client(),
    });
    expectOAuthError(framed, 413, 'invalid_request', /larger than 16384 bytes/);
    const chunked = await raw('POST', '/token', {
      headers: { ...formHeaders, 'transfer-encoding': 'chunked' },
      chunks: Array.from({ length: 40 }, () => Buffer.alloc(1024, 0x61)),
      localAddress: client(),
    });
    expectOAuthError(chunked, 413, 'invalid_request');
  });

  it('answers other methods with 405', async () => {
    const res = await raw('GET', '/token', { localAddress: client() });
    expectOAuthError(res, 405, 'method_not_allowed');
    expect(res.headers.allow).toBe('POST');
  });
});

describe('the example API with bad input', () => {
  const auth = () => ({ authorization: `Bearer ${token}` });

  it('refuses missing and malformed credentials with RFC 6750 challenges', async () => {
    const none = await raw('GET', '/api/documents');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    const basic = await raw('GET', '/api/documents', { headers: { authorization: 'Basic YTpi' } });
    expect(basic.status).toBe(401);
    const junk = await raw('GET', '/api/documents', {
      headers: { authorization: 'Bearer not-a-jwt' },
    });
    expect(junk.status).toBe(401);
    expect(junk.headers['www-authenticate']).toContain('invalid_token');
    const tampered = `${token.slice(0, -4)}AAAA`;
    const forged = await raw('GET', '/api/documents', {
      headers: { authorization: `Bearer ${tampered}` },
    });
    expect(forged.status).toBe(401);
  });

  it('refuses malformed JSON, wrong content types, bad fields and oversized bodies', async () => {
    const post = (headers: Record<string, string>, text: string) =>
      raw('POST', '/api/documents', { headers: { ...auth(), ...headers }, body: text });
    const json = { 'content-type': 'application/json' };
    expectOAuthError(await post(json, '{"title": "x",'), 400, 'invalid_request', /not valid JSON/);
    expectOAuthError(await post(json, '[1,2]'), 400, 'invalid_request', /JSON object/);
    expectOAuthError(await post(json, '{"title": 42}'), 400, 'invalid_request', /title/);
    expectOAuthError(await post(json, `{"title": "${'t'.repeat(201)}"}`), 400, 'invalid_request');
    expectOAuthError(
      await post({ 'content-type': 'text/plain' }, '{"title":"x"}'),
      415,
      'invalid_request',
    );
    expectOAuthError(
      await post(json, JSON.stringify({ title: 'x', body: 'b'.repeat(70_000) })),
      413,
      'invalid_request',
    );
    const patch = await raw('PATCH', '/api/documents/not-a-uuid', {
      headers: { ...auth(), ...json },
      body: '{"title":"x"}',
    });
    expectOAuthError(patch, 404, 'not_found');
    const limit = await raw('GET', '/api/documents?limit=100000', { headers: auth() });
    expectOAuthError(limit, 400, 'invalid_request', /limit/);
  });

  it('refuses bad /revoke and /logout requests', async () => {
    const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };
    expectOAuthError(
      await raw('POST', '/revoke', { headers: formHeaders, body: '', localAddress: client() }),
      400,
      'invalid_request',
    );
    expectOAuthError(
      await raw('POST', '/revoke', {
        headers: formHeaders,
        body: 'token=a&token=b',
        localAddress: client(),
      }),
      400,
      'invalid_request',
    );
    expectOAuthError(
      await raw('POST', '/revoke', {
        headers: { 'content-type': 'application/json' },
        body: '{"token":"a"}',
        localAddress: client(),
      }),
      400,
      'invalid_request',
    );
    // Unknown tokens: 200, as RFC 7009 §2.2 says.
    for (const t of ['garbage', 'rk1_unknown', `${token.slice(0, -4)}AAAA`]) {
      const res = await raw('POST', '/revoke', {
        headers: formHeaders,
        body: `token=${encodeURIComponent(t)}`,
        localAddress: client(),
      });
      expect(res.status, t).toBe(200);
    }
    expectOAuthError(
      await raw('POST', '/logout', { localAddress: client() }),
      400,
      'invalid_request',
      /nothing to log out/,
    );
    const badAuth = await raw('POST', '/logout', {
      headers: { authorization: 'Bearer x.y.z' },
      localAddress: client(),
    });
    expectOAuthError(badAuth, 401, 'invalid_token');
  });

  it('answers unknown paths with an OAuth-shaped 404', async () => {
    expectOAuthError(await raw('GET', '/nope'), 404, 'not_found');
    // Demo login exists only on the embedded database.
    expectOAuthError(
      await raw('POST', '/demo/login', {
        headers: { 'content-type': 'application/json' },
        body: '{"email":"alice@acme.test"}',
      }),
      404,
      'not_found',
    );
  });
});

describe('rate limiting of /token per client', () => {
  const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };
  const attempt = (localAddress: string, headers: Record<string, string> = {}) =>
    raw('POST', '/token', {
      headers: { ...formHeaders, ...headers },
      body: 'grant_type=refresh_token',
      localAddress,
    });

  it('limits one socket address, not the others, whatever X-Forwarded-For says', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      statuses.push((await attempt('127.0.0.2', { 'x-forwarded-for': `10.0.0.${i}` })).status);
    }
    expect(statuses.slice(0, 5)).toEqual([400, 400, 400, 400, 400]);
    expect(statuses.slice(5)).toEqual([429, 429]);
    const limited = await attempt('127.0.0.2');
    expectOAuthError(limited, 429, 'rate_limited', /retry in \d+ s/);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Another client is unaffected, and so is the rest of the service.
    expect((await attempt('127.0.0.4')).status).toBe(400);
    expect((await raw('GET', '/healthz', { localAddress: '127.0.0.2' })).status).toBe(200);
    const docs = await raw('GET', '/api/documents', {
      headers: { authorization: `Bearer ${token}` },
      localAddress: '127.0.0.2',
    });
    expect(docs.status).toBe(200);
  });

  it('limits /revoke and /logout per client in a bucket of their own: a spent /token budget never blocks a revocation', async () => {
    const address = client();
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const revoke = async () =>
      (
        await raw('POST', '/revoke', {
          headers: form,
          body: 'token=garbage',
          localAddress: address,
        })
      ).status;
    const logout = async () => (await raw('POST', '/logout', { localAddress: address })).status;
    const token: number[] = [];
    for (let i = 0; i < 6; i++) token.push((await attempt(address)).status);
    expect(token).toEqual([400, 400, 400, 400, 400, 429]);
    const signOut: number[] = [];
    for (let i = 0; i < 3; i++) signOut.push(await revoke(), await logout());
    expect(signOut).toEqual([200, 400, 200, 400, 200, 429]);
  });

  it('keys an IPv6 client by its /64, an IPv4 client by its address', () => {
    expect(rateLimitKey('2001:db8:1:2:a:b:c:d')).toBe('2001:db8:1:2::/64');
    expect(rateLimitKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(rateLimitKey('2001:DB8:0001:0002:ffff::')).toBe('2001:db8:1:2::/64');
    expect(rateLimitKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(rateLimitKey('::1')).toBe('0:0:0:0::/64');
    expect(rateLimitKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(rateLimitKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
    expect(rateLimitKey('203.0.113.7')).toBe('203.0.113.7');
    expect(rateLimitKey('local')).toBe('local');
  });

  it('believes X-Forwarded-For only from a trusted proxy', async () => {
    // 127.0.0.3 is the trusted proxy: each forwarded client has its own bucket.
    for (let i = 0; i < 6; i++) {
      expect((await attempt('127.0.0.3', { 'x-forwarded-for': `203.0.113.${i}` })).status).toBe(
        400,
      );
    }
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      // The client prepends a fake hop; the proxy appended the real one (rightmost).
      statuses.push(
        (await attempt('127.0.0.3', { 'x-forwarded-for': `1.2.3.${i}, 198.51.100.7` })).status,
      );
    }
    expect(statuses).toEqual([400, 400, 400, 400, 400, 429]);
  });
});

describe('rls-kit start with bad flags', () => {
  it('answers usage errors with exit 2 and one line, before starting anything', async () => {
    for (const args of [
      ['start', '--port', 'x'],
      ['start', '--port', '70000'],
      ['start', '--bogus'],
    ]) {
      const io = memoryIO();
      expect(await runCli(args, io), args.join(' ')).toBe(2);
      expect(io.err().trim().split('\n')).toHaveLength(1);
      expect(io.err()).toMatch(/rls-kit start --help/);
    }
    const help = memoryIO();
    expect(await runCli(['start', '--help'], help)).toBe(0);
    expect(help.out()).toContain('--supabase-url');
    expect(help.out()).toContain('--metrics-token-env');
    expect(help.out()).toContain('--no-prepared-statements');
  });

  it('--no-gc-tuning keeps V8 defaults: the tuning is neither applied nor logged', async () => {
    // A child process each (V8 flags are per process); a server that refuses the
    // connection makes start fail fast, after the tuning decision.
    const start = async (...extra: string[]) => {
      const out = await promisify(execFile)(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/main.ts',
          'start',
          '--port',
          '0',
          '--db-url',
          'postgresql://postgres@127.0.0.1:1/none',
          ...extra,
        ],
        { cwd: process.cwd(), env: { ...process.env, DATABASE_URL: '' } },
      ).catch((err: { code?: number; stderr?: string }) => err);
      expect((out as { code?: number }).code).toBe(1);
      expect(out.stderr).toMatch(/ERR_DB_UNREACHABLE/);
      return out.stderr ?? '';
    };
    const [tuned, untuned] = await Promise.all([start(), start('--no-gc-tuning')]);
    expect(tuned).toContain('garbage collector tuned');
    expect(untuned).not.toContain('garbage collector tuned');
  });

  it('refuses contradictory or empty metrics flags with one line', async () => {
    for (const [args, message] of [
      [['start', '--metrics-public', '--metrics-token-env', 'T'], /exclude each other/],
      [['start', '--metrics-token-env', 'RLS_KIT_NO_SUCH_VAR'], /RLS_KIT_NO_SUCH_VAR.*not set/],
    ] as const) {
      const io = memoryIO();
      expect(await runCli([...args], io), args.join(' ')).toBe(2);
      expect(io.err().trim().split('\n')).toHaveLength(1);
      expect(io.err()).toMatch(message);
    }
  });
});

describe('who may read /metrics', () => {
  it('by default, clients on this host only — behind a trusted proxy, the forwarded client counts', async () => {
    const local = await raw('GET', '/metrics', { localAddress: client() });
    expect(local.status).toBe(200);
    expect(local.text).toContain('# TYPE');
    // Through the trusted proxy (127.0.0.3) for an outside client: refused.
    const outside = await raw('GET', '/metrics', {
      localAddress: '127.0.0.3',
      headers: { 'x-forwarded-for': '203.0.113.50' },
    });
    expectOAuthError(outside, 403, 'forbidden', /this host only/);
    expect(outside.text).not.toContain('# TYPE');
    // An untrusted peer cannot borrow a loopback address through the header.
    const spoofed = await raw('GET', '/metrics', {
      localAddress: '127.0.0.3',
      headers: { 'x-forwarded-for': '127.0.0.1, 198.51.100.9' },
    });
    expect(spoofed.status).toBe(403);
    // An entry the proxy wrote as ip:port, or `unknown`, ends the walk: what the
    // client put to its left (a loopback address) is never believed.
    for (const xff of [
      '127.0.0.1, 203.0.113.5:4711',
      '127.0.0.1, unknown',
      '::1, [2001:db8::1]:443',
    ]) {
      const res = await raw('GET', '/metrics', {
        localAddress: '127.0.0.3',
        headers: { 'x-forwarded-for': xff },
      });
      expect(res.status, xff).toBe(403);
    }
  });

  it('reads the forwarded client through ports and stops at the first entry it cannot read', () => {
    const trusted = new Set(['10.0.0.2']);
    expect(clientAddress('10.0.0.2', '198.51.100.7:5000', trusted)).toBe('198.51.100.7');
    expect(clientAddress('10.0.0.2', '[2001:db8::7]:443', trusted)).toBe('2001:db8::7');
    expect(clientAddress('10.0.0.2', '127.0.0.1, unknown', trusted)).toBe('unknown');
    expect(clientAddress('10.0.0.2', '127.0.0.1, 10.0.0.2', trusted)).toBe('127.0.0.1');
    expect(clientAddress('203.0.113.9', '127.0.0.1', trusted)).toBe('203.0.113.9');
    expect(metricsRefusal(metricsGate(undefined), 'local', null)?.status).toBe(403);
    expect(metricsRefusal(metricsGate(undefined), 'unknown', null)?.status).toBe(403);
  });

  it('with a bearer token: exactly that token, compared whole; a short token is a config error', () => {
    const token = 'm'.repeat(40);
    const gate = metricsGate({ bearerToken: token });
    expect(metricsRefusal(gate, '203.0.113.5', `Bearer ${token}`)).toBeUndefined();
    for (const header of [null, 'Bearer ', `Bearer ${token.slice(1)}`, `Bearer ${token}x`, token]) {
      const refused = metricsRefusal(gate, '127.0.0.1', header);
      expect(refused?.status, String(header)).toBe(401);
      expect(refused?.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect(metricsRefusal(metricsGate('public'), '203.0.113.5', null)).toBeUndefined();
    expect(metricsRefusal(metricsGate(undefined), '::1', null)).toBeUndefined();
    expect(metricsRefusal(metricsGate('loopback'), '203.0.113.5', null)?.status).toBe(403);
    expect(() => metricsGate({ bearerToken: 'short' })).toThrow(/at least 32 characters/);
    expect(() => metricsGate('everyone' as never)).toThrow(/metricsAccess must be/);
  });
});
