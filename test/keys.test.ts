import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompactSign,
  type CryptoKey,
  calculateJwkThumbprint,
  compactVerify,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose';
import { describe, expect, it } from 'vitest';
import { RlsKitError } from '../src/errors.js';
import {
  createKeyring,
  generateKey,
  importHmacSecret,
  importKeys,
  type Keyring,
  type KeyringKey,
  parseKeyring,
  publicJwks,
  readKeyringFile,
  rotate,
  SIGNING_ALGS,
  serializeKeyring,
  signingKey,
  thumbprintKid,
  toVerificationKeys,
  writeKeyringFile,
} from '../src/keys/index.js';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'] as const;
const ALLOWED_PUBLIC = new Set(['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use']);

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

/** Every secret member value of a key, to check messages and exports never contain them. */
function secretsOf(jwk: JWK): string[] {
  return PRIVATE_MEMBERS.map((m) => jwk[m]).filter((v): v is string => typeof v === 'string');
}

describe('generateKey', () => {
  it.each(SIGNING_ALGS)(
    '%s: kid is the first 11 chars of the RFC 7638 thumbprint, alg and use set',
    async (alg) => {
      const key = await generateKey({ alg });
      expect(key.alg).toBe(alg);
      expect(key.use).toBe('sig');
      expect(key.rls_kit_state).toBe('active');
      const thumbprint = await calculateJwkThumbprint(key, 'sha256');
      expect(key.kid).toBe(thumbprint.slice(0, 11));
      expect(key.kid).toHaveLength(11);
      expect(await thumbprintKid(key)).toBe(key.kid);
      expect(key.key_ops).toBeUndefined();
    },
  );

  it('produces unique kids and the expected key types', async () => {
    const kids = new Set<string>();
    for (let i = 0; i < 25; i++) kids.add((await generateKey()).kid);
    expect(kids.size).toBe(25);
    expect((await generateKey()).kty).toBe('EC');
    expect((await generateKey()).crv).toBe('P-256');
    expect((await generateKey({ alg: 'EdDSA' })).crv).toBe('Ed25519');
    const rsa = await generateKey({ alg: 'RS256' });
    expect(Buffer.from(rsa.n ?? '', 'base64url').length * 8).toBe(2048);
    const hs = await generateKey({ alg: 'HS256' });
    expect(Buffer.from(hs.k ?? '', 'base64url').length).toBeGreaterThanOrEqual(32);
  });

  it('refuses RSA under 2048 bits and honours an explicit kid', async () => {
    await rejects(generateKey({ alg: 'RS256', modulusLength: 1024 }), 'ERR_KEY_WEAK');
    expect((await generateKey({ kid: 'my-key.1' })).kid).toBe('my-key.1');
    await rejects(generateKey({ kid: '../etc/passwd' }), 'ERR_KEY_INVALID');
    await rejects(generateKey({ kid: "x' or 1=1--" }), 'ERR_KEY_INVALID');
  });
});

