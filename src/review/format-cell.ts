import type { MatrixCell, TableCommand } from './types.js';

/**
 * The short words every renderer shows for a matrix cell: `36 rows`,
 * `allowed`, `denied`, `filtered`, … with `+N other tenant` / `cross-tenant!`
 * appended when a persona reaches another tenant's rows.
 *
 * @example
 * ```ts
 * cellLabel('select', { outcome: 'allowed', rows: 36, otherTenantRows: 0 }); // '36 rows'
 * cellLabel('update', { outcome: 'no-rows', detail: 'policy' }); // 'filtered'
 * ```
 */
export function cellLabel(command: TableCommand, cell: MatrixCell): string {
  let text: string;
  switch (cell.outcome) {
    case 'allowed':
      text = command === 'select' ? rows(cell.rows ?? 0) : 'allowed';
      break;
    case 'no-rows':
      text = command === 'select' ? '0 rows' : 'filtered';
      break;
    case 'denied':
      text = cell.detail === 'no privilege' ? 'no grant' : 'denied';
      break;
    case 'untested':
      text = '—';
      break;
    default:
      text = cell.outcome;
  }
  if ((cell.otherTenantRows ?? 0) > 0) text += ` (+${cell.otherTenantRows} other tenant)`;
  if (cell.crossTenant === 'allowed') text += ' cross-tenant!';
  return text;
}

/**
 * How a cell should look: `open` (the persona can), `closed` (it cannot),
 * `partial` (the policy let it through, a constraint stopped it), `problem`
 * (error, timeout), `leak` (another tenant's rows), `none` (not probed).
 *
 * @example
 * ```ts
 * cellTone({ outcome: 'allowed', rows: 3, otherTenantRows: 1 }); // 'leak'
 * ```
 */
export function cellTone(
  cell: MatrixCell,
): 'open' | 'closed' | 'partial' | 'problem' | 'leak' | 'none' {
  if ((cell.otherTenantRows ?? 0) > 0 || cell.crossTenant === 'allowed') return 'leak';
  switch (cell.outcome) {
    case 'allowed':
      return 'open';
    case 'constraint':
      return 'partial';
    case 'no-rows':
    case 'denied':
      return 'closed';
    case 'error':
    case 'timeout':
      return 'problem';
    default:
      return 'none';
  }
}

function rows(n: number): string {
  return `${n} row${n === 1 ? '' : 's'}`;
}
