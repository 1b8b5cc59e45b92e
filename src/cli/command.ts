import type { Readable, Writable } from 'node:stream';

/** What a command gets instead of touching `process` directly (tests pass their own). */
export interface CliIO {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly stdin: Readable;
  readonly env: NodeJS.ProcessEnv;
  /** True when stdout is a terminal (colour, banners). */
  readonly isTTY: boolean;
}

/**
 * One `rls-kit` sub-command. Commands are thin: they parse flags, call the
 * library, print data to stdout and talk to stderr. They throw
 * {@link RlsKitError}s; `main` turns those into one line on stderr and an exit
 * code (2 for `ERR_USAGE`, 1 otherwise).
 */
export interface Command {
  /** Words that select the command, e.g. `['keys', 'generate']`. */
  readonly path: readonly string[];
  /** One line for `rls-kit --help`. */
  readonly summary: string;
  /** Usage line(s) shown by `rls-kit <cmd> --help`. */
  readonly usage: string;
  /** Runs with the arguments after the command words; resolves to the exit code. */
  run(args: string[], io: CliIO): Promise<number>;
}