describe('round trips', () => {
  it.each(SIGNING_ALGS)(
    '%s: generate → file text → parse → sign → verify with exported keys',
    async (alg) => {
      const key = await generateKey({ alg });
      const text = serializeKeyring(createKeyring([key]));
      const ring = parseKeyring(text);
      expect(ring.keys[0]).toEqual(key);

      const sk = await signingKey(ring);
      expect(sk.kid).toBe(key.kid);
      const token = await new SignJWT({ sub: 'x' })
        .setProtectedHeader({ alg, kid: sk.kid })
        .setExpirationTime('1m')
        .sign(sk.key);

      const [vk] = await toVerificationKeys(ring);
      expect(vk?.kid).toBe(key.kid);
      expect(vk?.alg).toBe(alg);
      expect(
        (await jwtVerify(token, vk!.key as CryptoKey, { algorithms: [alg] })).payload.sub,
      ).toBe('x');

      if (alg !== 'HS256') {
        // The public JWKS verifies on its own, and re-imports with the same kid.
        const jwks = publicJwks(ring);
        expect(jwks.keys).toHaveLength(1);
        await jwtVerify(token, createLocalJWKSet(jwks), { algorithms: [alg] });
        const [reimported] = await importKeys(JSON.stringify(jwks));
        expect(reimported?.kid).toBe(key.kid);
        expect(reimported?.rls_kit_state).toBe('standby');
        expect(reimported?.d).toBeUndefined();
      }
      // The private JWK re-imports with the same kid, active.
      const [again] = await importKeys(JSON.stringify(key));
      expect(again?.kid).toBe(key.kid);
      expect(again?.rls_kit_state).toBe('active');
    },
  );

  it('verification keys carry public halves only', async () => {
    for (const alg of ['ES256', 'RS256', 'EdDSA'] as const) {
      const [vk] = await toVerificationKeys(createKeyring([await generateKey({ alg })]));
      expect((vk!.key as CryptoKey).type).toBe('public');
      expect((vk!.key as CryptoKey).extractable).toBe(false);
    }
    const [hs] = await toVerificationKeys(createKeyring([await generateKey({ alg: 'HS256' })]));
    expect((hs!.key as CryptoKey).type).toBe('secret');
    expect((hs!.key as CryptoKey).usages).toEqual(['verify']);
  });
});

describe('importKeys from PEM', () => {
  const cases = [
    ['ES256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['RS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['EdDSA', () => generateKeyPairSync('ed25519')],
  ] as const;

  it.each(cases)('%s: PKCS#8 private and SPKI public, alg inferred', async (alg, make) => {
    const { privateKey, publicKey } = make();
    const pkcs8 = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    const spki = publicKey.export({ format: 'pem', type: 'spki' }) as string;

    const [priv] = await importKeys(pkcs8);
    expect(priv?.alg).toBe(alg);
    expect(priv?.rls_kit_state).toBe('active');
    expect(priv?.kid).toBe((await calculateJwkThumbprint(priv!)).slice(0, 11));

    const [pub] = await importKeys(spki);
    expect(pub?.kid).toBe(priv?.kid);
    expect(pub?.rls_kit_state).toBe('standby');
    expect(pub?.d).toBeUndefined();

    // Signed with the imported private key, verified with the imported public key.
    const ring = createKeyring([priv]);
    const sk = await signingKey(ring);
    const jws = await new CompactSign(new TextEncoder().encode('hi'))
      .setProtectedHeader({ alg })
      .sign(sk.key);
    const [vk] = await toVerificationKeys(createKeyring([pub]));
    await compactVerify(jws, vk!.key as CryptoKey, { algorithms: [alg] });

    // an explicit alg must match the key
    expect((await importKeys(pkcs8, { alg }))[0]?.kid).toBe(priv?.kid);
    await rejects(
      importKeys(pkcs8, { alg: alg === 'ES256' ? 'RS256' : 'ES256' }),
      'ERR_KEY_INVALID',
    );
  });

  it('reads SEC1 and PKCS#1 private keys too', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const sec1 = ec.export({ format: 'pem', type: 'sec1' }) as string;
    expect((await importKeys(sec1))[0]?.alg).toBe('ES256');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const pkcs1 = rsa.export({ format: 'pem', type: 'pkcs1' }) as string;
    expect((await importKeys(pkcs1))[0]?.alg).toBe('RS256');
  });

  it('refuses unsupported, encrypted, small and broken PEM keys without echoing them', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    }) as string;
    await rejects(importKeys(p384), 'ERR_KEY_INVALID');

    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const smallPem = small.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    const weak = await rejects(importKeys(smallPem), 'ERR_KEY_WEAK');
    expect(weak.message).toMatch(/1024-bit/);
    await rejects(
      importKeys(small.publicKey.export({ format: 'pem', type: 'spki' }) as string),
      'ERR_KEY_WEAK',
    );

    const encrypted = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      format: 'pem',
      type: 'pkcs8',
      cipher: 'aes-256-cbc',
      passphrase: 'pw',
    }) as string;
    expect((await rejects(importKeys(encrypted), 'ERR_KEY_INVALID')).message).toMatch(/encrypted/);

    const broken = `-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n`;
    const err = await rejects(importKeys(broken), 'ERR_KEY_INVALID');
    expect(err.message).not.toContain('MIGHAgEA');
  });
});

