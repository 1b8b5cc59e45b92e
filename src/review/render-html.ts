import { cellLabel, cellTone } from './format-cell.js';
import type { MatrixCell, ReviewReport, TableCommand, TableReport } from './types.js';

const COMMANDS: readonly TableCommand[] = ['select', 'insert', 'update', 'delete'];
const SHORT: Readonly<Record<TableCommand, string>> = {
  select: 'S',
  insert: 'I',
  update: 'U',
  delete: 'D',
};

const CSS = `
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa;
  --open: #b7ebc6; --closed: #eef1f4; --partial: #fde7a9; --problem: #e4c8f5; --leak: #f8a5a5; --none: #ffffff; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #fff; }
header { padding: 20px 28px; background: var(--bg); border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 6px; font-size: 22px; }
h2 { margin: 28px 0 10px; font-size: 18px; }
h3 { margin: 0 0 8px; font-size: 15px; }
main { padding: 0 28px 40px; }
code, pre { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; white-space: pre-wrap; word-break: break-word; margin: 4px 0; }
.muted { color: var(--muted); }
.stats { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 10px; }
.stat { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 110px; }
.stat b { display: block; font-size: 20px; }
.stat.error b { color: #cf222e; } .stat.warn b { color: #9a6700; } .stat.info b { color: #0969da; }
table { border-collapse: collapse; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
.matrix { font-size: 12.5px; }
.matrix td.cell { min-width: 64px; text-align: center; white-space: nowrap; }
.matrix th.persona { text-align: center; }
.matrix th.cmd { text-align: center; font-weight: 500; width: 28px; }
.cell.tone-open { background: var(--open); }
.cell.tone-closed { background: var(--closed); color: var(--muted); }
.cell.tone-partial { background: var(--partial); }
.cell.tone-problem { background: var(--problem); }
.cell.tone-leak { background: var(--leak); font-weight: 700; }
.cell.tone-none { background: var(--none); color: var(--muted); }
.legend span { display: inline-block; padding: 2px 8px; margin: 0 6px 6px 0; border-radius: 4px; border: 1px solid var(--line); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 14px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; background: #fff; }
.badge { display: inline-block; font-size: 11.5px; padding: 1px 7px; border-radius: 10px; margin-right: 4px; border: 1px solid var(--line); background: var(--bg); }
.badge.bad { background: #ffebe9; border-color: #ff8182; color: #82071e; }
.badge.good { background: #dafbe1; border-color: #4ac26b; color: #116329; }
.policy { border-top: 1px dashed var(--line); padding-top: 8px; margin-top: 8px; }
.finding { border-left: 4px solid var(--line); padding: 6px 12px; margin: 8px 0; background: var(--bg); border-radius: 0 6px 6px 0; }
.finding.error { border-color: #cf222e; } .finding.warn { border-color: #bf8700; } .finding.info { border-color: #0969da; }
.level { font-weight: 700; text-transform: uppercase; font-size: 12px; margin-right: 8px; }
.finding.error .level { color: #cf222e; } .finding.warn .level { color: #9a6700; } .finding.info .level { color: #0969da; }
.fix { margin-top: 4px; }
.grants td, .grants th { text-align: center; font-size: 12px; padding: 2px 6px; }
`;

/**
 * The report as one self-contained HTML page for a DBA's browser: inline
 * CSS, no scripts, no remote resources. A summary, the findings with their
 * fixes, the access matrix as a coloured grid (tables × persona × command;
 * each cell carries `data-outcome` and a tooltip with the detail), and a card
 * per table with its grants, policies (SQL) and the claims they read.
 *
 * @example
 * ```ts
 * await writeFile('review.html', renderHtml(report));
 * ```
 */
