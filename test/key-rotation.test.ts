import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRlsKitError } from '../src/errors.js';
import {
  createKeyring,
  generateKey,
  type Keyring,
  publicJwks,
  readKeyringFile,
  rotate,
  serializeKeyring,
  signingKey,
  toVerificationKeys,
  writeKeyringFile,
} from '../src/keys/index.js';
import type { RotationChange } from '../src/keys/rotate.js';
import { createKeyRotationSchedule, type KeyringStore } from '../src/server/key-rotation.js';
import { rotateKeyringFile } from '../src/server/rotate-keyring-file.js';
import { createMinter } from '../src/tokens/mint.js';
import { createVerifier } from '../src/tokens/verify.js';
import { runCliCaptured } from './helpers/cli.js';
import { fakeClock } from './helpers/tokens.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const S = 1000;
const MIN = 60 * S;
const DAY = 24 * 60 * MIN;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rls-kit-rotation-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const states = (ring: Keyring) => ring.keys.map((k) => `${k.kid}:${k.rls_kit_state}`);

async function freshFile(name: string, at = T0): Promise<string> {
  const file = join(dir, name);
  await writeKeyringFile(file, createKeyring([await generateKey({ now: new Date(at) })]));
  return file;
}

describe('rotate with a rotation period', () => {
  it('keeps a standby key published for max(every, cache window) before it signs', async () => {
    const ring = createKeyring([await generateKey({ now: new Date(T0) })]);
    const opts = { rotateEvery: '30d', jwksCacheTtl: '10m', tokenTtl: '10m' } as const;
    const r1 = await rotate(ring, { ...opts, now: T0 });
    expect(r1.changes.map((c) => c.action)).toEqual(['added']);
    // the cache window alone would allow it; the period does not
    expect((await rotate(r1.keyring, { ...opts, now: T0 + 29 * DAY })).changes).toEqual([]);
    const r2 = await rotate(r1.keyring, { ...opts, now: T0 + 30 * DAY });
    expect(r2.changes.map((c) => c.action)).toEqual(['retired', 'promoted', 'added']);
    // a period shorter than the window never shortens the window
    const r3 = await rotate(r1.keyring, {
      rotateEvery: '1m',
      jwksCacheTtl: '10m',
      now: T0 + 9 * MIN,
    });
    expect(r3.changes).toEqual([]);
  });
});

describe('rls-kit keys rotate --every', () => {
  it('holds the standby key back for the period, and rewrites an exposed file 0600', async () => {
    const file = await freshFile('cli-every.json', Date.now());
    await import('node:fs/promises').then((fs) => fs.chmod(file, 0o644));
    const args = ['keys', 'rotate', '--keys', file, '--jwks-cache-ttl', '0s', '--every', '1h'];
    const first = await runCliCaptured(args);
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/added ES256 key/);
    expect(first.stderr).toMatch(/0600 now/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const second = await runCliCaptured(args);
    expect(second.stderr).toMatch(/nothing to do/);
    const third = await runCliCaptured([...args.slice(0, -1), '0s']);
    expect(third.stderr).toMatch(/promoted/);
    const bad = await runCliCaptured([...args.slice(0, -1), 'monthly']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--every/);
  });
});

describe('rotateKeyringFile', () => {
  it('rewrites the file atomically with mode 0600 only when something changed', async () => {
    const file = await freshFile('a.json');
    const first = await rotateKeyringFile(file, { now: T0, jwksCacheTtl: '10m' });
    expect(first.written).toBe(true);
    expect(first.changes.map((c) => c.action)).toEqual(['added']);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(states((await readKeyringFile(file)).keyring)).toEqual(states(first.keyring));
    const mtime = (await stat(file)).mtimeMs;
    const second = await rotateKeyringFile(file, { now: T0 + MIN, jwksCacheTtl: '10m' });
    expect(second.written).toBe(false);
    expect(second.changes).toEqual([]);
    expect((await stat(file)).mtimeMs).toBe(mtime);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp') || f.endsWith('.lock'))).toEqual(
      [],
    );
  });

  it('serialises concurrent rotations of one file: exactly one standby key is added and kept', async () => {
    const file = await freshFile('race.json');
    const results = await Promise.all(
      Array.from({ length: 6 }, () => rotateKeyringFile(file, { now: T0, jwksCacheTtl: '10m' })),
    );
    const added = results.flatMap((r) => r.changes).filter((c) => c.action === 'added');
    expect(added).toHaveLength(1);
    const { keyring } = await readKeyringFile(file);
    expect(keyring.keys.map((k) => k.kid)).toContain(added[0]!.kid);
    expect(keyring.keys).toHaveLength(2);
  });

  it('waits for a held lock, breaks a stale one, and says so when the lock stays', async () => {
    const file = await freshFile('lock.json');
    const lock = `${file}.lock`;
    await writeFile(lock, '12345\n');
    let error: unknown;
    try {
      await rotateKeyringFile(file, { now: T0, lockWaitMs: 100 });
    } catch (err) {
      error = err;
    }
    expect(isRlsKitError(error, 'ERR_KEY_INVALID')).toBe(true);
    expect((error as Error).message).toMatch(/locked by another rotation/);
    expect((await readKeyringFile(file)).keyring.keys).toHaveLength(1);

    // left over from a crash a minute ago: broken
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const r = await rotateKeyringFile(file, { now: T0 });
    expect(r.changes.map((c) => c.action)).toEqual(['added']);
    await expect(stat(lock)).rejects.toMatchObject({ code: 'ENOENT' });

    // released by its holder while we wait: proceeds
    await writeFile(lock, '1\n');
    setTimeout(() => void rm(lock, { force: true }), 100);
    const waited = await rotateKeyringFile(file, { now: T0 + 2 * DAY, jwksCacheTtl: '1h' });
    expect(waited.changes.map((c) => c.action)).toEqual(['retired', 'promoted', 'added']);
  });
});

