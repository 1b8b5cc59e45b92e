import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createKeyring,
  generateKey,
  type Keyring,
  readKeyringFile,
  rotate,
  writeKeyringFile,
} from '../src/keys/index.js';
import type { RotationChange } from '../src/keys/rotate.js';
import { startTokenService, type TokenService } from '../src/server/start-token-service.js';
import { createVerifier } from '../src/tokens/verify.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/**
 * Issue 7 item 3: key rotation without a single failed verification.
 *
 * A real token service on a test database, its built-in rotation schedule
 * (`keyRotation`) on short windows: a key signs 3 s, a new key is published
 * 3 s before it signs (at least the verifiers' 1 s JWKS cache) and a
 * retired key verifies 10 s access tokens + 1 s tolerance. Meanwhile tokens are
 * minted continuously by the service's own minter and each is verified
 * three ways over real HTTP: jose's `createRemoteJWKSet` on the service's
 * JWKS, the kit's remote-JWKS verifier, and the service itself
 * (`GET /api/documents`, 200 under RLS); older tokens are verified again
 * until they expire, so retired keys are exercised too. Across ≥ 2
 * rotations: zero failures. A control verifier that caches the JWKS far
 * longer than the window must fail — proof the test can see a bad schedule.
 */
const ISS = 'https://rotation.rls-kit.test';
const AUD = 'authenticated';
const CAROL = 'b0000000-0000-4000-8000-000000000003'; // Acme member (seed)
const ACME = 'a0000000-0000-4000-8000-000000000001';
const TTL = 10;

let db: TestDatabase;
let dir: string;
let keysFile: string;
let service: TokenService;
const logs: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase({ template: 'example' });
  dir = await mkdtemp(join(tmpdir(), 'rls-kit-rotation-'));
  keysFile = join(dir, 'keys.json');
  const ring: Keyring = (await rotate(createKeyring([await generateKey()]))).keyring;
  await writeKeyringFile(keysFile, ring);
  service = await startTokenService({
    databaseUrl: db.url,
    keysFile,
    port: 0,
    issuer: ISS,
    audience: AUD,
    accessTokenTtl: TTL,
    rateLimit: false,
    keyRotation: { every: 3, jwksCacheWindow: 2, clockTolerance: 1, maxCheckIntervalMs: 200 },
    logger: pino(
      { level: 'info' },
      new Writable({
        write(chunk, _e, done) {
          logs.push(String(chunk));
          done();
        },
      }),
    ),
  });
}, 120_000);

/** The schedule's changes, as the service logged them (`event: key_rotation`). */
function changes(): RotationChange[] {
  return logs
    .flatMap((chunk) => chunk.split('\n'))
    .filter((l) => l.includes('"key_rotation"'))
    .map((l) => JSON.parse(l) as RotationChange & { event: string })
    .filter((l) => l.event === 'key_rotation');
}

