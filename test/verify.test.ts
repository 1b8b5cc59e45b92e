import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { generateKey } from '../src/keys/generate-key.js';
import type { KeyringKey, SigningAlg } from '../src/keys/types.js';
import { toVerificationKeys } from '../src/keys/verification-keys.js';
import { createVerifier } from '../src/tokens/verify.js';
import {
  AUD,
  expectCode,
  fakeClock,
  header,
  ISS,
  kitClaims,
  kitToken,
  makeKey,
  nowSec,
  SUB,
  signRaw,
  type TestKey,
} from './helpers/tokens.js';

const ALGS: SigningAlg[] = ['ES256', 'RS256', 'EdDSA', 'HS256'];

function verifierFor(keys: TestKey[], extra: Partial<Parameters<typeof createVerifier>[0]> = {}) {
  return createVerifier({
    issuer: ISS,
    audience: AUD,
    keys: { jwks: { keys: keys.map((k) => k.jwk) } },
    cache: false,
    ...extra,
  });
}

describe('createVerifier: valid tokens', () => {
  for (const alg of ALGS) {
    it(`verifies a kit token signed with ${alg} from a local JWKS`, async () => {
      const key = makeKey(alg);
      const claims = await verifierFor([key]).verify(kitToken(key));
      expect(claims.sub).toBe(SUB);
      expect(claims.iss).toBe(ISS);
      expect(claims.org_id).toBe('0b8f1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
    });
  }

  it('verifies tokens minted with jose SignJWT against keyring keys (toVerificationKeys)', async () => {
    const ring = { keys: [await generateKey({ alg: 'ES256' })] as KeyringKey[] };
    const [vk] = await toVerificationKeys(ring);
    const signer = ring.keys[0]!;
    const { importJWK } = await import('jose');
    const priv = await importJWK(signer, 'ES256');
    const token = await new SignJWT({ sub: SUB, role: 'authenticated', jti: 'j1' })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: signer.kid })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(priv);
    const verifier = createVerifier({ issuer: ISS, audience: AUD, keys: { keys: [vk!] } });
    expect((await verifier.verify(token)).jti).toBe('j1');
  });

  it('verifies with an HS256 secret given as a string or as bytes', async () => {
    const secret = randomBytes(32);
    const key: TestKey = { ...makeKey('HS256'), secret };
    const token = signRaw(key, { alg: 'HS256', typ: 'JWT' }, kitClaims());
    const v1 = createVerifier({ issuer: ISS, audience: AUD, keys: { secret } });
    expect((await v1.verify(token)).sub).toBe(SUB);
    const text = randomBytes(30).toString('base64');
    const k2: TestKey = { ...key, secret: Buffer.from(text) };
    const v2 = createVerifier({ issuer: ISS, audience: AUD, keys: { secret: text } });
    expect((await v2.verify(signRaw(k2, { alg: 'HS256' }, kitClaims()))).sub).toBe(SUB);
  });

  it('accepts any issuer or audience of the configured lists, and aud as an array', async () => {
    const key = makeKey('ES256');
    const v = verifierFor([key], { issuer: ['https://other', ISS], audience: ['x', AUD] });
    await expect(v.verify(kitToken(key, { aud: ['svc', AUD] }))).resolves.toBeDefined();
  });

  it('returns deeply frozen claims', async () => {
    const key = makeKey('ES256');
    const claims = await verifierFor([key]).verify(
      kitToken(key, { amr: [{ method: 'password' }] }),
    );
    expect(Object.isFrozen(claims)).toBe(true);
    expect(Object.isFrozen((claims.amr as object[])[0])).toBe(true);
  });

  it('accepts fractional NumericDates (RFC 7519 allows them)', async () => {
    const key = makeKey('ES256');
    const iat = Date.now() / 1000;
    await expect(
      verifierFor([key]).verify(kitToken(key, { iat, exp: iat + 600.5 })),
    ).resolves.toBeDefined();
  });
});

