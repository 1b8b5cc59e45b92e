import { writeFile } from 'node:fs/promises';
import { describeUrl, openDatabase } from '../../db/database.js';
import { RlsKitError } from '../../errors.js';
import {
  exceedsFailOn,
  type FindingLevel,
  renderHtml,
  renderJson,
  renderMarkdown,
  renderText,
  reviewDatabase,
} from '../../review/index.js';
import { loadClaimSchemaFile } from '../../tokens/load-claim-schema.js';
import { parseFlags } from '../args.js';
import type { Command } from '../command.js';

const FORMATS = ['text', 'json', 'markdown', 'html'] as const;
const LEVELS: readonly FindingLevel[] = ['info', 'warn', 'error'];

/**
 * `rls-kit review [--db-url URL] [--personas FILE] [--format text|json|markdown|html]
 * [--fail-on info|warn|error] …` — the DBA report: which persona can do what
 * to which table, which claims each policy trusts, and what is dangerous or
 * slow. The report goes to stdout (or `--output FILE`); exit 1 when
 * `--fail-on` is given and a finding at or above that level exists.
 *
 * @example
 * ```sh
 * rls-kit review --db-url "$DATABASE_URL" --format markdown --fail-on error > review.md
 * ```
 */
export const reviewCommand: Command = {
  path: ['review'],
  summary: 'review row level security: lints, claims each policy reads, persona access matrix',
  usage:
    'rls-kit review [--db-url URL] [--personas FILE] [--format text|json|markdown|html] [--fail-on info|warn|error]\n' +
    '               [--schema S]... [--claim-schema FILE] [--tenant-column C] [--tenant-claim C]\n' +
    '               [--no-matrix] [--lock-timeout MS] [--statement-timeout MS] [--output FILE]\n\n' +
    '  --db-url URL          database to review (default: DATABASE_URL, else the embedded database);\n' +
    '                        a read-only login is enough; it must be able to SET ROLE anon/authenticated\n' +
    '                        for the matrix. Nothing is ever committed.\n' +
    '  --personas FILE       JSON or YAML: persona name → claims (default: derived from the claim schema)\n' +
    '  --format F            text (default), json, markdown or html\n' +
    '  --fail-on LEVEL       exit 1 when a finding at LEVEL or above exists (info < warn < error)\n' +
    '  --schema S            schema to review (repeatable; default: pgrst.db_schemas, else public)\n' +
    '  --claim-schema FILE   JSON or YAML claim schema (default: the example: org_id, user_role)\n' +
    '  --tenant-column C     column naming a row’s tenant (default org_id)\n' +
    '  --tenant-claim C      claim naming the persona’s tenant (default org_id)\n' +
    '  --no-matrix           lints only, no probes\n' +
    '  --lock-timeout MS     per statement (default 1000)\n' +
    '  --statement-timeout MS  per statement (default 10000)\n' +
    '  --output FILE         write the report there instead of stdout',
  async run(args, io) {
    const { values } = parseFlags(
      args,
      {
        'db-url': { type: 'string' },
        personas: { type: 'string' },
        format: { type: 'string' },
        'fail-on': { type: 'string' },
        schema: { type: 'string', multiple: true },
        'claim-schema': { type: 'string' },
        'tenant-column': { type: 'string' },
        'tenant-claim': { type: 'string' },
        'no-matrix': { type: 'boolean' },
        'lock-timeout': { type: 'string' },
        'statement-timeout': { type: 'string' },
        output: { type: 'string' },
      },
      'review',
    );
    const format = values.format ?? 'text';
    if (!(FORMATS as readonly string[]).includes(format)) {
      throw new RlsKitError(
        'ERR_USAGE',
        `--format must be one of ${FORMATS.join(', ')} (see: rls-kit review --help)`,
      );
    }
    const failOn = values['fail-on'];
    if (failOn !== undefined && !(LEVELS as readonly string[]).includes(failOn)) {
      throw new RlsKitError(
        'ERR_USAGE',
        `--fail-on must be one of ${LEVELS.join(', ')} (see: rls-kit review --help)`,
      );
    }
    const lockTimeoutMs = milliseconds(values['lock-timeout'], 'lock-timeout');
    const statementTimeoutMs = milliseconds(values['statement-timeout'], 'statement-timeout');
    const claimSchema = values['claim-schema']
      ? await loadClaimSchemaFile(values['claim-schema'])
      : undefined;

    const db = await openDatabase({ url: values['db-url'] ?? (io.env.DATABASE_URL || undefined) });
    try {
      io.stderr.write(
        `reviewing ${db.embedded ? 'the embedded database' : describeUrl(db.url)} (every probe is rolled back)\n`,
      );
      const report = await reviewDatabase({
        url: db.url,
        schemas: values.schema,
        personasFile: values.personas,
        claimSchema,
        tenantColumn: values['tenant-column'],
        tenantClaim: values['tenant-claim'],
        matrix: !values['no-matrix'],
        lockTimeoutMs,
        statementTimeoutMs,
      });
      const text =
        format === 'json'
          ? renderJson(report)
          : format === 'markdown'
            ? renderMarkdown(report)
            : format === 'html'
              ? renderHtml(report)
              : renderText(report, { color: io.isTTY && !values.output && !io.env.NO_COLOR });
      if (values.output) {
        await writeFile(values.output, text);
        io.stderr.write(`wrote ${values.output}\n`);
      } else {
        io.stdout.write(text);
      }
      const f = report.summary.findings;
      io.stderr.write(
        `${report.summary.tables} tables, ${report.summary.personas} personas: ${f.error} error, ${f.warn} warn, ${f.info} info (${report.volatile.durationMs} ms)\n`,
      );
      return failOn !== undefined && exceedsFailOn(report, failOn as FindingLevel) ? 1 : 0;
    } finally {
      await db.close();
    }
  },
};

function milliseconds(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 3_600_000) {
    throw new RlsKitError(
      'ERR_USAGE',
      `--${flag} must be a whole number of milliseconds between 1 and 3600000 (see: rls-kit review --help)`,
    );
  }
  return n;
}
