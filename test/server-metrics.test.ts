import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { register as globalRegistry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKeyring, generateKey, publicJwks, writeKeyringFile } from '../src/keys/index.js';
import { createAlertDetector } from '../src/server/alerts.js';
import { createServiceMetrics } from '../src/server/metrics.js';
import { startTokenService } from '../src/server/start-token-service.js';
import { verificationOutcomes } from '../src/tokens/metrics.js';
import { createMinter, type Minter } from '../src/tokens/mint.js';
import { createVerifier } from '../src/tokens/verify.js';
import { createTestDatabase } from './helpers/db.js';

const ISS = 'https://issuer.test';
const AUD = 'authenticated';
const SUB = '2d0c8a4e-7a5b-4f0e-9b1c-3d2e1f0a9b8c';

/** The value of one sample line in a Prometheus exposition, or undefined when absent. */
function sample(
  body: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  const head = want ? `${name}{${want}}` : name;
  for (const line of body.split('\n')) {
    if (line.startsWith(`${head} `)) return Number(line.slice(head.length + 1));
  }
  return undefined;
}

let minter: Minter;
let foreign: Minter;
let jwks: ReturnType<typeof publicJwks>;

beforeAll(async () => {
  const ring = createKeyring([await generateKey()]);
  jwks = publicJwks(ring);
  minter = await createMinter({ keyring: ring, issuer: ISS, audience: AUD });
  foreign = await createMinter({
    keyring: createKeyring([await generateKey()]),
    issuer: ISS,
    audience: AUD,
  });
});

