import { type ParseArgsConfig, parseArgs } from 'node:util';
import { RlsKitError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** What {@link parseFlags} returns: typed flag values and the positionals. */
export type ParsedFlags<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>
>;

/**
 * `node:util` parseArgs in strict mode, with its errors turned into
 * `ERR_USAGE` (exit 2) that name the bad flag and point at `--help`.
 *
 * @example
 * ```ts
 * const { values, positionals } = parseFlags(args, { 'db-url': { type: 'string' } }, 'migrate');
 * ```
 */
export function parseFlags<O extends Options>(
  args: string[],
  options: O,
  command: string,
  allowPositionals = false,
): ParsedFlags<O> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (err) {
    // parseArgs explains itself over several lines (e.g. "use '--jti=-XYZ'
    // for a value starting with a dash"): keep all of it, on one line.
    const message =
      err instanceof Error
        ? err.message
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean)
            .join(' ')
        : String(err);
    throw new RlsKitError('ERR_USAGE', `${message} (see: rls-kit ${command} --help)`, {
      cause: err,
    });
  }
}

/** A required string flag, or `ERR_USAGE` naming it. */
export function requireFlag(value: string | undefined, flag: string, command: string): string {
  if (value === undefined || value === '') {
    throw new RlsKitError('ERR_USAGE', `--${flag} is required (see: rls-kit ${command} --help)`);
  }
  return value;
}
