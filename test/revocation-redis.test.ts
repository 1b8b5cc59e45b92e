/**
 * The Redis fan-out against the real Redis at 127.0.0.1:6379 (REDIS_URL)
 * and a real database (template 'kit'): a relay forwards SQL-made
 * revocations (trigger path) to lists on the Redis transport; a list's own
 * revocations reach the others at once; a subscriber whose Redis connection
 * is killed, or that sees a hole in a relay's numbering, resyncs from the
 * tables; with Redis or every relay gone, lists fail closed past the bound.
 * Every test uses its own channel, so parallel runs do not interfere.
 *
 * Skipped (with a message) when no Redis answers; a failure when CI=true.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedisTransport,
  createRevocationList,
  createRevocationRelay,
  decodeRedisEnvelope,
  encodeRedisEnvelope,
  envelopeSigning,
  type RedisTransportOptions,
  type RevocationList,
  type RevocationListOptions,
  type RevocationRelay,
  type RevocationRelayOptions,
  verifyRedisEnvelope,
} from '../src/revocation/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { redisAnswers } from './helpers/redis.js';
import { spawnRevocationWatcher } from './helpers/revocation-watcher.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { expectCode, nowSec } from './helpers/tokens.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const available = await redisAnswers(REDIS_URL);
if (!available && process.env.CI === 'true') {
  // In CI Redis is part of the environment: its absence is a failure, not a skip.
  throw new Error(`revocation-redis: no Redis at ${REDIS_URL} (CI=true)`);
}
if (!available) {
  console.warn(
    `revocation-redis: skipped — no Redis at ${REDIS_URL} (start redis-server, or set REDIS_URL)`,
  );
}

let db: TestDatabase;
let admin: pg.Client;
let redis: Redis;
const cleanup: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  if (!available) return;
  db = await createTestDatabase({ template: 'kit' });
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  redis = new Redis(REDIS_URL);
});

afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
});

afterAll(async () => {
  redis?.disconnect();
  await admin?.end();
  await db?.drop();
});

/** A channel of this test alone. */
const newChannel = () => `rls_kit:test:${randomBytes(6).toString('hex')}`;

async function startRelay(
  channel: string,
  over: Partial<RevocationRelayOptions> = {},
): Promise<RevocationRelay> {
  const relay = createRevocationRelay({
    url: db.url,
    redis: REDIS_URL,
    channel,
    heartbeatMs: 100,
    ...over,
  });
  cleanup.push(() => relay.stop());
  await relay.start();
  return relay;
}

async function startList(
  channel: string,
  over: Partial<RevocationListOptions> = {},
  transport: Partial<RedisTransportOptions> = {},
): Promise<RevocationList> {
  const list = createRevocationList({
    url: db.url,
    staleAfterMs: 1000,
    heartbeatMs: 100,
    backoffMs: { initial: 100, max: 400 },
    transport: createRedisTransport({
      redis: REDIS_URL,
      channel,
      relayTimeoutMs: 400,
      ...transport,
    }),
    ...over,
  });
  cleanup.push(() => list.stop());
  await list.start();
  return list;
}

let subscribers = 0;

