#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RlsKitError } from '../errors.js';
import type { CliIO, Command } from './command.js';
import { commands } from './commands/index.js';

const HELP_FLAGS = new Set(['-h', '--help']);

/** Commands as aligned `  name  summary` lines, each named by its path from word `from` on. */
function commandLines(list: readonly Command[], from = 0): string[] {
  const names = list.map((c) => c.path.slice(from).join(' '));
  const width = Math.max(...names.map((n) => n.length), 8);
  return list.map((c, i) => `  ${names[i]!.padEnd(width)}  ${c.summary}`);
}

function topHelp(): string {
  const lines = commandLines(commands);
  return [
    'rls-kit — Row Level Security from JWT claims, the Supabase way',
    '',
    'usage: rls-kit <command> [flags]   (rls-kit <command> --help for its flags)',
    '',
    'commands:',
    ...lines,
    '',
    'stdout is data, stderr is talk. --db-url defaults to DATABASE_URL.',
  ].join('\n');
}

function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  let best: { command: Command; rest: string[] } | undefined;
  for (const command of commands) {
    const n = command.path.length;
    if (argv.length >= n && command.path.every((w, i) => argv[i] === w)) {
      if (!best || n > best.command.path.length) best = { command, rest: argv.slice(n) };
    }
  }
  return best;
}

/**
 * Runs `rls-kit` with `argv` (without `node` and the script) and resolves to
 * the exit code: 0 ok, 1 rejected input, 2 bad usage. Never throws.
 *
 * @example
 * ```ts
 * const code = await runCli(['keys', 'generate'], io);
 * ```
 */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  if (argv.length === 0 || (argv.length === 1 && HELP_FLAGS.has(argv[0]!))) {
    (argv.length === 0 ? io.stderr : io.stdout).write(`${topHelp()}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const found = findCommand(argv);
  if (!found) {
    const group = commands.filter((c) => c.path.length > 1 && c.path[0] === argv[0]);
    if (group.length > 0) {
      const names = group.map((c) => c.path.slice(1).join(' '));
      const list = `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
      if (argv.length === 2 && HELP_FLAGS.has(argv[1]!)) {
        io.stdout.write(
          `usage: rls-kit ${argv[0]} <${names.join('|')}> [flags]\n\n${commandLines(group, 1).join('\n')}\n`,
        );
        return 0;
      }
      const what =
        argv.length === 1 || argv[1]!.startsWith('-')
          ? `"${argv[0]}" needs a subcommand`
          : `unknown subcommand "${argv[0]} ${argv[1]}"`;
      io.stderr.write(`rls-kit: ${what}: use ${list} (rls-kit ${argv[0]} --help) [ERR_USAGE]\n`);
      return 2;
    }
    io.stderr.write(
      `rls-kit: unknown command "${argv.slice(0, 2).join(' ')}": run rls-kit --help for the list [ERR_USAGE]\n`,
    );
    return 2;
  }
  if (found.rest.some((a) => HELP_FLAGS.has(a))) {
    io.stdout.write(`usage: ${found.command.usage}\n\n${found.command.summary}\n`);
    return 0;
  }
  try {
    return await found.command.run(found.rest, io);
  } catch (err) {
    return reportError(err, io);
  }
}

/** One line on stderr; the stack only with RLS_KIT_DEBUG=1. */
export function reportError(err: unknown, io: CliIO): number {
  if (err instanceof RlsKitError) {
    io.stderr.write(`rls-kit: ${err.message} [${err.code}]\n`);
    if (io.env.RLS_KIT_DEBUG === '1' && err.cause)
      io.stderr.write(`${String((err.cause as Error).stack ?? err.cause)}\n`);
    return err.code === 'ERR_USAGE' ? 2 : 1;
  }
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  io.stderr.write(`rls-kit: unexpected error: ${message} (set RLS_KIT_DEBUG=1 for details)\n`);
  if (io.env.RLS_KIT_DEBUG === '1' && err instanceof Error) io.stderr.write(`${err.stack}\n`);
  return 1;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/** Runs the CLI on this process's arguments and sets `process.exitCode`. */
export async function main(): Promise<void> {
  const io: CliIO = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
  };
  try {
    process.exitCode = await runCli(process.argv.slice(2), io);
  } catch (err) {
    process.exitCode = reportError(err, io);
  }
}

if (isMain()) await main();
