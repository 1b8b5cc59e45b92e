import { cellLabel, cellTone } from './format-cell.js';
import type { FindingLevel, ReviewReport, TableCommand } from './types.js';

const COMMANDS: readonly TableCommand[] = ['select', 'insert', 'update', 'delete'];
const LEVEL_ICON: Readonly<Record<FindingLevel, string>> = {
  error: '🔴 error',
  warn: '🟠 warn',
  info: '🔵 info',
};
const TONE_ICON: Readonly<Record<ReturnType<typeof cellTone>, string>> = {
  open: '🟢',
  closed: '⚪',
  partial: '🟡',
  problem: '🟣',
  leak: '🔴',
  none: '',
};

/**
 * The report as GitHub-flavoured Markdown for a pull-request comment:
 * summary line, findings (with fixes) first, then the access matrix per
 * table and the policies with their SQL in collapsible sections.
 *
 * @example
 * ```ts
 * await writeFile('review.md', renderMarkdown(report)); // gh pr comment --body-file review.md
 * ```
 */
export function renderMarkdown(report: ReviewReport): string {
  const { summary, settings } = report;
  const out: string[] = [];
  out.push(
    '## RLS review',
    '',
    `**${summary.findings.error} error · ${summary.findings.warn} warn · ${summary.findings.info} info** — ` +
      `${summary.tables} tables (${summary.rlsEnabled} with RLS), ${summary.policies} policies, ` +
      `${summary.functions} functions, ${summary.personas} personas; schemas ${settings.schemas.map(code).join(', ') || '(none)'} (${settings.schemasFrom})`,
    '',
    '### Findings',
    '',
  );
  if (report.findings.length === 0) out.push('No findings.', '');
  else {
    out.push('| level | lint | object | why | fix |', '|---|---|---|---|---|');
    for (const f of report.findings) {
      out.push(row([LEVEL_ICON[f.level], code(f.lint), code(f.object), cell(f.why), cell(f.fix)]));
    }
    out.push('');
  }

  if (settings.matrix && report.matrix.length > 0) {
    out.push(
      '### Access matrix',
      '',
      '🟢 allowed · ⚪ denied or filtered · 🟡 policy passed, a constraint refused · 🟣 error/timeout · 🔴 another tenant’s rows',
      '',
    );
    for (const t of report.tables) {
      const rows = report.matrix.filter((m) => m.table === t.name);
      if (rows.length === 0) continue;
      out.push(
        `#### ${code(t.name)}`,
        '',
        '| persona | select | insert | update | delete |',
        '|---|---|---|---|---|',
      );
      for (const r of rows) {
        out.push(
          row([
            code(r.persona),
            ...COMMANDS.map((c) =>
              cell(`${TONE_ICON[cellTone(r[c])]} ${cellLabel(c, r[c])}`.trim()),
            ),
          ]),
        );
      }
      out.push('');
    }
  }

  out.push(
    '### Tables',
    '',
    '| table | RLS | forced | owner | policies | revocation guard | claims read |',
    '|---|---|---|---|---|---|---|',
  );
  for (const t of report.tables) {
    out.push(
      row([
        code(t.name),
        t.rls.enabled ? 'on' : '**off**',
        t.rls.forced ? 'yes' : 'no',
        code(t.owner),
        String(t.policies.length),
        t.revocationGuard ? 'yes' : 'no',
        t.claims.map(code).join(', ') || '—',
      ]),
    );
  }
  out.push('');
  for (const t of report.tables) {
    if (t.policies.length === 0) continue;
    out.push(`<details><summary>Policies of <code>${html(t.name)}</code></summary>`, '');
    for (const p of t.policies) {
      out.push(
        `- **${cell(p.name)}** — ${p.mode} ${p.command} to ${p.roles.map(code).join(', ')}; claims: ${p.claims.map((c) => code(c.in ? `${c.path} (in ${c.in})` : c.path)).join(', ') || '—'}`,
      );
      if (p.using !== null) out.push('', '  ```sql', `  using ${p.using}`, '  ```');
      if (p.withCheck !== null) out.push('', '  ```sql', `  with check ${p.withCheck}`, '  ```');
    }
    out.push('', '</details>', '');
  }
  return `${out.join('\n')}\n`;
}

function row(cells: readonly string[]): string {
  return `| ${cells.join(' | ')} |`;
}

/** Inline code that survives table cells (pipes and backticks). */
function code(text: string): string {
  const clean = text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const fence = clean.includes('`') ? '``' : '`';
  return `${fence}${clean}${fence}`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ').replace(/</g, '&lt;');
}

function html(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
