import { describe, expect, it } from 'vitest';
import { createOutcomeCounter, verificationOutcomes } from '../src/tokens/metrics.js';
import type { RevocationCheck } from '../src/tokens/revocation-check.js';
import type { VerifiedClaims } from '../src/tokens/verified-claims.js';
import { createVerifier, type VerifierOptions } from '../src/tokens/verify.js';
import { AUD, expectCode, fakeClock, ISS, kitToken, makeKey, nowSec } from './helpers/tokens.js';

const key = makeKey('ES256');

function verifier(extra: Partial<VerifierOptions> = {}) {
  return createVerifier({
    issuer: ISS,
    audience: AUD,
    keys: { jwks: { keys: [key.jwk] } },
    metricsParent: null,
    ...extra,
  });
}

/** A Set-backed revocation check that counts its calls. */
function denylist() {
  const revoked = new Set<string>();
  const seen: VerifiedClaims[] = [];
  const check: RevocationCheck = {
    isRevoked(claims) {
      seen.push(claims);
      return revoked.has(String(claims.jti));
    },
  };
  return { revoked, seen, check };
}

describe('verification cache', () => {
  it('serves a verified token from the sync fast path, and only after a full verification', async () => {
    const v = verifier();
    const token = kitToken(key);
    expect(v.verifyCached(token)).toBeUndefined();
    const claims = await v.verify(token);
    expect(v.verifyCached(token)).toBe(claims);
    expect(await v.verify(token)).toBe(claims);
  });

  it('answers undefined on the fast path for input that is not a string', () => {
    const v = verifier();
    for (const bad of [undefined, null, 42, {}])
      expect(v.verifyCached(bad as unknown as string)).toBeUndefined();
  });

  it('has no fast path with cache: false', async () => {
    const v = verifier({ cache: false });
    const token = kitToken(key);
    await v.verify(token);
    expect(v.verifyCached(token)).toBeUndefined();
  });

  it('is keyed on the whole token: the same claims with another signature are verified, not served', async () => {
    const v = verifier();
    const token = kitToken(key);
    await v.verify(token);
    const [h, p] = token.split('.');
    const forged = `${h}.${p}.${Buffer.alloc(64, 1).toString('base64url')}`;
    expect(v.verifyCached(forged)).toBeUndefined();
    await expectCode(v.verify(forged), 'ERR_TOKEN_SIGNATURE');
  });

  it('never serves a token that only shares the signature part with a cached one', async () => {
    const v = verifier();
    const token = kitToken(key);
    await v.verify(token);
    const [h, , sig] = token.split('.');
    const payload = Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()),
        role: 'service_role',
      }),
    ).toString('base64url');
    const forged = `${h}.${payload}.${sig}`;
    expect(v.verifyCached(forged)).toBeUndefined();
    await expectCode(v.verify(forged), 'ERR_TOKEN_SIGNATURE');
    expect(v.verifyCached(token)?.role).toBe('authenticated');
  });

  it("expires entries at the token's exp (injected clock)", async () => {
    const clock = fakeClock();
    const v = verifier({ clock: clock.now });
    const exp = nowSec(clock.now()) + 120;
    const token = kitToken(key, { exp }, clock.now());
    await v.verify(token);
    clock.set(exp * 1000 - 1);
    expect(v.verifyCached(token)).toBeDefined();
    clock.set(exp * 1000);
    expect(v.verifyCached(token)).toBeUndefined();
    clock.set(exp * 1000 + 31_000);
    await expectCode(v.verify(token), 'ERR_TOKEN_EXPIRED');
  });

  it('expires entries at iat + maxTokenAge when that comes first', async () => {
    const clock = fakeClock();
    const v = verifier({ clock: clock.now, maxTokenAge: 60 });
    const token = kitToken(key, {}, clock.now());
    await v.verify(token);
    clock.advance(59_000);
    expect(v.verifyCached(token)).toBeDefined();
    clock.advance(2_000);
    expect(v.verifyCached(token)).toBeUndefined();
    clock.advance(30_000);
    await expectCode(v.verify(token), 'ERR_TOKEN_EXPIRED');
  });

  it('is bounded: the least recently used token is evicted', async () => {
    const v = verifier({ cache: { max: 2 } });
    const [a, b, c] = [kitToken(key), kitToken(key), kitToken(key)];
    await v.verify(a);
    await v.verify(b);
    expect(v.verifyCached(a)).toBeDefined(); // a is now the most recent
    await v.verify(c);
    expect(v.verifyCached(b)).toBeUndefined();
    expect(v.verifyCached(a)).toBeDefined();
    expect(v.verifyCached(c)).toBeDefined();
  });

  it('does not cache a token whose nbf is still ahead (within the tolerance)', async () => {
    const v = verifier();
    const token = kitToken(key, { nbf: nowSec() + 20 });
    await v.verify(token);
    expect(v.verifyCached(token)).toBeUndefined();
  });

  it('hands out frozen claims, so one caller cannot change what the next sees', async () => {
    const v = verifier();
    const token = kitToken(key);
    const claims = await v.verify(token);
    expect(() => {
      (claims as Record<string, unknown>).role = 'service_role';
    }).toThrow(TypeError);
    expect(v.verifyCached(token)?.role).toBe('authenticated');
  });
});