describe('service metrics', () => {
  it('counts a real verifier’s outcomes through metricsParent, on its own registry, and still adds to the process-wide totals', async () => {
    const metrics = createServiceMetrics({ processMetrics: false });
    const verifier = createVerifier({
      issuer: ISS,
      audience: AUD,
      keys: { jwks },
      metricsParent: metrics.verifierOutcomes,
    });
    const before = verificationOutcomes.snapshot();
    const good = await minter.mint({ sub: SUB });
    await verifier.verify(good);
    expect(verifier.verifyCached(good)).toBeDefined(); // the cached fast path counts too
    const expired = await minter.mint({ sub: SUB, ttl: 1 });
    const late = createVerifier({
      issuer: ISS,
      audience: AUD,
      keys: { jwks },
      clockTolerance: 0,
      clock: () => Date.now() + 5_000,
      metricsParent: metrics.verifierOutcomes,
    });
    await expect(late.verify(expired)).rejects.toMatchObject({ code: 'ERR_TOKEN_EXPIRED' });
    const tampered = `${good.slice(0, -4)}${good.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    await expect(verifier.verify(tampered)).rejects.toMatchObject({ code: 'ERR_TOKEN_SIGNATURE' });
    await expect(verifier.verify(await foreign.mint({ sub: SUB }))).rejects.toMatchObject({
      code: 'ERR_KEY_UNKNOWN',
    });

    const { contentType, body } = await metrics.render();
    expect(contentType).toContain('text/plain');
    expect(sample(body, 'rls_kit_token_verifications_total', { outcome: 'ok' })).toBe(2);
    expect(
      sample(body, 'rls_kit_token_verifications_total', { outcome: 'ERR_TOKEN_EXPIRED' }),
    ).toBe(1);
    expect(
      sample(body, 'rls_kit_token_verifications_total', { outcome: 'ERR_TOKEN_SIGNATURE' }),
    ).toBe(1);
    expect(sample(body, 'rls_kit_token_verifications_total', { outcome: 'ERR_KEY_UNKNOWN' })).toBe(
      1,
    );
    // Presets are there at 0, so rate() works before the first failure.
    expect(
      sample(body, 'rls_kit_token_verifications_total', { outcome: 'ERR_TOKEN_REVOKED' }),
    ).toBe(0);
    expect(metrics.verifierOutcomes.snapshot()).toMatchObject({
      ok: 2,
      ERR_TOKEN_EXPIRED: 1,
      ERR_TOKEN_SIGNATURE: 1,
      ERR_KEY_UNKNOWN: 1,
    });
    const after = verificationOutcomes.snapshot();
    expect(after.ok - before.ok).toBe(2);
    expect((after.ERR_TOKEN_SIGNATURE ?? 0) - (before.ERR_TOKEN_SIGNATURE ?? 0)).toBe(1);
    // Never in prom-client's global registry: two services in one process must not collide.
    expect(await globalRegistry.metrics()).not.toContain('rls_kit_');
    // Nothing token-shaped in the exposition.
    for (const part of good.split('.')) expect(body).not.toContain(part.slice(0, 16));
    expect(body).not.toContain(SUB);
    metrics.close();
  });

  it('keeps the outcome label set closed: odd values are "other", new ERR_ codes up to a cap', async () => {
    const metrics = createServiceMetrics({ processMetrics: false });
    metrics.verification('ERR_SOMETHING_NEW');
    metrics.verification('eyJhbGciOiJFUzI1NiJ9.payload.sig');
    metrics.verification('ERR_lowercase');
    metrics.verification('');
    for (let i = 0; i < 200; i++) metrics.verification(`ERR_FLOOD_${i}`);
    const { body } = await metrics.render();
    expect(
      sample(body, 'rls_kit_token_verifications_total', { outcome: 'ERR_SOMETHING_NEW' }),
    ).toBe(1);
    const lines = body
      .split('\n')
      .filter((l) => l.startsWith('rls_kit_token_verifications_total{'));
    expect(lines.length).toBeLessThanOrEqual(49);
    const other = sample(body, 'rls_kit_token_verifications_total', { outcome: 'other' })!;
    expect(other).toBeGreaterThanOrEqual(3 + 200 - 48);
    expect(body).not.toContain('eyJhbGciOiJFUzI1NiJ9');
    metrics.close();
  });

  it('exposes issuance, refreshes, reuse, JWKS fetches and the revocation lag read at scrape time', async () => {
    const metrics = createServiceMetrics({ processMetrics: false });
    metrics.issued('demo_login');
    metrics.issued('demo_login');
    metrics.issued('token_exchange');
    metrics.refreshed();
    metrics.reuseDetected();
    metrics.jwksFetch('ok');
    metrics.jwksFetch('error');
    metrics.jwksFetch('ok');
    let lag = 0;
    metrics.revocationLag(() => lag);
    let { body } = await metrics.render();
    expect(sample(body, 'rls_kit_tokens_issued_total', { grant: 'demo_login' })).toBe(2);
    expect(sample(body, 'rls_kit_tokens_issued_total', { grant: 'token_exchange' })).toBe(1);
    expect(sample(body, 'rls_kit_tokens_issued_total', { grant: 'refresh_token' })).toBe(0);
    expect(sample(body, 'rls_kit_token_refreshes_total')).toBe(1);
    expect(sample(body, 'rls_kit_refresh_reuse_detected_total')).toBe(1);
    expect(sample(body, 'rls_kit_jwks_fetches_total', { outcome: 'ok' })).toBe(2);
    expect(sample(body, 'rls_kit_jwks_fetches_total', { outcome: 'error' })).toBe(1);
    expect(sample(body, 'rls_kit_revocation_lag_seconds')).toBe(0);
    lag = 2.5;
    ({ body } = await metrics.render());
    expect(sample(body, 'rls_kit_revocation_lag_seconds')).toBe(2.5);
    metrics.revocationLag(() => {
      throw new Error('list gone');
    });
    ({ body } = await metrics.render());
    expect(body).toMatch(/^rls_kit_revocation_lag_seconds \+Inf$/m);
    expect(body).toMatch(/# TYPE rls_kit_token_verifications_total counter/);
    expect(body).toMatch(/# TYPE rls_kit_revocation_lag_seconds gauge/);
    metrics.close();
  });

  it('includes process metrics by default and takes another prefix', async () => {
    const a = createServiceMetrics();
    const b = createServiceMetrics({ prefix: 'tokens_', processMetrics: false });
    const bodyA = (await a.render()).body;
    expect(bodyA).toMatch(/^process_cpu_user_seconds_total /m);
    expect(bodyA).toMatch(/^nodejs_heap_size_used_bytes /m);
    const bodyB = (await b.render()).body;
    expect(bodyB).toContain('tokens_token_verifications_total');
    expect(bodyB).not.toContain('rls_kit_');
    expect(bodyB).not.toContain('process_cpu_user_seconds_total');
    expect(bodyB).not.toContain('token_event_rate'); // no detector, no detector gauges
    expect(() => createServiceMetrics({ prefix: '9bad-' })).toThrow(/prefix/);
    a.close();
    b.close();
  });

  it('feeds the alert detector: a burst of bad signatures logs one alert and counts it', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      new Writable({
        write(chunk, _e, done) {
          for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
          done();
        },
      }),
    );
    const at = Date.UTC(2026, 0, 1); // one instant: every event in one bucket, whatever the wall clock does
    const alerts = createAlertDetector({
      logger,
      thresholds: { warmupSeconds: 0 },
      clock: () => at,
    });
    const metrics = createServiceMetrics({ alerts, processMetrics: false });
    const verifier = createVerifier({
      issuer: ISS,
      audience: AUD,
      keys: { jwks },
      metricsParent: metrics.verifierOutcomes,
      cache: false,
    });
    const good = await minter.mint({ sub: SUB });
    const forged = `${good.slice(0, good.lastIndexOf('.') + 1)}${'A'.repeat(86)}`;
    for (let i = 0; i < 25; i++) {
      await expect(verifier.verify(forged)).rejects.toMatchObject({ code: 'ERR_TOKEN_SIGNATURE' });
      await verifier.verify(good);
    }
    for (let i = 0; i < 5; i++) metrics.reuseDetected();
    const logged = lines.filter((l) => l.alert === 'token_event_rate');
    expect(logged.map((l) => l.event)).toEqual(['bad_signature', 'refresh_reuse']);
    const { body } = await metrics.render();
    expect(sample(body, 'rls_kit_alerts_total', { event: 'bad_signature' })).toBe(1);
    expect(sample(body, 'rls_kit_alerts_total', { event: 'refresh_reuse' })).toBe(1);
    expect(sample(body, 'rls_kit_alerts_total', { event: 'expired' })).toBe(0);
    // what the detector compared: 25 bad signatures in its 60 s window
    expect(sample(body, 'rls_kit_token_event_rate', { event: 'bad_signature' })).toBeCloseTo(
      25 / 60,
      3,
    );
    expect(sample(body, 'rls_kit_token_event_baseline', { event: 'bad_signature' })).toBe(0);
    expect(sample(body, 'rls_kit_token_event_rate', { event: 'expired' })).toBe(0);
    for (const l of lines) expect(JSON.stringify(l)).not.toContain(forged.slice(0, 20));
    metrics.close();
  });

  it('observes a verifier built without metricsParent: increases are added at each scrape', async () => {
    const metrics = createServiceMetrics({ processMetrics: false });
    const verifier = createVerifier({ issuer: ISS, audience: AUD, keys: { jwks }, cache: false });
    const good = await minter.mint({ sub: SUB });
    await verifier.verify(good); // before observing: counted once, as history
    const stop = metrics.observeVerifier(verifier, { pollMs: 0 });
    await verifier.verify(good);
    await expect(verifier.verify('nope')).rejects.toMatchObject({ code: 'ERR_TOKEN_MALFORMED' });
    let { body } = await metrics.render();
    expect(sample(body, 'rls_kit_token_verifications_total', { outcome: 'ok' })).toBe(2);
    expect(
      sample(body, 'rls_kit_token_verifications_total', { outcome: 'ERR_TOKEN_MALFORMED' }),
    ).toBe(1);
    ({ body } = await metrics.render()); // no double counting across scrapes
    expect(sample(body, 'rls_kit_token_verifications_total', { outcome: 'ok' })).toBe(2);
    stop();
    await verifier.verify(good);
    ({ body } = await metrics.render());
    expect(sample(body, 'rls_kit_token_verifications_total', { outcome: 'ok' })).toBe(2);
    metrics.close();
  });
});

describe('metrics and alerts in the running service', () => {
  it('a burst of forged tokens over HTTP: 401s, counted by code, one alert logged and counted', async () => {
    const db = await createTestDatabase({ template: 'example' });
    const dir = await mkdtemp(join(tmpdir(), 'rls-kit-metrics-'));
    const lines: Record<string, unknown>[] = [];
    const keyring = createKeyring([await generateKey()]);
    const keysFile = join(dir, 'keys.json');
    await writeKeyringFile(keysFile, keyring);
    const service = await startTokenService({
      databaseUrl: db.url,
      keysFile,
      port: 0,
      issuer: ISS,
      audience: AUD,
      keyRotation: false,
      // Hour-long buckets: the burst cannot straddle a bucket boundary (which would feed the
      // baseline mid-test); the threshold is then 4 × 0.001/s = 14.4 events per hour.
      alerts: {
        warmupSeconds: 0,
        minCount: 10,
        windowSeconds: 3600,
        bucketSeconds: 3600,
        baselineSeconds: 3600,
        minBaselineRate: 0.001,
      },
      logger: pino(
        new Writable({
          write(chunk, _e, done) {
            for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
            done();
          },
        }),
      ),
    });
    try {
      const own = await createMinter({ keyring, issuer: ISS, audience: AUD });
      const good = await own.mint({ sub: SUB });
      const forged = `${good.slice(0, good.lastIndexOf('.') + 1)}${'A'.repeat(86)}`;
      for (let i = 0; i < 30; i++) {
        const res = await fetch(`${service.url}/api/documents`, {
          headers: { authorization: `Bearer ${forged}` },
        });
        expect(res.status).toBe(401);
        await res.body?.cancel();
      }
      const body = await (await fetch(`${service.url}/metrics`)).text();
      expect(
        sample(body, 'rls_kit_token_verifications_total', { outcome: 'ERR_TOKEN_SIGNATURE' }),
      ).toBe(30);
      expect(sample(body, 'rls_kit_alerts_total', { event: 'bad_signature' })).toBe(1);
      expect(sample(body, 'rls_kit_revocation_lag_seconds')).toBe(0);
      expect(sample(body, 'rls_kit_jwks_fetches_total', { outcome: 'ok' })).toBe(0);
      await fetch(`${service.url}/.well-known/jwks.json`).then((r) => r.text());
      const after = await (await fetch(`${service.url}/metrics`)).text();
      expect(sample(after, 'rls_kit_jwks_fetches_total', { outcome: 'ok' })).toBe(1);
      const alerts = lines.filter((l) => l.alert === 'token_event_rate');
      expect(alerts).toHaveLength(1);
      // 15 = the first count whose rate (per hour) is above 4 × the 0.001/s floor
      expect(alerts[0]).toMatchObject({ level: 40, event: 'bad_signature', count: 15 });
      expect(JSON.stringify(lines)).not.toContain(forged.slice(-40));
    } finally {
      await service.close();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
