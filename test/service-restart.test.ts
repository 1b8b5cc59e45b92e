/**
 * Postgres stopped and restarted under load, on a PRIVATE embedded instance
 * (never the shared server): /readyz turns false, authenticated requests
 * fail closed with 503 — never 200 on unverified revocation state — and the
 * service recovers on its own once Postgres is back, without a restart.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../src/db/embedded.js';
import { runSqlFile } from '../src/db/migrate.js';
import type { TokenService } from '../src/server/index.js';
import { EXAMPLE_SEED_FILE } from '../src/server/prepare-database.js';
import {
  ACCESS_TYPE,
  captureLogs,
  EXCHANGE,
  type FakeSupabase,
  form,
  ORGS,
  startFakeSupabase,
  startTestService,
  USERS,
} from './helpers/service-http.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

/**
 * A loopback TCP proxy with a fixed port in front of the embedded server,
 * whose port changes on every start: the service keeps one address, as it
 * would keep a DNS name, while the server behind it goes away and comes back.
 */

interface Sample {
  start: number;
  end: number;
  status: number;
  kind: 'good' | 'revoked';
}

let home: string;
let pgServer: EmbeddedDatabase;
let proxy: { port: number; close(): void };
const target = { port: 0 };
let supabase: FakeSupabase;
let service: TokenService;
const logs = captureLogs();

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'rls-kit-svc-restart-'));
  await chmod(home, 0o755); // as root the server runs as the postgres OS user
  pgServer = await startEmbeddedPostgres({ home, name: 'svcrestart' });
  target.port = pgServer.port;
  proxy = await startTcpProxy(target);
  const url = new URL(pgServer.url);
  url.port = String(proxy.port);
  supabase = await startFakeSupabase();
  service = await startTestService(url.toString(), home, {
    migrate: true, // kit + example on the fresh cluster
    supabase: { projectUrl: supabase.projectUrl },
    rateLimit: false,
    revocation: { staleAfterMs: 500, backoffMs: { initial: 100, max: 500 } },
    logger: logs.logger,
  });
  await runSqlFile(pgServer.url, EXAMPLE_SEED_FILE);
}, 180_000);