describe('key rotation schedule (fake clock, manual ticks)', () => {
  it('standby (published) → active after the window → old key retired → dropped after its last token', async () => {
    const file = await freshFile('schedule.json');
    const clock = fakeClock(T0);
    const seen: { states: string[]; changes: readonly RotationChange[] }[] = [];
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      new Writable({
        write(chunk, _e, done) {
          for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
          done();
        },
      }),
    );
    const schedule = createKeyRotationSchedule({
      keysFile: file,
      every: '1h',
      jwksCacheWindow: '10m',
      tokenLifetime: '10m',
      clockTolerance: '30s',
      clock: clock.now,
      logger,
      onChange: (keyring, changes) => {
        seen.push({ states: states(keyring), changes });
      },
    });
    const a = (await readKeyringFile(file)).keyring.keys[0]!.kid;

    expect(await schedule.tick()).toMatchObject([{ action: 'added' }]);
    const b = schedule.keyring!.keys[1]!.kid;
    expect(seen.at(-1)!.states).toEqual([`${a}:active`, `${b}:standby`]);
    expect(publicJwks(schedule.keyring!, { now: clock.now() }).keys.map((k) => k.kid)).toEqual([
      a,
      b,
    ]);
    expect(schedule.nextDueAt).toBe(T0 + 60 * MIN);

    clock.advance(59 * MIN);
    expect(await schedule.tick()).toEqual([]);
    expect(seen).toHaveLength(1); // nothing changed: onChange not called

    clock.advance(MIN);
    const changes = await schedule.tick();
    expect(changes.map((c) => `${c.action}:${c.kid}`)).toEqual([
      `retired:${a}`,
      `promoted:${b}`,
      expect.stringMatching(/^added:/),
    ]);
    const notAfter = T0 + 60 * MIN + 10 * MIN + 30 * S;
    expect(changes[0]!.notAfter).toBe(new Date(notAfter).toISOString());
    const ring = (await readKeyringFile(file)).keyring; // persisted
    expect((await signingKey(ring)).kid).toBe(b);
    expect(ring.keys.find((k) => k.kid === a)!.rls_kit_state).toBe('retired');
    expect(schedule.nextDueAt).toBe(notAfter);

    // a token signed by `a` just before the switch still verifies until it expires
    const c = ring.keys[2]!.kid;
    clock.set(notAfter);
    expect(await schedule.tick()).toEqual([{ action: 'dropped', kid: a, alg: 'ES256' }]);
    expect(states(schedule.keyring!)).toEqual([`${b}:active`, `${c}:standby`]);
    expect(schedule.nextDueAt).toBe(T0 + 2 * 60 * MIN);
    expect(seen.map((s) => s.changes.map((x) => x.action))).toEqual([
      ['added'],
      ['retired', 'promoted', 'added'],
      ['dropped'],
    ]);
    const logged = lines.filter((l) => l.event === 'key_rotation').map((l) => l.action);
    expect(logged).toEqual(['added', 'retired', 'promoted', 'added', 'dropped']);
    const text = JSON.stringify(lines);
    for (const key of ring.keys) expect(text).not.toContain(key.d!);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('a token minted with the old key right before promotion verifies until it expires; the new key’s tokens verify from the first', async () => {
    const clock = fakeClock(T0);
    let ring = createKeyring([await generateKey({ now: new Date(T0) })]);
    const store: KeyringStore = {
      read: async () => ring,
      write: async (next) => {
        ring = next;
      },
    };
    const schedule = createKeyRotationSchedule({
      store,
      every: '1h',
      jwksCacheWindow: '10m',
      tokenLifetime: '10m',
      clock: clock.now,
    });
    await schedule.tick(); // standby published
    // a verifier that fetched the JWKS now and caches it for the whole window
    const cachedJwks = publicJwks(ring, { now: clock.now() });
    clock.advance(60 * MIN - S);
    const mintAt = (r: Keyring) =>
      createMinter({ keyring: r, issuer: 'iss', audience: 'aud', ttl: '10m', clock: clock.now });
    const oldToken = await (await mintAt(ring)).mint({ sub: crypto.randomUUID() });
    clock.advance(S);
    await schedule.tick(); // promotion
    const newToken = await (await mintAt(ring)).mint({ sub: crypto.randomUUID() });
    const verify = async (jwks: ReturnType<typeof publicJwks>, token: string) =>
      createVerifier({ issuer: 'iss', audience: 'aud', keys: { jwks }, clock: clock.now }).verify(
        token,
      );
    await expect(verify(cachedJwks, newToken)).resolves.toBeDefined(); // cached before promotion
    clock.advance(10 * MIN - 2 * S);
    await schedule.tick();
    const served = publicJwks(ring, { now: clock.now() });
    await expect(verify(served, oldToken)).resolves.toBeDefined(); // retired, still published
    const keys = await toVerificationKeys(ring, { now: clock.now() });
    expect(keys).toHaveLength(3);
  });

  it('notices a keyring changed by the CLI and reports it with no changes of its own', async () => {
    const file = await freshFile('external.json', Date.now() - 2 * DAY);
    const seen: (readonly RotationChange[])[] = [];
    const schedule = createKeyRotationSchedule({
      keysFile: file,
      every: '30d',
      onChange: (_k, changes) => {
        seen.push(changes);
      },
    });
    await schedule.tick();
    expect(seen).toHaveLength(1);
    const run = await runCliCaptured(['keys', 'rotate', '--keys', file, '--jwks-cache-ttl', '0s']);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/promoted/);
    expect(await schedule.tick()).toEqual([]);
    expect(seen).toHaveLength(2);
    expect(seen[1]).toEqual([]);
    expect(schedule.keyring!.keys.map((k) => k.rls_kit_state)).toEqual([
      'retired',
      'active',
      'standby',
    ]);
  });

  it('offers a keyring again when onChange failed, so the service never misses a rotation', async () => {
    const file = await freshFile('retry.json');
    const clock = fakeClock(T0);
    let calls = 0;
    const installed: string[] = [];
    const schedule = createKeyRotationSchedule({
      keysFile: file,
      every: '1h',
      clock: clock.now,
      onChange: (keyring) => {
        calls++;
        if (calls === 1) throw new Error('minter not ready');
        installed.push(states(keyring).join());
      },
    });
    await expect(schedule.tick()).rejects.toThrow(/minter not ready/);
    expect(schedule.keyring).toBeUndefined();
    expect(await schedule.tick()).toEqual([]); // nothing new on disk, but the keyring is offered again
    expect(calls).toBe(2);
    expect(installed).toEqual([states((await readKeyringFile(file)).keyring).join()]);
    await schedule.tick();
    expect(calls).toBe(2); // taken: not offered a third time
  });

  it('refuses bad configuration', () => {
    const bad = [
      {},
      { keysFile: 'x', store: { read: async () => ({ keys: [] }), write: async () => undefined } },
      { keysFile: 'x', every: 0 },
      { keysFile: 'x', every: '1.5h' },
      { keysFile: 'x', maxCheckIntervalMs: 0 },
    ];
    for (const options of bad) {
      let error: unknown;
      try {
        createKeyRotationSchedule(options as never);
      } catch (err) {
        error = err;
      }
      expect(isRlsKitError(error), JSON.stringify(options)).toBe(true);
    }
  });
});

