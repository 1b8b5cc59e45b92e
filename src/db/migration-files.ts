import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModule, type Node, parseSync, type SqlError, scanSync } from 'libpg-query';
import { RlsKitError } from '../errors.js';

/** One migration file of a folder: `<version>_<name>.sql`. */
export interface MigrationFile {
  /** The 14-digit timestamp, e.g. `20250101000000` (what the history table stores). */
  version: string;
  /** The part after the version, e.g. `rls_kit_core`. */
  name: string;
  /** Path of the file (as listed: symlinks are not resolved, they are followed when read). */
  path: string;
}

/**
 * The kit's own installable migrations. Resolved from this source file, not
 * from the working directory, so `rls-kit migrate` finds them wherever it is
 * run from (and from `node_modules/supabase-rls-kit` once installed).
 */
export const KIT_MIGRATIONS_DIR: string = fileURLToPath(
  new URL('../../migrations', import.meta.url),
);

/** The names this kit applies: Supabase CLI naming, with the 14 digits `supabase migration new` writes. */
export const MIGRATION_FILE_PATTERN = /^(\d{14})_(.*)\.sql$/;

/** What the Supabase CLI accepts (`pkg/migration/file.go`): any run of digits. */
const CLI_PATTERN = /^(\d+)_(.*)\.sql$/;

/**
 * The Supabase CLI silently skips a first file named `<timestamp>_init.sql`
 * older than this (`shouldSkip` in `pkg/migration/list.go`: the initial schema
 * of pre-2021 projects). We skip it too so both tools agree on what a folder holds.
 */
const CLI_LEGACY_INIT = /^([0-9]{14})_init\.sql/;
const CLI_LEGACY_INIT_BEFORE = 20211209000000n;

/**
 * The migrations of a folder, sorted by version.
 *
 * Matches the Supabase CLI 2.117.0 where that is safe, and is stricter where
 * the CLI silently drops work:
 * - files named `<14 digits>_<name>.sql` are migrations; symlinks are followed;
 * - files not ending in `.sql` (README.md, .gitkeep) are ignored (the CLI
 *   skips them with a warning);
 * - any other `.sql` name (`add_users.sql`, `2024_x.sql`, `20240101-x.sql`)
 *   is an `ERR_MIGRATION` naming the file and the expected pattern — the CLI
 *   skips names without a digit prefix with only a warning, so a typo'd file
 *   would never be applied and nobody would notice; and it accepts versions of
 *   any length, which `supabase migration new` never writes;
 * - two files with one version are an `ERR_MIGRATION` (the second could never
 *   be recorded);
 * - like the CLI, a first file named `<timestamp>_init.sql` older than
 *   20211209000000 is skipped (the initial schema of pre-2021 projects).
 *
 * A missing folder is an `ERR_MIGRATION` naming it.
 *
 * @example
 * ```ts
 * const files = await listMigrationFiles('supabase/migrations');
 * // [{ version: '20250101000000', name: 'rls_kit_supabase_compat', path: 'supabase/migrations/20250101000000_rls_kit_supabase_compat.sql' }, ...]
 * ```
 */
export async function listMigrationFiles(dir: string): Promise<MigrationFile[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'ENOTDIR'
          ? 'is not a folder'
          : `cannot be read (${code ?? String(err)})`;
    throw new RlsKitError(
      'ERR_MIGRATION',
      `migrations folder ${dir} ${why}: pass --dir with a folder of <14 digits>_<name>.sql files`,
      { cause: err },
    );
  }
  // Go's fs.ReadDir sorts by name; the CLI's legacy-init rule looks at the first entry only.
  entries.sort(byCodeUnits);
  const files: MigrationFile[] = [];
  for (const [i, entry] of entries.entries()) {
    if (i === 0 && isLegacyInit(entry)) continue;
    if (!entry.toLowerCase().endsWith('.sql')) continue;
    const match = MIGRATION_FILE_PATTERN.exec(entry);
    const file = path.join(dir, entry);
    if (!match) {
      throw new RlsKitError(
        'ERR_MIGRATION',
        `${file} is not named like a migration: expected <14 digits>_<name>.sql (e.g. 20250101000000_add_users.sql); rename it or move it out of ${dir}`,
      );
    }
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(file); // follows symlinks, as the CLI does
    } catch (err) {
      throw new RlsKitError(
        'ERR_MIGRATION',
        `migration ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): a broken symlink?`,
        { cause: err },
      );
    }
    if (!info.isFile()) {
      throw new RlsKitError('ERR_MIGRATION', `migration ${file} is not a file`);
    }
    files.push({ version: match[1]!, name: match[2]!, path: file });
  }
  files.sort((a, b) => byCodeUnits(a.version, b.version));
  for (let i = 1; i < files.length; i++) {
    if (files[i]!.version === files[i - 1]!.version) {
      throw new RlsKitError(
        'ERR_MIGRATION',
        `${path.basename(files[i - 1]!.path)} and ${path.basename(files[i]!.path)} share version ${files[i]!.version}: give one of them a new timestamp`,
      );
    }
  }
  return files;
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isLegacyInit(entry: string): boolean {
  const m = CLI_LEGACY_INIT.exec(entry);
  return m !== null && BigInt(m[1]!) < CLI_LEGACY_INIT_BEFORE;
}

