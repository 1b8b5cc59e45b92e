import { createPublicKey, createSecretKey, randomUUID } from 'node:crypto';
import { createVerifier } from 'fast-jwt';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, type JWK, jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { describe, expect, it } from 'vitest';
import { RlsKitError } from '../src/errors.js';
import {
  createKeyring,
  generateKey,
  type Keyring,
  publicJwks,
  SIGNING_ALGS,
  type SigningAlg,
  serializeKeyring,
  signingKey,
} from '../src/keys/index.js';
import { defineClaimSchema } from '../src/tokens/claim-schema.js';
import { exampleClaimSchema } from '../src/tokens/example-claims.js';
import { inspectToken } from '../src/tokens/inspect.js';
import { createMinter } from '../src/tokens/mint.js';

const ISS = 'https://api.example.com';
const AUD = 'authenticated';
const NOW = Date.parse('2025-06-01T12:00:00Z');
const clock = () => NOW;

async function rejects(
  promise: Promise<unknown> | (() => unknown),
  code: string,
): Promise<RlsKitError> {
  let caught: unknown;
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(RlsKitError);
  const err = caught as RlsKitError;
  expect(err.code).toBe(code);
  expect(err.message).not.toContain('\n');
  return err;
}

const rings = new Map<SigningAlg, Keyring>();
async function ring(alg: SigningAlg = 'ES256'): Promise<Keyring> {
  let r = rings.get(alg);
  if (!r) {
    r = createKeyring([await generateKey({ alg })]);
    rings.set(alg, r);
  }
  return r;
}

function example() {
  return { sub: randomUUID(), claims: { org_id: randomUUID(), user_role: 'member' as const } };
}

describe('token shape', () => {
  it('has exactly the kit claims and header', async () => {
    const keyring = await ring();
    const minter = await createMinter({
      keyring,
      issuer: ISS,
      audience: AUD,
      claimSchema: exampleClaimSchema,
      clock,
    });
    const input = example();
    const minted = await minter.issue(input);
    const header = decodeProtectedHeader(minted.token);
    expect(header).toEqual({ alg: 'ES256', kid: keyring.keys[0]?.kid, typ: 'JWT' });
    const claims = decodeJwt(minted.token);
    expect(claims).toEqual({
      iss: ISS,
      sub: input.sub,
      aud: AUD,
      iat: NOW / 1000,
      exp: NOW / 1000 + 600,
      jti: minted.jti,
      role: 'authenticated',
      org_id: input.claims.org_id,
      user_role: 'member',
    });
    expect(minted.exp).toBe(claims.exp);
    expect(minted.kid).toBe(header.kid);
  });

  it('adds sid only when given, honours typ at+jwt, role anon and several audiences', async () => {
    const minter = await createMinter({
      keyring: await ring(),
      issuer: ISS,
      audience: ['a', 'b'],
      typ: 'at+jwt',
      clock,
    });
    const sid = randomUUID();
    const token = await minter.mint({ sub: randomUUID(), sid, role: 'anon' });
    expect(decodeProtectedHeader(token).typ).toBe('at+jwt');
    const claims = decodeJwt(token);
    expect(claims.sid).toBe(sid);
    expect(claims.role).toBe('anon');
    expect(claims.aud).toEqual(['a', 'b']);
    expect(Object.keys(claims).sort()).toEqual([
      'aud',
      'exp',
      'iat',
      'iss',
      'jti',
      'role',
      'sid',
      'sub',
    ]);
    expect('sid' in decodeJwt(await minter.mint({ sub: randomUUID() }))).toBe(false);
    await rejects(minter.mint({ sub: randomUUID(), sid: 'not-a-uuid' }), 'ERR_TOKEN_CLAIMS');
    await rejects(minter.mint({ sub: 'alice' }), 'ERR_TOKEN_CLAIMS');
    const any = await createMinter({
      keyring: await ring(),
      issuer: ISS,
      audience: AUD,
      subject: 'any',
    });
    expect(decodeJwt(await any.mint({ sub: 'service:billing' })).sub).toBe('service:billing');
  });

  it('jti is 128 random bits, base64url (22 chars), unique over 10,000 tokens', async () => {
    const minter = await createMinter({ keyring: await ring('HS256'), issuer: ISS, audience: AUD });
    const sub = randomUUID();
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const { jti } = await minter.issue({ sub });
      expect(jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
      seen.add(jti);
    }
    expect(seen.size).toBe(10_000);
    expect(Buffer.from([...seen][0] as string, 'base64url')).toHaveLength(16);
  });
});

