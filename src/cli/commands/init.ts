import { initProject } from '../../db/init-project.js';
import { parseFlags } from '../args.js';
import type { Command } from '../command.js';

/**
 * `rls-kit init [--dir supabase/migrations]` — copies the kit's migrations
 * into a Supabase project under fresh timestamps. stdout lists the new files,
 * one path per line (`git add $(rls-kit init)`); stderr says what was skipped.
 *
 * @example
 * ```sh
 * rls-kit init --dir supabase/migrations && npx supabase migration up
 * ```
 */
export const initCommand: Command = {
  path: ['init'],
  summary: 'copy the kit’s migrations into a Supabase project (fresh timestamps)',
  usage:
    'rls-kit init [--dir supabase/migrations]\n\n' +
    '  --dir DIR  the project’s migrations folder, created when missing (default: supabase/migrations)',
  async run(args, io) {
    const { values } = parseFlags(args, { dir: { type: 'string' } }, 'init');
    const { copied, skipped } = await initProject({ dir: values.dir ?? 'supabase/migrations' });
    for (const file of skipped) io.stderr.write(`already present: ${file}\n`);
    for (const { to } of copied) io.stdout.write(`${to}\n`);
    io.stderr.write(
      `${copied.length} kit migration${copied.length === 1 ? '' : 's'} copied, ${skipped.length} already present\n`,
    );
    return 0;
  },
};
