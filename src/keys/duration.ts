import { RlsKitError } from '../errors.js';

const UNIT_SECONDS: Readonly<Record<string, number>> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
};

/**
 * Parses a duration such as `30s`, `10m`, `1h` or `7d` (or a number of
 * seconds) into whole seconds. Token lifetimes and rotation windows are
 * written this way in options, CLI flags and config files.
 *
 * Only one unit per value and whole numbers: `1h30m` and `1.5h` are refused
 * rather than guessed at, because a misread lifetime is a security bug.
 * Refusals are `ERR_USAGE` naming `what`.
 *
 * @example
 * ```ts
 * parseDuration('10m'); // 600
 * parseDuration(90); // 90
 * parseDuration('soon', 'ttl'); // throws RlsKitError ERR_USAGE
 * ```
 */
export function parseDuration(input: string | number, what = 'duration'): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input;
    throw new RlsKitError('ERR_USAGE', `the ${what} must be a whole number of seconds, 0 or more`);
  }
  const match = /^(\d{1,9})\s*(s|m|h|d)?$/.exec(input.trim());
  if (!match) {
    throw new RlsKitError(
      'ERR_USAGE',
      `the ${what} must look like 30s, 10m, 1h or 7d (one unit, whole numbers)`,
    );
  }
  return Number(match[1]) * (UNIT_SECONDS[match[2] ?? 's'] ?? 1);
}

/**
 * Formats seconds back into the shortest exact unit, for messages.
 *
 * @example
 * ```ts
 * formatDuration(3600); // '1h'
 * ```
 */
export function formatDuration(seconds: number): string {
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