describe('createVerifier: claims', () => {
  const key = makeKey('ES256');
  const v = verifierFor([key]);

  it('refuses a wrong issuer with ERR_TOKEN_ISSUER', async () => {
    await expectCode(v.verify(kitToken(key, { iss: 'https://evil.example' })), 'ERR_TOKEN_ISSUER');
  });
  it('refuses a missing issuer with ERR_TOKEN_ISSUER', async () => {
    await expectCode(v.verify(kitToken(key, { iss: undefined })), 'ERR_TOKEN_ISSUER');
  });
  it('refuses a wrong audience with ERR_TOKEN_AUDIENCE', async () => {
    await expectCode(v.verify(kitToken(key, { aud: 'service_role' })), 'ERR_TOKEN_AUDIENCE');
  });
  it('refuses a missing audience with ERR_TOKEN_AUDIENCE', async () => {
    await expectCode(v.verify(kitToken(key, { aud: undefined })), 'ERR_TOKEN_AUDIENCE');
  });
  for (const claim of ['sub', 'exp', 'iat', 'jti']) {
    it(`refuses a token without ${claim}`, async () => {
      await expectCode(v.verify(kitToken(key, { [claim]: undefined })), 'ERR_TOKEN_CLAIMS');
    });
  }
  it('refuses an empty or non-string sub and jti', async () => {
    await expectCode(v.verify(kitToken(key, { sub: '' })), 'ERR_TOKEN_CLAIMS');
    await expectCode(v.verify(kitToken(key, { sub: 42 })), 'ERR_TOKEN_CLAIMS');
    await expectCode(v.verify(kitToken(key, { jti: 7 })), 'ERR_TOKEN_CLAIMS');
  });
  it('does not require jti with requireJti: false, but still types it', async () => {
    const lax = verifierFor([key], { requireJti: false });
    await expect(lax.verify(kitToken(key, { jti: undefined }))).resolves.toBeDefined();
    await expectCode(lax.verify(kitToken(key, { jti: ['a'] })), 'ERR_TOKEN_CLAIMS');
  });
  it('refuses an expired token with ERR_TOKEN_EXPIRED (beyond the 30 s tolerance)', async () => {
    const at = Date.now() - 700_000;
    await expectCode(v.verify(kitToken(key, {}, at)), 'ERR_TOKEN_EXPIRED');
  });
  it('accepts a token expired less than the clock tolerance ago', async () => {
    const iat = nowSec() - 600;
    await expect(v.verify(kitToken(key, { iat, exp: nowSec() - 10 }))).resolves.toBeDefined();
  });
  it('refuses exp not after iat', async () => {
    const iat = nowSec();
    await expectCode(v.verify(kitToken(key, { iat, exp: iat })), 'ERR_TOKEN_CLAIMS');
  });
  it('honours nbf: refused in the future, accepted in the past', async () => {
    await expectCode(v.verify(kitToken(key, { nbf: nowSec() + 120 })), 'ERR_TOKEN_NOT_YET_VALID');
    await expect(v.verify(kitToken(key, { nbf: nowSec() - 5 }))).resolves.toBeDefined();
  });
  it('refuses an iat in the future beyond the tolerance, accepts within it', async () => {
    await expectCode(v.verify(kitToken(key, {}, Date.now() + 120_000)), 'ERR_TOKEN_NOT_YET_VALID');
    await expect(v.verify(kitToken(key, {}, Date.now() + 20_000))).resolves.toBeDefined();
    const strict = verifierFor([key], { clockTolerance: 0 });
    await expectCode(
      strict.verify(kitToken(key, {}, Date.now() + 20_000)),
      'ERR_TOKEN_NOT_YET_VALID',
    );
  });
  it('applies maxTokenAge to iat', async () => {
    const aged = verifierFor([key], { maxTokenAge: 60 });
    const at = Date.now() - 300_000;
    await expectCode(aged.verify(kitToken(key, { exp: nowSec() + 600 }, at)), 'ERR_TOKEN_EXPIRED');
    await expect(aged.verify(kitToken(key))).resolves.toBeDefined();
  });
  it('uses the injected clock', async () => {
    const clock = fakeClock();
    const c = verifierFor([key], { clock: clock.now });
    const token = kitToken(key);
    await expect(c.verify(token)).resolves.toBeDefined();
    clock.advance(11 * 60_000);
    await expectCode(c.verify(token), 'ERR_TOKEN_EXPIRED');
  });
});