describe('lifetimes', () => {
  it('defaults to 10 minutes, accepts up to maxTtl and refuses more', async () => {
    const keyring = await ring();
    const minter = await createMinter({ keyring, issuer: ISS, audience: AUD, clock });
    const sub = randomUUID();
    const ttlOf = async (ttl?: string | number) => {
      const c = decodeJwt(await minter.mint({ sub, ttl }));
      return (c.exp ?? 0) - (c.iat ?? 0);
    };
    expect(await ttlOf()).toBe(600);
    expect(await ttlOf('1h')).toBe(3600);
    expect(await ttlOf(90)).toBe(90);
    await rejects(minter.mint({ sub, ttl: '61m' }), 'ERR_TOKEN_TTL');
    await rejects(minter.mint({ sub, ttl: 0 }), 'ERR_TOKEN_TTL');
    await rejects(minter.mint({ sub, ttl: 'soon' }), 'ERR_TOKEN_TTL');
    await rejects(minter.mint({ sub, ttl: '1.5h' }), 'ERR_TOKEN_TTL');
  });

  it('refuses a maxTtl over 1h unless allowLongTtl, and a default ttl over maxTtl', async () => {
    const keyring = await ring();
    await rejects(
      createMinter({ keyring, issuer: ISS, audience: AUD, maxTtl: '2h' }),
      'ERR_TOKEN_TTL',
    );
    await rejects(
      createMinter({ keyring, issuer: ISS, audience: AUD, ttl: '2h' }),
      'ERR_TOKEN_TTL',
    );
    await rejects(
      createMinter({ keyring, issuer: ISS, audience: AUD, maxTtl: '5m', ttl: '10m' }),
      'ERR_TOKEN_TTL',
    );
    const long = await createMinter({
      keyring,
      issuer: ISS,
      audience: AUD,
      maxTtl: '1d',
      allowLongTtl: true,
      clock,
    });
    const c = decodeJwt(await long.mint({ sub: randomUUID(), ttl: '2h' }));
    expect((c.exp ?? 0) - (c.iat ?? 0)).toBe(7200);
  });
});