afterAll(async () => {
  await service?.close();
  proxy?.close();
  await pgServer?.stop();
  await supabase?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};
const ready = async () => (await fetch(`${service.url}/readyz`)).status === 200;

describe('Postgres stopped and restarted under load', () => {
  it('fails closed (503, never 200) while down and recovers without a service restart', async () => {
    const minter = service.service.keys.minter();
    const good = await minter.mint({
      sub: USERS.carol,
      claims: { org_id: ORGS.acme, user_role: 'member' },
    });
    const revoked = await minter.issue({
      sub: USERS.bob,
      claims: { org_id: ORGS.acme, user_role: 'admin' },
    });
    await service.service.revocations.revokeToken({ jti: revoked.jti, expiresAt: revoked.exp });

    const samples: Sample[] = [];
    let running = true;
    const worker = async (token: string, kind: Sample['kind']) => {
      while (running) {
        const start = performance.now();
        let status = 0;
        try {
          const res = await fetch(`${service.url}/api/documents?limit=5`, {
            headers: { authorization: `Bearer ${token}` },
          });
          await res.arrayBuffer();
          status = res.status;
        } catch {
          status = -1; // the service itself must not fail: asserted below
        }
        samples.push({ start, end: performance.now(), status, kind });
      }
    };
    const workers = [
      ...Array.from({ length: 6 }, () => worker(good, 'good')),
      worker(revoked.token, 'revoked'),
      worker(revoked.token, 'revoked'),
    ];

    // Healthy load first: good tokens served, the revoked one refused.
    await until(
      'healthy load',
      async () => samples.filter((s) => s.kind === 'good' && s.status === 200).length >= 30,
    );
    expect(samples.filter((s) => s.kind === 'revoked').every((s) => s.status === 401)).toBe(true);

    await pgServer.stop();
    await until('readyz to turn false', async () => !(await ready()));
    const downSeen = performance.now();
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200); // alive, not ready
    const readyBody = (await (await fetch(`${service.url}/readyz`)).json()) as Record<
      string,
      boolean
    >;
    expect(readyBody.ready).toBe(false);

    // While down: issuing, refreshing and revoking fail closed too.
    const exchange = await fetch(
      `${service.url}/token`,
      form({
        grant_type: EXCHANGE,
        subject_token: await supabase.token(USERS.carol),
        subject_token_type: ACCESS_TYPE,
      }),
    );
    expect(exchange.status).toBe(503);
    expect(exchange.headers.get('retry-after')).toBe('1');
    expect(
      (
        await fetch(
          `${service.url}/token`,
          form({ grant_type: 'refresh_token', refresh_token: `rk1_${'a'.repeat(43)}` }),
        )
      ).status,
    ).toBe(503);
    expect((await fetch(`${service.url}/revoke`, form({ token: good }))).status).toBe(503);

    await new Promise((r) => setTimeout(r, 2000)); // load against a dead database
    const restartBegan = performance.now();
    pgServer = await startEmbeddedPostgres({ home, name: 'svcrestart' });
    target.port = pgServer.port;
    await until('readyz to turn true again', ready, 60_000);
    const recovered = performance.now();
    // Load after recovery, until enough of it has been served (a loaded machine is slow).
    await until(
      'load after recovery',
      async () =>
        samples.filter((s) => s.start >= recovered && s.kind === 'good' && s.status === 200)
          .length >= 20,
    );
    running = false;
    await Promise.all(workers);

    const during = samples.filter((s) => s.start >= downSeen && s.end <= restartBegan);
    const after = samples.filter((s) => s.start >= recovered);
    const count = (list: Sample[], kind: Sample['kind'], status: number) =>
      list.filter((s) => s.kind === kind && s.status === status).length;
    console.log(
      `service-restart: ${samples.length} requests; while down ${during.length} (good token: all 503 ${during.filter((s) => s.kind === 'good').every((s) => s.status === 503)}), after recovery ${after.length} (good 200: ${count(after, 'good', 200)})`,
    );

    const errors = logs.lines.filter((l) => /"level":50/.test(l));
    if (errors.length > 0) console.log(errors.join('\n'));
    // Never a failure of the service itself, never a 5xx other than 503.
    expect(samples.filter((s) => s.status === -1 || (s.status >= 500 && s.status !== 503))).toEqual(
      [],
    );
    // The revoked token is never served, before, during or after.
    expect(samples.filter((s) => s.kind === 'revoked' && s.status === 200)).toEqual([]);
    // While the database was down: only 503 — never 200 on unverified revocation state.
    expect(during.length).toBeGreaterThan(20);
    expect(new Set(during.filter((s) => s.kind === 'good').map((s) => s.status))).toEqual(
      new Set([503]),
    );
    // (The revoked token may still be refused from memory: 401 is as closed as 503.)
    for (const s of during.filter((x) => x.kind === 'revoked'))
      expect([401, 503]).toContain(s.status);
    // Recovered on its own: good tokens served again, the revoked one still refused.
    expect(count(after, 'good', 200)).toBeGreaterThanOrEqual(20);
    expect(after.filter((s) => s.kind === 'good').every((s) => s.status === 200)).toBe(true);
    expect(after.filter((s) => s.kind === 'revoked').every((s) => s.status === 401)).toBe(true);

    // And a sign-in works again.
    const again = await fetch(
      `${service.url}/token`,
      form({
        grant_type: EXCHANGE,
        subject_token: await supabase.token(USERS.carol),
        subject_token_type: ACCESS_TYPE,
      }),
    );
    expect(again.status).toBe(200);
  }, 120_000);
});
