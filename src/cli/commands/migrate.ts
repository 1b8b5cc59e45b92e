import path from 'node:path';
import { describeUrl, openDatabase } from '../../db/database.js';
import { KIT_MIGRATIONS_DIR, migrate } from '../../db/migrate.js';
import { parseFlags } from '../args.js';
import type { Command } from '../command.js';

/**
 * `rls-kit migrate [--db-url URL] [--dir DIR]` — applies a folder of
 * Supabase-style migrations (default: the kit's), recorded like the Supabase
 * CLI records them. Talk (what was applied) goes to stderr; stdout gets one
 * JSON line `{"applied":[file names],"skipped":[file names]}` for scripts.
 *
 * @example
 * ```sh
 * rls-kit migrate --db-url "$DATABASE_URL" --dir supabase/migrations
 * ```
 */
export const migrateCommand: Command = {
  path: ['migrate'],
  summary: 'apply Supabase-style migrations (default: the kit’s), recorded like the Supabase CLI',
  usage:
    'rls-kit migrate [--db-url URL] [--dir DIR]\n\n' +
    '  --db-url URL  Postgres to migrate (default: DATABASE_URL, else the embedded database)\n' +
    '  --dir DIR     folder of <14 digits>_<name>.sql files (default: the kit’s migrations)',
  async run(args, io) {
    const { values } = parseFlags(
      args,
      { 'db-url': { type: 'string' }, dir: { type: 'string' } },
      'migrate',
    );
    const dir = values.dir ?? KIT_MIGRATIONS_DIR;
    // io.env rather than process.env, so callers (and tests) decide the default.
    const db = await openDatabase({ url: values['db-url'] ?? (io.env.DATABASE_URL || undefined) });
    try {
      io.stderr.write(
        `migrating ${db.embedded ? 'the embedded database' : describeUrl(db.url)} from ${dir}\n`,
      );
      const result = await migrate({
        url: db.url,
        dir,
        onApplied: (m) => io.stderr.write(`applied ${path.basename(m.path)}\n`),
      });
      io.stderr.write(
        `${result.applied.length} applied, ${result.skipped.length} already applied\n`,
      );
      const names = (files: { path: string }[]) => files.map((f) => path.basename(f.path));
      io.stdout.write(
        `${JSON.stringify({ applied: names(result.applied), skipped: names(result.skipped) })}\n`,
      );
      return 0;
    } finally {
      await db.close();
    }
  },
};