describe('claims', () => {
  it('refuses unknown, reserved and sensitive claims, and mistyped values', async () => {
    const minter = await createMinter({
      keyring: await ring(),
      issuer: ISS,
      audience: AUD,
      claimSchema: exampleClaimSchema,
    });
    const sub = randomUUID();
    const bad = async (claims: Record<string, unknown>) =>
      rejects(minter.mint({ sub, claims: claims as never }), 'ERR_TOKEN_CLAIMS');
    expect((await bad({ plan: 'pro' })).message).toMatch(/"plan" is not in the claim schema/);
    expect((await bad({ email: 'a@example.com' })).message).toMatch(/personal data/);
    expect((await bad({ user_metadata: {} })).message).toMatch(/personal data/);
    for (const name of [
      'home_address',
      'Billing_Address',
      'passphrase',
      'private_key',
      'auth_token',
    ]) {
      expect((await bad({ [name]: 'x' })).message, name).toMatch(/personal data/);
    }
    expect((await bad({ role: 'service_role' })).message).toMatch(/set by the minter/);
    expect((await bad({ exp: 9_999_999_999 })).message).toMatch(/set by the minter/);
    await bad({ org_id: 'acme' });
    await bad({ user_role: 'superuser' });
    await bad({ user_role: 1 });
    const err = await bad({ org_id: 'a@example.com-secret-value' });
    expect(err.message).not.toContain('a@example.com');
    await rejects(
      minter.mint({ sub, claims: JSON.parse('{"__proto__": {"x": 1}}') }),
      'ERR_TOKEN_CLAIMS',
    );
  });

  it('checks the schema itself: reserved, sensitive, unknown types and fields', () => {
    const cfg = (def: unknown) => () => defineClaimSchema(def as never);
    expect(() => cfg({ sub: { type: 'string' } })()).toThrow(/reserved/);
    expect(() => cfg({ session_id: { type: 'uuid' } })()).toThrow(/reserved/);
    expect(() => cfg({ email: { type: 'string' } })()).toThrow(/personal data/);
    expect(() => cfg({ user_email: { type: 'string' } })()).toThrow(/personal data/);
    expect(() => cfg({ Phone_Number: { type: 'string' } })()).toThrow(/personal data/);
    expect(() => cfg({ org_id: { type: 'date' } })()).toThrow(/unknown type/);
    expect(() => cfg({ org_id: { type: 'uuid', requried: true } })()).toThrow(/unknown field/);
    expect(() => cfg({ 'org-id': { type: 'uuid' } })()).toThrow(/not a valid claim name/);
    expect(() => cfg({ tier: { enum: [] } })()).toThrow(/enum/);
    expect(() => cfg([])()).toThrow(/expected an object/);
    for (const f of [cfg({ sub: { type: 'string' } }), cfg({ email: { type: 'string' } })]) {
      try {
        f();
      } catch (err) {
        expect((err as RlsKitError).code).toBe('ERR_CONFIG');
      }
    }
  });

  it('types: string, integer, number, boolean, string-array, required, allowSensitive', async () => {
    const schema = defineClaimSchema({
      tenant: { type: 'string', maxLength: 8, required: true },
      level: { type: 'integer', minimum: 0, maximum: 9 },
      score: { type: 'number' },
      beta: { type: 'boolean' },
      groups: { type: 'string-array', maxItems: 3, enum: ['a', 'b', 'c', 'd'] },
      email: { type: 'string', allowSensitive: true },
    });
    const minter = await createMinter({
      keyring: await ring(),
      issuer: ISS,
      audience: AUD,
      claimSchema: schema,
    });
    const sub = randomUUID();
    const claims = decodeJwt(
      await minter.mint({
        sub,
        claims: {
          tenant: 'acme',
          level: 3,
          score: 1.5,
          beta: true,
          groups: ['a', 'b'],
          email: 'x@y.z',
        },
      }),
    );
    expect(claims).toMatchObject({
      tenant: 'acme',
      level: 3,
      score: 1.5,
      beta: true,
      groups: ['a', 'b'],
      email: 'x@y.z',
    });
    const bad = (c: Record<string, unknown>) =>
      rejects(minter.mint({ sub, claims: c as never }), 'ERR_TOKEN_CLAIMS');
    await bad({});
    await bad({ tenant: 'toolongvalue' });
    await bad({ tenant: 'a', level: 1.5 });
    await bad({ tenant: 'a', level: 10 });
    await bad({ tenant: 'a', score: Number.NaN });
    await bad({ tenant: 'a', beta: 'true' });
    await bad({ tenant: 'a', groups: ['a', 'b', 'c', 'd'] });
    await bad({ tenant: 'a', groups: ['x'] });
    await bad({ tenant: 'a', groups: ['a', 'a'] });
    expect(schema.parseValue('level', '7')).toBe(7);
    expect(schema.parseValue('beta', 'false')).toBe(false);
    expect(schema.parseValue('groups', 'a,c')).toEqual(['a', 'c']);
    expect(() => schema.parseValue('level', 'seven')).toThrow(/integer/);
  });
});

describe('roles', () => {
  it('anon and authenticated only, unless opted in; service_role needs a second opt-in; admin roles never', async () => {
    const keyring = await ring();
    const base = { keyring, issuer: ISS, audience: AUD };
    const minter = await createMinter(base);
    const sub = randomUUID();
    await rejects(minter.mint({ sub, role: 'service_role' }), 'ERR_ROLE_NOT_ALLOWED');
    await rejects(minter.mint({ sub, role: 'reporting' }), 'ERR_ROLE_NOT_ALLOWED');
    await rejects(createMinter({ ...base, allowRoles: ['service_role'] }), 'ERR_ROLE_NOT_ALLOWED');
    for (const role of [
      'postgres',
      'authenticator',
      'supabase_admin',
      'pg_read_all_data',
      'pgsodium_keyholder',
      'cli_login_postgres',
    ]) {
      await rejects(
        createMinter({ ...base, allowRoles: [role], allowServiceRole: true }),
        'ERR_ROLE_NOT_ALLOWED',
      );
    }
    await rejects(createMinter({ ...base, allowRoles: ['Bad Role'] }), 'ERR_CONFIG');
    const reporting = await createMinter({ ...base, allowRoles: ['reporting'] });
    expect(decodeJwt(await reporting.mint({ sub, role: 'reporting' })).role).toBe('reporting');
    const service = await createMinter({
      ...base,
      allowRoles: ['service_role'],
      allowServiceRole: true,
    });
    expect(decodeJwt(await service.mint({ sub, role: 'service_role' })).role).toBe('service_role');
  });
});

