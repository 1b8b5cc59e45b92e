import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** A revocation list running in a child process (test/fixtures/revocation-watcher.ts). */
export interface RevocationWatcher {
  readonly proc: ChildProcessWithoutNullStreams;
  /** The next stdout line starting with `prefix` (20 s at most unless `timeoutMs` says otherwise). */
  next(prefix: string): Promise<string>;
  /** Stops the child's list and waits for it to exit (kills it after 5 s). */
  end(): Promise<void>;
}

/**
 * Starts a revocation list in a separate Node process, over LISTEN or, with
 * `redis` and `channel`, over the Redis transport: the multi-process
 * propagation tests and `npm run bench -- revocation` measure commit → "seen"
 * in each.
 *
 * @example
 * ```ts
 * const w = spawnRevocationWatcher({ url: db.url });
 * await w.next('ready');
 * w.proc.stdin.write(`${jti}\n`);
 * const [, , at] = (await w.next(`seen ${jti}`)).split(' ');
 * ```
 */
export function spawnRevocationWatcher(options: {
  url: string;
  redis?: string;
  channel?: string;
  /** How long {@link RevocationWatcher.next} waits for a line (default 20 s). */
  timeoutMs?: number;
  /** More environment for the child (e.g. `PGAPPNAME`, to count its backends). */
  env?: Readonly<Record<string, string>>;
}): RevocationWatcher {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...options.env,
    REV_URL: options.url,
  };
  if (options.redis !== undefined) env.REV_REDIS = options.redis;
  if (options.channel !== undefined) env.REV_CHANNEL = options.channel;
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(new URL('../fixtures/revocation-watcher.ts', import.meta.url)),
    ],
    { cwd: fileURLToPath(new URL('../..', import.meta.url)), env },
  );
  const queue: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: proc.stdout }).on('line', (line) => {
    queue.push(line);
    for (const w of waiters.splice(0)) w();
  });
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return {
    proc,
    async next(prefix) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = queue.findIndex((l) => l.startsWith(prefix));
        if (i >= 0) return queue.splice(i, 1)[0]!;
        if (Date.now() > deadline || proc.exitCode !== null) {
          throw new Error(`child list: no "${prefix}" line; stderr: ${stderr.slice(0, 500)}`);
        }
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    async end() {
      proc.stdin.end('\n');
      if (proc.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          proc.kill();
          resolve();
        }, 5000);
        proc.on('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