/** True when `name` would be picked up by the Supabase CLI (any digit run as version). */
export function cliMigrationParts(name: string): { version: string; name: string } | undefined {
  const m = CLI_PATTERN.exec(name);
  return m ? { version: m[1]!, name: m[2]! } : undefined;
}

/** One statement of a script, as Postgres' parser sees it. */
export interface ScriptStatement {
  /** The statement's exact text (no trailing `;`, no leading comments): what gets executed. */
  readonly sql: string;
  /** Code-point offset of `sql` in the script, for turning error positions into lines. */
  readonly offset: number;
  /** 1-based line and column where the statement starts. */
  readonly line: number;
  readonly column: number;
  /** For a transaction-control statement (BEGIN, COMMIT, ...), its kind. */
  readonly transaction?: string;
  /** For `DO` blocks: code-point offset of the body's first character (PL/pgSQL line 1). */
  readonly bodyOffset?: number;
}

/** A script read and split, ready to execute statement by statement. */
export interface SqlScript {
  readonly text: string;
  /** What to execute, in order. */
  readonly statements: readonly ScriptStatement[];
  /**
   * The statements as the Supabase CLI records them in `schema_migrations.statements`:
   * the text between top-level `;`s, comments included, trimmed, empty ones dropped.
   */
  readonly recorded: string[];
}

let parserReady: Promise<void> | undefined;

/**
 * Splits SQL text with Postgres' own parser (libpg-query), so dollar quotes,
 * `BEGIN ATOMIC` bodies, `E'\''` strings and nested comments never split a
 * statement. A syntax error is an `ERR_MIGRATION` naming `label`, line and
 * column — thrown before anything is sent to the database.
 *
 * @example
 * ```ts
 * const script = await splitSqlScript('create table t (a int);\nselect 1;', 'x.sql');
 * script.recorded; // ['create table t (a int)', 'select 1']
 * ```
 */
export async function splitSqlScript(text: string, label: string): Promise<SqlScript> {
  parserReady ??= loadModule();
  await parserReady;
  // libpg-query refuses an empty string; the CLI records an empty file as `{}`.
  if (text === '') return { text, statements: [], recorded: [] };
  let raw: ReturnType<typeof parseSync>['stmts'];
  try {
    raw = parseSync(text).stmts ?? [];
  } catch (err) {
    const details = (err as SqlError).sqlDetails;
    const lines = new LineIndex(text);
    // libpg-query reports a 0-based code-point offset (Postgres' 1-based cursorpos - 1).
    const where =
      details && details.cursorPosition >= 0 ? lines.describe(details.cursorPosition) : '';
    const message = oneLine(details?.message ?? (err instanceof Error ? err.message : String(err)));
    throw new RlsKitError('ERR_MIGRATION', `${label} failed${where}: ${message}`, { cause: err });
  }

  const bytes = Buffer.from(text, 'utf8');
  const lines = new LineIndex(text);
  const ranges = raw.map((s, i) => {
    const start = s.stmt_location ?? 0;
    // The last statement omits its length when no `;` ends it: it runs to the end.
    const end = s.stmt_len ? start + s.stmt_len : i === raw.length - 1 ? bytes.length : start;
    return { start, end, node: s.stmt };
  });

  const statements: ScriptStatement[] = ranges.map(({ start, end, node }) => {
    const sql = bytes.subarray(start, end).toString('utf8');
    const offset = lines.codePointAt(start);
    const pos = lines.position(offset);
    const statement: ScriptStatement = {
      sql,
      offset,
      line: pos.line,
      column: pos.column,
      ...transactionKind(node),
      ...doBodyOffset(node, sql, offset),
    };
    return statement;
  });

  // Terminators are the `;` tokens outside every statement (a `;` inside a
  // BEGIN ATOMIC body lies within its statement's range). Both lists are in
  // text order, so one pass suffices even for a seed of thousands of rows.
  const terminators: number[] = [];
  let r = 0;
  for (const t of scanSync(text).tokens) {
    if (t.text !== ';') continue;
    while (r < ranges.length && ranges[r]!.end <= t.start) r++;
    const range = ranges[r];
    if (!range || t.start < range.start) terminators.push(t.start);
  }
  const recorded: string[] = [];
  let from = 0;
  for (const at of [...terminators, bytes.length]) {
    const piece = cliTrim(bytes.subarray(from, at).toString('utf8'));
    if (piece !== '') recorded.push(piece);
    from = at + 1;
  }
  return { text, statements, recorded };
}

