/**
 * Remote JWKS against real HTTP servers on 127.0.0.1. Time is an injected
 * clock (TTL 10 min, cooldown 30 s, staleFor 1 h: the production defaults),
 * so nothing here waits on wall-clock time except the fetch timeout test,
 * which asserts the error, not a duration.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVerifier, type Verifier } from '../src/tokens/verify.js';
import {
  AUD,
  expectCode,
  fakeClock,
  ISS,
  json,
  kitToken,
  makeKey,
  startServer,
  type TestKey,
  type TestServer,
} from './helpers/tokens.js';

const MIN = 60_000;
const TTL = 10 * MIN;
const COOLDOWN = 30_000;
const STALE = 60 * MIN;

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function jwksServer(keys: TestKey[]): Promise<TestServer> {
  const server = await startServer(json({ keys: keys.map((k) => k.jwk) }));
  servers.push(server);
  return server;
}

function setKeys(server: TestServer, keys: TestKey[]): void {
  server.handler = json({ keys: keys.map((k) => k.jwk) });
}

/** Closes connections without answering: what a crashed or unreachable endpoint looks like. */
function down(server: TestServer): void {
  server.handler = (req) => req.socket.destroy();
}

function remote(
  server: TestServer,
  clock: ReturnType<typeof fakeClock>,
  extra: Record<string, unknown> = {},
): Verifier {
  return createVerifier({
    issuer: ISS,
    audience: AUD,
    keys: { jwksUrl: `${server.url}/.well-known/jwks.json`, ...extra },
    clock: clock.now,
    metricsParent: null,
  });
}

/** A token valid for 3 hours from the clock's time (outlives TTL + staleFor checks). */
function longToken(key: TestKey, clock: ReturnType<typeof fakeClock>): string {
  const iat = Math.floor(clock.now() / 1000);
  return kitToken(key, { iat, exp: iat + 3 * 3600 }, clock.now());
}

describe('remote JWKS: fetching and caching', () => {
  it('fetches once on first use and serves from memory for the TTL', async () => {
    const a = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock, { cache: false });
    await v.verify(longToken(a, clock));
    clock.advance(TTL - 1);
    await v.verify(longToken(a, clock));
    expect(server.requests).toEqual(['/.well-known/jwks.json']);
    clock.advance(1);
    await v.verify(longToken(a, clock));
    expect(server.requests).toHaveLength(2);
  });

  it('coalesces concurrent verifications into one fetch', async () => {
    const a = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock);
    const tokens = Array.from({ length: 25 }, () => longToken(a, clock));
    const results = await Promise.all(tokens.map((t) => v.verify(t)));
    expect(results).toHaveLength(25);
    expect(server.requests).toHaveLength(1);
  });

  it('ready() fetches the keys ahead of the first token', async () => {
    const a = makeKey('EdDSA');
    const server = await jwksServer([a]);
    const v = remote(server, fakeClock());
    await v.ready();
    expect(server.requests).toHaveLength(1);
  });

  it('verifies RS256, ES256 and EdDSA keys from one set', async () => {
    const keys = [makeKey('RS256'), makeKey('ES256'), makeKey('EdDSA')];
    const server = await jwksServer(keys);
    const clock = fakeClock();
    const v = remote(server, clock);
    for (const k of keys) await expect(v.verify(longToken(k, clock))).resolves.toBeDefined();
  });
});