export function renderHtml(report: ReviewReport): string {
  const { summary, settings } = report;
  const parts: string[] = [];
  parts.push(
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // Belt and braces: even if someone adds a URL to this file later, the
    // browser must not fetch it.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<title>RLS review</title>',
    `<style>${CSS}</style></head><body>`,
    '<header>',
    '<h1>Row level security review</h1>',
    `<div class="muted">schemas ${settings.schemas.map((s) => `<code>${esc(s)}</code>`).join(', ') || '(none)'} (${esc(settings.schemasFrom)}) · tenant column <code>${esc(settings.tenantColumn)}</code> · personas ${esc(settings.personasFrom)}</div>`,
    '<div class="stats" id="summary">',
    stat('tables', `${summary.tables}`, `${summary.rlsEnabled} with RLS`),
    stat('policies', `${summary.policies}`),
    stat('functions', `${summary.functions}`),
    stat('personas', `${summary.personas}`),
    stat('errors', `${summary.findings.error}`, '', 'error'),
    stat('warnings', `${summary.findings.warn}`, '', 'warn'),
    stat('info', `${summary.findings.info}`, '', 'info'),
    '</div>',
    '</header><main>',
  );

  parts.push('<h2 id="findings">Findings</h2>');
  if (report.findings.length === 0) parts.push('<p>No findings.</p>');
  for (const f of report.findings) {
    parts.push(
      `<div class="finding ${f.level}" data-lint="${esc(f.lint)}">`,
      `<div><span class="level">${f.level}</span><code>${esc(f.lint)}</code> · <b>${esc(f.object)}</b></div>`,
      `<div>${esc(f.why)}</div>`,
      `<div class="fix"><span class="muted">fix:</span> <code>${esc(f.fix)}</code></div>`,
      '</div>',
    );
  }

  if (settings.matrix && report.personas.length > 0) {
    parts.push(
      '<h2 id="matrix">Access matrix</h2>',
      '<div class="legend">',
      '<span class="cell tone-open">allowed</span>',
      '<span class="cell tone-closed">denied / filtered / no grant</span>',
      '<span class="cell tone-partial">policy passed, constraint refused</span>',
      '<span class="cell tone-problem">error / timeout</span>',
      '<span class="cell tone-leak">another tenant’s rows</span>',
      '<span class="cell tone-none">not probed</span>',
      '</div>',
      '<table class="matrix" id="access-matrix"><thead><tr><th rowspan="2">table</th>',
      ...report.personas.map(
        (p) =>
          `<th class="persona" colspan="4" title="${esc(p.description ?? '')}">${esc(p.name)}<br><span class="muted">${esc(p.role)}</span></th>`,
      ),
      '</tr><tr>',
      ...report.personas.flatMap(() =>
        COMMANDS.map((c) => `<th class="cmd" title="${c}">${SHORT[c]}</th>`),
      ),
      '</tr></thead><tbody>',
    );
    const byKey = new Map(report.matrix.map((m) => [`${m.table}\u0000${m.persona}`, m] as const));
    for (const t of report.tables) {
      const cells = report.personas.flatMap((p) => {
        const row = byKey.get(`${t.name}\u0000${p.name}`);
        return COMMANDS.map((c) => matrixCell(t.name, p.name, c, row?.[c]));
      });
      parts.push(
        `<tr><th><a href="#t-${anchor(t.name)}">${esc(t.name)}</a></th>${cells.join('')}</tr>`,
      );
    }
    parts.push('</tbody></table>');
  }

  parts.push('<h2 id="tables">Tables</h2><div class="cards">');
  for (const t of report.tables) parts.push(tableCard(t));
  parts.push('</div>');

  if (report.functions.length > 0) {
    parts.push(
      '<h2 id="functions">Functions</h2><table><thead><tr><th>function</th><th>language</th><th>security</th><th>search_path</th><th>executable by</th><th>called by</th><th>claims</th></tr></thead><tbody>',
    );
    for (const f of report.functions) {
      parts.push(
        `<tr><td><code>${esc(f.name)}</code>${f.exposed ? ' <span class="badge">exposed</span>' : ''}</td><td>${esc(f.language)}</td>` +
          `<td>${f.securityDefiner ? '<span class="badge bad">definer</span>' : 'invoker'}</td>` +
          `<td>${f.searchPath === null ? '<span class="badge bad">mutable</span>' : `<code>${esc(f.searchPath)}</code>`}</td>` +
          `<td>${esc(f.executableBy.join(', ') || '—')}</td><td>${f.calledBy.map((c) => esc(c)).join('<br>') || '—'}</td>` +
          `<td>${esc(f.claims.map((c) => c.path).join(', ') || '—')}</td></tr>`,
      );
    }
    parts.push('</tbody></table>');
  }

  parts.push(
    '<h2 id="personas">Personas</h2><table><thead><tr><th>persona</th><th>source</th><th>role</th><th>claims</th></tr></thead><tbody>',
  );
  for (const p of report.personas) {
    parts.push(
      `<tr><td><b>${esc(p.name)}</b>${p.description ? `<br><span class="muted">${esc(p.description)}</span>` : ''}</td><td>${esc(p.source)}</td><td>${esc(p.role)}</td><td><code>${esc(JSON.stringify(p.claims))}</code></td></tr>`,
    );
  }
  parts.push('</tbody></table>');
  parts.push(
    `<p class="muted">Generated by supabase-rls-kit review at ${esc(report.volatile.generatedAt)} on ${esc(report.volatile.database)} (PostgreSQL ${esc(report.volatile.serverVersion)}) as ${esc(report.volatile.reviewer)}.</p>`,
    '</main></body></html>',
  );
  return `${parts.join('\n')}\n`;
}