/** Polls `probe` every 2 ms (running `step` first) until true; fails after `ms`. Returns the elapsed ms. */
async function until(probe: () => boolean, ms = 5000, step?: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    await step?.();
    if (probe()) break;
    if (performance.now() - t0 > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - t0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const claims = (over: Record<string, unknown> = {}) => ({
  sub: randomUUID(),
  iat: nowSec() - 10,
  exp: nowSec() + 600,
  jti: randomBytes(16).toString('base64url'),
  ...over,
});

async function revokeJtiSql(jti: string): Promise<void> {
  await admin.query("select rls_kit.revoke_token($1, now() + interval '10 minutes')", [jti]);
}

/** An unsigned "this jti is no longer revoked" on the channel, as an intruder would publish it. */
async function publishForgedDeletion(channel: string, jti: string): Promise<void> {
  await redis.publish(
    channel,
    encodeRedisEnvelope({ payload: JSON.stringify({ t: 'jti', op: '-', v: [jti] }) }),
  );
}

/** A row without its notification (triggers off for this transaction). */
async function revokeJtiSilently(jti: string): Promise<void> {
  await admin.query('begin');
  await admin.query("set local session_replication_role = 'replica'");
  await admin.query(
    "insert into rls_kit.revoked_tokens (jti, expires_at) values ($1, now() + interval '1 hour')",
    [jti],
  );
  await admin.query('commit');
}

describe.skipIf(!available)('Redis transport and relay', () => {
  it('a relay carries SQL-made revocations (trigger path) to several lists', async () => {
    const channel = newChannel();
    await startRelay(channel);
    const lists = await Promise.all([1, 2, 3].map(() => startList(channel)));
    const tok = claims();
    const sub = claims({ iat: nowSec() - 1 });
    const sid = randomUUID();
    const sess = claims({ sid });
    for (const list of lists) {
      expect(list.inSync).toBe(true);
      expect(list.isRevoked(tok)).toBe(false);
    }
    const t0 = performance.now();
    await revokeJtiSql(tok.jti);
    await Promise.all(lists.map((l) => until(() => l.isRevoked(tok) === true)));
    const ms = performance.now() - t0;
    await admin.query('select rls_kit.revoke_subject($1)', [sub.sub]);
    await admin.query('select rls_kit.revoke_session($1)', [sid]);
    for (const list of lists) {
      await until(() => list.isRevoked(sub) === true && list.isRevoked(sess) === true);
      expect(list.isRevoked(claims())).toBe(false);
      expect(list.inSync).toBe(true);
    }
    console.log(
      `revocation-redis: SQL revoke → relay → 3 lists: all saw it ${ms.toFixed(1)} ms after the call began`,
    );
  });

  it('loads what was revoked before it started, and 10,000 revocations in one transaction arrive', async () => {
    const channel = newChannel();
    await startRelay(channel);
    const before = claims();
    await revokeJtiSql(before.jti);
    const list = await startList(channel);
    expect(list.isRevoked(before)).toBe(true);
    const prefix = `bulk-${randomBytes(4).toString('hex')}-`;
    await admin.query(
      "select rls_kit.revoke_token($1 || g, now() + interval '10 minutes') from generate_series(1, 10000) g",
      [prefix],
    );
    const last = claims({ jti: `${prefix}10000` });
    const first = claims({ jti: `${prefix}1` });
    await until(() => list.isRevoked(last) === true && list.isRevoked(first) === true, 10_000);
    expect(list.size).toBeGreaterThanOrEqual(10_001);
    expect(list.inSync).toBe(true);
  });

  it("a list's own revocation reaches the other lists at once, without the relay", async () => {
    const channel = newChannel();
    // This relay heartbeats but never forwards a notification: only the direct publish can deliver.
    await startRelay(channel, {
      listenClient: () => {
        const client = new pg.Client({ connectionString: db.url });
        const emit = client.emit.bind(client);
        client.emit = (event: string | symbol, ...args: unknown[]) =>
          event === 'notification' ? false : emit(event, ...args);
        return client;
      },
    });
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => startList(channel)));
    const tok = claims();
    await a!.revokeToken({ jti: tok.jti, expiresAt: tok.exp });
    expect(a!.isRevoked(tok)).toBe(true);
    const subj = claims({ iat: nowSec() });
    await a!.revokeSubject(subj.sub);
    const sid = randomUUID();
    await a!.revokeSession(sid);
    for (const other of [b!, c!]) {
      await until(
        () =>
          other.isRevoked(tok) === true &&
          other.isRevoked(subj) === true &&
          other.isRevoked(claims({ sid })) === true,
        2000,
      );
    }
  });

  it('a subscriber whose Redis connection is killed (CLIENT KILL) reconnects and resyncs what it missed', async () => {
    const channel = newChannel();
    await startRelay(channel);
    const name = `rk_sub_${randomBytes(4).toString('hex')}`;
    const list = await startList(
      channel,
      { backoffMs: { initial: 400, max: 400 } },
      {
        redis: {
          host: '127.0.0.1',
          port: new URL(REDIS_URL).port ? Number(new URL(REDIS_URL).port) : 6379,
          connectionName: name,
        },
      },
    );
    const clients = String(await redis.client('LIST'))
      .split('\n')
      .filter((line) => line.includes(` name=${name} `) && line.includes(' sub=1 ')); // not its publisher
    expect(clients).toHaveLength(1);
    const id = /\bid=(\d+)/.exec(clients[0]!)![1]!;
    expect(await redis.client('KILL', 'ID', id)).toBe(1);
    await until(() => !list.inSync, 2000);
    const missed = claims();
    await revokeJtiSql(missed.jti); // relayed while the subscriber is away: Redis drops it for it
    expect(list.isRevoked(missed)).toBe(false); // within staleAfterMs it answers from memory
    await until(() => list.inSync, 5000);
    expect(list.isRevoked(missed)).toBe(true);
    const after = claims();
    await revokeJtiSql(after.jti);
    await until(() => list.isRevoked(after) === true, 2000);
  });

  it("a hole in a relay's numbering makes the list reload the tables; a rewind too", async () => {
    const channel = newChannel();
    // No periodic heartbeats in this test, so the only numbers are the ones it sends:
    // the list subscribes first and hears the relay's opening heartbeat.
    const started = startList(channel, { heartbeatMs: 60_000 }, { relayTimeoutMs: 60_000 });
    await until(
      () => subscribers === 1,
      3000,
      async () => {
        subscribers = Number(((await redis.pubsub('NUMSUB', channel)) as [string, number])[1]);
      },
    );
    const relay = await startRelay(channel, { heartbeatMs: 60_000 });
    const list = await started;
    const beat = (seq: number) =>
      redis.publish(channel, encodeRedisEnvelope({ stream: relay.stream!, seq }));

    const c = claims();
    await revokeJtiSilently(c.jti);
    await beat(0); // in step: nothing to do
    await sleep(150);
    expect(list.isRevoked(c)).toBe(false); // no notification: the list cannot know yet
    await beat(1000); // numbers the list never saw: a hole
    await until(() => list.inSync && list.isRevoked(c) === true, 3000);

    const e = claims();
    await revokeJtiSilently(e.jti);
    await sleep(150);
    expect(list.isRevoked(e)).toBe(false);
    await beat(3); // a rewind: never trusted, the tables are asked
    await until(() => list.inSync && list.isRevoked(e) === true, 3000);

    // The relay's own next message (its number 1) is delivered, not dropped as a "duplicate".
    const d = claims();
    await revokeJtiSql(d.jti);
    await until(() => list.isRevoked(d) === true, 2000);
  });

  it('a forged deletion on the channel does not lift a denial', async () => {
    const channel = newChannel();
    await startRelay(channel);
    const list = await startList(channel);
    const c = claims();
    await revokeJtiSql(c.jti);
    await until(() => list.isRevoked(c) === true);
    await publishForgedDeletion(channel, c.jti);
    await sleep(150);
    await until(() => list.inSync);
    expect(list.isRevoked(c)).toBe(true);
  });

  it('with a shared secret, lists heed only signed, fresh messages: forged and replayed heartbeats cannot keep one in sync', async () => {
    const channel = newChannel();
    const secret = randomBytes(32).toString('base64');
    const relay = await startRelay(channel, { secret });
    const list = await startList(channel, { onStale: 'reject', staleAfterMs: 800 }, { secret });
    // Signed messages flow: a SQL-made revocation arrives through the relay.
    const c = claims();
    await revokeJtiSql(c.jti);
    await until(() => list.isRevoked(c) === true);
    // A forged (unsigned) deletion has no say.
    await publishForgedDeletion(channel, c.jti);
    // Capture one genuine heartbeat to replay later.
    const spy = new Redis(REDIS_URL);
    cleanup.push(async () => spy.disconnect());
    let captured: string | undefined;
    spy.on('message', (_ch: string, text: string) => {
      if (!text.includes('"p"')) captured ??= text;
    });
    await spy.subscribe(channel);
    await until(() => captured !== undefined, 2000);
    expect(list.isRevoked(c)).toBe(true);

    // The relay dies; someone keeps its stream "alive" with unsigned heartbeats
    // and replays of the captured signed one.
    const stream = relay.stream!;
    const seq = decodeRedisEnvelope(captured!)!.seq!;
    await relay.stop();
    let forging = true;
    const forger = (async () => {
      while (forging) {
        await redis.publish(channel, encodeRedisEnvelope({ stream, seq }));
        await redis.publish(channel, captured!);
        await sleep(50);
      }
    })();
    cleanup.push(async () => {
      forging = false;
      await forger;
    });
    await until(() => !list.inSync, 3000);
    await sleep(900);
    await expectCode(() => list.isRevoked(claims()), 'ERR_REVOCATION_UNAVAILABLE');
    forging = false;
    await forger;
  });

  it("a list whose secret differs from the relays' hears no relay, and says why", async () => {
    const channel = newChannel();
    await startRelay(channel, { secret: randomBytes(32) });
    const list = createRevocationList({
      url: db.url,
      transport: createRedisTransport({
        redis: REDIS_URL,
        channel,
        relayTimeoutMs: 400,
        secret: randomBytes(32),
      }),
    });
    cleanup.push(() => list.stop());
    await expect(list.start()).rejects.toMatchObject({
      code: 'ERR_REVOCATION_UNAVAILABLE',
      message: expect.stringMatching(
        /failed authentication: give relays and lists the same secret/,
      ),
    });
    expect(() => createRedisTransport({ channel, secret: 'too short' })).toThrow(
      /at least 32 bytes/,
    );
    expect(() => createRevocationRelay({ url: db.url, channel, secret: 'too short' })).toThrow(
      /at least 32 bytes/,
    );
  });

  it('with no relay left, lists fail closed past staleAfterMs; start() refuses without one', async () => {
    const channel = newChannel();
    const relay = await startRelay(channel);
    const list = await startList(channel, { onStale: 'reject', staleAfterMs: 800 });
    const c = claims();
    expect(list.isRevoked(c)).toBe(false);
    await relay.stop();
    await until(() => !list.inSync, 3000);
    // Past the bound (counted from the relay's last heartbeat): refused, never "not revoked".
    await sleep(900);
    await expectCode(() => list.isRevoked(c), 'ERR_REVOCATION_UNAVAILABLE');
    // A relay comes back: the list reconnects, reloads, answers again.
    await startRelay(channel);
    await until(() => list.inSync, 5000);
    expect(list.isRevoked(c)).toBe(false);

    const orphan = createRevocationList({
      url: db.url,
      transport: createRedisTransport({
        redis: REDIS_URL,
        channel: newChannel(),
        relayTimeoutMs: 300,
      }),
    });
    cleanup.push(() => orphan.stop());
    await expect(orphan.start()).rejects.toMatchObject({ code: 'ERR_REVOCATION_UNAVAILABLE' });
  });

  it('Redis down: answers from memory within the bound, then fails closed (reject) or asks Postgres (check-db); back in sync when Redis returns', async () => {
    const channel = newChannel();
    const redisPort = Number(new URL(REDIS_URL).port || 6379);
    const proxy = await startTcpProxy(redisPort);
    cleanup.push(() => proxy.cut());
    const via = { host: '127.0.0.1', port: proxy.port };
    await startRelay(channel, { redis: via });
    const strict = await startList(
      channel,
      { onStale: 'reject', staleAfterMs: 800 },
      { redis: via },
    );
    const lenient = await startList(
      channel,
      { onStale: 'check-db', staleAfterMs: 800 },
      { redis: via },
    );
    const c = claims();
    await proxy.cut();
    await until(() => !strict.inSync && !lenient.inSync, 3000);
    await revokeJtiSql(c.jti); // committed while Redis is away
    expect(strict.isRevoked(c)).toBe(false); // within the bound: memory
    await sleep(900);
    await expectCode(() => strict.isRevoked(c), 'ERR_REVOCATION_UNAVAILABLE');
    await expect(lenient.isRevoked(c)).resolves.toBe(true); // the database's verdict
    await proxy.restore();
    await until(() => strict.inSync && lenient.inSync, 10_000);
    expect(strict.isRevoked(c)).toBe(true);
    expect(lenient.isRevoked(c)).toBe(true);
  });

  it('a subscriber opens no Postgres LISTEN connection of its own', async () => {
    const channel = newChannel();
    const app = `rk_pool_${randomBytes(4).toString('hex')}`;
    await startRelay(channel);
    const pool = new pg.Pool({ connectionString: db.url, application_name: app, max: 2 });
    cleanup.push(() => pool.end());
    const list = await startList(channel, { pool, url: undefined });
    expect(list.inSync).toBe(true);
    const { rows } = await admin.query<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where application_name = $1 and query ilike 'listen%'",
      [app],
    );
    expect(rows[0]!.n).toBe(0);
  });
});