describe('key rotation schedule (real timers, short windows)', () => {
  it('rotates on its own timers through two promotions, and stops', async () => {
    const file = await freshFile('timers.json', Date.now());
    const promoted: string[] = [];
    const dropped: string[] = [];
    const schedule = createKeyRotationSchedule({
      keysFile: file,
      every: 1,
      jwksCacheWindow: 1,
      tokenLifetime: 1,
      clockTolerance: 0,
      maxCheckIntervalMs: 200,
      onChange: (_k, changes) => {
        for (const c of changes) {
          if (c.action === 'promoted') promoted.push(c.kid);
          if (c.action === 'dropped') dropped.push(c.kid);
        }
      },
    });
    const ring = await schedule.start();
    expect(ring.keys.map((k) => k.rls_kit_state)).toEqual(['active', 'standby']);
    const deadline = Date.now() + 15_000;
    while ((promoted.length < 2 || dropped.length < 1) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    schedule.stop();
    expect(promoted.length).toBeGreaterThanOrEqual(2);
    expect(dropped.length).toBeGreaterThanOrEqual(1);
    const after = serializeKeyring((await readKeyringFile(file)).keyring);
    await new Promise((r) => setTimeout(r, 1500));
    expect(serializeKeyring((await readKeyringFile(file)).keyring)).toBe(after); // stopped
    const onDisk = JSON.parse(await readFile(file, 'utf8')) as Keyring;
    expect(onDisk.keys.filter((k) => k.rls_kit_state === 'active')).toHaveLength(1);
  });
});
