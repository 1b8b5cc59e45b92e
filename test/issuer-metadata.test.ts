/**
 * The kit as a third-party issuer: OIDC discovery and JWKS served by
 * createWellKnownHandler over real HTTP on 127.0.0.1, consumed the way a
 * Supabase project (custom OIDC third-party auth) or any verifier does —
 * discovery first, then `jwks_uri` — with jose's createRemoteJWKSet and with
 * the kit's own remote-JWKS verifier.
 */
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRlsKitError } from '../src/errors.js';
import { createKeyring, generateKey, type Keyring, rotate } from '../src/keys/index.js';
import { createWellKnownHandler, openIdConfiguration, publicJwks } from '../src/supabase/index.js';
import { createMinter, createVerifier } from '../src/tokens/index.js';
import { ALICE, type FetchServer, serveFetch } from './helpers/supabase-fixture.js';

let server: FetchServer;
let issuer: string;
let ring: Keyring;
let handler: (request: Request) => Response | undefined = () => undefined;

beforeAll(async () => {
  server = await serveFetch((req) => handler(req) ?? new Response('not here', { status: 404 }));
  issuer = server.url;
  ring = createKeyring([await generateKey({ alg: 'ES256' })]);
  handler = createWellKnownHandler({
    issuer,
    keyring: () => ring,
    extra: { token_endpoint: `${issuer}/token`, issuer: 'https://evil.example' },
  });
});
afterAll(() => server.close());

async function discover(): Promise<Record<string, unknown>> {
  const res = await fetch(`${issuer}/.well-known/openid-configuration`);
  expect(res.status).toBe(200);
  expect(res.headers.get('cache-control')).toBe('public, max-age=600');
  expect(res.headers.get('content-type')).toBe('application/json');
  return (await res.json()) as Record<string, unknown>;
}

