import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import {
  createRevocationList,
  createRevocationStore,
  isRevokedIn,
  parseRevocationNotification,
  type RevocationList,
  type RevocationListOptions,
} from '../src/revocation/index.js';
import { createVerifier } from '../src/tokens/verify.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { spawnRevocationWatcher } from './helpers/revocation-watcher.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { AUD, expectCode, ISS, kitClaims, kitToken, makeKey, nowSec } from './helpers/tokens.js';

let db: TestDatabase;
let admin: pg.Client;
const lists: RevocationList[] = [];

beforeAll(async () => {
  db = await createTestDatabase({ template: 'kit' });
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
});

afterAll(async () => {
  for (const list of lists) await list.stop();
  await admin?.end();
  await db?.drop();
});

/** A started list whose listener carries a unique application_name (to find its backend). */
async function startList(
  options: Partial<RevocationListOptions> = {},
): Promise<{ list: RevocationList; app: string }> {
  const app = `revtest_${randomBytes(4).toString('hex')}`;
  const list = createRevocationList({
    url: db.url,
    listenClient: () => new pg.Client({ connectionString: db.url, application_name: app }),
    ...options,
  });
  lists.push(list);
  await list.start();
  return { list, app };
}

/** Polls `probe` every 2 ms until true; fails after `ms`. Returns the elapsed ms. */
async function until(probe: () => boolean, ms = 5000): Promise<number> {
  const t0 = performance.now();
  while (!probe()) {
    if (performance.now() - t0 > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - t0;
}

async function killListener(app: string): Promise<void> {
  const { rows } = await admin.query<{ killed: boolean }>(
    'select pg_terminate_backend(pid) as killed from pg_stat_activity where application_name = $1',
    [app],
  );
  expect(rows).toHaveLength(1);
  expect(rows[0]!.killed).toBe(true);
}

interface TestClaims {
  sub: string;
  iat: number;
  exp: number;
  jti: string;
  [claim: string]: unknown;
}

const claims = (over: Record<string, unknown> = {}): TestClaims => ({
  sub: randomUUID(),
  iat: nowSec() - 10,
  exp: nowSec() + 600,
  jti: randomBytes(16).toString('base64url'),
  ...over,
});

async function revokeJti(jti: string): Promise<void> {
  await admin.query("select rls_kit.revoke_token($1, now() + interval '10 minutes')", [jti]);
}

describe('createRevocationList', () => {
  it('loads tokens, subjects and sessions revoked before start', async () => {
    const tok = claims();
    const subj = claims();
    const sess = claims({ session_id: randomUUID() });
    const fam = claims({ sid: randomUUID() });
    await revokeJti(tok.jti);
    await admin.query('select rls_kit.revoke_subject($1)', [subj.sub]);
    await admin.query('select rls_kit.revoke_session($1)', [sess.session_id]);
    await admin.query('select rls_kit.revoke_session($1)', [fam.sid]);
    const { list } = await startList();
    expect(list.inSync).toBe(true);
    expect(list.isRevoked(tok)).toBe(true);
    expect(list.isRevoked(subj)).toBe(true);
    expect(list.isRevoked(sess)).toBe(true);
    expect(list.isRevoked(fam)).toBe(true);
    expect(list.isRevoked(claims())).toBe(false);
    // A token of the revoked subject issued after the cut-off lives.
    expect(list.isRevoked({ ...subj, iat: nowSec() + 5 })).toBe(false);
    // Missing sub/iat are inactive, as in rls_kit.token_status.
    expect(list.isRevoked({ iat: nowSec() })).toBe(true);
    expect(list.isRevoked({ sub: randomUUID() })).toBe(true);
  });

  it('mirrors rls_kit.token_status on assorted claims', async () => {
    const { list } = await startList();
    const revokedSub = randomUUID();
    await admin.query('select rls_kit.revoke_subject($1)', [revokedSub]);
    await until(() => list.isRevoked({ sub: revokedSub, iat: 1 }) === true);
    const cases: Record<string, unknown>[] = [
      claims(),
      { sub: 'not-a-uuid', iat: 1 },
      { sub: randomUUID(), iat: 'x' },
      { sub: randomUUID(), iat: -1 },
      { sub: randomUUID(), iat: 1, session_id: 'nope' },
      { sub: randomUUID(), iat: 1, sid: 7 },
      { sub: revokedSub.toUpperCase(), iat: nowSec() - 100 },
      { sub: revokedSub, iat: nowSec() + 100 },
    ];
    for (const c of cases) {
      const { rows } = await admin.query<{ s: { active: boolean } }>(
        'select rls_kit.token_status($1::jsonb) as s',
        [JSON.stringify(c)],
      );
      expect([c, list.isRevoked(c)]).toEqual([c, !rows[0]!.s.active]);
    }
  });

  it('applies a revocation committed by another connection (NOTIFY)', async () => {
    const { list } = await startList();
    const c = claims();
    expect(list.isRevoked(c)).toBe(false);
    const t0 = performance.now();
    await revokeJti(c.jti);
    const commitMs = performance.now() - t0;
    const seenMs = await until(() => list.isRevoked(c) === true);
    console.log(
      `revocation-list: NOTIFY seen ${(commitMs + seenMs).toFixed(1)} ms after the revoke call began (${seenMs.toFixed(1)} ms after commit returned)`,
    );
  });

  it('own revocations take effect at once, without the notification', async () => {
    // This listener never delivers notifications: only the local apply can answer.
    const list = createRevocationList({
      url: db.url,
      listenClient: () => {
        const client = new pg.Client({ connectionString: db.url });
        const emit = client.emit.bind(client);
        client.emit = (event: string | symbol, ...args: unknown[]) =>
          event === 'notification' ? false : emit(event, ...args);
        return client;
      },
    });
    lists.push(list);
    await list.start();
    const tok = claims();
    await list.revokeToken({ jti: tok.jti, expiresAt: tok.exp, reason: 'test' });
    expect(list.isRevoked(tok)).toBe(true);
    const subj = claims({ iat: nowSec() });
    const cutoff = await list.revokeSubject(subj.sub, { reason: 'test' });
    expect(cutoff.getTime() % 1000).toBe(0);
    expect(list.isRevoked(subj)).toBe(true);
    const sid = randomUUID();
    const sess = claims({ sid });
    await list.revokeSession(sid);
    expect(list.isRevoked(sess)).toBe(true);
    expect(list.isRevoked(claims())).toBe(false);
    // The database agrees.
    const { rows } = await admin.query<{ s: { reason: string } }>(
      'select rls_kit.token_status($1::jsonb) as s',
      [JSON.stringify(tok)],
    );
    expect(rows[0]!.s.reason).toBe('token_revoked');
  });

  it('refuses malformed revocations with ERR_REVOKE_INPUT before touching the database', async () => {
    const { list } = await startList();
    const count = async () =>
      (
        await admin.query<{ n: number }>(
          `select ((select count(*) from rls_kit.revoked_tokens) + (select count(*) from rls_kit.subject_revocations)
                  + (select count(*) from rls_kit.revoked_sessions))::int as n`,
        )
      ).rows[0]!.n;
    const before = await count();
    const sizeBefore = list.size;
    const future = nowSec() + 600;
    await expectCode(list.revokeToken({ jti: '', expiresAt: future }), 'ERR_REVOKE_INPUT');
    await expectCode(
      list.revokeToken({ jti: 'x'.repeat(256), expiresAt: future }),
      'ERR_REVOKE_INPUT',
    );
    await expectCode(list.revokeToken({ jti: 'abc', expiresAt: Number.NaN }), 'ERR_REVOKE_INPUT');
    await expectCode(list.revokeToken({ jti: 'abc', expiresAt: nowSec() - 1 }), 'ERR_REVOKE_INPUT');
    await expectCode(
      list.revokeToken({ jti: 'abc', expiresAt: new Date('nonsense') }),
      'ERR_REVOKE_INPUT',
    );
    await expectCode(
      list.revokeToken({ jti: 'abc', expiresAt: future, sub: 'not-a-uuid' }),
      'ERR_REVOKE_INPUT',
    );
    await expectCode(list.revokeSubject('not-a-uuid'), 'ERR_REVOKE_INPUT');
    await expectCode(list.revokeSession('1234'), 'ERR_REVOKE_INPUT');
    expect(await count()).toBe(before);
    expect(list.size).toBe(sizeBefore);
  });

  it('a garbled notification triggers a full resync', async () => {
    const { list } = await startList();
    const c = claims();
    // A row that arrives without its notification (triggers off), then a garbled payload.
    await admin.query('begin');
    await admin.query("set local session_replication_role = 'replica'");
    await admin.query(
      "insert into rls_kit.revoked_tokens (jti, expires_at) values ($1, now() + interval '1 hour')",
      [c.jti],
    );
    await admin.query('commit');
    await new Promise((r) => setTimeout(r, 100));
    expect(list.isRevoked(c)).toBe(false);
    await admin.query('select pg_notify(\'rls_kit_revocations\', \'{"t":"jti","op":"?"}\')');
    await until(() => list.inSync && list.isRevoked(c) === true);
  });

  it('a deletion lifts a live denial only through a resync: a forged "-" changes nothing', async () => {
    const { list } = await startList();
    const c = claims();
    await revokeJti(c.jti);
    await until(() => list.isRevoked(c) === true);
    // Anyone who can NOTIFY could send this; the row is still in the table.
    await admin.query('select pg_notify($1, $2)', [
      'rls_kit_revocations',
      JSON.stringify({ t: 'jti', op: '-', v: [c.jti] }),
    ]);
    await new Promise((r) => setTimeout(r, 100));
    await until(() => list.inSync);
    expect(list.isRevoked(c)).toBe(true);
    // A real deletion (an administrator lifting the denial) is honoured, after the resync.
    await admin.query('delete from rls_kit.revoked_tokens where jti = $1', [c.jti]);
    await until(() => list.inSync && list.isRevoked(c) === false);
  });

  it('a forged "+" cannot lower a value to lift a denial (jti expiry, subject cut-off, session)', async () => {
    const { list } = await startList();
    const token = claims();
    const subject = claims();
    const sid = randomUUID();
    const session = claims({ sid });
    await revokeJti(token.jti);
    await admin.query('select rls_kit.revoke_subject($1, null, false)', [subject.sub]);
    await admin.query('select rls_kit.revoke_session($1)', [sid]);
    await until(
      () =>
        list.isRevoked(token) === true &&
        list.isRevoked(subject) === true &&
        list.isRevoked(session) === true,
    );
    // Anyone who can NOTIFY could send these: an expiry in the past, a cut-off of 0.
    for (const [t, k] of [
      ['jti', token.jti],
      ['sub', subject.sub],
      ['sid', sid],
    ] as const) {
      await admin.query('select pg_notify($1, $2)', [
        'rls_kit_revocations',
        JSON.stringify({ t, op: '+', v: [[k, t === 'sub' ? 0 : 1]] }),
      ]);
    }
    await new Promise((r) => setTimeout(r, 150));
    await until(() => list.inSync);
    expect(list.isRevoked(token)).toBe(true);
    expect(list.isRevoked(subject)).toBe(true);
    expect(list.isRevoked(session)).toBe(true);
  });

  it('reconnects after pg_terminate_backend and resyncs what it missed', async () => {
    const { list, app } = await startList({ backoffMs: { initial: 400, max: 400 } });
    const c = claims();
    await killListener(app);
    await until(() => !list.inSync);
    await revokeJti(c.jti); // committed while the listener is down: no notification reaches it
    expect(list.isRevoked(c)).toBe(false); // still within staleAfterMs: answers from memory
    await until(() => list.inSync);
    expect(list.isRevoked(c)).toBe(true);
    // And it listens again.
    const d = claims();
    await revokeJti(d.jti);
    await until(() => list.isRevoked(d) === true);
  });

  it("fails closed past staleAfterMs: 'reject' throws ERR_REVOCATION_UNAVAILABLE", async () => {
    const { list, app } = await startList({
      staleAfterMs: 200,
      onStale: 'reject',
      backoffMs: { initial: 60_000, max: 60_000 },
    });
    const c = claims();
    await killListener(app);
    await until(() => !list.inSync);
    await revokeJti(c.jti);
    await new Promise((r) => setTimeout(r, 250));
    expect(list.lagMs).toBeGreaterThan(200);
    await expectCode(() => list.isRevoked(c), 'ERR_REVOCATION_UNAVAILABLE');
    await expectCode(() => list.isRevoked(claims()), 'ERR_REVOCATION_UNAVAILABLE');
  });

  it("fails closed past staleAfterMs: 'check-db' asks rls_kit.token_status", async () => {
    const { list, app } = await startList({
      staleAfterMs: 200,
      backoffMs: { initial: 60_000, max: 60_000 },
    });
    const c = claims();
    await killListener(app);
    await until(() => !list.inSync);
    await revokeJti(c.jti);
    await new Promise((r) => setTimeout(r, 250));
    const revoked = list.isRevoked(c);
    expect(revoked).toBeInstanceOf(Promise);
    await expect(revoked).resolves.toBe(true);
    await expect(list.isRevoked(claims())).resolves.toBe(false);
  });

  it("'check-db' with the database unreachable throws ERR_REVOCATION_UNAVAILABLE", async () => {
    const { list, app } = await startList({
      staleAfterMs: 0,
      backoffMs: { initial: 60_000, max: 60_000 },
      pool: new pg.Pool({ connectionString: 'postgresql://nobody@127.0.0.1:1/none' }),
    });
    await killListener(app);
    await until(() => !list.inSync);
    await new Promise((r) => setTimeout(r, 5));
    await expectCode(async () => list.isRevoked(claims()), 'ERR_REVOCATION_UNAVAILABLE');
  });

  it('receives 10,000 revocations made in one transaction', async () => {
    const { list } = await startList();
    const before = list.size;
    const prefix = `bulk-${randomBytes(4).toString('hex')}-`;
    const t0 = performance.now();
    await admin.query(
      "select rls_kit.revoke_token($1 || g, now() + interval '1 hour') from generate_series(1, 10000) g",
      [prefix],
    );
    const ms = await until(() => list.size >= before + 10_000, 30_000);
    console.log(
      `revocation-list: 10,000 revocations arrived ${(performance.now() - t0).toFixed(0)} ms after the call (${ms.toFixed(0)} ms after commit)`,
    );
    for (let i = 1; i <= 10_000; i++) {
      expect(list.isRevoked(claims({ jti: `${prefix}${i}` }))).toBe(true);
    }
  }, 60_000);

  it('plugs into the verifier: a revoked kit token is refused, cache hits included', async () => {
    const { list } = await startList();
    const key = makeKey('ES256');
    const verifier = createVerifier({
      issuer: ISS,
      audience: AUD,
      keys: { jwks: { keys: [key.jwk] } },
      revocation: list,
    });
    const base = kitClaims();
    const token = kitToken(key, { jti: base.jti });
    const verified = await verifier.verify(token);
    expect(verifier.verifyCached(token)).toEqual(verified); // a cache hit, answered synchronously
    await list.revokeToken({ jti: String(base.jti), expiresAt: verified.exp });
    await expectCode(() => verifier.verifyCached(token), 'ERR_TOKEN_REVOKED');
    await expectCode(verifier.verify(token), 'ERR_TOKEN_REVOKED');
    // Revoked from elsewhere (another connection): seen through NOTIFY.
    const other = kitToken(key, { sub: randomUUID() });
    const otherClaims = await verifier.verify(other);
    await admin.query('select rls_kit.revoke_subject($1)', [otherClaims.sub]);
    await until(() => list.isRevoked(otherClaims) === true);
    await expectCode(() => verifier.verifyCached(other), 'ERR_TOKEN_REVOKED');
  });
});

describe('revocation lists in 4 separate processes', () => {
  it('each sees every revocation (latency reported)', async () => {
    const children = Array.from({ length: 4 }, () => spawnRevocationWatcher({ url: db.url }));
    try {
      await Promise.all(children.map((c) => c.next('ready')));
      const latencies: number[] = [];
      for (let round = 0; round < 50; round++) {
        const jti = `p4-${round}-${randomBytes(6).toString('base64url')}`;
        for (const c of children) c.proc.stdin.write(`${jti}\n`);
        await Promise.all(children.map((c) => c.next(`watching ${jti}`)));
        const t0 = performance.timeOrigin + performance.now();
        await revokeJti(jti);
        const seen = await Promise.all(children.map((c) => c.next(`seen ${jti} `)));
        for (const line of seen) latencies.push(Number(line.split(' ')[2]) - t0);
      }
      latencies.sort((a, b) => a - b);
      const pct = (p: number) =>
        latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)]!;
      console.log(
        `revocation-list: 4 processes x 50 revocations, from the revoke call to seen: p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`,
      );
      expect(latencies).toHaveLength(200);
      // The requirement itself (issue 4): seen in 4 processes within 100 ms at p99.
      expect(pct(0.99)).toBeLessThanOrEqual(100);
    } finally {
      await Promise.all(children.map((c) => c.end()));
    }
  }, 120_000);
});

