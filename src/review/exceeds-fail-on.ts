import type { FindingLevel, ReviewReport } from './types.js';

const RANK: Readonly<Record<FindingLevel, number>> = { info: 0, warn: 1, error: 2 };

/**
 * True when the report has a finding at `level` or above — what
 * `rls-kit review --fail-on LEVEL` turns into exit code 1 for CI.
 *
 * @example
 * ```ts
 * if (exceedsFailOn(report, 'warn')) process.exitCode = 1;
 * ```
 */
export function exceedsFailOn(report: ReviewReport, level: FindingLevel): boolean {
  return report.findings.some((f) => RANK[f.level] >= RANK[level]);
}
