import type { StatementError } from './review-session.js';

/**
 * Code-point order: the same on every server, locale and Node version, so
 * reports sort identically everywhere.
 *
 * @example
 * ```ts
 * ['b', 'B', 'a'].sort(compare); // ['B', 'a', 'b']
 * ```
 */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A statement error as `SQLSTATE: message` for findings and matrix cells.
 *
 * @example
 * ```ts
 * describe({ code: '42501', message: 'permission denied for table t' }); // '42501: permission denied for table t'
 * ```
 */
export function describe(error: StatementError): string {
  return `${error.code}: ${error.message}`;
}