/**
 * A loopback TCP proxy with a fixed port in front of a server whose port
 * changes: the embedded server picks a free port each time it starts, and
 * the list must find the restarted server at the address it was given.
 */

describe('a private embedded Postgres restarted under the list', () => {
  it('fails closed while it is down, then reconnects and resyncs', async () => {
    const home = await mkdtemp(join(tmpdir(), 'rls-kit-revtest-'));
    await chmod(home, 0o755); // the server may run as the postgres OS user
    let server = await startEmbeddedPostgres({ home, name: 'revtest' });
    const target = { port: server.port };
    const proxy = await startTcpProxy(target);
    const viaProxy = (u: string) => {
      const url = new URL(u);
      url.port = String(proxy.port);
      return url.toString();
    };
    const exec = async (text: string, values: unknown[]) => {
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      try {
        await c.query(text, values);
      } finally {
        await c.end();
      }
    };
    let list: RevocationList | undefined;
    try {
      await migrate({ url: server.url });
      list = createRevocationList({
        url: viaProxy(server.url),
        staleAfterMs: 300,
        backoffMs: { initial: 100, max: 500 },
      });
      await list.start();
      const a = claims();
      await exec("select rls_kit.revoke_token($1, now() + interval '1 hour')", [a.jti]);
      await until(() => list!.isRevoked(a) === true);

      await server.stop();
      await until(() => !list!.inSync);
      await new Promise((r) => setTimeout(r, 400));
      // Past the bound with the database gone: no token is accepted, revoked or not.
      await expectCode(async () => list!.isRevoked(a), 'ERR_REVOCATION_UNAVAILABLE');
      await expectCode(async () => list!.isRevoked(claims()), 'ERR_REVOCATION_UNAVAILABLE');

      server = await startEmbeddedPostgres({ home, name: 'revtest' });
      const b = claims();
      // Committed before the proxy points at the new server: the list can only learn it by resyncing.
      await exec("select rls_kit.revoke_token($1, now() + interval '1 hour')", [b.jti]);
      target.port = server.port;
      await until(() => list!.inSync, 15_000);
      expect(list.isRevoked(a)).toBe(true);
      expect(list.isRevoked(b)).toBe(true);
      expect(list.isRevoked(claims())).toBe(false);
      const c = claims();
      await exec("select rls_kit.revoke_token($1, now() + interval '1 hour')", [c.jti]);
      await until(() => list!.isRevoked(c) === true);
    } finally {
      await list?.stop();
      proxy.close();
      await server.stop();
      await rm(home, { recursive: true, force: true }).catch(() => undefined);
      // As root the cluster may live under /var/tmp instead (see chooseDataDir in src/db/embedded.ts).
      if (server.dataDir.startsWith('/var/tmp/rls-kit-')) {
        await rm(dirname(server.dataDir), { recursive: true, force: true }).catch(() => undefined);
      }
    }
  }, 180_000);
});