describe.skipIf(!available)('Redis transport: lists in 4 separate processes', () => {
  it('each sees every SQL-made revocation through one relay (latency reported)', async () => {
    const channel = newChannel();
    await startRelay(channel);
    const children = Array.from({ length: 4 }, () =>
      spawnRevocationWatcher({ url: db.url, redis: REDIS_URL, channel }),
    );
    try {
      await Promise.all(children.map((c) => c.next('ready')));
      const latencies: number[] = [];
      // Three warm-up rounds (first messages through cold code paths in five processes) are not counted.
      for (let round = -3; round < 50; round++) {
        const jti = `r4-${round}-${randomBytes(6).toString('base64url')}`;
        for (const c of children) c.proc.stdin.write(`${jti}\n`);
        await Promise.all(children.map((c) => c.next(`watching ${jti}`)));
        const t0 = performance.timeOrigin + performance.now();
        await revokeJtiSql(jti);
        const seen = await Promise.all(children.map((c) => c.next(`seen ${jti} `)));
        if (round >= 0) for (const line of seen) latencies.push(Number(line.split(' ')[2]) - t0);
      }
      latencies.sort((a, b) => a - b);
      const pct = (p: number) =>
        latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)]!;
      console.log(
        `revocation-redis: 4 processes x 50 revocations via relay + Redis, from the revoke call to seen: p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms; slowest ${latencies
          .slice(-8)
          .map((x) => x.toFixed(0))
          .join(',')}`,
      );
      expect(latencies).toHaveLength(200);
      // The requirement itself (issue 4): seen in 4 processes within 100 ms at p99.
      expect(pct(0.99)).toBeLessThanOrEqual(100);
    } finally {
      await Promise.all(children.map((c) => c.end()));
    }
  }, 120_000);
});

