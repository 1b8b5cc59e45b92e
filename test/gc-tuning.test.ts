/**
 * tuneGarbageCollector(): V8's allocation-site pretenuring off for the
 * process. Observed through V8 itself (`%InYoungGeneration`, in a child
 * process started with --allow-natives-syntax): a literal whose objects all
 * survive young collections is allocated in the old generation from then on
 * — unless the tuning ran first.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const moduleUrl = new URL('../src/server/tune-garbage-collector.ts', import.meta.url).href;

// Keeps the newest objects of two literals alive in a ring (so V8 sees nearly
// all of them survive each young collection), round after round, until fresh
// objects of those literals start in the old generation — or 20 rounds pass.
// The child runs with a 1 MiB semi-space, so young collections come often
// and the ring outlives every one of them whatever the loader allocated.
const SCRIPT = `
import { tuneGarbageCollector } from ${JSON.stringify(moduleUrl)};
const calls = process.argv.includes('--tune') ? [tuneGarbageCollector(), tuneGarbageCollector()] : [];
const young = new Function('x', 'return %InYoungGeneration(x)');
function row(i) { return { id: i, tags: [i] }; }
function list(i) { return [i, i + 1]; }
const RING = 1 << 17;
const ring = new Array(RING);
let n = 0;
let old = 0;
let rounds = 0;
while (rounds < 20 && old === 0) {
  for (let i = 0; i < 200000; i++) {
    ring[n++ & (RING - 1)] = row(i);
    ring[n++ & (RING - 1)] = list(i);
  }
  rounds++;
  for (let i = 0; i < 100; i++) { if (!young(row(i))) old++; if (!young(list(i))) old++; }
}
process.stdout.write(JSON.stringify({ calls, old, rounds }));
`;

let dir: string;
let script: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rls-kit-gc-'));
  script = join(dir, 'pretenure.mjs');
  await writeFile(script, SCRIPT);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function probe(
  ...args: string[]
): Promise<{ calls: boolean[]; old: number; rounds: number }> {
  const { stdout } = await run(
    process.execPath,
    ['--allow-natives-syntax', '--max-semi-space-size=1', '--import', 'tsx', script, ...args],
    { cwd: root },
  );
  return JSON.parse(stdout) as { calls: boolean[]; old: number; rounds: number };
}

describe('tuneGarbageCollector', () => {
  it('without it, V8 moves long-surviving literals to the old generation (what it guards against)', async () => {
    const { old } = await probe();
    expect(old).toBeGreaterThan(0);
  }, 60_000);

  it('with it, new objects are born young; it applies once and says so', async () => {
    const { calls, old, rounds } = await probe('--tune');
    expect(calls).toEqual([true, false]);
    expect(old).toBe(0);
    expect(rounds).toBe(20);
  }, 60_000);
});