afterAll(async () => {
  await service?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('key rotation under load', () => {
  it('rotates twice or more while tokens are minted and verified continuously: zero failed verifications', async () => {
    const jwksUrl = new URL(`${service.url}/.well-known/jwks.json`);
    const jose = createRemoteJWKSet(jwksUrl, { cacheMaxAge: 1000, cooldownDuration: 1000 });
    const control = createRemoteJWKSet(jwksUrl, { cacheMaxAge: 60_000, cooldownDuration: 60_000 });
    const kit = createVerifier({
      issuer: ISS,
      audience: AUD,
      keys: { jwksUrl: jwksUrl.href, cooldown: 1000 },
      clockTolerance: 1,
    });
    const options = { issuer: ISS, audience: AUD, algorithms: ['ES256'] };
    await jwtVerify(await mint(), control, options); // the control caches the JWKS as of now

    const failures: string[] = [];
    const counts = {
      minted: 0,
      jose: 0,
      kit: 0,
      service: 0,
      reverified: 0,
      control: 0,
      controlFailed: 0,
    };
    const kids = new Set<string>();
    const recent: { token: string; exp: number }[] = [];
    const verifyAll = async (token: string, label: string) => {
      const checks: [keyof typeof counts, () => Promise<unknown>][] = [
        ['jose', () => jwtVerify(token, jose, options)],
        ['kit', () => kit.verify(token)],
        [
          'service',
          async () => {
            const res = await fetch(`${service.url}/api/documents?limit=1`, {
              headers: { authorization: `Bearer ${token}` },
            });
            const body = await res.text();
            if (res.status !== 200) throw new Error(`HTTP ${res.status} ${body}`);
            if ((JSON.parse(body) as { org_id: string }[])[0]?.org_id !== ACME)
              throw new Error('wrong rows');
          },
        ],
      ];
      await Promise.all(
        checks.map(async ([name, check]) => {
          try {
            await check();
            counts[name]++;
          } catch (err) {
            const kid = decodeProtectedHeader(token).kid;
            failures.push(
              `${label} ${name} kid ${kid}: ${err instanceof Error ? err.message : err}`,
            );
          }
        }),
      );
    };

    const promotions = () => changes().filter((c) => c.action === 'promoted').length;
    const drops = () => changes().filter((c) => c.action === 'dropped').length;
    const started = Date.now();
    const until = started + 40_000;
    let stopAt = Number.POSITIVE_INFINITY;
    const worker = async () => {
      while (Date.now() < Math.min(until, stopAt)) {
        const token = await mint();
        counts.minted++;
        kids.add(decodeProtectedHeader(token).kid!);
        recent.push({ token, exp: Date.now() / 1000 + TTL });
        await verifyAll(token, 'fresh');
        // an older token, until shortly before it expires: retired keys must keep verifying it
        const live = recent.filter((r) => r.exp - 2 > Date.now() / 1000);
        const old = live[Math.floor(Math.random() * Math.min(live.length, 20))];
        if (old) {
          await verifyAll(old.token, 'older');
          counts.reverified++;
        }
        try {
          await jwtVerify(token, control, options);
          counts.control++;
        } catch {
          counts.controlFailed++;
        }
        if (promotions() >= 3 && drops() >= 1 && stopAt === Number.POSITIVE_INFINITY) {
          stopAt = Date.now() + 1000; // a little past the last change
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);

    const summary = {
      seconds: Math.round((Date.now() - started) / 100) / 10,
      promotions: promotions(),
      retired: changes().filter((c) => c.action === 'retired').length,
      dropped: drops(),
      signingKids: kids.size,
      ...counts,
      failures: failures.length,
    };
    console.log(`rotation under load: ${JSON.stringify(summary)}`);
    expect(failures.slice(0, 5)).toEqual([]);
    expect(promotions()).toBeGreaterThanOrEqual(2);
    expect(drops()).toBeGreaterThanOrEqual(1);
    expect(kids.size).toBeGreaterThanOrEqual(3); // tokens really were signed by ≥ 3 keys
    expect(counts.minted).toBeGreaterThan(100);
    expect(counts.reverified).toBeGreaterThan(50);
    // A verifier caching the JWKS longer than the window does fail: the test can see it.
    expect(counts.controlFailed).toBeGreaterThan(0);

    // The keyring on disk is private; the JWKS serves every key that signs or is about to
    // (read first: a key active or standby then is at worst retired, still published, by the fetch).
    expect((await stat(keysFile)).mode & 0o777).toBe(0o600);
    const ring = service.service.keys.keyring();
    const onDisk = (await readKeyringFile(keysFile)).keyring;
    const live = [ring, onDisk].flatMap((r) =>
      r.keys.filter((k) => k.rls_kit_state !== 'retired').map((k) => k.kid),
    );
    // The rotation writes the file, then swaps the service's keyring: a key
    // read from the file a moment before the swap is served right after it.
    let served: { keys: { kid: string; d?: string }[] } = { keys: [] };
    for (let attempt = 0; attempt < 20; attempt++) {
      const res = await fetch(jwksUrl);
      expect(res.headers.get('cache-control')).toMatch(/max-age=\d+/);
      served = (await res.json()) as typeof served;
      if (live.every((kid) => served.keys.some((k) => k.kid === kid))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(served.keys.map((k) => k.kid)).toEqual(expect.arrayContaining(live));
    expect(served.keys.some((k) => k.d !== undefined)).toBe(false);
    // No key material in the logs.
    const text = logs.join('');
    for (const k of ring.keys) expect(text).not.toContain(k.d!);
  }, 90_000);
});

function mint(): Promise<string> {
  return service.service.keys
    .minter()
    .mint({ sub: CAROL, claims: { org_id: ACME, user_role: 'member' } });
}