describe('packaging', () => {
  it('importing supabase-rls-kit/revocation does not load ioredis', () => {
    const script = `
      await import(process.env.REV_MODULE);
      const { createRequire } = await import('node:module');
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/node_modules/ioredis/'));
      process.stdout.write(JSON.stringify(loaded.length));
    `;
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        env: {
          ...process.env,
          REV_MODULE: fileURLToPath(new URL('../src/revocation/index.ts', import.meta.url)),
        },
      },
    ).toString();
    expect(out).toBe('0');
    // And the check can fail: loading the transport's client does load it.
    const loaded = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        script.replace('await import(process.env.REV_MODULE);', "await import('ioredis');"),
      ],
      { cwd: fileURLToPath(new URL('..', import.meta.url)) },
    ).toString();
    expect(Number(loaded)).toBeGreaterThan(0);
  });
});

describe('Redis envelope', () => {
  it('signs with the shared secret: a changed, added or null member, another key or channel, or a stale time fails', () => {
    const signing = envelopeSigning(randomBytes(32), 'rls_kit:a', 'test')!;
    const now = Date.now();
    const text = encodeRedisEnvelope(
      { stream: 'x1', seq: 4, payload: '{"t":"jti"}' },
      signing,
      now,
    );
    expect(verifyRedisEnvelope(text, signing, 1000, now + 500)).toEqual({
      stream: 'x1',
      seq: 4,
      payload: '{"t":"jti"}',
      sentAt: now,
    });
    expect(decodeRedisEnvelope(text)).toEqual({ stream: 'x1', seq: 4, payload: '{"t":"jti"}' });
    const doc = JSON.parse(text);
    for (const changed of [
      { ...doc, s: 5 },
      { ...doc, r: 'x2' },
      { ...doc, p: '{"t":"sub"}' },
      { ...doc, t: doc.t + 1 },
      { ...doc, m: undefined },
      { ...doc, x: 1 },
    ]) {
      expect(verifyRedisEnvelope(JSON.stringify(changed), signing, 1000, now)).toBeUndefined();
    }
    // A heartbeat re-spelled with "p": null carries the same MAC input, and is still refused.
    const beat = encodeRedisEnvelope({ stream: 'x1', seq: 4 }, signing, now);
    expect(verifyRedisEnvelope(beat, signing, 1000, now)).toBeDefined();
    expect(
      verifyRedisEnvelope(JSON.stringify({ ...JSON.parse(beat), p: null }), signing, 1000, now),
    ).toBeUndefined();
    const other = envelopeSigning(randomBytes(32), 'rls_kit:a', 'test')!;
    expect(verifyRedisEnvelope(text, other, 1000, now)).toBeUndefined();
    expect(
      verifyRedisEnvelope(text, { ...signing, channel: 'rls_kit:b' }, 1000, now),
    ).toBeUndefined();
    expect(verifyRedisEnvelope(text, signing, 1000, now + 1001)).toBeUndefined();
    expect(verifyRedisEnvelope(text, signing, 1000, now - 1001)).toBeUndefined();
    expect(
      verifyRedisEnvelope(encodeRedisEnvelope({ stream: 'x1', seq: 4 }), signing, 1000, now),
    ).toBeUndefined();
  });

  it('round-trips the three message kinds and refuses anything else', () => {
    const payload = '{"t":"jti","op":"+","v":[["abc",1767225600]]}';
    for (const e of [{ stream: 's1', seq: 7, payload }, { stream: 's1', seq: 0 }, { payload }]) {
      expect(decodeRedisEnvelope(encodeRedisEnvelope(e))).toEqual(e);
    }
    for (const text of [
      'not json',
      '[]',
      'null',
      '{}',
      '{"s":1,"p":"x"}',
      '{"r":"s1"}',
      '{"r":"s1","s":-1}',
      '{"r":"s1","s":1.5}',
      '{"r":"s1","s":"1"}',
      '{"r":"has space","s":1}',
      `{"r":"${'x'.repeat(65)}","s":1}`,
      '{"r":"s1","s":1,"p":42}',
      '{"p":{"t":"jti"}}',
      JSON.stringify({ p: 'x'.repeat(70_000) }),
    ]) {
      expect([text.slice(0, 40), decodeRedisEnvelope(text)]).toEqual([
        text.slice(0, 40),
        undefined,
      ]);
    }
  });
});