describe('revocation check', () => {
  it('runs on every verification, cache hits included', async () => {
    const list = denylist();
    const v = verifier({ revocation: list.check });
    const token = kitToken(key);
    await v.verify(token);
    await v.verify(token);
    v.verifyCached(token);
    expect(list.seen).toHaveLength(3);
    expect(list.seen[0]?.jti).toBeTypeOf('string');
  });

  it('refuses a revoked token on the fast path and the async path, and recovers when un-revoked', async () => {
    const list = denylist();
    const v = verifier({ revocation: list.check });
    const token = kitToken(key);
    const claims = await v.verify(token);
    list.revoked.add(String(claims.jti));
    await expectCode(() => v.verifyCached(token), 'ERR_TOKEN_REVOKED');
    await expectCode(v.verify(token), 'ERR_TOKEN_REVOKED');
    list.revoked.clear();
    expect(v.verifyCached(token)).toBe(claims);
  });

  it('refuses a token revoked before its first verification', async () => {
    const list = denylist();
    const v = verifier({ revocation: list.check });
    const token = kitToken(key, { jti: 'dead' });
    list.revoked.add('dead');
    await expectCode(v.verify(token), 'ERR_TOKEN_REVOKED');
  });

  it('awaits an asynchronous check; the sync fast path then defers to verify()', async () => {
    const revoked = new Set<string>();
    const v = verifier({ revocation: { isRevoked: async (c) => revoked.has(String(c.jti)) } });
    const token = kitToken(key, { jti: 'async-1' });
    await v.verify(token);
    expect(v.verifyCached(token)).toBeUndefined();
    revoked.add('async-1');
    await expectCode(v.verify(token), 'ERR_TOKEN_REVOKED');
  });

  it('fails closed when the check throws, rejects or answers neither true nor false', async () => {
    const token = kitToken(key);
    const checks: RevocationCheck[] = [
      {
        isRevoked() {
          throw new Error('db down');
        },
      },
      { isRevoked: () => Promise.reject(new Error('db down')) },
      { isRevoked: () => undefined as unknown as boolean },
      { isRevoked: () => Promise.resolve('no' as unknown as boolean) },
    ];
    for (const check of checks) {
      const v = verifier({ revocation: check });
      await expectCode(v.verify(token), 'ERR_REVOCATION_UNAVAILABLE');
    }
    // Cached first with a working check, then the check breaks: the cache hit is refused too.
    let broken = false;
    const v = verifier({
      revocation: {
        isRevoked() {
          if (broken) throw new Error('db down');
          return false;
        },
      },
    });
    await v.verify(token);
    broken = true;
    await expectCode(() => v.verifyCached(token), 'ERR_REVOCATION_UNAVAILABLE');
    await expectCode(v.verify(token), 'ERR_REVOCATION_UNAVAILABLE');
  });
});

describe('outcome counters', () => {
  it('counts every outcome by code, cache hits included', async () => {
    const list = denylist();
    const v = verifier({ revocation: list.check });
    const token = kitToken(key);
    await v.verify(token);
    v.verifyCached(token);
    await v.verify(token);
    await v.verify(kitToken(key, {}, Date.now() - 3_600_000)).catch(() => undefined);
    await v.verify('garbage').catch(() => undefined);
    await v.verify(kitToken(key, { iss: 'x' })).catch(() => undefined);
    list.revoked.add(String((await v.verify(token)).jti));
    expect(() => v.verifyCached(token)).toThrow();
    expect(v.metrics()).toEqual({
      ok: 4,
      ERR_TOKEN_EXPIRED: 1,
      ERR_TOKEN_MALFORMED: 1,
      ERR_TOKEN_ISSUER: 1,
      ERR_TOKEN_REVOKED: 1,
    });
  });

  it('adds to the process-wide counter by default and to a given parent', async () => {
    const before = verificationOutcomes.snapshot().ok;
    const parent = createOutcomeCounter(null);
    const shared = verifier({ metricsParent: undefined });
    const child = verifier({ metricsParent: parent });
    const token = kitToken(key);
    await shared.verify(token);
    await child.verify(token);
    await child.verify('x.y.z').catch(() => undefined);
    expect(verificationOutcomes.snapshot().ok).toBe(before + 1);
    expect(parent.snapshot()).toEqual({ ok: 1, ERR_TOKEN_MALFORMED: 1 });
  });
});
