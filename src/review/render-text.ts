import { cellLabel, cellTone } from './format-cell.js';
import type { FindingLevel, ReviewReport, TableCommand } from './types.js';

/**
 * Options of {@link renderText}.
 *
 * @example
 * ```ts
 * const options: RenderTextOptions = { color: Boolean(process.stdout.isTTY) };
 * ```
 */
export interface RenderTextOptions {
  /** ANSI colours (the CLI turns them on only when stdout is a terminal). */
  readonly color?: boolean;
}

const COMMANDS: readonly TableCommand[] = ['select', 'insert', 'update', 'delete'];

const ANSI = {
  reset: '\u001b[0m',
  bold: '\u001b[1m',
  dim: '\u001b[2m',
  red: '\u001b[31m',
  green: '\u001b[32m',
  yellow: '\u001b[33m',
  blue: '\u001b[34m',
  magenta: '\u001b[35m',
} as const;

/**
 * The report for a terminal: summary, tables, the access matrix per table
 * and the findings with their fixes, in aligned columns. Colour only when
 * asked for (`color: true`), so piped output stays plain text.
 *
 * @example
 * ```ts
 * process.stdout.write(renderText(report, { color: process.stdout.isTTY }));
 * ```
 */
export function renderText(report: ReviewReport, options: RenderTextOptions = {}): string {
  const paint = (code: string, text: string) =>
    options.color ? `${code}${text}${ANSI.reset}` : text;
  const out: string[] = [];
  const { summary, settings } = report;
  out.push(
    paint(ANSI.bold, 'rls-kit review'),
    `schemas: ${settings.schemas.join(', ') || '(none)'} (${settings.schemasFrom})  ·  ${summary.tables} tables (${summary.rlsEnabled} with RLS)  ·  ${summary.policies} policies  ·  ${summary.functions} functions  ·  ${summary.personas} personas (${settings.personasFrom})`,
    `findings: ${paint(ANSI.red, `${summary.findings.error} error`)}, ${paint(ANSI.yellow, `${summary.findings.warn} warn`)}, ${paint(ANSI.blue, `${summary.findings.info} info`)}`,
    '',
  );

  out.push(paint(ANSI.bold, 'TABLES'));
  out.push(
    ...table(
      ['table', 'rls', 'forced', 'owner', 'policies', 'guard', 'claims read'],
      report.tables.map((t) => [
        t.name,
        t.rls.enabled ? 'on' : 'OFF',
        t.rls.forced ? 'yes' : 'no',
        t.owner,
        String(t.policies.length),
        t.revocationGuard ? 'yes' : 'no',
        t.claims.join(', ') || '-',
      ]),
    ).map((l) => `  ${l}`),
    '',
  );

  out.push(paint(ANSI.bold, 'POLICIES'));
  for (const t of report.tables) {
    if (t.policies.length === 0) continue;
    out.push(`  ${t.name}`);
    out.push(
      ...table(
        ['policy', 'mode', 'command', 'to', 'claims'],
        t.policies.map((p) => [
          p.name,
          p.mode,
          p.command,
          p.roles.join(', '),
          p.claims.map((c) => (c.in ? `${c.path} (in ${c.in})` : c.path)).join(', ') || '-',
        ]),
      ).map((l) => `    ${l}`),
    );
  }
  out.push('');

  if (report.settings.matrix) {
    out.push(paint(ANSI.bold, 'ACCESS MATRIX'));
    for (const t of report.tables) {
      const rows = report.matrix.filter((m) => m.table === t.name);
      if (rows.length === 0) continue;
      out.push(`  ${t.name}`);
      const header = ['persona', ...COMMANDS];
      const cells = rows.map((r) => [r.persona, ...COMMANDS.map((c) => cellLabel(c, r[c]))]);
      const widths = header.map((h, i) =>
        Math.max(h.length, ...cells.map((row) => row[i]!.length)),
      );
      out.push(
        `    ${header
          .map((h, i) => h.padEnd(widths[i]!))
          .join('  ')
          .trimEnd()}`,
      );
      for (const [i, r] of rows.entries()) {
        const line = cells[i]!.map((text, j) => {
          const padded = text.padEnd(widths[j]!);
          if (j === 0) return padded;
          return paint(TONE[cellTone(r[COMMANDS[j - 1]!])], padded);
        });
        out.push(`    ${line.join('  ').trimEnd()}`);
      }
    }
    out.push('');
  }

  out.push(paint(ANSI.bold, 'FINDINGS'));
  if (report.findings.length === 0) out.push('  none');
  for (const f of report.findings) {
    out.push(
      `  ${paint(LEVEL[f.level], f.level.toUpperCase().padEnd(5))}  ${f.lint}  ${f.object}`,
      `         ${f.why}`,
      `         fix: ${f.fix}`,
    );
  }
  return `${out.join('\n')}\n`;
}

const TONE: Readonly<Record<ReturnType<typeof cellTone>, string>> = {
  open: ANSI.green,
  closed: ANSI.dim,
  partial: ANSI.yellow,
  problem: ANSI.magenta,
  leak: `${ANSI.bold}${ANSI.red}`,
  none: ANSI.dim,
};

const LEVEL: Readonly<Record<FindingLevel, string>> = {
  error: `${ANSI.bold}${ANSI.red}`,
  warn: ANSI.yellow,
  info: ANSI.blue,
};

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