describe('remote JWKS: rotation', () => {
  it('a new kid triggers one refetch, at most once per cooldown', async () => {
    const a = makeKey('ES256');
    const b = makeKey('ES256');
    const c = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock);
    await v.verify(longToken(a, clock));
    setKeys(server, [a, b]);

    // Within the cooldown of the first fetch: no request, the kid is unknown.
    clock.advance(COOLDOWN - 1);
    await expectCode(v.verify(longToken(b, clock)), 'ERR_KEY_UNKNOWN');
    expect(server.requests).toHaveLength(1);

    clock.advance(1);
    await expect(v.verify(longToken(b, clock))).resolves.toBeDefined();
    expect(server.requests).toHaveLength(2);

    // A flood of unknown kids right after costs nothing.
    for (let i = 0; i < 20; i++) await expectCode(v.verify(longToken(c, clock)), 'ERR_KEY_UNKNOWN');
    expect(server.requests).toHaveLength(2);
  });

  it('concurrent tokens of a newly published key share one refetch and all pass', async () => {
    const a = makeKey('ES256');
    const b = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock);
    await v.verify(longToken(a, clock));
    setKeys(server, [a, b]);
    clock.advance(COOLDOWN);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => v.verify(longToken(b, clock))),
    );
    expect(results).toHaveLength(10);
    expect(server.requests).toHaveLength(2);
  });

  it('a retired kid is dropped at the next refresh, and its cached tokens with it', async () => {
    const a = makeKey('ES256');
    const b = makeKey('ES256');
    const server = await jwksServer([a, b]);
    const clock = fakeClock();
    const v = remote(server, clock);
    const tokenA = longToken(a, clock);
    const tokenB = longToken(b, clock);
    await v.verify(tokenA);
    await v.verify(tokenB);
    expect(v.verifyCached(tokenA)).toBeDefined();

    setKeys(server, [b]);
    clock.advance(TTL);
    // Past the TTL the fast path defers to verify(), which refreshes.
    expect(v.verifyCached(tokenA)).toBeUndefined();
    await v.verify(tokenB);
    expect(server.requests).toHaveLength(2);
    expect(v.verifyCached(tokenB)).toBeDefined();
    expect(v.verifyCached(tokenA)).toBeUndefined();
    await expectCode(v.verify(tokenA), 'ERR_KEY_UNKNOWN');
  });

  it('keeps cached tokens of keys that stay across a refresh', async () => {
    const a = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock);
    const token = longToken(a, clock);
    await v.verify(token);
    clock.advance(TTL);
    await v.verify(longToken(a, clock)); // refresh: same key
    expect(server.requests).toHaveLength(2);
    expect(v.verifyCached(token)).toBeDefined();
  });

  it('an empty key set means every kid is unknown', async () => {
    const a = makeKey('ES256');
    const server = await jwksServer([]);
    const clock = fakeClock();
    await expectCode(remote(server, clock).verify(longToken(a, clock)), 'ERR_KEY_UNKNOWN');
  });
});

describe('remote JWKS: failures', () => {
  it('server down: the last good keys serve for staleFor past the TTL, then ERR_JWKS_UNAVAILABLE', async () => {
    const a = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock, { cache: false });
    const t0 = clock.now();
    await v.verify(longToken(a, clock));
    down(server);

    clock.set(t0 + TTL);
    await expect(v.verify(longToken(a, clock))).resolves.toBeDefined();
    expect(server.requests).toHaveLength(2); // it did try

    clock.set(t0 + TTL + STALE - 1);
    await expect(v.verify(longToken(a, clock))).resolves.toBeDefined();
    expect(server.requests).toHaveLength(3);

    clock.set(t0 + TTL + STALE);
    await expectCode(v.verify(longToken(a, clock)), 'ERR_JWKS_UNAVAILABLE');
  });

  it('the cached fast path also stops at the stale bound', async () => {
    const a = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock);
    const t0 = clock.now();
    const iat = Math.floor(t0 / 1000);
    const token = kitToken(a, { iat, exp: iat + 4 * 3600 }, t0);
    await v.verify(token);
    down(server);
    clock.set(t0 + TTL);
    await v.verify(token); // refresh fails, stale keys serve
    expect(v.verifyCached(token)).toBeDefined(); // within the failed refresh's cooldown
    clock.set(t0 + TTL + STALE);
    expect(v.verifyCached(token)).toBeUndefined();
    await expectCode(v.verify(token), 'ERR_JWKS_UNAVAILABLE');
    expect(v.verifyCached(token)).toBeUndefined();
  });

  it('recovers when the endpoint comes back', async () => {
    const a = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock);
    down(server);
    await expectCode(v.verify(longToken(a, clock)), 'ERR_JWKS_UNAVAILABLE');
    setKeys(server, [a]);
    // Failures are rate-limited too: no new request inside the cooldown.
    await expectCode(v.verify(longToken(a, clock)), 'ERR_JWKS_UNAVAILABLE');
    expect(server.requests).toHaveLength(1);
    clock.advance(COOLDOWN);
    await expect(v.verify(longToken(a, clock))).resolves.toBeDefined();
    expect(server.requests).toHaveLength(2);
  });

  it('flapping endpoint: every verification passes while outages stay within staleFor', async () => {
    const a = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock, { cache: false });
    let attempts = 0;
    server.handler = (req, res) => {
      attempts++;
      if (attempts % 2 === 0) req.socket.destroy();
      else json({ keys: [a.jwk] })(req, res);
    };
    for (let step = 0; step < 12; step++) {
      await expect(v.verify(longToken(a, clock))).resolves.toBeDefined();
      clock.advance(TTL / 2);
    }
    // Steps every 5 min: a fetch whenever the set is 10 min old; a failed fetch leaves it old, so
    // the next step fetches again. Attempts at 0 (ok), 10 (down), 15 (ok), 25 (down), 30 (ok),
    // 40 (down), 45 (ok), 55 (down) minutes: 8, never one per token.
    expect(attempts).toBe(8);
  });

  it('a slow endpoint times out with ERR_JWKS_UNAVAILABLE', async () => {
    const server = await startServer(() => {
      // Never answers.
    });
    servers.push(server);
    const clock = fakeClock();
    const v = remote(server, clock, { timeout: 200 });
    try {
      await v.verify(longToken(makeKey('ES256'), clock));
      expect.unreachable();
    } catch (err) {
      expect((err as { code: string }).code).toBe('ERR_JWKS_UNAVAILABLE');
      expect((err as Error).message).toMatch(/did not answer within 200 ms/);
    }
  });

  const bad: [string, TestServer['handler'], RegExp][] = [
    [
      'HTML',
      (_q, r) => r.writeHead(200, { 'content-type': 'text/html' }).end('<html>hi</html>'),
      /HTML/,
    ],
    ['HTML labelled as JSON', json('<!doctype html><html></html>'), /HTML/],
    ['HTTP 500', json({ error: 'boom' }, 500), /HTTP 500/],
    ['HTTP 404', json({}, 404), /HTTP 404/],
    ['not JSON', json('keys: nope'), /not JSON/],
    ['not a JWK Set', json({ kty: 'EC' }), /not a JWK Set/],
    [
      'a key without kid',
      json({ keys: [{ ...makeKey('ES256').jwk, kid: undefined }] }),
      /without "kid"/,
    ],
    [
      'duplicate kids',
      json({
        keys: [
          { ...makeKey('ES256').jwk, kid: 'x' },
          { ...makeKey('ES256').jwk, kid: 'x' },
        ],
      }),
      /share/,
    ],
    ['a symmetric key', json({ keys: [makeKey('HS256').jwk] }), /symmetric/],
    [
      'private key material',
      json({ keys: [{ ...makeKey('ES256').jwk, d: 'AAAA' }] }),
      /private key material/,
    ],
    ['a huge body', json({ keys: [], pad: 'x'.repeat(600 * 1024) }), /over \d+ bytes/],
    [
      'a weak RSA key',
      json({ keys: [{ kty: 'RSA', kid: 'r', n: 'AQAB'.repeat(20), e: 'AQAB' }] }),
      /2048/,
    ],
  ];
  for (const [name, handler, message] of bad) {
    it(`refuses ${name} with ERR_JWKS_UNAVAILABLE and a clear message`, async () => {
      const server = await startServer(handler);
      servers.push(server);
      const clock = fakeClock();
      try {
        await remote(server, clock).verify(longToken(makeKey('ES256'), clock));
        expect.unreachable();
      } catch (err) {
        expect((err as { code: string }).code).toBe('ERR_JWKS_UNAVAILABLE');
        expect((err as Error).message).toMatch(message);
        expect((err as Error).message).not.toContain('\n');
      }
    });
  }

  it('a bad answer after a good one keeps the good keys (stale) instead of replacing them', async () => {
    const a = makeKey('ES256');
    const server = await jwksServer([a]);
    const clock = fakeClock();
    const v = remote(server, clock, { cache: false });
    await v.verify(longToken(a, clock));
    server.handler = json('<html>maintenance</html>');
    clock.advance(TTL);
    await expect(v.verify(longToken(a, clock))).resolves.toBeDefined();
    expect(server.requests).toHaveLength(2);
  });
});