/** Go's big.Int.Bytes() drops leading zero bytes; reproduce that. */
function goBytes(b64: string): string {
  const raw = Buffer.from(b64, 'base64url');
  let i = 0;
  while (i < raw.length - 1 && raw[i] === 0) i++;
  return raw.subarray(i).toString('base64url');
}

/** A key shaped exactly like `supabase gen signing-key` output (internal/gen/signingkeys). */
async function supabaseSigningKey(
  alg: 'ES256' | 'RS256',
): Promise<{ printed: Record<string, unknown>; original: JWK }> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const original = await exportJWK(privateKey);
  const members = alg === 'ES256' ? ['x', 'y', 'd'] : ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'];
  const printed: Record<string, unknown> = {
    kty: original.kty,
    kid: randomUUID(),
    use: 'sig',
    key_ops: ['sign', 'verify'],
    alg,
    ext: true,
  };
  if (alg === 'ES256') printed.crv = 'P-256';
  const raw = original as Record<string, unknown>;
  for (const m of members) printed[m] = goBytes(raw[m] as string);
  return { printed, original };
}

describe('importKeys from `supabase gen signing-key`', () => {
  it.each(['ES256', 'RS256'] as const)(
    '%s: one JWK on stdout → active key keeping its uuid kid',
    async (alg) => {
      const { printed, original } = await supabaseSigningKey(alg);
      const [key] = await importKeys(`${JSON.stringify(printed)}\n`);
      expect(key?.kid).toBe(printed.kid);
      expect(key?.alg).toBe(alg);
      expect(key?.rls_kit_state).toBe('active');
      expect(key?.key_ops).toBeUndefined();
      expect(key?.ext).toBeUndefined();
      // a token minted with it verifies with the original public key
      const sk = await signingKey(createKeyring([key]));
      const token = await new SignJWT({}).setProtectedHeader({ alg, kid: sk.kid }).sign(sk.key);
      const { alg: _a, d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = original;
      await jwtVerify(token, createLocalJWKSet({ keys: [{ ...pub, kid: printed.kid as string }] }));
      // thumbprint policy re-derives
      const [rederived] = await importKeys(printed, { kid: 'thumbprint' });
      expect(rederived?.kid).toBe((await calculateJwkThumbprint(original)).slice(0, 11));
    },
  );

  it('the signing_keys_path file (a JSON array) → standby keys; the array order is kept', async () => {
    const a = await supabaseSigningKey('ES256');
    const b = await supabaseSigningKey('RS256');
    const keys = await importKeys(JSON.stringify([a.printed, b.printed], null, 2));
    expect(keys.map((k) => k.kid)).toEqual([a.printed.kid, b.printed.kid]);
    expect(keys.every((k) => k.rls_kit_state === 'standby')).toBe(true);
    // a standby-only keyring gets an active key on its first rotation
    const { keyring } = await rotate(createKeyring(keys));
    expect(keyring.keys.find((k) => k.rls_kit_state === 'active')?.kid).toBe(a.printed.kid);
  });

  it('pads EC members that lost leading zero bytes (Go big.Int encoding)', async () => {
    // Find a key with a leading zero in x, y or d (about 1 in 85).
    for (let attempt = 0; attempt < 4000; attempt++) {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const jwk = await exportJWK(privateKey);
      const short = (['x', 'y', 'd'] as const).filter(
        (m) => Buffer.from(jwk[m] as string, 'base64url')[0] === 0,
      );
      if (short.length === 0) continue;
      const printed = { ...jwk, kid: randomUUID(), alg: 'ES256' };
      for (const m of short) (printed as Record<string, unknown>)[m] = goBytes(jwk[m] as string);
      const [key] = await importKeys(printed);
      for (const m of ['x', 'y', 'd'] as const) expect(key?.[m]).toBe(jwk[m]);
      return;
    }
    throw new Error('no key with a leading zero byte found');
  });
});

describe('importKeys refusals', () => {
  it('refuses wrong formats with one-line ERR_KEY_INVALID that never echo material', async () => {
    const key = await generateKey();
    const secrets = secretsOf(key);
    const bad: unknown[] = [
      'not a key',
      '{"kty": "EC"',
      '{}',
      '[]',
      { keys: 'x' },
      { ...key, kty: 'XYZ' },
      { ...key, crv: 'P-384' },
      { ...key, d: 'not*base64' },
      { ...key, use: 'enc' },
      { ...key, key_ops: ['encrypt'] },
      { ...key, alg: 'RS256' },
      { ...key, x: undefined },
      // halves that do not belong together
      { ...key, d: (await generateKey()).d },
    ];
    for (const input of bad) {
      const err = await rejects(importKeys(input as string), 'ERR_KEY_INVALID');
      for (const s of secrets) expect(err.message).not.toContain(s);
      expect(err.message).not.toContain(key.x);
    }
  });

  it('refuses RSA JWKs under 2048 bits and incomplete RSA private keys', async () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    await rejects(importKeys(small.export({ format: 'jwk' }) as object), 'ERR_KEY_WEAK');
    const rsa = await generateKey({ alg: 'RS256' });
    await rejects(importKeys({ ...rsa, p: undefined }), 'ERR_KEY_INVALID');
  });

  it('refuses weak HS256 secrets on import (JWK, raw secret, keyring file)', async () => {
    const short = Buffer.from('0123456789abcdef').toString('base64url');
    await rejects(importKeys({ kty: 'oct', k: short }), 'ERR_KEY_WEAK');
    const repeated = Buffer.from('ab'.repeat(32)).toString('base64url');
    await rejects(importKeys({ kty: 'oct', k: repeated, alg: 'HS256' }), 'ERR_KEY_WEAK');
    await rejects(importHmacSecret('secret'), 'ERR_KEY_WEAK');
    await rejects(
      importHmacSecret('super-secret-jwt-token-with-at-least-32-characters-long'),
      'ERR_KEY_WEAK',
    );
    await rejects(importHmacSecret('a'.repeat(64)), 'ERR_KEY_WEAK');
    const good = await generateKey({ alg: 'HS256' });
    const text = serializeKeyring(createKeyring([good])).replace(good.k as string, repeated);
    await rejects(() => parseKeyring(text), 'ERR_KEY_WEAK');
    // a strong raw secret is taken as its UTF-8 bytes, like Supabase does
    const secret = 'Kq8vX2mN7pR4tY1wZ6bC3dF9gH5jL0sA';
    const imported = await importHmacSecret(secret);
    expect(Buffer.from(imported.k ?? '', 'base64url').toString('utf8')).toBe(secret);
  });
});