function matrixCell(
  table: string,
  persona: string,
  command: TableCommand,
  cell: MatrixCell | undefined,
): string {
  if (!cell) return '<td class="cell tone-none">—</td>';
  const tone = cellTone(cell);
  const label = cellLabel(command, cell);
  const title = `${persona} ${command} on ${table}: ${label}${cell.detail ? ` — ${cell.detail}` : ''}`;
  return `<td class="cell tone-${tone}" data-table="${esc(table)}" data-persona="${esc(persona)}" data-command="${command}" data-outcome="${cell.outcome}" title="${esc(title)}">${esc(short(command, cell, label))}</td>`;
}

/** Compact text for a grid cell; the tooltip has the full label. */
function short(command: TableCommand, cell: MatrixCell, label: string): string {
  if (command === 'select' && (cell.outcome === 'allowed' || cell.outcome === 'no-rows')) {
    return `${cell.rows ?? 0}${(cell.otherTenantRows ?? 0) > 0 ? `+${cell.otherTenantRows}!` : ''}`;
  }
  if (cell.crossTenant === 'allowed')
    return `${cell.outcome === 'allowed' ? '✓' : label.split(' ')[0]}!`;
  switch (cell.outcome) {
    case 'allowed':
      return '✓';
    case 'denied':
      return cell.detail === 'no privilege' ? '—' : '✗';
    case 'no-rows':
      return '∅';
    case 'constraint':
      return '✓c';
    case 'untested':
      return '·';
    default:
      return cell.outcome;
  }
}

function tableCard(t: TableReport): string {
  const parts: string[] = [];
  parts.push(
    `<section class="card" id="t-${anchor(t.name)}">`,
    `<h3>${esc(t.name)}</h3>`,
    '<div>',
    t.rls.enabled
      ? '<span class="badge good">RLS on</span>'
      : '<span class="badge bad">RLS off</span>',
    t.rls.forced
      ? '<span class="badge good">forced</span>'
      : '<span class="badge">not forced</span>',
    t.revocationGuard
      ? '<span class="badge good">revocation guard</span>'
      : '<span class="badge">no revocation guard</span>',
    `<span class="badge">owner ${esc(t.owner)}</span>`,
    t.tenantColumn ? `<span class="badge">tenant ${esc(t.tenantColumn)}</span>` : '',
    '</div>',
  );
  const roles = Object.keys(t.grants) as (keyof TableReport['grants'])[];
  if (roles.length > 0) {
    parts.push(
      '<table class="grants" style="margin-top:8px"><thead><tr><th>grant</th>',
      ...COMMANDS.map((c) => `<th>${c}</th>`),
      '</tr></thead><tbody>',
    );
    for (const role of roles) {
      const g = t.grants[role]!;
      parts.push(
        `<tr><th>${esc(role)}</th>${COMMANDS.map((c) => `<td>${g[c] ? '✓' : '—'}</td>`).join('')}</tr>`,
      );
    }
    parts.push('</tbody></table>');
  }
  parts.push(
    `<div style="margin-top:8px">claims read: ${t.claims.map((c) => `<code>${esc(c)}</code>`).join(', ') || '<span class="muted">none</span>'}</div>`,
  );
  if (t.policies.length === 0) parts.push('<p class="muted">No policies.</p>');
  for (const p of t.policies) {
    parts.push(
      '<div class="policy">',
      `<b>${esc(p.name)}</b> <span class="badge">${p.mode}</span><span class="badge">${p.command}</span><span class="badge">to ${esc(p.roles.join(', '))}</span>`,
      p.using !== null ? `<pre>USING ${esc(p.using)}</pre>` : '',
      p.withCheck !== null ? `<pre>WITH CHECK ${esc(p.withCheck)}</pre>` : '',
      `<div class="muted">claims: ${
        p.claims
          .map(
            (c) =>
              `<code>${esc(c.path)}</code> via ${esc(c.via)}${c.in ? ` in <code>${esc(c.in)}</code>` : ''}`,
          )
          .join('; ') || 'none'
      }</div>`,
      '</div>',
    );
  }
  parts.push('</section>');
  return parts.join('\n');
}

function stat(label: string, value: string, note = '', kind = ''): string {
  return `<div class="stat ${kind}"><b>${esc(value)}</b>${esc(label)}${note ? `<div class="muted">${esc(note)}</div>` : ''}</div>`;
}

function anchor(name: string): string {
  return [...new TextEncoder().encode(name)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}