describe('size', () => {
  it('the ES256 example token is at most 500 bytes', async () => {
    const minter = await createMinter({
      keyring: await ring('ES256'),
      issuer: 'https://api.example.com',
      audience: 'authenticated',
      claimSchema: exampleClaimSchema,
    });
    let longest = 0;
    for (const user_role of ['owner', 'admin', 'member', 'viewer'] as const) {
      const token = await minter.mint({
        sub: randomUUID(),
        claims: { org_id: randomUUID(), user_role },
      });
      longest = Math.max(longest, token.length);
      expect(Object.keys(decodeJwt(token)).sort()).toEqual(
        ['aud', 'exp', 'iat', 'iss', 'jti', 'org_id', 'role', 'sub', 'user_role'].sort(),
      );
    }
    console.log(
      `ES256 example token: ${longest} bytes (goal ≤ 500; Supabase Auth's default ≈ 940)`,
    );
    expect(longest).toBeLessThanOrEqual(500);
  });

  it('enforces the budget exactly and names the largest claims', async () => {
    const schema = defineClaimSchema({
      note: { type: 'string', maxLength: 2000 },
      org_id: { type: 'uuid' },
    });
    const sub = randomUUID();
    const claims = { note: 'x'.repeat(700), org_id: randomUUID() };
    const make = (sizeBudget: number) =>
      createMinter({
        keyring: rings.get('ES256')!,
        issuer: ISS,
        audience: AUD,
        claimSchema: schema,
        sizeBudget,
        clock,
      });
    const token = await (await make(4096)).mint({ sub, claims });
    // The budget is checked before signing and is exact.
    expect((await (await make(token.length)).mint({ sub, claims })).length).toBe(token.length);
    const err = await rejects(
      (await make(token.length - 1)).mint({ sub, claims }),
      'ERR_TOKEN_SIZE',
    );
    expect(err.message).toMatch(/largest claims: note 709 B, org_id 47 B, sub 44 B/);
    expect(err.message).toContain(`${token.length} bytes`);
    expect(err.message).not.toContain('xxxx');
    // default budget is 1024
    const big = { note: 'x'.repeat(1000), org_id: randomUUID() };
    const minter = await createMinter({
      keyring: rings.get('ES256')!,
      issuer: ISS,
      audience: AUD,
      claimSchema: schema,
    });
    await rejects(minter.mint({ sub, claims: big }), 'ERR_TOKEN_SIZE');
  });
});