describe('public JWKS', () => {
  it('never contains private or symmetric material, and leaves HS256 keys out', async () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    const keys: KeyringKey[] = [];
    for (const alg of SIGNING_ALGS) keys.push(await generateKey({ alg, state: 'standby' }));
    keys[0]!.rls_kit_state = 'active';
    const retired = await generateKey({ alg: 'RS256', state: 'retired' });
    retired.rls_kit_not_after = new Date(now + 60_000).toISOString();
    keys.push(retired);
    const ring = createKeyring(keys);
    const jwks = publicJwks(ring, { now });
    expect(jwks.keys.map((k) => k.alg).sort()).toEqual(['ES256', 'EdDSA', 'RS256', 'RS256']);
    for (const key of jwks.keys) {
      for (const member of Object.keys(key)) expect(ALLOWED_PUBLIC.has(member), member).toBe(true);
      for (const m of PRIVATE_MEMBERS) expect(key[m]).toBeUndefined();
      expect(key.kid).toMatch(/^[A-Za-z0-9_-]{11}$/);
      expect(key.use).toBe('sig');
    }
    const text = JSON.stringify(jwks);
    for (const key of keys) for (const s of secretsOf(key)) expect(text).not.toContain(s);
    // unknown members in a key never leak either
    const sneaky = { ...keys[1]!, x5c: ['secret-cert'], note: 'private' } as KeyringKey;
    expect(JSON.stringify(publicJwks(createKeyring([sneaky])))).not.toMatch(/secret-cert|private/);
    // a retired key past rls_kit_not_after is gone
    expect(publicJwks(ring, { now: now + 60_000 }).keys.map((k) => k.kid)).not.toContain(
      retired.kid,
    );
  });
});

