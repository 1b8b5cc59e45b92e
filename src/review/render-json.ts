import type { ReviewReport } from './types.js';

/**
 * The report as JSON (docs/review.md documents the schema), two-space
 * indented with a final newline. `stable: true` leaves out `volatile` (time,
 * duration, server version, database name, row estimates), so the output is
 * byte-identical for the same database state — for snapshots and diffs.
 *
 * @example
 * ```ts
 * await writeFile('review.json', renderJson(report));
 * expect(renderJson(report, { stable: true })).toMatchFileSnapshot('review.json');
 * ```
 */
export function renderJson(
  report: ReviewReport,
  options: { readonly stable?: boolean } = {},
): string {
  if (options.stable) {
    const { volatile: _volatile, ...stable } = report;
    return `${JSON.stringify(stable, null, 2)}\n`;
  }
  return `${JSON.stringify(report, null, 2)}\n`;
}