describe('OIDC discovery and JWKS over HTTP', () => {
  it('serves the discovery document: issuer exactly, jwks_uri under it, the keys’ algorithms', async () => {
    const doc = await discover();
    expect(doc.issuer).toBe(issuer);
    expect(doc.jwks_uri).toBe(`${issuer}/.well-known/jwks.json`);
    expect(doc.id_token_signing_alg_values_supported).toEqual(['ES256']);
    expect(doc.response_types_supported).toEqual(['id_token']);
    expect(doc.subject_types_supported).toEqual(['public']);
    expect(doc.token_endpoint).toBe(`${issuer}/token`);
  });

  it('serves public keys only, each with kid, alg and use: "sig"', async () => {
    const res = await fetch(`${issuer}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=600');
    expect(res.headers.get('content-type')).toBe('application/jwk-set+json');
    const jwks = (await res.json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys).toHaveLength(1);
    const [key] = jwks.keys;
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(key!.kid).toBe(ring.keys[0]!.kid);
    expect(Object.keys(key!).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
  });

  it('jose createRemoteJWKSet (found through discovery) verifies a kit token with role authenticated', async () => {
    const doc = await discover();
    const minter = await createMinter({ keyring: ring, issuer, audience: 'authenticated' });
    const token = await minter.mint({ sub: ALICE });
    const jwks = createRemoteJWKSet(new URL(String(doc.jwks_uri)));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: String(doc.issuer),
      audience: 'authenticated',
      algorithms: doc.id_token_signing_alg_values_supported as string[],
    });
    expect(payload.role).toBe('authenticated');
    expect(payload.sub).toBe(ALICE);
    expect(protectedHeader.kid).toBe(ring.keys[0]!.kid);
  });

  it("the kit's remote-JWKS verifier verifies kit tokens and refuses another keyring's", async () => {
    const doc = await discover();
    const verifier = createVerifier({
      issuer,
      audience: 'authenticated',
      keys: { jwksUrl: String(doc.jwks_uri) },
      metricsParent: null,
    });
    const minter = await createMinter({ keyring: ring, issuer, audience: 'authenticated' });
    const claims = await verifier.verify(await minter.mint({ sub: ALICE }));
    expect(claims.role).toBe('authenticated');
    const strangerRing = createKeyring([await generateKey({ alg: 'ES256' })]);
    const stranger = await createMinter({
      keyring: strangerRing,
      issuer,
      audience: 'authenticated',
    });
    await expect(verifier.verify(await stranger.mint({ sub: ALICE }))).rejects.toSatisfy(
      (err: unknown) => isRlsKitError(err, 'ERR_KEY_UNKNOWN'),
    );
  });

  it('after rotation the standby key is published at once (keyring read per request)', async () => {
    const before = ring;
    try {
      ring = (await rotate(ring, { alg: 'RS256' })).keyring;
      const jwks = (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as {
        keys: { kid: string; alg: string }[];
      };
      expect(jwks.keys.map((k) => k.kid).sort()).toEqual(ring.keys.map((k) => k.kid).sort());
      const doc = await discover();
      expect([...(doc.id_token_signing_alg_values_supported as string[])].sort()).toEqual([
        'ES256',
        'RS256',
      ]);
    } finally {
      ring = before;
    }
  });

  it('HEAD answers headers only; POST is 405; other paths fall through (undefined)', async () => {
    const head = await fetch(`${issuer}/.well-known/jwks.json`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const post = await fetch(`${issuer}/.well-known/jwks.json`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const other = await fetch(`${issuer}/documents`);
    expect(other.status).toBe(404);
    expect(await other.text()).toBe('not here');
  });

  it('works under a prefix (an Edge Function path)', async () => {
    const res = await fetch(`${issuer}/functions/v1/issuer/.well-known/jwks.json`);
    expect(res.status).toBe(200);
  });
});

describe('publicJwks and openIdConfiguration', () => {
  it('refuses a keyring with only an HS256 secret, and leaves the secret out of mixed ones', async () => {
    const secret = await generateKey({ alg: 'HS256' });
    const hsOnly = createKeyring([secret]);
    expect(() => publicJwks(hsOnly)).toThrow(/no asymmetric key/);
    expect(() => createWellKnownHandler({ issuer: 'https://a.example', keyring: hsOnly })).toThrow(
      /no asymmetric key/,
    );
    const mixed = createKeyring([
      { ...secret, rls_kit_state: 'standby' },
      await generateKey({ alg: 'EdDSA' }),
    ]);
    const { keys } = publicJwks(mixed);
    expect(keys.map((k) => k.alg)).toEqual(['EdDSA']);
    expect(JSON.stringify(keys)).not.toMatch(/"k"|"d"/);
  });

  it('a keyring function that yields only a secret gives an uncached 500, not a broken JWKS', async () => {
    const secret = await generateKey({ alg: 'HS256' });
    const h = createWellKnownHandler({
      issuer: 'https://a.example',
      keyring: () => createKeyring([secret]),
    });
    const res = h(new Request('https://a.example/.well-known/jwks.json'))!;
    expect(res.status).toBe(500);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('checks the issuer: https (http only on loopback), no query or fragment', () => {
    expect(() => openIdConfiguration({ issuer: 'http://auth.example.com' })).toThrow(/https/);
    expect(() => openIdConfiguration({ issuer: 'https://auth.example.com?x=1' })).toThrow(
      /query or fragment/,
    );
    expect(() => openIdConfiguration({ issuer: 'not a url' })).toThrow(/not a URL/);
    const doc = openIdConfiguration({
      issuer: 'https://auth.example.com/',
      jwksUri: 'https://keys.example.com/jwks.json',
      extra: { issuer: 'https://evil.example', token_endpoint: 'https://auth.example.com/token' },
    });
    expect(doc.issuer).toBe('https://auth.example.com/');
    expect(doc.jwks_uri).toBe('https://keys.example.com/jwks.json');
    expect(doc.token_endpoint).toBe('https://auth.example.com/token');
  });
});