describe('keyring invariants', () => {
  it('refuses two active keys, duplicate kids, retired keys without not_after, unknown state members', async () => {
    const a = await generateKey();
    const b = await generateKey();
    await rejects(() => createKeyring([a, b]), 'ERR_KEY_INVALID');
    await rejects(
      () => createKeyring([a, { ...b, kid: a.kid, rls_kit_state: 'standby' }]),
      'ERR_KEY_INVALID',
    );
    await rejects(() => createKeyring([{ ...a, rls_kit_state: 'retired' }]), 'ERR_KEY_INVALID');
    await rejects(() => createKeyring([{ ...a, rls_kit_not_afer: 'x' }]), 'ERR_KEY_INVALID');
    await rejects(() => createKeyring([{ ...a, rls_kit_state: 'on' }]), 'ERR_KEY_INVALID');
    await rejects(
      () => createKeyring([{ ...a, rls_kit_created_at: 'yesterday' }]),
      'ERR_KEY_INVALID',
    );
    await rejects(() => createKeyring([]), 'ERR_KEY_INVALID');
    const { d: _d, ...pub } = a;
    await rejects(() => createKeyring([pub]), 'ERR_KEY_INVALID'); // active without private part
  });

  it('parseKeyring explains what it found instead', async () => {
    const key = await generateKey();
    expect((await rejects(() => parseKeyring('nope'), 'ERR_KEY_INVALID')).message).toMatch(
      /not JSON/,
    );
    expect(
      (await rejects(() => parseKeyring(JSON.stringify(key)), 'ERR_KEY_INVALID')).message,
    ).toMatch(/single JWK/);
    const pem = generateKeyPairSync('ed25519').privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    }) as string;
    expect((await rejects(() => parseKeyring(pem), 'ERR_KEY_INVALID')).message).toMatch(/PEM/);
    await rejects(() => parseKeyring('[1,2]'), 'ERR_KEY_INVALID');
  });

  it('signingKey needs an active key', async () => {
    const standby = await generateKey({ state: 'standby' });
    await rejects(signingKey(createKeyring([standby])), 'ERR_KEY_UNKNOWN');
  });
});

describe('keyring files', () => {
  it('are written atomically with mode 0600 and read back; exposure and absence reported', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rls-kit-keys-'));
    const file = join(dir, 'keys.json');
    const ring = createKeyring([await generateKey()]);
    await writeKeyringFile(file, ring);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['keys.json']);
    const read = await readKeyringFile(file);
    expect(read.keyring).toEqual(ring);
    expect(read.exposed).toBe(false);

    await writeFile(join(dir, 'open.json'), await readFile(file), { mode: 0o644 });
    expect((await readKeyringFile(join(dir, 'open.json'))).exposed).toBe(true);

    const missing = await rejects(readKeyringFile(join(dir, 'none.json')), 'ERR_KEY_INVALID');
    expect(missing.message).toMatch(/does not exist/);
    await writeFile(join(dir, 'bad.json'), 'garbage');
    await rejects(readKeyringFile(join(dir, 'bad.json')), 'ERR_KEY_INVALID');
    await rejects(readKeyringFile(dir), 'ERR_KEY_INVALID');
  });
});