describe('createVerifier: typ', () => {
  const key = makeKey('ES256');
  it('accepts no typ, JWT and at+jwt by default, in any casing and with application/', async () => {
    const v = verifierFor([key]);
    for (const typ of [
      undefined,
      'JWT',
      'jwt',
      'at+jwt',
      'application/at+JWT',
      'application/jwt',
    ]) {
      await expect(
        v.verify(signRaw(key, header(key, { typ }), kitClaims())),
      ).resolves.toBeDefined();
    }
  });
  it('refuses other types by default (typ confusion)', async () => {
    const v = verifierFor([key]);
    for (const typ of ['dpop+jwt', 'logout+jwt', 'secevent+jwt', 'JOSE', 'foo/at+jwt', 7]) {
      await expectCode(v.verify(signRaw(key, header(key, { typ }), kitClaims())), 'ERR_TOKEN_TYPE');
    }
  });
  it('with typ configured, requires exactly that type', async () => {
    const v = verifierFor([key], { typ: 'at+jwt' });
    await expect(
      v.verify(signRaw(key, header(key, { typ: 'AT+JWT' }), kitClaims())),
    ).resolves.toBeDefined();
    await expect(
      v.verify(signRaw(key, header(key, { typ: 'application/at+jwt' }), kitClaims())),
    ).resolves.toBeDefined();
    await expectCode(
      v.verify(signRaw(key, header(key, { typ: 'JWT' }), kitClaims())),
      'ERR_TOKEN_TYPE',
    );
    await expectCode(
      v.verify(signRaw(key, header(key, { typ: undefined }), kitClaims())),
      'ERR_TOKEN_TYPE',
    );
  });
});

describe('createVerifier: keys', () => {
  it('selects the key by kid among several', async () => {
    const a = makeKey('ES256');
    const b = makeKey('EdDSA');
    const v = verifierFor([a, b]);
    expect((await v.verify(kitToken(b))).sub).toBe(SUB);
    expect((await v.verify(kitToken(a))).sub).toBe(SUB);
  });
  it('refuses an unknown kid with ERR_KEY_UNKNOWN', async () => {
    const a = makeKey('ES256');
    const other = makeKey('ES256');
    await expectCode(verifierFor([a]).verify(kitToken(other)), 'ERR_KEY_UNKNOWN');
  });
  it('accepts a token without kid only when exactly one key is configured', async () => {
    const a = makeKey('ES256');
    const b = makeKey('ES256');
    const token = signRaw(a, { alg: 'ES256', typ: 'JWT' }, kitClaims());
    await expect(verifierFor([a]).verify(token)).resolves.toBeDefined();
    await expectCode(verifierFor([a, b]).verify(token), 'ERR_KEY_UNKNOWN');
  });
  it('uses a kid-less lone secret whatever kid the token carries (Supabase legacy tokens)', async () => {
    const key = makeKey('HS256');
    const v = createVerifier({ issuer: ISS, audience: AUD, keys: { secret: key.secret! } });
    await expect(v.verify(kitToken(key))).resolves.toBeDefined();
  });
  it('requires kids when a local JWKS has several keys, and refuses duplicate kids', () => {
    const a = makeKey('ES256');
    const b = makeKey('ES256');
    const { kid: _a, ...noKidA } = a.jwk;
    expect(() =>
      createVerifier({ issuer: ISS, audience: AUD, keys: { jwks: { keys: [noKidA, b.jwk] } } }),
    ).toThrow(/kid/);
    expect(() =>
      createVerifier({
        issuer: ISS,
        audience: AUD,
        keys: { jwks: { keys: [a.jwk, { ...b.jwk, kid: a.kid }] } },
      }),
    ).toThrow(/kid/);
  });
  it('refuses weak HS256 secrets when the verifier is created (ERR_KEY_WEAK)', async () => {
    for (const secret of ['secret', 'a'.repeat(64), 'your-256-bit-secret', new Uint8Array(32)]) {
      await expectCode(
        () => createVerifier({ issuer: ISS, audience: AUD, keys: { secret } }),
        'ERR_KEY_WEAK',
      );
    }
    await expectCode(
      () =>
        createVerifier({
          issuer: ISS,
          audience: AUD,
          keys: { jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } },
        }),
      'ERR_KEY_WEAK',
    );
  });
  it('refuses RSA keys under 2048 bits', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
      format: 'jwk',
    });
    await expectCode(
      () =>
        createVerifier({
          issuer: ISS,
          audience: AUD,
          keys: { jwks: { keys: [{ ...small, alg: 'RS256' }] } },
        }),
      'ERR_KEY_WEAK',
    );
  });
  it('ignores private members of a keyring-style JWKS and verifies with the public part', async () => {
    const key = makeKey('ES256');
    const priv = {
      ...(key.privateKey!.export({ format: 'jwk' }) as object),
      kid: key.kid,
      alg: 'ES256',
    };
    const v = createVerifier({ issuer: ISS, audience: AUD, keys: { jwks: { keys: [priv] } } });
    await expect(v.verify(kitToken(key))).resolves.toBeDefined();
  });
  it('stops verifying with a retired key after its rls_kit_not_after', async () => {
    const key = makeKey('ES256');
    const clock = fakeClock();
    const notAfter = new Date(clock.now() + 60_000).toISOString();
    const v = createVerifier({
      issuer: ISS,
      audience: AUD,
      clock: clock.now,
      keys: { jwks: { keys: [{ ...key.jwk, rls_kit_not_after: notAfter } as never] } },
    });
    const token = kitToken(key, {}, clock.now());
    await expect(v.verify(token)).resolves.toBeDefined();
    clock.advance(61_000);
    await expectCode(v.verify(token), 'ERR_KEY_UNKNOWN');
  });
  it('restricts algorithms with allowedAlgorithms', async () => {
    const es = makeKey('ES256');
    const hs = makeKey('HS256');
    const v = verifierFor([es, hs], { allowedAlgorithms: ['ES256'] });
    await expect(v.verify(kitToken(es))).resolves.toBeDefined();
    await expectCode(v.verify(kitToken(hs)), 'ERR_TOKEN_ALG');
  });
  it('loads keys eagerly with ready()', async () => {
    const key = makeKey('ES256');
    await expect(verifierFor([key]).ready()).resolves.toBeUndefined();
  });
});