describe('remote JWKS: redirects', () => {
  it('follows a redirect on the same host', async () => {
    const a = makeKey('ES256');
    const server = await startServer((req, res) => {
      if (req.url === '/.well-known/jwks.json') res.writeHead(302, { location: '/keys' }).end();
      else json({ keys: [a.jwk] })(req, res);
    });
    servers.push(server);
    const clock = fakeClock();
    await expect(remote(server, clock).verify(longToken(a, clock))).resolves.toBeDefined();
    expect(server.requests).toEqual(['/.well-known/jwks.json', '/keys']);
  });

  it('never follows a redirect to another host, which receives nothing', async () => {
    const a = makeKey('ES256');
    const elsewhere = await jwksServer([a]);
    const server = await startServer((_req, res) => {
      res
        .writeHead(307, {
          location: `${elsewhere.url.replace('127.0.0.1', 'localhost')}/jwks.json`,
        })
        .end();
    });
    servers.push(server);
    const clock = fakeClock();
    try {
      await remote(server, clock).verify(longToken(a, clock));
      expect.unreachable();
    } catch (err) {
      expect((err as { code: string }).code).toBe('ERR_JWKS_UNAVAILABLE');
      expect((err as Error).message).toMatch(/another host/);
    }
    expect(elsewhere.requests).toHaveLength(0);
  });

  it('refuses a redirect loop', async () => {
    const server = await startServer((_req, res) =>
      res.writeHead(301, { location: '/again' }).end(),
    );
    servers.push(server);
    const clock = fakeClock();
    await expectCode(
      remote(server, clock).verify(longToken(makeKey('ES256'), clock)),
      'ERR_JWKS_UNAVAILABLE',
    );
    expect(server.requests.length).toBeLessThanOrEqual(4);
  });
});