describe('weak HS256 keys', () => {
  it('are refused when minting, whichever way the key arrives', async () => {
    const weak = new TextEncoder().encode('0123456789abcdef0123456789abcdef'.slice(0, 20));
    await rejects(
      createMinter({
        signingKey: { kid: 'k1', alg: 'HS256', key: weak },
        issuer: ISS,
        audience: AUD,
      }),
      'ERR_KEY_WEAK',
    );
    const repeated = new TextEncoder().encode('abcd'.repeat(16));
    await rejects(
      createMinter({
        signingKey: { kid: 'k1', alg: 'HS256', key: repeated },
        issuer: ISS,
        audience: AUD,
      }),
      'ERR_KEY_WEAK',
    );
    await rejects(
      createMinter({
        signingKey: { kid: 'k1', alg: 'HS256', key: createSecretKey(Buffer.from('short-secret')) },
        issuer: ISS,
        audience: AUD,
      }),
      'ERR_KEY_WEAK',
    );
    const small = await crypto.subtle.importKey(
      'raw',
      new Uint8Array(16).fill(7),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    await rejects(
      createMinter({
        signingKey: { kid: 'k1', alg: 'HS256', key: small },
        issuer: ISS,
        audience: AUD,
      }),
      'ERR_KEY_WEAK',
    );
    const strong = crypto.getRandomValues(new Uint8Array(32));
    const ok = await createMinter({
      signingKey: { kid: 'k1', alg: 'HS256', key: strong },
      issuer: ISS,
      audience: AUD,
    });
    await jwtVerify(await ok.mint({ sub: randomUUID() }), strong, { algorithms: ['HS256'] });
  });
});

describe('interop: kit tokens verify in jose, jsonwebtoken and fast-jwt', () => {
  it.each(SIGNING_ALGS)('%s', async (alg) => {
    const keyring = await ring(alg);
    const minter = await createMinter({
      keyring,
      issuer: ISS,
      audience: AUD,
      claimSchema: exampleClaimSchema,
    });
    const input = example();
    const token = await minter.mint(input);
    const key = keyring.keys[0]!;

    let joseKey: Parameters<typeof jwtVerify>[1];
    let pem: string | Buffer;
    if (alg === 'HS256') {
      const secret = Buffer.from(key.k ?? '', 'base64url');
      joseKey = new Uint8Array(secret);
      pem = secret;
    } else {
      joseKey = createLocalJWKSet(publicJwks(keyring));
      pem = createPublicKey({
        key: publicJwks(keyring).keys[0] as JWK & { kty: string },
        format: 'jwk',
      })
        .export({ format: 'pem', type: 'spki' })
        .toString();
    }
    const viaJose = await jwtVerify(token, joseKey as never, {
      issuer: ISS,
      audience: AUD,
      algorithms: [alg],
    });
    expect(viaJose.payload.sub).toBe(input.sub);

    const verifyFast = createVerifier({
      key: pem,
      algorithms: [alg],
      allowedIss: ISS,
      allowedAud: AUD,
    });
    expect(verifyFast(token).org_id).toBe(input.claims.org_id);

    if (alg !== 'EdDSA') {
      // jsonwebtoken 9 has no EdDSA; it takes KeyObjects for the rest.
      const keyObject = alg === 'HS256' ? createSecretKey(pem as Buffer) : createPublicKey(pem);
      const viaJwt = jsonwebtoken.verify(token, keyObject, {
        algorithms: [alg],
        issuer: ISS,
        audience: AUD,
      });
      expect((viaJwt as { user_role: string }).user_role).toBe('member');
    }
  });

  it('also with a key handed over as a SigningKey and after a keyring file round trip', async () => {
    const keyring = createKeyring([await generateKey({ alg: 'RS256' })]);
    const reread = createKeyring(JSON.parse(serializeKeyring(keyring)).keys);
    const minter = await createMinter({
      signingKey: await signingKey(reread),
      issuer: ISS,
      audience: AUD,
    });
    await jwtVerify(
      await minter.mint({ sub: randomUUID() }),
      createLocalJWKSet(publicJwks(keyring)),
      {
        algorithms: ['RS256'],
      },
    );
  });
});

describe('configuration errors', () => {
  it('needs exactly one key source, a valid issuer and audience, an active key', async () => {
    const keyring = await ring();
    await rejects(createMinter({ issuer: ISS, audience: AUD }), 'ERR_CONFIG');
    await rejects(
      createMinter({ keyring, signingKey: await signingKey(keyring), issuer: ISS, audience: AUD }),
      'ERR_CONFIG',
    );
    await rejects(createMinter({ keyring, issuer: '', audience: AUD }), 'ERR_CONFIG');
    await rejects(createMinter({ keyring, issuer: 'a b', audience: AUD }), 'ERR_CONFIG');
    await rejects(createMinter({ keyring, issuer: ISS, audience: [] }), 'ERR_CONFIG');
    await rejects(
      createMinter({ keyring, issuer: ISS, audience: AUD, sizeBudget: 10 }),
      'ERR_CONFIG',
    );
    const standby = createKeyring([await generateKey({ state: 'standby' })]);
    await rejects(
      createMinter({ keyring: standby, issuer: ISS, audience: AUD }),
      'ERR_KEY_UNKNOWN',
    );
  });
});

describe('inspectToken', () => {
  it('decodes, marks UNVERIFIED and sizes each claim', async () => {
    const minter = await createMinter({
      keyring: await ring(),
      issuer: ISS,
      audience: AUD,
      claimSchema: exampleClaimSchema,
      clock,
    });
    const token = await minter.mint(example());
    const result = inspectToken(token);
    expect(result.unverified).toBe(true);
    expect(result.header.alg).toBe('ES256');
    expect(result.size.total).toBe(token.length);
    expect(result.size.header + result.size.payload + result.size.signature + 2).toBe(token.length);
    expect(result.size.claims[0]).toEqual({ name: 'org_id', bytes: 47 });
    expect(result.size.claims.map((c) => c.name).sort()).toEqual(Object.keys(result.claims).sort());
    expect(result.times.exp).toBe(new Date(NOW + 600_000).toISOString());
  });

  it('refuses garbage, JWE, JSON serialization and oversized input without echoing it', async () => {
    for (const bad of [
      'garbage',
      'a.b',
      'a.b.c.d.e',
      '{"payload":"x"}',
      'eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig',
      '\u0000\u0001.\u0002.x',
      '..',
    ]) {
      const err = await rejects(() => inspectToken(bad), 'ERR_TOKEN_MALFORMED');
      if (bad.length > 4) expect(err.message).not.toContain(bad);
    }
    await rejects(() => inspectToken('a'.repeat(70_000)), 'ERR_TOKEN_TOO_LARGE');
  });
});