describe('rotate (fake clock)', () => {
  const t0 = Date.parse('2025-01-01T00:00:00Z');
  const min = 60_000;
  const states = (ring: Keyring) => ring.keys.map((k) => `${k.kid}:${k.rls_kit_state}`);

  it('standby → active → retired → dropped on schedule', async () => {
    const a = await generateKey({ now: new Date(t0) });
    const ring0 = createKeyring([a]);
    const opts = { tokenTtl: '10m', jwksCacheTtl: '1h', clockTolerance: '30s' } as const;

    // 1. adds a standby key, nothing else
    const r1 = await rotate(ring0, { ...opts, now: t0 + min });
    expect(r1.changes.map((c) => c.action)).toEqual(['added']);
    const b = r1.keyring.keys[1]!;
    expect(b.rls_kit_state).toBe('standby');
    expect(b.rls_kit_created_at).toBe(new Date(t0 + min).toISOString());
    expect(ring0.keys).toHaveLength(1); // input untouched
    // the standby key is published but does not sign
    expect(publicJwks(r1.keyring, { now: t0 + min }).keys.map((k) => k.kid)).toEqual([
      a.kid,
      b.kid,
    ]);
    expect((await signingKey(r1.keyring)).kid).toBe(a.kid);

    // 2. before the JWKS cache window has passed: nothing happens
    const r2 = await rotate(r1.keyring, { ...opts, now: t0 + min + 59 * min });
    expect(r2.changes).toEqual([]);
    expect(states(r2.keyring)).toEqual(states(r1.keyring));

    // 3. once published for the full window: promoted; old active retired until now + ttl + tolerance
    const t3 = t0 + min + 60 * min;
    const r3 = await rotate(r2.keyring, { ...opts, now: t3 });
    const notAfter = new Date(t3 + 10 * min + 30_000).toISOString();
    expect(r3.changes.slice(0, 2)).toEqual([
      { action: 'retired', kid: a.kid, alg: 'ES256', notAfter },
      { action: 'promoted', kid: b.kid, alg: 'ES256' },
    ]);
    expect(r3.changes[2]?.action).toBe('added');
    const c = r3.keyring.keys[2]!;
    expect(states(r3.keyring)).toEqual([`${a.kid}:retired`, `${b.kid}:active`, `${c.kid}:standby`]);
    expect(r3.keyring.keys[0]?.rls_kit_not_after).toBe(notAfter);
    expect((await signingKey(r3.keyring)).kid).toBe(b.kid);

    // the retired key still verifies until not_after, then not
    const before = await toVerificationKeys(r3.keyring, { now: Date.parse(notAfter) - 1 });
    expect(before.map((k) => k.kid)).toContain(a.kid);
    expect(before.find((k) => k.kid === a.kid)?.notAfter).toBe(Date.parse(notAfter) / 1000);
    const after = await toVerificationKeys(r3.keyring, { now: Date.parse(notAfter) });
    expect(after.map((k) => k.kid)).toEqual([b.kid, c.kid]);

    // 4. at not_after the retired key is dropped; c is still too young to promote
    const r4 = await rotate(r3.keyring, { ...opts, now: Date.parse(notAfter) });
    expect(r4.changes).toEqual([{ action: 'dropped', kid: a.kid, alg: 'ES256' }]);
    expect(states(r4.keyring)).toEqual([`${b.kid}:active`, `${c.kid}:standby`]);
  });

  it('keeps the active key’s algorithm for new standby keys unless told otherwise', async () => {
    const ring = createKeyring([await generateKey({ alg: 'EdDSA', now: new Date(t0) })]);
    expect((await rotate(ring, { now: t0 })).keyring.keys[1]?.alg).toBe('EdDSA');
    expect((await rotate(ring, { now: t0, alg: 'RS256' })).keyring.keys[1]?.alg).toBe('RS256');
  });

  it('never promotes a public-only key', async () => {
    const active = await generateKey({ now: new Date(t0) });
    const { d: _d, ...pub } = await generateKey({ now: new Date(t0), state: 'standby' });
    const ring = createKeyring([active, pub]);
    const r = await rotate(ring, { now: t0 + 24 * 60 * min });
    expect(r.changes.map((c) => c.action)).toEqual(['added']);
    expect((await signingKey(r.keyring)).kid).toBe(active.kid);
  });
});