describe('createVerifier: configuration errors are ERR_CONFIG', () => {
  const key = makeKey('ES256');
  const keys = { jwks: { keys: [key.jwk] } };
  const cases: [string, Record<string, unknown>][] = [
    ['no issuer', { issuer: '', audience: AUD, keys }],
    ['no audience', { issuer: ISS, audience: [], keys }],
    ['two key sources', { issuer: ISS, audience: AUD, keys: { ...keys, secret: 'x' } }],
    ['no key source', { issuer: ISS, audience: AUD, keys: {} }],
    ['huge tolerance', { issuer: ISS, audience: AUD, keys, clockTolerance: 3600 }],
    ['bad cache', { issuer: ISS, audience: AUD, keys, cache: { max: 0 } }],
    ['unknown alg', { issuer: ISS, audience: AUD, keys, allowedAlgorithms: ['none'] }],
    [
      'jwks url over http',
      { issuer: ISS, audience: AUD, keys: { jwksUrl: 'http://example.com/jwks' } },
    ],
    [
      'jwks ttl under 5 min',
      { issuer: ISS, audience: AUD, keys: { jwksUrl: 'https://x.example/j', cacheTtl: 1000 } },
    ],
    [
      'jwks ttl over 60 min',
      { issuer: ISS, audience: AUD, keys: { jwksUrl: 'https://x.example/j', cacheTtl: 7_200_000 } },
    ],
    ['revocation without isRevoked', { issuer: ISS, audience: AUD, keys, revocation: {} }],
  ];
  for (const [name, options] of cases) {
    it(name, async () => {
      await expectCode(() => createVerifier(options as never), 'ERR_CONFIG');
    });
  }
});

describe('createVerifier: messages', () => {
  it('never contains the token or the secret', async () => {
    const key = makeKey('HS256');
    const v = createVerifier({ issuer: ISS, audience: AUD, keys: { secret: key.secret! } });
    const bad = [
      kitToken(key, { iss: 'https://evil' }),
      kitToken(key, {}, Date.now() - 3_600_000),
      `${kitToken(key).slice(0, -4)}AAAA`,
    ];
    for (const token of bad) {
      try {
        await v.verify(token);
        expect.unreachable();
      } catch (err) {
        const text = `${(err as Error).message} ${JSON.stringify(err)}`;
        expect(text).not.toContain(token.split('.')[1]!.slice(0, 20));
        expect(text).not.toContain(key.secret!.toString('base64url'));
      }
    }
  });
});