describe('revocation store', () => {
  it('parses notifications defensively', () => {
    expect(parseRevocationNotification('{"t":"jti","op":"+","v":[["a",1]]}')).toEqual({
      t: 'jti',
      op: '+',
      v: [['a', 1]],
    });
    for (const bad of [
      undefined,
      '',
      'x',
      '[]',
      '{"t":"x","op":"+","v":[]}',
      '{"t":"jti","op":"+","v":[["a","1"]]}',
      '{"t":"jti","op":"-","v":[1]}',
      '{"t":"jti","op":"+"}',
    ]) {
      expect(parseRevocationNotification(bad)).toBeUndefined();
    }
  });

  it('drops expired jti entries on lookup', () => {
    const store = createRevocationStore();
    const now = nowSec();
    store.tokens.set('old', now - 1);
    store.tokens.set('live', now + 60);
    const c = { sub: randomUUID(), iat: now - 100 };
    expect(isRevokedIn(store, { ...c, jti: 'old' }, now)).toBe(false);
    expect(store.tokens.has('old')).toBe(false);
    expect(isRevokedIn(store, { ...c, jti: 'live' }, now)).toBe(true);
  });

  it('holds 1,000,000 jti entries in at most 150 bytes each', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const n = 1_000_000;
    const exp = nowSec() + 3600;
    gc();
    const before = process.memoryUsage().heapUsed;
    const store = createRevocationStore();
    const seed = randomBytes(16);
    for (let i = 0; i < n; i++) {
      seed.writeUInt32BE(i, 0);
      // Fresh 22-character strings, as the kit's jtis (128 bits, base64url) arrive from JSON.
      store.tokens.set(seed.toString('base64url'), exp + (i & 1023));
    }
    gc();
    const perEntry = (process.memoryUsage().heapUsed - before) / n;
    console.log(`revocation-list: ${perEntry.toFixed(1)} bytes per jti entry at 1,000,000 entries`);
    expect(store.tokens.size).toBe(n);
    expect(perEntry).toBeLessThanOrEqual(150);
  });
});
