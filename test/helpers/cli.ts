import { PassThrough, Readable } from 'node:stream';
import type { CliIO } from '../../src/cli/command.js';
import { runCli } from '../../src/cli/main.js';

/** {@link CliIO} on in-memory streams, with what was written so far. */
export interface MemoryIO extends CliIO {
  /** Everything written to stdout, decoded once (no split multi-byte characters). */
  out(): string;
  /** Everything written to stderr. */
  err(): string;
}

/** The outcome of one {@link runCliCaptured}. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * In-memory streams for `runCli`, so CLI tests need no child process.
 *
 * @example
 * ```ts
 * const io = memoryIO({ env: { DATABASE_URL: url } });
 * expect(await runCli(['migrate'], io)).toBe(0);
 * expect(io.err()).toContain('applied');
 * ```
 */
export function memoryIO(
  options: { env?: NodeJS.ProcessEnv; isTTY?: boolean; stdin?: string } = {},
): MemoryIO {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(Buffer.from(c)));
  stderr.on('data', (c: Buffer) => err.push(Buffer.from(c)));
  return {
    stdout,
    stderr,
    stdin: Readable.from(options.stdin === undefined ? [] : [options.stdin]),
    env: options.env ?? {},
    isTTY: options.isTTY ?? false,
    out: () => Buffer.concat(out).toString('utf8'),
    err: () => Buffer.concat(err).toString('utf8'),
  };
}

/**
 * Runs `rls-kit argv` in-process and returns its exit code and output.
 *
 * @example
 * ```ts
 * const run = await runCliCaptured(['inspect', token]);
 * expect(run.code).toBe(0);
 * ```
 */
export async function runCliCaptured(
  argv: string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<CliRun> {
  const io = memoryIO({ env: options.env, stdin: options.stdin ?? '' });
  const code = await runCli(argv, io);
  return { code, stdout: io.out(), stderr: io.err() };
}
