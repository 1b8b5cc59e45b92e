/**
 * bin/rls-kit.js picks what to run: the compiled dist/ in an installed
 * package, the sources in a checkout (or before the first build), so a stale
 * dist/ in a checkout never runs. Exercised on a scratch copy of the layout
 * with stub entry points that say which one ran.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
let pkg: string;

beforeEach(async () => {
  pkg = await mkdtemp(join(tmpdir(), 'rls-kit-bin-'));
  await mkdir(join(pkg, 'bin'));
  await copyFile(join(root, 'bin', 'rls-kit.js'), join(pkg, 'bin', 'rls-kit.js'));
  await writeFile(join(pkg, 'package.json'), '{"type":"module"}');
  await symlink(join(root, 'node_modules'), join(pkg, 'node_modules'), 'dir');
  await mkdir(join(pkg, 'src', 'cli'), { recursive: true });
  await writeFile(
    join(pkg, 'src', 'cli', 'main.ts'),
    "export async function main(): Promise<void> { process.stdout.write('sources'); }\n",
  );
});

afterEach(async () => {
  await rm(pkg, { recursive: true, force: true });
});

const ran = async () => (await run(process.execPath, [join(pkg, 'bin', 'rls-kit.js')])).stdout;
const build = async () => {
  await mkdir(join(pkg, 'dist', 'cli'), { recursive: true });
  await writeFile(
    join(pkg, 'dist', 'cli', 'main.js'),
    "export async function main() { process.stdout.write('dist'); }\n",
  );
};

describe('bin/rls-kit.js', () => {
  it('an installed package (dist/, no .git) runs dist/', async () => {
    await build();
    expect(await ran()).toBe('dist');
  });

  it('a checkout runs the sources even when an older dist/ is there', async () => {
    await build();
    await mkdir(join(pkg, '.git'));
    expect(await ran()).toBe('sources');
  });

  it('before the first build it runs the sources', async () => {
    expect(await ran()).toBe('sources');
  });
});
