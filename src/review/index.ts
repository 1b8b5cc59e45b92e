/**
 * The policy review capability (`supabase-rls-kit/review`): reads a
 * database's catalog, finds the JWT claims every policy trusts (with the
 * real Postgres parser), probes what each persona can do to each table in
 * always-rolled-back transactions, lints the lot, and renders the report as
 * text, JSON, Markdown or a self-contained HTML page.
 *
 * @example
 * ```ts
 * import { reviewDatabase, renderHtml, exceedsFailOn } from 'supabase-rls-kit/review';
 * const report = await reviewDatabase({ url: process.env.DATABASE_URL! });
 * await writeFile('review.html', renderHtml(report));
 * if (exceedsFailOn(report, 'error')) process.exitCode = 1;
 * ```
 *
 * @module
 */

export {
  analyzeExpression,
  analyzeSqlFunction,
  type ClaimRead,
  loadSqlParser,
  type SqlAnalysis,
} from './analyze-sql.js';
export { exceedsFailOn } from './exceeds-fail-on.js';
export { LINTS, type LintId } from './lint.js';
export { type LoadedPersonas, loadPersonasFile, parsePersonas } from './load-personas.js';
export type { Persona } from './persona.js';
export { renderHtml } from './render-html.js';
export { renderJson } from './render-json.js';
export { renderMarkdown } from './render-markdown.js';
export { type RenderTextOptions, renderText } from './render-text.js';
export { type ReviewOptions, reviewDatabase } from './review-database.js';
export type {
  ApiRole,
  ClaimUse,
  CommandGrants,
  Finding,
  FindingLevel,
  FindingObjectType,
  FunctionReport,
  MatrixCell,
  MatrixRow,
  PersonaReport,
  PolicyReport,
  ProbeOutcome,
  ReviewReport,
  ReviewSettings,
  ReviewSummary,
  ReviewVolatile,
  TableCommand,
  TableReport,
} from './types.js';