/** `strings.TrimSpace` after `strings.TrimRight(s, ";")`, as the CLI's SplitAndTrim does. */
function cliTrim(s: string): string {
  return s.replace(/;+$/, '').replace(GO_SPACE_START, '').replace(GO_SPACE_END, '');
}
// Go's unicode.IsSpace set (JS's trim() differs: it also strips U+FEFF and keeps U+0085).
const GO_SPACE =
  '\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const GO_SPACE_START = new RegExp(`^[${GO_SPACE}]+`);
const GO_SPACE_END = new RegExp(`[${GO_SPACE}]+$`);

function transactionKind(node: Node | undefined): { transaction?: string } {
  if (node && 'TransactionStmt' in node) {
    return { transaction: node.TransactionStmt.kind ?? 'TRANS_STMT_BEGIN' };
  }
  return {};
}

/**
 * Where a `DO` block's body starts, so "PL/pgSQL function inline_code_block
 * line N" can be turned into a line of the file.
 */
function doBodyOffset(
  node: Node | undefined,
  sql: string,
  offset: number,
): { bodyOffset?: number } {
  if (!node || !('DoStmt' in node)) return {};
  const body = scanSync(sql).tokens.find((t) => t.tokenName === 'SCONST');
  if (!body) return {};
  const token = Buffer.from(sql, 'utf8').subarray(body.start, body.end).toString('utf8');
  // $tag$…$tag$, '…' or E'…': the body begins after the opening delimiter.
  const opener = /^(\$[^$]*\$|[eE]?')/.exec(token)?.[0] ?? '';
  const before = Buffer.from(sql, 'utf8').subarray(0, body.start).toString('utf8');
  return { bodyOffset: offset + [...before].length + [...opener].length };
}

/** Maps offsets into a text (UTF-8 bytes or code points) to 1-based lines and columns. */
export class LineIndex {
  private readonly lineStarts: number[] = [0];
  private readonly cpOfByte: Uint32Array;

  constructor(text: string) {
    // Postgres counts characters (code points); libpg-query's statement
    // ranges are UTF-8 bytes; JS strings are UTF-16. Build both maps once.
    this.cpOfByte = new Uint32Array(Buffer.byteLength(text, 'utf8') + 1);
    let cp = 0;
    let byte = 0;
    for (const c of text) {
      const width = Buffer.byteLength(c, 'utf8');
      for (let k = 0; k < width; k++) this.cpOfByte[byte + k] = cp;
      byte += width;
      cp += 1;
      if (c === '\n') this.lineStarts.push(cp);
    }
    this.cpOfByte[byte] = cp;
  }

  /** 1-based line and column of a 0-based code-point offset. */
  position(offset: number): { line: number; column: number } {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.lineStarts[lo]! + 1 };
  }

  /** ` at line L, column C` for a 0-based code-point offset. */
  describe(offset: number): string {
    const { line, column } = this.position(offset);
    return ` at line ${line}, column ${column}`;
  }

  /** The code-point offset of a UTF-8 byte offset. */
  codePointAt(byteOffset: number): number {
    return this.cpOfByte[Math.min(byteOffset, this.cpOfByte.length - 1)]!;
  }
}

/** Postgres messages are one line almost always; make sure of it. */
export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** Reads a script file and splits it (see {@link splitSqlScript}). */
export async function readSqlScript(file: string, label: string): Promise<SqlScript> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new RlsKitError(
      'ERR_MIGRATION',
      `${label} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      { cause: err },
    );
  }
  return splitSqlScript(text, label);
}
