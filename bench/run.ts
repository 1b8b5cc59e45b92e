/**
 * `npm run bench -- <name> [<name>...]`: runs `bench/<name>.ts`'s exported
 * `run()`. A benchmark either reports by itself (returns nothing: it wrote
 * its own JSON and Markdown) or returns a {@link BenchReport}, which this
 * runner writes to `bench/results/<name>.json` (git-ignored) and prints as
 * Markdown on stdout. Progress and errors go to stderr.
 *
 * @example
 * ```sh
 * npm run bench -- tokens
 * npm run bench            # lists the benchmarks
 * ```
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const NAME = /^[a-z0-9][a-z0-9-]*$/;

/** A cell of a result table. */
export type Cell = string | number | boolean | null;

/** What a benchmark's `run()` may return for the runner to record and print. */
export interface BenchReport {
  /** Heading of the Markdown output. */
  title: string;
  /** The measurements, one object per table row (columns in first-seen key order). */
  rows: Record<string, Cell>[];
  /** Markdown to print instead of the generic table built from `rows`. */
  markdown?: string;
  /** Headline numbers (ratios, goals), printed as a list under the table. */
  summary?: Record<string, Cell>;
  /** Free text lines printed after the summary (method, caveats). */
  notes?: string[];
  /** Anything else worth keeping in the JSON (configuration, raw rounds). */
  details?: unknown;
}

/** The generic Markdown rendering of a report: title, table, summary, notes. */
export function renderMarkdown(report: BenchReport): string {
  const lines = [`## ${report.title}`, ''];
  if (report.markdown !== undefined) {
    lines.push(report.markdown.trimEnd());
  } else if (report.rows.length > 0) {
    const columns: string[] = [];
    for (const row of report.rows)
      for (const k of Object.keys(row)) if (!columns.includes(k)) columns.push(k);
    const numeric = columns.map((c) =>
      report.rows.every((r) => r[c] === undefined || r[c] === null || typeof r[c] === 'number'),
    );
    lines.push(`| ${columns.join(' | ')} |`);
    lines.push(`|${numeric.map((n) => (n ? '---:' : '---')).join('|')}|`);
    for (const row of report.rows)
      lines.push(`| ${columns.map((c) => formatCell(row[c])).join(' | ')} |`);
  }
  if (report.summary) {
    lines.push('');
    for (const [k, v] of Object.entries(report.summary)) lines.push(`- ${k}: ${formatCell(v)}`);
  }
  if (report.notes?.length) {
    lines.push('');
    for (const note of report.notes) lines.push(note);
  }
  return `${lines.join('\n')}\n`;
}

function formatCell(value: Cell | undefined): string {
  if (value === undefined || value === null) return '–';
  if (typeof value === 'number')
    return Number.isInteger(value) ? value.toLocaleString('en-US') : String(value);
  return String(value).replace(/\|/g, '\\|');
}

/** Benchmarks available: every `bench/<name>.ts` that exports `run()` (helpers such as tokens-mint.ts do not). */
function available(): string[] {
  return readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
    .filter((f) =>
      /^export (async )?function run\(/m.test(readFileSync(path.join(BENCH_DIR, f), 'utf8')),
    )
    .map((f) => f.slice(0, -3))
    .filter((n) => NAME.test(n))
    .sort();
}

function isReport(value: unknown): value is BenchReport {
  return typeof value === 'object' && value !== null && Array.isArray((value as BenchReport).rows);
}

async function runOne(name: string): Promise<void> {
  const file = path.join(BENCH_DIR, `${name}.ts`);
  if (!NAME.test(name) || !existsSync(file)) {
    throw new Error(`no benchmark "${name}" (available: ${available().join(', ')})`);
  }
  const mod = (await import(pathToFileURL(file).href)) as { run?: unknown };
  if (typeof mod.run !== 'function') throw new Error(`bench/${name}.ts exports no run() function`);
  const started = Date.now();
  process.stderr.write(`[bench] ${name}: running\n`);
  const result: unknown = await (mod.run as () => Promise<unknown>)();
  if (!isReport(result)) return; // the benchmark reported by itself
  const record = {
    benchmark: name,
    at: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      loadAverage1m: Math.round((os.loadavg()[0] ?? 0) * 10) / 10,
    },
    ...result,
  };
  await fs.mkdir(RESULTS_DIR, { recursive: true });
  const out = path.join(RESULTS_DIR, `${name}.json`);
  await fs.writeFile(out, `${JSON.stringify(record, null, 2)}\n`);
  process.stdout.write(renderMarkdown(result));
  process.stdout.write(`\nJSON: ${path.relative(process.cwd(), out)}\n`);
}

/** Runs the benchmarks named in `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const names = argv.filter((a) => a !== '--');
  if (names.length === 0) {
    process.stderr.write(
      `usage: npm run bench -- <name> [<name>...]\navailable: ${available().join(', ')}\n`,
    );
    return 2;
  }
  for (const name of names) {
    try {
      await runOne(name);
    } catch (err) {
      const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
      process.stderr.write(`[bench] ${name}: ${message}\n`);
      if (process.env.BENCH_DEBUG === '1' && err instanceof Error)
        process.stderr.write(`${err.stack}\n`);
      return 1;
    }
  }
  return 0;
}

if (
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href
) {
  process.exitCode = await main(process.argv.slice(2));
}
