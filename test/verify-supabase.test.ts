/**
 * Supabase Auth (GoTrue) access tokens: the claim set GoTrue issues, via the
 * project's JWKS (a real local server standing in for `<project>/auth/v1`)
 * and via the legacy HS256 secret.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSupabaseVerifier } from '../src/tokens/supabase.js';
import { createVerifier } from '../src/tokens/verify.js';
import {
  expectCode,
  json,
  makeKey,
  nowSec,
  signRaw,
  startServer,
  type TestKey,
  type TestServer,
} from './helpers/tokens.js';

/** The claims GoTrue puts in an access token for a signed-in user (no jti). */
function goTrueClaims(
  projectUrl: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const iat = nowSec();
  return {
    iss: `${projectUrl}/auth/v1`,
    sub: randomUUID(),
    aud: 'authenticated',
    exp: iat + 3600,
    iat,
    email: 'alice@example.com',
    phone: '',
    app_metadata: { provider: 'email', providers: ['email'] },
    user_metadata: { email_verified: true },
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: iat - 5 }],
    session_id: randomUUID(),
    is_anonymous: false,
    ...overrides,
  };
}

describe('createSupabaseVerifier with the project JWKS', () => {
  let server: TestServer;
  const es = makeKey('ES256');
  const rs = makeKey('RS256');
  beforeAll(async () => {
    server = await startServer((req, res) => {
      if (req.url === '/auth/v1/.well-known/jwks.json') json({ keys: [es.jwk, rs.jwk] })(req, res);
      else res.writeHead(404).end();
    });
  });
  afterAll(() => server.close());

  for (const key of [es, rs]) {
    it(`verifies a GoTrue ${key.alg} access token (session_id, aal, amr, is_anonymous; no jti)`, async () => {
      const verifier = createSupabaseVerifier({ projectUrl: server.url });
      const claims = await verifier.verify(
        signRaw(key, { alg: key.alg, kid: key.kid, typ: 'JWT' }, goTrueClaims(server.url)),
      );
      expect(claims.role).toBe('authenticated');
      expect(claims.aal).toBe('aal1');
      expect(claims.is_anonymous).toBe(false);
      expect(claims.session_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(claims.jti).toBeUndefined();
      expect(server.requests).toContain('/auth/v1/.well-known/jwks.json');
    });
  }

  it('accepts a trailing slash on the project URL', async () => {
    const verifier = createSupabaseVerifier({ projectUrl: `${server.url}/` });
    await expect(
      verifier.verify(
        signRaw(es, { alg: 'ES256', kid: es.kid, typ: 'JWT' }, goTrueClaims(server.url)),
      ),
    ).resolves.toBeDefined();
  });

  it("refuses another project's token, an anon-key-shaped token and a token without sub", async () => {
    const verifier = createSupabaseVerifier({ projectUrl: server.url });
    const h = { alg: 'ES256', kid: es.kid, typ: 'JWT' };
    await expectCode(
      verifier.verify(signRaw(es, h, goTrueClaims('https://other.supabase.co'))),
      'ERR_TOKEN_ISSUER',
    );
    const anonKey = {
      iss: 'supabase',
      ref: 'abcdefghijklmnopqrst',
      role: 'anon',
      iat: nowSec(),
      exp: nowSec() + 3600,
    };
    // The project's anon key has no aud (and iss "supabase"): refused before any claim is trusted.
    await expectCode(verifier.verify(signRaw(es, h, anonKey)), 'ERR_TOKEN_AUDIENCE');
    await expectCode(
      verifier.verify(signRaw(es, h, { ...anonKey, aud: 'authenticated', sub: randomUUID() })),
      'ERR_TOKEN_ISSUER',
    );
    const serviceShaped = goTrueClaims(server.url, { sub: undefined, role: 'service_role' });
    await expectCode(verifier.verify(signRaw(es, h, serviceShaped)), 'ERR_TOKEN_CLAIMS');
  });

  it('refuses an audience other than authenticated unless configured', async () => {
    const h = { alg: 'ES256', kid: es.kid, typ: 'JWT' };
    const token = signRaw(es, h, goTrueClaims(server.url, { aud: 'anon' }));
    await expectCode(
      createSupabaseVerifier({ projectUrl: server.url }).verify(token),
      'ERR_TOKEN_AUDIENCE',
    );
    await expect(
      createSupabaseVerifier({
        projectUrl: server.url,
        audience: ['authenticated', 'anon'],
      }).verify(token),
    ).resolves.toBeDefined();
  });

  it('a kit verifier (jti required) refuses the same GoTrue token: the preset is what relaxes jti', async () => {
    const kit = createVerifier({
      issuer: `${server.url}/auth/v1`,
      audience: 'authenticated',
      keys: { jwksUrl: `${server.url}/auth/v1/.well-known/jwks.json` },
    });
    await expectCode(
      kit.verify(signRaw(es, { alg: 'ES256', kid: es.kid, typ: 'JWT' }, goTrueClaims(server.url))),
      'ERR_TOKEN_CLAIMS',
    );
  });
});

describe('createSupabaseVerifier with the legacy HS256 secret', () => {
  const projectUrl = 'https://abcdefghijklmnopqrst.supabase.co';
  const jwtSecret = randomBytes(30).toString('base64'); // Supabase's legacy secrets are 40 printable characters
  const key: TestKey = { ...makeKey('HS256'), secret: Buffer.from(jwtSecret) };

  it('verifies a GoTrue HS256 token whose kid the secret does not know', async () => {
    const verifier = createSupabaseVerifier({ projectUrl, jwtSecret });
    const token = signRaw(
      key,
      { alg: 'HS256', kid: 'Fv0pC9yNk5bJ+Ah3', typ: 'JWT' },
      goTrueClaims(projectUrl),
    );
    const claims = await verifier.verify(token);
    expect(claims.iss).toBe(`${projectUrl}/auth/v1`);
    expect(claims.amr).toEqual([{ method: 'password', timestamp: claims.iat - 5 }]);
  });

  it('verifies an anonymous sign-in token (is_anonymous: true, role authenticated)', async () => {
    const verifier = createSupabaseVerifier({ projectUrl, jwtSecret });
    const token = signRaw(
      key,
      { alg: 'HS256', typ: 'JWT' },
      goTrueClaims(projectUrl, {
        is_anonymous: true,
        email: '',
        amr: [{ method: 'anonymous', timestamp: nowSec() }],
      }),
    );
    expect((await verifier.verify(token)).is_anonymous).toBe(true);
  });

  it('refuses an ES256 token (algorithm pinned to the secret) and a token signed with another secret', async () => {
    const verifier = createSupabaseVerifier({ projectUrl, jwtSecret });
    const es = makeKey('ES256');
    await expectCode(
      verifier.verify(signRaw(es, { alg: 'ES256', typ: 'JWT' }, goTrueClaims(projectUrl))),
      'ERR_TOKEN_ALG',
    );
    const other: TestKey = { ...key, secret: randomBytes(32) };
    await expectCode(
      verifier.verify(signRaw(other, { alg: 'HS256', typ: 'JWT' }, goTrueClaims(projectUrl))),
      'ERR_TOKEN_SIGNATURE',
    );
  });

  it("refuses the Supabase CLI's published local secret", async () => {
    await expectCode(
      () =>
        createSupabaseVerifier({
          projectUrl: 'http://127.0.0.1:54321',
          jwtSecret: 'super-secret-jwt-token-with-at-least-32-characters-long',
        }),
      'ERR_KEY_WEAK',
    );
  });

  it('refuses a project URL with a path or that is not a URL', async () => {
    await expectCode(
      () => createSupabaseVerifier({ projectUrl: `${projectUrl}/auth/v1`, jwtSecret }),
      'ERR_CONFIG',
    );
    await expectCode(
      () => createSupabaseVerifier({ projectUrl: 'abcdefghijklmnopqrst', jwtSecret }),
      'ERR_CONFIG',
    );
  });

  it('refuses a JWKS over plain http on a non-loopback host', async () => {
    await expectCode(
      () => createSupabaseVerifier({ projectUrl: 'http://abcdefghijklmnopqrst.supabase.co' }),
      'ERR_CONFIG',
    );
  });
});
